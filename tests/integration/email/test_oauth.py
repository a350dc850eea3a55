"""OAuth 2.0 logins against a real Dovecot whose oauth2 passdb validates bearer tokens itself:
XOAUTH2 and OAUTHBEARER over IMAP and over Dovecot's SMTP submission service (which relays to
aiosmtpd), and the whole sign-in: `agentdesk oauth login` through the device-code flow of a
local stand-in provider (tests/servers/oauth_provider.py), then `sync` using and refreshing its
tokens, and a revoked sign-in as one line naming the command to run."""

from __future__ import annotations

import email
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from email.policy import compat32
from pathlib import Path

import pytest
from conftest import BASIC_CONFIG
from integration.email import mailgen
from integration.email.servers import Dovecot, Smtp
from servers.oauth_provider import OAuthProvider, access_token

from agentdesk.domain import replies
from agentdesk.store import db
from agentdesk.store.models import Conversation

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
KEY = b"agentdesk-test-hs256-key-0123456"


@pytest.fixture(scope="module")
def relay():
    server = Smtp()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def oauth_dovecot(relay):
    server = Dovecot(oauth2_key=KEY, submission_relay_port=relay.port)
    server.start()
    yield server
    server.cleanup()


def _config(
    tmp_path: Path,
    server: Dovecot,
    user: str,
    *,
    auth: str = "",
    password_command: str = "",
    provider: str = "",
    oauth: str = "",
    smtp_auth: str = "",
) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.toml"
    mailbox = textwrap.dedent(f"""
        [[mailbox]]
        name = "support"
        address = "support@example.com"
        host = "127.0.0.1"
        port = {server.port}
        tls = "none"
        username = "{user}"
        idle = false
        """)
    if auth:
        mailbox += f'auth = "{auth}"\n'
    if password_command:
        mailbox += f"password_command = '{password_command}'\n"
    if provider:
        mailbox += f'provider = "{provider}"\n'
    mailbox += oauth
    mailbox += textwrap.dedent(f"""
        [mailbox.smtp]
        host = "127.0.0.1"
        port = {server.submission_port}
        tls = "none"
        username = "{user}"
        """)
    if smtp_auth:
        mailbox += f'auth = "{smtp_auth}"\n'
    if password_command:
        mailbox += f"password_command = '{password_command}'\n"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "agentdesk.db"}"\n'
        f'[templates]\ndir = "{tmp_path / "templates"}"\n' + BASIC_CONFIG + mailbox,
        encoding="utf-8",
    )
    return path


def _reply(desk, body: str = "We are on it.") -> None:
    with db.write_session(desk.engine) as session:
        conversation = session.get(Conversation, desk.count("SELECT min(id) FROM conversation"))
        replies.reply(
            session,
            conversation=conversation,
            body=body,
            agent="tester",
            agent_name="Terry Tester",
            now=datetime.now(timezone.utc),
            policies=desk.policies,
            message_id_domain="example.com",
        )
        session.commit()


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
def test_bearer_token_from_password_command_reads_imap_and_sends_through_submission(
    mechanism, oauth_dovecot, relay, tmp_path, desk_factory
):
    user = oauth_dovecot.add_user()
    oauth_dovecot.append(user, mailgen.corpus(3, seed=21))
    # What a token helper (pizauth, oama, mutt_oauth2.py) prints: the access token alone.
    token_file = tmp_path / "token"
    token_file.write_text(access_token(user, KEY) + "\n")
    desk = desk_factory(
        _config(
            tmp_path, oauth_dovecot, user, auth=mechanism, smtp_auth=mechanism, password_command=f"cat {token_file}"
        )
    )

    report = desk.sync_once()
    assert report.ok, report.errors
    assert report.stored == 3

    before = len(relay.received)
    _reply(desk)
    report = desk.sync_once()
    assert report.ok, (report.errors, report.delivery.errors)
    assert report.delivery.sent == 1
    deadline = time.monotonic() + 5
    while len(relay.received) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    sent = email.message_from_bytes(relay.received[-1], policy=compat32)
    assert sent["X-Agentdesk-Loop"] == "support@example.com"
    assert "ESMTPA" in sent["Received"]  # Dovecot took it from an authenticated client


def test_a_token_the_server_refuses_is_one_line_for_imap_and_smtp(oauth_dovecot, tmp_path, desk_factory):
    user = oauth_dovecot.add_user()
    oauth_dovecot.append(user, mailgen.corpus(1, seed=22))
    token_file = tmp_path / "token"
    token_file.write_text(access_token(user, b"a key the server does not know 000") + "\n")
    desk = desk_factory(
        _config(
            tmp_path, oauth_dovecot, user, auth="xoauth2", smtp_auth="oauthbearer", password_command=f"cat {token_file}"
        )
    )
    report = desk.sync_once()
    assert report.stored == 0
    (error,) = report.errors
    assert "\n" not in error
    assert f"refused the login of '{user}' (XOAUTH2)" in error
    assert "password_command" in error

    # The same key, expired: refused as well (the server checks `exp`).
    token_file.write_text(access_token(user, KEY, lifetime=-60) + "\n")
    assert "refused the login" in desk.sync_once().errors[0]

    from agentdesk.channels.email.smtp import SmtpSender, SmtpServer
    from agentdesk.sync.senders import DeliveryError

    sender = SmtpSender(
        SmtpServer.from_mailbox(desk.settings.mailbox[0], timeout=10),
        lambda: access_token(user, b"wrong key 0000000000000000000000"),
    )
    with pytest.raises(DeliveryError, match=r"refused the login .*535"):
        sender.send(email.message_from_bytes(b"Subject: x\r\nFrom: a@b\r\nTo: c@d\r\n\r\nx\r\n"))


