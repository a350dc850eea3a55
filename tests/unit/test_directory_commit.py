"""Group commit of files into a spool directory (commit.DirectoryCommitter): a round's contents
flushed together, each file renamed only after that, the directory synced after the renames,
each writer told in order with what concerns it, and no writer ever left waiting."""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from agentdesk.channels.webhook import commit as committing
from agentdesk.channels.webhook import spool as spooling


@pytest.fixture
def spool(tmp_path) -> Path:
    spooling.ensure_spool(tmp_path)
    return tmp_path


class Writer:
    """One file written into tmp/ and handed to a committer; what it was told, and when."""

    def __init__(self, spool: Path, data: bytes = b"{}", name: str | None = None):
        self.spool, self.data = spool, data
        self.writer = spooling.SpoolWriter(spool, name=name)
        self.writer.write(data)
        self.asked = self.told_at = 0.0
        self.error: OSError | None = None
        self.thread = ""
        self.told = threading.Event()

    @property
    def temporary(self) -> Path:
        return self.spool / "tmp" / self.writer.name

    @property
    def final(self) -> Path:
        return self.spool / "new" / self.writer.name

    def commit_later(self) -> None:
        self.asked = time.monotonic()
        self.writer.commit_later(self.done)

    def done(self, error: OSError | None) -> None:
        self.error, self.told_at, self.thread = error, time.monotonic(), threading.current_thread().name
        self.told.set()


def wait_told(writers: list[Writer]) -> None:
    for writer in writers:
        assert writer.told.wait(10), "never told"


class Recorder:
    """Stands in for a function: records each call (started, ended), holds the first until
    `open`, and can fail a given call."""

    def __init__(self, real, *, hold_first: bool = False, fail_call: int = 0, error: BaseException | None = None):
        self.real, self.hold_first = real, hold_first
        self.calls: list[tuple[float, float]] = []
        self.entered, self.released = threading.Event(), threading.Event()
        self.fail_call, self.error = fail_call, error

    def __call__(self, *arguments):
        started = time.monotonic()
        number = len(self.calls) + 1
        if number == 1 and self.hold_first:
            self.entered.set()
            self.released.wait(10)
        if number == self.fail_call:
            self.calls.append((started, time.monotonic()))
            raise self.error or OSError(errno.EIO, "Input/output error")
        result = self.real(*arguments)
        self.calls.append((started, time.monotonic()))
        return result

    def open(self) -> None:
        self.released.set()


def hold_first_round(monkeypatch) -> Recorder:
    """Hold the committer's first round before its flush until the Recorder is opened."""
    flush = Recorder(committing.DirectoryCommitter._flush, hold_first=True)
    monkeypatch.setattr(committing.DirectoryCommitter, "_flush", lambda self, batch: flush(self, batch))
    return flush


def second_round(spool: Path, held: Recorder, writers: list[Writer]) -> Writer:
    """Hand one file over and hold its round while `writers` hand theirs over, so they make the
    next round together; then let both rounds run. Returns the first writer, once all were told."""
    first = Writer(spool)
    first.commit_later()
    assert held.entered.wait(5)
    for writer in writers:
        writer.commit_later()
    held.open()
    wait_told([first, *writers])
    return first


