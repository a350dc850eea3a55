"""How much machine mail the parser recognises: sisimai's set of real bounces and auto-replies,
per MTA family, on a fixed development/untouched split, and the non-machine mail it must leave
alone.

    .venv/bin/python bench/machine_mail_report.py [--misses]

The split is by a hash of the file name (even first byte of its SHA-256: development), fixed so
that the untouched half stays an honest estimate of mail the rules were not tuned on. The
negatives are read in place from ../shared/corpus/email when it is there (notmuch's list
threads are GPL and never copied), plus mailgen's generated customer mail.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration" / "email")]

from agentdesk.channels.email.mime import parse_message  # noqa: E402

SISIMAI = ROOT / "tests" / "data" / "email" / "sisimai-set-of-emails" / "maildir"
SHARED = ROOT.parent / "shared" / "corpus" / "email"
AT = datetime(2024, 1, 1, tzinfo=timezone.utc)
# Machine mail that the negative folders hold anyway: DSN, MDN and ARF samples of MIME
# libraries; sisimai's not/rb-issue-368, a real postmaster notice sisimai cannot parse; and in
# notmuch's ghost-root thread, Request Tracker's "AutoReply:" to a ticket (no list post).
KNOWN_MACHINE = re.compile(
    r"enmime/dsn/|delivery-status|bounce|arf|disposition-notification|"
    r"multipart-wo-boundary|rb-issue-368|ghost-root/1532672447\."
)
NEGATIVE_FOLDERS = (
    "notmuch-corpora",
    "talon",
    "github-email_reply_parser",
    "enmime",
    "mimekit",
    "postal-mime",
    "stalwart-mail-parser",
    "nodemailer-mailparser",
    "flanker",
)


def family(name: str) -> str:
    """lhost-postfix-01.eml -> lhost-postfix; rfc3464-12.eml -> rfc3464."""
    return re.sub(r"-\d+\.eml$", "", name)


def development(name: str) -> bool:
    return hashlib.sha256(name.encode()).digest()[0] % 2 == 0


def machine_samples() -> list[Path]:
    """sisimai's bounces (lhost-, rhost-, rfc3464-) and auto-replies (rfc3834-); the ARF
    feedback reports (arf-) are another kind of mail and left out."""
    return sorted(p for p in (SISIMAI / "bsd").glob("*.eml") if not p.name.startswith("arf-"))


def kind_of(raw: bytes) -> str:
    return parse_message(raw, source="report", received_at=AT).kind


def recognition() -> dict[str, dict[str, list[int]]]:
    """{family: {"dev": [recognised, total], "held": [...]}}"""
    table: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"dev": [0, 0], "held": [0, 0]})
    misses = []
    for path in machine_samples():
        part = "dev" if development(path.name) else "held"
        cell = table[family(path.name)][part]
        cell[1] += 1
        if kind_of(path.read_bytes()) in ("bounce", "auto_reply"):
            cell[0] += 1
        else:
            misses.append(f"{part}: {path.name}")
    recognition.misses = misses  # type: ignore[attr-defined]
    return table


def negatives() -> list[tuple[str, bytes]]:
    found = [(f"sisimai/not/{p.name}", p.read_bytes()) for p in sorted((SISIMAI / "not").glob("*.eml"))]
    if SHARED.is_dir():
        for folder in NEGATIVE_FOLDERS:
            for path in sorted((SHARED / folder).rglob("*")):
                if not path.is_file() or path.name in ("SOURCE.txt", "README.md"):
                    continue
                if path.suffix in (".js", ".json", ".md", ".py") or (
                    path.suffix == ".txt" and folder not in ("talon", "github-email_reply_parser")
                ):
                    continue
                found.append((str(path.relative_to(SHARED)), path.read_bytes()))
    import mailgen

    found += [(f"mailgen#{n}", raw) for n, (_at, raw) in enumerate(mailgen.corpus(300))]
    return [(name, raw) for name, raw in found if not KNOWN_MACHINE.search(name)]


def false_positives() -> list[str]:
    return [f"{name}: {kind}" for name, raw in negatives() if (kind := kind_of(raw)) != "message"]


def _rate(cell: list[int]) -> str:
    return f"{cell[0]}/{cell[1]}" if cell[1] else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--misses", action="store_true", help="list the machine mail not recognised")
    args = parser.parse_args()
    table = recognition()
    print(f"{'family':28} {'development':>12} {'untouched':>10} {'all':>8}")
    totals = {"dev": [0, 0], "held": [0, 0]}
    for name in sorted(table):
        row = table[name]
        for part in totals:
            totals[part][0] += row[part][0]
            totals[part][1] += row[part][1]
        both = [row["dev"][0] + row["held"][0], row["dev"][1] + row["held"][1]]
        print(f"{name:28} {_rate(row['dev']):>12} {_rate(row['held']):>10} {_rate(both):>8}")
    both = [totals["dev"][0] + totals["held"][0], totals["dev"][1] + totals["held"][1]]
    for label, cell in (("development", totals["dev"]), ("untouched", totals["held"]), ("all", both)):
        print(f"{label:12} {cell[0]}/{cell[1]} = {100 * cell[0] / cell[1]:.1f} %")
    if args.misses:
        for miss in recognition.misses:  # type: ignore[attr-defined]
            print("  not recognised:", miss)
    wrong = false_positives()
    print(f"negatives: {len(negatives())} messages, {len(wrong)} taken for machine mail")
    for line in wrong:
        print("  ", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
