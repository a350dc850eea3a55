"""Fixtures of the email integration tests; the servers themselves are in servers.py.

Without the `dovecot` binary these tests skip with the reason, except under CI (env CI set),
where they fail: CI must run them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from integration.email.servers import Desk, Dovecot, Smtp


@pytest.fixture(scope="session")
def dovecot():
    server = Dovecot()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def own_dovecot():
    """A server of the test's own, for tests that stop and restart it."""
    server = Dovecot()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def mail_user(dovecot) -> str:
    return dovecot.add_user()


@pytest.fixture(scope="session")
def cyrus():
    from integration.email.cyrus import Cyrus

    server = Cyrus()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(params=["dovecot", "cyrus"])
def imap_server(request):
    """Each IMAP server implementation the intake tests run against: the same test, twice."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def imap_user(imap_server) -> str:
    return imap_server.add_user()


@pytest.fixture
def smtp():
    server = Smtp()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def desk_factory(tmp_path):
    made: list[Desk] = []

    def make(config_path: Path) -> Desk:
        desk = Desk(config_path)
        made.append(desk)
        return desk

    yield make
    for desk in made:
        desk.engine.dispose()
