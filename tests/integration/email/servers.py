"""Real servers for the email tests (helpers; fixtures in conftest.py): Dovecot from a throwaway config, aiosmtpd in a thread.

Dovecot (Debian's dovecot-imapd) runs on a free loopback port with its own base_dir, state and
log under pytest's tmp dir, plaintext auth, passwd-file users and maildirs; one server serves the
whole session and each test gets a fresh user (the passwd file is re-read on change). Tests that
restart the server start their own. Without the `dovecot` binary the tests skip with the reason,
except under CI (env CI set), where they fail: CI must run them.
"""

from __future__ import annotations

import base64
import imaplib
import os
import shutil
import socket
import subprocess
import textwrap
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import BASIC_CONFIG  # tests/conftest.py (tests/ is on sys.path)

from agentdesk import config
from agentdesk.domain import clocks
from agentdesk.store import db

PASSWORD = "secret"


def _need(binary: str, package: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None)
    if path is None:
        reason = (
            f"`{binary}` not found: install {package} (apt-get install -y {package}) to run the email integration tests"
        )
        if os.environ.get("CI"):
            pytest.fail(reason + " — CI must run them")
        pytest.skip(reason)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class ImapServer:
    """What the tests ask of any throwaway IMAP server on a loopback `port`: a logged-in
    connection, delivery by APPEND, the UIDs in a folder, and waiting for it to go away."""

    port: int

    def imap(self, user: str) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port)
        conn.login(user, PASSWORD)
        return conn

    def append(self, user: str, messages, folder: str = "INBOX") -> None:
        """Deliver over IMAP APPEND: (internal date, raw) pairs or raw bytes."""
        conn = self.imap(user)
        try:
            if folder != "INBOX":
                conn.create(folder)
            for item in messages:
                when, raw = item if isinstance(item, tuple) else (datetime.now(timezone.utc), item)
                typ, data = conn.append(folder, None, imaplib.Time2Internaldate(when), raw)
                assert typ == "OK", data
        finally:
            conn.logout()

    def uids(self, user: str, folder: str = "INBOX", criteria: str = "ALL") -> list[int]:
        conn = self.imap(user)
        try:
            conn.select(folder, readonly=True)
            typ, data = conn.uid("SEARCH", None, criteria)
            return [int(u) for u in data[0].split()]
        finally:
            conn.logout()

    def _wait_stopped(self, pid: int | None) -> None:
        """Until the master process `pid` has exited and the port is closed (10 s at most)."""
        deadline = time.monotonic() + 10
        while (pid and _alive(pid)) or _port_open(self.port):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)


