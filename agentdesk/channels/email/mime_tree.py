"""Walking a parsed message's MIME tree, bounded, and reading a part's bytes and text."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email.message import Message
from email.policy import compat32
from typing import Any, TypeVar, overload

from agentdesk.channels.email.decoding import decode_bytes

# Bounds on the MIME tree walked: a hostile message can nest parts without end.
T = TypeVar("T")
D = TypeVar("D")

_MAX_DEPTH = 64
_MAX_PARTS = 2_000


def _walk(msg: Message) -> Iterator[tuple[Message, int, str | None]]:
    """Every part with its depth and content type (None when it cannot be read), iteratively
    and bounded (Message.walk recurses)."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        try:
            ctype = part.get_content_type()
        except Exception:
            ctype = None
        yield part, depth, ctype
        # Attached messages are attachments, not part of this message's body.
        if depth >= _MAX_DEPTH or ctype is None or not ctype.startswith("multipart/"):
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in reversed(payload) if isinstance(child, Message))


@overload
def _safe(call: Callable[[], T]) -> T | None: ...
@overload
def _safe(call: Callable[[], T], default: D) -> T | D: ...
def _safe(call: Callable[[], Any], default: Any = None) -> Any:
    try:
        return call()
    except Exception:
        return default


def _part_bytes(part: Message) -> bytes:
    """A leaf part's decoded payload (base64/QP undone), or its serialised form for messages."""
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    inner = part.get_payload()
    if isinstance(inner, list):  # message/rfc822, message/delivery-status: parsed sub-messages
        chunks = []
        for sub in inner:
            if isinstance(sub, Message):
                try:
                    chunks.append(sub.as_bytes(policy=compat32))
                except Exception:
                    chunks.append(str(sub).encode("utf-8", "surrogateescape"))
        return b"\n".join(chunks)
    if isinstance(inner, str):
        return inner.encode("utf-8", "surrogateescape")
    return b""


def _part_text(part: Message) -> str:
    data = _part_bytes(part)
    charset = _safe(part.get_content_charset)
    return decode_bytes(data, charset if isinstance(charset, str) else None)
