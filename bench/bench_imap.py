"""Benchmark of the email channel against a local Dovecot (issue 4, "Measure").

    /work/venv/bin/python bench/bench_imap.py [--messages 10000] [--skip-mbsync] [--repeat N]

Starts a throwaway Dovecot (tests/integration/email/servers.py), fills one mailbox with N
realistic messages (tests/integration/email/mailgen.py), and measures in the same run:

1. `mbsync` (Debian's isync, FSync on — its default) pulling the mailbox into a Maildir: the reference;
2. the bulk connection alone: batched `UID FETCH … BODY.PEEK[]` over stdlib imaplib, no parsing;
3. `agentdesk sync --once` as a fresh process: fetch + parse + thread + store + FTS index, with
   messages/s, MB/s and the peak RSS of the process;
   with `--repeat N`, 1 and 3 run N times in pairs on the same mailbox (a fresh Maildir and a
   fresh database each), and the medians are printed at the end;
4. `agentdesk sync --once` again with no new mail: the whole command's wall time;
5. new mail on screen: a running `agentdesk sync` (IDLE) and APPENDs from another connection,
   delivery → row in the database latency.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from integration.email import mailgen  # noqa: E402
from integration.email.servers import PASSWORD, Dovecot, mailbox_config  # noqa: E402


def _run_timed(command: list[str], **kwargs) -> tuple[float, int, subprocess.CompletedProcess | None, int]:
    """Wall time, exit status, and peak RSS (KiB) of the process and its reaped children."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    stderr = process.stderr.read().decode("utf-8", "replace")
    process.stdout.close()
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        print(stderr, file=sys.stderr)
    return elapsed, process.returncode, stderr, usage.ru_maxrss


def compile_agentdesk() -> int:
    """Byte-compile the agentdesk package, as `pip install` does for users (and as Python's first
    import would). An editable install in an environment with PYTHONDONTWRITEBYTECODE set would
    otherwise recompile every module from source in every timed process and parser process."""
    import compileall
    import py_compile

    # compileall writes the .pyc files whatever PYTHONDONTWRITEBYTECODE says (that setting only
    # stops the import system from writing them); the timed processes still read them.
    compileall.compile_dir(ROOT / "agentdesk", quiet=1, invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    return sum(1 for _ in (ROOT / "agentdesk").rglob("__pycache__/*.pyc"))


def bench_mbsync(dovecot: Dovecot, user: str, work: Path, expected: int) -> float | None:
    binary = "/usr/bin/mbsync"
    if not os.path.exists(binary):
        print("mbsync: not installed (apt-get install -y isync); skipped")
        return None
    local = work / "mbsync-maildir"
    local.mkdir()
    # Its own HOME and state directory: no ~/.mbsyncrc, ~/.mbsync state or lock of an earlier run
    # (or of the user) can make it skip messages or refuse to run.
    home = work / "mbsync-home"
    state = work / "mbsync-state"
    home.mkdir()
    state.mkdir()
    conf = work / "mbsyncrc"
    conf.write_text(
        f"IMAPAccount bench\nHost 127.0.0.1\nPort {dovecot.port}\nUser {user}\nPass {PASSWORD}\n"
        "SSLType None\nAuthMechs LOGIN\n\n"
        "IMAPStore remote\nAccount bench\n\n"
        f"MaildirStore local\nPath {local}/\nInbox {local}/INBOX\n\n"
        "Channel bench\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\nSync Pull\n"
        f"SyncState {state}/\n"
    )
    env = dict(
        os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".local/state")
    )
    elapsed, status, stderr, _ = _run_timed([binary, "-q", "-c", str(conf), "-a"], env=env, cwd=work)
    if status != 0:
        print(f"mbsync failed ({status}): {stderr}")
        return None
    pulled = (
        sum(1 for folder in ("new", "cur") for _ in (local / "INBOX" / folder).iterdir())
        if (local / "INBOX").is_dir()
        else 0
    )
    if pulled != expected:
        print(f"mbsync pulled {pulled} of {expected} messages: its figure is not comparable")
        return None
    return elapsed


def bench_fetch_only(dovecot: Dovecot, user: str) -> tuple[float, int]:
    from agentdesk.channels.email import imap
    from agentdesk.sync.sources import email as sync

    server = imap.ServerSettings(name="bench", host="127.0.0.1", port=dovecot.port, tls="none", username=user)
    started = time.perf_counter()
    connection = imap.BulkConnection(server, PASSWORD)
    connection.select("INBOX", readonly=True)
    listing = connection.list_after(0)
    total = 0
    for uids in sync._batches(listing):
        total += sum(len(m.raw) for m in connection.fetch(uids))
    connection.close()
    return time.perf_counter() - started, total


