"""Spool directories: the Maildir discipline that webhook payloads are written and read by.

Layout of a spool (DESIGN, config contract):

    tmp/       writers create files here ...
    new/       ... and rename them here when complete; agentdesk reads only this directory
    cur/       files whose messages are stored (or that were handled: status callbacks, ignored events)
    rejected/  files that cannot be accepted, each with `<name>.error` saying exactly why

A file is `*.json` (a JSON payload as delivered) or `*.http` (`Content-Type: …` CRLF CRLF and the
raw body, for form and multipart payloads). `agentdesk.sync.sources.spool` stores what is in
`new/`, exactly once.

Whoever can write into `new/` is a stranger as far as this module is concerned: an entry is read
only when it is a regular file with one link, opened without following a symbolic link and
checked on the open descriptor, so nothing in `new/` can make agentdesk read outside the spool.
"""

from __future__ import annotations

import errno
import itertools
import os
import random
import socket
import stat
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from agentdesk.channels.webhook import commit as committing
from agentdesk.channels.webhook.adapters import Payload, Rejected
from agentdesk.channels.webhook.commit import Durable
from agentdesk.channels.webhook.commit import fsync_dir as fsync_dir
from agentdesk.sanitize import printable

SUBDIRS = ("tmp", "new", "cur", "rejected")
EXTENSIONS = (".json", ".http")
ERROR_SUFFIX = ".error"
RETRIED_DIR = "retried"  # rejected/retried/: sidecars of rejections that were retried (kept, not deleted)
LOCK_FILE = ".agentdesk.lock"
SIDECAR_MAX_BYTES = 64 * 1024  # a reason is one line; a bigger sidecar was not written by us

_HOST = socket.gethostname().replace("/", "_").replace(":", "_").replace(".", "_") or "localhost"
_COUNTER = itertools.count()
_PID = os.getpid()  # os.getpid() is a system call each time; a fork gives the child its own below


def _forked() -> None:
    global _PID
    _PID = os.getpid()


os.register_at_fork(after_in_child=_forked)
# Opening never follows a link, never blocks on a FIFO and never makes a terminal ours.
_OPEN_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_OPEN_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --- writing: the Maildir discipline -----------------------------------------------------------


def ensure_spool(path: Path) -> None:
    for sub in SUBDIRS:
        (path / sub).mkdir(parents=True, exist_ok=True)


def unique_name(extension: str) -> str:
    """A Maildir-style name unique across time, processes, threads and hosts."""
    # R: random bits for a name never seen before even if a pid is reused within a nanosecond;
    # uniqueness, not secrecy, so no system call for them.
    return f"{time.time_ns()}.P{_PID}Q{next(_COUNTER)}R{random.getrandbits(32):08x}.{_HOST}{extension}"


def spool_header(content_type: str) -> tuple[bytes, str]:
    """What a payload's file starts with, and its extension: nothing for JSON (a `*.json` file is
    the payload as delivered), a `Content-Type` line and a blank line for anything else (`*.http`).

    The content type is the sender's: whitespace and controls in it are folded to single spaces,
    so it stays one header line.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return b"", ".json"
    value = " ".join("".join(c if c.isprintable() else " " for c in content_type).split())
    header = f"Content-Type: {value or 'application/octet-stream'}\r\n\r\n"
    return header.encode("latin-1", "replace"), ".http"


def spool_bytes(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The file content and extension for a payload: JSON as delivered, anything else as *.http."""
    header, extension = spool_header(content_type)
    return header + body, extension


