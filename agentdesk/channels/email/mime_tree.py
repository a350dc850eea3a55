"""Walking a parsed message's MIME tree, bounded, and reading a part's bytes and text."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email.message import Message
from email.policy import compat32
from functools import lru_cache, partial
from typing import Any, TypeVar, overload

from agentdesk.channels.email.decoding import _header_index, decode_bytes

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
            ctype = content_type(part)
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
    charset = _safe(partial(content_charset, part))
    return decode_bytes(data, charset if isinstance(charset, str) else None)


# A part's type and charset are what `Message.get_content_type` and `get_content_charset` make of
# its first Content-Type field and nothing else (the type's default aside). Those methods scan the
# header list and parse the parameters on every call, and nearly every part of a mailbox carries
# one of a few Content-Type values ("text/plain; charset=utf-8"): each value is read once, by the
# same methods, on a message holding that one field.


def content_type(part: Message) -> str:
    """`part.get_content_type()`."""
    fields = _header_index(part).get("content-type")
    if not fields:
        return part.get_default_type()
    return content_type_of_field(fields[0])


def content_charset(part: Message) -> str | None:
    """`part.get_content_charset()`."""
    fields = _header_index(part).get("content-type")
    return _charset_of_field(fields[0]) if fields else None


def _holding(field: str) -> Message:
    message = Message(policy=compat32)
    message.set_raw("Content-Type", field)
    return message


@lru_cache(maxsize=512)
def content_type_of_field(field: str) -> str:
    """`get_content_type()` of a message whose first Content-Type field is `field`."""
    return _holding(field).get_content_type()


@lru_cache(maxsize=512)
def _charset_of_field(field: str) -> str | None:
    return _holding(field).get_content_charset()
