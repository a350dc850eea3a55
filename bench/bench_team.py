"""Twenty simulated agents plus a sync on one desk, on SQLite and on PostgreSQL.

    .venv/bin/python bench/bench_team.py [--agents 20] [--seconds 30] [--conversations 40] [--think MIN MAX]

Prints per database: agent actions/s (successful and attempted), p95 action latency, ingest rate
under that load, conflicts (refused stale writes: the safety net working), and the number of
"database is locked" errors that reached an agent (target: none). PostgreSQL is a throwaway
cluster on a loopback port (Debian's postgresql package).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from servers.postgres import start_server  # noqa: E402
from teamsim import run_team  # noqa: E402


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))] if ordered else float("nan")


def report(name: str, result: dict, seconds: float) -> None:
    logs = result["agents"]
    successes = sum(len(log["successes"]) for log in logs)
    attempts = sum(len(log["latencies"]) for log in logs)
    latencies = [latency for log in logs for latency in log["latencies"]]
    conflicts = sum(log["conflicts"] for log in logs)
    locked = sum(log["locked"] for log in logs) + result["ingest"]["locked"]
    ingested = len(result["ingest"]["stored"])
    print(f"{name}: {len(logs)} agents, {seconds:.0f} s, think {result['think'][0]:g}-{result['think'][1]:g} s")
    print(
        f"  agent actions: {successes / seconds:.0f}/s succeeded, {attempts / seconds:.0f}/s attempted, "
        f"{conflicts} refused as stale (conflict)"
    )
    print(f"  action latency: median {statistics.median(latencies) * 1000:.1f} ms, p95 {p95(latencies) * 1000:.1f} ms")
    print(f"  ingest under load: {ingested / seconds:.0f} messages/s")
    print(f"  'database is locked' reaching an agent or the sync: {locked}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=(0.0, 0.02),
        metavar=("MIN", "MAX"),
        help="seconds each agent thinks before acting (default 0-0.02: saturate the desk)",
    )
    parser.add_argument(
        "--follow-ups",
        type=float,
        default=2 / 3,
        metavar="SHARE",
        help="share of ingested mail that continues a shared conversation (default 2/3)",
    )
    args = parser.parse_args()
    think = tuple(args.think)
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "sqlite").mkdir()
        result = run_team(
            f"sqlite:///{root / 'team.db'}",
            agents=args.agents,
            seconds=args.seconds,
            conversations=args.conversations,
            workdir=root / "sqlite",
            think=think,
            follow_up_share=args.follow_ups,
        )
        report("SQLite (WAL)", result, args.seconds)
        server = start_server()
        try:
            (root / "pg").mkdir()
            result = run_team(
                server.create_database("team"),
                agents=args.agents,
                seconds=args.seconds,
                conversations=args.conversations,
                workdir=root / "pg",
                think=think,
                follow_up_share=args.follow_ups,
            )
            report("PostgreSQL 15", result, args.seconds)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
