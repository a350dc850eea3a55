"""Files by their content: attachments' bytes, each stored once under its sha256.

A file is named by the hex sha256 of its bytes (its key, what `Attachment.storage_key` holds) and
lives at `<root>/<aa>/<key>`, so a file sent twice, or received and forwarded, is one copy. A
name a sender chose never becomes a path here: only a key of 64 hex digits does, checked.
Durable writes go to a temporary file in the root and are renamed into place after an fsync, so
a crash leaves either the whole file or none under a key. Bytes with a durable copy elsewhere (a
mail's attachment, in its raw message) are written in place: readers check a file against its
key, and a torn one is taken again from that copy (app/attachments.py).

The root is `attachments/` beside a SQLite database file. Callers go through store/attachments.py,
which decides per database: PostgreSQL keeps the bytes in its own table instead, because teams
on several hosts share only the database (docs/data-model.md, "Attachments").
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from agentdesk.errors import NotFound

_KEY = re.compile(r"[0-9a-f]{64}")


def key_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def path_of(root: Path, key: str) -> Path:
    if not _KEY.fullmatch(key or ""):
        raise NotFound(f"{key!r} is not a stored file's key")
    # One level of 256 directories, as git does: a second level made a new directory for almost
    # every file of a first sync, and creating directories cost more than writing the files.
    return root / key[:2] / key


def put(root: Path, data: bytes, *, durable: bool = True) -> str:
    """Store `data` (once: the same bytes again is a no-op); its key. `durable`: write a
    temporary file, fsync it, rename it into place and fsync its directory before returning;
    without, the file is written in place and a crash may leave it torn or lost: for bytes that
    have a durable copy elsewhere (a mail's attachment in its raw message)."""
    key = key_of(data)
    target = path_of(root, key)
    if target.exists() and target.stat().st_size == len(data):
        return key
    if not target.parent.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
    if not durable:
        _write_in_place(root, target, data)
        return key
    handle, temporary = tempfile.mkstemp(dir=root, prefix=".incoming-")
    try:
        # mkstemp's 0600 would lock out the agents of a team on one host (each their own Unix
        # user): a file is as readable as the store's directory is.
        os.fchmod(handle, root.stat().st_mode & 0o666)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    # The rename is durable once its directory is: a row naming the key is committed after this.
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return key


def _write_in_place(root: Path, target: Path, data: bytes) -> None:
    """Create `target` and write `data` into it, with no temporary file and no rename: creating
    a file and renaming it cost as much as the write on the initial sync of a mailbox (a file
    and a directory operation each). Only for bytes with a durable copy elsewhere: a file torn
    by a crash differs from its key, which readers check, and is taken again from that copy."""
    handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(handle, root.stat().st_mode & 0o666)  # as readable as the store, as in put()
        view = memoryview(data)
        while view:
            view = view[os.write(handle, view) :]
    except BaseException:
        os.close(handle)
        target.unlink(missing_ok=True)
        raise
    os.close(handle)


def has(root: Path, key: str) -> bool:
    try:
        return path_of(root, key).is_file()
    except NotFound:
        return False


def read(root: Path, key: str) -> bytes:
    """The bytes stored under `key`; NotFound when they are not (never stored, or withheld)."""
    path = path_of(root, key)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"the file {key[:12]}… is not in the attachment store ({root})") from None
