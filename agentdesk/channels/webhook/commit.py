"""Group commit: complete files moved from a spool's `tmp/` into one of its directories (`new/`,
`rejected/`) durably, many at once, by a committer thread per directory.

A writer hands over a file it has written, open and not yet synced (`DirectoryCommitter.request`),
and goes on at once. The committer takes every file handed over since its last round and, for all
of them together:

1. makes their content durable: one syncfs(2) of the file system for the round (a file alone,
   or one that syncfs cannot vouch for, by its own fsync);
2. renames each into the directory, so nothing incomplete is ever visible there;
3. fsyncs the directory, so their names are durable;
4. tells each writer, in the order they handed over: `done(None)`, or `done(error)` for a file
   whose step failed (a file not renamed is removed from `tmp/`; one renamed whose directory
   could not be synced stays, complete, not known to be durable).

Under load a round covers many files with two flushes of the disk, where a file synced on its own
costs two by itself. Why a thread and callbacks: a writer that waits for the flushes blocks, is
woken and competes for the GIL again, for every file; the receiver answers from `done` instead and
goes straight back to reading its connection, and the committer wakes once per round.

What syncfs can vouch for. It reports a write-back error of the file system once to each open
descriptor it is called on, counted from when that descriptor was opened, and only since Linux
5.8. So the committer calls it on a descriptor of its own (its "watch", opened when its thread
starts) and trusts it only for files opened after the watch; once any syncfs of this process has
reported an error, every file opened before that moment is flushed by its own fsync (which reports
the errors of that file alone), and the round that saw the error too. Before Linux 5.8, or where
the C library has no syncfs, every file is fsynced on its own.
"""

from __future__ import annotations

import errno
import functools
import itertools
import os
import re
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Durable = Callable[[OSError | None], None]  # told once: None when durable, else the error

_OPENED = itertools.count(1)  # files and watches take a number when opened, in order
_trusted_from = 0  # a file numbered below this must be flushed by its own fsync


def opened() -> int:
    """The number of a file (or watch) just opened: taken after its open, before its first write."""
    return next(_OPENED)


def _distrust_files_open_now() -> None:
    global _trusted_from
    _trusted_from = next(_OPENED)


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    """syncfs from the C library, where it reports write-back errors (Linux 5.8 and later)."""
    version = re.match(r"(\d+)\.(\d+)", os.uname().release)
    if version is None or (int(version[1]), int(version[2])) < (5, 8):
        return None
    try:
        import ctypes  # only here: the spool's readers never need it

        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):  # a C library without it
        return None
    function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int
    return function


def syncfs_available() -> bool:
    return _libc_syncfs() is not None


def syncfs(fd: int) -> None:
    """syncfs(2): write out everything of the file system holding `fd`, flush the disk's cache,
    wait for both; OSError with the first write-back error since `fd` was opened (or last told)."""
    import ctypes

    function = _libc_syncfs()
    if function is None:
        raise OSError(errno.ENOSYS, "syncfs is not available here")
    if function(fd) != 0:  # ctypes lets go of the GIL for the call
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


@dataclass(slots=True)
class _Handover:
    fd: int  # the complete file, open; the committer closes it
    number: int  # from `opened()`
    temporary: str
    destination: str
    done: Durable
    failed: BaseException | None = None
    told: bool = False


