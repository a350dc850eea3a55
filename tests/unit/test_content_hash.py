"""`email_content_hash` is the SHA-256 of `email_content`, though it hashes the body in place.

Over the test mail, the shared corpus, their CRLF forms and mail cut at every awkward place (no
body, no head, a blank line first, lone CRs, trace fields first, last and folded), the digest must
be the one of the content `email_content` builds: ingest dedupes by it across old and new records.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from agentdesk.channels.email.content import email_content, email_content_hash

DATA = Path(__file__).resolve().parents[1] / "data" / "email"
CORPUS = Path("/work/shared/corpus/email")

AWKWARD = [
    b"",
    b"\n",
    b"\n\n",
    b"\r\n\r\n",
    b"\nA: b\n\nbody",
    b"Received: x\n\nbody",
    b"A: b\nReceived: x",
    b"Received: x\nReturn-Path: <>",
    b"Received: x\n y\n\tz\nA: b\n c\n\nbody\n\nmore",
    b"A: b\r\nRECEIVED : x\r\n\r\nbody\r\n",
    b"A: b\rReceived: x\r\rbody",
    b"no header at all",
    b" continuation first\nReceived: x\n\n",
    b"Subject: hi\n\n\n\nbody with blank lines first",
]


def _same(raw: bytes) -> None:
    assert email_content_hash(raw) == hashlib.sha256(email_content(raw)).hexdigest(), raw[:200]


def test_awkward_mail_hashes_its_content() -> None:
    for raw in AWKWARD:
        _same(raw)
        _same(raw.replace(b"\n", b"\r\n"))


def test_the_mail_and_its_cuts_hash_their_content() -> None:
    files = sorted(p for p in DATA.rglob("*") if p.is_file())
    if CORPUS.is_dir():
        files += sorted(p for p in CORPUS.rglob("*") if p.is_file())
    rng = random.Random(3)
    for path in files:
        raw = path.read_bytes()
        _same(raw)
        _same(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        _same(raw[: rng.randrange(len(raw) + 1)])
