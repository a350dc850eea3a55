"""Big hostile mail and a process tree's peak memory: shared by tests/hostile/test_big_mail.py and
bench/bench_big_message.py.

Each builder returns one RFC 5322 message of about `size` bytes, of a shape a sender can choose:
a large attachment beside a large HTML part, one huge text body, thousands of parts.
"""

from __future__ import annotations

import base64
import os
import random
import subprocess
import threading
import time
from pathlib import Path

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


# --- peak memory of a process tree -----------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as file:
                found.extend(int(child) for child in file.read().split())
    except OSError:
        pass
    return found


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pid: int) -> int:
    """The resident memory of `pid` and every process below it, now (KiB)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += _rss_kib(current)
        stack.extend(_children(current))
    return total


# A child's ru_maxrss counts the resident memory of the process that forked it, as it was at the
# fork (Linux carries the old memory's high-water mark over exec): a bench that built a 40 MB
# message would be measured with it. So the command is started by this small launcher, whose
# own few MiB are all the child inherits; it reports the child's wait4 figure.
_LAUNCHER = """
import os, sys
command, report = sys.argv[2:], sys.argv[1]
pid = os.fork()
if pid == 0:
    os.execvp(command[0], command)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as file:
    file.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run_measured(
    command: list[str], *, cwd: Path | None = None, env: dict | None = None, every: float = 0.005
) -> tuple[int, str, int, int, float]:
    """Run `command`; (exit status, stderr, the process's own peak RSS from wait4 in KiB, the
    peak of its whole tree's summed RSS — parser processes included — sampled every `every`
    seconds, in KiB; seconds)."""
    import sys
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        started = time.perf_counter()
        launcher = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, report.name, *command],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], sum(tree_rss_kib(child) for child in _children(launcher.pid)))
                time.sleep(every)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stderr = launcher.stderr.read().decode("utf-8", "replace")
        launcher.wait()
        done.set()
        sampler.join()
        launcher.stderr.close()
        elapsed = time.perf_counter() - started
        status, maxrss = (int(field) for field in (report.read().split() or ["-1", "0"]))
    return status, stderr, maxrss, peak[0], elapsed
