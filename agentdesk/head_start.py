"""A head start for `agentdesk sync --once`: the first IMAP round trips and the first parsing run
while the program is still importing its database layer.

Importing SQLAlchemy, SQLModel and pydantic takes the first ~0.4 s of the command on one core,
with the other idle and no mail fetched. `HeadStart.begin` (called by `cli.cmd_sync` before those
imports) reads the folder's checkpoint with the sqlite3 module alone and starts a thread that logs
in, SELECTs, lists what is new and fetches the first batches, and — for a big sync — starts the
parser processes and hands them those batches. `MailboxSource` then adopts the work only if it
is exactly what it would have done itself:

- the checkpoint it reads through the engine equals the one read here (another sync may have
  run in between, or a migration may have changed the database), and the database is the one
  read here at the schema revision this agentdesk writes (or did not exist yet: no checkpoint);
- the fetch was read-only (`BODY.PEEK`, on a folder SELECTed the way the normal path selects it);
  nothing is stored, acknowledged or acted on (after_fetch) before the normal path stores it, in
  the same transaction as its checkpoint, as always.

Otherwise the work is discarded (connection logged out, parsers stopped) and the pass runs as if
there had been no head start. Anything unusual means no head start at all: not `--once`,
`--source`, spools, several mailboxes or folders, a database other than a SQLite file, a
database this read does not understand.

Imports nothing beyond the standard library, the config and the IMAP module (stdlib imaplib).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger("agentdesk.sync")

# Batches (imap.FETCH_BATCH_MESSAGES each) fetched and handed to the parsers before the normal
# path takes over: enough to keep both parsers busy while the storing process imports.
EARLY_BATCHES = 2


@dataclass(frozen=True)
class Checkpoint:
    """What the database said about the folder: its revision (None: no database yet) and row."""

    revision: int | None
    uidvalidity: int | None
    last_uid: int | None  # None: no row for this folder

    def matches(self, row: Any) -> bool:
        """Whether the engine's SyncState row (or None) says the same."""
        if row is None:
            return self.last_uid is None
        return self.last_uid is not None and (row.uidvalidity, row.last_uid) == (self.uidvalidity, self.last_uid)


def sqlite_file(url: str) -> Path | None:
    """The file of a plain `sqlite:///path` URL; None for anything else (no query, no memory).
    Stricter than `store.db.sqlite_path`, which parses every URL form with SQLAlchemy: importing
    SQLAlchemy is what the head start runs during, and an unusual URL only means no head start."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    path = url[len(prefix):]
    if not path or path == ":memory:":
        return None
    return Path(path)


def read_checkpoint(path: Path, source: str, folder: str) -> Checkpoint | None:
    """The folder's checkpoint read with sqlite3 alone; None when this read cannot tell."""
    import sqlite3

    if not path.exists():
        return Checkpoint(revision=None, uidvalidity=None, last_uid=None)
    try:
        # mode=ro: never create or change a database here (that is the engine's job, migrations included).
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            revision = connection.execute("SELECT max(revision) FROM schema_revision").fetchone()[0]
            rows = connection.execute("SELECT uidvalidity, last_uid FROM syncstate WHERE source = ? AND folder = ?",
                                      (source, folder)).fetchall()
        finally:
            connection.close()
    except sqlite3.Error:
        return None
    if revision is None or len(rows) > 1:
        return None
    if not rows:
        return Checkpoint(revision=revision, uidvalidity=None, last_uid=None)
    uidvalidity, last_uid = rows[0]
    if not isinstance(last_uid, int) or not (uidvalidity is None or isinstance(uidvalidity, int)):
        return None
    return Checkpoint(revision=revision, uidvalidity=uidvalidity, last_uid=last_uid)


@dataclass
class EarlyBatch:
    """One fetched batch: its UIDs, messages, and (with parsers) each chunk's parse in flight."""

    uids: list[int]
    fetched: list[Any]
    parsed: list[tuple[Any, datetime]] | None = None  # (future, now) per chunk of sync.COMMIT_EVERY


