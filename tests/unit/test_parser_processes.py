"""A sync's parser processes end with the sync, however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Starts the pool as a sync does, waits for both parsers to be up, prints their pids, then waits.
_SYNC_STAND_IN = """
import sys, time
from agentdesk.sync.sources import email as sync_batches
pool = sync_batches.parser_pool()
while len(pool._processes) < sync_batches.PARSE_WORKERS or not all(p.pid for p in pool._processes.values()):
    time.sleep(0.01)
from agentdesk.sync.sources import parse_job
pool.submit(parse_job.ready).result(timeout=60)
print(" ".join(str(pid) for pid in pool._processes), flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for its reaper is gone for our purpose
        return stat.read().split(") ", 1)[1][0] != "Z"


def test_parsers_end_when_the_sync_is_killed():
    sync = subprocess.Popen([sys.executable, "-c", _SYNC_STAND_IN], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        parsers = [int(pid) for pid in sync.stdout.readline().split()]
        assert len(parsers) == 2 and all(_alive(pid) for pid in parsers)
        sync.send_signal(signal.SIGKILL)  # no chance to shut its pool down
        sync.wait()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in parsers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in parsers), "a parser outlived the sync that started it"
    finally:
        sync.kill()
        sync.stdout.close()
