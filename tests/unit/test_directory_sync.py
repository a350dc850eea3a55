"""Group commit of a directory's fsync (spool.DirectorySync): shared, never early, errors to all,
run by a committer thread that tells each writer when its entry is durable."""

from __future__ import annotations

import errno
import os
import signal
import threading
import time

import pytest

from agentdesk.channels.webhook import spool as spooling


class Writer:
    called = returned = 0.0
    raised: BaseException | None = None


def run_writers(syncer: spooling.DirectorySync, count: int) -> list[Writer]:
    """`count` threads call sync at once: when each called it, when it returned, what it raised."""
    barrier = threading.Barrier(count)
    writers = [Writer() for _ in range(count)]

    def write(writer: Writer) -> None:
        barrier.wait()
        writer.called = time.monotonic()
        try:
            syncer.sync()
        except OSError as error:
            writer.raised = error
        writer.returned = time.monotonic()

    threads = [threading.Thread(target=write, args=(writer,)) for writer in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return writers


class Gate:
    """An fsync_dir that records each call and holds the first until `open` is called."""

    def __init__(self, fail_call: int = 0, error: BaseException | None = None):
        self.calls: list[tuple[float, float]] = []  # (started, ended)
        self.entered, self.released = threading.Event(), threading.Event()
        self.fail_call, self.error = fail_call, error

    def __call__(self, path) -> None:
        started = time.monotonic()
        number = len(self.calls) + 1
        if number == 1:
            self.entered.set()
            self.released.wait(10)
        else:
            time.sleep(0.05)
        self.calls.append((started, time.monotonic()))
        if number == self.fail_call:
            raise self.error or OSError(errno.EIO, "Input/output error")

    def open(self) -> None:
        self.released.set()


def test_writers_arriving_during_an_fsync_share_the_next_one_and_none_returns_before_its_own(tmp_path, monkeypatch):
    syncs: list[tuple[float, float]] = []

    def slow_fsync_dir(path) -> None:
        started = time.monotonic()
        time.sleep(0.2)
        syncs.append((started, time.monotonic()))

    monkeypatch.setattr(spooling, "fsync_dir", slow_fsync_dir)
    writers = run_writers(spooling.DirectorySync(tmp_path), 12)
    assert [writer.raised for writer in writers] == [None] * 12
    assert 1 <= len(syncs) <= 3, syncs  # the first arrivals, then those that came meanwhile
    for writer in writers:  # each returned after an fsync that began after it called
        assert any(writer.called <= started and ended <= writer.returned for started, ended in syncs)


def test_a_request_returns_at_once_and_is_told_from_the_committer_after_an_fsync_that_began_later(
    tmp_path, monkeypatch
):
    gate = Gate()
    monkeypatch.setattr(spooling, "fsync_dir", gate)
    syncer = spooling.DirectorySync(tmp_path)
    told: list[tuple[str, OSError | None, float, str]] = []
    lock = threading.Lock()

    def done(name: str):
        def tell(error: OSError | None) -> None:
            with lock:
                told.append((name, error, time.monotonic(), threading.current_thread().name))

        return tell

    syncer.request(done("first"))
    assert gate.entered.wait(5)
    asked = time.monotonic()
    for name in ("second", "third"):  # while the first fsync runs: returns at once, told later
        started = time.monotonic()
        syncer.request(done(name))
        assert time.monotonic() - started < 0.05
    assert [name for name, *_ in told] == []
    gate.open()
    deadline = time.monotonic() + 5
    while len(told) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [(name, error) for name, error, *_ in told] == [("first", None), ("second", None), ("third", None)]
    assert len(gate.calls) == 2  # the two that came meanwhile shared one fsync ...
    second_started, second_ended = gate.calls[1]
    assert asked <= second_started  # ... that began after they asked,
    assert all(when >= second_ended for name, _, when, _ in told if name != "first")  # and were told after it
    assert {thread for *_, thread in told} == {f"fsync {tmp_path}"}  # by the committer, not by the writers


def test_a_lone_writer_syncs_at_once_on_a_real_directory(tmp_path):
    syncer = spooling.DirectorySync(tmp_path)
    started = time.monotonic()
    syncer.sync()
    syncer.sync()
    assert time.monotonic() - started < 5


def test_a_failed_fsync_is_raised_in_every_writer_of_its_batch_and_the_next_batch_tries_again(tmp_path, monkeypatch):
    gate = Gate(fail_call=2)
    monkeypatch.setattr(spooling, "fsync_dir", gate)
    syncer = spooling.DirectorySync(tmp_path)
    first = Writer()

    def write_first() -> None:
        syncer.sync()
        first.returned = time.monotonic()

    thread = threading.Thread(target=write_first)
    thread.start()
    assert gate.entered.wait(5)
    threading.Timer(0.3, gate.open).start()
    # These seven arrive while the first fsync runs: they share the second, which fails, and
    # each of them is told, with the disk's error.
    writers = run_writers(syncer, 7)
    thread.join(5)
    assert first.returned and len(gate.calls) == 2
    assert all(isinstance(w.raised, OSError) and w.raised.errno == errno.EIO for w in writers), writers
    syncer.sync()  # a later writer gets a fresh fsync
    assert len(gate.calls) == 3


def test_an_fsync_that_does_not_finish_never_reports_success_and_the_committer_carries_on(tmp_path, monkeypatch):
    gate = Gate(fail_call=2, error=KeyboardInterrupt())
    monkeypatch.setattr(spooling, "fsync_dir", gate)
    syncer = spooling.DirectorySync(tmp_path)
    outcomes: dict[str, str] = {}

    def writer(name: str) -> None:
        try:
            syncer.sync()
            outcomes[name] = "synced"
        except BaseException as error:  # noqa: BLE001 (what each writer is told is what is checked)
            outcomes[name] = type(error).__name__

    first = threading.Thread(target=writer, args=("first",))
    first.start()
    assert gate.entered.wait(5)
    # These two arrive while the first fsync runs: they form the next batch, whose fsync is
    # interrupted; neither may be told it is durable.
    others = [threading.Thread(target=writer, args=(name,)) for name in ("second", "third")]
    for thread in others:
        thread.start()
    time.sleep(0.3)
    gate.open()
    for thread in [first, *others]:
        thread.join(5)
    assert outcomes == {"first": "synced", "second": "OSError", "third": "OSError"}
    syncer.sync()  # and the next writer is served
    assert len(gate.calls) == 3


def test_a_writer_whose_callback_fails_does_not_cost_the_others_their_answer(tmp_path, capsys):
    syncer = spooling.DirectorySync(tmp_path)
    told = threading.Event()

    def broken(error: OSError | None) -> None:
        raise RuntimeError("a broken callback")

    syncer.request(broken)
    syncer.request(lambda error: told.set())
    assert told.wait(5)
    syncer.sync()
    assert "RuntimeError: a broken callback" in capsys.readouterr().err  # reported, not swallowed


def test_writers_of_one_directory_share_its_fsync_and_other_directories_have_their_own(tmp_path, monkeypatch):
    """What SpoolWriter.commit calls: sync_directory, one shared syncer per directory path."""
    synced: list[str] = []

    def slow_fsync_dir(path) -> None:
        time.sleep(0.2)
        synced.append(os.path.basename(path))

    monkeypatch.setattr(spooling, "fsync_dir", slow_fsync_dir)
    barrier = threading.Barrier(16)

    def writer(i: int) -> None:
        barrier.wait()
        spooling.sync_directory(tmp_path / ("a" if i % 2 else "b"))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert 1 <= synced.count("a") <= 3 and 1 <= synced.count("b") <= 3, synced


def test_the_committer_ends_when_idle_and_the_next_request_starts_another(tmp_path, monkeypatch):
    monkeypatch.setattr(spooling.DirectorySync, "IDLE_SECONDS", 0.2)
    syncer = spooling.DirectorySync(tmp_path)
    name = f"fsync {tmp_path}"

    def committers() -> int:
        return sum(thread.name == name for thread in threading.enumerate())

    syncer.sync()
    assert committers() == 1
    deadline = time.monotonic() + 5
    while committers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert committers() == 0
    syncer.sync()
    assert committers() == 1


class Interrupted(Exception):
    pass


def test_a_writer_interrupted_while_waiting_leaves_no_other_writer_waiting(tmp_path, monkeypatch):
    """A signal can interrupt the main thread waiting for its batch's fsync: the writers that
    joined the batch after it must still get theirs."""
    running = threading.Event()

    def slow_fsync_dir(path) -> None:
        running.set()
        time.sleep(0.4)

    monkeypatch.setattr(spooling, "fsync_dir", slow_fsync_dir)
    syncer = spooling.DirectorySync(tmp_path)
    first = threading.Thread(target=syncer.sync)
    first.start()
    assert running.wait(5)
    later: list[str] = []

    def later_writer() -> None:
        syncer.sync()
        later.append("synced")

    joining = threading.Timer(0.05, later_writer)  # joins the batch after the main thread did
    joining.daemon = True

    def interrupt(signum, frame) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        joining.start()
        signal.setitimer(signal.ITIMER_REAL, 0.15)
        with pytest.raises(Interrupted):
            syncer.sync()  # waits behind the first fsync, first in the next batch
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    first.join(5)
    joining.join(5)
    assert later == ["synced"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_syncs_with_a_committer_of_its_own(tmp_path):
    """The parent's committer thread does not exist in a child made by fork: a child that writes
    into the same directory must not wait for it."""
    spooling.sync_directory(tmp_path)  # the parent's committer for tmp_path is running
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its sync returns
        code = 1
        try:
            timer = threading.Timer(10, lambda: os._exit(2))
            timer.start()
            spooling.sync_directory(tmp_path)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
