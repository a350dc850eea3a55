"""`agentdesk webhook serve`: a small HTTP receiver that verifies each POST and writes it to a spool.

    POST /hooks/<spool name>      -> 200 once the payload is durable in <spool>/new/
    GET  /healthz                 -> 200 "ok"

Rules (DESIGN, config contract):

- bound to 127.0.0.1 by default; put a TLS reverse proxy in front of it (docs/webhooks.md);
- every request is authenticated before anything is written: `X-Agentdesk-Signature:
  sha256=<hex HMAC-SHA256 of the raw body with the spool's secret>`, or for a spool with the
  `twilio_sms` adapter Twilio's own `X-Twilio-Signature` (base64 HMAC-SHA1 of the public URL and
  the sorted form fields, keyed with the auth token — which is then the spool's secret);
  401 for a missing or wrong signature, and for a spool without `secret_command`;
- 413 when Content-Length is over the spool's `max_bytes` (the body is never read), 411 without
  a Content-Length;
- 2xx only after the file was fsynced, renamed into new/ and new/ fsynced: a 200 means the
  payload survives a crash or a power cut. A write failure answers 503, and the provider retries.

The standard library's ThreadingHTTPServer is enough here: each request is a few system calls
and an fsync, and the listen backlog is raised so a burst of posts queues instead of failing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from agentdesk.channels.webhook import spool as spooling
from agentdesk.config import Settings, SpoolSettings

SIGNATURE_HEADER = "X-Agentdesk-Signature"
TWILIO_HEADER = "X-Twilio-Signature"
_TWIML_EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@dataclass
class Endpoint:
    spool: SpoolSettings
    path: Path
    secret: str | None  # None: the spool has no secret_command and every POST is refused


def endpoints_from_settings(settings: Settings, *, secret: Callable[[SpoolSettings, str], str] | None = None) -> dict[str, Endpoint]:
    """One endpoint per configured spool; runs each spool's secret_command once, at start."""
    endpoints = {}
    for index, spool in enumerate(settings.spool):
        key = f"spool[{index}] ({spool.name})"
        value = None
        if spool.secret_command:
            value = secret(spool, key) if secret else spool.secret(key)
        path = settings._resolve(spool.path)
        spooling.ensure_spool(path)
        endpoints[spool.name] = Endpoint(spool=spool, path=path, secret=value)
    return endpoints


def agentdesk_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def twilio_signature(url: str, params: dict[str, list[str]], token: str) -> str:
    """Twilio's X-Twilio-Signature: base64 HMAC-SHA1 of the URL followed by each sorted key+value."""
    data = url
    for name in sorted(set(params)):
        for value in sorted(set(params[name])):
            data += name + value
    digest = hmac.new(token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> list[str]:
    """The URL as given, and with the default port added or removed (Twilio signs either form)."""
    parts = urllib.parse.urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    if parts.port is None and default:
        variants.append(urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}")))
    elif parts.port == default:
        variants.append(urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname or "")))
    return variants