class FlushLog(list):
    """Names flushed, in order; `threads`: which thread fsynced each name."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: dict[str, str] = {}


def recorded_flushes(monkeypatch) -> FlushLog:
    """Every syncfs ("syncfs") and fsync (the file's or directory's name) from now on."""
    flushed = FlushLog()
    real_syncfs, real_fsync = committing.syncfs, os.fsync

    def syncfs(fd: int) -> None:
        flushed.append("syncfs")
        real_syncfs(fd)

    def fsync(fd: int) -> None:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        flushed.append(name)
        flushed.threads[name] = threading.current_thread().name
        real_fsync(fd)

    monkeypatch.setattr(committing, "syncfs", syncfs)
    monkeypatch.setattr(os, "fsync", fsync)
    return flushed


def _syncfs_trusted_for_temporary_files() -> bool:
    import tempfile

    fd = os.open(tempfile.gettempdir(), os.O_RDONLY)
    try:
        return committing.syncfs_reports_errors(fd)
    finally:
        os.close(fd)


needs_syncfs = pytest.mark.skipif(
    not _syncfs_trusted_for_temporary_files(),
    reason="syncfs that reports write-back errors: Linux 5.8+, ext4/XFS/btrfs",
)


def test_files_handed_over_during_a_round_share_the_next_one_flushed_once_renamed_after_and_synced_after(
    spool, monkeypatch
):
    held = hold_first_round(monkeypatch)
    directory = Recorder(committing.fsync_dir)
    monkeypatch.setattr(committing, "fsync_dir", directory)
    first = Writer(spool, b'{"n": 0}')
    first.commit_later()
    assert held.entered.wait(5)
    asked = time.monotonic()
    others = [Writer(spool, b'{"n": %d}' % i) for i in range(1, 6)]
    for writer in others:  # while the first round runs: returns at once, told later
        writer.commit_later()
        assert time.monotonic() - writer.asked < 0.05
    assert not any(writer.told.is_set() for writer in [first, *others])
    assert not first.final.exists()  # not renamed before its content is flushed
    held.open()
    wait_told([first, *others])
    assert [writer.error for writer in [first, *others]] == [None] * 6
    assert len(held.calls) == 2 and len(directory.calls) == 2  # the five shared one round
    flush_started, flush_ended = held.calls[1]
    sync_started, sync_ended = directory.calls[1]
    assert asked <= flush_started and flush_ended <= sync_started
    for writer in others:
        assert writer.told_at >= sync_ended
        assert writer.final.read_bytes() == writer.data and not writer.temporary.exists()
    assert [writer.told_at for writer in others] == sorted(writer.told_at for writer in others)  # in order
    assert {writer.thread for writer in [first, *others]} == {f"commit {spool / 'new'}"}  # told by the committer


@needs_syncfs
def test_a_lone_file_is_synced_by_its_own_fsync_and_a_round_of_several_by_one_syncfs(spool, monkeypatch):
    flushed = recorded_flushes(monkeypatch)
    lone = Writer(spool)
    assert lone.writer.commit() == lone.writer.name
    assert flushed == [lone.writer.name, "new"]  # its content, then the directory
    flushed.clear()
    held = hold_first_round(monkeypatch)
    others = [Writer(spool) for _ in range(4)]  # opened while the committer runs: syncfs vouches for them
    first = second_round(spool, held, others)
    assert flushed == [first.writer.name, "new", "syncfs", "new"], flushed
    assert all(writer.error is None and writer.final.exists() for writer in others)


def test_without_syncfs_each_writer_fsyncs_its_own_file_and_the_committer_the_directory(spool, monkeypatch):
    """Each file's fsync in its writer's thread, so those of concurrent writers overlap (the disk
    serves them together) instead of waiting in line in the committer's."""
    monkeypatch.setattr(committing, "syncfs_available", lambda: False)
    flushed = recorded_flushes(monkeypatch)
    held = hold_first_round(monkeypatch)
    others = [Writer(spool) for _ in range(3)]
    first = second_round(spool, held, others)
    files = [writer.writer.name for writer in [first, *others]]
    assert flushed == [*files, "new", "new"]  # each file once, before its round; then the directory
    assert {flushed.threads[name] for name in files} == {threading.current_thread().name}
    assert flushed.threads["new"] == f"commit {spool / 'new'}"
    assert all(writer.final.exists() for writer in others)


def test_before_linux_5_8_syncfs_is_not_used(monkeypatch):
    """Its syncfs reported no write-back error: a 200 could go out for data that never reached
    the disk."""
    committing._libc.cache_clear()
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "host", "5.4.0-150-generic", "#1", "x86_64")))
    try:
        assert not committing.syncfs_available()
    finally:
        monkeypatch.undo()
        committing._libc.cache_clear()


@needs_syncfs
def test_after_syncfs_reports_an_error_each_file_s_own_fsync_says_whose_it_was(spool, monkeypatch):
    """A write-back error reported by syncfs may belong to any file of the file system: each file
    of the round is fsynced on its own, and only those whose fsync fails are refused; files opened
    before the error are never vouched for by a later syncfs (it reports an error only once)."""
    flushed: list[str] = []
    real_syncfs, real_fsync = committing.syncfs, os.fsync
    calls = []

    def syncfs(fd: int) -> None:
        calls.append("syncfs")
        flushed.append("syncfs")
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        real_syncfs(fd)

    broken = "broken.json"

    def fsync(fd: int) -> None:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        flushed.append(name)
        if name == broken:
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(committing, "syncfs", syncfs)
    monkeypatch.setattr(os, "fsync", fsync)
    Writer(spool).writer.commit()  # the committer runs: syncfs vouches for files opened from now on
    held = hold_first_round(monkeypatch)
    round_two = [Writer(spool), Writer(spool, name=broken), Writer(spool)]
    still_writing = Writer(spool)  # opened before the error, handed over after it
    second_round(spool, held, round_two)
    assert calls == ["syncfs"]
    assert [writer.error is None for writer in round_two] == [True, False, True]
    assert round_two[1].error.errno == errno.EIO and not round_two[1].temporary.exists()
    assert not round_two[1].final.exists()
    assert all(round_two[i].final.read_bytes() == round_two[i].data for i in (0, 2))
    flushed.clear()
    held = hold_first_round(monkeypatch)
    later = [Writer(spool), Writer(spool)]  # opened after the error: syncfs vouches for them
    first = Writer(spool)
    first.commit_later()
    assert held.entered.wait(5)
    for writer in [still_writing, *later]:
        writer.commit_later()
    held.open()
    wait_told([first, still_writing, *later])
    assert still_writing.writer.name in flushed and "syncfs" in flushed
    assert not any(writer.writer.name in flushed for writer in later)
    assert all(writer.error is None for writer in [first, still_writing, *later])


