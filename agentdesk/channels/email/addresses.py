"""Address headers (From, To, Cc) and the Message-ID headers threading follows."""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.utils import getaddresses, parseaddr
from typing import cast

from agentdesk.channels.email.decoding import _restore_bytes, _unfold, decode_header_value
from agentdesk.sanitize import strip_control

_BARE_ADDRESS = re.compile(r"[^\s<>\"(),;:\[\]]+@[^\s<>\"(),;:\[\]]+")
# The shapes nearly every address header has — `addr`, `<addr>`, `Name <addr>`, `"Name" <addr>`
# with a dot-atom address and a name of plain words or one quoted string without escapes —
# read without email.utils' tokenizer (a tenth of parsing a mailbox). For these shapes it
# returns exactly the (name, address) `parseaddr` does; anything else goes to `parseaddr`.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_SIMPLE_ADDRESS = re.compile(
    rf"[ \t]*(?:(?:\"(?P<quoted>[^\"\\\r\n]*)\"|(?P<words>{_ATEXT}+(?: {_ATEXT}+)*))[ \t]*)?<(?P<bracketed>{_DOT_ATOM})>[ \t]*"
    rf"|[ \t]*(?P<bare>{_DOT_ATOM})[ \t]*"
)


def _simple_address(text: str) -> tuple[str, str] | None:
    """What `email.utils.parseaddr(text)` returns, for the common shapes; None for the others."""
    simple = _SIMPLE_ADDRESS.fullmatch(text)
    if simple is None:
        return None
    if simple["bare"]:
        return "", simple["bare"]
    return simple["quoted"] if simple["quoted"] is not None else simple["words"] or "", simple["bracketed"]


def _address(raw_value: object) -> tuple[str, str]:
    """(display name decoded, address lower-cased) from one address header."""
    if raw_value is None:
        return "", ""
    text = _unfold(_restore_bytes(str(raw_value)))
    name, address = "", ""
    try:
        name, address = _simple_address(text) or parseaddr(text)
    except Exception:
        pass
    if "@" not in address:
        match = _BARE_ADDRESS.search(text)
        if match:
            address = match.group(0)
    address = strip_control(address).strip().strip("<>").strip().lower()
    name = decode_header_value(name) if name else ""
    if not name and "@" in address:
        # "=?utf-8?q?Jos=C3=A9?= <jose@x>" confuses parseaddr when the word holds specials.
        before = text.split("<", 1)[0] if "<" in text else ""
        name = decode_header_value(before).strip().strip('"').strip()
    return name.strip().strip('"').strip(), address


def _address_list(values: Sequence[object]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    texts = [_unfold(_restore_bytes(str(v))) for v in values if v is not None]
    try:
        simple = [_simple_address(text) for text in texts]
        pairs = cast("list[tuple[str, str]]", simple) if all(simple) else getaddresses(texts)
    except Exception:
        pairs = [("", m) for t in texts for m in _BARE_ADDRESS.findall(t)]
    for _, address in pairs:
        address = strip_control(address).strip().strip("<>").strip().lower()
        if address and " " not in address:
            found[address] = None
    return tuple(found)


_BRACKETED_ID = re.compile(r"<([^<>]*)>")


def _message_id(value: object) -> str:
    """The Message-ID as sent, without angle brackets and surrounding space."""
    if value is None:
        return ""
    text = strip_control(_unfold(_restore_bytes(str(value)))).strip()
    match = _BRACKETED_ID.search(text)
    if match and match.group(1).strip():
        return match.group(1).strip()
    return text.strip("<> \t")


def _id_list(value: object) -> list[str]:
    if value is None:
        return []
    text = strip_control(_unfold(_restore_bytes(str(value))))
    ids = [i.strip() for i in _BRACKETED_ID.findall(text) if i.strip()]
    if not ids:  # some clients drop the brackets
        ids = [t.strip("<>,;") for t in text.split() if "@" in t]
    return [i for i in ids if i]
