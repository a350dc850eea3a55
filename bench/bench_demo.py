"""Foundation figures: build the 100 000-conversation demo, its size, and CLI latencies on it.

    .venv/bin/python bench/bench_demo.py [--conversations 100000] [--dir /tmp/agentdesk-bench] [--reuse] [--runs 15]

Prints: build time, database size, messages; wall-clock latency of `agentdesk list --limit 50
--json` and `agentdesk show REF --json` as separate processes (what a script sees, interpreter
start included), and the same work in-process (what the database costs), median and p95.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def timed_runs(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True)
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {result.stderr.decode()}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/agentdesk-bench"))
    parser.add_argument("--reuse", action="store_true", help="keep an existing demo of that size")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    agentdesk = [sys.executable, "-m", "agentdesk"]
    if not args.reuse and args.dir.exists():
        shutil.rmtree(args.dir)
    started = time.perf_counter()
    subprocess.run(
        [*agentdesk, "demo", "--seed-only", "--conversations", str(args.conversations), "--data-dir", str(args.dir)],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    build_seconds = time.perf_counter() - started
    database = args.dir / "agentdesk.db"
    size = sum(p.stat().st_size for p in args.dir.glob("agentdesk.db*"))
    config = args.dir / "config.toml"

    from sqlalchemy import func
    from sqlmodel import select

    from agentdesk import config as config_module
    from agentdesk.domain import clocks, documents
    from agentdesk.store import db, queries
    from agentdesk.store.models import Conversation, Message

    settings = config_module.load(config)
    engine = db.open_database(settings.database_url)
    policies = clocks.Policies.from_settings(settings)
    with db.read_session(engine) as session:
        messages = session.exec(select(func.count()).select_from(Message)).one()
        conversations = session.exec(select(func.count()).select_from(Conversation)).one()
        # The conversation with the longest thread is the worst case for `show`.
        ref_id = session.exec(
            select(Message.conversation_id).group_by(Message.conversation_id).order_by(func.count().desc()).limit(1)
        ).one()
    ref = f"AD-{ref_id}"

    list_cli = timed_runs([*agentdesk, "--config", str(config), "list", "--limit", "50", "--json"], args.runs)
    show_cli = timed_runs([*agentdesk, "--config", str(config), "show", ref, "--json"], args.runs)
    bare_python = timed_runs([sys.executable, "-c", "pass"], args.runs)

    list_inproc, show_inproc = [], []
    for _ in range(args.runs):
        now = datetime.now(timezone.utc)
        started = time.perf_counter()
        with db.read_session(engine) as session:
            rows = queries.queue_window(session=session, view="open", agent="bench", now=now, limit=50)
            json.dumps(documents.documents(session, rows, policies=policies, now=now))
        list_inproc.append(time.perf_counter() - started)
        started = time.perf_counter()
        with db.read_session(engine) as session:
            conversation = queries.conversation_by_ref(session=session, ref=ref)
            json.dumps(documents.documents(session, [conversation], policies=policies, now=now, full=True))
        show_inproc.append(time.perf_counter() - started)

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:.0f} ms, p95 {percentile(values, 0.95) * 1000:.0f} ms"

    print(
        f"demo build: {args.conversations} conversations, {messages} messages, {build_seconds:.1f} s"
        + (" (reused)" if args.reuse else "")
    )
    print(f"database size: {size / 1e6:.0f} MB ({database})")
    print(f"conversations in db: {conversations}")
    print(f"agentdesk list --limit 50 --json (process): {ms(list_cli)}")
    print(f"agentdesk show {ref} --json (process, {messages and ''}longest thread): {ms(show_cli)}")
    print(f"python -c pass (interpreter start, for reference): {ms(bare_python)}")
    print(f"list window + documents in-process: {ms(list_inproc)}")
    print(f"show document in-process: {ms(show_inproc)}")


if __name__ == "__main__":
    main()
