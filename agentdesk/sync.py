"""The long-running worker: pull every source, deliver the outbox.

Two small registries make it channel-agnostic:

- `SOURCE_FACTORIES`: channel family -> function building `Source` objects from the settings.
  A Source has `poll()` (one pass: store what is new, advance its checkpoint in the same
  transaction), `wait(timeout)` (block until something may be new — IMAP IDLE, a spool watch — or
  the timeout passes), `interrupt()` and `close()`.
- `SENDER_FACTORIES`: channel family -> function building `{channel kind: delivery.Sender}`.

The webhook spool channel plugs in by adding one entry to each (see docs/email.md).

`run_once` polls every source once and delivers what is due (`agentdesk sync --once`).
`run_forever` gives each source its own thread (poll, then wait) and the outbox another, until
the stop event is set (SIGINT/SIGTERM in the CLI, the TUI shutting down its worker).

`MailboxSource` is the email source: per folder, UIDVALIDITY and the last UID are stored in the
same transaction as the messages they cover; new UIDs are fetched in batches over a plain
connection (the next batch while one is stored); parsing runs in a second process when a sync is big enough for it to pay; a
UIDVALIDITY change rescans the folder and ingest dedupes what it has seen.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from sqlmodel import select

from agentdesk import delivery
from agentdesk.channels.base import InboundMessage
from agentdesk.channels.email import imap
from agentdesk.errors import AgentdeskError
from agentdesk.store import db
from agentdesk.store.models import SyncState
from agentdesk import sync_batches
from agentdesk.sync_batches import COMMIT_EVERY, PARALLEL_PARSE_MIN, PARSE_WORKERS  # noqa: F401
from agentdesk.sync_batches import batches as _batches
from agentdesk.sync_batches import parser_pool as _parser_pool

# Loaded when there is mail to store, not at start: a pass with no new mail (every minute from
# cron, or `sync --once` in a script) is mostly Python start-up, so it imports neither the MIME
# parser nor ingest, SMTP or the process pool (docs/email.md, "Figures").
_LAZY = {
    "UNKNOWN_SENDER": "agentdesk.channels.email.mime", "ensure_sender": "agentdesk.channels.email.mime",
    "parse_fetched": "agentdesk.channels.email.mime", "parse_message": "agentdesk.channels.email.mime",
    "ingest_batch": "agentdesk.ingest", "ingest_message": "agentdesk.ingest",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


log = logging.getLogger("agentdesk.sync")

Progress = Callable[[int, int, str], None]

# How often every source is polled when nothing pushes (IDLE off or unsupported), in seconds;
# with IDLE the folder is still re-checked this often, and the other folders are polled.
POLL_INTERVAL = 60.0
# How often the outbox is checked for replies queued by agents (other processes).
DELIVERY_INTERVAL = 2.0
# SQLite: WAL pages before this connection checkpoints (SQLite's default is 1 000 pages, 4 MB). A
# first sync writes a mailbox's raw mail; with the default, most commits of a big sync ran a
# checkpoint and its fsync. At most ~40 MB of WAL, checkpointed by later commits or on close.
# During a big sync a thread checkpoints after every commit (`_BackgroundCheckpoints`), so the
# WAL rarely gets that long.
WAL_CHECKPOINT_PAGES = 10_000
# How many chunks may wait for the parsers (memory: about three fetched batches, FETCH_BATCH_BYTES
# each at most).
PARSE_AHEAD = 3 * imap.FETCH_BATCH_MESSAGES // COMMIT_EVERY
# Reconnect attempts within one poll when the server drops us (a restart, a network blip).
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 4.0)


class SourceError(AgentdeskError):
    """A source could not be read (server unreachable, login refused, folder missing)."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class PollReport:
    source: str
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)


class Source(Protocol):
    name: str
    kind: str

    def poll(self, *, progress: Progress | None = None) -> PollReport: ...

    def wait(self, timeout: float) -> None: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


