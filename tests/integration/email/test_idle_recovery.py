"""IDLE comes back by itself. The running worker, IDLE on a real Dovecot, loses its connection —
its imap process killed, then the whole server stopped and started again on the same port — and
reconnects on a short backoff, polls once and IDLEs again: mail delivered after the server's
return is stored within 5 s. While the server is down it tries a handful of times, not in a busy
loop, and it stops at once when asked, backing off or not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from integration.email import mailgen
from integration.email.servers import mailbox_config

from agentdesk.channels.email import imap

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
# Dovecot lets a young imap process (under ~10 s old) live out its first seconds when the server
# stops: the connection stays up meanwhile (and still reports new mail). Restarting the server
# under an older connection is the case where the connection really goes down with it.
DOVECOT_GRACE = 11.0


class Attempts:
    """Every connection the worker opens (bulk and IDLE), when, and whether it worked."""

    def __init__(self, monkeypatch):
        self.tried: list[tuple[float, bool]] = []
        self.idle_opened: list[float] = []
        self._lock = threading.Lock()
        attempts = self
        bulk, idler = imap.BulkConnection, imap.Idler

        class CountedBulk(bulk):
            def __init__(self, *args, **kwargs):
                attempts._count(super().__init__, args, kwargs)

        class CountedIdler(idler):
            def __init__(self, *args, **kwargs):
                attempts._count(super().__init__, args, kwargs)
                with attempts._lock:
                    attempts.idle_opened.append(time.monotonic())

        monkeypatch.setattr(imap, "BulkConnection", CountedBulk)
        monkeypatch.setattr(imap, "Idler", CountedIdler)

    def _count(self, connect, args, kwargs) -> None:
        started = time.monotonic()
        try:
            connect(*args, **kwargs)
        except BaseException:
            with self._lock:
                self.tried.append((started, False))
            raise
        with self._lock:
            self.tried.append((started, True))

    def between(self, start: float, end: float) -> list[tuple[float, bool]]:
        with self._lock:
            return [attempt for attempt in self.tried if start <= attempt[0] < end]

    def idle_since(self, moment: float, *, within: float = 15) -> float:
        """When an IDLE connection opened after `moment` (waiting for one)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self._lock:
                opened = [at for at in self.idle_opened if at >= moment]
            if opened:
                time.sleep(0.3)  # the poll after it has run and IDLE is on
                return opened[0]
            time.sleep(0.02)
        raise AssertionError("the worker did not open an IDLE connection")


def _stored_within(desk, count: int, since: float, limit: float = 5.0) -> float:
    """Seconds from `since` until the database holds `count` messages (at most `limit`)."""
    while desk.count("SELECT count(*) FROM message") < count:
        assert time.monotonic() - since < limit, f"message {count} not in the database within {limit} s"
        time.sleep(0.02)
    return time.monotonic() - since


def _kill_imap_processes(dovecot, user: str) -> int:
    """SIGKILL every imap process serving `user` (as an OOM killer or an admin would)."""
    pids = [
        int(line.split()[2])
        for line in dovecot.doveadm_run("who", "-1").splitlines()[1:]
        if line.split()[:2] == [user, "imap"]
    ]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return len(pids)