class Dovecot(ImapServer):
    """One throwaway Dovecot instance (see /work/shared/tools/dovecot-throwaway.sh)."""

    USERS = 64

    def __init__(
        self,
        root: Path | None = None,
        port: int | None = None,
        *,
        oauth2_key: bytes | None = None,
        submission_relay_port: int | None = None,
    ):
        """`root` None: a fresh world-traversable temp dir (pytest's are 0700, and Dovecot's
        unprivileged processes must reach the users file and the maildirs), removed by `cleanup`."""
        self._own_root = root is None
        if root is None:
            import tempfile

            root = Path(tempfile.mkdtemp(prefix="agentdesk-dovecot-"))
            os.chmod(root, 0o755)
        self.binary = _need("dovecot", "dovecot-imapd")
        self.doveadm = _need("doveadm", "dovecot-imapd")
        self.root = root
        self.port = port or free_port()
        self.conf = root / "dovecot.conf"
        self.users_file = root / "users"
        self.is_root = os.getuid() == 0
        self.mail_uid, self.mail_gid = (65534, 65534) if self.is_root else (os.getuid(), os.getgid())
        for sub in ("run", "state", "log", "mail"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.users_file.write_text("")
        os.chmod(self.users_file, 0o644)
        self._free_users = [f"user{n}" for n in range(1, self.USERS + 1)]
        for name in self._free_users:
            self._create_user(name)
        os.chmod(root, 0o755)
        if self.is_root:
            login_user, internal_user, internal_group = "dovenull", "dovecot", "dovecot"
        else:
            import grp
            import pwd

            login_user = internal_user = pwd.getpwuid(os.getuid()).pw_name
            internal_group = grp.getgrgid(os.getgid()).gr_name
        auth, protocols, extra, anvil = "plain login", "imap", "", ""
        self.submission_port: int | None = None
        if oauth2_key is not None:
            # Bearer tokens validated by Dovecot itself: JWTs signed with this HS256 key (no
            # introspection server). Passwords still work through the passwd-file passdb.
            keys = root / "oauth2-keys" / "default" / "HS256"
            keys.mkdir(parents=True, exist_ok=True)
            (keys / "default").write_text(base64.b64encode(oauth2_key).decode())
            for path in [root / "oauth2-keys", *(root / "oauth2-keys").rglob("*")]:
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
            (root / "oauth2.conf.ext").write_text(
                textwrap.dedent(f"""\
                introspection_mode = local
                local_validation_key_dict = fs:posix:prefix={root}/oauth2-keys/
                username_attribute = sub
                """)
            )
            os.chmod(root / "oauth2.conf.ext", 0o644)
            auth = "plain login xoauth2 oauthbearer"
            # The tests refuse tokens on purpose: no delay after a failure, and no growing per-IP
            # penalty (anvil's auth-penalty listener off).
            extra += "auth_failure_delay = 0\n"
            anvil = "\n".join(["  unix_listener anvil-auth-penalty {", "    mode = 0", "  }", ""]).replace(
                "\n", "\n" + " " * 12
            )  # indented as the template below, which is dedented whole
            extra += textwrap.dedent(f"""\
                passdb {{
                  driver = oauth2
                  mechanisms = xoauth2 oauthbearer
                  args = {root}/oauth2.conf.ext
                }}
                """)
        if submission_relay_port is not None:
            # Dovecot's own SMTP submission service, relaying what it accepts to an aiosmtpd.
            self.submission_port = free_port()
            protocols = "imap submission"
            extra += textwrap.dedent(f"""\
                hostname = mail.example.test
                submission_relay_host = 127.0.0.1
                submission_relay_port = {submission_relay_port}
                submission_relay_ssl = no
                service submission-login {{
                  inet_listener submission {{
                    address = 127.0.0.1
                    port = {self.submission_port}
                  }}
                  chroot =
                }}
                """)
        self.conf.write_text(
            textwrap.dedent(f"""\
            base_dir = {root}/run
            state_dir = {root}/state
            instance_name = agentdesk-test-{self.port}
            log_path = {root}/log/dovecot.log
            info_log_path = {root}/log/dovecot-info.log
            protocols = {protocols}
            listen = 127.0.0.1
            ssl = no
            disable_plaintext_auth = no
            auth_mechanisms = {auth}
            default_login_user = {login_user}
            default_internal_user = {internal_user}
            default_internal_group = {internal_group}
            mail_location = maildir:~/Maildir
            mail_fsync = optimized
            mail_max_userip_connections = 100
            passdb {{
              driver = passwd-file
              args = scheme=PLAIN username_format=%u {self.users_file}
            }}
            userdb {{
              driver = passwd-file
              args = username_format=%u {self.users_file}
            }}
            service imap-login {{
              inet_listener imap {{
                address = 127.0.0.1
                port = {self.port}
              }}
              inet_listener imaps {{
                port = 0
              }}
              chroot =
            }}
            service anvil {{
              chroot =
            {anvil}}}
            """)
            + extra
        )

    def start(self) -> None:
        subprocess.run([self.binary, "-c", str(self.conf)], check=True)
        deadline = time.monotonic() + 10
        while not _port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not listen on {self.port}: {self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        pid_file = self.root / "run" / "master.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        subprocess.run([self.doveadm, "-c", str(self.conf), "stop"], capture_output=True)
        self._wait_stopped(pid)

    def cleanup(self) -> None:
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "log" / "dovecot.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def _create_user(self, name: str) -> None:
        home = self.root / "mail" / name
        for sub in ("cur", "new", "tmp"):
            (home / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
        if self.is_root:
            for path in [home, *home.rglob("*")]:
                os.chown(path, self.mail_uid, self.mail_gid)
        with self.users_file.open("a") as users:
            users.write(f"{name}:{{PLAIN}}{PASSWORD}:{self.mail_uid}:{self.mail_gid}::{home}::\n")

    def add_user(self, label: str = "") -> str:
        """A fresh, empty mailbox. Users are created before the server starts: Dovecot re-reads a
        passwd-file by its mtime, which two additions within one second would not change."""
        if not self._free_users:
            raise RuntimeError("out of pre-created test users; raise USERS in servers.py")
        return self._free_users.pop(0)

    def write_maildir(self, user: str, messages) -> None:
        """Bulk delivery: files straight into Maildir/cur, mtime = internal date (as an MDA would)."""
        cur = self.root / "mail" / user / "Maildir" / "cur"
        for n, (when, raw) in enumerate(messages):
            path = cur / f"{int(when.timestamp())}.M{n}P1.test,S={len(raw)}:2,"
            path.write_bytes(raw)
            os.utime(path, (when.timestamp(), when.timestamp()))
            if self.is_root:
                os.chown(path, self.mail_uid, self.mail_gid)

    def doveadm_run(self, *args: str) -> str:
        result = subprocess.run([self.doveadm, "-c", str(self.conf), *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def change_uidvalidity(self, user: str, folder: str, *, keep) -> int:
        """A new UIDVALIDITY for `folder`, its messages (`keep`) left in place; the new value."""
        conn = self.imap(user)
        try:
            conn.select(folder, readonly=True)
            new = int(conn.response("UIDVALIDITY")[1][-1]) + 1000
        finally:
            conn.logout()
        self.doveadm_run("mailbox", "update", "-u", user, "--uid-validity", str(new), folder)
        return new


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class Smtp:
    """aiosmtpd's Controller on a fixed loopback port, recording what it accepted; can go down."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.received: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.controller = None
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.append(envelope.original_content or envelope.content)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK queued"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def mailbox_config(
    tmp_path: Path,
    dovecot: Dovecot,
    user: str,
    smtp_port: int,
    *,
    name: str = "support",
    address: str = "support@example.com",
    folders=("INBOX",),
    after_fetch: str = "keep",
    sent_folder: str = "",
    idle: bool = True,
    extra_mailboxes: str = "",
) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.toml"
    folder_list = ", ".join(f'"{f}"' for f in folders)
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "agentdesk.db"}"\n'
        f'[templates]\ndir = "{tmp_path / "templates"}"\n'
        '[agents.tester]\nname = "Terry Tester"\nsignature = "Terry, Example Support"\n'
        + BASIC_CONFIG
        + textwrap.dedent(f"""
        [[mailbox]]
        name = "{name}"
        address = "{address}"
        host = "127.0.0.1"
        port = {dovecot.port}
        tls = "none"
        username = "{user}"
        password_command = "echo {PASSWORD}"
        folders = [{folder_list}]
        sent_folder = "{sent_folder}"
        idle = {str(idle).lower()}
        after_fetch = "{after_fetch}"

        [mailbox.smtp]
        host = "127.0.0.1"
        port = {smtp_port}
        tls = "none"
        """)
        + extra_mailboxes,
        encoding="utf-8",
    )
    return path


class Desk:
    """Settings, engine and policies for one configured agentdesk, plus sync helpers."""

    def __init__(self, config_path: Path):
        self.config_path = config_path
        self.settings = config.load(config_path)
        self.engine = db.open_database(self.settings.database_url)
        self.policies = clocks.Policies.from_settings(self.settings)

    def context(self, now_fn=None):
        from agentdesk.sync import worker as sync

        ctx = sync.SyncContext(settings=self.settings, engine=self.engine, policies=self.policies)
        if now_fn is not None:
            ctx.now_fn = now_fn
        return ctx

    def worker(self, now_fn=None, **kwargs):
        from agentdesk.sync import worker as sync

        ctx = self.context(now_fn)
        return sync.SyncWorker(ctx, sync.build_sources(ctx), sync.build_senders(ctx), **kwargs)

    def sync_once(self, now_fn=None):
        worker = self.worker(now_fn)
        try:
            return worker.run_once()
        finally:
            for source in worker.sources:
                source.close()

    def count(self, sql: str, **params) -> int:
        from sqlalchemy import text

        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params) -> list:
        from sqlalchemy import text

        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params))
