"""Live refresh: a process learns within moments that another one wrote, on both databases."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import FIXED_NOW
from factories import inbound, ingest

from agentdesk.store import changes, db


@pytest.fixture
def engine(any_database_url):
    engine = db.open_database(any_database_url)
    yield engine
    engine.dispose()


def test_a_write_by_another_connection_is_seen(engine, policies):
    watcher = changes.ChangeWatcher(engine)
    try:
        assert watcher.changed() is False
        other = db.open_database(engine.url.render_as_string(hide_password=False))
        ingest(other, policies, inbound(at=FIXED_NOW))
        assert watcher.wait(timeout=2.0) is True
        assert watcher.changed() is False  # the burst was collapsed into one change
        other.dispose()
    finally:
        watcher.close()


def test_wait_returns_as_soon_as_something_changes(engine, policies):
    watcher = changes.ChangeWatcher(engine)
    other = db.open_database(engine.url.render_as_string(hide_password=False))
    writer = threading.Timer(0.3, lambda: ingest(other, policies, inbound(at=FIXED_NOW)))
    try:
        started = time.monotonic()
        writer.start()
        assert watcher.wait(timeout=5.0) is True
        assert time.monotonic() - started < 2.0
    finally:
        writer.join()
        watcher.close()
        other.dispose()


def test_no_change_means_wait_times_out(engine):
    watcher = changes.ChangeWatcher(engine)
    try:
        assert watcher.wait(timeout=0.3) is False
    finally:
        watcher.close()
