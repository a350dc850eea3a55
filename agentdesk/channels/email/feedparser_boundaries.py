"""A stand-in for `re` in `email.feedparser` that matches multipart boundaries without compiling.

`email.feedparser` compiles a regex for every multipart boundary it meets. Boundaries are unique
per message, so Python's regex cache never hits: the compile was a third of parsing an average
mailbox. `install` swaps its module's `re` for a stand-in that answers that one pattern with an
equivalent matcher (the fixed part of the pattern is compiled once) and passes every other call
to `re`. A pattern of any other shape (another Python version) gets the real regex.
"""

from __future__ import annotations

import email.feedparser
import re

_BOUNDARY_PREFIX = "(?P<sep>"
_BOUNDARY_SUFFIX = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_BOUNDARY_TAIL = re.compile(_BOUNDARY_SUFFIX[1:])
_UNESCAPE = re.compile(r"\\(.)", re.S)


class _BoundaryMatcher:
    """`re.compile("(?P<sep>" + re.escape(separator) + tail).match`, without compiling per boundary."""

    __slots__ = ("separator", "length")

    def __init__(self, separator: str):
        self.separator = separator
        self.length = len(separator)

    def match(self, line: str):
        if line.startswith(self.separator):
            return _BOUNDARY_TAIL.match(line, self.length)
        return None


class _FeedparserRe:
    def __getattr__(self, name: str):
        return getattr(re, name)

    def compile(self, pattern, flags=0):
        if (
            not flags
            and isinstance(pattern, str)
            and pattern.startswith(_BOUNDARY_PREFIX)
            and pattern.endswith(_BOUNDARY_SUFFIX)
        ):
            escaped = pattern[len(_BOUNDARY_PREFIX) : -len(_BOUNDARY_SUFFIX)]
            separator = _UNESCAPE.sub(r"\1", escaped)
            if re.escape(separator) == escaped:
                return _BoundaryMatcher(separator)
        return re.compile(pattern, flags)


def install() -> None:
    """Make every parse in this process use the boundary matcher (idempotent)."""
    email.feedparser.re = _FeedparserRe()  # type: ignore[attr-defined]  # its private `re`, replaced on purpose