class DirectoryCommitter:
    """The group commit of one directory (see the module's docstring). The committer thread ends
    after `IDLE_SECONDS` without a request; the next request starts another."""

    IDLE_SECONDS = 10.0

    def __init__(self, path: str | Path):
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._requests: list[_Handover] = []
        self._running = False  # a committer thread exists
        self._sleeping = False  # ... and waits for `_bell`, which a request releases once
        self._bell = threading.Lock()
        self._bell.acquire()
        self._watch: int | None = None  # the committer thread's descriptor for syncfs
        self._watch_number = 0

    def request(self, fd: int, number: int, temporary: str, name: str, done: Durable) -> None:
        """Commit the complete file open as `fd` (numbered `number` by `opened()`, its path
        `temporary`) into this directory as `name`; the descriptor is the committer's from now on."""
        handover = _Handover(fd, number, temporary, os.path.join(self.path, name), done)
        with self._lock:
            self._requests.append(handover)
            start, ring = not self._running, self._sleeping
            self._running, self._sleeping = True, False
        if start:
            try:
                threading.Thread(target=self._run, name=f"commit {self.path}", daemon=True).start()
            except BaseException as failed:  # noqa: BLE001 (no thread, e.g. at the process limit: nobody may wait)
                with self._lock:
                    stranded, self._requests = self._requests, []
                    self._running = False
                _abandon(stranded, failed)
        elif ring:
            self._bell.release()

    def _run(self) -> None:
        self._open_watch()
        while True:
            with self._lock:
                batch, self._requests = self._requests, []
                if not batch:
                    self._sleeping = True
            if batch:
                try:
                    self._commit(batch)
                except BaseException as failed:  # noqa: BLE001 (a bug here must not strand the writers)
                    traceback.print_exc()
                    _abandon([handover for handover in batch if not handover.told], failed)
            elif not self._bell.acquire(timeout=self.IDLE_SECONDS):
                self._close_watch()  # only this thread uses it; the next one opens its own
                with self._lock:
                    if self._sleeping:  # nobody rang: end; the next request starts a committer
                        self._running = self._sleeping = False
                        return
                self._bell.acquire()  # rung after the timeout: take that ring, it is ours

    def _commit(self, batch: list[_Handover]) -> None:
        self._flush(batch)
        renamed = []
        for handover in batch:
            _close(handover.fd)
            if handover.failed is not None:
                _unlink(handover.temporary)
            elif (failed := _rename(handover)) is not None:
                handover.failed = failed
            else:
                renamed.append(handover)
        if renamed:
            try:
                fsync_dir(self.path)
            except BaseException as failed:  # noqa: BLE001 (never told "durable" when the fsync did not finish)
                for handover in renamed:
                    handover.failed = failed
        for handover in batch:
            _tell(handover, handover.failed)

    def _flush(self, batch: list[_Handover]) -> None:
        """Make the content of the batch's files durable; what failed goes into each handover."""
        own = batch
        if len(batch) > 1 and self._open_watch():
            vouched = [h for h in batch if h.number > max(self._watch_number, _trusted_from)]
            if len(vouched) > 1:
                try:
                    syncfs(self._watch)  # type: ignore[arg-type]  # _open_watch opened it
                    own = [handover for handover in batch if handover not in vouched]
                except OSError:  # a write-back error somewhere: each file's own fsync says whose
                    _distrust_files_open_now()
                except BaseException as failed:  # noqa: BLE001
                    for handover in batch:
                        handover.failed = failed
                    return
        for handover in own:
            try:
                os.fsync(handover.fd)
            except BaseException as failed:  # noqa: BLE001
                handover.failed = failed

    def _open_watch(self) -> bool:
        """Open the descriptor syncfs is called on: it vouches only for files opened after it."""
        if self._watch is None and syncfs_available():
            try:
                self._watch = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                return False
            self._watch_number = opened()
        return self._watch is not None

    def _close_watch(self) -> None:
        if self._watch is not None:
            _close(self._watch)
            self._watch = None


def move_into_place(temporary: str, destination: str) -> OSError | None:
    """Rename a complete file to its place; on failure remove it (it was never acknowledged) and
    return the error."""
    try:
        os.rename(temporary, destination)
    except OSError as failed:
        _unlink(temporary)
        return failed
    return None


def _rename(handover: _Handover) -> OSError | None:
    return move_into_place(handover.temporary, handover.destination)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:  # gone, or a read-only file system: a stale file in tmp/ is reported, never read
        pass


def _abandon(handovers: list[_Handover], failed: BaseException) -> None:
    for handover in handovers:
        _close(handover.fd)
        _unlink(handover.temporary)
        _tell(handover, failed)


def _tell(handover: _Handover, failed: BaseException | None) -> None:
    """Tell a writer once, with its own copy of the error (one instance raised in many threads
    would share its traceback)."""
    if handover.told:
        return
    handover.told = True
    error = None
    if isinstance(failed, OSError):
        error = OSError(failed.errno, failed.strerror or str(failed), failed.filename)
    elif failed is not None:
        error = OSError(errno.EIO, f"the commit did not finish: {failed!r}")
    try:
        handover.done(error)
    except BaseException:  # noqa: BLE001 (one writer's failure must not stop the others' answers)
        traceback.print_exc()


_COMMITTERS: dict[str, DirectoryCommitter] = {}
_COMMITTERS_LOCK = threading.Lock()


def _forget_committers() -> None:
    """In a forked child: its parent's committer threads are not there, and their locks may be
    held by threads that are not there either; the child starts its own on first use."""
    global _COMMITTERS, _COMMITTERS_LOCK
    _COMMITTERS, _COMMITTERS_LOCK = {}, threading.Lock()


os.register_at_fork(after_in_child=_forget_committers)


def directory_committer(path: str | Path) -> DirectoryCommitter:
    """The one DirectoryCommitter of `path` in this process."""
    key = os.fspath(path)
    with _COMMITTERS_LOCK:
        committer = _COMMITTERS.get(key)
        if committer is None:
            committer = _COMMITTERS[key] = DirectoryCommitter(key)
    return committer
