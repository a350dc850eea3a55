"""Realistic test mail: customers writing in, replying to each other, HTML and attachments.

Deterministic for a seed, so tests and the benchmark can predict exact counts. Shared by the
integration tests and `bench/bench_imap.py`.
"""

from __future__ import annotations

import base64
import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

FIRST = ["Greta", "Jonas", "Amira", "Kenji", "Lucía", "Olu", "Priya", "Sven", "Chloé", "Tomasz", "Mei", "Ravi"]
LAST = ["Lindqvist", "Okafor", "Haddad", "Tanaka", "García", "Adeyemi", "Nair", "Berg", "Dubois", "Nowak"]
DOMAINS = ["velo.example", "bakery.example", "mail.example", "corp.example", "uni.example"]
TOPICS = [
    "Invoice {n} charged twice",
    "Cannot log in since the update",
    "Parcel {n} arrived damaged",
    "Refund for order {n}",
    "Question about my subscription",
    "Spokes keep breaking",
    "Wrong size delivered (order {n})",
    "Password reset link expired",
    "Change of address",
    "Ünïcode sübject with accents {n}",
]
PARAGRAPH = (
    "Hello support team,\n\nI am writing about {topic}. It happened again this morning and I would "
    "like to know what you can do about it. My customer number is {n} and I have been with you "
    "for several years.\n\nI tried the steps from your help page, restarted everything twice and "
    "waited a day, but nothing changed. Could you please look into it and let me know?\n\n"
)


def _address(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = f"{first}.{last}".lower().encode("ascii", "ignore").decode() + str(rng.randrange(200))
    return f"{first} {last}", f"{local}@{rng.choice(DOMAINS)}"


def _encode_name(name: str) -> str:
    if name.isascii():
        return f'"{name}"'
    return "=?utf-8?b?" + base64.b64encode(name.encode()).decode() + "?="


def _encode_subject(subject: str) -> str:
    if subject.isascii():
        return subject
    return "=?utf-8?b?" + base64.b64encode(subject.encode()).decode() + "?="


def message(
    *,
    n: int,
    sender: tuple[str, str],
    to: str,
    subject: str,
    body: str,
    at: datetime,
    message_id: str,
    in_reply_to: str = "",
    html: bool = False,
    attachment: bytes = b"",
    extra_headers: str = "",
) -> bytes:
    name, address = sender
    headers = (
        f"Return-Path: <{address}>\r\n"
        f"Received: from mx.example (mx.example [192.0.2.{n % 250}])\r\n\tby imap.example with ESMTPS id {n:08x};"
        f" {format_datetime(at)}\r\n"
        f"From: {_encode_name(name)} <{address}>\r\n"
        f"To: {to}\r\n"
        f"Subject: {_encode_subject(subject)}\r\n"
        f"Date: {format_datetime(at)}\r\n"
        f"Message-ID: <{message_id}>\r\n"
    )
    if in_reply_to:
        headers += f"In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n"
    headers += extra_headers + "MIME-Version: 1.0\r\n"
    text = base64.encodebytes(body.encode()).decode().replace("\n", "\r\n")
    if not html and not attachment:
        return (
            headers + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + text
        ).encode()
    boundary = f"=_b{n:08d}"
    parts = [
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{text}"
    ]
    if html:
        markup = (
            "<html><body>"
            + "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
            + ('<p>See <a href="https://velo.example/orders">my orders</a>.</p></body></html>')
        )
        encoded = base64.encodebytes(markup.encode()).decode().replace("\n", "\r\n")
        parts.append(
            f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}"
        )
    if attachment:
        encoded = base64.encodebytes(attachment).decode().replace("\n", "\r\n")
        parts.append(
            f'--{boundary}\r\nContent-Type: application/pdf; name="invoice-{n}.pdf"\r\n'
            f'Content-Disposition: attachment; filename="invoice-{n}.pdf"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}"
        )
    kind = "mixed" if attachment else "alternative"
    return (
        headers
        + f'Content-Type: multipart/{kind}; boundary="{boundary}"\r\n\r\n'
        + "\r\n".join(parts)
        + f"\r\n--{boundary}--\r\n"
    ).encode()


def corpus(
    count: int,
    *,
    seed: int = 7,
    to: str = "support@example.com",
    start: datetime = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc),
) -> list[tuple[datetime, bytes]]:
    """`count` messages as (internal date, raw): ~60% new threads, ~40% replies within a thread,
    a quarter with an HTML alternative, one in twenty with a small PDF attachment."""
    rng = random.Random(seed)
    messages: list[tuple[datetime, bytes]] = []
    threads: list[tuple[tuple[str, str], str, str]] = []  # (sender, subject, last message id)
    at = start
    for n in range(count):
        at += timedelta(seconds=rng.randrange(20, 400))
        message_id = f"m{n}.{seed}@mail.example"
        if threads and rng.random() < 0.4:
            index = rng.randrange(len(threads))
            sender, subject, parent = threads[index]
            threads[index] = (sender, subject, message_id)
            subject = "Re: " + subject
        else:
            sender = _address(rng)
            subject = rng.choice(TOPICS).format(n=rng.randrange(10_000, 99_999))
            parent = ""
            threads.append((sender, subject, message_id))
        body = PARAGRAPH.format(topic=subject.lower(), n=n) * rng.randrange(1, 4) + f"Kind regards,\n{sender[0]}\n"
        attachment = (
            bytes(rng.randrange(256) for _ in range(rng.randrange(2_000, 20_000))) if rng.random() < 0.05 else b""
        )
        messages.append(
            (
                at,
                message(
                    n=n,
                    sender=sender,
                    to=to,
                    subject=subject,
                    body=body,
                    at=at,
                    message_id=message_id,
                    in_reply_to=parent,
                    html=rng.random() < 0.25,
                    attachment=attachment,
                ),
            )
        )
    return messages
