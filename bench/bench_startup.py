"""Start-up as a user feels it: whole processes, from exec to the first frame or the last byte.

    python bench/bench_startup.py [--data-dir /tmp/agentdesk-startup100k] [--conversations 100000] [--rounds 11]
        [--database-url postgresql://...]

Builds the demo once (or reuses the one in --data-dir), byte-compiles the agentdesk package it runs
(an installed wheel is compiled by pip; an editable checkout on a machine that sets
PYTHONDONTWRITEBYTECODE would otherwise recompile every module in every process), then alternates,
round after round, so a busy moment hits every figure alike:

- `python -c pass`: the floor, interpreter start alone;
- a bare Textual app (a Static and a Footer) started as `python -c`, in a pseudo-terminal of a fixed
  size, timed until its first frame (its Static's text) is written to the terminal;
- the same bare app importing agentdesk's store models first (the ORM: SQLModel, pydantic,
  SQLAlchemy, our tables), the floor of any first frame drawn after loading them;
- `agentdesk --config C` in the same pseudo-terminal, timed until the first frame with queue rows
  (the first row's reference) is written to it;
- `agentdesk list --limit 50 --json` and `agentdesk show REF --json` (REF: the longest thread), as
  plain subprocesses, until they exit;
- with `--database-url`, a PostgreSQL database holding a copy of the same demo (`agentdesk db copy`),
  `agentdesk` and `list` again on it, in the same rounds.

Prints the median wall time and CPU time (user + system, of the process and its children) of each,
each beside its anchor: the TUI against the bare app (target at most 2x), the commands against the
250 ms budget and the floor.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import select
import signal
import sqlite3
import statistics
import struct
import subprocess
import sys
import termios
import time
import tomllib
from pathlib import Path

COLUMNS, LINES = 120, 40
TIMEOUT = 60.0  # seconds a process may take to show its first frame before the run fails

BARE_APP = """
from textual.app import App
from textual.widgets import Footer, Static

class Bare(App):
    def compose(self):
        yield Static("bare app ready")
        yield Footer()

Bare().run()
"""
BARE_MARKER = b"bare app ready"
# The same app with the store's models imported first (SQLModel, pydantic, SQLAlchemy and our
# tables): what any first frame pays that loads the ORM before it is drawn.
ORM_FIRST_APP = "import agentdesk.store.models\n" + BARE_APP


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["TERM"] = "xterm-256color"
    env["COLUMNS"], env["LINES"] = str(COLUMNS), str(LINES)
    env.pop("TEXTUAL", None)  # no devtools, no driver chosen from outside
    return env


def cpu_ms(usage) -> float:
    return (usage.ru_utime + usage.ru_stime) * 1000


def cpu_so_far_ms(pid: int) -> float:
    """The CPU time a running process has used (user + system; the kernel counts it in ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def first_frame(command: list[str], marker: bytes) -> tuple[float, float]:
    """Wall ms from spawning `command` in a pseudo-terminal until `marker` is written to it, and the
    process's CPU ms by then; then it is asked to quit (ctrl+q), as a user would."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdin=slave, stdout=slave, stderr=slave, env=environment(), start_new_session=True, close_fds=True
    )
    os.close(slave)
    seen = b""
    elapsed = None
    try:
        while elapsed is None:
            left = TIMEOUT - (time.perf_counter() - started)
            if left <= 0:
                raise SystemExit(f"{command}: no {marker!r} within {TIMEOUT:.0f} s; it wrote:\n{seen[-2000:]!r}")
            ready, _, _ = select.select([master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the process ended and closed the terminal
                raise SystemExit(f"{command}: ended before {marker!r}; it wrote:\n{seen[-2000:]!r}") from None
            seen += chunk
            if marker in seen[-(len(chunk) + len(marker)) :]:
                elapsed = (time.perf_counter() - started) * 1000
                used = cpu_so_far_ms(process.pid)
        os.write(master, b"\x11")  # ctrl+q: quit as a user would
        deadline = time.perf_counter() + 10
        while process.poll() is None and time.perf_counter() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    os.read(master, 65536)  # keep draining, or its last writes block
                except OSError:
                    break
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
    finally:
        if process.returncode is None and process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return elapsed, used


def plain_with_cpu(command: list[str]) -> tuple[float, float]:
    """Wall ms from spawning `command` to its exit, and its CPU ms (from wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment())
    # Read until the end of its output, then reap it here to get its resource usage.
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = (time.perf_counter() - started) * 1000
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command} failed ({process.returncode}): {output[-2000:].decode(errors='replace')}")
    return elapsed, cpu_ms(usage)


