"""The parser's own reads of a part's fields give what the stdlib's `Message` methods give.

`mime_tree.content_type` / `content_charset` (read once per distinct Content-Type value) and
`bodies._disposition` / `_filename` (read from the header index) stand in for
`Message.get_content_type`, `get_content_charset`, `get("Content-Disposition")` and the header
scan: over every part of the test mail and the shared corpus, and over fields built to be awkward
(RFC 2231 charsets, 8-bit bytes, no type, two Content-Type fields, a digest's default type), they
must agree exactly. And `html_to_text`, which skips html.parser's line counting, gives the text it
gives with it.
"""

from __future__ import annotations

import _markupbase
import email
from email.message import Message
from email.policy import compat32
from pathlib import Path

import pytest

from agentdesk.channels.email.bodies import _disposition, _filename
from agentdesk.channels.email.decoding import _first_token
from agentdesk.channels.email.mime_tree import _safe, content_charset, content_type
from agentdesk.sanitize import _TextExtractor, html_to_text

DATA = Path(__file__).resolve().parents[1] / "data" / "email"
CORPUS = Path("/work/shared/corpus/email")
MAIL = sorted(p for p in DATA.rglob("*") if p.is_file() and p.suffix not in (".md", ".txt", ".json", ".js"))
if CORPUS.is_dir():
    MAIL += sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix not in (".md", ".json", ".js"))


def _parts(raw: bytes) -> list[Message]:
    return list(email.message_from_bytes(raw, policy=compat32).walk())


def _stdlib_reads(part: Message) -> tuple:
    disposition = part.get("Content-Disposition")
    return (
        _safe(part.get_content_type, "raised"),
        _safe(part.get_content_charset, "raised"),
        "" if disposition is None else _first_token(str(disposition)),
    )


def _our_reads(part: Message) -> tuple:
    return (
        _safe(lambda: content_type(part), "raised"),
        _safe(lambda: content_charset(part), "raised"),
        _disposition(part),
    )


AWKWARD = [
    b"Content-Type: text/plain; charset*=utf-8''UTF-8\n\nx",
    b"Content-Type: text/plain; charset*=iso-8859-1'en'%E9t%E9\n\nx",
    b'Content-Type: TEXT/Plain; CHARSET="ISO-8859-1"; format=flowed\n\nx',
    b"Content-Type: text/plain; charset=\xc3\xa9\n\nx",
    b"Content-Type: text\xc3\xa9/plain\nContent-Disposition: attach\xc3\xa9ment; filename=a\n\nx",
    b"Content-Type: text\n\nx",
    b"Content-Type: \n\nx",
    b"Content-Type: text/html\nContent-Type: text/plain; charset=koi8-r\n\nx",
    b"Content-Disposition: ATTACHMENT ; filename=a.txt\n\nx",
    b"Content-Disposition: \n\nx",
    b"Content-Type: text/plain; charset=\n\nx",
    b"Content-Type: text/plain; charset\n\nx",
    b'Content-Type: text/plain;; ;charset="utf\\"8"\n\nx',
    b"Subject: no type at all\n\nx",
    b'Content-Type: multipart/digest; boundary="d"\n\n--d\n\nFrom: a@b\n\nbody\n--d--\n',
]


@pytest.mark.parametrize("raw", AWKWARD)
def test_awkward_fields_read_as_the_stdlib_reads_them(raw: bytes) -> None:
    for part in _parts(raw):
        assert _our_reads(part) == _stdlib_reads(part)


def test_every_part_of_the_mail_reads_as_the_stdlib_reads_it() -> None:
    parts = 0
    for path in MAIL:
        for part in _parts(path.read_bytes()):
            assert _our_reads(part) == _stdlib_reads(part), path
            parts += 1
    assert parts > len(MAIL)


def _stdlib_filename_scan(part: Message) -> bool:
    raw = [(k, v) for k, v in part.raw_items() if str(k).lower() in ("content-disposition", "content-type")]
    return any("name" in str(v).lower() for _, v in raw)


def test_a_part_without_a_name_parameter_has_no_filename_and_one_with_keeps_it() -> None:
    named = 0
    for path in MAIL:
        for part in _parts(path.read_bytes()):
            name = _filename(part)
            if not _stdlib_filename_scan(part):
                assert name == ""
            named += bool(name)
    assert named > 50


class _CountingLines(_TextExtractor):
    """The extractor with html.parser's own position tracking put back."""

    updatepos = _markupbase.ParserBase.updatepos


def test_html_text_is_the_same_without_line_counting() -> None:
    assert _CountingLines.updatepos is not _TextExtractor.updatepos
    documents = 0
    for path in MAIL:
        for part in _parts(path.read_bytes()):
            if _safe(part.get_content_type) != "text/html":
                continue
            html = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
            counting = _CountingLines()
            counting.feed(html)
            counting.close()
            plain = _TextExtractor()
            plain.feed(html)
            plain.close()
            assert plain.out == counting.out, path
            assert html_to_text(html) is not None
            documents += 1
    assert documents > 20
