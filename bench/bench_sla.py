"""SLA figures on the 100 000-conversation demo: report, explain, the per-change clock refresh, recompute.

    /work/venv/bin/agentdesk demo --seed-only --conversations 100000 --data-dir /tmp/sla100k
    /work/venv/bin/python bench/bench_sla.py --config /tmp/sla100k/config.toml [--runs 3]

Prints: `report` over the last 30 days (each section and the whole, in-process, median of runs);
`sla explain` of one conversation; the cost `clocks.refresh` adds to every change on the hot
path (replay + record, on conversations that already have a timeline and on ones that get it
started); `recompute` throughput over open conversations. Nothing is committed: every write is
rolled back, so the demo database is left as it was.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path


def timed(function, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, default=Path("/tmp/sla100k/config.toml"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=300, help="conversations for the refresh figures")
    args = parser.parse_args()

    from sqlmodel import col, func, select

    from agentdesk import config
    from agentdesk.app.reports import explain_document
    from agentdesk.cli.common import _now
    from agentdesk.domain import clocks, queue, reports
    from agentdesk.store import db
    from agentdesk.store.models import Conversation, Message

    settings = config.load(args.config)
    engine = db.open_database(settings.database_url)
    policies = clocks.Policies.from_settings(settings)
    now = _now()
    window = reports.Window(since=now - timedelta(days=30), until=now)

    with db.read_session(engine) as session:
        conversations = session.exec(select(func.count()).select_from(Conversation)).one()
        messages = session.exec(select(func.count()).select_from(Message)).one()
        print(f"database: {conversations} conversations, {messages} messages")
        for name, section in [
            ("reply times", lambda: reports.reply_times(session, window)),
            ("compliance", lambda: reports.compliance(session, window, now=now)),
            ("backlog", lambda: reports.backlog(session, now=now)),
            ("volume", lambda: reports.volume(session, window)),
            ("whole report", lambda: reports.report(session, window=window, now=now)),
        ]:
            seconds, _ = timed(section, args.runs)
            print(f"report {name:<13} {seconds * 1000:8.0f} ms (median of {args.runs})")
        open_ids = list(
            session.exec(
                select(Conversation.id)
                .where(col(Conversation.status).in_(("new", "open")))
                .order_by(col(Conversation.id))
                .limit(args.sample)
            )
        )
        conversation = session.get(Conversation, open_ids[0])
        seconds, _ = timed(lambda: explain_document(session, conversation, policies, now=now), args.runs)
        print(f"sla explain (document)  {seconds * 1000:8.1f} ms")

    # The hot path: every change calls queue.touch -> clocks.refresh with the session.
    session = db.write_session(engine)
    try:
        rows = [session.get(Conversation, i) for i in open_ids]
        started = time.perf_counter()
        for row in rows:  # first touch: no events yet, the timeline is started from the fields
            queue.touch(session, conversation=row, policies=policies, now=now)
        session.flush()
        first = (time.perf_counter() - started) / len(rows)
        started = time.perf_counter()
        for row in rows:  # next touches: replay the recorded events, record nothing new
            queue.touch(session, conversation=row, policies=policies, now=now + timedelta(seconds=1))
        session.flush()
        again = (time.perf_counter() - started) / len(rows)
        print(f"touch (starts timeline)  {first * 1000:8.2f} ms per change")
        print(f"touch (replays timeline) {again * 1000:8.2f} ms per change")
    finally:
        session.rollback()
        session.close()

    session = db.write_session(engine)
    try:
        started = time.perf_counter()
        progress = clocks.recompute_page(session, policies=policies, now=now, limit=2000)
        session.flush()
        elapsed = time.perf_counter() - started
        total_open = session.exec(
            select(func.count()).select_from(Conversation).where(col(Conversation.status).not_in(("solved", "closed")))
        ).one()
        rate = progress.checked / elapsed
        print(
            f"recompute: {progress.checked} open conversations in {elapsed:.2f} s ({rate:.0f}/s, "
            f"{progress.events} events); all {total_open} open ≈ {total_open / rate:.0f} s"
        )
    finally:
        session.rollback()
        session.close()


if __name__ == "__main__":
    sys.exit(main())