def idle_latency(dovecot: Dovecot, work: Path, samples: int) -> list[float]:
    user = dovecot.add_user()
    config = mailbox_config(work / "idle", dovecot, user, 1)
    database = work / "idle" / "agentdesk.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "agentdesk", "sync", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait for the first pass (it writes the checkpoint)
            if database.exists():
                try:
                    with sqlite3.connect(database) as db:
                        if db.execute("SELECT count(*) FROM syncstate WHERE last_sync_at IS NOT NULL").fetchone()[0]:
                            break
                except sqlite3.Error:
                    pass
            time.sleep(0.05)
        time.sleep(1.0)  # IDLE is open
        latencies = []
        for n, (when, raw) in enumerate(mailgen.corpus(samples, seed=99)):
            started = time.perf_counter()
            dovecot.append(user, [(when, raw)])
            while True:
                with sqlite3.connect(database) as db:
                    if db.execute("SELECT count(*) FROM message").fetchone()[0] > n:
                        break
                if time.perf_counter() - started > 30:
                    raise RuntimeError("new mail did not arrive within 30 s")
                time.sleep(0.01)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.3)
        return latencies
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--skip-mbsync", action="store_true")
    parser.add_argument("--idle-samples", type=int, default=10)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="paired mbsync / agentdesk runs (fresh Maildir and database each); medians at the end",
    )
    args = parser.parse_args()

    compiled = compile_agentdesk()
    print(f"byte-compiled agentdesk before timing ({compiled} .pyc files), as an installed package is")
    work = Path(tempfile.mkdtemp(prefix="agentdesk-bench-"))
    dovecot = Dovecot()
    dovecot.start()
    try:
        user = dovecot.add_user()
        messages = mailgen.corpus(args.messages, seed=42)
        size = sum(len(raw) for _, raw in messages)
        dovecot.write_maildir(user, messages)
        # Build Dovecot's index first, so neither client pays for it.
        dovecot.doveadm_run("index", "-u", user, "INBOX")
        print(f"mailbox: {args.messages} messages, {size / 1e6:.1f} MB, Dovecot on 127.0.0.1:{dovecot.port}")
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")

        elapsed, total = bench_fetch_only(dovecot, user)
        print(
            f"UID FETCH only (imaplib): {elapsed:6.2f} s  {args.messages / elapsed:7.0f} msg/s  "
            f"{total / 1e6 / elapsed:6.1f} MB/s"
        )

        mbsync_times: list[float] = []
        desk_times: list[float] = []
        for run in range(1, args.repeat + 1):
            run_dir = work / f"run{run}"
            run_dir.mkdir()
            if args.repeat > 1:
                print(f"-- run {run}/{args.repeat} (load average {os.getloadavg()[0]:.2f})")
            if not args.skip_mbsync:
                elapsed = bench_mbsync(dovecot, user, run_dir, args.messages)
                if elapsed:
                    mbsync_times.append(elapsed)
                    print(
                        f"mbsync (FSync on):        {elapsed:6.2f} s  {args.messages / elapsed:7.0f} msg/s  "
                        f"{size / 1e6 / elapsed:6.1f} MB/s"
                    )

            config = mailbox_config(run_dir / "desk", dovecot, user, 1)
            # The program users run (`agentdesk`): it takes the team's sync lock and ends the way they see it end.
            command = [sys.executable, "-m", "agentdesk", "--config", str(config), "sync", "--once"]
            elapsed, status, stderr, rss = _run_timed(command, cwd=ROOT)
            with sqlite3.connect(run_dir / "desk" / "agentdesk.db") as db:
                stored = db.execute("SELECT count(*) FROM message").fetchone()[0]
                conversations = db.execute("SELECT count(*) FROM conversation").fetchone()[0]
            if status == 0 and stored == args.messages:
                desk_times.append(elapsed)
            print(
                f"agentdesk sync --once:    {elapsed:6.2f} s  {stored / elapsed:7.0f} msg/s  "
                f"{size / 1e6 / elapsed:6.1f} MB/s  peak RSS {rss / 1024:.0f} MiB  "
                f"({stored} messages, {conversations} conversations, exit {status})"
            )

        elapsed, status, _, _ = _run_timed(command, cwd=ROOT)
        print(f"no-new-mail sync --once:  {elapsed:6.2f} s (whole command, exit {status})")

        latencies = sorted(idle_latency(dovecot, work, args.idle_samples))
        print(
            f"IDLE delivery -> DB:      median {latencies[len(latencies) // 2]:.2f} s, "
            f"max {latencies[-1]:.2f} s over {len(latencies)} messages"
        )
        if args.repeat > 1:
            print(f"median of {args.repeat} paired runs (load average now {os.getloadavg()[0]:.2f}):")
            if mbsync_times:
                median = statistics.median(mbsync_times)
                print(
                    f"  mbsync:    {median:6.2f} s  {args.messages / median:7.0f} msg/s  "
                    f"(runs: {', '.join(f'{t:.2f}' for t in mbsync_times)})"
                )
            if desk_times:
                median = statistics.median(desk_times)
                print(
                    f"  agentdesk: {median:6.2f} s  {args.messages / median:7.0f} msg/s  "
                    f"(runs: {', '.join(f'{t:.2f}' for t in desk_times)})"
                )
    finally:
        dovecot.cleanup()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    print(f"bench process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
