"""Untrusted text made inert: escape sequences, HTML, attachment names."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agentdesk.sanitize import MAX_FILENAME_CHARS, html_to_text, safe_filename, strip_control

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
