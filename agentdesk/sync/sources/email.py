"""The email source: one `[[mailbox]]`, pulled over IMAP.

Per folder, UIDVALIDITY and the last UID are stored in the same transaction as the messages they
cover; new UIDs are fetched in batches over a plain connection (the next batch while one is
stored); parsing runs in separate processes when a sync is big enough for them to pay; a
UIDVALIDITY change rescans the folder and ingest dedupes what it has seen. The MIME parser and
ingest are imported when there is mail to store: a pass with no new mail needs neither.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gc
import logging
import os
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from agentdesk.channels.base import InboundMessage, set_raw
from agentdesk.channels.email import imap
from agentdesk.errors import AgentdeskError
from agentdesk.store import db, wal
from agentdesk.store.db import DBAPIError, OperationalError
from agentdesk.store.models import SyncState
from agentdesk.store.sync_state import save_sync_state, sync_state, sync_state_or_new
from agentdesk.sync.base import PollReport, Progress, Source, SourceError, SyncContext, release_freed_memory

log = logging.getLogger("agentdesk.sync")

# Messages per ingest transaction: each commit also advances the checkpoint. It is also the unit
# of work of the parser processes, so both start on the first fetched batch at once.
COMMIT_EVERY = 250
# Parse in a second process only when there is this much to parse: spawning the processes
# costs more than parsing a small sync in this one.
PARALLEL_PARSE_MIN = 400
# Parser processes for a big sync.
PARSE_WORKERS = 2


def _batches(listing: Sequence[tuple[int, int]]) -> Iterator[list[int]]:
    """The UIDs of `listing` ((uid, size) in UID order) in fetches of at most
    imap.FETCH_BATCH_MESSAGES messages and imap.FETCH_BATCH_BYTES bytes; a message over
    spooled.LARGE_MESSAGE_BYTES is a batch of its own, fetched into a file in pieces, parsed
    through a bounded view and stored from the file (`_fetch`): memory does not grow with what a
    sender sends."""
    for uids, _ in _sized_batches(listing):
        yield uids


def _sized_batches(listing: Iterable[tuple[int, int]]) -> Iterator[tuple[list[int], bool]]:
    """`_batches`, each with whether it is one message too big to hold (fetched into a file);
    made as they are asked for."""
    from agentdesk.channels.email.spooled import LARGE_MESSAGE_BYTES

    batch: list[int] = []
    size = 0
    for uid, length in listing:
        large = length > LARGE_MESSAGE_BYTES
        if batch and (large or len(batch) >= imap.FETCH_BATCH_MESSAGES or size + length > imap.FETCH_BATCH_BYTES):
            yield batch, False
            batch, size = [], 0
        batch.append(uid)
        size += length
        if large:
            yield batch, True
            batch, size = [], 0
    if batch:
        yield batch, False


def _chunks(fetched: Sequence[imap.FetchedMessage]) -> list[list[tuple]]:
    """A fetched batch as (uid, internal date, raw or file) chunks of COMMIT_EVERY, one per
    transaction (one empty chunk for an empty batch: its checkpoint still moves)."""
    items = [(m.uid, m.internaldate, m.raw if m.file is None else m.file) for m in fetched]
    return [items[start : start + COMMIT_EVERY] for start in range(0, len(items), COMMIT_EVERY)] or [[]]


def _chunk_bytes(chunk: Sequence[tuple] | None) -> int:
    return sum(len(raw) for _, _, raw in chunk if isinstance(raw, bytes)) if chunk else 0


def _wants_parsers(selected: imap.FolderState, last_uid: int) -> bool:
    """Whether SELECT shows enough new UIDs (UIDNEXT − checkpoint) for parser processes to pay."""
    return (
        selected.uidnext is not None
        and selected.exists >= PARALLEL_PARSE_MIN
        and selected.uidnext - 1 - last_uid >= PARALLEL_PARSE_MIN
    )


def parser_pool():
    """Processes that parse fetched mail, already booting when this returns.

    "spawn", not fork: the IDLE thread of imaplib2 makes fork unsafe. A process imports only the
    MIME parser (`mime.parse_fetched`), not the database layer.
    """
    import concurrent.futures
    import multiprocessing

    from agentdesk.sync.sources import parse_job

    pool = concurrent.futures.ProcessPoolExecutor(
        PARSE_WORKERS,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=parse_job.start_parser,
        initargs=(os.getpid(),),
    )
    for _ in range(PARSE_WORKERS):
        pool.submit(parse_job.ready)  # starts every process (spawn starts them all on the first submit)
    return pool


# SQLite: WAL pages before this connection checkpoints (SQLite's default is 1 000 pages, 4 MB). A
# first sync writes a mailbox's raw mail; with the default, most commits of a big sync ran a
# checkpoint and its fsync. At most ~40 MB of WAL, checkpointed by later commits or on close.
# During a big sync a thread checkpoints after every commit (`wal.BackgroundCheckpoints`), so the
# WAL rarely gets that long.
WAL_CHECKPOINT_PAGES = 10_000
# How many chunks may wait for the parsers, and how many bytes of mail they may hold together
# (ordinary mail never reaches the second bound; bigger mail waits for storing instead of piling up).
PARSE_AHEAD = 3 * imap.FETCH_BATCH_MESSAGES // COMMIT_EVERY
PARSE_AHEAD_BYTES = 16 * 1024 * 1024
# The collector's threshold for its youngest generation while a big sync runs (Python's is 700).
# A chunk builds tens of thousands of container objects (records, rows, clock states) that live
# until it is stored and then go by reference counting; at 700 the collector walked them some
# 1 500 times a 30 000-message sync, moving them to older generations to be walked again, and
# found next to nothing to free. At this threshold it still runs, a few times a sync, and frees
# what cycles there are.
SYNC_GC_THRESHOLD = 20_000
# Reconnect attempts within one poll when the server drops us mid-sync (a restart, a network blip).
# A server that cannot be reached at all fails the poll at once: the worker retries the source
# with its backoff (`worker.Backoff`), and the long-running sync waits there, not here.
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 4.0)
# At most this many Gmail message ids remembered across a process's polls.
GMAIL_IDS_KEPT = 200_000


def _fetch(
    connection: imap.BulkConnection, uids: list[int], large: bool, spool_dir: str | None
) -> list[imap.FetchedMessage]:
    if large:
        import tempfile

        # Unlinked at once: nothing is left behind, whatever happens to the process.
        file = tempfile.TemporaryFile(prefix="agentdesk-mail-", dir=spool_dir)  # noqa: SIM115  (closed below)
        try:
            fetched = connection.fetch_to_file(uids[0], file)
        except BaseException:
            file.close()
            raise
        if fetched is None:
            file.close()
            return []
        return [fetched]
    return connection.fetch(uids)


def _fetched_batches(
    connection: imap.BulkConnection, listing: Sequence[tuple[int, int]], spool_dir: str | None = None
) -> Generator[tuple[list[int], list[imap.FetchedMessage]], None, None]:
    """Each batch of `listing` with its fetched messages, in order; while the caller works on one,
    a thread already fetches the next (it mostly waits on the socket, which releases the GIL), so
    a big sync does not stop storing to wait for the server. The connection serialises commands
    (`BulkConnection` holds a lock per command), so the caller may use it meanwhile. Close the
    generator to stop early: the fetch in flight is finished first, never cut off mid-response.
    Batches are made as they are fetched: none is held but the one in hand and the next."""
    batches = _sized_batches(listing)
    first = next(batches, None)
    if first is None:
        return
    second = next(batches, None)
    if second is None:
        uids, large = first
        yield uids, _fetch(connection, uids, large, spool_dir)
        return
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="imap-fetch") as fetcher:
        current: tuple[list[int], bool] | None = first
        following: tuple[list[int], bool] | None = second
        next_fetch = fetcher.submit(_fetch, connection, first[0], first[1], spool_dir)
        while current is not None:
            fetched = next_fetch.result()
            uids = current[0]
            current = following
            if current is not None:
                next_fetch = fetcher.submit(_fetch, connection, current[0], current[1], spool_dir)
                following = next(batches, None)
            yield uids, fetched


class MailboxSource:
    """One `[[mailbox]]`: its folders, checkpoints, after-fetch policy and IDLE."""

    kind = "email"

    def __init__(self, mailbox, ctx: SyncContext, *, parallel_parse: bool = True):
        self.mailbox = mailbox
        self.name = mailbox.name
        self.ctx = ctx
        self.server = imap.ServerSettings.from_mailbox(mailbox)
        self.parallel_parse = parallel_parse
        self._password: str | None = None
        self._bulk: imap.BulkConnection | None = None
        self._idler: imap.Idler | None = None
        # IDLE refused (the login or the folder, on that connection) until then: poll meanwhile.
        self._idle_broken_until = 0.0
        self._idle_unsupported = False  # the server has no IDLE: poll every interval
        self._wake = threading.Event()
        self._stopping = threading.Event()  # interrupt() or close(): end every wait at once, for good
        # Whether this poll logged in: only a server that answered it is worth reconnecting to
        # within the poll (`poll`).
        self._connected_in_poll = False
        self._checkpoints: wal.BackgroundCheckpoints | None = None
        # X-GM-MSGIDs of the messages taken in this process (Gmail only: `_without_gmail_copies`).
        self._gmail_seen: set[int] = set()
        self._ahead: tuple[threading.Thread, dict[str, Any]] | None = None  # open_ahead's login

    # connections

    def password(self) -> str:
        """The secret for a new connection: a password once per process; a token (xoauth2,
        oauthbearer, a provider's sign-in) each time, so a refreshed one is used once the last expires."""
        if getattr(self.mailbox, "auth", None) in ("xoauth2", "oauthbearer") or getattr(self.mailbox, "provider", None):
            from agentdesk.sync import credentials

            return credentials.imap_secret(self.mailbox)
        if self._password is None:
            self._password = self.mailbox.password(f"mailbox {self.name}")
        return self._password

    def open_ahead(self) -> None:
        """Start logging in on a thread now, while the sync prepares the database; the first poll
        takes the connection, or raises what the login raised, exactly as if it had logged in itself."""
        if self._bulk is not None or self._ahead is not None:
            return
        outcome: dict[str, Any] = {}

        def log_in() -> None:
            try:
                outcome["connection"] = imap.BulkConnection(self.server, self.password())
            except BaseException as error:  # handed to the poll, which reports it
                outcome["error"] = error

        thread = threading.Thread(target=log_in, name=f"log in to {self.name}", daemon=True)
        thread.start()
        self._ahead = (thread, outcome)

    def _connection(self) -> imap.BulkConnection:
        if self._bulk is None:
            if self._ahead is not None:
                thread, outcome = self._ahead
                self._ahead = None
                thread.join()
                if "error" in outcome:
                    raise outcome["error"]
                self._bulk = outcome["connection"]
            else:
                self._bulk = imap.BulkConnection(self.server, self.password())
            self._connected_in_poll = True
        return self._bulk

    def _drop_connection(self) -> None:
        if self._ahead is not None:  # never polled: wait for the login and log out
            with contextlib.suppress(Exception):
                self._connection()
        if self._bulk is not None:
            self._bulk.close()
            self._bulk = None

    # polling

    def poll(self, *, progress: Progress | None = None) -> PollReport:
        """One pass over every folder; raises SourceError when a folder could not be read."""
        report = PollReport(self.name)
        failures: list[str] = []
        self._connected_in_poll = False
        for folder in self.mailbox.folders:
            delays = iter(RECONNECT_DELAYS)
            while True:
                # A connection left from an earlier poll may have died since (the server restarted
                # while we waited): that is worth one fresh connection at once.
                stale = self._bulk is not None and not self._connected_in_poll
                try:
                    self._poll_folder(folder, report, progress)
                    break
                except imap.ServerBusy as error:
                    # Throttled: reconnecting at once would be refused again and prolong it; the
                    # worker's retry schedule (worker.Backoff) waits longer each time.
                    failure, retry = f"throttled by the server: {error}", False
                except imap.ImapError as error:
                    failure, retry = str(error), True
                except imap.CONNECTION_ERRORS as error:
                    failure = f"mailbox {self.name}: connection to {self.server.host}:{self.server.port} lost: {error}"
                    retry = not imap.is_throttling(str(error))  # a BYE saying the server is busy
                    if not retry:
                        failure = f"throttled by the server: {failure}"
                except AgentdeskError as error:  # a failing password command
                    failure, retry = str(error), False
                except DBAPIError as error:
                    # The database, not the server (its disk full, say): what this poll committed
                    # stays counted in `report`, the rest waits for the next poll, and no other
                    # folder can be stored either.
                    failure = f"mailbox {self.name}: {db.explain(str(self.ctx.engine.url), error)}"
                    report.errors.append(failure)
                    raise SourceError(failure, report=report) from None
                self._drop_connection()
                # The server answered this poll and then dropped us (mid-sync): reconnect a few
                # times. One that does not answer at all fails the poll now.
                delay = 0.0 if retry and stale else next(delays, None) if retry and self._connected_in_poll else None
                if delay is None or self._stopping.is_set():
                    failures.append(f"{folder}: {failure}")
                    self._record_error(folder, failure)
                    break
                if delay:
                    log.info("%s; reconnecting in %.1fs", failure, delay)
                    self._stopping.wait(delay)
        if failures:
            report.errors.extend(failures)
            raise SourceError("; ".join(failures), report=report)
        return report

    def _checkpoint(self, folder: str) -> SyncState | None:
        with db.read_session(self.ctx.engine) as session:
            return sync_state(session=session, source=self.name, folder=folder)

    def _record_error(self, folder: str, error: str) -> None:
        try:
            with db.write_session(self.ctx.engine) as session:
                state = sync_state_or_new(session=session, source=self.name, folder=folder)
                state.last_error = error[:2_000]
                session.add(state)
                session.commit()
        except DBAPIError as error:  # the database itself is the problem; the caller reports the error
            log.debug("cannot record the sync error of %s/%s: %s", self.name, folder, error)
        except Exception:
            log.exception("cannot record the sync error of %s/%s", self.name, folder)

    def _touch(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        with db.write_session(self.ctx.engine) as session:
            state = sync_state_or_new(session=session, source=self.name, folder=folder)
            state.uidvalidity = uidvalidity
            state.last_uid = last_uid
            state.last_sync_at = self.ctx.now_fn()
            state.last_error = ""
            session.add(state)
            session.commit()

    def _apply_after_fetch(self, connection: imap.BulkConnection, up_to_uid: int) -> None:
        policy = self.mailbox.after_fetch
        if policy == "seen":
            connection.mark_seen(connection.search_unseen(up_to_uid))
        elif policy.startswith("move:"):
            connection.move(connection.search_all(up_to_uid), policy.split(":", 1)[1])

    def _poll_folder(self, folder: str, report: PollReport, progress: Progress | None) -> None:
        connection = self._connection()
        selected = connection.select(folder, readonly=self.mailbox.after_fetch == "keep")
        last_uid = self._resume_from(folder, self._checkpoint(folder), selected)
        if last_uid:
            self._apply_after_fetch(connection, last_uid)  # finishes what a crash interrupted
        pool = None
        try:
            # UIDNEXT bounds what is new: a big sync starts its parser processes now, so they
            # boot while the listing and the first fetch run (spawning takes a few tenths of a second).
            if self.parallel_parse and _wants_parsers(selected, last_uid):
                pool = parser_pool()
                import agentdesk.ingest  # noqa: F401  (while the parsers boot, not once they wait for us)
            listing: Sequence[tuple[int, int]] = connection.list_after(last_uid)
            listed_up_to = listing[-1][0] if listing else last_uid  # in UID order
            listing = self._without_gmail_copies(connection, listing)
            if not listing:
                self._touch(folder, selected.uidvalidity, listed_up_to)
                return
            total = len(listing)
            if pool is not None and total < PARALLEL_PARSE_MIN:  # most of those UIDs are gone
                pool.shutdown(cancel_futures=True)
                pool = None
            self._fetch_and_store(connection, folder, selected.uidvalidity, listing, pool, report, progress)
            gmail_ids = getattr(connection, "gmail_ids", None)
            if gmail_ids:
                self._gmail_seen.update(gmail_ids[uid] for uid, _ in listing if uid in gmail_ids)
            if listed_up_to > listing[-1][0]:  # copies past the last fetched message
                self._touch(folder, selected.uidvalidity, listed_up_to)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def _without_gmail_copies(
        self, connection: imap.BulkConnection, listing: Sequence[tuple[int, int]]
    ) -> Sequence[tuple[int, int]]:
        """On Gmail, the messages this source already took from another folder (label) are left
        out: INBOX and [Gmail]/All Mail show the same message, with the same X-GM-MSGID. Ingest
        would dedupe them anyway; this spares fetching them twice."""
        gmail_ids = getattr(connection, "gmail_ids", None)
        if not gmail_ids:
            return listing
        if len(self._gmail_seen) > GMAIL_IDS_KEPT:
            self._gmail_seen.clear()  # bounded memory; ingest's dedupe still holds
        return imap.Listing((uid, size) for uid, size in listing if gmail_ids.get(uid) not in self._gmail_seen)

    def _resume_from(self, folder: str, checkpoint: SyncState | None, selected: imap.FolderState) -> int:
        """The UID after which mail is new: the checkpoint's, unless UIDVALIDITY changed (rescan)."""
        if checkpoint is not None and checkpoint.uidvalidity == selected.uidvalidity:
            return checkpoint.last_uid
        if checkpoint is not None and checkpoint.uidvalidity is not None:
            log.warning(
                "%s/%s: UIDVALIDITY changed from %s to %s; rescanning, known messages are skipped",
                self.name,
                folder,
                checkpoint.uidvalidity,
                selected.uidvalidity,
            )
        return 0

    def _fetch_and_store(
        self,
        connection: imap.BulkConnection,
        folder: str,
        uidvalidity: int,
        listing: Sequence[tuple[int, int]],
        pool,
        report: PollReport,
        progress: Progress | None,
    ) -> None:
        """Fetch, parse and store `listing`."""
        from agentdesk.channels.email.mime import parse_fetched

        policy = None
        if pool is not None:
            from agentdesk.sync.sources.parse_job import NEW_PRIORITY, parse_chunk

            # The policy a conversation opened by this mailbox's mail gets: the parsers start its clocks.
            policy = self.ctx.policies.select(channel=self.kind, priority=NEW_PRIORITY, tags=set(), tier="")
        total = len(listing)
        done = 0
        if progress:
            progress(0, total, f"{self.name}/{folder}")
        # Chunks handed to the parsers (two processes parse while this one fetches and stores:
        # on two cores all three keep busy), oldest first, stored in UID order. Each is one
        # transaction, whose checkpoint is its last UID (the batch's highest asked for the last
        # chunk of a batch: a UID asked for but not returned was expunged meanwhile).
        in_flight: collections.deque[tuple[Any, int, datetime | None, Any, list[tuple] | None]] = collections.deque()
        ahead = PARSE_AHEAD if pool is not None else 0
        database = db.sqlite_path(str(self.ctx.engine.url))
        # A big message's file lies beside the database (on disk, where the mail is going anyway).
        spool_dir = str(os.path.dirname(database)) if database is not None else None
        path = database if pool is not None else None
        self._checkpoints = wal.BackgroundCheckpoints(path) if path is not None else None
        thresholds = gc.get_threshold()
        if pool is not None:
            # Python's full collections rescanned every object alive before the sync (the imported
            # modules, SQLAlchemy's mappers: most of the heap) a few dozen times over a big sync;
            # they sit out until it ends. Newer objects are collected, less often (SYNC_GC_THRESHOLD).
            gc.freeze()
            gc.set_threshold(SYNC_GC_THRESHOLD, *thresholds[1:])
        try:
            with contextlib.closing(_fetched_batches(connection, listing, spool_dir)) as batches:
                for uids, fetched in batches:
                    report.fetched += len(fetched)
                    chunks = _chunks(fetched)
                    for index, chunk in enumerate(chunks):
                        checkpoint_uid = max(uids) if index == len(chunks) - 1 else chunk[-1][0]
                        if len(chunk) == 1 and not isinstance(chunk[0][2], bytes):
                            # A big message, in its file: parsed here through its bounded view (it
                            # never travels to a parser process), stored from the file.
                            uid, date, file = chunk[0]
                            message = _parse_large(file, self.name, date)
                            in_flight.append(([(uid, message, None)], checkpoint_uid, None, file, None))
                        elif pool is not None:
                            # The chunk is stored with this `now`, the one its clocks are computed for. The
                            # first is parsed here: the parser processes are still booting, we would wait.
                            now = self.ctx.now_fn()
                            # A parser process sends its messages back without their raw mail:
                            # the chunk, held here until it is stored, has it (`_store_next`).
                            parsed = (
                                parse_chunk(chunk, self.name, now, policy)
                                if not in_flight and not done
                                else pool.submit(parse_chunk, chunk, self.name, now, policy)
                            )
                            in_flight.append((parsed, checkpoint_uid, now, None, chunk))
                        else:
                            parsed = [(uid, message, None) for uid, message in parse_fetched(chunk, self.name)]
                            in_flight.append((parsed, checkpoint_uid, None, None, None))
                    while len(in_flight) > ahead or (
                        len(in_flight) > 1 and sum(_chunk_bytes(item[4]) for item in in_flight) > PARSE_AHEAD_BYTES
                    ):
                        done += self._store_next(in_flight, folder, uidvalidity, report)
                        if progress:
                            progress(done, total, f"{self.name}/{folder}")
            while in_flight:
                done += self._store_next(in_flight, folder, uidvalidity, report)
                if progress:
                    progress(done, total, f"{self.name}/{folder}")
        finally:
            if pool is not None:
                gc.set_threshold(*thresholds)
                gc.unfreeze()
            if self._checkpoints is not None:
                self._checkpoints.stop()
                self._checkpoints = None
            # What the pass fetched, parsed and stored is garbage now: a long-running sync waits
            # for the next mail without holding the pages it took. (Not after each chunk: the
            # next chunk takes them again at once, and faulting them back in costs more than
            # keeping them.)
            release_freed_memory()

    def _store_next(self, in_flight: collections.deque, folder: str, uidvalidity: int, report: PollReport) -> int:
        """Store the oldest chunk in flight in one transaction with its checkpoint; its size."""
        pending, checkpoint_uid, now, file, chunk = in_flight.popleft()
        try:
            parsed: list[tuple[int, InboundMessage, Any]] = pending if isinstance(pending, list) else pending.result()
            if chunk is not None:
                raws = {uid: raw for uid, _, raw in chunk}
                for uid, message, _ in parsed:
                    if not message.raw:
                        set_raw(message, raws[uid])
            if not parsed:
                self._touch(folder, uidvalidity, checkpoint_uid)
                return 0
            self._ingest_chunk(folder, uidvalidity, parsed, checkpoint_uid, report, now=now, raw_file=file)
        finally:
            if file is not None:
                file.close()
        if self.mailbox.after_fetch != "keep":
            connection = self._connection()
            uids = [uid for uid, _, _ in parsed]
            if self.mailbox.after_fetch == "seen":
                connection.mark_seen(uids)
            else:
                connection.move(uids, self.mailbox.after_fetch.split(":", 1)[1])
        return len(parsed)

    def _ingest_chunk(
        self,
        folder: str,
        uidvalidity: int,
        chunk: list[tuple[int, InboundMessage, Any]],
        checkpoint_uid: int,
        report: PollReport,
        *,
        now: datetime | None = None,
        raw_file=None,
    ) -> None:
        """One transaction: the chunk's (uid, message, sla.Opening | None), and the checkpoint.
        `raw_file`: the raw mail of a chunk's one big message, stored from the file (its record
        carries no `raw`)."""
        from agentdesk.ingest import ingest_batch

        ctx = self.ctx
        with db.write_session(ctx.engine) as session:
            wal.set_autocheckpoint(session, WAL_CHECKPOINT_PAGES)
            try:
                results = ingest_batch(
                    session,
                    [message for _, message, _ in chunk],
                    policies=ctx.policies,
                    now=now or ctx.now_fn(),
                    settings=ctx.settings,
                    openings=[opening for _, _, opening in chunk],
                )
            except OperationalError:
                raise  # the database failed (disk full, locked past the timeout), not a message
            except Exception:
                # One message breaks ingest: redo the chunk one message at a time, so the others are
                # stored and the broken one is stored flagged (never dropped, never blocking the folder).
                session.rollback()
                results = [self._ingest_one_safely(session, message) for _, message, _ in chunk]
            if raw_file is not None and not results[0].duplicate:
                from agentdesk.store import bulk

                bulk.insert_raw_from_file(session, results[0].message_id, raw_file)
            save_sync_state(
                session=session,
                source=self.name,
                folder=folder,
                uidvalidity=uidvalidity,
                last_uid=max(checkpoint_uid, 0),
                last_sync_at=self.ctx.now_fn(),
                last_error="",
            )
            session.commit()
        if self._checkpoints is not None:
            self._checkpoints.commit_done()
        for result in results:
            if result.duplicate:
                report.duplicates += 1
            else:
                report.stored += 1

    def _ingest_one_safely(self, session, message: InboundMessage):
        from agentdesk.channels.email.mime import UNKNOWN_SENDER
        from agentdesk.ingest import ingest_message

        ctx = self.ctx
        try:
            with session.begin_nested():
                return ingest_message(session, message, policies=ctx.policies, now=ctx.now_fn(), settings=ctx.settings)
        except OperationalError:
            raise
        except Exception as error:
            log.exception("%s: ingest failed for %s; storing it flagged", self.name, message.external_id)
            fallback = dataclasses.replace(
                message,
                sender_address=UNKNOWN_SENDER,
                in_reply_to="",
                references=(),
                conversation_hint="",
                subject=message.subject[:500],
                kind=message.kind,
                parse_error="; ".join(filter(None, [message.parse_error, f"ingest: {type(error).__name__}: {error}"]))[
                    :2_000
                ],
            )
            with session.begin_nested():
                return ingest_message(session, fallback, policies=ctx.policies, now=ctx.now_fn(), settings=ctx.settings)

    # waiting

    def wait(self, timeout: float) -> None:
        """Until the server reports a change in the first folder (IDLE), `timeout` passes, or
        `interrupt`.

        Raises SourceError when the IDLE connection cannot be made or breaks (a restart, a killed
        server process, a network cut): the worker retries the source with its backoff, and the
        poll that retry starts with reconnects and fetches what arrived meanwhile. A server
        without IDLE, or one refusing it, is polled every `timeout` instead.
        """
        if self._stopping.is_set():
            return
        if self.mailbox.idle and not self._idle_unsupported and time.monotonic() >= self._idle_broken_until:
            try:
                if self._idler is None:
                    self._idler = imap.Idler(self.server, self.password(), self.mailbox.folders[0])
                    # Mail may have arrived between our last poll and this SELECT: look once more.
                    return
                if self._idler.supported:
                    self._idler.wait(timeout)
                    return
                log.warning(
                    "%s: %s:%s does not offer IDLE; polling every %.0fs",
                    self.name,
                    self.server.host,
                    self.server.port,
                    timeout,
                )
                self._idle_unsupported = True
                self._close_idler()
            except imap.Idler.ConnectionLost as error:
                self._close_idler()
                if self._stopping.is_set():
                    return
                raise SourceError(str(error)) from None
            except (imap.ImapError, AgentdeskError) as error:
                self._close_idler()
                if self._stopping.is_set():
                    return
                log.warning("%s: IDLE unavailable (%s); polling every %.0fs", self.name, error, timeout)
                self._idle_broken_until = time.monotonic() + 5 * timeout
        self._wake.wait(timeout)
        self._wake.clear()

    def _close_idler(self) -> None:
        # close() runs on another thread than wait(): take the idler first, then close it.
        idler, self._idler = self._idler, None
        if idler is not None:
            idler.close()

    def interrupt(self) -> None:
        """End a wait, or a pause between reconnects within a poll, at once; for good (the worker
        is stopping)."""
        self._stopping.set()
        self._wake.set()
        if self._idler is not None:
            self._idler.interrupt()

    def close(self) -> None:
        self.interrupt()
        self._close_idler()
        self._drop_connection()


def _parse_large(file, source: str, received_at: datetime) -> InboundMessage:
    from agentdesk.channels.email.mime import ensure_sender, parse_file

    return ensure_sender(parse_file(file, source=source, received_at=received_at))


def mailbox_sources(ctx: SyncContext) -> list[Source]:
    return [MailboxSource(mailbox, ctx) for mailbox in ctx.settings.mailbox]
