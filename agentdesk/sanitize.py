"""Make untrusted text inert before it is stored or shown.

Mail and webhook payloads are hostile until proven otherwise (DESIGN, principle 5). Everything a
sender wrote passes through here on its way in:

- `strip_control` removes what a terminal would *execute* rather than display: escape sequences
  (colours, cursor moves, OSC 8 hyperlinks, OSC 52 clipboard writes, DCS/APC/PM/SOS strings),
  C0/C1 controls and the bidi overrides that make text read differently from how it is stored.
  For text of many lines (bodies): newlines and tabs stay.
- `inert_line` is the same for a value that is one line (a name, an address, a subject, an id):
  line breaks and tabs become one space, and the invisible bidi marks go too.
- `html_to_text` turns an HTML body into readable text without ever rendering it.
- `safe_filename` turns a sender's attachment name into something safe to *display*.

And on the way out, because a database may hold what was stored before these rules (and because
a second guard costs one scan):

- `escape_control` writes every character a terminal would act on as a visible escape (`\\x1b`,
  `\\u202e`), leaving all other text as it is: CLI text, the TUI, log messages.
- `printable` is the unambiguous one-line form (backslashes doubled, every non-printable
  character escaped) for names and reasons inside log lines and `.error` sidecars.
- `escape_json_controls` does the same inside JSON text as `\\uXXXX`, so JSON stays valid and
  round-trips to the very same strings.
- `InertLogFormatter` applies `escape_control` to every log record.

Standard library only: the ingest path, the CLI and the TUI all import this.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from html import unescape
from html.parser import HTMLParser

__all__ = [
    "strip_control",
    "inert_line",
    "is_inert_line",
    "html_to_text",
    "safe_filename",
    "escape_control",
    "printable",
    "escape_json_controls",
    "InertLogFormatter",
]

# --- strip_control ----------------------------------------------------------------------------

# String-type sequences (OSC, DCS, SOS, PM, APC), 7-bit (ESC ] ...) or 8-bit (\x9d ...): a terminal
# swallows everything up to the string terminator (BEL, ESC \ or \x9c). An unterminated one is cut
# at the end of its line, so one stray introducer cannot hide the rest of a message.
_STRING_SEQUENCE = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])"  # introducer
    r"[^\x07\x1b\x9c\n]*"  # payload
    r"(?:\x07|\x1b\\|\x9c)?"  # terminator, when there is one
)
# CSI: ESC [ or \x9b, parameter bytes, intermediate bytes, one final byte.
_CSI_SEQUENCE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?")
# Every other escape: ESC, intermediates, a final byte (ESC ( B, ESC 7, ESC c, ESC = ...).
_OTHER_ESCAPE = re.compile(r"\x1b[ -/]*[0-~]?")
# Controls left after the sequences are gone: C0 except \t and \n, DEL, C1, bidi embeddings,
# overrides (U+202A-202E) and isolates (U+2066-2069). Lone surrogates (from undecodable bytes)
# would crash the terminal or the database driver on encode; they become U+FFFD below.
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATES = re.compile("[\ud800-\udfff]")
# Every character any step of `strip_control` changes or removes (CR, U+2028/9, ESC and the C1
# introducers are among the controls): text without one comes back as it is.
_find_strippable = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]").search


def strip_control(text: str) -> str:
    """Return `text` without terminal control sequences, control characters or bidi overrides.

    Line ends are normalised to "\\n" (CRLF and lone CR alike, since a lone CR lets a line
    overwrite itself on a terminal); tabs are kept; every printable character is kept as it was.
    """
    if not text:
        return ""
    if not isinstance(text, str):
        text = str(text)
    if _find_strippable(text) is None:  # most text: one scan instead of six passes
        return text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n\n")
    if "\x1b" in text or _has_c1_introducer(text):
        text = _STRING_SEQUENCE.sub("", text)
        text = _CSI_SEQUENCE.sub("", text)
        text = _OTHER_ESCAPE.sub("", text)
    text = _CONTROL_CHARS.sub("", text)
    return _SURROGATES.sub("\ufffd", text)


def _has_c1_introducer(text: str) -> bool:
    return any(c in text for c in "\x90\x98\x9b\x9d\x9e\x9f")


# What `inert_line` changes besides what `strip_control` does: the line breaks and tabs it keeps,
# and the bidi marks (LRM, RLM, ALM). A mark cannot reorder past its paragraph, so a body keeps
# the ones right-to-left writing uses; in a name or an address it only makes two values that
# look the same compare different.
_LINE_BREAKS = re.compile("[\t\n]+")
_BIDI_MARKS = re.compile("[\u200e\u200f\u061c]")
_find_not_inert_line = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
).search


def is_inert_line(text: str) -> bool:
    """Whether `inert_line` would return `text` as it is (one scan)."""
    return _find_not_inert_line(text) is None


def inert_line(text: str) -> str:
    """`text` made a single inert line: `strip_control`, then each run of line breaks and tabs is one
    space and the bidi marks are gone. For names, addresses, subjects, ids, header values."""
    if not text:
        return ""
    if not isinstance(text, str):
        text = str(text)
    if _find_not_inert_line(text) is None:  # most values: one scan
        return text
    text = _LINE_BREAKS.sub(" ", strip_control(text))
    return _BIDI_MARKS.sub("", text)


# --- on the way out ------------------------------------------------------------------------------

# Characters a terminal acts on instead of printing: C0 but tab and newline, DEL, C1, the bidi
# embeddings, overrides and isolates, the Unicode line and paragraph separators, and lone
# surrogates (which no UTF-8 stream can even write). Escaping the introducer (ESC, CSI, OSC...)
# is enough to leave the rest of a sequence as plain characters.
_TERMINAL_ACTIVE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_ACTIVE_IN_TEXT = re.compile(f"[{_TERMINAL_ACTIVE}]")
# A single line also takes what would break it (newline, tab: each becomes a space) and the bidi
# marks.
_ACTIVE_IN_LINE = re.compile(f"[{_TERMINAL_ACTIVE}\t\n\u061c\u200e\u200f]")


def _escaped(match: re.Match) -> str:
    char = match.group()
    if char in "\t\n":
        return " "
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str, *, keep_lines: bool = True) -> str:
    """`text` as a terminal can show it without acting on it: every control character, bidi
    control and lone surrogate written as a visible `\\xNN` / `\\uNNNN`; all else unchanged.

    With `keep_lines` newlines and tabs stay (a body); without, each is a space and the bidi marks
    are escaped too (a column, a name, a log message). The guard for anything written to a
    terminal, whatever is in the database.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    pattern = _ACTIVE_IN_TEXT if keep_lines else _ACTIVE_IN_LINE
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escaped, text)