def test_when_the_directory_cannot_be_synced_the_renamed_files_writers_are_told(spool, monkeypatch):
    directory = Recorder(committing.fsync_dir, fail_call=1)
    monkeypatch.setattr(committing, "fsync_dir", directory)
    writer = Writer(spool)
    with pytest.raises(OSError) as raised:
        writer.writer.commit()
    assert raised.value.errno == errno.EIO
    later = Writer(spool)
    assert later.writer.commit() == later.writer.name
    assert len(directory.calls) == 2


def test_a_file_that_cannot_be_renamed_is_told_alone_and_in_its_turn(spool, monkeypatch):
    held = hold_first_round(monkeypatch)
    (spool / "new" / "clash.json" / "inside").mkdir(parents=True)  # a rename onto it fails
    stray = Writer(spool, name="clash.json")
    others = [Writer(spool) for _ in range(2)]
    second_round(spool, held, [others[0], stray, others[1]])
    assert len(held.calls) == 2  # the three shared a round
    assert isinstance(stray.error, OSError) and stray.error.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST)
    assert not stray.temporary.exists()
    assert all(writer.error is None and writer.final.read_bytes() == writer.data for writer in others)
    assert others[0].told_at <= stray.told_at <= others[1].told_at


def test_a_flush_that_does_not_finish_never_reports_success_and_the_committer_carries_on(spool, monkeypatch):
    held = hold_first_round(monkeypatch)
    held.fail_call, held.error = 2, KeyboardInterrupt()
    # These two arrive while the first round runs: they form the next one, whose flush is
    # interrupted; neither may be told it is durable.
    others = [Writer(spool) for _ in range(2)]
    first = second_round(spool, held, others)
    assert first.error is None
    assert all(isinstance(writer.error, OSError) and not writer.final.exists() for writer in others)
    later = Writer(spool)
    later.writer.commit()  # and the next writer is served
    assert later.final.exists()


def test_a_read_only_file_system_strands_no_writer(spool, monkeypatch):
    """Flush and clean-up both failing (an I/O error remounted the file system read-only): each
    writer is told, and the committer serves the next one."""

    def fails(*arguments) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", fails)
    monkeypatch.setattr(committing, "syncfs", fails)
    monkeypatch.setattr(os, "unlink", fails)
    writers = [Writer(spool) for _ in range(3)]
    for writer in writers:
        writer.commit_later()
    wait_told(writers)
    assert all(writer.error is not None and writer.error.errno == errno.EROFS for writer in writers)
    monkeypatch.setattr(os, "fsync", real_fsync)
    monkeypatch.undo()
    later = Writer(spool)
    assert later.writer.commit() == later.writer.name


def test_a_fault_inside_a_round_is_told_to_its_writers_and_the_committer_goes_on(spool, monkeypatch, capsys):
    real = committing.move_into_place
    faults = []

    def rename(temporary: str, destination: str):
        if not faults:
            faults.append(temporary)
            raise RuntimeError("a bug")
        return real(temporary, destination)

    monkeypatch.setattr(committing, "move_into_place", rename)
    writer = Writer(spool)
    with pytest.raises(OSError) as raised:
        writer.writer.commit()
    assert raised.value.errno == errno.EIO and "a bug" in str(raised.value)
    later = Writer(spool)
    assert later.writer.commit() == later.writer.name and later.final.exists()
    assert "RuntimeError: a bug" in capsys.readouterr().err


def test_a_committer_thread_that_cannot_start_tells_its_writer_and_the_next_request_tries_again(spool, monkeypatch):
    monkeypatch.setattr(committing, "_COMMITTERS", {})
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name.startswith("commit "):
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    writer = Writer(spool)
    with pytest.raises(OSError, match="can't start new thread"):
        writer.writer.commit()
    assert not writer.temporary.exists() and not writer.final.exists()
    monkeypatch.setattr(threading.Thread, "start", real_start)
    later = Writer(spool)
    assert later.writer.commit() == later.writer.name


