"""TUI fixtures: a demo database built once with a fixed `now`, copied per test; a frozen app clock.

Snapshots must not flake: the clock is frozen, cursors do not blink, the database poller is off
unless a test is about live refresh, and local time is UTC.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agentdesk import config
from agentdesk.demo import build

FIXED_NOW = datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc)
AGENT = "tester"
CONVERSATIONS = 240


@pytest.fixture(scope="session")
def _demo_template(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("demo-template")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENTDESK_AGENT", AGENT)
        (directory / "config.toml").write_text(build.demo_config(directory), encoding="utf-8")
        build.write_templates(directory / "templates")
        build.write_articles(directory / "kb")
        settings = config.load(directory / "config.toml")
        build.build_database(settings, conversations=CONVERSATIONS, now=FIXED_NOW)
    return directory


@pytest.fixture(autouse=True)
def _utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def demo_dir(_demo_template: Path, tmp_path: Path) -> Path:
    """A private copy of the demo (database, config, templates) for one test."""
    target = tmp_path / "demo"
    shutil.copytree(_demo_template, target)
    text = (target / "config.toml").read_text(encoding="utf-8").replace(str(_demo_template), str(target))
    (target / "config.toml").write_text(text, encoding="utf-8")
    return target


@pytest.fixture
def demo_settings(demo_dir: Path) -> config.Settings:
    return config.load(demo_dir / "config.toml")


def frozen() -> datetime:
    return FIXED_NOW


@pytest.fixture
def make_app(demo_settings):
    from agentdesk.tui.app import AgentDeskApp

    def make(settings: config.Settings | None = None, **kwargs) -> AgentDeskApp:
        kwargs.setdefault("poll", False)
        kwargs.setdefault("presence", False)  # tests about presence switch it on
        kwargs.setdefault("sync", False)  # tests of the TUI's own sync (against real servers) switch it on
        kwargs.setdefault("agent", AGENT)
        kwargs.setdefault("now", frozen)  # a test that moves time passes its own clock
        app = AgentDeskApp(settings or demo_settings, **kwargs)
        app.CURSOR_BLINK = False
        return app

    return make


async def workers_done(app) -> None:
    """Wait for the app's workers; a worker that failed fails the test.

    A cancelled worker is normal: an exclusive group (counts, thread loads) cancels the
    older worker when a newer one starts, and waiting on it raises WorkerCancelled.
    """
    from textual.worker import WorkerCancelled

    for worker in list(app.workers):
        with contextlib.suppress(WorkerCancelled):
            await worker.wait()


async def settle(pilot, app) -> None:
    """Let workers finish and their messages land (thread loads wait for the cursor to settle)."""
    for _ in range(3):
        await pilot.pause(0.15)
        await workers_done(app)
    await pilot.pause()


def engine_of(settings):
    from agentdesk.store import db

    return db.open_database(settings.database_url)


os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run `async def` tests in a fresh event loop (no asyncio plugin is installed)."""
    import asyncio
    import inspect

    if inspect.iscoroutinefunction(pyfuncitem.obj):
        arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        asyncio.run(pyfuncitem.obj(**arguments))
        return True
    return None