class SpoolWriter:
    """One file on its way into a spool: written into `tmp/`, then `commit` makes it durable and
    renames it into `new/`; `discard` (or leaving the `with` block without a commit) removes it.

    The receiver streams a request body through one, so a payload is never held in memory and
    nothing reaches `new/` before it was verified and complete.
    """

    def __init__(self, path: Path, *, extension: str = ".json", name: str | None = None, durable: bool = True):
        self.path = path
        self.name = name or unique_name(extension)
        self.durable = durable
        self.size = 0
        # Paths as text: joined for every request the receiver stores, where pathlib's joins cost
        # more than the system calls they name.
        self._directory = os.fspath(path)
        self._temporary = os.path.join(self._directory, "tmp", self.name)
        self._fd: int | None = os.open(self._temporary, _OPEN_CREATE, 0o640)
        self._number = committing.opened()

    def write(self, data: bytes) -> None:
        assert self._fd is not None, "written after commit or discard"
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)

    def read_back(self, offset: int = 0) -> bytes:
        """What was written so far from `offset` on (for a check that needs the whole body, e.g. a
        form signature)."""
        assert self._fd is not None, "read after commit or discard"
        return os.pread(self._fd, self.size - offset, offset)

    def commit(self, target: Path | None = None) -> str:
        """Make the file durable and move it into new/ (or to `target`), then fsync that directory:
        when this returns the file survives a power cut (with `durable`). Returns the file's name.
        Raises what failed: the temporary file is then removed, unless only the directory's fsync
        failed (the file stays in place, complete, not known to be durable). Interrupted while it
        waits (a signal), the commit still completes in the committer's thread."""
        finished = threading.Lock()
        finished.acquire()
        outcome: list[OSError | None] = []

        def done(error: OSError | None) -> None:
            outcome.append(error)
            finished.release()

        name = self.commit_later(done, target)
        finished.acquire()
        if outcome[0] is not None:
            raise outcome[0]
        return name

    def commit_later(self, done: Durable, target: Path | None = None) -> str:
        """Hand the complete file to the committer of new/ (or of `target`'s directory) and return
        its name at once; `done(None)` is called, from the committer's thread, once the file is in
        place and durable (see `commit.DirectoryCommitter`), or `done(error)`. Without `durable`,
        moved here and told at once."""
        assert self._fd is not None, "committed twice"
        fd, self._fd = self._fd, None
        folder, name = (
            os.path.split(os.fspath(target))
            if target is not None
            else (os.path.join(self._directory, "new"), self.name)
        )
        if self.durable:
            committer = committing.directory_committer(folder)
            flushed = committer.writers_flush
            if flushed:  # here syncfs cannot vouch for it: its own fsync, beside other writers'
                try:
                    os.fsync(fd)
                except OSError as error:
                    os.close(fd)
                    self._unlink()
                    done(error)
                    return name
            committer.request(fd, self._number, self._temporary, name, done, flushed=flushed)
        else:
            os.close(fd)
            done(committing.move_into_place(self._temporary, os.path.join(folder, name)))
        return name

    def discard(self) -> None:
        """Remove the temporary file: it was never acknowledged, so it is nobody's data."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._unlink()

    def _unlink(self) -> None:
        try:
            os.unlink(self._temporary)
        except FileNotFoundError:
            pass

    def __enter__(self) -> SpoolWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.discard()


def write_file(
    path: Path, data: bytes, *, extension: str = ".json", name: str | None = None, durable: bool = True
) -> str:
    """Write `data` into `path/tmp/`, flush it to disk, rename it into `path/new/`, fsync `new/`.

    Returns the file name. When this returns, the file survives a power cut (with `durable`).
    """
    with SpoolWriter(path, extension=extension, name=name, durable=durable) as writer:
        writer.write(data)
        return writer.commit()


def write_payload(path: Path, body: bytes, content_type: str, *, durable: bool = True) -> str:
    data, extension = spool_bytes(body, content_type)
    return write_file(path, data, extension=extension, durable=durable)


# --- housekeeping ------------------------------------------------------------------------------

# A file in tmp/ this much older than its last write was left by a writer that died: the receiver
# writes a request within its body deadline (minutes at most), then hands it to the committer (which
# moves it within a round) or removes it at once.
STALE_TMP_SECONDS = 3600


@dataclass(frozen=True)
class StaleFile:
    name: str
    size: int
    age: float  # seconds since its last write


def stale_tmp_files(path: Path, *, older_than: float = STALE_TMP_SECONDS, now: float | None = None) -> list[StaleFile]:
    """Entries of the spool's tmp/ not written for `older_than` seconds, oldest first: what a writer
    that died (a killed receiver, a crashed script) left. Never followed: a link is its own entry."""
    now = time.time() if now is None else now
    found = []
    try:
        with os.scandir(path / "tmp") as entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    continue
                age = now - info.st_mtime
                if age >= older_than:
                    found.append(StaleFile(entry.name, info.st_size, age))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(found, key=lambda stale: -stale.age)


def remove_stale_tmp_files(
    path: Path, *, older_than: float = STALE_TMP_SECONDS, now: float | None = None
) -> tuple[list[StaleFile], list[tuple[str, str]]]:
    """Remove what `stale_tmp_files` finds: (removed, [(name, why not) for those that stayed]).

    Safe while writers run: a file in tmp/ was never acknowledged (the receiver answers 200 only
    after the rename into new/), and one written to within `older_than` is left alone."""
    removed, kept = [], []
    for stale in stale_tmp_files(path, older_than=older_than, now=now):
        try:
            os.unlink(path / "tmp" / stale.name)
        except FileNotFoundError:
            continue
        except OSError as error:
            kept.append((stale.name, error.strerror or str(error)))
            continue
        removed.append(stale)
    return removed, kept


# --- reading -----------------------------------------------------------------------------------

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def not_regular(mode: int) -> str:
    """Why an entry of this mode is never read as a spool file ("" for a regular file)."""
    if stat.S_ISREG(mode):
        return ""
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    if stat.S_ISLNK(mode):
        return (
            f"not a regular file but {kind}: links are never followed (the link itself was moved here, "
            f"its target was not read)"
        )
    return f"not a regular file but {kind}: a spool file is a regular file renamed into new/"


def open_spool_file(file: Path) -> tuple[int, os.stat_result]:
    """An open descriptor of `file` and its fstat, when it is a regular file with one link.

    Raises Rejected with the reason for anything else: a symbolic link (even one swapped in after
    the directory was listed: O_NOFOLLOW), a link loop, a directory, FIFO, socket or device, a
    file with other hard links (its content would also live outside the spool), or one that
    cannot be opened. FileNotFoundError when it is gone (another poller took it).
    """
    before = os.lstat(file)
    reason = not_regular(before.st_mode)
    if reason:
        raise Rejected(reason)  # never opened: opening a device or a FIFO can have effects
    try:
        fd = os.open(file, _OPEN_READ)
    except FileNotFoundError:
        raise
    except OSError as error:
        if error.errno == errno.ELOOP:  # swapped for a link since the lstat
            raise Rejected(not_regular(stat.S_IFLNK)) from None
        if error.errno == errno.ENXIO:  # a socket swapped in
            raise Rejected(not_regular(stat.S_IFSOCK)) from None
        raise Rejected(f"cannot be opened: {error.strerror or error}") from None
    try:
        opened = os.fstat(fd)
        reason = not_regular(opened.st_mode)
        if not reason and opened.st_nlink > 1:
            reason = (
                f"a regular file with {opened.st_nlink} hard links: its content also lives outside new/, "
                f"so it is not read (writers rename a file into new/; they do not link it)"
            )
        if reason:
            raise Rejected(reason)
    except BaseException:
        os.close(fd)
        raise
    return fd, opened


def read_spool_file(file: Path, *, max_bytes: int) -> tuple[bytes, os.stat_result]:
    """The content of the regular file `file` (see `open_spool_file`), read through the one
    descriptor that was checked; Rejected when it is over `max_bytes` (by its size or by what
    could be read, should it grow while read)."""
    fd, opened = open_spool_file(file)
    try:
        if opened.st_size > max_bytes:
            raise Rejected(f"over the size limit: {opened.st_size} bytes > max_bytes {max_bytes}")
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise Rejected(f"over the size limit: more than max_bytes {max_bytes} bytes")
    except OSError as error:
        raise Rejected(f"cannot be read: {error.strerror or error}") from None
    finally:
        os.close(fd)
    return b"".join(chunks), opened


def read_sidecar(file: Path) -> str:
    """The reason in a `.error` sidecar, read without following links and at most a screenful."""
    try:
        data, _ = read_spool_file(file, max_bytes=SIDECAR_MAX_BYTES)
    except (OSError, Rejected):
        return ""
    return printable(data.decode("utf-8", "replace").strip())


def rejected_files(path: Path) -> list[tuple[str, str]]:
    """(file, reason) of every entry in the spool's rejected/, oldest first; the reason is its
    sidecar. Entries that are not regular files (a rejected link, directory, FIFO) are listed too."""
    folder = path / "rejected"
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        if entry.name.startswith(".") or entry.name.endswith(ERROR_SUFFIX):
            continue
        if entry.name == RETRIED_DIR and entry.is_dir(follow_symlinks=False):
            continue
        found.append((entry.name, read_sidecar(folder / (entry.name + ERROR_SUFFIX))))
    return found


def read_payload(file: Path, *, max_bytes: int) -> Payload:
    """The spool file as a Payload; Rejected with the exact reason when it cannot be one."""
    kind = not_regular(os.lstat(file).st_mode)
    if kind:
        raise Rejected(kind)
    if file.suffix not in EXTENSIONS:
        raise Rejected(f"unknown file type '{printable(file.suffix or '(none)')}': spool files are *.json or *.http")
    data, opened = read_spool_file(file, max_bytes=max_bytes)
    written_at = datetime.fromtimestamp(opened.st_mtime, tz=timezone.utc)
    if file.suffix == ".json":
        return Payload(file.name, "application/json", data, written_at)
    separator = data.find(b"\r\n\r\n")
    width = 4
    if separator < 0 or data.find(b"\n\n", 0, separator) >= 0:
        separator, width = data.find(b"\n\n"), 2
    if separator < 0:
        raise Rejected("*.http file without the blank line that ends its Content-Type header")
    content_type = ""
    for line in data[:separator].decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-type":
            content_type = value.strip()
    if not content_type:
        raise Rejected("*.http file without a Content-Type header line")
    return Payload(file.name, content_type, data[separator + width :], written_at)
