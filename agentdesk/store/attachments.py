"""Attachments' bytes, kept once per content, and the reads of attachment rows.

Where the bytes live depends on the database (docs/data-model.md, "Attachments"):

- a SQLite database file: files named by their sha256 in `attachments/` beside it (store/files.py),
  so the database stays small and the bytes stay next to it on the one host that has it;
- PostgreSQL (or SQLite in memory): the `attachmentblob` table, because teams on several hosts
  share only the database: a file written by the sync on one host could not be opened by an
  agent on another.

Both are content-addressed: the key is the sha256 of the bytes (`Attachment.storage_key`), the
same bytes twice are kept once, and a key never comes from a sender. `put`, `read`, `has` and
`path_of` are the whole interface; callers never need to know which store they have.
"""

from __future__ import annotations

import errno
import json
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

from agentdesk.errors import NotFound
from agentdesk.store import files
from agentdesk.store.models import Attachment, AttachmentBlob, Draft, MessageRaw

# Writing a file waits on its fsync (and its directory's) or on the file system's journal; a few
# at once overlap those waits.
_WRITERS = 4
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_WRITERS, thread_name_prefix="attachment-writer")
        return _pool


def root_of(bind) -> Path | None:
    """The directory of a database's attachment files, or None when its bytes live in the database
    (PostgreSQL, SQLite in memory)."""
    if isinstance(bind, Session):
        bind = bind.get_bind()
    url = getattr(bind, "engine", bind).url
    if (
        url.get_backend_name() != "sqlite"
        or url.database in (None, "", ":memory:")
        or "mode=memory" in url.render_as_string()
    ):
        return None
    return Path(url.database).parent / "attachments"


class Writer:
    """The writes of one ingest chunk: started as attachments are read, finished before the rows
    that name them are written (so a stored row's bytes are always there; a crash in between
    leaves at most a file no row names, harmless under its content's name)."""

    def __init__(self, session: Session):
        self.session = session
        self.root = root_of(session)
        self.futures: list[Future] = []
        self.rows: dict[str, bytes] = {}  # database store: key -> bytes, inserted in one statement
        self.seen: set[str] = set()

    def submit(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """`durable=False` for bytes with a durable copy elsewhere (see files.put); the database
        store is as durable as its transaction either way."""
        if key in self.seen:
            return
        self.seen.add(key)
        if self.root is None:
            self.rows[key] = data
        else:
            # On threads even without an fsync: creating a file waits on the file system's journal,
            # which the database's checkpoints keep busy during a big sync (in the caller's thread
            # that was the sync's most expensive wait); the caller goes on meanwhile.
            self.futures.append(_executor().submit(_write_file, self.root, key, data, durable))

    def finish(self) -> None:
        futures, self.futures = self.futures, []
        errors = [future.exception() for future in futures]
        failed = next((error for error in errors if error is not None), None)
        if failed is not None:
            raise failed
        if self.rows:
            _insert_blobs(self.session, self.rows)
            self.rows = {}


def _write_file(root: Path, key: str, data: bytes, durable: bool) -> None:
    try:
        written = files.put(root, data, durable=durable)  # a no-op for bytes kept before: content-addressed
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            # The files lie beside the database, on its disk: to ingest and the sources this is the
            # store's full disk, reported in one line and retried as the database's own would be.
            raise OperationalError("store an attachment's bytes", None, error) from error
        raise
    if written != key:
        raise ValueError(f"attachment bytes changed while being stored (expected {key}, wrote {written})")


def _insert_blobs(session: Session, rows: dict[str, bytes]) -> None:
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    table = AttachmentBlob.__table__  # type: ignore[attr-defined]  # set by SQLModel
    statement = module.insert(table).on_conflict_do_nothing(index_elements=["sha256"])
    session.execute(statement, [{"sha256": key, "data": data} for key, data in rows.items()])


def put(*, session: Session, data: bytes) -> str:
    """Keep `data` (once: the same bytes again is a no-op) and return its key. On the database
    store it is written in the session's transaction."""
    key = files.key_of(data)
    if root_of(session) is None and _blob_kept(session, key):
        return key  # kept before (a draft saved again as the agent types): the bytes need not travel again
    writer = Writer(session)
    writer.submit(key, data)
    writer.finish()
    return key


def _blob_kept(session: Session, key: str) -> bool:
    """Whether the database store has `key`, without reading its bytes."""
    found = session.execute(select(col(AttachmentBlob.sha256)).where(col(AttachmentBlob.sha256) == key))
    return found.first() is not None


def has(*, session: Session, key: str) -> bool:
    root = root_of(session)
    if root is not None:
        return files.has(root, key)
    return _blob_kept(session, key)


def read(*, session: Session, key: str) -> bytes:
    """The bytes kept under `key`; NotFound when there are none."""
    root = root_of(session)
    if root is not None:
        return files.read(root, key)
    blob = session.get(AttachmentBlob, key)
    if blob is None:
        raise NotFound(f"the file {key[:12]}… is not in the database's attachment store")
    return bytes(blob.data)


def discard(*, session: Session, key: str) -> None:
    """Forget the bytes kept under `key` (found damaged), so a `put` writes them afresh."""
    root = root_of(session)
    if root is not None:
        if files.has(root, key):
            files.path_of(root, key).unlink(missing_ok=True)
        return
    blob = session.get(AttachmentBlob, key)
    if blob is not None:
        session.delete(blob)


def path_of(*, session: Session, key: str) -> Path | None:
    """The file holding `key`'s bytes when the store is files and it is there, else None. Named by
    its hash: hand a person or a program a copy under a safe name instead (app/attachments.py)."""
    root = root_of(session)
    if root is None or not files.has(root, key):
        return None
    return files.path_of(root, key)


def stored_keys(*, session: Session) -> list[str]:
    """Every key a row says is stored, once each, and those drafts' files name: what `db copy`
    carries."""
    statement = select(col(Attachment.storage_key)).where(col(Attachment.state) == "stored").distinct()
    keys = {key for (key,) in session.execute(statement) if key}
    for (envelope,) in session.execute(select(col(Draft.envelope)).where(col(Draft.envelope).contains('"files"'))):
        try:
            keys.update(str(f.get("key", "")) for f in json.loads(envelope).get("files", ()) if isinstance(f, dict))
        except (ValueError, AttributeError):
            continue  # edited by hand into nonsense: the draft reads it as empty too
    return sorted(key for key in keys if key)


# --- rows ------------------------------------------------------------------------------------------


def raw_of(*, session: Session, message_id: int) -> bytes | None:
    raw = session.get(MessageRaw, message_id)
    return bytes(raw.raw) if raw is not None else None


def mark_stored(*, session: Session, attachment_ids: Sequence[int]) -> None:
    """Rows whose bytes were taken from the raw message into the store."""
    for attachment_id in attachment_ids:
        row = session.get(Attachment, attachment_id)
        if row is not None:
            row.state, row.reason = "stored", ""
            session.add(row)