@dataclass
class HeadStart:
    mailbox: Any
    folder: str
    database: Path
    checkpoint: Checkpoint
    password: str | None = None
    connection: Any = None  # imap.BulkConnection
    selected: Any = None  # imap.FolderState
    last_uid: int = 0
    listing: list[tuple[int, int]] = field(default_factory=list)
    batches: list[EarlyBatch] = field(default_factory=list)
    pool: Any = None
    error: BaseException | None = None
    checkpoint_row: Any = None  # the engine's SyncState row it was checked against (set by the taker)
    _thread: threading.Thread | None = None
    _taken: bool = False

    @classmethod
    def begin(cls, settings: Callable[[], Any], args: Any) -> HeadStart | None:
        """A head start running in its thread, or None when this sync must take the normal path.
        `settings`: loads the config (a broken one is reported by the normal path)."""
        try:
            plan = cls.plan(settings(), args)
        except Exception:  # a broken config is reported by the normal path
            return None
        if plan is None:
            return None
        plan._thread = threading.Thread(target=plan._run, name="sync-head-start", daemon=True)
        plan._thread.start()
        return plan

    @classmethod
    def plan(cls, settings: Any, args: Any) -> HeadStart | None:
        """The head start this command can take (not started), or None."""
        if not getattr(args, "once", False) or getattr(args, "source", None) is not None:
            return None
        if getattr(settings, "spool", None) or len(settings.mailbox) != 1:
            return None
        mailbox = settings.mailbox[0]
        if len(mailbox.folders) != 1:
            return None
        database = sqlite_file(settings.database_url)
        if database is None:
            return None
        checkpoint = read_checkpoint(database, mailbox.name, mailbox.folders[0])
        if checkpoint is None:
            return None
        return cls(mailbox=mailbox, folder=mailbox.folders[0], database=database, checkpoint=checkpoint)

    def _run(self) -> None:
        from agentdesk import sync_batches
        from agentdesk.channels.email import imap

        try:
            self.password = self.mailbox.password(f"mailbox {self.mailbox.name}")
            self.connection = imap.BulkConnection(imap.ServerSettings.from_mailbox(self.mailbox), self.password)
            self.selected = self.connection.select(self.folder, readonly=self.mailbox.after_fetch == "keep")
            if self.checkpoint.last_uid and self.checkpoint.uidvalidity == self.selected.uidvalidity:
                self.last_uid = self.checkpoint.last_uid
            if sync_batches.wants_parsers(self.selected, self.last_uid):
                self.pool = sync_batches.parser_pool()
            self.listing = self.connection.list_after(self.last_uid)
            for uids in sync_batches.batches(self.listing):
                if len(self.batches) == EARLY_BATCHES:
                    break
                fetched = self.connection.fetch(uids)
                batch = EarlyBatch(uids, fetched)
                if self.pool is not None and len(self.listing) >= sync_batches.PARALLEL_PARSE_MIN:
                    from agentdesk.channels.email.parse_job import parse_chunk

                    # No SLA policy yet (loading it imports the database layer): the storing process
                    # starts these conversations' clocks itself, as for any message without an opening.
                    batch.parsed = [
                        (self.pool.submit(parse_chunk, chunk, self.mailbox.name, now, None), now)
                        for chunk in sync_batches.chunks(fetched)
                        for now in [datetime.now(timezone.utc)]
                    ]
                self.batches.append(batch)
        except BaseException as error:  # the normal path connects again and reports what is wrong
            self.error = error

    def take(self, mailbox: Any, folder: str, row: Any, revision: int, database: Path | None) \
            -> HeadStart | None:
        """This head start for the normal path, if it is exactly what that path would have done;
        None (and the work discarded) otherwise. `mailbox`: the source's settings (the config is
        read again by then); `row`: the folder's SyncState read through the engine; `revision`: the
        schema revision this agentdesk writes; `database`: the engine's file."""
        if self._taken:
            return None
        self._taken = True
        if self._thread is not None:
            self._thread.join()
        usable = (
            self.error is None and mailbox == self.mailbox and folder == self.folder
            and database is not None and database.resolve() == self.database.resolve()
            and self.checkpoint.revision in (None, revision) and self.checkpoint.matches(row)
        )
        if not usable:
            if self.error is not None:
                log.debug("sync head start failed (%s); taking the normal path", self.error)
            self._discard()
            return None
        return self

    def discard(self) -> None:
        """Drop the work if nobody took it (the command failed or took another path)."""
        if self._taken:
            return
        self._taken = True
        if self._thread is not None:
            self._thread.join()
        self._discard()

    def _discard(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:
                pass
            self.connection = None
        self.batches = []