class SyncContext:
    """What sources need: settings, engine, SLA policies (clocks.Policies) and the clock.

    `load_policies` instead of `policies` builds them on first use: a pass with no new mail never
    needs them (nor the calendars they load).
    """

    def __init__(self, settings: Any, engine: Any, policies: Any = None, now_fn: Callable[[], datetime] = _utcnow,
                 *, load_policies: Callable[[], Any] | None = None):
        self.settings = settings
        self.engine = engine
        self._policies = policies
        self._load_policies = load_policies
        self.now_fn = now_fn

    @property
    def policies(self) -> Any:
        if self._policies is None and self._load_policies is not None:
            self._policies = self._load_policies()
        return self._policies

    @policies.setter
    def policies(self, value: Any) -> None:
        self._policies = value


# --- the email source ----------------------------------------------------------------------------


def _fetched_batches(connection: imap.BulkConnection, listing: Sequence[tuple[int, int]]) \
        -> Iterator[tuple[list[int], list[imap.FetchedMessage]]]:
    """Each batch of `listing` with its fetched messages, in order; while the caller works on one,
    a thread already fetches the next (it mostly waits on the socket, which releases the GIL), so
    a big sync does not stop storing to wait for the server. The connection serialises commands
    (`BulkConnection` holds a lock per command), so the caller may use it meanwhile. Close the
    generator to stop early: the fetch in flight is finished first, never cut off mid-response."""
    batches = list(_batches(listing))
    if len(batches) < 2:
        for uids in batches:
            yield uids, connection.fetch(uids)
        return
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="imap-fetch") as fetcher:
        next_fetch = fetcher.submit(connection.fetch, batches[0])
        for following, uids in enumerate(batches, start=1):
            fetched = next_fetch.result()
            if following < len(batches):
                next_fetch = fetcher.submit(connection.fetch, batches[following])
            yield uids, fetched


