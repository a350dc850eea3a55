"""Group commit of files into a spool directory (spool.DirectoryCommitter): the contents of a
round flushed together, each file renamed only after that, the directory synced after the
renames, errors to all they concern, run by a committer thread that tells each writer when its
file is durable."""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from pathlib import Path

import pytest

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


def second_round(spool: Path, contents: Recorder, writers: list[Writer]) -> Writer:
    """Hand one file over and hold its round's flush (`contents` holds its first call) while
    `writers` hand theirs over, so they make the next round together; then let both rounds run.
    Returns the first writer, once all were told."""
    first = Writer(spool)
    first.commit_later()
    assert contents.entered.wait(5)
    for writer in writers:
        writer.commit_later()
    contents.open()
    wait_told([first, *writers])
    return first


class Recorder:
    """Stands in for one of the committer's steps: records each call (started, ended), holds the
    first until `open`, and can fail a given call."""

    def __init__(self, real, *, hold_first: bool = False, fail_call: int = 0, error: BaseException | None = None):
        self.real, self.hold_first = real, hold_first
        self.calls: list[tuple[float, float]] = []
        self.entered, self.released = threading.Event(), threading.Event()
        self.fail_call, self.error = fail_call, error

    def __call__(self, argument) -> None:
        started = time.monotonic()
        number = len(self.calls) + 1
        if number == 1 and self.hold_first:
            self.entered.set()
            self.released.wait(10)
        self.real(argument)
        self.calls.append((started, time.monotonic()))
        if number == self.fail_call:
            raise self.error or OSError(errno.EIO, "Input/output error")

    def open(self) -> None:
        self.released.set()


def test_files_handed_over_during_a_round_share_the_next_one_flushed_once_renamed_after_and_synced_after(
    spool, monkeypatch
):
    contents = Recorder(spooling.sync_contents, hold_first=True)
    directory = Recorder(spooling.fsync_dir)
    monkeypatch.setattr(spooling, "sync_contents", contents)
    monkeypatch.setattr(spooling, "fsync_dir", directory)
    first = Writer(spool, b'{"n": 0}')
    first.commit_later()
    assert contents.entered.wait(5)
    asked = time.monotonic()
    others = [Writer(spool, b'{"n": %d}' % i) for i in range(1, 6)]
    for writer in others:  # while the first round runs: returns at once, told later
        writer.commit_later()
        assert time.monotonic() - writer.asked < 0.05
    assert not any(writer.told.is_set() for writer in [first, *others])
    assert not first.final.exists()  # not renamed before its content is flushed
    contents.open()
    wait_told([first, *others])
    assert [writer.error for writer in [first, *others]] == [None] * 6
    assert len(contents.calls) == 2 and len(directory.calls) == 2  # the five shared one round
    flush_started, flush_ended = contents.calls[1]
    sync_started, sync_ended = directory.calls[1]
    assert asked <= flush_started and flush_ended <= sync_started
    for writer in others:
        assert writer.told_at >= sync_ended
        assert writer.final.read_bytes() == writer.data and not writer.temporary.exists()
    assert {writer.thread for writer in [first, *others]} == {f"commit {spool / 'new'}"}  # told by the committer


def test_a_lone_file_is_synced_by_its_own_fsync_and_a_round_of_several_by_one_syncfs(spool, monkeypatch):
    flushed: list[str] = []
    real_syncfs, real_fsync = spooling.syncfs, os.fsync

    def syncfs(fd: int) -> None:
        flushed.append("syncfs")
        real_syncfs(fd)

    def fsync(fd: int) -> None:
        flushed.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(spooling, "syncfs", syncfs)
    monkeypatch.setattr(os, "fsync", fsync)
    lone = Writer(spool)
    assert lone.writer.commit() == lone.writer.name
    assert flushed == [lone.writer.name, "new"]  # its content, then the directory
    flushed.clear()
    writers = [Writer(spool) for _ in range(4)]
    contents = spooling.sync_contents
    started = threading.Event()

    def held(fds: list[int]) -> None:
        started.wait(5)
        contents(fds)

    monkeypatch.setattr(spooling, "sync_contents", held)
    for writer in writers:
        writer.commit_later()
    started.set()
    wait_told(writers)
    # The first file may come alone (its own fsync); those that came meanwhile share one syncfs.
    assert "syncfs" in flushed and not any(name.endswith(".json") for name in flushed[1:]), flushed
    assert all(writer.final.exists() for writer in writers)


