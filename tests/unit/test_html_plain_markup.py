"""`html_to_text` reads plain markup itself and gives its extractor exactly html.parser's events.

`sanitize._feed_plain_markup` tokenises documents whose every "<" opens a plain tag; for those it
must call the extractor's handlers with the very arguments, in the very order, html.parser does
(and the text must be the same); for any other document it must decline without calling one.
Checked over the HTML parts of the test mail and the shared corpus and over thousands of
generated documents mixing plain tags with the markup it declines.
"""

from __future__ import annotations

import email
import random
from email.policy import compat32
from pathlib import Path

import pytest

from agentdesk.sanitize import _WHITESPACE, _collapse_whitespace, _feed_plain_markup, _TextExtractor, html_to_text

DATA = Path(__file__).resolve().parents[1] / "data" / "email"
CORPUS = Path("/work/shared/corpus/email")


class _Recording(_TextExtractor):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple] = []

    def handle_starttag(self, tag, attrs):
        self.events.append(("start", tag, list(attrs)))
        super().handle_starttag(tag, attrs)

    def handle_startendtag(self, tag, attrs):
        self.events.append(("startend", tag, list(attrs)))
        super().handle_startendtag(tag, attrs)

    def handle_endtag(self, tag):
        self.events.append(("end", tag))
        super().handle_endtag(tag)

    def handle_data(self, data):
        self.events.append(("data", data))
        super().handle_data(data)


def _html_parser_events(html: str) -> _Recording:
    recording = _Recording()
    recording.feed(html)
    recording.close()
    return recording


def check(html: str) -> bool:
    """Whether the plain reading took `html`; asserts it matches html.parser when it did."""
    plain = _Recording()
    if not _feed_plain_markup(plain, html):
        assert plain.events == [] and plain.out == []
        return False
    reference = _html_parser_events(html)
    assert plain.events == reference.events, html[:300]
    assert plain.out == reference.out
    return True


def _html_documents() -> list[str]:
    files = [p for p in DATA.rglob("*") if p.is_file()]
    if CORPUS.is_dir():
        files += [p for p in CORPUS.rglob("*") if p.is_file()]
    documents = []
    for path in sorted(files):
        for part in email.message_from_bytes(path.read_bytes(), policy=compat32).walk():
            try:
                if part.get_content_type() == "text/html":
                    documents.append((part.get_payload(decode=True) or b"").decode("utf-8", "replace"))
            except Exception:
                continue
    return documents


def test_html_of_the_mail_gives_html_parsers_events_or_is_declined() -> None:
    documents = _html_documents()
    taken = sum(check(html) for html in documents)
    assert taken >= 1  # the test mail's plain documents are read without html.parser
    assert len(documents) > 20


PIECES = [
    "<p>",
    "</p>",
    "<P>",
    "</DIV>",
    "<br>",
    "<br/>",
    "<br />",
    "<p/>",
    '<div class="x" />',
    '<a href="https://example.com/"/>',
    "<hr>",
    "<li>",
    "<ul>",
    "</ul>",
    "<ol>",
    "</ol>",
    "<td>",
    "<tr>",
    "</td>",
    "<blockquote>",
    "</blockquote>",
    "<pre>",
    "</pre>",
    '<a href="https://example.com/a?b=1&amp;c=2">',
    '<A HREF="mailto:ann@example.com" title="x">',
    "</a>",
    '<img alt="logo &amp; name" src="x.png"/>',
    '<img alt="" src="x.png">',
    '<a href="">',
    '<a\nhref="#top">',
    "<head>",
    "</head>",
    "<title>",
    "<body>",
    "text",
    " more  text ",
    "\n",
    "\t",
    "&amp;",
    "&lt;b&gt;",
    "&#233;",
    "&nbsp;",
    "&bogus;",
    "&",
    "\xa0",
    # markup the plain reading declines: html.parser reads these documents
    "<script>if (a < b) {}</script>",
    "<style>p{}</style>",
    "<!-- comment -->",
    "<!DOCTYPE html>",
    "a < b",
    "<o:p>",
    "<p class=x>",
    "<p class='x'>",
    '<a href="x"title="y">',
    "</p >",
    "<br/ >",
    "<",
    "<?xml?>",
]


@pytest.mark.parametrize("seed", range(4))
def test_generated_documents_give_html_parsers_events_or_are_declined(seed: int) -> None:
    rng = random.Random(seed)
    taken = 0
    for _ in range(1_000):
        pieces = rng.choices(PIECES[:-13] if rng.random() < 0.6 else PIECES, k=rng.randint(1, 30))
        taken += check("".join(pieces))
    assert taken > 400


def test_plain_and_declined_documents_read_the_same_way() -> None:
    plain = '<p>Hello <a href="https://x.example/">the site</a></p><ul><li>one</li><li>two</li></ul>'
    assert check(plain)
    assert not check(plain + "<!-- a comment -->")
    assert html_to_text(plain) == html_to_text(plain + "<!-- a comment -->")
    assert html_to_text(plain) == "Hello the site (https://x.example/)\n\n- one\n- two"


def test_collapsing_whitespace_gives_what_the_substitution_gives() -> None:
    rng = random.Random(7)
    alphabet = [" ", "  ", "\t", "\n", "\r", "\f", "\v", "\xa0", "\u200b", "a", "word", "é", "\u2028", "\u3000"]
    texts = ["", " ", "a b c", "a  b", " lead", "trail ", "\xa0", "a\u200bb"]
    texts += ["".join(rng.choices(alphabet, k=rng.randint(1, 12))) for _ in range(5_000)]
    for text in texts:
        assert _collapse_whitespace(text) == _WHITESPACE.sub(" ", text), repr(text)
