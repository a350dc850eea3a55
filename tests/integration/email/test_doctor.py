"""`agentdesk doctor` against real servers: it logs in, opens every folder and authenticates with
SMTP as the real work would, and every failing line says what to do next."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from integration.email.servers import Smtp, free_port, mailbox_config

pytestmark = pytest.mark.integration


def _doctor(config: Path) -> tuple[int, dict[str, dict]]:
    result = subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(config), "doctor", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "AGENTDESK_AGENT": "tester"},
        timeout=120,
    )
    checks = json.loads(result.stdout)
    return result.returncode, {check["name"]: check for check in checks}


class _AuthSmtp(Smtp):
    """aiosmtpd offering AUTH (without TLS, on loopback) and accepting only `user`/`password`."""

    def __init__(self, user: str, password: str):
        super().__init__()
        self.user, self.password = user, password

    def start(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == self.user
                and auth_data.password.decode() == self.password
            )
            return AuthResult(success=ok, handled=False)

        self.controller = Controller(
            self, hostname="127.0.0.1", port=self.port, authenticator=authenticate, auth_require_tls=False
        )
        self.controller.start()


def _with_smtp_login(config: Path, user: str, password: str) -> None:
    text = config.read_text()
    config.write_text(
        text
        + textwrap.dedent(f"""\
        username = "{user}"
        password_command = "echo {password}"
        """)
    )


def test_doctor_logs_in_and_opens_each_folder(tmp_path, dovecot, mail_user):
    smtp = _AuthSmtp("mailer", "smtp-secret")
    smtp.start()
    try:
        config = mailbox_config(tmp_path, dovecot, mail_user, smtp.port, folders=("INBOX", "Archive"))
        _with_smtp_login(config, "mailer", "smtp-secret")
        code, checks = _doctor(config)
    finally:
        smtp.stop()
    assert checks["mailbox[0] (support) imap"]["status"] == "ok"
    assert checks["mailbox[0] (support) folder INBOX"]["status"] == "ok"
    missing = checks["mailbox[0] (support) folder Archive"]
    assert missing["status"] == "fail"
    assert "Archive" in missing["detail"]
    assert "mailbox[0] (support).folders" in missing["fix"]
    smtp_check = checks["mailbox[0] (support) smtp"]
    assert smtp_check["status"] == "ok", smtp_check
    assert "AUTH as 'mailer' accepted" in smtp_check["detail"]
    assert code == 1  # the missing folder is a failure
    assert smtp.received == []  # nothing sent


def test_doctor_fails_a_wrong_imap_password(tmp_path, dovecot, mail_user):
    config = mailbox_config(tmp_path, dovecot, mail_user, free_port())
    config.write_text(config.read_text().replace('password_command = "echo secret"', 'password_command = "echo wrong"'))
    code, checks = _doctor(config)
    assert code == 1
    assert checks["mailbox[0] (support) password"]["status"] == "ok"  # the command ran; the server says no
    login = checks["mailbox[0] (support) imap"]
    assert login["status"] == "fail"
    assert "refused the login" in login["detail"]
    assert "password_command" in login["fix"]
    # No folder is tried without a login; SMTP nobody listens on is one failing line of its own.
    assert not any(name.startswith("mailbox[0] (support) folder") for name in checks)
    assert checks["mailbox[0] (support) smtp"]["status"] == "fail"


def test_doctor_fails_smtp_that_refuses_the_login(tmp_path, dovecot, mail_user):
    smtp = _AuthSmtp("mailer", "smtp-secret")
    smtp.start()
    try:
        config = mailbox_config(tmp_path, dovecot, mail_user, smtp.port)
        _with_smtp_login(config, "mailer", "not-the-password")
        code, checks = _doctor(config)
    finally:
        smtp.stop()
    assert code == 1
    refused = checks["mailbox[0] (support) smtp"]
    assert refused["status"] == "fail"
    assert "refused the login of 'mailer'" in refused["detail"] and "535" in refused["detail"]
    assert "smtp.password_command" in refused["fix"]


def test_doctor_fails_smtp_that_offers_no_auth(tmp_path, dovecot, mail_user, smtp):
    """A plain aiosmtpd advertises no AUTH: a configured username cannot log in there."""
    config = mailbox_config(tmp_path, dovecot, mail_user, smtp.port)
    _with_smtp_login(config, "mailer", "smtp-secret")
    code, checks = _doctor(config)
    assert code == 1
    refused = checks["mailbox[0] (support) smtp"]
    assert refused["status"] == "fail"
    assert "AUTH" in refused["detail"]
    assert "starttls" in refused["fix"]