def test_a_writer_whose_callback_fails_does_not_cost_the_others_their_answer(spool, monkeypatch, capsys):
    held = hold_first_round(monkeypatch)
    other = Writer(spool)
    broken = Writer(spool)

    def fails(error: OSError | None) -> None:
        broken.told.set()
        raise RuntimeError("a broken callback")

    broken.done = fails  # type: ignore[method-assign]
    second_round(spool, held, [broken, other])  # the same round, the broken one first
    assert other.error is None and other.final.exists() and broken.final.exists()
    assert "RuntimeError: a broken callback" in capsys.readouterr().err  # reported, not swallowed


def test_each_directory_has_one_committer_shared_by_its_writers(tmp_path, monkeypatch):
    synced: list[str] = []
    real = committing.fsync_dir

    def slow_fsync_dir(path) -> None:
        time.sleep(0.2)
        real(path)
        synced.append(os.path.basename(os.path.dirname(path)))

    monkeypatch.setattr(committing, "fsync_dir", slow_fsync_dir)
    for name in ("a", "b"):
        spooling.ensure_spool(tmp_path / name)
    barrier = threading.Barrier(16)

    def writer(i: int) -> None:
        path = tmp_path / ("a" if i % 2 else "b")
        barrier.wait()
        spooling.write_file(path, b"{}")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(os.listdir(tmp_path / "a" / "new")) == len(os.listdir(tmp_path / "b" / "new")) == 8
    # Eight writers each, one 0.2 s fsync of the directory at a time: a few shared rounds.
    assert synced.count("a") < 8 and synced.count("b") < 8, synced
    assert committing.directory_committer(tmp_path / "a" / "new") is committing.directory_committer(
        os.fspath(tmp_path / "a" / "new")
    )


def test_the_committer_ends_when_idle_and_the_next_request_starts_another(spool, monkeypatch):
    monkeypatch.setattr(committing.DirectoryCommitter, "IDLE_SECONDS", 1.0)
    monkeypatch.setattr(committing, "_COMMITTERS", {})
    name = f"commit {spool / 'new'}"

    def committers() -> int:
        return sum(thread.name == name for thread in threading.enumerate())

    def wait_for(count: int) -> bool:
        deadline = time.monotonic() + 10
        while committers() != count and time.monotonic() < deadline:
            time.sleep(0.02)
        return committers() == count

    spooling.write_file(spool, b"{}")
    assert wait_for(0)  # ended after its idle time
    spooling.write_file(spool, b"{}")  # served by a new one
    assert len(os.listdir(spool / "new")) == 2
    assert wait_for(0)


class Interrupted(Exception):
    pass


def test_a_writer_interrupted_while_waiting_leaves_no_other_writer_waiting(spool, monkeypatch):
    """A signal can interrupt the main thread waiting for its commit: the writers that joined its
    round after it must still be served, and its own file is still committed."""
    running = threading.Event()
    real = committing.fsync_dir

    def slow_fsync_dir(path) -> None:
        running.set()
        time.sleep(0.4)
        real(path)

    monkeypatch.setattr(committing, "fsync_dir", slow_fsync_dir)
    first = threading.Thread(target=spooling.write_file, args=(spool, b"{}"))
    first.start()
    assert running.wait(5)
    later: list[str] = []

    def later_writer() -> None:
        spooling.write_file(spool, b"{}")
        later.append("committed")

    joining = threading.Timer(0.05, later_writer)  # joins the round after the main thread did
    joining.daemon = True

    def interrupt(signum, frame) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        joining.start()
        signal.setitimer(signal.ITIMER_REAL, 0.15)
        with pytest.raises(Interrupted):
            spooling.write_file(spool, b'{"interrupted": true}')  # waits behind the first round
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    first.join(5)
    joining.join(5)
    assert later == ["committed"]
    deadline = time.monotonic() + 5
    while len(os.listdir(spool / "new")) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b'{"interrupted": true}' in [path.read_bytes() for path in (spool / "new").iterdir()]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_commits_with_a_committer_of_its_own(spool):
    """The parent's committer thread does not exist in a child made by fork: a child that writes
    into the same spool must not wait for it."""
    spooling.write_file(spool, b"{}")  # the parent's committer for new/ is running
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its commit returns
        code = 1
        try:
            timer = threading.Timer(10, lambda: os._exit(2))
            timer.start()
            spooling.write_file(spool, b"{}")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(os.listdir(spool / "new")) == 2


