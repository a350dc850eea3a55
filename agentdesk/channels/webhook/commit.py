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
5.8; a stacked file system (overlayfs: a container's writable layer) does not pass its lower file
system's data errors up to it. So the committer calls it only on Linux 5.8 or later, on a file
system known to report its own errors (ext4, XFS, btrfs), on a descriptor of its own (its "watch",
opened when its thread starts, closed while it is idle), and trusts it only for files opened after
the watch; once its syncfs has reported an error, every file opened before that moment is flushed by
its own fsync (which reports the errors of that file alone), and the round that saw the error too.
Everywhere else each writer fsyncs its own file before handing it over (`writers_flush`), so the
fsyncs of concurrent writers overlap, and the committer only renames and syncs the directory.
"""

from __future__ import annotations

import errno
import functools
import itertools
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Durable = Callable[[OSError | None], None]  # told once: None when durable, else the error

_OPENED = itertools.count(1)  # files and watches take a number when opened, in order

# statfs f_type of the file systems whose syncfs reports their own data write-back errors.
_SYNCFS_REPORTS_ERRORS = {0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs"}


def opened() -> int:
    """The number of a file (or watch) just opened: taken after its open, before its first write."""
    return next(_OPENED)


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@functools.cache
def _libc() -> tuple[Callable[[int], int], Callable[[int, object], int]] | None:
    """syncfs and fstatfs from the C library, on Linux 5.8 or later (where syncfs reports
    write-back errors); None elsewhere."""
    version = re.match(r"(\d+)\.(\d+)", os.uname().release)
    if not sys.platform.startswith("linux") or version is None or (int(version[1]), int(version[2])) < (5, 8):
        return None
    try:
        import ctypes  # only here: the spool's readers never need it

        libc = ctypes.CDLL(None, use_errno=True)
        syncfs, fstatfs = libc.syncfs, libc.fstatfs
    except Exception:  # noqa: BLE001 (no ctypes in this Python, a C library without them: fsync each file)
        return None
    syncfs.argtypes, syncfs.restype = [ctypes.c_int], ctypes.c_int
    fstatfs.argtypes, fstatfs.restype = [ctypes.c_int, ctypes.c_void_p], ctypes.c_int
    return syncfs, fstatfs


def syncfs_available() -> bool:
    return _libc() is not None


def syncfs_reports_errors(fd: int) -> bool:
    """Whether syncfs on `fd`'s file system reports that file system's data write-back errors."""
    import ctypes

    functions = _libc()
    if functions is None:
        return False
    buffer = ctypes.create_string_buffer(256)  # struct statfs: f_type, a C long, comes first
    if functions[1](fd, buffer) != 0:
        return False
    return ctypes.c_long.from_buffer(buffer).value in _SYNCFS_REPORTS_ERRORS


def syncfs(fd: int) -> None:
    """syncfs(2): write out everything of the file system holding `fd`, flush the disk's cache,
    wait for both; OSError with the first write-back error since `fd` was opened (or last told)."""
    import ctypes

    functions = _libc()
    if functions is None:
        raise OSError(errno.ENOSYS, "syncfs is not available here")
    if functions[0](fd) != 0:  # ctypes lets go of the GIL for the call
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


@dataclass(slots=True, eq=False)
class _Handover:
    fd: int  # the complete file, open; the committer closes it (-1 once closed)
    number: int  # from `opened()`
    temporary: str
    destination: str
    done: Durable
    flushed: bool  # fsynced by its writer already
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
        # Used by the committer thread only:
        self._watch: int | None = None  # the descriptor syncfs is called on
        self._watch_number = 0
        self._trusted_from = 0  # files numbered below this are flushed by their own fsync
        self._syncfs_refused = False  # refused here (a sandbox's filter): not tried again
        self._syncfs_usable: bool | None = None  # here, on this file system (None: not looked yet)

    @property
    def writers_flush(self) -> bool:
        """Whether each writer fsyncs its own file before handing it over: where syncfs cannot
        vouch for files here. Then the fsyncs of many writers overlap (the disk serves concurrent
        flushes together) instead of waiting in line in the committer."""
        if self._syncfs_usable is None:
            self._syncfs_usable = _syncfs_usable_on(self.path)
        return not self._syncfs_usable or self._syncfs_refused

    def request(self, fd: int, number: int, temporary: str, name: str, done: Durable, *, flushed: bool = False) -> None:
        """Commit the complete file open as `fd` (numbered `number` by `opened()`, its path
        `temporary`; `flushed` when its writer fsynced it) into this directory as `name`; the
        descriptor is the committer's from now on."""
        handover = _Handover(fd, number, temporary, os.path.join(self.path, name), done, flushed)
        with self._lock:
            self._requests.append(handover)
            start, ring = not self._running, self._sleeping
            self._running, self._sleeping = True, False
        if start:
            thread = threading.Thread(target=self._run, name=f"commit {self.path}", daemon=True)
            try:
                thread.start()
            except BaseException as failed:
                if thread.is_alive():  # interrupted after it started: it serves the queue
                    raise
                self._stop(failed)  # no thread (the process's limit): nobody may wait
                if not isinstance(failed, Exception):
                    raise
        elif ring:
            self._bell.release()

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as failed:  # noqa: BLE001 (the thread ends: nobody may wait for it)
            _report()
            self._stop(failed)

    def _stop(self, failed: BaseException) -> None:
        """No committer thread any more: the next request starts one; those queued are refused."""
        self._close_watch()
        with self._lock:
            stranded, self._requests = self._requests, []
            self._running = self._sleeping = False
        _abandon(stranded, failed)

    def _serve(self) -> None:
        self._open_watch()  # files opened from now on may share a syncfs
        while True:
            with self._lock:
                batch, self._requests = self._requests, []
                if not batch:
                    self._sleeping = True
            if batch:
                try:
                    self._commit(batch)
                except BaseException as failed:  # noqa: BLE001 (a fault here must not strand the writers)
                    _report()
                    _abandon([handover for handover in batch if not handover.told], failed)
            elif not self._bell.acquire(timeout=self.IDLE_SECONDS):
                self._close_watch()  # the next round opens another: files opened meanwhile fsync
                with self._lock:
                    if self._sleeping:  # nobody rang: end; the next request starts a committer
                        self._running = self._sleeping = False
                        return
                self._bell.acquire()  # rung after the timeout: take that ring, it is ours

    def _commit(self, batch: list[_Handover]) -> None:
        self._flush(batch)
        renamed = []
        for handover in batch:
            _close(handover)
            if handover.failed is not None:
                _unlink(handover.temporary)
            elif (failed := move_into_place(handover.temporary, handover.destination)) is not None:
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
        own = [handover for handover in batch if not handover.flushed]
        if len(own) > 1 and self._open_watch():
            trusted_from = max(self._watch_number, self._trusted_from)
            vouched = [handover for handover in own if handover.number > trusted_from]
            if len(vouched) > 1:
                try:
                    syncfs(self._watch)  # type: ignore[arg-type]  # _open_watch opened it
                    own = [handover for handover in own if handover.number <= trusted_from]
                except BaseException as failed:  # noqa: BLE001 (each file's own fsync says whose)
                    # The error was told to this watch only once: files open now must not count
                    # on a later syncfs to tell it.
                    self._trusted_from = opened()
                    if isinstance(failed, OSError) and failed.errno in (errno.EPERM, errno.ENOSYS):
                        self._syncfs_refused = True
                    if not isinstance(failed, Exception):
                        for handover in own:
                            handover.failed = failed
                        return
        for handover in own:
            try:
                os.fsync(handover.fd)
            except BaseException as failed:  # noqa: BLE001
                handover.failed = failed

    def _open_watch(self) -> bool:
        """Open the descriptor syncfs is called on, where syncfs can be trusted: it vouches only
        for files opened after it."""
        if self._watch is None and not self.writers_flush:
            try:
                watch = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                return False
            self._watch, self._watch_number = watch, opened()
        return self._watch is not None

    def _close_watch(self) -> None:
        if self._watch is not None:
            watch, self._watch = self._watch, None
            try:
                os.close(watch)
            except OSError:
                pass


def _syncfs_usable_on(path: str) -> bool:
    try:
        if not syncfs_available():
            return False
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except Exception:  # noqa: BLE001 (no directory yet, no ctypes: each file is fsynced by its writer)
        return False
    try:
        return syncfs_reports_errors(fd)
    finally:
        os.close(fd)


def move_into_place(temporary: str, destination: str) -> OSError | None:
    """Rename a complete file to its place; on failure remove it (it was never acknowledged) and
    return the error."""
    try:
        os.rename(temporary, destination)
    except OSError as failed:
        _unlink(temporary)
        return failed
    return None


def _close(handover: _Handover) -> None:
    """Close once: a descriptor number closed twice may by then be another thread's file."""
    fd, handover.fd = handover.fd, -1
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:  # gone, or a read-only file system: a stale file in tmp/ is reported, never read
        pass


def _report() -> None:
    try:
        traceback.print_exc()
    except Exception:  # noqa: BLE001 (stderr gone: the writers must still be told)
        pass


def _abandon(handovers: list[_Handover], failed: BaseException) -> None:
    for handover in handovers:
        _close(handover)
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
        _report()


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
