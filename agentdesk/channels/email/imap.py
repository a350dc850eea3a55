"""IMAP: the wire side of a mailbox. The only module that imports `imaplib2`.

Two connections per mailbox, each used for what it is good at:

- **bulk** (stdlib `imaplib`): SELECT, the UID/size listing, batched `UID FETCH … BODY.PEEK[]`,
  the after-fetch STORE/MOVE and APPEND to the Sent folder. imaplib reads a literal with one
  `read(n)`; imaplib2's reader thread queues every line of every literal, far slower for bulk
  transfer.
- **control** (`imaplib2`): IDLE on the first folder, so new mail is announced within a second;
  its threaded design lets another thread interrupt a blocking IDLE (`Idler.interrupt`).

Nothing here touches the database: `agentdesk.sync.sources.email.MailboxSource` owns checkpoints and ingest.
Every failure to talk to the server is an `ImapError` whose message names the mailbox and says
what to check.
"""

from __future__ import annotations

import functools
import imaplib
import os
import re
import socket
import ssl
import sys
import threading
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import BinaryIO

from agentdesk.channels.email import sasl
from agentdesk.errors import AgentdeskError

__all__ = [
    "ImapError",
    "ServerBusy",
    "FetchedMessage",
    "FolderState",
    "Listing",
    "BulkConnection",
    "Idler",
    "uid_set",
    "parse_internaldate",
]

# A FETCH response line (without its literal) longer than stdlib imaplib's default 1 MB limit is
# legal: raise the limit instead of failing a sync on a message with thousands of flags.
imaplib._MAXLINE = max(imaplib._MAXLINE, 50_000_000)  # type: ignore[attr-defined]  # private, not in the stubs

# How many messages and how many bytes one UID FETCH asks for: large enough that round trips do
# not matter on a LAN, small enough that a crash re-fetches little and memory stays bounded.
FETCH_BATCH_MESSAGES = 500
FETCH_BATCH_BYTES = 8 * 1024 * 1024
# A message too big to hold (spooled.LARGE_MESSAGE_BYTES) is fetched alone, this much per command,
# into a file.
FETCH_PIECE_BYTES = 1024 * 1024
# New mail is listed (UID and size) at most this many messages per command: a first sync of a big
# mailbox holds one window's response at a time, never a line per message of the whole folder.
LIST_WINDOW = 10_000


class ImapError(AgentdeskError):
    """The IMAP server could not be reached, refused us, or broke off the conversation."""


class ServerBusy(ImapError):
    """The server throttled us (`NO [THROTTLED]`, `[UNAVAILABLE]`, a BYE saying so): trying again
    at once makes it worse, so the caller backs off on its retry schedule."""


# What providers answer when they throttle a client: Exchange Online's NO [THROTTLED] and its BYE
# "server busy", Gmail's [UNAVAILABLE] and [OVERQUOTA] and its "Too many simultaneous connections".
_THROTTLED = re.compile(
    r"\[(THROTTLED|UNAVAILABLE|OVERQUOTA|LIMIT)\]|too many (simultaneous )?connections|"
    r"server (is )?(busy|unavailable)|try again later",
    re.IGNORECASE,
)


def is_throttling(text: str) -> bool:
    return bool(_THROTTLED.search(text))


# What a dropped or restarted server looks like from the client side (of the bulk connection;
# the Idler turns imaplib2's own errors into ImapError).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    imaplib.IMAP4.abort,
    ssl.SSLError,
)


def _imaplib2():
    """imaplib2, imported when IDLE is first used: `sync --once` never needs it."""
    import imaplib2

    return imaplib2


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    internaldate: datetime
    raw: bytes
    # A big message fetched into a file (`fetch_to_file`) instead of `raw`; the caller closes it.
    file: BinaryIO | None = None


