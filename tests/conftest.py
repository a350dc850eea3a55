"""Fixtures shared by every test tier: a real database on disk, settings, a fixed clock."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from agentdesk import config
from agentdesk.domain import clocks
from agentdesk.store import db

# A Tuesday morning in office hours, so business-hours policies run.
FIXED_NOW = datetime(2026, 11, 17, 9, 30, tzinfo=timezone.utc)

BASIC_CONFIG = """
[[calendar]]
name = "office"
timezone = "Europe/Amsterdam"
hours = { mon = ["09:00-17:00"], tue = ["09:00-17:00"], wed = ["09:00-17:00"], thu = ["09:00-17:00"], fri = ["09:00-17:00"] }

[[sla_policy]]
name = "messaging"
match = { channel = ["sms", "chat"] }
first_reply = "20m"
next_reply = "1h"
resolution = "2d"

[[sla_policy]]
name = "email"
calendar = "office"
first_reply = "1h"
next_reply = "4h"
resolution = "3d"
"""


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """No test reads or writes the real user's config or data."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "AGENTDESK_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AGENTDESK_AGENT", "tester")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "agentdesk.db"}"\n'
        f'[templates]\ndir = "{tmp_path / "templates"}"\n'
        '[agents.tester]\nname = "Terry Tester"\nsignature = "Terry, Example Support"\n' + BASIC_CONFIG,
        encoding="utf-8",
    )
    return path


@pytest.fixture
def settings(config_file: Path) -> config.Settings:
    return config.load(config_file)


@pytest.fixture
def policies(settings) -> clocks.Policies:
    return clocks.Policies.from_settings(settings)


@pytest.fixture
def engine(settings):
    engine = db.open_database(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_server():
    from servers.postgres import start_server

    server = start_server()
    yield server
    server.stop()


_database_counter = iter(range(10**6))


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database_url(request, tmp_path) -> str:
    """The same test on SQLite and on a real PostgreSQL (team features run on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'agentdesk.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"t{next(_database_counter)}")
