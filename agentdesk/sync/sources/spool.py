"""The webhook spool source: payloads in `new/` stored exactly once, nothing ever deleted.

Layout of a spool (DESIGN, config contract):

    tmp/       writers create files here ...
    new/       ... and rename them here when complete; agentdesk reads only this directory
    cur/       files whose messages are stored (or that were handled: status callbacks, ignored events)
    rejected/  files that cannot be accepted, each with `<name>.error` saying exactly why

A file is `*.json` (a JSON payload as delivered) or `*.http` (`Content-Type: …` CRLF CRLF and the
raw body, for form and multipart payloads).

Exactly once: `SpoolSource.poll` stores the messages of a batch of files in one transaction and
only after the commit renames the files into `cur/`. A crash before the commit stores nothing and
leaves the files in `new/`; a crash after the commit but before the rename replays the files,
and ingest finds every message already stored (same external id, same content) — so a replay
never doubles. A rejected file is moved only after its `.error` sidecar is durable.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from agentdesk.channels.base import InboundMessage
from agentdesk.channels.webhook.adapters import (
    DELIVERED_STATES, FAILED_STATES, Draft, Payload, Rejected, StatusUpdate, adapter_for,
)
from agentdesk.channels.webhook.spool import (
    ERROR_SUFFIX, LOCK_FILE, RETRIED_DIR, ensure_spool, fsync_dir, read_payload, unique_name, utcnow,
)
from agentdesk.config import Settings, SpoolSettings
from agentdesk.domain import audit, clocks, customers
from agentdesk.errors import AgentdeskError, InvalidInput, NotFound
from agentdesk.store import db, queries
from agentdesk.store.models import Identity, Message, Outbox, SyncState
from agentdesk.sync.base import PollReport, SourceError

log = logging.getLogger("agentdesk.sync")

WAIT_INTERVAL = 0.5  # seconds between looks into new/ while waiting: `sync` sees a file within 2 s
STATE_REFRESH = timedelta(seconds=60)  # how often an idle spool's last_sync is refreshed in the store


# --- ingest ------------------------------------------------------------------------------------


@dataclass
class PollResult:
    """What one pass over a spool did. `failed` files stay in new/ and are tried again."""

    stored: int = 0  # new messages
    duplicates: int = 0  # messages already stored (a replay, or a provider's repeated delivery)
    statuses: int = 0  # provider delivery callbacks applied to (or checked against) the outbox
    ignored: int = 0  # files of events that carry no customer message
    files: int = 0  # files moved to cur/
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): not stored, kept in new/
    warnings: list[str] = field(default_factory=list)

    def add(self, other: PollResult) -> None:
        for name in ("stored", "duplicates", "statuses", "ignored", "files"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejected += other.rejected
        self.failed += other.failed
        self.warnings += other.warnings

    @property
    def ok(self) -> bool:
        """True when every file was stored or rejected with a reason (DESIGN: sync --once)."""
        return not self.failed


class _Unstorable(Exception):
    """The store could not take the file now (locked, unavailable): leave it in new/."""


@dataclass
class _Outcome:
    stored: int = 0
    duplicates: int = 0
    statuses: int = 0
    ignored: bool = False
    warnings: list[str] = field(default_factory=list)


class SpoolSource:
    """One configured spool: ingest what is complete in new/, wait for more, retry rejects.

    `poll()` is what one `sync` pass calls; `wait()` blocks until new/ has files (polling, since
    inotify is not in the standard library). Only one process polls a spool at a time (a lock
    file); writers never need the lock.
    """

    def __init__(
        self,
        spool: SpoolSettings,
        *,
        engine,
        policies: clocks.Policies,
        path: Path | None = None,
        now_fn: Callable[[], datetime] = utcnow,
        batch: int = 200,
        templates_dir: Path | None = None,
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
        self.templates_dir = templates_dir
        self.durable_moves = durable_moves
        # With the whole settings, ingest sends receipts through domain.receipts (loop safety, rate
        # limit, after-hours rule, honest ETA); without settings no receipt is sent.
        self.settings = settings
        self.adapter = adapter_for(spool.adapter)
        self._state_written: datetime | None = None
        self._last_error = ""

    # -- directories --

    def ensure(self) -> None:
        ensure_spool(self.path)

    def pending(self, limit: int | None = None) -> list[str]:
        """Names of complete files in new/, oldest first (Maildir names start with the time)."""
        try:
            names = [e.name for e in os.scandir(self.path / "new") if not e.name.startswith(".") and e.is_file()]
        except FileNotFoundError:
            return []
        names.sort()
        return names[:limit] if limit else names

    def has_pending(self) -> bool:
        try:
            with os.scandir(self.path / "new") as entries:
                return any(not e.name.startswith(".") for e in entries)
        except FileNotFoundError:
            return False

    def wait(self, timeout: float, *, interval: float = WAIT_INTERVAL, stop: Callable[[], bool] | None = None) -> bool:
        """Block until new/ holds a file (True) or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.has_pending():
                return True
            if stop is not None and stop():
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(interval, left))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.ensure()
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- the pass --

    def poll(self, *, limit: int | None = None) -> PollResult:
        """Ingest every complete file in new/ (at most `limit`); return what happened."""
        result = PollResult()
        with self._locked():
            names = self.pending(limit)
            for start in range(0, len(names), self.batch):
                chunk = self._batch(names[start:start + self.batch])
                result.add(chunk)
                if chunk.failed:  # the store is unavailable: the rest would fail the same way
                    result.failed += [(name, "not tried: the store was unavailable")
                                      for name in names[start + self.batch:]]
                    break
            self._record_state(result, force=bool(names))
        return result

    def _batch(self, names: list[str]) -> PollResult:
        result = PollResult()
        done: list[str] = []
        rejects: list[tuple[str, str]] = []
        read: list[tuple[str, list]] = []
        for name in names:
            file = self.path / "new" / name
            try:
                payload = read_payload(file, max_bytes=self.spool.max_bytes)
                items = self.adapter(payload)
                messages = [self._message(payload, item, index, len(items)) if isinstance(item, Draft) else item
                            for index, item in enumerate(items)]
            except FileNotFoundError:
                continue  # another poller took it (a second `sync` on the same spool)
            except Rejected as error:
                rejects.append((name, str(error)))
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
                    rejected_names = {n for n, _ in rejects}
                    result = PollResult(failed=[(n, f"not stored: the store is unavailable: {error.orig}")
                                                for n in names if n not in rejected_names])
                    done = []
                    break
                self._count(result, outcome)
                done.append(name)
            if done:
                session.commit()
        except OperationalError as error:
            session.rollback()
            rejected_names = {n for n, _ in rejects}
            result = PollResult(failed=[(n, f"not stored: the store is unavailable: {error.orig}")
                                        for n in names if n not in rejected_names])
            done = []
        finally:
            session.close()
        # The messages are committed: only now do the files leave new/ (a crash here replays them).
        for name in done:
            self._move(name, "cur")
        result.files = len(done)
        for name, reason in rejects:
            self._reject(name, reason)
        result.rejected = rejects
        if self.durable_moves and (done or rejects):
            fsync_dir(self.path / "new")
            fsync_dir(self.path / "cur")
        return result

    @staticmethod
    def _count(result: PollResult, outcome: _Outcome) -> None:
        result.stored += outcome.stored
        result.duplicates += outcome.duplicates
        result.statuses += outcome.statuses
        result.ignored += outcome.ignored
        result.warnings += outcome.warnings

    def _store_batched(self, session: Session, read: list[tuple[str, list]], result: PollResult,
                       done: list[str]) -> list[tuple[str, list]]:
        """Store the files that hold only plain messages with one `ingest_batch` (a few queries and
        one INSERT per table for them all); returns the files left for the per-file path: those with
        status updates or identities to link, or all of them when the batch fails (a file that
        breaks ingest is then rejected on its own, as always)."""
        from agentdesk import ingest

        plain = [(name, items) for name, items in read
                 if items and all(not isinstance(item, StatusUpdate) and not item[1] for item in items)]
        if len(plain) < 2:
            return read
        messages = [item[0] for _, items in plain for item in items]
        try:
            with session.begin_nested():
                stored = ingest.ingest_batch(session, messages, policies=self.policies, now=self.now_fn(),
                                             settings=self.settings)
        except OperationalError:
            raise
        except Exception:
            return read
        position = 0
        for name, items in plain:
            outcome = _Outcome()
            for ingested in stored[position:position + len(items)]:
                if ingested.duplicate:
                    outcome.duplicates += 1
                else:
                    outcome.stored += 1
            position += len(items)
            self._count(result, outcome)
            done.append(name)
        batched = {name for name, _ in plain}
        return [(name, items) for name, items in read if name not in batched]

    def _message(self, payload: Payload, draft: Draft, index: int, count: int) -> tuple[InboundMessage, list[tuple[str, str]]]:
        """The InboundMessage of a draft, and the sender's other identities to link."""
        channel = draft.channel or self.spool.kind
        kind = customers.IDENTITY_KIND.get(channel, channel)
        address = draft.identities.get(kind, "")
        if not address:
            given = ", ".join(sorted(draft.identities)) or "none"
            raise Rejected(
                f"a {channel} spool identifies customers by {kind}, but this {self.spool.adapter} payload gives "
                f"the sender's {given}; set the spool's kind to match what the provider sends"
            )
        try:
            address = customers.normalise_address(kind, address)
        except InvalidInput as error:
            raise Rejected(f"sender: {error}") from None
        if kind == "email" and "@" not in address:
            raise Rejected(f"sender: {address!r} is not an email address")
        external_id = draft.external_id
        if not external_id:
            # No event id: the content hash is the external id (the same payload twice is one message).
            external_id = "sha256:" + hashlib.sha256(payload.body).hexdigest() + (f"#{index}" if count > 1 else "")
        links = []
        for other_kind, other in draft.identities.items():
            if other_kind in ("email", "phone") and other_kind != kind and other:
                try:
                    links.append((other_kind, customers.normalise_address(other_kind, other)))
                except InvalidInput:
                    pass
        message = InboundMessage(
            source=self.name, channel=channel, external_id=external_id, sender_address=address,
            sender_name=draft.sender_name, received_at=draft.received_at, subject=draft.subject,
            body_text=draft.body_text, body_html_text=draft.body_html_text, kind=draft.kind, bulk=draft.bulk,
            in_reply_to=draft.in_reply_to, references=draft.references, recipients=draft.recipients,
            conversation_hint=draft.conversation_hint, thread_key=draft.thread_key,
            attachments=draft.attachments, raw=payload.body, parse_error=draft.parse_error, headers=draft.headers,
        )
        return message, links

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
            kind = customers.IDENTITY_KIND.get(message.channel, message.channel)
            customer = queries.customer_by_identity(session=session, kind=kind, address=message.sender_address)
            if customer is not None:
                for link_kind, address in links:
                    link_identity(session, customer_id=customer.id, kind=link_kind, address=address, now=now)
        return outcome

    # -- moves --

    def _target(self, directory: str, name: str) -> Path:
        """Where `name` goes in `directory`: never over a kept file (a writer may reuse a name)."""
        target = self.path / directory / name
        counter = 1
        while target.exists() or target.with_name(target.name + ERROR_SUFFIX).exists():
            target = self.path / directory / f"{Path(name).stem}.{counter}{Path(name).suffix}"
            counter += 1
        return target

    def _move(self, name: str, directory: str) -> Path | None:
        try:
            target = self._target(directory, name)
            os.rename(self.path / "new" / name, target)
            return target
        except FileNotFoundError:
            return None  # moved by another poller

    def _reject(self, name: str, reason: str) -> None:
        target = self._target("rejected", name)
        sidecar = target.with_name(target.name + ERROR_SUFFIX)
        text = f"{reason}\n"
        temporary = self.path / "tmp" / (sidecar.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        if self.durable_moves:
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        os.rename(temporary, sidecar)
        try:
            os.rename(self.path / "new" / name, target)
        except FileNotFoundError:
            os.rename(sidecar, self.path / "tmp" / sidecar.name)  # moved by another poller; keep nothing stale
        if self.durable_moves:
            fsync_dir(self.path / "rejected")

    # -- rejected files --

    def rejected(self) -> list[tuple[str, str]]:
        """(file, reason) of every rejected file, oldest first."""
        folder = self.path / "rejected"
        if not folder.is_dir():
            return []
        found = []
        for entry in sorted(folder.iterdir()):
            if entry.is_file() and entry.suffix != ERROR_SUFFIX:
                sidecar = entry.with_name(entry.name + ERROR_SUFFIX)
                reason = sidecar.read_text(encoding="utf-8", errors="replace").strip() if sidecar.exists() else ""
                found.append((entry.name, reason))
        return found

    def retry(self) -> PollResult:
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
                if sidecar.exists():
                    history.mkdir(exist_ok=True)
                    os.rename(sidecar, history / f"{name}.{stamp}{ERROR_SUFFIX}")
                target = self.path / "new" / name
                if target.exists():
                    target = self.path / "new" / unique_name(Path(name).suffix)
                os.rename(folder / name, target)
            fsync_dir(self.path / "new")
        return self.poll()

    # -- bookkeeping --

    def _record_state(self, result: PollResult, *, force: bool) -> None:
        """last_sync / error of this spool for `stats`, written when something happened or every minute."""
        now = self.now_fn()
        error = "; ".join(reason for _, reason in result.failed[:1])
        stale = self._state_written is None or now - self._state_written >= STATE_REFRESH
        if not (force or stale or error != self._last_error):
            return
        try:
            with db.write_session(self.engine) as session:
                state = session.exec(select(SyncState).where(SyncState.source == self.name,
                                                             SyncState.folder == "")).first()
                if state is None:
                    state = SyncState(source=self.name, folder="")
                state.last_sync_at = now
                state.last_error = error
                session.add(state)
                session.commit()
        except OperationalError:
            return
        self._state_written = now
        self._last_error = error


def link_identity(session: Session, *, customer_id: int, kind: str, address: str, now: datetime) -> bool:
    """Give the customer another identity the payload proved (email, phone) when nobody has it yet.

    An identity already owned by another customer is left alone: joining two customers is an
    agent's decision (`agentdesk customer merge`), never an automatic one.
    """
    existing = session.exec(select(Identity).where(Identity.kind == kind, Identity.address == address)).first()
    if existing is not None:
        return False
    session.add(Identity(customer_id=customer_id, kind=kind, address=address, created_at=now))
    audit.record(session, agent=audit.SYSTEM, action="identity_linked", now=now, customer_id=customer_id,
                 kind=kind, address=address)
    return True


def apply_status(session: Session, update: StatusUpdate, *, now: datetime) -> bool:
    """Apply a provider's delivery callback to our outbound message's outbox row, when it is ours."""
    if not update.external_id:
        return False
    row = session.exec(
        select(Outbox).join(Message, col(Message.id) == col(Outbox.message_id))
        .where(Message.external_id == update.external_id, Message.direction == "outbound")
    ).first()
    if row is None:
        return False
    state = update.state.lower()
    if state in DELIVERED_STATES and row.state != "sent":
        row.state = "sent"
        row.sent_at = row.sent_at or now
        row.last_error = ""
    elif state in FAILED_STATES:
        row.state = "failed"
        row.last_error = update.error or f"the provider reported {state}"
        row.next_attempt_at = None
    else:
        return False
    session.add(row)
    return True


class SyncSpoolSource:
    kind = "spool"

    def __init__(self, spool, ctx):
        self.ctx = ctx
        self.name = spool.name
        self.inner = SpoolSource(spool, engine=ctx.engine, policies=ctx.policies, path=ctx.settings._resolve(spool.path),
                                 now_fn=ctx.now_fn, templates_dir=ctx.settings.templates_dir,
                                 settings=ctx.settings)
        self.inner.ensure()
        self._stop = threading.Event()

    def poll(self, *, progress=None):
        result = self.inner.poll()
        if progress is not None and result.files:
            progress(result.files, result.files, self.name)
        for name, reason in result.rejected:
            log.warning("spool %s: rejected %s: %s", self.name, name, reason)
        for warning in result.warnings:
            log.warning("spool %s: %s", self.name, warning)
        report = PollReport(self.name, fetched=result.files + len(result.rejected), stored=result.stored,
                                 duplicates=result.duplicates)
        if result.failed:
            first = result.failed[0][1]
            report.errors.append(f"spool {self.name}: {len(result.failed)} file(s) not stored: {first}")
            raise SourceError(report.errors[0])
        return report

    def wait(self, timeout: float) -> None:
        self.inner.wait(timeout, stop=self._stop.is_set)

    def interrupt(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()


def spool_sources(ctx) -> list[SyncSpoolSource]:
    return [SyncSpoolSource(spool, ctx) for spool in ctx.settings.spool]


def find_spool(settings: Settings, name: str) -> SpoolSettings:
    for spool in settings.spool:
        if spool.name == name:
            return spool
    known = ", ".join(s.name for s in settings.spool) or "none configured"
    raise NotFound(f"no spool named {name!r} in the config (known: {known})")


def open_spools(settings: Settings, engine, policies, *, source: str | None = None,
                  now_fn: Callable[[], datetime] = utcnow) -> list[SpoolSource]:
    """One SpoolSource per configured spool (or just `source`), directories created."""
    spools = [find_spool(settings, source)] if source else list(settings.spool)
    sources = []
    for spool in spools:
        item = SpoolSource(spool, engine=engine, policies=policies, path=settings._resolve(spool.path),
                           now_fn=now_fn, templates_dir=settings.templates_dir, settings=settings)
        item.ensure()
        sources.append(item)
    return sources


def sync_spools(sources: list[SpoolSource], *, report: Callable[[str], None] | None = None) -> bool:
    """One ingest pass over every spool; reports rejected files and failures; True when all were handled.

    Rejected files are handled input (reported, not a failure); a file that could not be stored
    (the store unavailable) makes the pass fail (DESIGN: sync --once exit status).
    """
    report = report or (lambda line: print(line, file=sys.stderr))
    ok = True
    for source in sources:
        try:
            result = source.poll()
        except OSError as error:
            report(f"spool {source.name}: cannot read {source.path}: {error.strerror or error}")
            ok = False
            continue
        report_poll(source.name, result, report)
        ok = ok and result.ok
    return ok


def report_poll(name: str, result: PollResult, report: Callable[[str], None]) -> None:
    for file, reason in result.rejected:
        report(f"spool {name}: rejected {file}: {reason}")
    for file, reason in result.failed[:5]:
        report(f"spool {name}: not stored {file}: {reason}")
    if len(result.failed) > 5:
        report(f"spool {name}: {len(result.failed) - 5} more files not stored")
    for warning in result.warnings:
        report(f"spool {name}: {warning}")


def outbound_sender(settings: Settings, spool: SpoolSettings):
    """The sender of a spool's replies (None: no outbound configured); the secret is read once, now."""
    from agentdesk.channels.webhook import outbound

    index = settings.spool.index(spool)
    secret = (lambda: spool.secret(f"spool[{index}] ({spool.name})")) if spool.secret_command else None
    base = settings.source.parent if settings.source else None
    return outbound.sender_for(spool, base=base, secret=secret)
