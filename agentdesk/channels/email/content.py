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
_TRACE_HEADERS = frozenset(
    {
        b"received",
        b"return-path",
        b"delivered-to",
        b"x-original-to",
        b"envelope-to",
        b"x-envelope-to",
        b"x-delivered-to",
        b"x-rcpt-to",
        b"authentication-results",
        b"received-spf",
        b"x-spam-status",
        b"x-spam-score",
        b"x-spam-level",
        b"x-spam-flag",
        b"x-spam-checker-version",
        b"x-virus-scanned",
        b"x-original-arrival-time",
        b"arc-seal",
        b"arc-message-signature",
        b"arc-authentication-results",
        b"x-ms-exchange-organization-authas",
        b"x-gm-message-state",
        b"status",
        b"x-status",
        b"x-keywords",
        b"x-uid",
        b"lines",
        b"content-length",
    }
)
_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def email_content(raw: bytes) -> bytes:
    """A mail without its trace headers and with LF line ends: what "the same content" means."""
    normalised = raw.replace(b"\r\n", b"\n")
    head, separator, body = normalised.partition(b"\n\n")
    return _kept_head(head) + separator + body


def _kept_head(head: bytes) -> bytes:
    kept: list[bytes] = []
    dropping = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        match = _HEADER_LINE.match(line)
        dropping = match is not None and match.group(1).lower() in _TRACE_HEADERS
        if not dropping:
            kept.append(line)
    return b"\n".join(kept)


def email_content_hash(raw: bytes) -> str:
    """The content hash of a raw mail (ingest's `content_hash` for an email record with `raw`):
    the SHA-256 of `email_content(raw)`, its body hashed where it lies rather than copied."""
    normalised = raw.replace(b"\r\n", b"\n") if b"\r" in raw else raw
    end = normalised.find(b"\n\n")
    digest = hashlib.sha256(_kept_head(normalised if end < 0 else normalised[:end]))
    if end >= 0:
        digest.update(memoryview(normalised)[end:])
    return digest.hexdigest()


def _lf_lines(file, piece: int):
    """The lines of a binary file with CRLF made LF, each as one or more pieces of at most about
    `piece` bytes (only the last piece of a line ends with b"\\n"): bounded memory whatever the
    longest line."""
    carry = b""
    while True:
        chunk = file.readline(piece)
        if not chunk:
            if carry:
                yield carry
            return
        chunk = carry + chunk
        carry = b""
        if chunk.endswith(b"\r\n"):
            chunk = chunk[:-2] + b"\n"
        elif chunk.endswith(b"\r"):  # maybe the CR of a CRLF split across two reads
            chunk, carry = chunk[:-1], b"\r"
            if not chunk:
                continue
        yield chunk


def email_content_hash_of_file(file, *, piece: int = 1 << 20) -> str:
    """`email_content_hash` of the mail in a binary file, read from its current position in
    pieces: the same digest, without holding the mail (or any one of its lines) in memory."""
    digest = hashlib.sha256()
    lines = _lf_lines(file, piece)
    # The head: as email_content's "\n".join of the kept lines, until the first empty line that
    # follows a line end (the first b"\n\n" of the normalised mail).
    first_kept = True
    at_line_start = True
    dropping = False
    keep = True
    count = 0
    for chunk in lines:
        if at_line_start:
            count += 1
            if chunk == b"\n" and count >= 2:
                digest.update(b"\n\n")
                # The body, a block at a time (`lines` holds nothing back after a line end).
                carry = b""
                for block in iter(lambda: file.read(piece), b""):
                    block = carry + block
                    carry = b"\r" if block.endswith(b"\r") else b""
                    digest.update(block[: len(block) - len(carry)].replace(b"\r\n", b"\n"))
                digest.update(carry)
                return digest.hexdigest()
            if chunk[:1] in (b" ", b"\t"):
                keep = not dropping
            else:
                match = _HEADER_LINE.match(chunk)
                dropping = match is not None and match.group(1).lower() in _TRACE_HEADERS
                keep = not dropping
            if keep:
                if not first_kept:
                    digest.update(b"\n")
                first_kept = False
        ended = chunk.endswith(b"\n")
        if keep:
            digest.update(chunk[:-1] if ended else chunk)
        at_line_start = ended
    if at_line_start and count:  # a mail without a body ends with b"\n": split() gave a last, empty line
        if not first_kept:
            digest.update(b"\n")
    return digest.hexdigest()