def _program(config: Path, env: dict, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(config), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


def test_program_device_code_sign_in_then_sync_refreshes_and_a_revoked_sign_in_names_the_command(
    oauth_dovecot, relay, tmp_path, desk_factory
):
    provider = OAuthProvider(key=KEY, lifetime=120)  # under the refresh margin: every sync refreshes
    provider.start()
    try:
        user = oauth_dovecot.add_user()
        oauth_dovecot.append(user, mailgen.corpus(4, seed=23))
        config = _config(
            tmp_path,
            oauth_dovecot,
            user,
            provider="microsoft365",
            oauth=textwrap.dedent(f"""
            oauth_client_id = "{provider.client_id}"
            oauth_device_url = "{provider.device_url}"
            oauth_token_url = "{provider.token_url}"
            """),
        )
        data = tmp_path / "data"
        env = {**os.environ, "XDG_DATA_HOME": str(data), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}

        # Not signed in yet: sync says what to run.
        result = _program(config, env, "sync", "--once")
        assert result.returncode == 1
        assert "not signed in to microsoft365; run `agentdesk oauth login support`" in result.stderr

        login = subprocess.Popen(
            [sys.executable, "-m", "agentdesk", "--config", str(config), "oauth", "login", "support"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            first = login.stdout.readline()
            match = re.search(r"open (\S+) in a browser .* enter the code (\S+)", first)
            assert match, first
            assert match.group(1).endswith("/device")
            provider.approve(match.group(2), user)  # the person, in a browser elsewhere
            out, err = login.communicate(timeout=30)
        finally:
            login.kill()
        assert login.returncode == 0, err
        assert f"signed in to microsoft365 as {user}@example.test" in out

        kept = data / "agentdesk" / "oauth-tokens.json"
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert json.loads(kept.read_text())["support"]["refresh_token"]

        status = _program(config, env, "oauth", "status", "--json")
        assert status.returncode == 0, status.stderr
        (entry,) = json.loads(status.stdout)
        assert (entry["state"], entry["account"]) == ("signed-in", f"{user}@example.test")
        assert entry["expires_at"]

        # sync, without a person: the 2-minute token is renewed first (rotating the refresh token).
        result = _program(config, env, "sync", "--once")
        assert result.returncode == 0, result.stderr
        assert "4 new message(s)" in result.stderr
        assert provider.refreshes == 1

        # doctor shows the sign-in too.
        doctor = _program(config, env, "doctor")
        assert f"signed in to microsoft365 as {user}@example.test; access token valid until" in doctor.stdout

        # A reply goes out through submission with the same token.
        desk = desk_factory(config)
        _reply(desk)
        before = len(relay.received)
        result = _program(config, env, "sync", "--once")
        assert result.returncode == 0, result.stderr
        assert len(relay.received) == before + 1

        # Revoked at the provider: one line naming the command, from sync, status and doctor alike.
        provider.revoke_all()
        result = _program(config, env, "sync", "--once")
        assert result.returncode == 1
        lines = [line for line in result.stderr.splitlines() if "revoked" in line]
        assert lines and all("run `agentdesk oauth login support`" in line for line in lines), result.stderr
        status = _program(config, env, "oauth", "status")
        assert status.returncode == 1
        assert "revoked or has expired" in status.stdout and "agentdesk oauth login support" in status.stdout
    finally:
        provider.stop()


def test_idle_logs_in_with_the_token_too(oauth_dovecot, tmp_path, desk_factory):
    """The IDLE connection (imaplib2) authenticates with OAUTHBEARER as the bulk one does."""
    import threading

    user = oauth_dovecot.add_user()
    token_file = tmp_path / "token"
    token_file.write_text(access_token(user, KEY) + "\n")
    config = _config(tmp_path, oauth_dovecot, user, auth="oauthbearer", password_command=f"cat {token_file}")
    config.write_text(config.read_text().replace("idle = false", "idle = true"))
    desk = desk_factory(config)
    worker = desk.worker(poll_interval=120)  # only IDLE can bring the mail in time
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    try:
        time.sleep(1.5)
        started = time.monotonic()
        oauth_dovecot.append(user, mailgen.corpus(1, seed=24))
        while desk.count("SELECT count(*) FROM message") < 1:
            assert time.monotonic() - started < 5, "not pushed within 5 s: IDLE did not log in"
            time.sleep(0.05)
    finally:
        worker.stop.set()
        thread.join(15)
    assert not thread.is_alive()
