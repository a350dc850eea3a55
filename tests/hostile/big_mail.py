"""Big hostile mail: shared by tests/hostile/test_big_mail.py and
bench/bench_big_message.py.

Each builder returns one RFC 5322 message of about `size` bytes, of a shape a sender can choose:
a large attachment beside a large HTML part, one huge text body, thousands of parts.
"""

from __future__ import annotations

import base64
import random

MB = 1_000_000


def _head(n: int, subject: str, content_type: str, extra: str = "") -> str:
    return (
        f"From: Big Sender {n} <big{n}@sender.example>\r\n"
        "To: support@example.com\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 05 Jan 2026 08:00:00 +0000\r\n"
        f"Message-ID: <big{n}@sender.example>\r\n"
        "MIME-Version: 1.0\r\n"
        f"{extra}Content-Type: {content_type}\r\n"
    )


def _base64_lines(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def attachment_and_html(size: int = 40 * MB, *, n: int = 1, subject: str = "A big attachment") -> bytes:
    """multipart/mixed: a short text part, an HTML part of about an eighth of `size` and a
    base64 attachment filling the rest (a 40 MB message carries a ~26 MB file)."""
    rng = random.Random(n)
    boundary = f"=_big{n}"
    html_size = size // 8
    paragraph = "<p>Dear support, " + "the invoice lines follow. " * 20 + "</p>\r\n"
    html = ("<html><body>" + paragraph * (html_size // len(paragraph) + 1))[:html_size] + "</body></html>"
    attachment = rng.randbytes(max(0, (size - html_size - 2_000) * 3 // 4 * 76 // 78))
    return (
        _head(n, subject, f'multipart/mixed; boundary="{boundary}"').encode()
        + b"\r\n"
        + f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease see the attached file.\r\n".encode()
        + f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".encode()
        + html.encode()
        + b"\r\n"
        + f'--{boundary}\r\nContent-Type: application/octet-stream; name="scan.bin"\r\n'
        f'Content-Disposition: attachment; filename="scan.bin"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n".encode()
        + _base64_lines(attachment)
        + f"--{boundary}--\r\n".encode()
    )


def text_body(size: int = 40 * MB, *, n: int = 2, subject: str = "A very long letter") -> bytes:
    """One text/plain body of `size` bytes (lines of 78 characters)."""
    line = b"All work and no play makes a very long support request indeed, line after line.\r\n"
    head = _head(n, subject, "text/plain; charset=utf-8").encode() + b"\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return head + body[: size - len(head)]


def many_parts(size: int = 40 * MB, *, n: int = 3, parts: int = 4_000, subject: str = "Many small files") -> bytes:
    """multipart/mixed of `parts` small base64 attachments totalling about `size`."""
    rng = random.Random(n)
    boundary = f"=_many{n}"
    each = max(1, size * 3 // 4 // parts * 76 // 78)
    pieces = [_head(n, subject, f'multipart/mixed; boundary="{boundary}"').encode() + b"\r\n"]
    pieces.append(f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nThe files, one by one.\r\n".encode())
    for index in range(parts):
        pieces.append(
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            f'Content-Disposition: attachment; filename="file-{index}.bin"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n".encode()
            + _base64_lines(rng.randbytes(each))
        )
    pieces.append(f"--{boundary}--\r\n".encode())
    return b"".join(pieces)


SHAPES = {"attachment+html": attachment_and_html, "text": text_body, "many-parts": many_parts}
