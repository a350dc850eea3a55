"""`agentdesk webhook serve`: a small HTTP receiver that verifies each POST and writes it to a spool.

    POST /hooks/<spool name>      -> 200 once the payload is durable in <spool>/new/
    GET|HEAD /healthz             -> 200 "ok" (no authentication: for load balancers)

Rules (DESIGN, config contract):

- bound to 127.0.0.1 by default; put a TLS reverse proxy in front of it (docs/webhooks.md);
- every request is authenticated before anything reaches new/: `X-Agentdesk-Signature:
  sha256=<hex HMAC-SHA256 of the raw body with the spool's secret>`, or for a spool with the
  `twilio_sms` adapter Twilio's own `X-Twilio-Signature` (base64 HMAC-SHA1 of the public URL and
  the sorted form fields, keyed with the auth token — which is then the spool's secret);
  401 for a missing, malformed or wrong signature, and for a spool without `secret_command`;
- 413 when the body is over the spool's `max_bytes`: decided from Content-Length before the body
  is read, and counted while a chunked body streams; 411 without a Content-Length or chunking;
- 2xx only after the file's content was flushed to disk, it was renamed into new/ and new/ was
  fsynced: a 200 means the payload survives a crash or a power cut. A write failure answers 503,
  and the provider retries. The posts complete at the same time are committed together
  (`commit.DirectoryCommitter`: one syncfs for all their contents, their renames, one fsync of
  new/), so under load the disk is flushed twice for many posts; the committer's thread sends
  each 200 right after (`answers.DeferredAnswer`), while the handler thread already reads its
  connection's next request.

It faces the internet (through a proxy), so what a client sends is bounded in time, memory and
threads:

- a body is streamed into the spool's tmp/ while its HMAC is computed, never held in memory;
  a bad signature, an error or a vanished client removes the temporary file;
- a connection has `header_timeout` seconds for its request line and headers (new or kept alive)
  and a request `body_timeout` seconds for its body; a watchdog thread enforces both as whole
  deadlines (a per-read socket timeout would let a client trickle one byte at a time for ever)
  by shutting the reading side, so the handler wakes, answers 408 where it can, and closes;
- at most `max_connections` connections are handled at once; one more is answered 503 at once
  from the accepting thread and closed;
- the request line and headers are at most `MAX_HEAD_BYTES` together;
- everything logged that came from the client is escaped (`sanitize.printable`), and a client that
  disappears costs one log line, not a traceback.

The standard library's ThreadingHTTPServer is enough here: each request is a few system calls
and a share of a group commit, and the listen backlog is raised so a burst of posts queues instead of failing.
Each answer is written to the socket in one piece (see `answers`); a request's head is read
whole and parsed in one pass (`request_head`), not by the email package.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast

from agentdesk.channels.webhook import request_head
from agentdesk.channels.webhook import spool as spooling
from agentdesk.channels.webhook.answers import Answer, DeferredAnswer, kernel_timeout
from agentdesk.channels.webhook.signatures import agentdesk_signature as agentdesk_signature
from agentdesk.channels.webhook.signatures import same, verify_twilio
from agentdesk.channels.webhook.signatures import twilio_signature as twilio_signature
from agentdesk.config import Settings, SpoolSettings, WebhookSettings
from agentdesk.sanitize import printable

SIGNATURE_HEADER = "X-Agentdesk-Signature"
TWILIO_HEADER = "X-Twilio-Signature"
_TWIML_EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_HEAD_BYTES = 64 * 1024  # request line and headers together
# Twilio's form signature covers the parsed fields, so a form body is read back whole to check
# it; Twilio's own posts are a few KiB, and this bounds what a forged one can make us hold.
TWILIO_FORM_MAX_BYTES = 256 * 1024
LINGER_SECONDS = 1.0  # after an early answer, how long the unread rest of a body is drained
LINGER_BYTES = 1 << 20
_CHUNK = 64 * 1024
_AGENTDESK_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}")
_TWILIO_SIGNATURE = re.compile(r"[A-Za-z0-9+/]{20,100}={0,2}")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")


@dataclass(frozen=True)
class Limits:
    """How much time and how many connections a client gets (config: [webhook])."""

    header_timeout: float = WebhookSettings.header_timeout
    body_timeout: float = WebhookSettings.body_timeout
    max_connections: int = WebhookSettings.max_connections

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        webhook = settings.webhook
        return cls(webhook.header_timeout, webhook.body_timeout, webhook.max_connections)


@dataclass
class Endpoint:
    spool: SpoolSettings
    path: Path
    secret: str | None  # None: the spool has no secret_command and every POST is refused


class Endpoints(dict):
    """The endpoints by spool name, and the receiver's limits from the same settings."""

    limits: Limits = Limits()


