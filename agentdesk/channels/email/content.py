"""What "the same mail" means: the content hash ingest dedupes by (docs/email.md, "Exactly once").

Its own small module so both sides can use it cheaply: the sync's parser processes compute the
hash next to the parse (the CPU is spent on the second core), and ingest computes it for records
that arrive without one.
"""

from __future__ import annotations

import hashlib
import re

# Header fields a relay or the receiving mailbox adds: two deliveries of one message differ in
# these and nothing else.
_TRACE_HEADERS = frozenset({
    b"received", b"return-path", b"delivered-to", b"x-original-to", b"envelope-to", b"x-envelope-to",
    b"x-delivered-to", b"x-rcpt-to", b"authentication-results", b"received-spf", b"x-spam-status",
    b"x-spam-score", b"x-spam-level", b"x-spam-flag", b"x-spam-checker-version", b"x-virus-scanned",
    b"x-original-arrival-time", b"arc-seal", b"arc-message-signature", b"arc-authentication-results",
    b"x-ms-exchange-organization-authas", b"x-gm-message-state", b"status", b"x-status", b"x-keywords",
    b"x-uid", b"lines", b"content-length",
})
_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def email_content(raw: bytes) -> bytes:
    """A mail without its trace headers and with LF line ends: what "the same content" means."""
    normalised = raw.replace(b"\r\n", b"\n")
    head, separator, body = normalised.partition(b"\n\n")
    kept: list[bytes] = []
    dropping = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        match = _HEADER_LINE.match(line)
        dropping = bool(match) and match.group(1).lower() in _TRACE_HEADERS
        if not dropping:
            kept.append(line)
    return b"\n".join(kept) + separator + body



def email_content_hash(raw: bytes) -> str:
    """The content hash of a raw mail (ingest's `content_hash` for an email record with `raw`)."""
    return hashlib.sha256(email_content(raw)).hexdigest()
