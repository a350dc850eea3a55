"""How a sync cuts a folder's new mail into fetches, transactions and parser jobs.

The standard library and the IMAP module only, no database layer: `sync` uses it, and so does
`head_start`, which runs while the database layer is still being imported.
"""

from __future__ import annotations

import os

from collections.abc import Iterator, Sequence

from agentdesk.channels.email import imap

# Messages per ingest transaction: each commit also advances the checkpoint. It is also the unit
# of work of the parser processes, so both start on the first fetched batch at once.
COMMIT_EVERY = 250
# Parse in a second process only when there is this much to parse (spawning costs ~0.3 s).
PARALLEL_PARSE_MIN = 400
# Parser processes for a big sync.
PARSE_WORKERS = 2


def batches(listing: Sequence[tuple[int, int]]) -> Iterator[list[int]]:
    """The UIDs of `listing` ((uid, size) in UID order) in fetches of at most
    imap.FETCH_BATCH_MESSAGES messages and imap.FETCH_BATCH_BYTES bytes."""
    batch: list[int] = []
    size = 0
    for uid, length in listing:
        if batch and (len(batch) >= imap.FETCH_BATCH_MESSAGES or size + length > imap.FETCH_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(uid)
        size += length
    if batch:
        yield batch


def chunks(fetched: Sequence[imap.FetchedMessage]) -> list[list[tuple]]:
    """A fetched batch as (uid, internal date, raw) chunks of COMMIT_EVERY, one per transaction
    (one empty chunk for an empty batch: its checkpoint still moves)."""
    items = [(m.uid, m.internaldate, m.raw) for m in fetched]
    return [items[start:start + COMMIT_EVERY] for start in range(0, len(items), COMMIT_EVERY)] or [[]]


def wants_parsers(selected: imap.FolderState, last_uid: int) -> bool:
    """Whether SELECT shows enough new UIDs (UIDNEXT − checkpoint) for parser processes to pay."""
    return selected.uidnext is not None and selected.exists >= PARALLEL_PARSE_MIN \
        and selected.uidnext - 1 - last_uid >= PARALLEL_PARSE_MIN


def parser_pool():
    """Processes that parse fetched mail, already booting when this returns.

    "spawn", not fork: the IDLE thread of imaplib2 makes fork unsafe. A process imports only the
    MIME parser (`mime.parse_fetched`), not the database layer.
    """
    import concurrent.futures
    import multiprocessing

    from agentdesk.channels.email import parse_job

    pool = concurrent.futures.ProcessPoolExecutor(PARSE_WORKERS, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=parse_job.start_parser, initargs=(os.getpid(),))
    for _ in range(PARSE_WORKERS):
        pool.submit(parse_job.ready)  # starts every process (spawn starts them all on the first submit)
    return pool
