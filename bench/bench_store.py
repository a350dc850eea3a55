"""The storing half of an initial email sync, alone (issue 20, item 3): `ingest_batch` chunk by
chunk in one write transaction each, as the sync's storing process runs it, on mail parsed
beforehand as its parser processes parse it (`parse_job.parse_chunk`, SLA openings included).

    PYTHONPATH=CHECKOUT .venv/bin/python bench/bench_store.py --maildir /work/tmp-30k [--chunks 120]

A component figure, not what a user waits for: no IMAP, no parser processes, no checkpoint
thread. It prints the storing thread's CPU time and wall time. On a machine shared with others'
test runs that CPU time moves by 10 % from run to run; run under
`valgrind --tool=callgrind --cache-sim=no --branch-sim=no` its instruction count does not, which
is how two checkouts' storing is compared there (subtract a `--chunks 0` run: loading the parsed
mail and the imports).

The mailbox is the Maildir `bench_imap.py --maildir DIR` keeps (DIR/mail/user1/Maildir), read in
UID order (Dovecot's uidlist) with each file's delivery time as its INTERNALDATE, parsed once into
DIR/parsed-store-bench.pickle and reused. The chunks are stored with one fixed `now`, as the sync
stores each chunk with the `now` its openings were computed for.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from integration.email.servers import mailbox_config  # noqa: E402

from agentdesk import config  # noqa: E402
from agentdesk.channels.base import set_raw  # noqa: E402
from agentdesk.domain import clocks  # noqa: E402

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def _uid_order(maildir: Path) -> list[Path]:
    """The mailbox's files in UID order, from Dovecot's uidlist ("<uid> <fields> :<name>")."""
    names = [line.rsplit(":", 1)[1] for line in (maildir / "dovecot-uidlist").read_text().splitlines()[1:]]
    files = {path.name.split(":2,")[0]: path for path in (maildir / "cur").iterdir()}
    files.update({path.name: path for path in (maildir / "new").iterdir()})
    return [files[name] for name in names if name in files]


def _parsed(kept: Path, settings, chunk_size: int) -> list[list[tuple]]:
    from agentdesk.sync.sources.parse_job import NEW_PRIORITY, parse_chunk

    cache = kept / "parsed-store-bench.pickle"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    policy = clocks.Policies.from_settings(settings).select(channel="email", priority=NEW_PRIORITY, tags=set(), tier="")
    files = _uid_order(kept / "mail" / "user1" / "Maildir")
    chunks = []
    for start in range(0, len(files), chunk_size):
        items = [
            (start + index + 1, datetime.fromtimestamp(int(path.name.split(".")[0]), UTC), path.read_bytes())
            for index, path in enumerate(files[start : start + chunk_size])
        ]
        parsed = parse_chunk(items, "support", NOW, policy)
        raws = {uid: raw for uid, _, raw in items}
        for uid, message, _ in parsed:
            set_raw(message, raws[uid])  # as the storing process puts it back
        chunks.append(parsed)
    cache.write_bytes(pickle.dumps(chunks))
    return chunks


def main() -> int:
    from agentdesk.ingest import ingest_batch
    from agentdesk.store import db, wal
    from agentdesk.sync.sources.email import COMMIT_EVERY, WAL_CHECKPOINT_PAGES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maildir", type=Path, required=True, metavar="DIR", help="bench_imap.py's kept mailbox")
    parser.add_argument("--chunks", type=int, default=None, help="store only the first N chunks")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-store-") as work:
        desk = Path(work) / "desk"
        settings = config.load(mailbox_config(desk, SimpleNamespace(port=1), "user1", 1))
        chunks = _parsed(args.maildir, settings, COMMIT_EVERY)[: args.chunks]
        policies = clocks.Policies.from_settings(settings)
        engine = db.open_database(settings.database_url)
        cpu, wall = time.thread_time(), time.perf_counter()
        for chunk in chunks:
            with db.write_session(engine) as session:
                wal.set_autocheckpoint(session, WAL_CHECKPOINT_PAGES)
                ingest_batch(
                    session,
                    [message for _, message, _ in chunk],
                    policies=policies,
                    now=NOW,
                    settings=settings,
                    openings=[opening for _, _, opening in chunk],
                )
                session.commit()
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        engine.dispose()
    stored = sum(len(chunk) for chunk in chunks)
    print(f"stored {stored} messages in {len(chunks)} chunks: storing thread CPU {cpu:.2f} s, wall {wall:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