def printable(text: str) -> str:
    """`text` as one unambiguous, inert line: a backslash becomes two, and every character
    `str.isprintable` rejects (controls, bidi and other format characters, line separators,
    unusual spaces, lone surrogates from undecodable file names) becomes `\\xNN` / `\\uNNNN`.

    For values quoted inside a line we write (a spool file's name, a reason in a log or a
    sidecar): what was sent can be read back from it exactly.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


# Inside JSON text such a character can only be part of a string, where `\\uXXXX` means the same
# character: JSON parsers read back exactly the value that was written. The json module escapes
# C0 itself; with ensure_ascii=False it writes DEL, C1, bidi controls and surrogates raw.
_ACTIVE_IN_JSON = re.compile(f"[{_TERMINAL_ACTIVE}\u061c\u200e\u200f]")


def escape_json_controls(json_text: str) -> str:
    """JSON text (from `json.dumps(..., ensure_ascii=False)`) with every terminal-active character
    written as a `\\uXXXX` escape, so it can go to a terminal and still parse to the same value."""
    if _ACTIVE_IN_JSON.search(json_text) is None:
        return json_text
    return _ACTIVE_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", json_text)


class InertLogFormatter(logging.Formatter):
    """A log formatter whose every record is inert: the message (with its arguments) one line, as
    `escape_control` writes it, so a sender's name can neither act on the terminal nor forge a log
    line; a traceback keeps its lines, each escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_control(record.message, keep_lines=False)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:
        return escape_control(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return escape_control(super().formatStack(stack_info))


# --- html_to_text ----------------------------------------------------------------------------

_SKIP_CONTENT = frozenset({"script", "style", "head", "title", "template", "xml"})
# Elements that start a new paragraph (a blank line) or just a new line.
_PARAGRAPH = frozenset(
    {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "ul",
        "ol",
        "dl",
        "table",
        "blockquote",
        "pre",
        "figure",
        "address",
        "fieldset",
        "form",
        "hr",
    }
)
_LINE = frozenset(
    {
        "div",
        "li",
        "tr",
        "dt",
        "dd",
        "section",
        "article",
        "header",
        "footer",
        "nav",
        "aside",
        "main",
        "center",
        "caption",
        "figcaption",
        "details",
        "summary",
        "thead",
        "tbody",
        "tfoot",
        "option",
        "legend",
        "body",
        "html",
    }
)
_CELL = frozenset({"td", "th"})
_VOID = frozenset(
    {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "param", "source", "track", "wbr"}
)
_WHITESPACE = re.compile(r"[ \t\n\r\f\v\xa0\u200b]+")
_WHITESPACE_BUT_SPACE = re.compile(r"[\t\n\r\f\v\xa0\u200b]")


def _collapse_whitespace(text: str) -> str:
    """`text` with each run of whitespace one space."""
    if "  " not in text and _WHITESPACE_BUT_SPACE.search(text) is None:
        return text  # its runs are single spaces already: most text, one scan instead of a substitution per word
    return _WHITESPACE.sub(" ", text)


# Above this the input is cut before parsing: html.parser is linear on ordinary input, but an
# HTML body this size is hostile or broken and nobody reads past it.
MAX_HTML_CHARS = 4_000_000


class _TextExtractor(HTMLParser):
    """Streams parser events into lines of text; keeps no tree, so nesting depth costs nothing."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._at_line_start = True
        self._pending_newlines = 0  # 1: new line, 2: blank line before the next text
        self._pending_separator = ""  # between table cells, only when text follows on the line
        self._pending_prefix = ""  # list bullet for the next text
        self._skip: dict[str, int] = {}
        self._pre = 0
        self._quote = 0
        self._lists: list[list] = []  # [tag, next number]
        self._links: list[tuple[str, list[str]]] = []  # (href, the link's text so far)
        self._row_has_cell = False

    def updatepos(self, i: int, j: int) -> int:
        # html.parser counts the lines of the document up to every tag for `getpos`, which
        # nothing here asks: skipped.
        return j

    # -- output helpers

    def _newline(self, count: int) -> None:
        if self.out:
            self._pending_newlines = max(self._pending_newlines, count)
        self._pending_separator = ""

    def _emit(self, text: str) -> None:
        if not text:
            return
        if self._pending_newlines:
            self.out.append("\n" * self._pending_newlines)
            self._pending_newlines = 0
            self._at_line_start = True
        if self._at_line_start:
            if self._quote:
                self.out.append("> " * self._quote)
            self._pending_separator = ""
        elif self._pending_separator:
            self.out.append(self._pending_separator)
        self._pending_separator = ""
        if self._pending_prefix:
            self.out.append(self._pending_prefix)
            self._pending_prefix = ""
        self.out.append(text)
        self._at_line_start = False
        for _, link_text in self._links:
            link_text.append(text)

    def _skipping(self) -> bool:
        return any(self._skip.values())

    # -- parser events

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._skip.pop("head", None)  # an unclosed <head> ends where the body starts
        if tag in _SKIP_CONTENT:
            if tag not in _VOID:
                self._skip[tag] = self._skip.get(tag, 0) + 1
            return
        if self._skipping():
            return
        if tag in ("ul", "ol") and self._lists:
            self._newline(1)  # a nested list continues its parent item's block
        elif tag in _PARAGRAPH:
            self._newline(2)
        elif tag in _LINE:
            self._newline(1)
        if tag == "br":
            self._line_break()
        elif tag == "hr":
            self._emit("---")
            self._newline(2)
        elif tag in ("ul", "ol"):
            self._lists.append([tag, 1])
        elif tag == "li":
            self._newline(1)
            depth = max(len(self._lists), 1)
            indent = "  " * (depth - 1)
            if self._lists and self._lists[-1][0] == "ol":
                self._pending_prefix = f"{indent}{self._lists[-1][1]}. "
                self._lists[-1][1] += 1
            else:
                self._pending_prefix = f"{indent}- "
        elif tag == "blockquote":
            self._quote += 1
        elif tag == "pre":
            self._pre += 1
        elif tag == "tr":
            self._row_has_cell = False
        elif tag in _CELL:
            if self._row_has_cell and not self._at_line_start:
                self._pending_separator = " | "
            self._row_has_cell = True
        elif tag == "a":
            href = (dict(attrs).get("href") or "").strip()
            if self._links:  # an unclosed <a> ends where the next one starts
                self._close_link()
            self._links.append((href, []))
        elif tag == "img":
            alt = _WHITESPACE.sub(" ", dict(attrs).get("alt") or "").strip()
            if alt:
                self._emit_inline(f"[{alt}]")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_CONTENT:
            if self._skip.get(tag):
                self._skip[tag] -= 1
            return
        if self._skipping():
            return
        if tag == "a":
            if self._links:
                self._close_link()
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._pending_prefix = ""
            if self._lists:
                self._newline(1)
                return
        elif tag == "blockquote":
            self._quote = max(0, self._quote - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
        elif tag == "li":
            self._pending_prefix = ""
        if tag in _PARAGRAPH:
            self._newline(2)
        elif tag in _LINE:
            self._newline(1)

    def handle_data(self, data: str) -> None:
        if self._skipping() or not data:
            return
        if self._pre:
            lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            for index, line in enumerate(lines):
                if index:
                    self._line_break()
                self._emit(line.replace("\xa0", " "))
            return
        self._emit_inline(data)

    def _emit_inline(self, data: str) -> None:
        collapsed = _collapse_whitespace(data)
        if self._at_line_start or self._pending_newlines:
            collapsed = collapsed.lstrip(" ")
        elif collapsed.startswith(" ") and self.out and self.out[-1].endswith(" "):
            collapsed = collapsed[1:]
        self._emit(collapsed)

    def _line_break(self) -> None:
        if self._pending_newlines:
            self._pending_newlines += 1
        elif self.out:
            self.out.append("\n")
            self._at_line_start = True
        self._pending_separator = ""

    def _close_link(self) -> None:
        href, link_text = self._links.pop()
        if not href or href.startswith("#") or href.lower().startswith(("javascript:", "data:")):
            return
        text = "".join(link_text).strip()
        if not text:
            self._emit_inline(href)
            return
        if _same_target(text, href):
            return
        self._emit(f" ({href})")


def _same_target(text: str, href: str) -> bool:
    def norm(value: str) -> str:
        value = value.strip().lower()
        for prefix in ("mailto:", "tel:", "http://", "https://"):
            if value.startswith(prefix):
                value = value[len(prefix) :]
        return value.rstrip("/")

    return norm(text) == norm(href)


# The plainest markup, which most HTML mail is made of: a start tag (its name, then attributes
# each written name="value", maybe a closing slash) or an end tag (its name alone).
_PLAIN_TAG = re.compile(
    r'<(?:(?P<start>[a-zA-Z][a-zA-Z0-9]*)(?P<attributes>(?:[ \t\n]+[a-zA-Z][a-zA-Z0-9-]*="[^"<>]*")*)[ \t\n]*(?P<slash>/?)'
    r"|/(?P<end>[a-zA-Z][a-zA-Z0-9]*))>"
)
# Elements whose content html.parser reads as text, not markup: script and style, and in newer
# Pythons' html.parser also the RCDATA ones (title, textarea) and more raw-text ones. Mail holding
# any of them goes to html.parser, whichever version runs, so both paths stay one reading.
_READ_VERBATIM = (
    frozenset(HTMLParser.CDATA_CONTENT_ELEMENTS)
    | frozenset(getattr(HTMLParser, "RCDATA_CONTENT_ELEMENTS", ()))
    | {"textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript", "plaintext"}
)
_PLAIN_ATTRIBUTE = re.compile(r'([a-zA-Z][a-zA-Z0-9-]*)="([^"<>]*)"')


def _feed_plain_markup(extractor: _TextExtractor, html: str) -> bool:
    """Hand `extractor` the events html.parser would, when every "<" of `html` opens a plain tag
    (`_PLAIN_TAG`) and none is a script or style (whose content html.parser reads raw); else
    hand it nothing and return False, for html.parser to read the document.

    html.parser finds those events with a dozen regular expressions and calls per tag;
    tests/unit/test_mime_parts.py holds the two to the same events."""
    events: list[tuple[int, str, list[tuple[str, str | None]]]] = []  # (kind, tag or text, attributes)
    at = 0
    while True:
        opening = html.find("<", at)
        if opening < 0:
            if at < len(html):
                events.append((_DATA, unescape(html[at:]), []))
            break
        tag = _PLAIN_TAG.match(html, opening)
        if tag is None:
            return False
        if opening > at:
            events.append((_DATA, unescape(html[at:opening]), []))
        if tag["end"]:
            events.append((_END, tag["end"].lower(), []))
        else:
            name = tag["start"].lower()
            if name in _READ_VERBATIM:
                return False
            attributes: list[tuple[str, str | None]] = [
                (key.lower(), unescape(value) if value else value)
                for key, value in _PLAIN_ATTRIBUTE.findall(tag["attributes"])
            ]
            events.append((_START_END if tag["slash"] else _START, name, attributes))
        at = tag.end()
    for kind, value, attributes in events:
        if kind == _DATA:
            extractor.handle_data(value)
        elif kind == _START:
            extractor.handle_starttag(value, attributes)
        elif kind == _START_END:
            extractor.handle_startendtag(value, attributes)
        else:
            extractor.handle_endtag(value)
    return True


_DATA, _START, _START_END, _END = range(4)
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUNS = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML document or fragment, however broken.

    Block elements become lines and paragraphs, lists "- item" (numbered for <ol>), links
    "text (url)", table cells are joined with " | ", blockquotes are prefixed with "> ";
    script, style and head are dropped and entities decoded. The result has passed through
    `strip_control`.
    """
    if not html:
        return ""
    if len(html) > MAX_HTML_CHARS:
        html = html[:MAX_HTML_CHARS]
    extractor = _TextExtractor()
    try:
        if not _feed_plain_markup(extractor, html):
            extractor.feed(html)
            extractor.close()
    except Exception:  # html.parser is lenient, but a half-read document beats none
        pass
    while extractor._links:
        extractor._close_link()
    text = "".join(extractor.out)
    text = strip_control(text)
    text = _TRAILING_SPACE.sub("\n", text)
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip()


# --- safe_filename -----------------------------------------------------------------------------

MAX_FILENAME_CHARS = 120
_MAX_EXTENSION_CHARS = 16
_SEPARATORS = re.compile(r"[/\\]")


def safe_filename(name: str, *, fallback: str = "attachment") -> str:
    """A sender's attachment name made safe to display: one path component, printable, bounded.

    "../../etc/passwd" becomes "passwd"; controls, bidi overrides and leading dots go; names
    longer than `MAX_FILENAME_CHARS` are shortened in the middle so the extension survives.
    Never a storage path: the store generates its own names.
    """
    if not isinstance(name, str):
        name = "" if name is None else str(name)
    text = _WHITESPACE.sub(" ", unicodedata.normalize("NFC", strip_control(name)))
    # Format characters (zero-width joiners, marks, BOM) can disguise an extension.
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co"))
    text = _WHITESPACE.sub(" ", text)
    parts = [p for p in _SEPARATORS.split(text) if p.strip(" .")]
    text = parts[-1] if parts else ""
    text = text.strip(" ").lstrip(".").rstrip(". ").strip()
    if not text:
        return fallback
    if len(text) > MAX_FILENAME_CHARS:
        stem, dot, extension = text.rpartition(".")
        if dot and stem and 0 < len(extension) <= _MAX_EXTENSION_CHARS:
            keep = MAX_FILENAME_CHARS - len(extension) - 2
            text = f"{stem[:keep].rstrip()}….{extension}"
        else:
            text = text[: MAX_FILENAME_CHARS - 1].rstrip() + "…"
    return text