def longest_thread_ref(database: Path) -> str:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        (conversation_id,) = connection.execute(
            "SELECT conversation_id FROM message GROUP BY conversation_id ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    finally:
        connection.close()
    return f"AD-{conversation_id}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/agentdesk-startup100k"))
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument(
        "--database-url", metavar="URL", help="also on this PostgreSQL database, holding a copy of the same demo"
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="do not byte-compile the agentdesk package first (measure it as is)"
    )
    args = parser.parse_args()
    args.data_dir = args.data_dir.resolve()
    # Children start in a directory without a package of ours: `python -c` puts its working
    # directory first on the path, which from a checkout would shadow the agentdesk on PYTHONPATH.
    os.chdir("/")

    python = sys.executable
    script = Path(python).parent / "agentdesk"
    # The console script, as a user starts it; `python -m agentdesk` where there is none.
    agentdesk = [str(script)] if script.exists() else [python, "-m", "agentdesk"]
    package = Path(
        subprocess.run(
            [python, "-c", "import agentdesk, os; print(os.path.dirname(agentdesk.__file__))"],
            capture_output=True,
            text=True,
            check=True,
            env=environment(),
        ).stdout.strip()
    )
    if not args.no_compile:
        subprocess.run([python, "-m", "compileall", "-q", str(package)], check=True)
    print(f"agentdesk from {package} ({'byte-compiled' if not args.no_compile else 'as is'}); {' '.join(agentdesk)}")

    subprocess.run(
        [
            *agentdesk,
            "demo",
            "--seed-only",
            "--conversations",
            str(args.conversations),
            "--data-dir",
            str(args.data_dir),
        ],
        check=True,
        stderr=subprocess.DEVNULL,
        env=environment(),
    )
    config = args.data_dir / "config.toml"
    ref = longest_thread_ref(args.data_dir / "agentdesk.db")
    first = json.loads(
        subprocess.run(
            [*agentdesk, "--config", str(config), "list", "--limit", "1", "--json"],
            capture_output=True,
            check=True,
            env=environment(),
        ).stdout
    )
    row_marker = first[0]["ref"].encode()  # the first row of the default view: in the first frame with rows

    commands = {
        "python -c pass": lambda: plain_with_cpu([python, "-c", "pass"]),
        "bare Textual app, first frame": lambda: first_frame([python, "-c", BARE_APP], BARE_MARKER),
        "bare app, ORM imported first": lambda: first_frame([python, "-c", ORM_FIRST_APP], BARE_MARKER),
        "agentdesk, first frame with rows": lambda: first_frame([*agentdesk, "--config", str(config)], row_marker),
        "list --limit 50 --json": lambda: plain_with_cpu(
            [*agentdesk, "--config", str(config), "list", "--limit", "50", "--json"]
        ),
        f"show {ref} --json": lambda: plain_with_cpu([*agentdesk, "--config", str(config), "show", ref, "--json"]),
    }
    if args.database_url:
        # A copy of the demo's config beside it (its relative paths keep working) on the other database.
        text = config.read_text()
        other = config.with_name("config.bench-startup-postgres.toml")
        other.write_text(
            text.replace(json.dumps(tomllib.loads(text)["database"]["url"]), json.dumps(args.database_url), 1)
        )
        on_server = json.loads(
            subprocess.run(
                [*agentdesk, "--config", str(other), "list", "--limit", "1", "--json"],
                capture_output=True,
                check=True,
                env=environment(),
            ).stdout
        )
        server_marker = on_server[0]["ref"].encode()
        commands["agentdesk on PostgreSQL, first frame with rows"] = lambda: first_frame(
            [*agentdesk, "--config", str(other)], server_marker
        )
        commands["list --limit 50 --json on PostgreSQL"] = lambda: plain_with_cpu(
            [*agentdesk, "--config", str(other), "list", "--limit", "50", "--json"]
        )
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    loads = [os.getloadavg()[0]]
    for run in commands.values():  # once each, not counted: the page cache warm for all alike
        run()
    for round_number in range(args.rounds):
        names = list(commands)
        if round_number % 2:
            names.reverse()  # neither end of a round is always the same figure
        for name in names:
            elapsed, used = commands[name]()
            wall[name].append(elapsed)
            cpu[name].append(used)
        loads.append(os.getloadavg()[0])

    def median(values: list[float]) -> float:
        return statistics.median(values)

    print(f"{args.rounds} rounds, {COLUMNS}x{LINES} pseudo-terminal, TERM=xterm-256color; {ref}: the longest thread")
    print(f"load average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}")
    print(f"{'':36} {'wall median':>12} {'min':>8} {'CPU median':>11}")
    for name in commands:
        print(f"{name:36} {median(wall[name]):9.0f} ms {min(wall[name]):5.0f} ms {median(cpu[name]):8.0f} ms")
    bare, ours = wall["bare Textual app, first frame"], wall["agentdesk, first frame with rows"]
    pair_ratios = [o / b for o, b in zip(ours, bare)]
    print(
        f"first frame: agentdesk / bare Textual app = {median(ours) / median(bare):.2f}x "
        f"(median of the rounds' ratios {median(pair_ratios):.2f}x; target <= 2x); "
        f"CPU {median(cpu['agentdesk, first frame with rows']) / median(cpu['bare Textual app, first frame']):.2f}x"
    )
    if args.database_url:
        server = wall["agentdesk on PostgreSQL, first frame with rows"]
        print(
            f"first frame on PostgreSQL: agentdesk / bare Textual app = {median(server) / median(bare):.2f}x "
            f"(median of the rounds' ratios {median([o / b for o, b in zip(server, bare)]):.2f}x; target <= 2x); "
            f"CPU {median(cpu['agentdesk on PostgreSQL, first frame with rows']) / median(cpu['bare Textual app, first frame']):.2f}x"
        )
    orm_first = wall["bare app, ORM imported first"]
    print(
        f"the ORM's floor: a bare app importing the store's models first = {median(orm_first) / median(bare):.2f}x "
        "the bare app (a first frame drawn after loading the ORM cannot be faster)"
    )
    floor = median(wall["python -c pass"])
    for name in ("list --limit 50 --json", f"show {ref} --json"):
        print(
            f"{name}: {median(wall[name]):.0f} ms whole process (target <= 250 ms), "
            f"{median(wall[name]) - floor:.0f} ms over the interpreter's start"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