def verify_twilio(url: str, body: bytes, content_type: str, signature: str, token: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    if "bodySHA256" in query:
        # JSON bodies: the URL (with its bodySHA256 parameter) is signed, the body is hashed.
        if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), query["bodySHA256"][0]):
            return False
        params: dict[str, list[str]] = {}
    elif content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            params = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return False
    else:
        params = {}
    return any(hmac.compare_digest(twilio_signature(candidate, params, token), signature)
               for candidate in _url_variants(url))


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a burst of provider retries queues in the kernel instead of being refused

    def __init__(self, address: tuple[str, int], endpoints: dict[str, Endpoint], *, public_url: str = "",
                 durable: bool = True, log: Callable[[str], None] | None = None):
        self.endpoints = endpoints
        self.public_url = public_url.rstrip("/")
        self.durable = durable
        self.log = log
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a provider's burst reuses connections
    server_version = "agentdesk-webhook/1"
    sys_version = ""
    server: ReceiverServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the stdlib's name)
        if self.server.log is not None:
            self.server.log(f"{self.client_address[0]} {format % args}")

    def _answer(self, status: int, body: bytes = b"", content_type: str = "application/json",
                close: bool = False, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, reason: str, *, close: bool = False, headers: dict[str, str] | None = None) -> None:
        self._answer(status, json.dumps({"error": reason}).encode("utf-8"), close=close, headers=headers)

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        if self.path.split("?", 1)[0] == "/healthz":
            self._answer(200, b"ok\n", "text/plain")
        else:
            self._error(404, "not found; POST /hooks/<spool name>")

    def do_PUT(self) -> None:  # noqa: N802
        self._error(405, "only POST is accepted", headers={"Allow": "POST"}, close=True)

    do_DELETE = do_PATCH = do_PUT

    def _public_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url + self.path
        scheme = self.headers.get("X-Forwarded-Proto", "http").split(",")[0].strip() or "http"
        host = (self.headers.get("X-Forwarded-Host") or self.headers.get("Host") or "").split(",")[0].strip()
        return f"{scheme}://{host}{self.path}"

    def do_POST(self) -> None:  # noqa: N802
        route = urllib.parse.urlsplit(self.path).path.rstrip("/")
        prefix, _, name = route.rpartition("/")
        endpoint = self.server.endpoints.get(urllib.parse.unquote(name)) if prefix == "/hooks" else None
        if endpoint is None:
            self._error(404, "no such spool; POST /hooks/<spool name>", close=True)
            return
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._error(411, "a Content-Length is required (chunked bodies are not accepted)", close=True)
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
            if length < 0:
                raise ValueError
        except ValueError:
            self._error(411, "a valid Content-Length is required", close=True)
            return
        if length > endpoint.spool.max_bytes:
            # Never read it: answer and drop the connection.
            self._error(413, f"payload of {length} bytes is over this spool's max_bytes {endpoint.spool.max_bytes}",
                        close=True)
            return
        body = self.rfile.read(length)
        if len(body) != length:
            self._error(400, "the body ended before Content-Length bytes", close=True)
            return
        if endpoint.secret is None:
            self._error(401, f"spool {endpoint.spool.name} has no secret_command; it accepts no posts")
            return
        content_type = self.headers.get("Content-Type", "application/octet-stream")
        if not self._authentic(endpoint, body, content_type):
            self._error(401, "missing or invalid signature")
            return
        try:
            name = spooling.write_payload(endpoint.path, body, content_type, durable=self.server.durable)
        except OSError as error:
            self._error(503, f"cannot store the payload: {error.strerror or error}", headers={"Retry-After": "30"})
            return
        if endpoint.spool.adapter == "twilio_sms" and not self.headers.get(SIGNATURE_HEADER):
            self._answer(200, _TWIML_EMPTY, "text/xml")
        else:
            self._answer(200, json.dumps({"stored": name}).encode("utf-8"))

    def _authentic(self, endpoint: Endpoint, body: bytes, content_type: str) -> bool:
        secret = endpoint.secret or ""
        given = self.headers.get(SIGNATURE_HEADER)
        if given:
            return hmac.compare_digest(given.strip().lower(), agentdesk_signature(body, secret))
        twilio = self.headers.get(TWILIO_HEADER)
        if twilio and endpoint.spool.adapter == "twilio_sms":
            return verify_twilio(self._public_url(), body, content_type, twilio.strip(), secret)
        return False


def make_server(endpoints: dict[str, Endpoint], *, host: str = "127.0.0.1", port: int = 8025,
                public_url: str = "", durable: bool = True, log: Callable[[str], None] | None = None) -> ReceiverServer:
    return ReceiverServer((host, port), endpoints, public_url=public_url, durable=durable, log=log)


def start_in_thread(server: ReceiverServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    return thread


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
