"""Benchmark of the agent workstation on a big demo, driven headless with Pilot.

    /work/venv/bin/python bench/bench_tui.py [--data-dir /tmp/bench100k] [--conversations 100000]
        [--postgres | --database-url postgresql://...]

Builds the demo once (a couple of minutes for 100 000 conversations, ~1M messages) or reuses it,
then prints, against the targets of issue 3:

- first paint of the queue vs a bare Textual app's first paint, alternating, each app in a fresh
  process after its imports (from constructing the app to the first frame with rows on it);
- cursor move p95 per key (from the key press until the frame with the row under the cursor);
- opening a 50-message thread (one is added to the demo if it has none);
- searches, full text and field filters (from enter to the frame with the result rows).

Times are taken at frames: a wrapper on the app's display call records when each frame is
composed, so Pilot's own waiting (~65 ms a key even for an empty app) is not counted. Headless,
a frame is composed but not written to a terminal; both apps are measured the same way.
- peak and current RSS.

With `--postgres` the same figures are also taken on PostgreSQL, side by side in the same run: a
throwaway cluster on a loopback port (tests/servers/postgres.py, as bench_team.py), loaded from the
SQLite demo with `agentdesk db copy --to URL` (several minutes for 100 000 conversations), stopped
at the end. `--database-url URL` measures an already loaded PostgreSQL database instead (a copy of
the same demo), so the load is paid once. Each database's session runs in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

RUNS_FIRST_PAINT = 21  # pairs, bare and ours alternating, so a slow moment hits both


SEARCHES = (
    "battery",
    "warranty rack",
    "tag:warranty status:open",
    "from:anke waiting:>2h",
    "battery sla:breached",
    "assignee:dana priority:urgent,high",
    "nothingmatchesthis",
)
SEARCH_ROUNDS = 3  # each search this many times, interleaved; the worst is reported against the target


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ensure_fifty_message_thread(settings) -> int:
    """A conversation with at least 50 messages; the demo's longest have 14, so write one."""
    from sqlalchemy import text

    from agentdesk.store import db
    from agentdesk.store.models import Message

    engine = db.open_database(settings.database_url)
    marker = "[bench: 50-message thread]"
    with db.read_session(engine) as session:
        found = session.exec(
            text("SELECT conversation_id FROM message WHERE subject = :s LIMIT 1").bindparams(s=marker)
        ).first()
    if found:
        return found[0]
    with db.write_session(engine) as session:
        conversation_id = session.exec(
            text("SELECT id FROM conversation WHERE status = 'open' ORDER BY id LIMIT 1")
        ).one()[0]
        start = datetime.now(timezone.utc) - timedelta(days=3)
        existing = session.exec(
            text("SELECT count(*) FROM message WHERE conversation_id = :c").bindparams(c=conversation_id)
        ).one()[0]
        for index in range(50 - existing):
            inbound = index % 2 == 0
            body = (
                (
                    "Hi,\n\nThe battery still drains overnight after the firmware update. I measured it again "
                    "this morning and it went from 100% to 58%.\n\nOn Tue, Support wrote:\n> Could you update the "
                    "firmware?\n> Thanks\n-- \nCustomer"
                )
                if inbound
                else (
                    "Hi,\n\nThanks for checking. Could you send a photo of the battery label? Then we can "
                    "arrange a replacement under warranty.\n\nBest,\nDana"
                )
            )
            session.add(
                Message(
                    conversation_id=conversation_id,
                    direction="inbound" if inbound else "outbound",
                    author="Bench Customer" if inbound else "Dana Jansen",
                    subject=marker if index == 0 else "",
                    body_text=body,
                    at=start + timedelta(minutes=20 * index),
                    ingested_at=start + timedelta(minutes=20 * index),
                )
            )
        session.commit()
    engine.dispose()
    return conversation_id


class Frames:
    """Records when each frame is composed (headless: everything but writing to a terminal)."""

    def __init__(self, app, probe=lambda: None) -> None:
        self.times: list[tuple[float, object]] = []
        original = app._display

        def display(screen, renderable) -> None:
            if renderable is not None:
                self.times.append((time.perf_counter(), probe()))
            original(screen, renderable)

        app._display = display

    def first_after(self, started: float, test=lambda state: True) -> float | None:
        for at, state in self.times:
            if at >= started and test(state):
                return at - started
        return None


async def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.0005)