def test_without_syncfs_each_file_of_a_round_is_fsynced(spool, monkeypatch):
    def missing(fd: int) -> None:
        raise OSError(errno.ENOSYS, "syncfs is not available here")

    fsynced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        fsynced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(spooling, "syncfs", missing)
    monkeypatch.setattr(os, "fsync", fsync)
    writers = [Writer(spool) for _ in range(3)]
    fds = [os.open(writer.temporary, os.O_RDONLY) for writer in writers]
    try:
        spooling.sync_contents(fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert fsynced == [writer.writer.name for writer in writers]


def test_a_round_whose_contents_cannot_be_flushed_is_refused_whole_and_the_next_round_tries_again(spool, monkeypatch):
    contents = Recorder(spooling.sync_contents, hold_first=True, fail_call=2)
    monkeypatch.setattr(spooling, "sync_contents", contents)
    failing = [Writer(spool) for _ in range(4)]
    first = second_round(spool, contents, failing)
    assert first.error is None and first.final.exists()
    for writer in failing:  # each told the disk's error; nothing of theirs is left anywhere
        assert isinstance(writer.error, OSError) and writer.error.errno == errno.EIO
        assert not writer.final.exists() and not writer.temporary.exists()
    assert len({id(writer.error) for writer in failing}) == len(failing)  # each its own instance
    later = Writer(spool)
    later.writer.commit()  # a later writer gets a fresh round
    assert later.final.read_bytes() == later.data


def test_when_the_directory_cannot_be_synced_the_renamed_files_writers_are_told(spool, monkeypatch):
    directory = Recorder(spooling.fsync_dir, fail_call=1)
    monkeypatch.setattr(spooling, "fsync_dir", directory)
    writer = Writer(spool)
    with pytest.raises(OSError) as raised:
        writer.writer.commit()
    assert raised.value.errno == errno.EIO
    later = Writer(spool)
    assert later.writer.commit() == later.writer.name
    assert len(directory.calls) == 2


def test_a_file_that_cannot_be_renamed_is_told_alone_and_removed(spool, monkeypatch):
    contents = Recorder(spooling.sync_contents, hold_first=True)
    monkeypatch.setattr(spooling, "sync_contents", contents)
    (spool / "new" / "clash.json" / "inside").mkdir(parents=True)  # a rename onto it fails
    stray = Writer(spool, name="clash.json")
    others = [Writer(spool) for _ in range(2)]
    second_round(spool, contents, [others[0], stray, others[1]])
    assert len(contents.calls) == 2  # the three shared a round
    assert isinstance(stray.error, OSError) and stray.error.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST)
    assert not stray.temporary.exists()
    assert all(writer.error is None and writer.final.read_bytes() == writer.data for writer in others)


def test_a_flush_that_does_not_finish_never_reports_success_and_the_committer_carries_on(spool, monkeypatch):
    contents = Recorder(spooling.sync_contents, hold_first=True, fail_call=2, error=KeyboardInterrupt())
    monkeypatch.setattr(spooling, "sync_contents", contents)
    # These two arrive while the first round runs: they form the next one, whose flush is
    # interrupted; neither may be told it is durable.
    others = [Writer(spool) for _ in range(2)]
    first = second_round(spool, contents, others)
    assert first.error is None
    assert all(isinstance(writer.error, OSError) for writer in others)
    later = Writer(spool)
    later.writer.commit()  # and the next writer is served
    assert later.final.exists()


def test_a_writer_whose_callback_fails_does_not_cost_the_others_their_answer(spool, capsys):
    broken, other = Writer(spool), Writer(spool)

    def fails(error: OSError | None) -> None:
        raise RuntimeError("a broken callback")

    broken.writer.commit_later(fails)
    other.commit_later()
    wait_told([other])
    assert other.error is None and broken.final.exists()
    Writer(spool).writer.commit()
    assert "RuntimeError: a broken callback" in capsys.readouterr().err  # reported, not swallowed


def test_each_directory_has_one_committer_shared_by_its_writers(tmp_path, monkeypatch):
    synced: list[str] = []
    real = spooling.fsync_dir

    def slow_fsync_dir(path) -> None:
        time.sleep(0.2)
        real(path)
        synced.append(os.path.basename(os.path.dirname(path)))

    monkeypatch.setattr(spooling, "fsync_dir", slow_fsync_dir)
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
    assert 1 <= synced.count("a") <= 3 and 1 <= synced.count("b") <= 3, synced
    assert len(os.listdir(tmp_path / "a" / "new")) == len(os.listdir(tmp_path / "b" / "new")) == 8


def test_the_committer_ends_when_idle_and_the_next_request_starts_another(spool, monkeypatch):
    monkeypatch.setattr(spooling.DirectoryCommitter, "IDLE_SECONDS", 0.2)
    monkeypatch.setattr(spooling, "_COMMITTERS", {})
    name = f"commit {spool / 'new'}"

    def committers() -> int:
        return sum(thread.name == name for thread in threading.enumerate())

    spooling.write_file(spool, b"{}")
    assert committers() == 1
    deadline = time.monotonic() + 5
    while committers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert committers() == 0
    spooling.write_file(spool, b"{}")
    assert committers() == 1
    assert len(os.listdir(spool / "new")) == 2


class Interrupted(Exception):
    pass


def test_a_writer_interrupted_while_waiting_leaves_no_other_writer_waiting(spool, monkeypatch):
    """A signal can interrupt the main thread waiting for its commit: the writers that joined its
    round after it must still be served."""
    running = threading.Event()
    real = spooling.fsync_dir

    def slow_fsync_dir(path) -> None:
        running.set()
        time.sleep(0.4)
        real(path)

    monkeypatch.setattr(spooling, "fsync_dir", slow_fsync_dir)
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
            spooling.write_file(spool, b"{}")  # waits behind the first round, first in the next
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    first.join(5)
    joining.join(5)
    assert later == ["committed"]


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


def test_a_real_syncfs_flushes_without_error_here(spool):
    """Where the C library has syncfs (Linux), it is called for real: a round of several files
    depends on it."""
    fd = os.open(spool, os.O_RDONLY | os.O_DIRECTORY)
    try:
        spooling.syncfs(fd)
    finally:
        os.close(fd)
