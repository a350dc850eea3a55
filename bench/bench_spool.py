"""Spool ingest throughput: N generic chat payloads written Maildir-style, then one `poll()`.

    /work/venv/bin/python bench/bench_spool.py [--files 50000] [--dir DIR]

Prints files/s of the ingest (not of writing the files) and the peak RSS of the process.
Everything lives in a temporary directory (SQLite database included) that is removed afterwards.
Payloads: ~2 000 senders on ~2 000 chat threads, 1-3 lines of text each, real file I/O with the
same fsync of new/ and cur/ per batch as production.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from agentdesk import config
from agentdesk.channels.webhook import spool as spooling
from agentdesk.domain import clocks
from agentdesk.store import db
from agentdesk.sync.sources import spool as spool_source

WORDS = (
    "order delivery refund invoice password account login broken wheel spoke parcel tracking help "
    "please thanks when where why again still waiting weekend monday courier address"
).split()


def payload(i: int, rng: random.Random) -> bytes:
    person = rng.randrange(2000)
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 40)))
    return json.dumps(
        {
            "id": f"bench-{i}",
            "sender": {"name": f"Customer {person}", "handle": f"widget:{person}"},
            "conversation": {"thread_key": f"widget-thread-{person}"},
            "text": text,
            "timestamp": "2026-11-24T09:00:00Z",
            "metadata": {"page": f"/p/{i % 97}"},
        }
    ).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--dir", help="work directory (default: a new temporary one, removed afterwards)")
    args = parser.parse_args()
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="agentdesk-bench-spool-"))
    try:
        settings = config.parse(
            f'[database]\nurl = "sqlite:///{root / "bench.db"}"\n'
            f'[[spool]]\nname = "chat"\npath = "{root / "chat"}"\nadapter = "generic"\nkind = "chat"\n'
        )
        engine = db.open_database(settings.database_url)
        spool = settings.spool[0]
        path = Path(spool.path)
        spooling.ensure_spool(path)
        rng = random.Random(5)
        started = time.perf_counter()
        for i in range(args.files):
            spooling.write_payload(path, payload(i, rng), "application/json", durable=False)
        written = time.perf_counter() - started
        source = spool_source.SpoolSource(
            spool, engine=engine, policies=clocks.Policies.from_settings(settings), path=path, batch=args.batch
        )
        started = time.perf_counter()
        result = source.poll()
        elapsed = time.perf_counter() - started
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert result.stored == args.files and not result.rejected and not result.failed, result
        print(
            f"spool ingest: {args.files} files in {elapsed:.1f} s = {args.files / elapsed:,.0f} files/s "
            f"(batch {args.batch}); peak RSS {peak_mib:.0f} MiB; writing the files took {written:.1f} s; "
            f"database {db.database_size(engine) / 2**20:.0f} MiB"
        )
        engine.dispose()
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