async def bare_first_paint() -> float:
    from textual.app import App, ComposeResult
    from textual.widgets import Footer, Static

    class Bare(App):
        def compose(self) -> ComposeResult:
            yield Static("hello")
            yield Footer()

    started = time.perf_counter()
    app = Bare()
    frames = Frames(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: frames.times)
        await pilot.pause()
        return frames.first_after(started)


def first_paint_in_a_process(which: str, config_path: Path) -> float:
    """Seconds to the first frame of one app, in a fresh process as a user starts it: one app per
    heap (apps run one after another in one process disturb each other's garbage collections)."""
    result = subprocess.run(
        [sys.executable, __file__, "--config-file", str(config_path), "--first-paint-of", which],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(result.stdout.split()[-1])


def first_paint_in_this_process(which: str, config_path: Path) -> int:
    """The child of `first_paint_in_a_process`: imports first (not timed), then one app. The
    database's driver is among the imports: sqlite3 comes with agentdesk.tui.app, psycopg is
    imported here for a PostgreSQL database (bench_startup.py times whole processes, imports and all)."""
    import textual.app  # noqa: F401

    if which == "bare":
        elapsed = asyncio.run(bare_first_paint())
    else:
        import agentdesk.tui.app  # noqa: F401
        from agentdesk import config

        settings = config.load(config_path)
        if settings.database_url.startswith("postgresql"):
            import psycopg  # noqa: F401

        elapsed = asyncio.run(agentdesk_first_paint(settings))
    print(f"{elapsed:.6f}")
    return 0


def queue_state(app):
    main = app.main
    if main is None or not main.is_mounted:
        return None
    queue = main.queue
    boxes = main.query("#search")
    return (
        queue.loaded_generation == queue.generation and queue.loaded,
        queue.cursor,
        queue.current_row is not None or queue.count == 0,
        main.thread.conversation.id if main.thread else None,
        queue.loaded_generation,
        not (boxes and boxes.first().has_class("-visible")),
    )  # a submitted search's box has closed


async def agentdesk_first_paint(settings) -> float:
    from agentdesk.tui.app import AgentDeskApp

    started = time.perf_counter()
    app = AgentDeskApp(settings, poll=False)
    frames = Frames(app, lambda: queue_state(app))
    painted = lambda state: state is not None and state[0] and state[2]  # noqa: E731
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: frames.first_after(started, painted) is not None)
        elapsed = frames.first_after(started, painted)
        await app.workers.wait_for_complete()
        await pilot.pause()
        return elapsed


