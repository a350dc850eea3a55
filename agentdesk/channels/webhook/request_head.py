"""The head of an HTTP/1.x request (request line and header fields) as `webhook serve` reads it.

The receiver takes the whole head from the connection at once (up to its blank line) and parses
it here in one pass. The standard library's handler parses header fields with the email package,
a general MIME parser: for the few fields a webhook post has it cost the receiver more CPU per
post than its signature check, body write and answer together.

The rules are RFC 9112's, stricter than the email parser where that parser guessed: a field name
is a token followed directly by its colon (a line that is not, such as `Name : value`, is a 400,
not the silent start of a body as the email parser took it: a proxy may read that head
differently); a value is trimmed of surrounding spaces and tabs; an obsolete folded line (starting
with a space or tab) continues the previous value, joined by one space; more than `MAX_FIELDS`
lines is a 431. Text is Latin-1, as HTTP's bytes are decoded by the standard library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_FIELDS = 100  # field lines in one head, as the standard library's http.client allows
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class HeadError(Exception):
    """A head that is refused: the status to answer and why."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


class Headers:
    """A request's header fields by lower-cased name, each name's values in the order received:
    the part of `email.message.Message` that the receiver uses."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, list[str]]):
        self._fields = fields

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of the field `name` (any case), or `default`."""
        values = self._fields.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str] | None:
        """Every value of the field `name`, or None when there is none."""
        values = self._fields.get(name.lower())
        return list(values) if values else None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def items(self) -> list[tuple[str, str]]:
        return [(name, value) for name, values in self._fields.items() for value in values]


@dataclass(frozen=True)
class RequestLine:
    command: str
    path: str
    version: str  # "HTTP/1.1"; "HTTP/0.9" for a line without one
    keep_alive: bool  # HTTP/1.1 or later keeps the connection unless told otherwise


def split_head(head: bytes) -> tuple[str, list[str]]:
    """The request line of `head` (the bytes up to and including the blank line that ends it),
    without its line end, and the lines that follow it."""
    lines = head.decode("latin-1").split("\n")
    return lines[0].rstrip("\r"), lines[1:]


def parse_request_line(line: str) -> RequestLine:
    """`METHOD target HTTP/x.y` as the standard library's handler reads it (a two-word `GET
    target` is HTTP/0.9); HeadError 400 for anything else, 505 for HTTP/2 and later."""
    words = line.split()
    version, keep_alive = "HTTP/0.9", False
    if len(words) >= 3:
        version = words[-1]
        numbers = version[5:].split(".") if version.startswith("HTTP/") else []
        if len(numbers) != 2 or not all(n.isdigit() and len(n) <= 10 for n in numbers):
            raise HeadError(400, f"bad request version ({version!r})")
        try:
            number = int(numbers[0]), int(numbers[1])
        except ValueError:  # a digit that int() does not take, such as a superscript
            raise HeadError(400, f"bad request version ({version!r})") from None
        if number >= (2, 0):
            raise HeadError(505, f"HTTP version {version[5:]} is not supported; use HTTP/1.1")
        keep_alive = number >= (1, 1)
    if not 2 <= len(words) <= 3:
        raise HeadError(400, f"bad request line ({line!r})")
    command, path = words[:2]
    if len(words) == 2 and command != "GET":
        raise HeadError(400, f"bad HTTP/0.9 request type ({command!r})")
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return RequestLine(command, path, version, keep_alive)


def parse_fields(lines: list[str]) -> Headers:
    """The header fields in `lines` (those after the request line), up to the blank line.
    Raises HeadError for a malformed line (400) or too many of them (431)."""
    fields: dict[str, list[str]] = {}
    last: list[str] | None = None
    count = 0
    for raw in lines:
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line:
            break  # the blank line that ends the head
        count += 1
        if count > MAX_FIELDS:
            raise HeadError(431, f"more than {MAX_FIELDS} header lines")
        if line[0] in " \t":
            if last is None:
                raise HeadError(400, "a folded header line with no header before it")
            last[-1] = _joined(last[-1], line)
            continue
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HeadError(400, "a malformed header line (a field name, then directly its colon)")
        last = fields.setdefault(name.lower(), [])
        last.append(value.strip(" \t"))
    return Headers(fields)


def _joined(value: str, continuation: str) -> str:
    more = continuation.strip(" \t")
    return f"{value} {more}" if value and more else value or more
