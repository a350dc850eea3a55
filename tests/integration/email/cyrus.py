"""A throwaway Cyrus IMAP server (Debian's cyrus-imapd 3.6) for the IMAP tests that run on two
server implementations: its own imapd.conf and cyrus.conf, databases, spool and sockets under
one temp dir, listening on a free loopback port, started and stopped by the tests as Dovecot is.

Users: any login with any password (SASL's `alwaystrue` checker); a user's INBOX is created at
its first login (`autocreate_quota`). The admin `cyrus` can delete a user's mailboxes, which is
how a test gets a new UIDVALIDITY (Cyrus has no `doveadm mailbox update`). IDLE is pushed by
Cyrus's idled daemon, as on a production server.

Debian's cyrus-imapd and dovecot-imapd conflict (both are an `imap-server`), so they cannot both
be installed: scripts/test installs cyrus-common (master, the databases' tools) and unpacks
cyrus-imapd's imapd and idled from the package into .cache/cyrus-imapd without installing it.
Found there, in $AGENTDESK_CYRUS_BIN, or in /usr/lib/cyrus/bin where cyrus-imapd is installed.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from integration.email.servers import PASSWORD, ImapServer, _port_open, free_port

REPO = Path(__file__).resolve().parents[3]
ADMIN = "cyrus"


def _binaries() -> tuple[Path, Path]:
    """(directory of master and ctl_cyrusdb, directory of imapd and idled)."""
    common = Path("/usr/lib/cyrus/bin")
    for candidate in filter(
        None,
        [
            os.environ.get("AGENTDESK_CYRUS_BIN"),
            str(common),
            str(REPO / ".cache" / "cyrus-imapd" / "usr" / "lib" / "cyrus" / "bin"),
        ],
    ):
        if (Path(candidate) / "imapd").exists() and (common / "master").exists():
            return common, Path(candidate)
    reason = (
        "Cyrus IMAP not found: scripts/test installs cyrus-common and unpacks cyrus-imapd's imapd into "
        ".cache/cyrus-imapd (run it, or set AGENTDESK_CYRUS_BIN to a directory holding imapd)"
    )
    if os.environ.get("CI"):
        pytest.fail(reason + " — CI must run the Cyrus tests")
    pytest.skip(reason)


class Cyrus(ImapServer):
    """A user's first login (`imap`, `append`) creates its INBOX."""

    USERS = 40

    def __init__(self):
        self.common, self.imap_bin = _binaries()
        if os.getuid() != 0:
            pytest.skip("the Cyrus tests run as root (Cyrus's master drops to the `cyrus` user)")
        self.root = Path(tempfile.mkdtemp(prefix="agentdesk-cyrus-"))
        self.port = free_port()
        self.conf = self.root / "imapd.conf"
        self.master_conf = self.root / "cyrus.conf"
        self.pid_file = self.root / "run" / "master.pid"
        for sub in ("config/db", "config/socket", "spool", "run/proc", "run/lock", "run/socket"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        root = self.root
        self.conf.write_text(
            textwrap.dedent(f"""\
            configdirectory: {root}/config
            defaultpartition: default
            partition-default: {root}/spool
            proc_path: {root}/run/proc
            mboxname_lockpath: {root}/run/lock
            lmtpsocket: {root}/run/socket/lmtp
            idlesocket: {root}/run/socket/idle
            notifysocket: {root}/run/socket/notify
            admins: {ADMIN}
            allowplaintext: yes
            sasl_pwcheck_method: alwaystrue
            sasl_mech_list: PLAIN LOGIN
            autocreate_quota: 0
            altnamespace: yes
            unixhierarchysep: yes
            delete_mode: immediate
            expunge_mode: immediate
            syslog_prefix: agentdesk-test-cyrus
            """)
        )
        self.master_conf.write_text(
            textwrap.dedent(f"""\
            START {{
              recover cmd="{self.common}/ctl_cyrusdb -C {self.conf} -r"
            }}
            SERVICES {{
              imap cmd="{self.imap_bin}/imapd -C {self.conf}" listen="127.0.0.1:{self.port}" prefork=0 maxchild=100
            }}
            EVENTS {{
            }}
            DAEMON {{
              idled cmd="{self.imap_bin}/idled -C {self.conf}"
            }}
            """)
        )
        subprocess.run(["chown", "-R", "cyrus:mail", str(root)], check=True)
        os.chmod(root, 0o755)
        self._free_users = [f"user{n}" for n in range(1, self.USERS + 1)]

    def start(self) -> None:
        subprocess.run(
            [
                str(self.common / "master"),
                "-C",
                str(self.conf),
                "-M",
                str(self.master_conf),
                "-p",
                str(self.pid_file),
                "-d",
            ],
            check=True,
        )
        deadline = time.monotonic() + 15
        while not _port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Cyrus did not listen on {self.port} (it logs to syslog only)")
            time.sleep(0.05)

    def stop(self) -> None:
        pid = int(self.pid_file.read_text()) if self.pid_file.exists() else None
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pid = None
        self._wait_stopped(pid)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def add_user(self, label: str = "") -> str:
        if not self._free_users:
            raise RuntimeError("out of test users; raise USERS in cyrus.py")
        return self._free_users.pop(0)

    def write_maildir(self, user: str, messages) -> None:
        """Bulk delivery (Cyrus's spool is no maildir): 100 messages per MULTIAPPEND command with
        non-synchronising literals (LITERAL+), so a big mailbox is written in seconds, not one
        round trip (and a delayed ACK) per message."""
        conn = self.imap(user)
        try:
            for start in range(0, len(messages), 100):
                tag = conn._new_tag()
                command = [tag + b" APPEND INBOX"]
                for when, raw in messages[start : start + 100]:
                    date = imaplib.Time2Internaldate(when).encode()
                    command.append(b" () " + date + b" {%d+}\r\n" % len(raw) + raw)
                conn.send(b"".join(command) + b"\r\n")
                typ, data = conn._get_tagged_response(tag)
                assert typ == "OK", data
        finally:
            conn.logout()

    def change_uidvalidity(self, user: str, folder: str, *, keep) -> int:
        """A new UIDVALIDITY for the user's INBOX with the messages `keep` in it again (new UIDs),
        as after a restore: the admin deletes the user's mailboxes, the next login recreates them."""
        assert folder == "INBOX"
        admin = imaplib.IMAP4("127.0.0.1", self.port)
        try:
            admin.login(ADMIN, PASSWORD)
            typ, data = admin.setacl(f"user/{user}", ADMIN, "lrswipkxtecda")
            assert typ == "OK", data
            typ, data = admin.delete(f"user/{user}")
            assert typ == "OK", data
        finally:
            admin.logout()
        self.append(user, keep)
        conn = self.imap(user)
        try:
            conn.select("INBOX", readonly=True)
            return int(conn.response("UIDVALIDITY")[1][-1])
        finally:
            conn.logout()
