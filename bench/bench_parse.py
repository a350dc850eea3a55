"""What a sync's parser process spends on mail: `parse_job.parse_chunk` over a kept Maildir, beside
the stdlib's bare `email.message_from_bytes` over the same messages (the anchor), in one process.

    PYTHONPATH=CHECKOUT .venv/bin/python bench/bench_parse.py --maildir KEPT/mail/user1/Maildir \
        --messages 30000 --repeat 5

A component figure: the mail is read into memory first (UID order, chunks of 250 as the sync's
parser processes get them), then the two are timed alternately, CPU time of this process, and the
medians printed. For instruction counts run it under callgrind with `--only parse` (or `--only
anchor`) and subtract `--only none` (imports and reading the mail):

    PYTHONHASHSEED=0 valgrind --tool=callgrind --cache-sim=no --branch-sim=no \
        .venv/bin/python bench/bench_parse.py --maildir DIR --messages 3000 --only parse

`--line-ends lf|crlf`: every line end made LF or CRLF (the kept Maildir's files have CRLF, as
IMAP serves mail to the sync).

`--digest FILE` instead writes one line per message (its file name and a SHA-256 of every field of
its `InboundMessage`, attachments' bytes included) for the Maildir and for any `--files` given
(files or folders of single messages), each parsed with LF and with CRLF line ends (and a file
also as it is):
run it on two checkouts and compare the files to prove they store the same data.
"""

from __future__ import annotations

import argparse
import dataclasses
import email
import hashlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.policy import compat32
from pathlib import Path

CHUNK = 250  # messages a parser process gets at a time (the email source's chunk)
NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def _uid_order(maildir: Path) -> list[Path]:
    """The mailbox's files in UID order, from Dovecot's uidlist ("<uid> <fields> :<name>")."""
    uidlist = maildir / "dovecot-uidlist"
    files = {path.name.split(":2,")[0]: path for path in (maildir / "cur").iterdir()}
    files.update({path.name: path for path in (maildir / "new").iterdir()})
    if not uidlist.exists():
        return sorted(files.values())
    names = [line.rsplit(":", 1)[1] for line in uidlist.read_text().splitlines()[1:]]
    return [files[name] for name in names if name in files]


def _items(paths: list[Path], line_ends: str = "kept") -> list[tuple[int, datetime, bytes]]:
    return [
        (uid, datetime.fromtimestamp(int(path.name.split(".")[0]), UTC), _with_line_ends(path.read_bytes(), line_ends))
        for uid, path in enumerate(paths, 1)
    ]


def _with_line_ends(raw: bytes, line_ends: str) -> bytes:
    """`raw` as it is ("kept"), or with every line end LF ("lf") or CRLF ("crlf")."""
    if line_ends == "kept":
        return raw
    lf = raw.replace(b"\r\n", b"\n")
    return lf if line_ends == "lf" else lf.replace(b"\n", b"\r\n")


def _chunks(items: list) -> Iterator[list]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def parse_all(items: list[tuple[int, datetime, bytes]]) -> None:
    from agentdesk.sync.sources.parse_job import parse_chunk

    for chunk in _chunks(items):
        parse_chunk(chunk, "support", NOW, None)


def anchor_all(items: list[tuple[int, datetime, bytes]]) -> None:
    for _, _, raw in items:
        email.message_from_bytes(raw, policy=compat32)


def _cpu(run, items) -> float:
    started = time.process_time()
    run(items)
    return time.process_time() - started


def _fingerprint(message) -> str:
    fields = []
    for field in dataclasses.fields(message):
        value = getattr(message, field.name)
        if field.name == "attachments":
            value = [
                (type(a).__name__, *(getattr(a, f.name) for f in dataclasses.fields(a) if f.name != "data"))
                + (hashlib.sha256(a.data).hexdigest(),)
                for a in value
            ]
        elif field.name == "headers":
            value = sorted(value.items())
        fields.append((field.name, value))
    return hashlib.sha256(repr(fields).encode("utf-8", "surrogatepass")).hexdigest()


def _message_files(roots: list[str]) -> list[Path]:
    found: list[Path] = []
    for root in map(Path, roots):
        if root.is_file():
            found.append(root)
        else:
            found += sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in (".md", ".json", ".js"))
    return found


def write_digest(out: Path, mail: list[Path], files: list[Path]) -> int:
    from agentdesk.channels.email.mime import parse_fetched

    lines = []
    for line_ends in ("lf", "crlf"):
        for chunk in _chunks(_items(mail, line_ends)):
            names = {uid: f"{mail[uid - 1].name} ({line_ends})" for uid, _, _ in chunk}
            lines += [f"{names[uid]} {_fingerprint(m)}" for uid, m in parse_fetched(chunk, "support")]
    for path in files:
        raw = path.read_bytes()
        for line_ends in ("kept", "lf", "crlf"):
            variant = _with_line_ends(raw, line_ends)
            name = f"{path} ({line_ends})"
            ((_, message),) = parse_fetched([(1, NOW, variant)], "support")
            lines.append(f"{name} {_fingerprint(message)}")
    out.write_text("\n".join(lines) + "\n")
    return len(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maildir", type=Path, required=True, help="a Maildir (cur/, new/, Dovecot's uidlist)")
    parser.add_argument("--messages", type=int, default=30_000, help="the first N messages in UID order")
    parser.add_argument("--repeat", type=int, default=5, help="alternating rounds of the two")
    parser.add_argument(
        "--line-ends",
        choices=("kept", "lf", "crlf"),
        default="kept",
        help="the files' own line ends (the kept Maildir's are CRLF, as IMAP serves mail), or all LF, or all CRLF",
    )
    parser.add_argument("--only", choices=("parse", "anchor", "none"), help="one pass of one side (for callgrind)")
    parser.add_argument("--digest", type=Path, help="write each message's field digest here instead of timing")
    parser.add_argument("--files", nargs="*", default=[], help="with --digest: more mail files or folders")
    args = parser.parse_args()
    paths = _uid_order(args.maildir)[: args.messages]
    if args.digest:
        count = write_digest(args.digest, paths, _message_files(args.files))
        print(f"{count} digests written to {args.digest}")
        return 0
    items = _items(paths, args.line_ends)
    import agentdesk.sync.sources.parse_job  # noqa: F401  (imports outside the timed part)

    if args.only:
        {"parse": parse_all, "anchor": anchor_all, "none": lambda items: None}[args.only](items)
        return 0
    times: dict[str, list[float]] = {"parse_chunk": [], "message_from_bytes": []}
    for _ in range(args.repeat):
        times["parse_chunk"].append(_cpu(parse_all, items))
        times["message_from_bytes"].append(_cpu(anchor_all, items))
    load = os.getloadavg()[0]
    print(f"{len(items)} messages, {args.repeat} alternating rounds, load average {load:.2f} at the end")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:20s} CPU median {median:6.2f} s, {median / len(items) * 1e6:6.1f} µs a message")
    ratio = statistics.median(times["parse_chunk"]) / statistics.median(times["message_from_bytes"])
    print(f"parse_chunk / message_from_bytes: {ratio:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