class _BackgroundCheckpoints:
    """Copies a SQLite database's WAL into the database file on its own connection and thread,
    after each commit of a big sync (PASSIVE: it never blocks a reader or a writer).

    Without it the sync's own commits ran the checkpoints (`WAL_CHECKPOINT_PAGES`), each copying
    and syncing ~40 MB while storing waited, and the close at exit copied what was left. The
    checkpoint runs in SQLite with the GIL released, so storing goes on meanwhile, and the WAL
    is restarted small whenever a checkpoint has caught up."""

    def __init__(self, path):
        self._path = path
        self._wanted = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def commit_done(self) -> None:
        self._wanted.set()

    def stop(self) -> None:
        self._stopping = True
        self._wanted.set()
        self._thread.join()

    def _run(self) -> None:
        import sqlite3

        try:
            connection = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as error:
            log.warning("background checkpoints of %s unavailable: %s", self._path, error)
            return
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._stopping:
                    return
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:  # another checkpoint runs, the disk is full: commits do it
                    log.debug("background checkpoint of %s skipped: %s", self._path, error)
        finally:
            connection.close()


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
        self._idle_broken_until = 0.0
        self._wake = threading.Event()
        self._closed = False
        # Reconnecting within a poll is for a server that dropped us mid-sync; one that never
        # answered is reported at once (the worker's loop retries it with backoff).
        self._connected_once = False
        self._checkpoints: _BackgroundCheckpoints | None = None
        # Work begun before the database layer was imported (`head_start`), until the first poll.
        self.head_start = None

    # connections

    def password(self) -> str:
        if self._password is None:
            self._password = self.mailbox.password(f"mailbox {self.name}")
        return self._password

    def _connection(self) -> imap.BulkConnection:
        if self._bulk is None:
            self._bulk = imap.BulkConnection(self.server, self.password())
            self._connected_once = True
        return self._bulk

    def _drop_connection(self) -> None:
        if self._bulk is not None:
            self._bulk.close()
            self._bulk = None

    # polling

    def poll(self, *, progress: Progress | None = None) -> PollReport:
        """One pass over every folder; raises SourceError when a folder could not be read."""
        report = PollReport(self.name)
        failures: list[str] = []
        for folder in self.mailbox.folders:
            for attempt, delay in enumerate((*RECONNECT_DELAYS, None)):
                try:
                    self._poll_folder(folder, report, progress)
                    break
                except imap.ImapError as error:
                    failure = str(error)
                except imap.CONNECTION_ERRORS as error:
                    failure = f"mailbox {self.name}: connection to {self.server.host}:{self.server.port} lost: {error}"
                except AgentdeskError as error:  # a failing password command
                    failure = str(error)
                    delay = None
                self._drop_connection()
                if delay is None or self._closed or not self._connected_once:
                    failures.append(f"{folder}: {failure}")
                    self._record_error(folder, failure)
                    break
                log.info("%s; reconnecting in %.1fs", failure, delay)
                time.sleep(delay)
        if failures:
            report.errors.extend(failures)
            raise SourceError("; ".join(failures))
        return report

    def _checkpoint(self, folder: str) -> SyncState | None:
        with db.read_session(self.ctx.engine) as session:
            return session.exec(
                select(SyncState).where(SyncState.source == self.name, SyncState.folder == folder)
            ).first()

    def _record_error(self, folder: str, error: str) -> None:
        try:
            with db.write_session(self.ctx.engine) as session:
                state = self._state_row(session, folder)
                state.last_error = error[:2_000]
                session.add(state)
                session.commit()
        except Exception:  # the database itself is the problem; the caller reports the error
            log.exception("cannot record the sync error of %s/%s", self.name, folder)

    def _state_row(self, session, folder: str) -> SyncState:
        state = session.exec(
            select(SyncState).where(SyncState.source == self.name, SyncState.folder == folder)
        ).first()
        if state is None:
            state = SyncState(source=self.name, folder=folder, last_uid=0)
        return state

    def _touch(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        with db.write_session(self.ctx.engine) as session:
            state = self._state_row(session, folder)
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
        head = self._take_head_start(folder)
        early: Sequence[Any] = ()
        if head is not None:
            # Connected, SELECTed, listed and the first batches fetched while the program imported
            # (`head_start`): from the checkpoint the engine reads now, the way this path would have.
            self._bulk, self._password, self._connected_once = head.connection, head.password, True
            connection, selected, listing, early = head.connection, head.selected, head.listing, head.batches
            last_uid = self._resume_from(folder, head.checkpoint_row, selected)
        else:
            connection = self._connection()
            selected = connection.select(folder, readonly=self.mailbox.after_fetch == "keep")
            last_uid = self._resume_from(folder, self._checkpoint(folder), selected)
        if last_uid:
            self._apply_after_fetch(connection, last_uid)  # finishes what a crash interrupted
        pool = head.pool if head is not None else None
        try:
            # UIDNEXT bounds what is new: a big sync starts its parser processes now, so they
            # boot while the listing and the first fetch run (spawning takes a few tenths of a second).
            if head is None and self.parallel_parse and sync_batches.wants_parsers(selected, last_uid):
                pool = _parser_pool()
            if pool is not None:
                import agentdesk.ingest  # noqa: F401  (while the parsers boot, not once they wait for us)
            if head is None:
                listing = connection.list_after(last_uid)
            if not listing:
                self._touch(folder, selected.uidvalidity, last_uid)
                return
            total = len(listing)
            if pool is not None and total < PARALLEL_PARSE_MIN:  # most of those UIDs are gone
                pool.shutdown(cancel_futures=True)
                pool = None
            self._fetch_and_store(connection, folder, selected.uidvalidity, listing, pool, report, progress,
                                  early=early)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def _resume_from(self, folder: str, checkpoint: SyncState | None, selected: imap.FolderState) -> int:
        """The UID after which mail is new: the checkpoint's, unless UIDVALIDITY changed (rescan)."""
        if checkpoint is not None and checkpoint.uidvalidity == selected.uidvalidity:
            return checkpoint.last_uid
        if checkpoint is not None and checkpoint.uidvalidity is not None:
            log.warning("%s/%s: UIDVALIDITY changed from %s to %s; rescanning, known messages are skipped",
                        self.name, folder, checkpoint.uidvalidity, selected.uidvalidity)
        return 0

    def _take_head_start(self, folder: str):
        """The head start of this command (`head_start.HeadStart`) if it is still valid for `folder`."""
        head, self.head_start = self.head_start, None
        if head is None:
            return None
        from agentdesk.store import migrations

        checkpoint = self._checkpoint(folder)
        taken = head.take(self.mailbox, folder, checkpoint, migrations.HEAD, db.sqlite_path(str(self.ctx.engine.url)))
        if taken is not None:
            taken.checkpoint_row = checkpoint
        return taken

    def _fetch_and_store(self, connection: imap.BulkConnection, folder: str, uidvalidity: int,
                         listing: Sequence[tuple[int, int]], pool, report: PollReport,
                         progress: Progress | None, *, early: Sequence[Any] = ()) -> None:
        """Fetch, parse and store `listing`; `early`: its first batches, already fetched (and perhaps
        handed to the parsers) by the head start (`head_start.EarlyBatch`)."""
        from agentdesk.channels.email.mime import parse_fetched

        policy = None
        if pool is not None:
            from agentdesk.channels.email.parse_job import NEW_PRIORITY, parse_chunk

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
        in_flight: collections.deque[tuple[Any, int, datetime | None]] = collections.deque()
        ahead = PARSE_AHEAD if pool is not None else 0
        path = db.sqlite_path(str(self.ctx.engine.url)) if pool is not None else None
        self._checkpoints = _BackgroundCheckpoints(path) if path is not None else None
        if pool is not None:
            # Python's full collections rescanned every object alive before the sync (the imported
            # modules, SQLAlchemy's mappers: most of the heap) a few dozen times, ~0.25 s of a
            # 10 000-message sync; they sit out until it ends. Newer objects are collected as usual.
            gc.freeze()
        try:
            with contextlib.closing(self._batches_of(connection, listing, early)) as batches:
                for uids, fetched, early_parsed in batches:
                    report.fetched += len(fetched)
                    chunks = sync_batches.chunks(fetched)
                    for index, chunk in enumerate(chunks):
                        checkpoint_uid = max(uids) if index == len(chunks) - 1 else chunk[-1][0]
                        if early_parsed is not None:
                            parsed, now = early_parsed[index]
                            in_flight.append((parsed, checkpoint_uid, now))
                        elif pool is not None:
                            # The chunk is stored with this `now`, the one its clocks are computed for. The
                            # first is parsed here: the parser processes are still booting, we would wait.
                            now = self.ctx.now_fn()
                            parsed = parse_chunk(chunk, self.name, now, policy) if not in_flight and not done \
                                else pool.submit(parse_chunk, chunk, self.name, now, policy)
                            in_flight.append((parsed, checkpoint_uid, now))
                        else:
                            parsed = [(uid, message, None) for uid, message in parse_fetched(chunk, self.name)]
                            in_flight.append((parsed, checkpoint_uid, None))
                    while len(in_flight) > ahead:
                        done += self._store_next(in_flight, folder, uidvalidity, report)
                        if progress:
                            progress(done, total, f"{self.name}/{folder}")
            while in_flight:
                done += self._store_next(in_flight, folder, uidvalidity, report)
                if progress:
                    progress(done, total, f"{self.name}/{folder}")
        finally:
            if pool is not None:
                gc.unfreeze()
            if self._checkpoints is not None:
                self._checkpoints.stop()
                self._checkpoints = None

    @staticmethod
    def _batches_of(connection: imap.BulkConnection, listing: Sequence[tuple[int, int]], early: Sequence[Any]) \
            -> Iterator[tuple[list[int], list[imap.FetchedMessage], Any]]:
        """(uids, fetched, parses in flight or None) of every batch: the head start's, then the rest."""
        for batch in early:
            yield batch.uids, batch.fetched, batch.parsed
        rest = listing[sum(len(batch.uids) for batch in early):]
        with contextlib.closing(_fetched_batches(connection, rest)) as batches:
            for uids, fetched in batches:
                yield uids, fetched, None

    def _store_next(self, in_flight: collections.deque, folder: str, uidvalidity: int, report: PollReport) -> int:
        """Store the oldest chunk in flight in one transaction with its checkpoint; its size."""
        pending, checkpoint_uid, now = in_flight.popleft()
        parsed: list[tuple[int, InboundMessage, Any]] = pending if isinstance(pending, list) else pending.result()
        if not parsed:
            self._touch(folder, uidvalidity, checkpoint_uid)
            return 0
        self._ingest_chunk(folder, uidvalidity, parsed, checkpoint_uid, report, now=now)
        if self.mailbox.after_fetch != "keep":
            connection = self._connection()
            uids = [uid for uid, _, _ in parsed]
            if self.mailbox.after_fetch == "seen":
                connection.mark_seen(uids)
            else:
                connection.move(uids, self.mailbox.after_fetch.split(":", 1)[1])
        return len(parsed)

    def _ingest_chunk(self, folder: str, uidvalidity: int, chunk: list[tuple[int, InboundMessage, Any]],
                      checkpoint_uid: int, report: PollReport, *, now: datetime | None = None) -> None:
        """One transaction: the chunk's (uid, message, sla.Opening | None), and the checkpoint."""
        from agentdesk.ingest import ingest_batch

        ctx = self.ctx
        with db.write_session(ctx.engine) as session:
            if ctx.engine.dialect.name == "sqlite":
                session.connection().exec_driver_sql(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
            try:
                results = ingest_batch(session, [message for _, message, _ in chunk], policies=ctx.policies,
                                       now=now or ctx.now_fn(), settings=ctx.settings,
                                       openings=[opening for _, _, opening in chunk])
            except Exception:
                # One message breaks ingest: redo the chunk one message at a time, so the others are
                # stored and the broken one is stored flagged (never dropped, never blocking the folder).
                session.rollback()
                results = [self._ingest_one_safely(session, message) for _, message, _ in chunk]
            self._advance_checkpoint(session, folder, uidvalidity, checkpoint_uid)
            session.commit()
        if self._checkpoints is not None:
            self._checkpoints.commit_done()
        for result in results:
            if result.duplicate:
                report.duplicates += 1
            else:
                report.stored += 1


    def _advance_checkpoint(self, session, folder: str, uidvalidity: int, checkpoint_uid: int) -> None:
        """The folder's checkpoint in the caller's transaction: one UPDATE (a big sync writes it
        with every chunk), or the row created when this is the folder's first."""
        from sqlmodel import update

        values = dict(uidvalidity=uidvalidity, last_uid=max(checkpoint_uid, 0), last_sync_at=self.ctx.now_fn(),
                      last_error="")
        updated = session.execute(
            update(SyncState).where(SyncState.source == self.name, SyncState.folder == folder).values(**values)
            .execution_options(synchronize_session=False))
        if updated.rowcount == 0:
            session.add(SyncState(source=self.name, folder=folder, **values))

    def _ingest_one_safely(self, session, message: InboundMessage):
        from agentdesk.channels.email.mime import UNKNOWN_SENDER
        from agentdesk.ingest import ingest_message

        ctx = self.ctx
        try:
            with session.begin_nested():
                return ingest_message(session, message, policies=ctx.policies, now=ctx.now_fn(), settings=ctx.settings)
        except Exception as error:
            log.exception("%s: ingest failed for %s; storing it flagged", self.name, message.external_id)
            fallback = dataclasses.replace(
                message, sender_address=UNKNOWN_SENDER, in_reply_to="", references=(), conversation_hint="",
                subject=message.subject[:500], kind=message.kind,
                parse_error="; ".join(filter(None, [message.parse_error, f"ingest: {type(error).__name__}: {error}"]))[:2_000],
            )
            with session.begin_nested():
                return ingest_message(session, fallback, policies=ctx.policies, now=ctx.now_fn(), settings=ctx.settings)

    # waiting

    def wait(self, timeout: float) -> None:
        if self.mailbox.idle and time.monotonic() >= self._idle_broken_until and not self._closed:
            try:
                if self._idler is None:
                    self._idler = imap.Idler(self.server, self.password(), self.mailbox.folders[0])
                    # Mail may have arrived between our last poll and this SELECT: look once more.
                    return
                if self._idler.supported:
                    self._idler.wait(timeout)
                    return
            except (imap.ImapError, AgentdeskError) as error:
                log.warning("%s: IDLE unavailable (%s); polling every %.0fs", self.name, error, timeout)
                if self._idler is not None:
                    self._idler.close()
                    self._idler = None
                self._idle_broken_until = time.monotonic() + 5 * timeout
        self._wake.wait(timeout)
        self._wake.clear()

    def interrupt(self) -> None:
        self._wake.set()
        if self._idler is not None:
            self._idler.interrupt()

    def close(self) -> None:
        self._closed = True
        self.interrupt()
        if self._idler is not None:
            self._idler.close()
            self._idler = None
        self._drop_connection()


def mailbox_sources(ctx: SyncContext) -> list[Source]:
    return [MailboxSource(mailbox, ctx) for mailbox in ctx.settings.mailbox]


class _EmailSender:
    """The email channel's sender, built (SMTP imported) when the first reply is prepared."""

    def __init__(self, settings: Any):
        self.settings = settings
        self._sender = None

    def _real(self):
        if self._sender is None:
            from agentdesk.channels.email.smtp import EmailSender

            self._sender = EmailSender(self.settings)
        return self._sender

    def prepare(self, session, *, outbox, message, conversation):
        return self._real().prepare(session, outbox=outbox, message=message, conversation=conversation)

    def send(self, prepared):
        return self._real().send(prepared)

    def __getattr__(self, name: str):
        return getattr(self._real(), name)


def email_senders(ctx: SyncContext) -> dict[str, delivery.Sender]:
    return {"email": _EmailSender(ctx.settings)} if ctx.settings.mailbox else {}


# The registries: the webhook spool channel adds `"spool": spool_sources` and its senders here.
def spool_sources(ctx: SyncContext) -> list[Source]:
    if not getattr(ctx.settings, "spool", None):
        return []
    from agentdesk.channels.webhook.sync_source import spool_sources as build

    return build(ctx)


def spool_senders(ctx: SyncContext) -> dict[str, delivery.Sender]:
    if not getattr(ctx.settings, "spool", None):
        return {}
    from agentdesk.channels.webhook.sync_source import spool_senders as build

    return build(ctx)


# Order matters: a spool of kind "email" wraps the email sender, so spools come after email.
SOURCE_FACTORIES: dict[str, Callable[[SyncContext], list[Source]]] = {
    "email": mailbox_sources, "spool": spool_sources,
}
SENDER_FACTORIES: dict[str, Callable[[SyncContext], dict[str, delivery.Sender]]] = {
    "email": email_senders, "spool": spool_senders,
}


def build_sources(ctx: SyncContext, only: str | None = None) -> list[Source]:
    sources = [source for factory in SOURCE_FACTORIES.values() for source in factory(ctx)]
    if only is not None:
        sources = [source for source in sources if source.name == only]
    return sources


def build_senders(ctx: SyncContext) -> dict[str, delivery.Sender]:
    senders: dict[str, delivery.Sender] = {}
    for factory in SENDER_FACTORIES.values():
        senders.update(factory(ctx))
    return senders


# --- the worker ----------------------------------------------------------------------------------


@dataclass
class SyncReport:
    polls: list[PollReport] = field(default_factory=list)
    delivery: delivery.DeliveryReport = field(default_factory=delivery.DeliveryReport)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.delivery.errors

    @property
    def stored(self) -> int:
        return sum(p.stored for p in self.polls)


class SyncWorker:
    def __init__(self, ctx: SyncContext, sources: list[Source], senders: dict[str, delivery.Sender], *,
                 poll_interval: float = POLL_INTERVAL, delivery_interval: float = DELIVERY_INTERVAL,
                 delivery_sources: set[str] | None = None):
        self.ctx = ctx
        self.sources = sources
        self.senders = senders
        self.poll_interval = poll_interval
        self.delivery_interval = delivery_interval
        self.delivery_sources = delivery_sources
        self.stop = threading.Event()
        self.delivery_wake = threading.Event()

    def deliver(self) -> delivery.DeliveryReport:
        if not self.senders:
            return delivery.DeliveryReport()
        return delivery.deliver_due(self.ctx.engine, self.senders, now_fn=self.ctx.now_fn,
                                    sources=self.delivery_sources)

    def run_once(self, *, progress: Progress | None = None) -> SyncReport:
        report = SyncReport()
        for source in self.sources:
            try:
                report.polls.append(source.poll(progress=progress))
            except SourceError as error:
                report.errors.append(str(error))
            except Exception as error:  # e.g. the database is locked past its timeout
                report.errors.append(f"{source.name}: {type(error).__name__}: {error}")
        try:
            report.delivery = self.deliver()
        except Exception as error:
            report.errors.append(f"outbox: {type(error).__name__}: {error}")
        return report

    def _source_loop(self, source: Source, on_report: Callable[[Any], None] | None) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                result = source.poll()
                failures = 0
                if on_report and (result.stored or result.errors):
                    on_report(result)
                if result.stored:
                    self.delivery_wake.set()  # a new message may have queued something to send
            except Exception as error:
                failures += 1
                log.warning("%s: %s", source.name, error)
                if on_report:
                    on_report(error)
                # Back off on repeated failures, but never longer than the poll interval.
                self.stop.wait(min(self.poll_interval, 2 ** min(failures, 6)))
                continue
            if self.stop.is_set():
                break
            try:
                source.wait(self.poll_interval)
            except Exception as error:
                log.warning("%s: waiting failed: %s", source.name, error)
                self.stop.wait(1.0)

    def _delivery_loop(self, on_report: Callable[[Any], None] | None) -> None:
        while not self.stop.is_set():
            try:
                result = self.deliver()
                if on_report and (result.sent or result.errors):
                    on_report(result)
            except Exception as error:
                log.warning("outbox: %s", error)
                if on_report:
                    on_report(error)
            self.delivery_wake.wait(self.delivery_interval)
            self.delivery_wake.clear()

    def run_forever(self, *, on_report: Callable[[Any], None] | None = None) -> None:
        """Until `self.stop` is set: each source in its own thread, the outbox in another."""
        threads = [threading.Thread(target=self._source_loop, args=(source, on_report), daemon=True,
                                    name=f"sync-{source.name}") for source in self.sources]
        threads.append(threading.Thread(target=self._delivery_loop, args=(on_report,), daemon=True,
                                        name="sync-outbox"))
        for thread in threads:
            thread.start()
        try:
            while not self.stop.wait(0.5):
                pass
        finally:
            self.shutdown()
            for thread in threads:
                thread.join(timeout=10)

    def shutdown(self) -> None:
        self.stop.set()
        self.delivery_wake.set()
        for source in self.sources:
            try:
                source.interrupt()
                source.close()
            except Exception:
                pass
