"""The tree `email.message_from_bytes(raw, policy=compat32)` builds, built by slicing the text when
the mail is well formed.

The stdlib's feed parser reads a message one line at a time in Python, testing every line of every
part against the boundaries of all the multiparts around it: the largest single cost of parsing a
mailbox. Most mail is well formed: every header line is `Name: value` or a continuation, a blank
line ends the headers, all lines end alike, and each multipart's boundaries open, separate and
close its parts in order. For such mail `split_message` builds the very same `Message` objects
(headers, payloads, preambles, epilogues; no defects, since there are none to record) by finding
the boundary lines with `str.find`. For anything else — a defect the feed parser would record, a
lone CR, an mbox "From " line, an attached message (message/*), a digest, a boundary that is a
prefix of another — it returns None and the caller uses the feed parser, which stays the
definition of the tree. tests/unit/test_mime_split.py holds the two to the same result.
"""

from __future__ import annotations

import re
from email.message import Message
from email.policy import compat32

from agentdesk.channels.email.mime_tree import content_type_of_field

__all__ = ["split_message"]

# A header line as the feed parser takes it without a defect: a field name of printable
# characters but the colon, then the colon (its headerRE, with the name required).
_HEADER_LINE = re.compile(r"[\041-\071\073-\176]+:")
# Where one header field ends and the next begins: a line end not followed by a continuation.
_FIELD_BREAK = {"\n": re.compile(r"\n(?![ \t])"), "\r\n": re.compile(r"\r\n(?![ \t])")}
# What may follow a boundary's separator on its line (the feed parser's boundary pattern).
_BOUNDARY_TAIL = re.compile(r"(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")
# Deeper trees go to the feed parser, which decides what such nesting gives.
_MAX_DEPTH = 40


class _NeedsFeedParser(Exception):
    """The message is not of the shapes split here."""


def split_message(raw: bytes) -> Message | None:
    """`email.message_from_bytes(raw, policy=compat32)` for well-formed mail; None for other mail."""
    text = raw.decode("ascii", "surrogateescape")
    if "\r" not in text:
        eol = "\n"
    elif text.count("\r") == text.count("\r\n") == text.count("\n"):
        eol = "\r\n"
    else:
        return None  # mixed line ends: the feed parser's line splitting decides
    try:
        return _entity(text, 0, len(text), eol, (), 0)
    except _NeedsFeedParser:
        return None


def _entity(text: str, start: int, end: int, eol: str, separators: tuple[str, ...], depth: int) -> Message:
    """The message or part in text[start:end]; `end` is where the enclosing boundary line starts
    (or the end of the text) and `separators` are the enclosing multiparts' "--boundary" lines."""
    if depth > _MAX_DEPTH:
        raise _NeedsFeedParser
    message = Message(policy=compat32)
    body_start, content_type_field = _headers_into(message, text, start, end, eol)
    # (A new message's default type is text/plain: a digest's parts are left to the feed parser.)
    content_type = "text/plain" if content_type_field is None else content_type_of_field(content_type_field)
    maintype = content_type.split("/", 1)[0]
    if maintype == "message":
        raise _NeedsFeedParser  # an attached message (or a delivery-status report) is parsed as a message
    if maintype != "multipart":
        message.set_payload(text[body_start:end])
        return message
    boundary = message.get_boundary()
    if (
        boundary is None
        or content_type == "multipart/digest"  # its parts' default type is message/rfc822
        or str(message.get("content-transfer-encoding", "8bit")).lower() not in ("7bit", "8bit", "binary")
        or "\n" in boundary
        or "\r" in boundary
    ):
        raise _NeedsFeedParser
    separator = "--" + boundary
    if any(other.startswith(separator) or separator.startswith(other) for other in separators):
        raise _NeedsFeedParser  # one line could be two boundaries
    active = (separator, *separators)
    found = _next_boundary(text, body_start, end, active)
    if found is None or found[1] != separator or found[2]:
        raise _NeedsFeedParser  # no opening boundary, or an enclosing one first, or a close first
    at = found[0]
    if at > body_start:
        message.preamble = text[body_start : at - len(eol)]  # the last line end belongs to the boundary
    while True:
        part_start = _line_end(text, at)
        if part_start >= end or not text.endswith("\n", 0, part_start):
            raise _NeedsFeedParser  # a boundary line at the very end
        after = _next_boundary(text, part_start, end, active)
        if after is None or after[1] != separator:
            raise _NeedsFeedParser  # the multipart never closes, or an enclosing boundary cuts it
        if after[0] == part_start:
            raise _NeedsFeedParser  # two boundary lines in a row
        part = _entity(text, part_start, after[0], eol, active, depth + 1)
        message.attach(part)
        # The line end before a boundary belongs to the boundary, not to the part before it.
        if part.is_multipart():  # here: a multipart type (a part of another type has a str payload)
            epilogue = part.epilogue  # a str: set by the part's own close
            part.epilogue = _without_line_end(epilogue, eol) if epilogue else None
        else:
            part._payload = _without_line_end(part._payload, eol)  # type: ignore[attr-defined]
        at, _, closing = after
        if closing:
            message.epilogue = text[_line_end(text, at) : end]
            return message


def _headers_into(message: Message, text: str, start: int, end: int, eol: str) -> tuple[int, str | None]:
    """Store the header block at `start` in `message` as the feed parser does; where the body
    starts, and the value of the first Content-Type field (None: there is none)."""
    if text.startswith(eol, start):
        return start + len(eol), None
    content_type = None
    blank = text.find(eol + eol, start, end)
    if blank < 0:
        raise _NeedsFeedParser  # no blank line before the part ends
    for field in _FIELD_BREAK[eol].split(text[start:blank]):
        if _HEADER_LINE.match(field) is None:
            raise _NeedsFeedParser  # "From ", a line without a field name, a continuation first
        # compat32.header_source_parse of the field's lines: the value's first line without its
        # leading blanks, the continuation lines as they are, no line end at the end.
        name, value = field.split(":", 1)
        value = value.lstrip(" \t").rstrip("\r\n")
        message.set_raw(name, value)
        if content_type is None and name.lower() == "content-type":
            content_type = value
    return blank + 2 * len(eol), content_type


def _line_end(text: str, at: int) -> int:
    newline = text.find("\n", at)
    return len(text) if newline < 0 else newline + 1


def _next_boundary(text: str, start: int, end: int, separators: tuple[str, ...]) -> tuple[int, str, bool] | None:
    """The first line in text[start:end] (`start` begins a line) that is one of the separators'
    boundary lines: (where it starts, its separator, whether it closes), or None.

    Each separator after the first is looked for only up to the best line found so far: the
    enclosing multiparts' boundaries are not searched for to the end of the text at every part
    (a hostile message of many small parts would make that quadratic)."""
    first: tuple[int, str, bool] | None = None
    for separator in separators:
        limit = end if first is None else first[0]
        at = start if text.startswith(separator, start, limit) else _after_newline(text, "\n" + separator, start, limit)
        while at >= 0:
            tail = _BOUNDARY_TAIL.match(text[at : _line_end(text, at)], len(separator))
            if tail is not None:
                first = (at, separator, bool(tail["end"]))
                break
            at = _after_newline(text, "\n" + separator, at, limit)
    return first


def _after_newline(text: str, needle: str, start: int, end: int) -> int:
    found = text.find(needle, start, end)
    return found + 1 if found >= 0 else -1


def _without_line_end(value: str, eol: str) -> str:
    return value[: -len(eol)] if value.endswith(eol) else value