def test_idle_comes_back_after_a_killed_process_and_a_restart(own_dovecot, tmp_path, desk_factory, monkeypatch):
    server = own_dovecot
    user = server.add_user()
    messages = iter(mailgen.corpus(4, seed=31))
    desk = desk_factory(mailbox_config(tmp_path, server, user, 1))
    attempts = Attempts(monkeypatch)
    worker = desk.worker(poll_interval=120)  # only IDLE or a reconnect can bring mail in time
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    latencies = {}
    try:
        attempts.idle_since(0)

        # (a) The imap process serving the connection dies; the server stays up.
        killed_at = time.monotonic()
        assert _kill_imap_processes(server, user) >= 1
        server.append(user, [next(messages)])
        latencies["killed process"] = _stored_within(desk, 1, killed_at)
        back = attempts.idle_since(killed_at)

        # IDLE itself is back: a message now is announced, not waited for (no poll for 120 s).
        time.sleep(1)
        delivered = time.monotonic()
        server.append(user, [next(messages)])
        latencies["IDLE after reconnect"] = _stored_within(desk, 2, delivered)

        # (b) The whole server stops and starts again on the same port.
        time.sleep(max(0.0, back + DOVECOT_GRACE - time.monotonic()))
        stopping = time.monotonic()
        server.stop()  # takes Dovecot a few seconds; the worker backs off meanwhile
        server.start()
        returned = time.monotonic()
        server.append(user, [next(messages)])
        latencies["server restart"] = _stored_within(desk, 3, returned)
        while_down = attempts.between(stopping, returned)
        print(
            f"server down {returned - stopping:.2f}s; attempts meanwhile at",
            [f"{at - stopping:.2f}s" for at, _ in while_down],
        )
        # (How soon the connection breaks within the stop varies: there may have been no attempt yet.)
        assert len(while_down) <= 3, f"{len(while_down)} connection attempts while the server was down"
        assert not any(worked for _, worked in while_down)
        after_return = attempts.idle_since(returned)
        assert after_return - returned < 5

        delivered = time.monotonic()
        server.append(user, [next(messages)])
        latencies["IDLE after restart"] = _stored_within(desk, 4, delivered)
    finally:
        worker.stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert desk.count("SELECT count(DISTINCT external_id) FROM message") == 4
    print("latencies:", {what: f"{seconds:.2f}s" for what, seconds in latencies.items()})


def test_the_worker_stops_at_once_while_backing_off(own_dovecot, tmp_path, desk_factory, monkeypatch):
    server = own_dovecot
    user = server.add_user()
    desk = desk_factory(mailbox_config(tmp_path, server, user, 1))
    attempts = Attempts(monkeypatch)
    worker = desk.worker(poll_interval=120)
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    try:
        opened = attempts.idle_since(0)
        time.sleep(max(0.0, opened + DOVECOT_GRACE - time.monotonic()))
        stopping = time.monotonic()
        server.stop()
        # Two failed attempts: the worker is in its pause of 2 then 4 s.
        deadline = time.monotonic() + 15
        while sum(not worked for _, worked in attempts.between(stopping, time.monotonic())) < 2:
            assert time.monotonic() < deadline, "the worker never tried to reconnect"
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        asked = time.monotonic()
        worker.stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert time.monotonic() - asked < 2
    tried = attempts.between(stopping, asked)
    assert len(tried) <= 3, f"{len(tried)} connection attempts in {asked - stopping:.1f} s down"


def test_program_lost_server_logs_its_states_and_ends_on_sigterm(own_dovecot, tmp_path):
    """`agentdesk sync` as users run it: one line per state, no traceback, SIGTERM while it backs off."""
    server = own_dovecot
    user = server.add_user()
    config = mailbox_config(tmp_path, server, user, 1)
    process = subprocess.Popen(
        [sys.executable, "-m", "agentdesk", "--config", str(config), "sync"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    try:
        time.sleep(DOVECOT_GRACE)
        server.stop()
        deadline = time.monotonic() + 15
        while sum("retrying in" in line for line in lines) < 3:  # lost, refused, a longer pause
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        time.sleep(0.2)
        asked = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        stopped_in = time.monotonic() - asked
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(5)
    output = "".join(lines)
    assert process.returncode == 0, output
    assert stopped_in < 2, output
    assert "Traceback" not in output
    # One line per change of state: lost, then one per longer pause (not one per attempt).
    assert sum("IDLE connection" in line and "broke" in line for line in lines) == 1, output
    pauses = [line.rsplit("retrying in ", 1)[1].strip() for line in lines if "retrying in" in line]
    assert pauses[:3] == ["1 s", "2 s", "4 s"] and len(pauses) == len(set(pauses)), output
