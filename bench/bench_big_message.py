"""Peak memory of `agentdesk sync --once` on a mailbox holding one 40 MB message.

    .venv/bin/python bench/bench_big_message.py [--messages 500] [--size-mb 40] [--shape NAME]…

Starts a throwaway Dovecot (tests/integration/email/servers.py) and fills one mailbox per run:
the anchor holds N ordinary messages (tests/integration/email/mailgen.py); each other mailbox
holds the same N and one big message of a shape a sender can choose (tests/hostile/big_mail.py:
a large attachment beside a large HTML part, one huge text body, thousands of parts). For each,
`python -m agentdesk --config … sync --once` runs as a fresh process and the bench prints its
wall and CPU time, the peak RSS of each of its processes (VmHWM: the storing process, each
parser process; tests/process_memory.py) and the peak of the whole process tree's summed RSS,
sampled every 5 ms.

With N ≥ 400 the sync uses its parser processes, as a first sync of a real mailbox does.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hostile.big_mail import MB, SHAPES  # noqa: E402
from integration.email import mailgen  # noqa: E402
from integration.email.servers import Dovecot, mailbox_config  # noqa: E402
from process_memory import run_measured  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500, help="ordinary messages in every mailbox")
    parser.add_argument("--size-mb", type=float, default=40, help="size of the big message (MB)")
    parser.add_argument(
        "--shape", action="append", choices=sorted(SHAPES), help="shapes of big message to run (default: all)"
    )
    args = parser.parse_args()
    shapes = args.shape or list(SHAPES)

    work = Path(tempfile.mkdtemp(prefix="agentdesk-bench-big-"))
    dovecot = Dovecot()
    dovecot.start()
    try:
        ordinary = mailgen.corpus(args.messages, seed=13)
        print(
            f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
            f"{args.messages} ordinary messages ({sum(len(r) for _, r in ordinary) / MB:.1f} MB) in every mailbox"
        )
        runs = [("anchor (no big message)", None)] + [(f"+ one {args.size_mb:g} MB {shape}", shape) for shape in shapes]
        for label, shape in runs:
            user = dovecot.add_user()
            mail = list(ordinary)
            size = 0
            if shape is not None:
                big = SHAPES[shape](int(args.size_mb * MB))
                size = len(big)
                mail.insert(len(mail) // 2, (mail[len(mail) // 2][0], big))
                del big
            dovecot.write_maildir(user, mail)
            del mail
            dovecot.doveadm_run("index", "-u", user, "INBOX")
            run_dir = work / user
            config = mailbox_config(run_dir, dovecot, user, 1)
            command = [sys.executable, "-m", "agentdesk", "--config", str(config), "sync", "--once"]
            run = run_measured(command, cwd=ROOT)
            with sqlite3.connect(run_dir / "agentdesk.db") as db:
                stored = db.execute("SELECT count(*) FROM message").fetchone()[0]
                largest = db.execute("SELECT coalesce(max(length(raw)), 0) FROM messageraw").fetchone()[0]
            print(
                f"{label:34s} {run.elapsed:6.2f} s  CPU {run.cpu:6.2f} s  peak RSS per process: {run.summary()}; "
                f"tree {run.tree_kib / 1024:5.0f} MiB  ({stored} stored, largest raw {largest / MB:.1f} MB"
                f"{f' of {size / MB:.1f}' if size else ''}, exit {run.status}, load {os.getloadavg()[0]:.2f})"
            )
            if run.status != 0:
                print(run.stderr.strip()[-2_000:], file=sys.stderr)
    finally:
        dovecot.cleanup()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
