"""Group commit of a directory's fsync (spool.DirectorySync): shared, never early, errors to all."""

from __future__ import annotations

import errno
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


def test_writers_arriving_during_an_fsync_share_the_next_one_and_none_returns_before_its_own(tmp_path, monkeypatch):
    syncs: list[tuple[float, float]] = []

    def slow_fsync_dir(path) -> None:
        started = time.monotonic()
        time.sleep(0.2)
        syncs.append((started, time.monotonic()))

    monkeypatch.setattr(spooling, "fsync_dir", slow_fsync_dir)
    writers = run_writers(spooling.DirectorySync(tmp_path), 12)
    assert [writer.raised for writer in writers] == [None] * 12
    assert 2 <= len(syncs) <= 3, syncs  # the first arrival alone, then those that came meanwhile
    for writer in writers:  # each returned after an fsync that began after it called
        assert any(writer.called <= started and ended <= writer.returned for started, ended in syncs)


def test_a_lone_writer_syncs_at_once_on_a_real_directory(tmp_path):
    syncer = spooling.DirectorySync(tmp_path)
    started = time.monotonic()
    syncer.sync()
    syncer.sync()
    assert time.monotonic() - started < 5


def test_a_failed_fsync_is_raised_in_every_writer_of_its_batch_and_the_next_batch_tries_again(tmp_path, monkeypatch):
    calls: list[float] = []

    def second_fails(path) -> None:
        calls.append(time.monotonic())
        time.sleep(0.2)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(spooling, "fsync_dir", second_fails)
    syncer = spooling.DirectorySync(tmp_path)
    writers = run_writers(syncer, 8)
    # The first arrival's fsync succeeded; the seven that came meanwhile shared the second, which
    # failed: each of them is told, with the disk's error.
    assert len(calls) == 2
    assert sum(writer.raised is None for writer in writers) == 1
    assert all(isinstance(w.raised, OSError) and w.raised.errno == errno.EIO for w in writers if w.raised)
    syncer.sync()  # a later writer gets a fresh fsync
    assert len(calls) == 3


def test_an_interrupted_fsync_never_reports_success_to_the_others_of_its_batch(tmp_path, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def first_slow_then_interrupted(path) -> None:
        calls.append(threading.get_ident())
        if len(calls) == 1:
            entered.set()
            release.wait(5)
            return
        raise KeyboardInterrupt

    monkeypatch.setattr(spooling, "fsync_dir", first_slow_then_interrupted)
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
    assert entered.wait(5)
    # These two arrive while the first fsync runs: they form the next batch, whose fsync is
    # interrupted in whichever of them runs it; the other must not be told it is durable.
    others = [threading.Thread(target=writer, args=(name,)) for name in ("second", "third")]
    for thread in others:
        thread.start()
    time.sleep(0.3)
    release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert outcomes["first"] == "synced"
    assert sorted([outcomes["second"], outcomes["third"]]) == ["KeyboardInterrupt", "OSError"], outcomes
    assert len(calls) == 2


def test_writers_of_one_directory_share_its_fsync_and_other_directories_have_their_own(tmp_path, monkeypatch):
    """What SpoolWriter.commit calls: sync_directory, one shared syncer per directory path."""
    synced: list[str] = []

    def slow_fsync_dir(path) -> None:
        time.sleep(0.2)
        synced.append(path.name)

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
    assert 2 <= synced.count("a") <= 3 and 2 <= synced.count("b") <= 3, synced


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