def endpoints_from_settings(
    settings: Settings, *, secret: Callable[[SpoolSettings, str], str] | None = None
) -> Endpoints:
    """One endpoint per configured spool; runs each spool's secret_command once, at start."""
    endpoints = Endpoints()
    endpoints.limits = Limits.from_settings(settings)
    for index, spool in enumerate(settings.spool):
        key = f"spool[{index}] ({spool.name})"
        value = None
        if spool.secret_command:
            value = secret(spool, key) if secret else spool.secret(key)
        path = settings.spool_path(spool)
        spooling.ensure_spool(path)
        endpoints[spool.name] = Endpoint(spool=spool, path=path, secret=value)
    return endpoints


class _Verifier:
    """The request's signature, checked against the body as it streams past."""

    def __init__(
        self, handler: _Handler, endpoint: Endpoint, agentdesk: str | None, twilio: str | None, content_type: str
    ):
        key = (endpoint.secret or "").encode("utf-8")
        self.handler, self.endpoint, self.content_type = handler, endpoint, content_type
        self.agentdesk, self.twilio = agentdesk, twilio
        self.digest = hmac.new(key, digestmod=hashlib.sha256) if agentdesk else hashlib.sha256()

    def update(self, data: bytes) -> None:
        self.digest.update(data)

    def verified(self, writer: spooling.SpoolWriter, offset: int) -> bool:
        if self.agentdesk:
            return same(self.agentdesk.lower(), "sha256=" + self.digest.hexdigest())
        url = self.handler.public_url()
        body = b""
        if self.content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
            if writer.size - offset > TWILIO_FORM_MAX_BYTES:
                return False
            body = writer.read_back(offset)
        return verify_twilio(
            url,
            body,
            self.content_type,
            self.twilio or "",
            self.endpoint.secret or "",
            body_sha256=self.digest.hexdigest(),
        )


