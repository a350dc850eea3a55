"""The peak memory of a command and of every process it starts, measured from outside it: shared by
tests (tests/hostile/test_big_mail.py, tests/integration/email/test_sync_memory.py) and benches
(bench/bench_imap.py, bench/bench_big_message.py).

Each process's own peak is its VmHWM in /proc (the kernel's high-water mark of its resident set),
read every few milliseconds while it runs: the mark only grows, so a sample misses at most what a
process grows in its last interval. The command's own peak also comes from wait4, exactly (it
counts the children it reaped as well: `Measured.waited_kib`).

The command is started by a small launcher: a child's ru_maxrss (and its VmHWM after exec) starts
from the resident memory of the process that forked it, so a test or bench that holds a big
corpus would be measured with it; the launcher's few MiB are all the command inherits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_LAUNCHER = """
import os, sys
command, report = sys.argv[2:], sys.argv[1]
pid = os.fork()
if pid == 0:
    os.execvp(command[0], command)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as file:
    file.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
"""


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as file:
                found.extend(int(child) for child in file.read().split())
    except OSError:
        pass
    return found


def status_kib(pid: int, *fields: str) -> dict[str, int]:
    """Fields of /proc/PID/status in KiB (VmRSS, VmHWM, …); {} when the process is gone."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                name, _, value = line.partition(":")
                if name in fields:
                    found[name] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return found


def tree_rss_kib(pid: int) -> int:
    """The resident memory of `pid` and every process below it, now (KiB)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += status_kib(current, "VmRSS").get("VmRSS", 0)
        stack.extend(children(current))
    return total


def _command_line(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read()
    except OSError:
        return b""


def _role(argv: bytes, depth: int) -> str:
    """What a process of the tree is: the command itself, or what its command line says it is."""
    if depth == 0:
        return "main"
    if b"resource_tracker" in argv:
        return "resource tracker"
    if b"multiprocessing" in argv:
        return "parser"  # the sync's only worker processes are its MIME parsers
    return os.path.basename(argv.split(b"\0", 1)[0]).decode("utf-8", "replace") or "child"


@dataclass
class Measured:
    status: int
    stderr: str
    elapsed: float  # seconds, wall
    cpu: float  # seconds, user + system, the command and the children it reaped
    waited_kib: int  # wait4's ru_maxrss: the largest peak of the command and the children it reaped
    tree_kib: int  # the peak of the whole tree's summed RSS, sampled
    # pid -> (role, VmHWM in KiB) of every process the tree held
    peaks: dict[int, tuple[str, int]] = field(default_factory=dict)

    @property
    def main_kib(self) -> int:
        return max((kib for role, kib in self.peaks.values() if role == "main"), default=self.waited_kib)

    def by_role(self) -> dict[str, list[int]]:
        """Each role's peaks (KiB), largest first."""
        roles: dict[str, list[int]] = {}
        for role, kib in self.peaks.values():
            roles.setdefault(role, []).append(kib)
        return {role: sorted(kibs, reverse=True) for role, kibs in roles.items()}

    def largest_kib(self) -> int:
        """The peak of the process that peaked highest (wait4's exact figure counts too)."""
        return max([self.waited_kib, *(kib for _, kib in self.peaks.values())])

    def summary(self) -> str:
        parts = []
        for role, kibs in self.by_role().items():
            parts.append(f"{role} {'/'.join(f'{kib / 1024:.0f}' for kib in kibs)}")
        return ", ".join(parts) + " MiB"


def run_measured(
    command: list[str], *, cwd: Path | None = None, env: dict | None = None, every: float = 0.005
) -> Measured:
    """Run `command` to its end and measure it: see `Measured`. `every`: seconds between samples."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        started = time.perf_counter()
        launcher = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, report.name, *command],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        tree_peak = [0]
        peaks: dict[int, tuple[str, int]] = {}
        seen: dict[int, tuple[bytes, int]] = {}  # pid -> (its command line, its peak since)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                total = 0
                stack = [(pid, 0, b"") for pid in children(launcher.pid)]
                while stack:
                    pid, depth, parent_argv = stack.pop()
                    found = status_kib(pid, "VmRSS", "VmHWM")
                    argv = _command_line(pid)
                    # A process the command forks is a copy of it until it execs its own program
                    # (a parser process, a password command): the copy's pages are the command's,
                    # shared, and are counted there. Its own peak starts with the program it
                    # becomes (a new command line). A zombie has no memory left to count.
                    if found.get("VmHWM") and (depth == 0 or argv != parent_argv):
                        total += found.get("VmRSS", 0)
                        known, kib = seen.get(pid, (argv, 0))
                        kib = max(kib, found["VmHWM"]) if known == argv else found["VmHWM"]
                        seen[pid] = (argv, kib)
                        peaks[pid] = (_role(argv, depth), kib)
                    stack.extend((child, depth + 1, argv) for child in children(pid))
                tree_peak[0] = max(tree_peak[0], total)
                time.sleep(every)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        assert launcher.stderr is not None
        stderr = launcher.stderr.read().decode("utf-8", "replace")
        launcher.wait()
        done.set()
        sampler.join()
        launcher.stderr.close()
        elapsed = time.perf_counter() - started
        fields = report.read().split() or ["-1", "0", "0"]
    return Measured(
        status=int(fields[0]),
        stderr=stderr,
        elapsed=elapsed,
        cpu=float(fields[2]),
        waited_kib=int(fields[1]),
        tree_kib=tree_peak[0],
        peaks=peaks,
    )
