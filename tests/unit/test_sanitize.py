"""Untrusted text made inert: escape sequences, HTML, attachment names; and escaped on the way out."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agentdesk.channels.base import InboundAttachment, InboundMessage
from agentdesk.sanitize import (
    MAX_FILENAME_CHARS,
    InertLogFormatter,
    escape_control,
    escape_json_controls,
    html_to_text,
    inert_line,
    printable,
    safe_filename,
    strip_control,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "email"

ESC = "\x1b"
BEL = "\x07"
ST = ESC + "\\"


# --- strip_control ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "text", "expected"),
    [
        ("CSI colour", f"a{ESC}[1;31mred{ESC}[0m b", "ared b"),
        ("CSI cursor move", f"x{ESC}[2J{ESC}[10;10Hy", "xy"),
        ("CSI private mode", f"x{ESC}[?1049hy", "xy"),
        ("OSC title, BEL", f"x{ESC}]0;pwned{BEL}y", "xy"),
        ("OSC 8 hyperlink", f"{ESC}]8;;https://evil.example{ST}click{ESC}]8;;{ST}", "click"),
        ("OSC 52 clipboard", f"x{ESC}]52;c;cm0gLXJmIH4K{BEL}y", "xy"),
        ("DCS", f"x{ESC}P1$r0m{ST}y", "xy"),
        ("APC", f"x{ESC}_Gf=24;AAAA{ST}y", "xy"),
        ("PM", f"x{ESC}^privacy{ST}y", "xy"),
        ("SOS", f"x{ESC}Xstring{ST}y", "xy"),
        ("8-bit CSI", "x\x9b31my", "xy"),
        ("8-bit OSC", "x\x9d0;title\x9cy", "xy"),
        ("8-bit DCS", "x\x90data\x9cy", "xy"),
        ("other C1", "x\x85\x8dy", "xy"),
        ("charset escape", f"x{ESC}(By", "xy"),
        ("lone ESC at end", f"xy{ESC}", "xy"),
        ("C0 controls", "a\x00b\x08c\x0bd\x0ce\x7ff", "abcdef"),
        ("bidi override", "invoice\u202egpj.exe", "invoicegpj.exe"),
        ("bidi embeddings", "\u202aa\u202bb\u202cc\u202dd", "abcd"),
        ("bidi isolates", "\u2066a\u2067b\u2068c\u2069", "abc"),
    ],
)
def test_strip_control_removes_each_family(family: str, text: str, expected: str) -> None:
    assert strip_control(text) == expected, family


def test_unterminated_string_sequence_stops_at_end_of_line() -> None:
    assert strip_control(f"a{ESC}]0;never closed\nsecond line") == "a\nsecond line"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a\r\nb", "a\nb"), ("a\rb", "a\nb"), ("a\r\r\nb", "a\n\nb"), ("tab\there", "tab\there")],
)
def test_line_ends_normalised_tabs_kept(text: str, expected: str) -> None:
    assert strip_control(text) == expected


def test_ordinary_unicode_is_untouched() -> None:
    text = "Grüße, café — 日本語 😀 עברית العربية Ελληνικά\nzweite Zeile\t→ ok"
    assert strip_control(text) == text


def test_lone_surrogates_become_replacement_characters() -> None:
    assert strip_control("a\udcffb") == "a\ufffdb"


def test_empty_and_large_inputs() -> None:
    assert strip_control("") == ""
    big = ("plain text line\n" * 150_000) + f"{ESC}[31m"
    started = time.perf_counter()
    assert strip_control(big).endswith("plain text line\n")
    assert time.perf_counter() - started < 2


# --- html_to_text ----------------------------------------------------------------------------


def test_paragraphs_line_breaks_and_entities() -> None:
    html = "<p>Hello &amp; welcome&nbsp;here</p><p>Second<br>line &lt;ok&gt; &eacute;&#233;</p>"
    assert html_to_text(html) == "Hello & welcome here\n\nSecond\nline <ok> éé"


def test_lists_become_dashes_and_numbers() -> None:
    html = "<ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul><ol><li>first<li>second</ol>"
    assert html_to_text(html) == "- one\n- two\n  - nested\n\n1. first\n2. second"


def test_links_keep_their_url_unless_it_is_the_text() -> None:
    html = (
        '<p>See <a href="https://example.com/docs">the docs</a>, '
        '<a href="https://example.com">https://example.com</a>, '
        '<a href="mailto:help@example.com">help@example.com</a> and '
        '<a href="javascript:alert(1)">this</a>.</p>'
    )
    assert html_to_text(html) == (
        "See the docs (https://example.com/docs), https://example.com, help@example.com and this."
    )


def test_script_style_and_head_are_dropped() -> None:
    html = (
        "<html><head><title>T</title><style>p{color:red}</style><meta charset=utf-8></head>"
        "<body><script>alert('x')</script><p>Visible</p><!-- hidden comment --></body></html>"
    )
    assert html_to_text(html) == "Visible"


def test_tables_are_readable() -> None:
    html = "<table><tr><th>Item</th><th>Qty</th></tr><tr><td>Widget</td><td>2</td></tr></table>"
    assert html_to_text(html) == "Item | Qty\nWidget | 2"


def test_layout_tables_do_not_leave_separator_litter() -> None:
    html = "<table><tr><td></td><td><table><tr><td>Only text</td></tr></table></td><td></td></tr></table>"
    assert html_to_text(html) == "Only text"


def test_blockquote_and_pre() -> None:
    html = "<p>Reply</p><blockquote>quoted<br>more</blockquote><pre>  keep\n    indent</pre>"
    assert html_to_text(html) == "Reply\n\n> quoted\n> more\n\n  keep\n    indent"


@pytest.mark.parametrize(
    "html",
    [
        "<p>unclosed <b>bold <i>italic",
        "<div><p>mismatched</div></p></span>",
        "<a href='x'>open link <a href='y'>second",
        "text < not a tag & not an entity &bogus;",
        "<head><title>never closed<body>Body text",
        "<!-- unterminated comment",
        "<![CDATA[ x ]]><?xml version='1.0'?>ok",
        "</p></div></body>",
    ],
)
def test_broken_html_never_raises(html: str) -> None:
    assert isinstance(html_to_text(html), str)


def test_unclosed_head_ends_at_body() -> None:
    assert html_to_text("<head><title>T</title><body><p>Body text</p>") == "Body text"


def test_deep_nesting_has_no_recursion_limit() -> None:
    html = "<div><span>" * 50_000 + "deep" + "</span></div>" * 10
    started = time.perf_counter()
    assert html_to_text(html) == "deep"
    assert time.perf_counter() - started < 5


def test_escape_sequences_inside_html_are_removed() -> None:
    html = f"<p>a{ESC}]52;c;Zm9v{BEL}b \u202eevil</p>"
    assert html_to_text(html) == "ab evil"


@pytest.mark.parametrize("name", ["htmllargecallstack.eml", "large_text.eml"])
def test_pathological_corpus_html_in_bounded_time(name: str) -> None:
    text = (DATA / "nodemailer-mailparser" / name).read_bytes().decode("latin-1")
    started = time.perf_counter()
    html_to_text(text)
    assert time.perf_counter() - started < 5


# --- safe_filename ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\evil.dll", "evil.dll"),
        ("C:\\Users\\me\\cv.docx", "cv.docx"),
        ("a\x00b.txt", "ab.txt"),
        ("line\nbreak.txt", "line break.txt"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),
        ("résumé 日本語.pdf", "résumé 日本語.pdf"),
        (".bashrc", "bashrc"),
        ("..", "attachment"),
        ("", "attachment"),
        ("   ", "attachment"),
        ("/", "attachment"),
        (f"{ESC}[31mred.txt", "red.txt"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_safe_filename_fallback_is_configurable() -> None:
    assert safe_filename("../", fallback="part-1.bin") == "part-1.bin"


def test_very_long_names_keep_their_extension() -> None:
    result = safe_filename("x" * 5_000 + ".pdf")
    assert len(result) <= MAX_FILENAME_CHARS
    assert result.endswith(".pdf")
    long_unicode = safe_filename("日本" * 400)
    assert len(long_unicode) <= MAX_FILENAME_CHARS


def test_safe_filename_never_contains_separators_or_controls() -> None:
    for name in ["a/b\\c", "../" * 50 + "x", "\x01\x02/\x7f", "ok.txt/"]:
        result = safe_filename(name)
        assert "/" not in result and "\\" not in result
        assert result not in ("", ".", "..")
        assert all(ch.isprintable() for ch in result)


# --- the property: whatever comes in, nothing a terminal acts on comes out ---------------------

BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
BIDI_MARKS = set("\u200e\u200f\u061c")
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _forbidden_in_text(char: str) -> bool:
    """What no sanitised text of many lines may hold: C0 but newline and tab, DEL, C1, bidi
    controls, line/paragraph separators, lone surrogates."""
    code = ord(char)
    return (
        (code < 0x20 and char not in "\n\t")
        or 0x7F <= code <= 0x9F
        or char in BIDI_CONTROLS
        or char in "\u2028\u2029"
        or 0xD800 <= code <= 0xDFFF
    )


def _forbidden_in_line(char: str) -> bool:
    return _forbidden_in_text(char) or char in "\n\t" or char in BIDI_MARKS


# Every code point, surrogates included (Python strings can hold them; undecodable bytes become them).
any_text = st.text(alphabet=st.characters(exclude_categories=()))
# Pieces of terminal sequences, mixed: the introducers 7-bit and 8-bit, their payloads and
# terminators, half sequences, line ends in the middle, bidi controls and marks, surrogates.
_PIECES = [
    "\x1b",
    "\x1b[",
    "\x1b]",
    "\x1bP",
    "\x1b_",
    "\x1b^",
    "\x1bX",
    "\x1b\\",
    "\x1b(",
    "\x1b#",
    "\x9b",
    "\x9d",
    "\x90",
    "\x98",
    "\x9e",
    "\x9f",
    "\x9c",
    "\x07",
    "\x08",
    "\x00",
    "\x7f",
    "\x85",
    "\r",
    "\n",
    "\r\n",
    "\t",
    "\x0b",
    "\x0c",
    "[",
    "]",
    ";",
    "?",
    "0",
    "1",
    "2",
    "8",
    "52",
    "c",
    "m",
    "H",
    "J",
    "K",
    "h",
    "l",
    "q",
    "\\",
    " ",
    "https://evil.example",
    "cm0gLXJmIH4K",
    "a",
    "é",
    "日本",
    "😀",
    "\u202e",
    "\u202a",
    "\u2066",
    "\u2069",
    "\u200e",
    "\u200f",
    "\u061c",
    "\u2028",
    "\u2029",
    "\ud800",
    "\udcff",
    "\ufeff",
    "\u200b",
]
sequence_soup = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)
hostile = st.one_of(any_text, sequence_soup, st.tuples(any_text, sequence_soup, any_text).map("".join))


@settings(max_examples=600, deadline=None)
@given(hostile)
def test_strip_control_output_holds_nothing_a_terminal_acts_on(text: str) -> None:
    out = strip_control(text)
    assert not any(_forbidden_in_text(c) for c in out), repr(out)
    assert strip_control(out) == out


@settings(max_examples=600, deadline=None)
@given(hostile)
def test_inert_line_output_is_one_line_without_any_control(text: str) -> None:
    out = inert_line(text)
    assert not any(_forbidden_in_line(c) for c in out), repr(out)
    assert inert_line(out) == out


@settings(max_examples=400, deadline=None)
@given(hostile)
def test_escape_control_shows_everything_and_lets_nothing_act(text: str) -> None:
    assert not any(_forbidden_in_text(c) for c in escape_control(text))
    assert not any(_forbidden_in_line(c) for c in escape_control(text, keep_lines=False))
    assert printable(text).isprintable()


def _strings(values) -> list[str]:
    return [text for value in values for text in (value if isinstance(value, list) else [value])]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(hostile, st.one_of(hostile, st.lists(hostile, max_size=3)), max_size=4))
def test_json_escapes_round_trip_and_hold_nothing_a_terminal_acts_on(value: dict) -> None:
    written = escape_json_controls(json.dumps(value, ensure_ascii=False, indent=2))
    assert not any(_forbidden_in_text(c) or c in BIDI_MARKS for c in written)
    # A high surrogate followed by a low one reads back as the one character the pair encodes, in
    # any JSON (json.dumps's own ASCII escapes too); such a string was never valid text.
    assume(not any(_SURROGATE_PAIR.search(text) for text in (*value, *_strings(value.values()))))
    assert json.loads(written) == value


@settings(max_examples=200, deadline=None)
@given(hostile, hostile, hostile)
def test_an_inbound_message_is_inert_whatever_it_was_built_from(line: str, body: str, name: str) -> None:
    message = InboundMessage(
        source=line,
        channel=line,
        external_id=line,
        sender_address=line,
        sender_name=name,
        received_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        subject=line,
        body_text=body,
        body_html_text=body,
        in_reply_to=line,
        references=(line, name),
        recipients=(name,),
        conversation_hint=line,
        thread_key=line,
        attachments=(InboundAttachment(filename=name, content_type=line, data=b""),),
        headers={line: name},
        parse_error=body,
    )
    for value in (
        message.source,
        message.channel,
        message.external_id,
        message.sender_address,
        message.sender_name,
        message.subject,
        message.in_reply_to,
        message.conversation_hint,
        message.thread_key,
        *message.references,
        *message.recipients,
        message.attachments[0].filename,
        message.attachments[0].content_type,
        *message.headers,
        *message.headers.values(),
    ):
        assert not any(_forbidden_in_line(c) for c in value), repr(value)
    for value in (message.body_text, message.body_html_text, message.parse_error):
        assert not any(_forbidden_in_text(c) for c in value), repr(value)


# --- examples of the same, and normal text left alone -------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Jane Doe", "Jane Doe"),
        ("Grüße 日本語 😀 עברית", "Grüße 日本語 😀 עברית"),
        ("two\nlines", "two lines"),
        ("a\r\n\r\nb", "a b"),
        ("tab\tseparated", "tab separated"),
        (f"{ESC}]52;c;cm0gLXJmIH4K{BEL}Mallory", "Mallory"),
        (f"{ESC}]8;;https://evil.example{ST}click{ESC}]8;;{ST}", "click"),
        (f"{ESC}]0;title{BEL}{ESC}[2J{ESC}[HEve", "Eve"),
        ("\u202eevil\u202c name", "evil name"),
        ("\u200fmarked\u200e", "marked"),
        ("line\u2028sep", "line sep"),
    ],
)
def test_inert_line(text: str, expected: str) -> None:
    assert inert_line(text) == expected


def test_inert_values_are_returned_as_they_are() -> None:
    value = "An ordinary subject — nothing to strip"
    assert inert_line(value) is value
    assert escape_control(value) is value


@pytest.mark.parametrize(
    ("text", "keep_lines", "expected"),
    [
        ("plain\ttext\nlines", True, "plain\ttext\nlines"),
        ("plain\ttext\nlines", False, "plain text lines"),
        (f"{ESC}]52;c;eA=={BEL}x", True, "\\x1b]52;c;eA==\\x07x"),
        ("\x9b31m\u202eabc", True, "\\x9b31m\\u202eabc"),
        ("C:\\Users\\me", True, "C:\\Users\\me"),
        ("a\udcffb", True, "a\\udcffb"),
    ],
)
def test_escape_control(text: str, keep_lines: bool, expected: str) -> None:
    assert escape_control(text, keep_lines=keep_lines) == expected


def test_printable_is_unambiguous() -> None:
    assert printable("a\\x1b") == "a\\\\x1b"
    assert printable(f"a{ESC}b\u00a0") == "a\\x1bb\\xa0"
    assert printable("ok name.json") == "ok name.json"


def test_json_is_unchanged_when_there_is_nothing_to_escape() -> None:
    text = json.dumps({"name": "Zoë 日本", "n": 1}, ensure_ascii=False)
    assert escape_json_controls(text) is text


def test_log_records_are_one_inert_line() -> None:
    formatter = InertLogFormatter("%(name)s: %(message)s")
    record = logging.LogRecord(
        "agentdesk.sync",
        logging.INFO,
        __file__,
        1,
        "rejected %s: %s",
        (f"x{ESC}]52;c;eA=={BEL}.json", "bad\nforged line \u202e"),
        None,
    )
    line = formatter.format(record)
    assert line == "agentdesk.sync: rejected x\\x1b]52;c;eA==\\x07.json: bad forged line \\u202e"
    try:
        raise ValueError(f"boom {ESC}[2J")
    except ValueError:
        record = logging.LogRecord("agentdesk", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert ESC not in formatter.format(record)
