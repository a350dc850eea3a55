"""A stand-in OAuth 2.0 authorization server on a loopback port, for tests only: the device
authorization grant (RFC 8628: device authorization, token polling with authorization_pending,
slow_down, access_denied) and the refresh grant (RFC 6749 section 6, with refresh-token rotation
and revocation, as Microsoft and Google do).

The real providers' token endpoints cannot be reached from the test machines. What this issues
is real where it matters: the access tokens are HS256 JWTs (`sub` = the mailbox login, `exp`)
that Dovecot's oauth2 passdb validates locally with the same key, so a test's path from the
sign-in to the mailbox has no fake in it but this endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def jwt(claims: dict, key: bytes) -> str:
    """An HS256 JSON Web Token (RFC 7519) signed with `key`."""

    def part(data: dict) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=")

    signing_input = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(claims)
    signature = base64.urlsafe_b64encode(hmac.new(key, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


def access_token(subject: str, key: bytes, *, lifetime: float = 3600) -> str:
    now = int(time.time())
    return jwt({"sub": subject, "iat": now, "exp": now + int(lifetime)}, key)


@dataclass
class _Pending:
    device_code: str
    client_id: str
    approved_as: str | None = None
    denied: bool = False
    polls: int = 0


@dataclass
class OAuthProvider:
    """Run with `start()`; `approve(user_code, subject)` is the person typing the code."""

    key: bytes
    client_id: str = "agentdesk-test-client"
    lifetime: float = 3600  # of each access token, seconds
    interval: int = 1  # the polling interval it asks for
    pending: dict[str, _Pending] = field(default_factory=dict)  # by user code
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # token -> subject
    refreshes: int = 0
    requests: list[dict] = field(default_factory=list)
    # Scopes a device-flow client may ask for (None: any). Google allows only a few, and not mail.
    device_scopes: set[str] | None = None

    def start(self) -> None:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                with provider._lock:
                    provider.requests.append({"path": self.path, **form})
                    status, answer = provider._answer(self.path, form)
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def device_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/devicecode"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def approve(self, user_code: str, subject: str) -> None:
        with self._lock:
            self.pending[user_code].approved_as = subject

    def deny(self, user_code: str) -> None:
        with self._lock:
            self.pending[user_code].denied = True

    def revoke_all(self) -> None:
        with self._lock:
            self.refresh_tokens.clear()

    def _answer(self, path: str, form: dict) -> tuple[int, dict]:
        if form.get("client_id") != self.client_id:
            return 400, {"error": "invalid_client", "error_description": "unknown client_id"}
        if path == "/devicecode" and self.device_scopes is not None:
            refused = set(form.get("scope", "").split()) - self.device_scopes
            if refused:
                return 400, {
                    "error": "invalid_scope",
                    "error_description": f"Not authorized to request the scopes: {sorted(refused)}",
                }
        if path == "/devicecode":
            user_code = "-".join(secrets.token_hex(2).upper() for _ in range(2))
            self.pending[user_code] = _Pending(device_code=secrets.token_urlsafe(24), client_id=form["client_id"])
            return 200, {
                "device_code": self.pending[user_code].device_code,
                "user_code": user_code,
                "verification_uri": f"http://127.0.0.1:{self.port}/device",
                "expires_in": 600,
                "interval": self.interval,
            }
        if path != "/token":
            return 404, {"error": "not_found"}
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            pending = next((p for p in self.pending.values() if p.device_code == form.get("device_code")), None)
            if pending is None:
                return 400, {"error": "invalid_grant", "error_description": "unknown device code"}
            pending.polls += 1
            if pending.denied:
                return 400, {"error": "access_denied"}
            if pending.approved_as is None:
                return 400, {"error": "authorization_pending"}
            return 200, self._tokens(pending.approved_as)
        if grant == "refresh_token":
            subject = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if subject is None:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "AADSTS50173: The provided grant has expired due to it being revoked",
                }
            self.refreshes += 1
            return 200, self._tokens(subject)
        return 400, {"error": "unsupported_grant_type"}

    def _tokens(self, subject: str) -> dict:
        refresh = secrets.token_urlsafe(32)
        self.refresh_tokens[refresh] = subject
        now = int(time.time())
        return {
            "token_type": "Bearer",
            "access_token": access_token(subject, self.key, lifetime=self.lifetime),
            "expires_in": int(self.lifetime),
            "refresh_token": refresh,
            "id_token": jwt({"sub": subject, "preferred_username": f"{subject}@example.test", "iat": now}, b"id"),
        }