@needs_syncfs
def test_a_real_syncfs_flushes_without_error_here(spool):
    """Where syncfs is trusted it is called for real: a round of several files depends on it."""
    fd = os.open(spool, os.O_RDONLY | os.O_DIRECTORY)
    try:
        committing.syncfs(fd)
    finally:
        os.close(fd)


@pytest.mark.skipif(not os.path.isdir("/dev/shm") or not committing.syncfs_available(), reason="Linux 5.8+ only")
def test_syncfs_is_not_trusted_on_a_file_system_that_does_not_report_its_errors_to_it():
    """tmpfs here; overlayfs (a container's writable layer) is the one that matters: its syncfs
    does not pass the lower file system's data errors up."""
    fd = os.open("/dev/shm", os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert not committing.syncfs_reports_errors(fd)
    finally:
        os.close(fd)


def test_where_syncfs_cannot_be_trusted_each_file_of_a_round_is_fsynced(spool, monkeypatch):
    monkeypatch.setattr(committing, "syncfs_reports_errors", lambda fd: False)
    monkeypatch.setattr(committing, "_COMMITTERS", {})
    flushed = recorded_flushes(monkeypatch)
    Writer(spool).writer.commit()  # the committer runs
    held = hold_first_round(monkeypatch)
    others = [Writer(spool) for _ in range(3)]
    second_round(spool, held, others)
    assert "syncfs" not in flushed
    assert all(flushed.count(writer.writer.name) == 1 and writer.final.exists() for writer in others)
    assert {flushed.threads[writer.writer.name] for writer in others} == {threading.current_thread().name}


@needs_syncfs
def test_files_opened_before_the_committer_s_watch_are_each_fsynced_also_after_it_was_idle(spool, monkeypatch):
    """syncfs reports an error only if it happened after its descriptor was opened: a file opened
    before the committer started (or while it was idle, its watch closed) is vouched for by its
    own fsync, never by syncfs."""
    monkeypatch.setattr(committing.DirectoryCommitter, "IDLE_SECONDS", 0.3)
    monkeypatch.setattr(committing, "_COMMITTERS", {})
    flushed = recorded_flushes(monkeypatch)
    early = [Writer(spool) for _ in range(3)]  # no committer yet
    held = hold_first_round(monkeypatch)
    first = second_round(spool, held, early)
    assert all(writer.writer.name in flushed for writer in [first, *early])
    assert "syncfs" not in flushed
    name = f"commit {spool / 'new'}"
    deadline = time.monotonic() + 10
    while any(thread.name == name for thread in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    flushed.clear()
    idle = [Writer(spool) for _ in range(3)]  # opened while no committer runs
    held = hold_first_round(monkeypatch)
    first = second_round(spool, held, idle)
    assert all(writer.writer.name in flushed for writer in idle) and "syncfs" not in flushed
    flushed.clear()
    held = hold_first_round(monkeypatch)
    later = [Writer(spool) for _ in range(3)]  # opened while it runs: one syncfs for them
    first = second_round(spool, held, later)
    assert "syncfs" in flushed and not any(writer.writer.name in flushed for writer in later)


def test_a_committer_thread_that_fails_outside_a_round_refuses_its_queue_and_the_next_request_starts_anew(
    spool, monkeypatch, capsys
):
    """A fault before its first round (here opening its descriptor for syncfs): no writer is left
    waiting, and the directory is served again."""
    monkeypatch.setattr(committing, "_COMMITTERS", {})

    def broken(self) -> bool:
        raise ImportError("No module named '_ctypes'")

    monkeypatch.setattr(committing.DirectoryCommitter, "_open_watch", broken)
    writer = Writer(spool)
    with pytest.raises(OSError, match="_ctypes"):
        writer.writer.commit()
    assert not writer.temporary.exists() and not writer.final.exists()
    assert "ImportError" in capsys.readouterr().err
    monkeypatch.undo()
    later = Writer(spool)
    assert later.writer.commit() == later.writer.name and later.final.exists()


def test_without_ctypes_each_writer_fsyncs_its_own_file(spool, monkeypatch):
    """A Python built without ctypes cannot call syncfs: the commit still works, file by file."""
    monkeypatch.setattr(committing, "_COMMITTERS", {})

    def no_ctypes() -> bool:
        raise ImportError("No module named '_ctypes'")

    monkeypatch.setattr(committing, "syncfs_available", no_ctypes)
    flushed = recorded_flushes(monkeypatch)
    writer = Writer(spool)
    assert writer.writer.commit() == writer.writer.name and writer.final.read_bytes() == writer.data
    assert flushed.threads[writer.writer.name] == threading.current_thread().name and "syncfs" not in flushed