async def session_figures(settings, thread_id: int) -> dict:
    from agentdesk.app import conversations
    from agentdesk.tui.app import AgentDeskApp

    figures: dict = {}
    app = AgentDeskApp(settings, poll=False)
    frames = Frames(app, lambda: queue_state(app))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: app.main is not None and app.main.is_mounted and app.main.queue.loaded)
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        main = app.main
        queue = main.queue
        await pilot.press("3")  # All open
        await wait_for(lambda: queue.loaded and queue.current_row is not None)
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        figures["rows in All open"] = queue.count

        async def timed(key: str, times: int) -> list[float]:
            samples = []
            for _ in range(times):
                before = queue.cursor
                started = time.perf_counter()
                await pilot.press(key)
                target = queue.cursor
                drawn = lambda state: state is not None and state[1] == target and state[2]  # noqa: E731
                await wait_for(lambda: frames.first_after(started, drawn) is not None)
                if target != before:
                    samples.append(frames.first_after(started, drawn))
            return samples

        moves = {}
        moves["j"] = await timed("j", 300)  # crosses windows of 100: keyset reads after the previous one
        moves["k"] = await timed("k", 150)
        moves["pagedown"] = await timed("pagedown", 60)
        moves["pageup"] = await timed("pageup", 30)
        moves["G"] = await timed("G", 1) + await timed("g", 1) + await timed("G", 1)
        moves["g"] = await timed("g", 1)
        figures["cursor"] = {key: (p95(s) * 1000, statistics.median(s) * 1000, len(s)) for key, s in moves.items() if s}

        # Opening a 50-message thread: from the request to the frame that shows it.
        samples = []
        for _ in range(5):
            await app.workers.wait_for_complete()
            await pilot.pause(0.2)
            main.thread = None
            started = time.perf_counter()
            main.load_thread(thread_id)
            shown = lambda state: state is not None and state[3] == thread_id  # noqa: E731
            await wait_for(lambda: frames.first_after(started, shown) is not None)
            samples.append(frames.first_after(started, shown))
        figures["thread"] = (statistics.median(samples) * 1000, max(samples) * 1000, len(main.thread.items))
        figures["thread samples"] = [round(sample * 1000) for sample in samples]
        started = time.perf_counter()
        conversations.thread(app.desk, thread_id)
        figures["thread query only"] = (time.perf_counter() - started) * 1000

        searches: dict[str, list] = {}
        for query in SEARCHES * SEARCH_ROUNDS:
            await pilot.press("slash")
            main.query_one("#search").value = query
            await app.workers.wait_for_complete()
            await pilot.pause(0.2)
            generation = queue.generation
            started = time.perf_counter()
            await pilot.press("enter")

            def rows(state, generation=generation):
                return state is not None and state[0] and state[2] and state[4] > generation and state[5]

            await wait_for(lambda: frames.first_after(started, rows) is not None and main.search_count is not None)
            searches.setdefault(query, []).append((frames.first_after(started, rows) * 1000, main.search_count))
            await pilot.press("escape")
            await wait_for(lambda: main.search is None and queue.loaded)
            await app.workers.wait_for_complete()
        figures["search"] = searches
        await app.workers.wait_for_complete()
    figures["rss now"] = rss_mb()
    figures["rss peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def session_in_a_process(config_path: Path, thread_id: int) -> dict:
    """`session_figures` for one database in a fresh process (its RSS is that database's alone)."""
    result = subprocess.run(
        [sys.executable, __file__, "--config-file", str(config_path), "--session-of-thread", str(thread_id)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.splitlines()[-1])


def session_in_this_process(config_path: Path, thread_id: int) -> int:
    import agentdesk.tui.app  # noqa: F401
    from agentdesk import config

    print(json.dumps(asyncio.run(session_figures(config.load(config_path), thread_id))))
    return 0


def config_for(config_path: Path, database_url: str) -> Path:
    """A copy of the demo's config beside it (relative paths keep working) on another database."""
    import tomllib

    text = config_path.read_text()
    old = tomllib.loads(text)["database"]["url"]
    other = config_path.with_name("config.bench-postgres.toml")
    other.write_text(text.replace(json.dumps(old), json.dumps(database_url), 1))
    return other


def load_postgres(config_path: Path):
    """A throwaway PostgreSQL cluster on a loopback port with the demo copied in: (server, url)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from servers.postgres import start_server

    server = start_server()
    url = server.create_database("bench")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(config_path), "-q", "db", "copy", "--to", url],
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    print(f"PostgreSQL loaded with `agentdesk db copy` in {time.perf_counter() - started:.0f} s", flush=True)
    return server, url


def database_counts(settings) -> tuple[int, int]:
    from sqlalchemy import text

    from agentdesk.store import db

    engine = db.open_database(settings.database_url)
    with engine.connect() as connection:
        conversations = connection.execute(text("SELECT count(*) FROM conversation")).scalar()
        messages = connection.execute(text("SELECT max(id) FROM message")).scalar()
    engine.dispose()
    return conversations, messages


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="/tmp/bench100k")
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument(
        "--first-paint-runs", type=int, default=RUNS_FIRST_PAINT, help="alternating runs (default %(default)s)"
    )
    parser.add_argument("--first-paint-of", choices=("bare", "agentdesk"), help=argparse.SUPPRESS)
    parser.add_argument("--config-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--session-of-thread", type=int, help=argparse.SUPPRESS)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--postgres",
        action="store_true",
        help="also measure on PostgreSQL: a throwaway loopback cluster loaded from the demo (db copy)",
    )
    where.add_argument(
        "--database-url",
        metavar="URL",
        help="also measure on this PostgreSQL database, already holding a copy of the same demo",
    )
    args = parser.parse_args()
    if args.first_paint_of:
        return first_paint_in_this_process(args.first_paint_of, args.config_file)
    if args.session_of_thread:
        return session_in_this_process(args.config_file, args.session_of_thread)

    started = time.perf_counter()
    import textual.app  # noqa: F401  (both apps pay this; measured apart)

    textual_import = time.perf_counter() - started
    started = time.perf_counter()
    import agentdesk.tui.app  # noqa: F401
    from agentdesk import config
    from agentdesk.demo import build

    agentdesk_import = time.perf_counter() - started

    # A missing demo is built in a child process: the build's memory is not the workstation's RSS.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from agentdesk.demo import build; "
            "build.ensure_demo(Path(sys.argv[1]), conversations=int(sys.argv[2]))",
            args.data_dir,
            str(args.conversations),
        ],
        check=True,
    )
    config_path = build.ensure_demo(Path(args.data_dir), conversations=args.conversations)
    settings = config.load(config_path)
    ensure_fifty_message_thread(settings)  # before a copy to PostgreSQL, so both have it
    configs = {"SQLite": config_path}
    server = None
    try:
        if args.postgres:
            server, url = load_postgres(config_path)
            configs["PostgreSQL"] = config_for(config_path, url)
        elif args.database_url:
            configs["PostgreSQL"] = config_for(config_path, args.database_url)
        loads = [load_average()]
        counts, threads = {}, {}
        for name, path in configs.items():
            other = config.load(path)
            threads[name] = ensure_fifty_message_thread(other)
            counts[name] = database_counts(other)
        print(f"agentdesk TUI benchmark — {args.data_dir}")
        for name in configs:
            print(
                f"  {name}: {counts[name][0]} conversations, ~{counts[name][1]} messages, {settings_url(configs[name])}"
            )

        # First paint: bare, then each database, alternating, so a slow moment hits them all.
        paints: dict[str, list[float]] = {"bare": [], **{name: [] for name in configs}}
        for _ in range(args.first_paint_runs):
            paints["bare"].append(first_paint_in_a_process("bare", config_path))
            for name, path in configs.items():
                paints[name].append(first_paint_in_a_process("agentdesk", path))
        loads.append(load_average())
        figures = {}
        for name, path in configs.items():
            figures[name] = session_in_a_process(path, threads[name])
            loads.append(load_average())
    finally:
        if server is not None:
            server.stop()

    print(f"python {sys.version.split()[0]}, textual {textual.__version__ if hasattr(textual, '__version__') else ''}")
    print(f"load average (1, 5, 15 min) at start, after first paint, after each session: {' | '.join(loads)}")
    print(
        f"imports (once per process): textual {textual_import * 1000:.0f} ms, agentdesk TUI + store "
        f"{agentdesk_import * 1000:.0f} ms"
    )
    names = list(configs)
    bare_median = statistics.median(paints["bare"])
    print(
        f"first paint, median of {args.first_paint_runs} alternating runs, each in a fresh process "
        f"(target ≤ 1000 ms and ≤ 2× the bare app): bare Textual app {bare_median * 1000:.1f} ms"
    )
    for name in names:
        ours_median = statistics.median(paints[name])
        ratios = [mine / theirs for mine, theirs in zip(paints[name], paints["bare"])]
        print(
            f"  {name:<10} queue {ours_median * 1000:6.1f} ms (ratio of medians {ours_median / bare_median:.2f}, "
            f"median ratio of pairs {statistics.median(ratios):.2f})"
        )
    first = figures[names[0]]
    print(f"cursor move (rows in All open: {first['rows in All open']}), target p95 ≤ 30 ms; p95 / median ms:")
    print("  " + " " * 9 + "".join(f"{name:>24}" for name in names))
    for key in first["cursor"]:
        cells = []
        for name in names:
            high, median, count = figures[name]["cursor"].get(key, (float("nan"), float("nan"), 0))
            cells.append(f"{high:7.1f} / {median:5.1f} ({count:3})")
        print(f"  {key:<9}" + "".join(f"{cell:>24}" for cell in cells))
    print("open a 50-message thread, target ≤ 100 ms:")
    for name in names:
        median, worst, items = figures[name]["thread"]
        print(
            f"  {name:<10} median {median:4.0f} ms, worst {worst:4.0f} ms ({items} items with events; query alone "
            f"{figures[name]['thread query only']:.0f} ms); in order: "
            f"{', '.join(map(str, figures[name]['thread samples']))} ms"
        )
    print("search (submit to rows drawn), target ≤ 200 ms; worst / median of each, results:")
    print("  " + " " * 40 + "".join(f"{name:>26}" for name in names))
    for query in first["search"]:
        cells = []
        for name in names:
            runs = figures[name]["search"][query]
            times = [elapsed for elapsed, _ in runs]
            cells.append(f"{max(times):5.0f} / {statistics.median(times):4.0f} ({runs[-1][1]})")
        print(f"  {query:<40}" + "".join(f"{cell:>26}" for cell in cells))
    for name in names:
        print(
            f"RSS {name}: {figures[name]['rss now']:.0f} MB now, {figures[name]['rss peak']:.0f} MB peak; "
            "target ≤ 300 MB"
        )
    return 0


def settings_url(config_path: Path) -> str:
    from agentdesk import config

    return config.load(config_path).database_url


if __name__ == "__main__":
    sys.exit(main())