class _Connection:
    """One accepted connection, with the deadline of what it is sending now."""

    __slots__ = ("sock", "deadline", "expired")

    def __init__(self, sock: socket.socket, seconds: float):
        self.sock = sock
        self.expired = False
        self.deadline = time.monotonic() + seconds

    def allow(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def expire(self, how: int = socket.SHUT_RD) -> None:
        """Wake the handler blocked on this connection: its reads return end-of-file."""
        self.expired = True
        try:
            self.sock.shutdown(how)
        except OSError:
            pass


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # server_close ends the connections itself (see there)
    allow_reuse_address = True
    request_queue_size = 1024  # a burst of provider retries queues in the kernel instead of being refused

    def __init__(
        self,
        address: tuple[str, int],
        endpoints: dict[str, Endpoint],
        *,
        public_url: str = "",
        durable: bool = True,
        log: Callable[[str], None] | None = None,
        limits: Limits | None = None,
    ):
        self.endpoints = endpoints
        self.public_url = public_url.rstrip("/")
        self.durable = durable
        self.log = log
        self.limits = limits or getattr(endpoints, "limits", None) or Limits()
        self.connections: dict[socket.socket, _Connection] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._refused = 0
        self._refused_logged = 0.0
        super().__init__(address, _Handler)
        self._watchdog = threading.Thread(target=self._enforce_deadlines, name="webhook-deadlines", daemon=True)
        self._watchdog.start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def write_log(self, line: str) -> None:
        if self.log is not None:
            self.log(printable(line))

    # -- connections: a cap and deadlines --

    def process_request(self, request: socket.socket, client_address) -> None:  # type: ignore[override]  # a stream server: always a socket
        with self._lock:
            full = len(self.connections) >= self.limits.max_connections
            if not full:
                self.connections[request] = _Connection(request, self.limits.header_timeout)
        if full:
            self._refuse(request, client_address)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._lock:
                self.connections.pop(request, None)
            raise

    def process_request_thread(self, request: socket.socket, client_address) -> None:  # type: ignore[override]  # see above
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self.connections.pop(request, None)

    def _refuse(self, request: socket.socket, client_address) -> None:
        """Over the cap: 503 without reading anything, from the accepting thread, never blocking it."""
        body = json.dumps({"error": f"busy: {self.limits.max_connections} connections already; retry later"})
        answer = (
            f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 5\r\nConnection: close\r\n\r\n{body}"
        )
        try:
            request.setblocking(False)
            request.send(answer.encode("ascii"))
        except OSError:
            pass
        self.shutdown_request(request)
        self._refused += 1
        now = time.monotonic()
        if now - self._refused_logged >= 10.0:  # a flood of refusals is a few lines, not one per connection
            self.write_log(
                f"{client_address[0]} refused with 503: {self._refused} connection(s) over the cap of "
                f"{self.limits.max_connections} since the last report"
            )
            self._refused, self._refused_logged = 0, now

    def _enforce_deadlines(self) -> None:
        while not self._closing.wait(0.2):
            now = time.monotonic()
            with self._lock:
                late = [c for c in self.connections.values() if not c.expired and c.deadline <= now]
            for connection in late:
                connection.expire()

    def handle_error(self, request, client_address) -> None:
        """One line for a client that went away; an escaped traceback for anything else."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            self.write_log(f"{client_address[0]} connection ended: {type(error).__name__}: {error}")
            return
        self.write_log(f"{client_address[0]} internal error: {type(error).__name__}: {error}")
        for line in traceback.format_exc().splitlines():
            self.write_log(f"  {line}")

    def server_close(self) -> None:
        self._closing.set()
        super().server_close()
        with self._lock:
            live = list(self.connections.values())
        for connection in live:  # handlers wake, see end-of-file and finish
            connection.expire(socket.SHUT_RDWR)


class _ClientGone(Exception):
    """The client stopped sending: it closed the connection, or its deadline passed (`timed_out`)."""

    def __init__(self, reason: str, *, timed_out: bool):
        super().__init__(reason)
        self.timed_out = timed_out


class _Refuse(Exception):
    """An answer decided while the body streams (413 over max_bytes, 400 broken chunking)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def _head_end(received: bytes) -> int:
    """The length of the request line and headers up to their blank line, when all of them are in
    `received` and start it (0 otherwise): where reading line by line would stop."""
    if received[:1] in (b"\r", b"\n"):
        return 0  # a stray blank line first: read line by line
    ends = [at + width for at, width in ((received.find(b"\n\r\n"), 3), (received.find(b"\n\n"), 2)) if at >= 0]
    return min(ends) if ends and min(ends) <= MAX_HEAD_BYTES else 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a provider's burst reuses connections
    disable_nagle_algorithm = True  # what is flushed is sent at once (an answer, a 100 Continue)
    server_version = "agentdesk-webhook/1"
    sys_version = ""
    server: ReceiverServer

    def setup(self) -> None:
        super().setup()
        self.wfile = self.answer = Answer(self.connection)  # type: ignore[assignment]  # what the handler writes to
        limits = self.server.limits
        # A backstop only: the watchdog enforces the real deadlines; this also bounds a send to a
        # client that stopped reading. Kept in the kernel (SO_RCVTIMEO, SO_SNDTIMEO): a Python
        # socket timeout would put a poll() before every recv and send.
        kernel_timeout(self.connection, limits.header_timeout + limits.body_timeout)
        self.deadline = self.server.connections[self.connection]
        self._expect_continue = False

    def finish(self) -> None:
        try:
            self.answer.settle()  # a deferred answer goes out before the connection closes
        except OSError:
            pass
        super().finish()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the stdlib's name)
        if self.server.log is not None:
            self.server.write_log(f"{self.client_address[0]} {format % args}")

    _date = (0, "")  # (second, its Date header): formatted once a second, not for every answer

    def date_time_string(self, timestamp: float | None = None) -> str:
        if timestamp is not None:
            return super().date_time_string(timestamp)
        second, text = _Handler._date
        if second != int(time.time()):
            second = int(time.time())
            text = super().date_time_string(second)
            _Handler._date = (second, text)
        return text

    # -- reading a request: the whole head within its deadline --

    def handle_one_request(self) -> None:
        self.deadline.allow(self.server.limits.header_timeout)
        self._expect_continue = False
        try:
            head = self._read_head()
        except _Refuse as refused:
            self.requestline, self.request_version, self.command = "", "HTTP/1.1", ""
            self._error(refused.status, str(refused), unread=True)
            return
        except _ClientGone as gone:
            self.close_connection = True
            if str(gone):
                self.log_message("%s", gone)
                if gone.timed_out:
                    self.requestline, self.request_version, self.command = "", "HTTP/1.1", ""
                    self._try_error(408, str(gone))
            return
        if not self._parse_head(head):
            self.close_connection = True
            return
        method = getattr(self, "do_" + self.command, None)
        if method is None:
            self.close_connection = True
            self.send_error(501, "unsupported method")
            return
        method()
        self.wfile.flush()

    def _parse_head(self, head: bytes) -> bool:
        """What the standard library's parse_request does, on a head read whole (request_head):
        sets command, path, request_version, headers and close_connection; False after answering
        why the head is refused."""
        self.command, self.request_version, self.close_connection = "", "HTTP/1.1", True
        self.requestline, fields = request_head.split_head(head)
        try:
            line = request_head.parse_request_line(self.requestline)
            self.command, self.path, self.request_version = line.command, line.path, line.version
            self.headers = request_head.parse_fields(fields)  # type: ignore[assignment]  # the part of Message used here
        except request_head.HeadError as error:
            self._error(error.status, str(error), close=True)
            return False
        connection = (self.headers.get("Connection") or "").lower()
        self.close_connection = connection == "close" or not (line.keep_alive or connection == "keep-alive")
        expect = self.headers.get("Expect") or ""
        if expect.lower() == "100-continue" and self.request_version >= "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def _read_head(self) -> bytes:
        """The request line and headers, up to the blank line; raises _ClientGone (with an empty
        reason when nothing at all was sent) or _Refuse (431) when they are too large."""
        try:  # the usual case: the whole head is in what was received, and is taken at once
            received = cast(io.BufferedReader, self.rfile).peek(1)
        except OSError:
            received = b""
        end = _head_end(received)
        if end:
            return self.rfile.read(end)
        budget = MAX_HEAD_BYTES
        lines: list[bytes] = []
        while True:
            try:
                line = self.rfile.readline(budget + 1)
            except OSError as error:
                raise self._gone(f"{type(error).__name__} while reading the request headers", lines) from None
            if len(line) > budget:
                raise _Refuse(431, f"the request line and headers are over {MAX_HEAD_BYTES} bytes")
            if not line.endswith(b"\n"):
                raise self._gone("closed the connection in the middle of the request headers", lines + [line])
            budget -= len(line)
            if not lines and line in (b"\r\n", b"\n"):
                continue  # a stray blank line between kept-alive requests
            lines.append(line)
            if line in (b"\r\n", b"\n"):
                return b"".join(lines)

    def _gone(self, reason: str, received: list[bytes]) -> _ClientGone:
        size = sum(len(part) for part in received)
        if self.deadline.expired:
            if not size:
                return _ClientGone("", timed_out=True)  # idle: closed without a word
            return _ClientGone(
                f"sent {size} bytes of request headers and no more within "
                f"{self.server.limits.header_timeout:g} s; closed",
                timed_out=True,
            )
        return _ClientGone(f"{reason} ({size} bytes)" if size else "", timed_out=False)

    def handle_expect_100(self) -> bool:
        # "100 Continue" is sent only once the request passed every check that needs no body.
        self._expect_continue = True
        return True

    # -- answering --

    def _answer(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        close: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        # send_response, send_header and end_headers in one piece of text: the same head, in a
        # fraction of their time (each header was formatted, encoded and buffered on its own).
        self.log_request(status)
        if close:
            self.close_connection = True
        if self.request_version != "HTTP/0.9":
            head = (
                f"{self.protocol_version} {status} {self.responses[status][0]}\r\n"
                f"Server: {self.version_string()}\r\nDate: {self.date_time_string()}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            )
            for name, value in (headers or {}).items():
                head += f"{name}: {value}\r\n"
            self.wfile.write((head + ("Connection: close\r\n\r\n" if close else "\r\n")).encode("latin-1"))
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _error(
        self,
        status: int,
        reason: str,
        *,
        close: bool = False,
        headers: dict[str, str] | None = None,
        unread: bool = False,
    ) -> None:
        """An error answer; `unread`: the body was not read, so drop the connection after a short drain."""
        self._answer(status, json.dumps({"error": reason}).encode("utf-8"), close=close or unread, headers=headers)
        if unread:
            self._drain()

    def _try_error(self, status: int, reason: str) -> None:
        try:
            self._error(status, reason, close=True)
        except OSError:
            self.close_connection = True

    def _drain(self) -> None:
        """Read and drop what the client still sends, briefly: closing a socket with unread data
        resets the connection, and the client could lose the answer it has not read yet."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            return
        until = time.monotonic() + LINGER_SECONDS
        drained = 0
        while drained < LINGER_BYTES:
            left = until - time.monotonic()
            if left <= 0:
                break
            try:
                self.connection.settimeout(left)
                data = self.rfile.read1(_CHUNK)
            except (OSError, ValueError):
                break
            if not data:
                break
            drained += len(data)

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # a body we will not read: never parse it as the next request
        if self.path.split("?", 1)[0] == "/healthz":
            self._answer(200, b"ok\n", "text/plain")
        else:
            self._error(404, "not found; POST /hooks/<spool name>")

    do_HEAD = do_GET

    def do_PUT(self) -> None:  # noqa: N802
        self._error(405, "only POST is accepted", headers={"Allow": "POST"}, unread=True)

    do_DELETE = do_PATCH = do_PUT

    def public_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url + self.path
        scheme = self.headers.get("X-Forwarded-Proto", "http").split(",")[0].strip() or "http"
        host = (self.headers.get("X-Forwarded-Host") or self.headers.get("Host") or "").split(",")[0].strip()
        return f"{scheme}://{host}{self.path}"

    # -- POST /hooks/<spool> --

    def do_POST(self) -> None:  # noqa: N802
        route = urllib.parse.urlsplit(self.path).path.rstrip("/")
        prefix, _, name = route.rpartition("/")
        endpoint = self.server.endpoints.get(urllib.parse.unquote(name)) if prefix == "/hooks" else None
        if endpoint is None:
            self._error(404, "no such spool; POST /hooks/<spool name>", unread=True)
            return
        framing = self._framing(endpoint)
        if framing is None:
            return
        if endpoint.secret is None:
            self._error(401, f"spool {endpoint.spool.name} has no secret_command; it accepts no posts", unread=True)
            return
        content_type = self.headers.get("Content-Type", "application/octet-stream")
        verifier = self._verifier(endpoint, content_type)
        if verifier is None:
            self._error(401, "missing or invalid signature", unread=True)
            return
        if self._expect_continue:
            self.send_response_only(100)
            self.end_headers()
            self.wfile.flush()  # the client waits for it before sending the body
        header, extension = spooling.spool_header(content_type)
        try:
            writer = spooling.SpoolWriter(endpoint.path, extension=extension, durable=self.server.durable)
        except OSError as error:
            self._error(
                503, f"cannot store the payload: {error.strerror or error}", headers={"Retry-After": "30"}, unread=True
            )
            return
        # Every way out without a commit removes the temporary file, before any answer: an
        # answer other than 200 means nothing of the request is left on disk.
        with writer:
            try:
                writer.write(header)
                self._receive(writer, verifier, framing, endpoint.spool.max_bytes)
            except _ClientGone as gone:
                writer.discard()
                self.log_message("%s", gone)
                self.close_connection = True
                if gone.timed_out:
                    self._try_error(408, str(gone))
                return
            except _Refuse as refused:
                writer.discard()
                self._error(refused.status, str(refused), unread=True)
                return
            except OSError as error:  # the disk, not the client: the body is only partly read
                writer.discard()
                self._error(
                    503,
                    f"cannot store the payload: {error.strerror or error}",
                    headers={"Retry-After": "30"},
                    unread=True,
                )
                return
            if not verifier.verified(writer, len(header)):
                writer.discard()
                self._error(401, "missing or invalid signature")
                return
            if endpoint.spool.adapter == "twilio_sms" and verifier.agentdesk is None:
                self._answer(200, _TWIML_EMPTY, "text/xml")
            else:
                self._answer(200, json.dumps({"stored": writer.name}).encode("utf-8"))
            # The 200 goes out once the file is durable in new/, sent by the committer's thread
            # (or a 503 if that failed); this thread reads the connection's next request meanwhile.
            requestline, client = self.requestline, self.client_address[0]
            deferred = DeferredAnswer(
                self.connection,
                self.answer.take(),
                lambda line: self.server.write_log(f"{client} {requestline}: {line}"),
            )
            # Answers leave in the order of their requests: a pipelined request's answer waits for
            # the one before it (which another spool's committer may still hold).
            self.answer.settle()
            writer.commit_later(deferred.durable)
            self.answer.deferred = deferred  # after: a deferred answer never handed over is never told

    def _framing(self, endpoint: Endpoint) -> int | None:
        """The body's length (-1: chunked), or None after answering why the request is refused."""
        encoding = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encoding:
            if [value.strip().lower() for value in encoding] != ["chunked"]:
                self._error(501, "the only transfer coding accepted is chunked", unread=True)
                return None
            if lengths:
                # Both framings at once is how requests are smuggled past a proxy: refuse it.
                self._error(400, "Content-Length and Transfer-Encoding together", unread=True)
                return None
            return -1
        if not lengths:
            self._error(411, "a Content-Length (or a chunked body) is required", unread=True)
            return None
        if len(set(lengths)) > 1 or not _CONTENT_LENGTH.fullmatch(lengths[0].strip()):
            self._error(411, "a valid Content-Length is required", unread=True)
            return None
        length = int(lengths[0])
        if length > endpoint.spool.max_bytes:
            self._error(
                413, f"payload of {length} bytes is over this spool's max_bytes {endpoint.spool.max_bytes}", unread=True
            )
            return None
        return length

    def _verifier(self, endpoint: Endpoint, content_type: str) -> _Verifier | None:
        """The request's signature, when it has one of the right form; None answers 401 at once."""
        given = self.headers.get(SIGNATURE_HEADER)
        if given:
            given = given.strip()
            return (
                _Verifier(self, endpoint, given, None, content_type) if _AGENTDESK_SIGNATURE.fullmatch(given) else None
            )
        twilio = (self.headers.get(TWILIO_HEADER) or "").strip()
        if twilio and endpoint.spool.adapter == "twilio_sms" and _TWILIO_SIGNATURE.fullmatch(twilio):
            return _Verifier(self, endpoint, None, twilio, content_type)
        return None

    def _receive(self, writer: spooling.SpoolWriter, verifier: _Verifier, length: int, max_bytes: int) -> None:
        """Stream the body into `writer` and `verifier`, within the body deadline and max_bytes."""
        self.deadline.allow(self.server.limits.body_timeout)
        if length >= 0:
            self._copy(writer, verifier, length, length)
            return
        total = 0
        while True:  # chunked: size line, data, CRLF ... a zero size, trailers, a blank line
            line = self._line(total)
            size_text = line.split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise _Refuse(400, "a broken chunked body (bad chunk size line)")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > max_bytes:
                raise _Refuse(413, f"the chunked payload is over this spool's max_bytes {max_bytes}")
            self._copy(writer, verifier, size, None, received=total - size)
            if self._line(total).strip():
                raise _Refuse(400, "a broken chunked body (no line end after a chunk)")
        trailers = 0
        while self._line(total).strip():
            trailers += 1
            if trailers > 32:
                raise _Refuse(400, "too many trailer fields after a chunked body")

    def _line(self, received: int) -> bytes:
        try:
            line = self.rfile.readline(1024)
        except OSError as error:
            raise self._body_gone(received, None, f"{type(error).__name__}") from None
        if not line.endswith(b"\n"):
            if len(line) >= 1024:
                raise _Refuse(400, "a broken chunked body (a line over 1024 bytes)")
            raise self._body_gone(received, None, "closed the connection")
        return line

    def _copy(
        self, writer: spooling.SpoolWriter, verifier: _Verifier, size: int, declared: int | None, *, received: int = 0
    ) -> None:
        left = size
        while left:
            try:
                data = self.rfile.read1(min(_CHUNK, left))
            except OSError as error:
                raise self._body_gone(received + size - left, declared, type(error).__name__) from None
            if not data:
                raise self._body_gone(received + size - left, declared, "closed the connection")
            verifier.update(data)
            writer.write(data)
            left -= len(data)

    def _body_gone(self, received: int, declared: int | None, how: str) -> _ClientGone:
        of = f" of {declared}" if declared is not None else ""
        if self.deadline.expired:
            return _ClientGone(
                f"sent {received}{of} bytes of the body within {self.server.limits.body_timeout:g} s "
                f"(body_timeout); dropped",
                timed_out=True,
            )
        return _ClientGone(f"{how} after {received}{of} bytes of the body; nothing stored", timed_out=False)


def make_server(
    endpoints: dict[str, Endpoint],
    *,
    host: str = "127.0.0.1",
    port: int = 8025,
    public_url: str = "",
    durable: bool = True,
    log: Callable[[str], None] | None = None,
    limits: Limits | None = None,
) -> ReceiverServer:
    return ReceiverServer((host, port), endpoints, public_url=public_url, durable=durable, log=log, limits=limits)


def start_in_thread(server: ReceiverServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    return thread


_STDERR_LOCK = threading.Lock()


def stderr_log(line: str) -> None:
    """One log line on stderr, written whole: the handler threads log at once, and `print` writes
    a line and its newline separately, so under load lines ran together. Each line is one buffer
    handed to the descriptor under a lock (a pipe or a file takes it in one piece)."""
    data = (line + "\n").encode("utf-8", "replace")
    with _STDERR_LOCK:
        try:
            descriptor = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # a replaced stderr (tests capture it)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
            return
        sys.stderr.flush()  # anything printed before goes first
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