class Listing(Sequence[tuple[int, int]]):
    """Messages as (uid, size), in UID order, 8 bytes each: IMAP's UIDs and sizes are 32-bit
    numbers, kept in two arrays (a list of tuples took ~120 bytes a message: 12 MB for a
    mailbox of 100 000)."""

    __slots__ = ("uids", "sizes")

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()):
        self.uids = array("I")
        self.sizes = array("I")
        for uid, size in pairs:
            self.append(uid, size)

    def append(self, uid: int, size: int) -> None:
        self.uids.append(uid)
        self.sizes.append(min(size, 0xFFFFFFFF))

    def __len__(self) -> int:
        return len(self.uids)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self.uids, self.sizes)

    def __getitem__(self, index):  # an int or a slice, as a list's
        if isinstance(index, slice):
            return Listing(zip(self.uids[index], self.sizes[index]))
        return self.uids[index], self.sizes[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"Listing({list(self)!r})"


@dataclass(frozen=True)
class FolderState:
    """What SELECT tells us about a folder."""

    name: str
    uidvalidity: int
    exists: int
    uidnext: int | None


@dataclass(frozen=True)
class ServerSettings:
    """The subset of a `[[mailbox]]` entry that says how to reach the server."""

    name: str
    host: str
    port: int
    tls: str  # ssl | starttls | none
    username: str
    timeout: float = 60.0
    auth: str = ""  # login | plain | xoauth2 | oauthbearer; "" = what the server offers, a password first
    # What to run when a token is refused: `agentdesk oauth login NAME` for a signed-in provider.
    login_hint: str = "check username and password_command"

    @classmethod
    def from_mailbox(cls, mailbox, *, timeout: float = 60.0) -> ServerSettings:
        hint = (
            f"run `agentdesk oauth login {mailbox.name}`"
            if getattr(mailbox, "provider", "") and not mailbox.password_command
            else "check username and password_command"
        )
        return cls(
            name=mailbox.name,
            host=mailbox.host,
            port=mailbox.port,
            tls=mailbox.tls,
            username=mailbox.username,
            timeout=timeout,
            auth=getattr(mailbox, "auth", ""),
            login_hint=hint,
        )


def _mechanism(conn, server: ServerSettings) -> str:
    """The login mechanism for this connection: `server.auth`, or what the server offers."""
    capabilities = {_text(c).upper() for c in getattr(conn, "capabilities", ())}
    offered = {c[5:] for c in capabilities if c.startswith("AUTH=")}
    return sasl.choose(server.auth, offered, login_command="LOGINDISABLED" not in capabilities)


def _log_in(conn, server: ServerSettings, secret: str, mechanism: str) -> None:
    """LOGIN or AUTHENTICATE on an imaplib or imaplib2 connection with `mechanism` (`_mechanism`).
    Raises the library's own error when the server refuses."""
    capabilities = {_text(c).upper() for c in getattr(conn, "capabilities", ())}
    if mechanism == "login" and "LOGINDISABLED" not in capabilities:
        conn.login(server.username, secret)
    elif mechanism == "login":  # the LOGIN command is off: SASL LOGIN, the name, then the password
        answers = iter([server.username, secret])
        conn.authenticate("LOGIN", lambda challenge: next(answers, ""))
    else:
        conn.authenticate(
            mechanism.upper(), sasl.responder(mechanism, server.username, secret, host=server.host, port=server.port)
        )


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _server_reason(data: object) -> str:
    if isinstance(data, (list, tuple)) and data:
        return _text(data[-1]).strip()
    return _text(data).strip()


# --- UID sets, dates, FETCH responses ------------------------------------------------------------


def uid_set(uids: Iterable[int]) -> str:
    """`1:4,7,9:10` for [1, 2, 3, 4, 7, 9, 10]: short commands however many UIDs are asked for."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("an empty UID set")
    ranges: list[str] = []
    start = previous = ordered[0]
    for uid in ordered[1:]:
        if uid == previous + 1:
            previous = uid
            continue
        ranges.append(f"{start}:{previous}" if previous != start else str(start))
        start = previous = uid
    ranges.append(f"{start}:{previous}" if previous != start else str(start))
    return ",".join(ranges)


_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_GMAIL_ID = re.compile(rb"\bX-GM-MSGID (\d+)")
_NUMBER = re.compile(rb"\d+")


_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
_DATE_TIME = re.compile(r"(\d{1,2})-([A-Z][a-z]{2})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})")


def parse_internaldate(text: str | bytes) -> datetime | None:
    """`" 5-Jan-2026 08:00:00 +0100"` → aware UTC datetime; None when it is not a date."""
    value = _text(text).strip()
    match = _DATE_TIME.fullmatch(value)
    if match and match.group(2) in _MONTHS:  # the usual shape, without strptime's cost (a fetch has thousands)
        day, month, year, hour, minute, second, sign, offset_hours, offset_minutes = match.groups()
        offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
        try:
            local = datetime(
                int(year),
                _MONTHS[month],
                int(day),
                int(hour),
                int(minute),
                int(second),
                tzinfo=timezone(offset if sign == "+" else -offset),
            )
            return local.astimezone(timezone.utc)
        except ValueError:
            return None
    try:
        return datetime.strptime(value, "%d-%b-%Y %H:%M:%S %z").astimezone(timezone.utc)
    except ValueError:
        return None


def parse_fetch(data: Sequence[object], *, now: datetime | None = None) -> Iterator[FetchedMessage]:
    """FetchedMessage records from stdlib imaplib's UID FETCH result (tuples of head, literal)."""
    for item in data:
        if not isinstance(item, tuple) or len(item) < 2:
            continue  # the closing b")" of each response, or an unsolicited FLAGS update
        head, literal = item[0], item[1]
        uid_match = _UID.search(head)
        if uid_match is None or not isinstance(literal, bytes):
            continue
        date_match = _INTERNALDATE.search(head)
        internal = parse_internaldate(date_match.group(1)) if date_match else None
        yield FetchedMessage(int(uid_match.group(1)), internal or now or datetime.now(timezone.utc), literal)


# --- the bulk connection (stdlib imaplib) --------------------------------------------------------


def _one_command_at_a_time(method):
    """A big sync fetches the next batch in a thread while it stores (and marks seen or moves)
    the last: the connection runs one command at a time, the others wait for it."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._command_lock:
            return method(self, *args, **kwargs)

    return locked


class BulkConnection:
    """A plain, synchronous IMAP connection for listing, fetching and changing messages."""

    def __init__(self, server: ServerSettings, password: str):
        self.server = server
        self._command_lock = threading.Lock()
        self.selected: FolderState | None = None
        self._capabilities: set[str] = set()
        self.gmail_ids: dict[int, int] = {}
        mechanism = server.auth or "login"
        try:
            self.conn = self._open(server)
            mechanism = _mechanism(self.conn, server)
            _log_in(self.conn, server, password, mechanism)
        except imaplib.IMAP4.error as error:
            raise _refused(server, mechanism, error) from None
        except CONNECTION_ERRORS as error:
            raise ImapError(
                f"mailbox {server.name}: cannot connect to {server.host}:{server.port} ({server.tls}): {error}; "
                "check host, port and tls"
            ) from None
        self._capabilities = {_text(c).upper() for c in getattr(self.conn, "capabilities", ())}
        # Servers announce more once logged in (Dovecot, Gmail: in the login's OK response).
        _, announced = self.conn.response("CAPABILITY")
        for line in announced or ():
            if line is not None:
                self._capabilities.update(_text(line).upper().split())

    @staticmethod
    def _open(server: ServerSettings) -> imaplib.IMAP4:
        if server.tls == "ssl":
            return imaplib.IMAP4_SSL(
                server.host, server.port, ssl_context=ssl.create_default_context(), timeout=server.timeout
            )
        conn = imaplib.IMAP4(server.host, server.port, timeout=server.timeout)
        if server.tls == "starttls":
            conn.starttls(ssl.create_default_context())
        return conn

    def _check(self, typ: str, data: object, what: str) -> None:
        if typ != "OK":
            reason = _server_reason(data)
            error = ServerBusy if is_throttling(reason) else ImapError
            raise error(f"mailbox {self.server.name}: {what} failed: {reason}")

    @_one_command_at_a_time
    def select(self, folder: str, *, readonly: bool = False) -> FolderState:
        typ, data = self.conn.select(_quote(folder), readonly=readonly)
        if typ != "OK":
            raise ImapError(
                f"mailbox {self.server.name}: cannot open folder {folder!r}: {_server_reason(data)}; "
                "check `folders` in the config"
            )
        exists = int(_text(data[0]) or 0) if data and data[0] else 0
        _, validity = self.conn.response("UIDVALIDITY")
        _, uidnext = self.conn.response("UIDNEXT")
        if not validity or validity[0] is None:
            # Every IMAP4rev1 server sends it; without it exactly-once cannot be promised.
            raise ImapError(f"mailbox {self.server.name}: the server sent no UIDVALIDITY for {folder!r}")
        state = FolderState(
            name=folder,
            uidvalidity=int(validity[-1]),
            exists=exists,
            uidnext=int(uidnext[-1]) if uidnext and uidnext[-1] is not None else None,
        )
        self.selected = state
        return state

    @property
    def gmail(self) -> bool:
        """Whether the server is Gmail's (X-GM-EXT-1): one message shows in every label's folder."""
        return "X-GM-EXT-1" in self._capabilities

    def list_after(self, last_uid: int) -> Listing:
        """(uid, size) of every message above `last_uid`, in UID order. On Gmail, each one's
        X-GM-MSGID (the message's id across labels) is left in `gmail_ids` by UID.

        Up to LIST_WINDOW new UIDs (UIDNEXT says how many there can be) take one command. More
        (a first sync) are found with UID SEARCH and listed LIST_WINDOW at a time, by UID range:
        what is held is the listing and one window's response, however big the folder."""
        self.gmail_ids = {}
        listing = Listing()
        if self.selected is None or self.selected.exists == 0:
            return listing
        uidnext = self.selected.uidnext
        if uidnext is not None and uidnext - 1 - last_uid <= LIST_WINDOW:
            self._list_window(listing, f"{last_uid + 1}:*", last_uid)
            return listing
        uids = self._uids_after(last_uid)
        for start in range(0, len(uids), LIST_WINDOW):
            self._list_window(listing, f"{uids[start]}:{uids[min(start + LIST_WINDOW, len(uids)) - 1]}", last_uid)
        return listing

    @_one_command_at_a_time
    def _uids_after(self, last_uid: int) -> array:
        """The UIDs above `last_uid`, ascending (UID SEARCH: a few bytes a message on the wire)."""
        typ, data = self.conn.uid("SEARCH", None, f"UID {last_uid + 1}:*")  # type: ignore[arg-type]  # no CHARSET
        self._check(typ, data, "listing new messages")
        uids = array("I")
        for line in data:
            if isinstance(line, bytes):
                # One number at a time: a first sync's answer is one line of every UID.
                uids.extend(uid for uid in (int(number[0]) for number in _NUMBER.finditer(line)) if uid > last_uid)
        if any(later <= earlier for earlier, later in zip(uids, uids[1:])):
            uids = array("I", sorted(set(uids)))  # servers answer in order; the RFC does not say so
        return uids

    @_one_command_at_a_time
    def _list_window(self, listing: Listing, uid_range: str, last_uid: int) -> None:
        """Append (uid, size) of the messages in `uid_range` above `last_uid` and above what
        `listing` holds, in UID order."""
        items = "(UID RFC822.SIZE X-GM-MSGID)" if self.gmail else "(UID RFC822.SIZE)"
        typ, data = self.conn.uid("FETCH", uid_range, items)
        self._check(typ, data, "listing new messages")
        found: dict[int, int] = {}
        for line in data:
            if isinstance(line, tuple):
                line = line[0]
            if not isinstance(line, bytes):
                continue
            uid = _UID.search(line)
            size = _SIZE.search(line)
            if uid:
                found[int(uid.group(1))] = int(size.group(1)) if size else 0
                gmail_id = _GMAIL_ID.search(line)
                if gmail_id:
                    self.gmail_ids[int(uid.group(1))] = int(gmail_id.group(1))
        # "n:*" always matches the highest UID, even below n (RFC 3501 6.4.8).
        after = max(last_uid, listing.uids[-1] if listing else 0)
        for number in sorted(found):
            if number > after:
                listing.append(number, found[number])

    @_one_command_at_a_time
    def fetch(self, uids: Sequence[int]) -> list[FetchedMessage]:
        """The raw bytes and INTERNALDATE of these messages, without setting \\Seen."""
        if not uids:
            return []
        typ, data = self.conn.uid("FETCH", uid_set(uids), "(UID INTERNALDATE BODY.PEEK[])")
        self._check(typ, data, "fetching messages")
        return sorted(parse_fetch(data), key=lambda m: m.uid)

    def fetch_to_file(self, uid: int, file: BinaryIO) -> FetchedMessage | None:
        """One message into `file`, FETCH_PIECE_BYTES per command (partial BODY.PEEK[]<offset.length>),
        so it is never held whole; None when it is gone. The file is left at its end."""
        offset = 0
        internal = None
        while True:
            literal, date = self._fetch_piece(uid, offset)
            if offset == 0:
                if literal is None:
                    return None
                internal = date
            if not literal:
                break
            file.write(literal)
            offset += len(literal)
            if len(literal) < FETCH_PIECE_BYTES:
                break
        file.flush()
        return FetchedMessage(uid, internal or datetime.now(timezone.utc), b"", file)

    @_one_command_at_a_time
    def _fetch_piece(self, uid: int, offset: int) -> tuple[bytes | None, datetime | None]:
        typ, data = self.conn.uid("FETCH", str(uid), f"(UID INTERNALDATE BODY.PEEK[]<{offset}.{FETCH_PIECE_BYTES}>)")
        self._check(typ, data, "fetching a message in pieces")
        for item in data:
            if isinstance(item, tuple) and len(item) >= 2 and isinstance(item[1], bytes):
                uid_match = _UID.search(item[0])
                if uid_match is not None and int(uid_match.group(1)) == uid:
                    date_match = _INTERNALDATE.search(item[0])
                    return item[1], parse_internaldate(date_match.group(1)) if date_match else None
        return None, None

    @_one_command_at_a_time
    def search_unseen(self, up_to_uid: int) -> list[int]:
        typ, data = self.conn.uid("SEARCH", None, f"UID 1:{up_to_uid} UNSEEN")  # type: ignore[arg-type]  # no CHARSET
        self._check(typ, data, "searching unread messages")
        return [int(u) for u in b" ".join(d for d in data if d).split() if int(u) <= up_to_uid]

    @_one_command_at_a_time
    def search_all(self, up_to_uid: int) -> list[int]:
        typ, data = self.conn.uid("SEARCH", None, f"UID 1:{up_to_uid}")  # type: ignore[arg-type]  # no CHARSET
        self._check(typ, data, "searching messages")
        return [int(u) for u in b" ".join(d for d in data if d).split() if int(u) <= up_to_uid]

    @_one_command_at_a_time
    def mark_seen(self, uids: Sequence[int]) -> None:
        if uids:
            typ, data = self.conn.uid("STORE", uid_set(uids), "+FLAGS.SILENT", r"(\Seen)")
            self._check(typ, data, "marking messages read")

    @_one_command_at_a_time
    def move(self, uids: Sequence[int], folder: str) -> None:
        """MOVE (RFC 6851) where the server has it, else COPY + \\Deleted + UID EXPUNGE."""
        if not uids:
            return
        ids = uid_set(uids)
        if "MOVE" in self._capabilities:
            typ, data = self.conn.uid("MOVE", ids, _quote(folder))
            self._check(typ, data, f"moving messages to {folder!r}")
            return
        typ, data = self.conn.uid("COPY", ids, _quote(folder))
        self._check(typ, data, f"copying messages to {folder!r}")
        typ, data = self.conn.uid("STORE", ids, "+FLAGS.SILENT", r"(\Deleted)")
        self._check(typ, data, "flagging moved messages deleted")
        if "UIDPLUS" in self._capabilities:
            self.conn.uid("EXPUNGE", ids)
        else:
            self.conn.expunge()

    @_one_command_at_a_time
    def append(self, folder: str, raw: bytes, *, flags: str = r"(\Seen)", when: datetime | None = None) -> None:
        date = imaplib.Time2Internaldate(when or datetime.now(timezone.utc))
        typ, data = self.conn.append(_quote(folder), flags, date, raw)
        self._check(typ, data, f"appending to {folder!r}")

    @_one_command_at_a_time
    def create(self, folder: str) -> None:
        self.conn.create(_quote(folder))

    @_one_command_at_a_time
    def noop(self) -> None:
        typ, data = self.conn.noop()
        self._check(typ, data, "NOOP")

    @_one_command_at_a_time
    def close(self) -> None:
        try:
            self.conn.logout()
        except Exception:
            try:
                self.conn.shutdown()
            except Exception:
                pass


def _refused(server: ServerSettings, mechanism: str, error: BaseException) -> ImapError:
    reason = _text(error.args[0]) if len(error.args) == 1 else _text(error)  # imaplib's reason is bytes
    if is_throttling(reason):
        return ServerBusy(
            f"mailbox {server.name}: {server.host}:{server.port} is throttling logins: {reason}; backing off"
        )
    return ImapError(
        f"mailbox {server.name}: {server.host}:{server.port} refused the login of "
        f"{server.username!r} ({mechanism.upper()}): {reason}; {server.login_hint}"
    )


def _quote(folder: str) -> str:
    """A mailbox name as an IMAP quoted string (imaplib sends arguments as given)."""
    if re.fullmatch(r"[A-Za-z0-9_./-]+", folder):
        return folder
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- the control connection (imaplib2): IDLE -----------------------------------------------------


def _verify_hostname(cert: dict, hostname: str) -> str | None:
    """imaplib2 checks the chain only; this checks that the certificate names the host."""
    names = [value for key, value in cert.get("subjectAltName", ()) if key in ("DNS", "IP Address")]
    if not names:
        names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    host = hostname.lower().rstrip(".")
    for name in names:
        name = name.lower().rstrip(".")
        if name == host or (name.startswith("*.") and host.partition(".")[2] == name[2:]):
            return None
    return f"certificate names {', '.join(names) or 'nothing'}, not {hostname}"


def _quiet_stream():
    """imaplib2 prints its last protocol lines to stderr when a connection breaks; our errors
    already say what happened. (It accepts only a real text file here.)"""
    global _QUIET
    if _QUIET is None:
        _QUIET = open(os.devnull, "w")  # noqa: SIM115  (held open for the life of the process)
    return _QUIET


_QUIET = None


# The longest one IDLE command lasts before it is ended and re-issued: Exchange Online ends an IDLE
# after about 29 minutes and RFC 2177 asks clients to re-issue within 29; NAT boxes drop quiet
# connections sooner still. (The sync worker re-issues it every poll interval, shorter yet.)
IDLE_RENEW_SECONDS = 25 * 60


class Idler:
    """An imaplib2 connection that waits in IDLE on one folder until the server reports a change.

    Two kinds of failure, because the caller answers them differently: `ConnectionLost` (no TCP
    connection, or it broke: a restart, a killed server process, a network cut) is worth
    reconnecting soon; a plain `ImapError` (the login or the folder refused, IDLE rejected) would
    fail the same way again, so the caller polls instead.
    """

    class ConnectionLost(ImapError):
        """The IDLE connection could not be made or broke off; the server may be back in a moment."""

    def __init__(self, server: ServerSettings, password: str, folder: str):
        self.server = server
        self.folder = folder
        self._lock = threading.Lock()
        self._closed = False
        imaplib2 = _imaplib2()
        ca = ssl.get_default_verify_paths().cafile
        # imaplib2 takes a debug stream only of sys.stderr's own type, and fails on another (a
        # test runner or Textual replaces sys.stderr): then it gets the quiet one once connected.
        quiet = _quiet_stream()
        debug_file = quiet if isinstance(quiet, type(sys.stderr)) else None
        try:
            if server.tls == "ssl":
                self.conn = imaplib2.IMAP4_SSL(
                    server.host,
                    server.port,
                    ca_certs=ca,
                    cert_verify_cb=_verify_hostname,
                    timeout=server.timeout,
                    debug=0,
                    debug_file=debug_file,
                )
                self.conn.debug_file = quiet
            else:
                self.conn = imaplib2.IMAP4(
                    server.host, server.port, timeout=server.timeout, debug=0, debug_file=debug_file
                )
                self.conn.debug_file = quiet
                if server.tls == "starttls":
                    self.conn.starttls(ca_certs=ca, cert_verify_cb=_verify_hostname)
            mechanism = _mechanism(self.conn, server)
            try:
                _log_in(self.conn, server, password, mechanism)
            except imaplib2.IMAP4.abort:
                raise
            except imaplib2.IMAP4.error as error:
                raise _refused(server, mechanism, error) from None
            typ, data = self.conn.select(_quote(folder), readonly=True)
            if typ != "OK":
                raise ImapError(f"mailbox {server.name}: cannot open {folder!r} for IDLE: {_server_reason(data)}")
        except ImapError:
            self.close()
            raise
        except (imaplib2.IMAP4.abort, *CONNECTION_ERRORS) as error:
            self.close()
            raise self.ConnectionLost(
                f"mailbox {server.name}: IDLE connection to {server.host}:{server.port} failed: {error}"
            ) from None
        except imaplib2.IMAP4.error as error:  # the login refused, say: reconnecting would not help
            self.close()
            raise ImapError(
                f"mailbox {server.name}: IDLE connection to {server.host}:{server.port} failed: {error}"
            ) from None
        capabilities = {_text(c).upper() for c in getattr(self.conn, "capabilities", ())}
        self.supported = "IDLE" in capabilities

    def wait(self, timeout: float) -> bool:
        """Block in IDLE until the server reports a change or `timeout` passes.

        Returns True when the server (probably) has something new. Raises `ConnectionLost` when
        the connection broke, so the caller reconnects; `ImapError` when the server refused IDLE.
        """
        if self._closed:
            raise ImapError(f"mailbox {self.server.name}: the IDLE connection is closed")
        imaplib2 = _imaplib2()
        try:
            self.conn.idle(timeout=max(1, int(min(timeout, IDLE_RENEW_SECONDS))))
            # Untagged EXISTS/RECENT/EXPUNGE that arrived during IDLE mean "look again".
            changed = False
            for code in ("EXISTS", "RECENT", "EXPUNGE", "FETCH"):
                _, data = self.conn.response(code)
                if data and data[0] is not None:
                    changed = True
            return changed
        except (imaplib2.IMAP4.abort, *CONNECTION_ERRORS) as error:
            if self._closed:
                return False
            raise self.ConnectionLost(
                f"mailbox {self.server.name}: the IDLE connection to {self.server.host}:{self.server.port} "
                f"broke: {error}"
            ) from None
        except imaplib2.IMAP4.error as error:
            if self._closed:
                return False
            raise ImapError(f"mailbox {self.server.name}: the server refused IDLE: {error}") from None

    def interrupt(self) -> None:
        """Wake a thread blocked in `wait`, for good: used when the worker stops.

        imaplib2 holds its state lock for the whole of a synchronous IDLE, so another command
        would queue behind it; shutting the socket down ends the IDLE at once.
        """
        self._closed = True
        sock = getattr(getattr(self, "conn", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        if getattr(self, "conn", None) is None:
            self._closed = True
            return
        if not self._closed:
            self._closed = True
            try:
                self.conn.logout()
                return
            except Exception:
                pass
        self.interrupt()
        try:
            self.conn.shutdown()
        except Exception:
            pass


def probe(server: ServerSettings, password: str) -> str:
    """Log in and out; the server's greeting capabilities, for `doctor`."""
    connection = BulkConnection(server, password)
    try:
        return " ".join(sorted(connection._capabilities))
    finally:
        connection.close()


def is_connection_error(error: BaseException) -> bool:
    return isinstance(error, (*CONNECTION_ERRORS, socket.timeout))
