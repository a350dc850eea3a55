"""The webhook spool source: payloads in `new/` stored exactly once, nothing ever deleted.

Layout of a spool (DESIGN, config contract):

    tmp/       writers create files here ...
    new/       ... and rename them here when complete; agentdesk reads only this directory
    cur/       files whose messages are stored (or that were handled: status callbacks, ignored events)
    rejected/  files that cannot be accepted, each with `<name>.error` saying exactly why

A file is `*.json` (a JSON payload as delivered) or `*.http` (`Content-Type: …` CRLF CRLF and the
raw body, for form and multipart payloads).

`SpoolSource` is the sync `Source` of one configured spool (`poll`, `wait`, `interrupt`, `close`);
`spool_sources` builds them from the settings, for the sync worker and for `agentdesk spool retry`
alike. What a file's drafts become is in `spool_drafts`; provider delivery callbacks update the
outbox through `delivery.apply_status`.

Exactly once: `SpoolSource.poll` stores the messages of a batch of files in one transaction and
only after the commit renames the files into `cur/`. A crash before the commit stores nothing and
leaves the files in `new/`; a crash after the commit but before the rename replays the files,
and ingest finds every message already stored (same external id, same content) — so a replay
never doubles. A rejected file is moved only after its `.error` sidecar is durable.

Nothing in `new/` can make a pass read outside the spool, fail or spin: an entry that is not a
regular file (a link, a link loop, a directory, a FIFO, a socket, a device) is rejected with the
reason and moved as it is (a link is moved, never its target); an entry that cannot be moved at
all is skipped with one logged reason and looked at again only after `SKIP_RETRY`, or sooner if
another entry takes its name — and `has_pending` does not count it, so a watching `sync` sleeps.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from agentdesk.channels.webhook import fetch
from agentdesk.channels.webhook.adapters import (
    Draft,
    Rejected,
    StatusUpdate,
    adapter_for,
)
from agentdesk.channels.webhook.spool import (
    ERROR_SUFFIX,
    LOCK_FILE,
    RETRIED_DIR,
    SpoolWriter,
    ensure_spool,
    fsync_dir,
    read_payload,
    rejected_files,
    unique_name,
    utcnow,
)
from agentdesk.config import AttachmentSettings, Settings, SpoolSettings
from agentdesk.domain import clocks, customers
from agentdesk.errors import AgentdeskError, NotFound
from agentdesk.sanitize import printable
from agentdesk.store import db, queries
from agentdesk.store.db import OperationalError
from agentdesk.store.sync_state import sync_state_or_new
from agentdesk.sync.base import PollReport, Progress, SourceError, SyncContext, release_freed_memory
from agentdesk.sync.delivery import apply_status
from agentdesk.sync.sources.spool_drafts import inbound_message, link_identity

log = logging.getLogger("agentdesk.sync")

WAIT_INTERVAL = 0.5  # seconds between looks into new/ while waiting: `sync` sees a file within 2 s
STATE_REFRESH = timedelta(seconds=60)  # how often an idle spool's last_sync is refreshed in the store
SKIP_RETRY = 300.0  # seconds before an entry that could not be moved out of new/ is tried again


@dataclass
class SpoolPollReport(PollReport):
    """What one pass over a spool did. `failed` files stay in new/ and are tried again.

    `fetched` counts the files handled (moved to cur/ or rejected); `stored` and `duplicates`
    count messages.
    """

    statuses: int = 0  # provider delivery callbacks applied to (or checked against) the outbox
    ignored: int = 0  # files of events that carry no customer message
    files: int = 0  # files moved to cur/
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): not stored, kept in new/
    warnings: list[str] = field(default_factory=list)

    def add(self, other: SpoolPollReport) -> None:
        for name in ("fetched", "stored", "duplicates", "statuses", "ignored", "files"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejected += other.rejected
        self.failed += other.failed
        self.warnings += other.warnings
        self.errors += other.errors

    @property
    def ok(self) -> bool:
        """True when every file was stored or rejected with a reason (DESIGN: sync --once)."""
        return not self.failed

    def lines(self, *, failures: bool = True) -> list[str]:
        """What a person should read about this pass: rejected files, files not stored, warnings.

        Files not stored for one reason (the store unavailable: every file of the pass) are one
        line, not one per file."""
        name = printable(self.source)
        lines = [f"spool {name}: rejected {printable(file)}: {printable(reason)}" for file, reason in self.rejected]
        if failures:
            lines += self.failure_lines()
        lines += [f"spool {name}: {printable(warning)}" for warning in self.warnings]
        return lines

    def failure_lines(self) -> list[str]:
        by_reason: dict[str, list[str]] = {}
        for file, reason in self.failed:
            by_reason.setdefault(reason, []).append(file)
        name = printable(self.source)
        lines = []
        for reason, files in by_reason.items():
            which = printable(files[0]) if len(files) == 1 else f"{len(files)} files"
            lines.append(f"spool {name}: {which} {printable(reason)}")
        return lines


@dataclass
class _Outcome:
    stored: int = 0
    duplicates: int = 0
    statuses: int = 0
    ignored: bool = False
    warnings: list[str] = field(default_factory=list)


class SpoolSource:
    """One configured spool as a sync `Source`: ingest what is complete in new/, wait for more,
    retry rejects.

    `poll()` is what one `sync` pass calls; `wait()` blocks until new/ has files (polling, since
    inotify is not in the standard library). Only one process polls a spool at a time (a lock
    file); writers never need the lock.
    """

    kind = "spool"

    def __init__(
        self,
        spool: SpoolSettings,
        *,
        engine,
        policies: clocks.Policies,
        path: Path | None = None,
        now_fn: Callable[[], datetime] = utcnow,
        batch: int = 200,
        durable_moves: bool = True,
        settings=None,
    ):
        self.spool = spool
        self.name = spool.name
        self.engine = engine
        self.policies = policies
        self.path = Path(path or spool.path)
        self.now_fn = now_fn
        self.batch = batch
        self.durable_moves = durable_moves
        # With the whole settings, ingest sends receipts through domain.receipts (loop safety, rate
        # limit, after-hours rule, honest ETA); without settings no receipt is sent.
        self.settings = settings
        self.caps = settings.attachments if settings is not None else AttachmentSettings()
        self.adapter = adapter_for(spool.adapter)
        self._state_written: datetime | None = None
        self._last_error = ""
        self._stop = threading.Event()
        # Entries of new/ that could not be moved: name -> (identity, monotonic time to try again).
        self._skipped: dict[str, tuple[tuple[int, int, int], float]] = {}

    # -- directories --

    def ensure(self) -> None:
        ensure_spool(self.path)

    def pending(self, limit: int | None = None) -> list[str]:
        """Names of the entries of new/ a pass handles, oldest first (Maildir names start with the
        time): every entry whatever its type (what is not a regular file is rejected, not left to
        be seen again on every pass), except dot files and entries skipped for now."""
        names = sorted(self._entries())
        return names[:limit] if limit else names

    def has_pending(self) -> bool:
        return next(self._entries(), None) is not None

    def _entries(self) -> Iterator[str]:
        try:
            with os.scandir(self.path / "new") as entries:
                for entry in entries:
                    if not entry.name.startswith(".") and not self._is_skipped(entry.name):
                        yield entry.name
        except (FileNotFoundError, NotADirectoryError):
            return

    def _identity(self, name: str) -> tuple[int, int, int] | None:
        try:
            found = os.lstat(self.path / "new" / name)
        except OSError:
            return None
        return found.st_dev, found.st_ino, found.st_ctime_ns

    def _is_skipped(self, name: str) -> bool:
        skipped = self._skipped.get(name)
        if skipped is None:
            return False
        if time.monotonic() < skipped[1] and self._identity(name) == skipped[0]:
            return True
        del self._skipped[name]  # another entry took the name, or it is time to try again
        return False

    def _skip(self, name: str, reason: str, result: SpoolPollReport) -> None:
        """Leave an entry that cannot be moved in new/ until SKIP_RETRY passes, with one warning."""
        identity = self._identity(name)
        if identity is None:
            return
        self._skipped[name] = (identity, time.monotonic() + SKIP_RETRY)
        result.warnings.append(f"skipped {name} (left in new/, tried again in {SKIP_RETRY / 60:.0f} minutes): {reason}")

    def wait(self, timeout: float, *, interval: float = WAIT_INTERVAL) -> bool:
        """Block until new/ holds a file (True), or `timeout` seconds pass or `interrupt` (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.has_pending():
                return True
            if self._stop.is_set():
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(interval, left))

    def interrupt(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.ensure()
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- the pass --

    def poll(self, *, progress: Progress | None = None) -> SpoolPollReport:
        """One sync pass: ingest every complete file in new/ and log what was rejected.

        Raises SourceError when files could not be stored (the store unavailable); they stay in
        new/ for the next pass. Rejected files are handled input, not a failure.
        """
        result = self.ingest_pending()
        if progress is not None and result.files:
            progress(result.files, result.files, self.name)
        for line in result.lines(failures=False):
            log.warning("%s", line)
        if result.failed:
            # The files not stored are what the error says (one line per reason), not a log line more.
            result.errors.extend(result.failure_lines())
            raise SourceError("; ".join(result.errors), report=result)
        return result

    def ingest_pending(self, *, limit: int | None = None) -> SpoolPollReport:
        """Ingest every complete file in new/ (at most `limit`); return what happened, failures included."""
        result = SpoolPollReport(self.name)
        with self._locked():
            names = self.pending(limit)
            for start in range(0, len(names), self.batch):
                chunk = self._batch(names[start : start + self.batch])
                result.add(chunk)
                if chunk.failed:  # the store is unavailable: the rest would fail the same way
                    result.failed += [(name, chunk.failed[0][1]) for name in names[start + self.batch :]]
                    break
            self._record_state(result, force=bool(names))
        return result

    def _batch(self, names: list[str]) -> SpoolPollReport:
        result = SpoolPollReport(self.name)
        done: list[str] = []
        rejects: list[tuple[str, str]] = []
        read: list[tuple[str, list]] = []
        for name in names:
            file = self.path / "new" / name
            try:
                payload = read_payload(file, max_bytes=self.spool.max_bytes)
                items = self.adapter(payload)
                messages = [
                    inbound_message(self.spool, payload, item, index, len(items)) if isinstance(item, Draft) else item
                    for index, item in enumerate(items)
                ]
                # Linked attachments are fetched here, before the store is opened (never by the TUI).
                messages = [
                    (fetch.with_downloads(item[0], self.caps), item[1]) if isinstance(item, tuple) else item
                    for item in messages
                ]
            except FileNotFoundError:
                continue  # another poller took it (a second `sync` on the same spool)
            except Rejected as error:
                rejects.append((name, str(error)))
                continue
            except OSError as error:  # an entry that cannot even be looked at must not stop the spool
                rejects.append((name, f"cannot be read: {error.strerror or error}"))
                continue
            except Exception as error:  # an adapter bug must not stop the spool
                rejects.append((name, f"the {self.spool.adapter} adapter failed: {type(error).__name__}: {error}"))
                continue
            read.append((name, messages))
        session = db.write_session(self.engine)
        try:
            remaining = read
            if len(read) > 1:
                remaining = self._store_batched(session, read, result, done)
            for name, messages in remaining:
                try:
                    with session.begin_nested():
                        outcome = self._store(session, messages)
                except Rejected as error:
                    rejects.append((name, str(error)))
                    continue
                except (AgentdeskError, ValueError) as error:
                    rejects.append((name, f"could not be stored: {error}"))
                    continue
                except OperationalError as error:
                    # The store is unavailable (locked past the busy timeout, disk full): nothing of
                    # this batch is stored; its files stay in new/ for the next pass.
                    session.rollback()
                    result = self._unavailable(names, rejects, error)
                    done = []
                    break
                self._count(result, outcome)
                done.append(name)
            if done:
                session.commit()
        except OperationalError as error:
            session.rollback()
            result = self._unavailable(names, rejects, error)
            done = []
        finally:
            session.close()
        # The messages are committed: only now do the files leave new/ (a crash here replays them).
        for name in done:
            self._move(name, "cur", result)
        result.files = len(done)
        result.fetched = len(done) + len(rejects)
        result.rejected = [(name, reason) for name, reason in rejects if self._reject(name, reason, result)]
        if self.durable_moves and (done or rejects):
            fsync_dir(self.path / "new")
            fsync_dir(self.path / "cur")
        release_freed_memory()
        return result

    def _unavailable(
        self, names: list[str], rejects: list[tuple[str, str]], error: OperationalError
    ) -> SpoolPollReport:
        """The report of a batch the store could not take: every file not rejected stays in new/,
        each with the one line `db.explain` gives (a full disk says so, with the free space)."""
        rejected_names = {n for n, _ in rejects}
        reason = f"not stored: {db.explain(str(self.engine.url), error)}"
        return SpoolPollReport(self.name, failed=[(n, reason) for n in names if n not in rejected_names])

    @staticmethod
    def _count(result: SpoolPollReport, outcome: _Outcome) -> None:
        result.stored += outcome.stored
        result.duplicates += outcome.duplicates
        result.statuses += outcome.statuses
        result.ignored += outcome.ignored
        result.warnings += outcome.warnings

    def _store_batched(
        self, session: Session, read: list[tuple[str, list]], result: SpoolPollReport, done: list[str]
    ) -> list[tuple[str, list]]:
        """Store the files that hold only plain messages with one `ingest_batch` (a few queries and
        one INSERT per table for them all); returns the files left for the per-file path: those with
        status updates or identities to link, or all of them when the batch fails (a file that
        breaks ingest is then rejected on its own, as always)."""
        from agentdesk import ingest

        plain = [
            (name, items)
            for name, items in read
            if items and all(not isinstance(item, StatusUpdate) and not item[1] for item in items)
        ]
        if len(plain) < 2:
            return read
        messages = [item[0] for _, items in plain for item in items]
        try:
            with session.begin_nested():
                stored = ingest.ingest_batch(
                    session, messages, policies=self.policies, now=self.now_fn(), settings=self.settings
                )
        except OperationalError:
            raise
        except Exception:
            return read
        position = 0
        for name, items in plain:
            outcome = _Outcome()
            for ingested in stored[position : position + len(items)]:
                if ingested.duplicate:
                    outcome.duplicates += 1
                else:
                    outcome.stored += 1
            position += len(items)
            self._count(result, outcome)
            done.append(name)
        batched = {name for name, _ in plain}
        return [(name, items) for name, items in read if name not in batched]

    def _store(self, session: Session, items: list) -> _Outcome:
        from agentdesk import ingest

        outcome = _Outcome(ignored=not items)
        now = self.now_fn()
        for item in items:
            if isinstance(item, StatusUpdate):
                apply_status(session, item, now=now)
                outcome.statuses += 1
                continue
            message, links = item
            # The receipt, if any, is decided by ingest (domain/receipts.py) when settings are known.
            stored = ingest.ingest_message(session, message, policies=self.policies, now=now, settings=self.settings)
            if stored.duplicate:
                outcome.duplicates += 1
                continue
            outcome.stored += 1
            if not links:
                continue
            kind = customers.sender_identity_kind(message)
            customer = queries.customer_by_identity(session=session, kind=kind, address=message.sender_address)
            if customer is not None and customer.id is not None:
                for link_kind, address in links:
                    link_identity(session, customer_id=customer.id, kind=link_kind, address=address, now=now)
        return outcome

    # -- moves --

    def _target(self, directory: str, name: str) -> Path:
        """Where `name` goes in `directory`: never over a kept file (a writer may reuse a name)."""
        target = self.path / directory / name
        counter = 1
        # lexists: a dangling link there is still a name that must not be replaced.
        while os.path.lexists(target) or os.path.lexists(target.with_name(target.name + ERROR_SUFFIX)):
            target = self.path / directory / f"{Path(name).stem}.{counter}{Path(name).suffix}"
            counter += 1
        return target

    def _move(self, name: str, directory: str, result: SpoolPollReport) -> Path | None:
        try:
            target = self._target(directory, name)
            os.rename(self.path / "new" / name, target)
            return target
        except FileNotFoundError:
            return None  # moved by another poller
        except OSError as error:
            # Stored, but it cannot leave new/: replaying it is harmless (ingest knows it), a
            # replay on every pass is not.
            self._skip(name, f"stored, but cannot be moved to {directory}/: {error.strerror or error}", result)
            return None

    def _reject(self, name: str, reason: str, result: SpoolPollReport) -> bool:
        """Move new/`name` (the entry itself, whatever it is) into rejected/ beside a durable
        `.error` sidecar. False when it was not moved: gone, or skipped with a warning."""
        sidecar: Path | None = None
        try:
            target = self._target("rejected", name)
            sidecar = target.with_name(target.name + ERROR_SUFFIX)
            # The sidecar is written in tmp/ under a fresh name, created exclusively and never
            # through a link, so nothing planted in tmp/ can redirect the write.
            with SpoolWriter(self.path, name=unique_name(ERROR_SUFFIX), durable=self.durable_moves) as writer:
                writer.write(f"{printable(reason)}\n".encode())
                writer.commit(sidecar)
        except OSError as error:
            self._skip(name, f"{reason}; and it cannot be moved to rejected/: {error.strerror or error}", result)
            return False
        try:
            os.rename(self.path / "new" / name, target)
        except OSError as error:
            self._discard_sidecar(sidecar)
            if error.errno == errno.ENOENT:
                return False  # moved by another poller
            self._skip(name, f"{reason}; and it cannot be moved to rejected/: {error.strerror or error}", result)
            return False
        if self.durable_moves:
            fsync_dir(self.path / "rejected")
        return True

    @staticmethod
    def _discard_sidecar(sidecar: Path) -> None:
        # Our own reason for a file that stayed in new/: nothing stale is kept, in rejected/ or tmp/.
        try:
            os.unlink(sidecar)
        except OSError:
            pass

    # -- rejected files --

    def rejected(self) -> list[tuple[str, str]]:
        """(file, reason) of every rejected file, oldest first."""
        return rejected_files(self.path)

    def retry(self) -> SpoolPollReport:
        """Move every rejected file back into new/ and ingest again (after a fix of config or code).

        The old `.error` sidecars are kept in rejected/retried/ with the time of the retry; a file
        that fails again gets a fresh sidecar.
        """
        with self._locked():
            folder = self.path / "rejected"
            history = folder / RETRIED_DIR
            stamp = self.now_fn().strftime("%Y%m%dT%H%M%SZ")
            for name, _reason in self.rejected():
                sidecar = folder / (name + ERROR_SUFFIX)
                if os.path.lexists(sidecar):
                    history.mkdir(exist_ok=True)
                    os.rename(sidecar, history / f"{name}.{stamp}{ERROR_SUFFIX}")
                target = self.path / "new" / name
                if os.path.lexists(target):
                    target = self.path / "new" / unique_name(Path(name).suffix)
                os.rename(folder / name, target)
            fsync_dir(self.path / "new")
        return self.ingest_pending()

    # -- bookkeeping --

    def _record_state(self, result: SpoolPollReport, *, force: bool) -> None:
        """last_sync / error of this spool for `stats`, written when something happened or every minute."""
        now = self.now_fn()
        error = "; ".join(reason for _, reason in result.failed[:1])
        stale = self._state_written is None or now - self._state_written >= STATE_REFRESH
        if not (force or stale or error != self._last_error):
            return
        try:
            with db.write_session(self.engine) as session:
                state = sync_state_or_new(session=session, source=self.name, folder="")
                state.last_sync_at = now
                state.last_error = error
                session.add(state)
                session.commit()
        except OperationalError:
            return
        self._state_written = now
        self._last_error = error


def spool_sources(ctx: SyncContext, *, only: str | None = None) -> list[SpoolSource]:
    """One SpoolSource per configured spool (or just the spool named `only`), directories created.

    The one way spool sources are built, for the sync worker and for `agentdesk spool retry`:
    relative paths resolve against the config file, and with the whole settings ingest can
    send receipts.
    """
    settings = ctx.settings
    spools = [find_spool(settings, only)] if only is not None else list(settings.spool)
    sources = []
    for spool in spools:
        source = SpoolSource(
            spool,
            engine=ctx.engine,
            policies=ctx.policies,
            path=settings.spool_path(spool),
            now_fn=ctx.now_fn,
            settings=settings,
        )
        source.ensure()
        sources.append(source)
    return sources


def find_spool(settings: Settings, name: str) -> SpoolSettings:
    for spool in settings.spool:
        if spool.name == name:
            return spool
    known = ", ".join(s.name for s in settings.spool) or "none configured"
    raise NotFound(f"no spool named {name!r} in the config (known: {known})")
