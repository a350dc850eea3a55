"""OAuth 2.0 for mail providers: the device authorization grant (RFC 8628) to sign in, the
refresh grant (RFC 6749 section 6) to keep an access token fresh. Protocol only: storing the
tokens is `agentdesk.sync.credentials`' job, asking a person `agentdesk.app.oauth`'s.

The requests and the answers are oauthlib's (`DeviceClient`: the token requests' bodies, the
parsing and validation of token responses, the error codes as exceptions); the HTTP exchange is
the standard library's urllib, so no HTTP client library comes with it. docs/email.md says why.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentdesk.errors import AgentdeskError

__all__ = [
    "Endpoints",
    "OAuthError",
    "SignInRevoked",
    "DeviceCode",
    "Token",
    "endpoints_for",
    "start_device_flow",
    "poll_for_token",
    "refresh",
]

# What each provider's sign-in asks for: the device authorization and token endpoints and the
# scopes that cover IMAP and SMTP (offline_access / the refresh token included).
PROVIDERS: dict[str, dict[str, Any]] = {
    "microsoft365": {
        "device_url": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
        "token_url": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        "scopes": (
            "offline_access",
            "openid",
            "email",
            "https://outlook.office.com/IMAP.AccessAsUser.All",
            "https://outlook.office.com/SMTP.Send",
        ),
    },
    "gmail": {
        "device_url": "https://oauth2.googleapis.com/device/code",
        "token_url": "https://oauth2.googleapis.com/token",
        "scopes": ("https://mail.google.com/",),
    },
}

# Seconds an HTTP request to the provider may take.
HTTP_TIMEOUT = 30.0
# The most of an answer read: a token answer is a few kB; a wrong endpoint may send anything.
MAX_ANSWER_BYTES = 1024 * 1024


class OAuthError(AgentdeskError):
    """The provider refused or could not be reached; the message says which and what to do."""


class SignInRevoked(OAuthError):
    """The refresh token no longer works (revoked, expired, password changed): sign in again."""


@dataclass(frozen=True)
class Endpoints:
    provider: str
    device_url: str
    token_url: str
    scopes: tuple[str, ...]
    client_id: str
    client_secret: str | None = None


@dataclass(frozen=True)
class DeviceCode:
    """What the person needs (`user_code` at `verification_uri`) and what the client polls with."""

    device_code: str
    user_code: str
    verification_uri: str
    expires_at: float
    interval: float
    message: str = ""


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: float  # epoch seconds
    refresh_token: str | None
    account: str = ""  # who signed in, from the id token when the provider sent one


def endpoints_for(
    provider: str,
    *,
    client_id: str,
    tenant: str = "organizations",
    device_url: str = "",
    token_url: str = "",
    client_secret: str | None = None,
) -> Endpoints:
    preset = PROVIDERS[provider]
    return Endpoints(
        provider=provider,
        device_url=device_url or preset["device_url"].format(tenant=tenant or "organizations"),
        token_url=token_url or preset["token_url"].format(tenant=tenant or "organizations"),
        scopes=tuple(preset["scopes"]),
        client_id=client_id,
        client_secret=client_secret,
    )


def _check_transport(url: str) -> None:
    """https, or plain http to this machine only (a local test or proxy; RFC 8252 section 8.3)."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost")):
        return
    raise OAuthError(f"{url}: an OAuth endpoint must be https (or http on this machine)")


def _post(url: str, body: str) -> tuple[int, dict]:
    """POST a form; the status and the JSON answer (an error answer included: OAuth's errors are 400s)."""
    import urllib.error
    import urllib.request

    _check_transport(url)
    request = urllib.request.Request(
        url,
        data=body.encode("ascii"),
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            status, text = response.status, response.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read(MAX_ANSWER_BYTES + 1)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise OAuthError(
            f"cannot reach {url}: {reason}; check the network (or oauth_device_url / oauth_token_url)"
        ) from None
    if len(text) > MAX_ANSWER_BYTES:
        raise OAuthError(
            f"{url} answered {status} with more than {MAX_ANSWER_BYTES // 1024} KiB; "
            "check oauth_device_url / oauth_token_url"
        )
    try:
        answer = json.loads(text or b"{}")
    except ValueError:
        raise OAuthError(f"{url} answered {status} with something that is not JSON") from None
    if not isinstance(answer, dict):
        raise OAuthError(f"{url} answered {status} with unexpected JSON")
    return status, answer


def _client(endpoints: Endpoints):
    from oauthlib.oauth2 import DeviceClient

    return DeviceClient(endpoints.client_id, client_secret=endpoints.client_secret)


def start_device_flow(endpoints: Endpoints) -> DeviceCode:
    """RFC 8628 section 3.1-3.2: ask for a device code and the code the person types."""
    from oauthlib.common import urlencode

    params = [("client_id", endpoints.client_id), ("scope", " ".join(endpoints.scopes))]
    if endpoints.client_secret:
        params.append(("client_secret", endpoints.client_secret))
    status, answer = _post(endpoints.device_url, urlencode(params))
    if "error" in answer or status >= 400:
        hint = (
            (
                "; this client may not ask for mail access by device code: use a token helper as "
                'password_command (docs/email.md, "Signing in")'
            )
            if answer.get("error") == "invalid_scope"
            else ""
        )
        raise OAuthError(f"{endpoints.provider} refused to start the sign-in: {_described(answer, status)}{hint}")
    try:
        return DeviceCode(
            device_code=str(answer["device_code"]),
            user_code=str(answer["user_code"]),
            # Microsoft said verification_url before the RFC; Google still does.
            verification_uri=str(answer.get("verification_uri") or answer["verification_url"]),
            expires_at=time.time() + float(answer.get("expires_in", 900)),
            interval=float(answer.get("interval", 5)),
            message=str(answer.get("message", "")),
        )
    except (KeyError, TypeError, ValueError):
        raise OAuthError(f"{endpoints.device_url} answered without a device code and user code") from None


def poll_for_token(
    endpoints: Endpoints,
    code: DeviceCode,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> Token:
    """RFC 8628 section 3.4-3.5: poll the token endpoint until the person has signed in (or
    declined, or the code expired), every `interval` seconds, slower when asked to."""
    client = _client(endpoints)
    interval = code.interval
    while True:
        if clock() > code.expires_at:
            raise OAuthError("the code expired before the sign-in was completed; run the command again")
        sleep(interval)
        body = client.prepare_request_body(
            code.device_code,
            include_client_id=True,
            **({"client_secret": endpoints.client_secret} if endpoints.client_secret else {}),
        )
        status, answer = _post(endpoints.token_url, body)
        error = answer.get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5  # RFC 8628 section 3.5
            continue
        if error == "access_denied":
            raise OAuthError("the sign-in was declined in the browser")
        if error == "expired_token":
            raise OAuthError("the code expired before the sign-in was completed; run the command again")
        return _token(client, endpoints, status, answer, previous_refresh=None)


def refresh(endpoints: Endpoints, refresh_token: str) -> Token:
    """RFC 6749 section 6: a new access token (and, from some providers, a new refresh token).
    Raises SignInRevoked when the provider no longer honours the refresh token."""
    client = _client(endpoints)
    body = client.prepare_refresh_body(
        refresh_token=refresh_token,
        client_id=endpoints.client_id,
        **({"client_secret": endpoints.client_secret} if endpoints.client_secret else {}),
    )
    status, answer = _post(endpoints.token_url, body)
    if answer.get("error") in ("invalid_grant", "interaction_required", "unauthorized_client"):
        raise SignInRevoked(_described(answer, status))
    return _token(client, endpoints, status, answer, previous_refresh=refresh_token)


def _token(client, endpoints: Endpoints, status: int, answer: dict, *, previous_refresh: str | None) -> Token:
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error

    try:
        parsed = client.parse_request_body_response(json.dumps(answer))
    except OAuth2Error as error:
        raise OAuthError(
            f"{endpoints.provider} refused the token request: {error.error}"
            + (f" ({error.description})" if error.description else "")
        ) from None
    expires_in = float(parsed.get("expires_in") or 3600)
    return Token(
        access_token=parsed["access_token"],
        expires_at=time.time() + expires_in,
        # A refresh that returns no new refresh token leaves the old one in force.
        refresh_token=parsed.get("refresh_token") or previous_refresh,
        account=_account(parsed.get("id_token", "")),
    )


def _account(id_token: str) -> str:
    """The signed-in address from an OpenID id token, for display only (not verified: it came
    over TLS from the token endpoint itself, and nothing is authorised by it)."""
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return ""
    if not isinstance(claims, dict):
        return ""
    for claim in ("preferred_username", "email", "upn"):
        if isinstance(claims.get(claim), str):
            return claims[claim]
    return ""


def _described(answer: dict, status: int) -> str:
    error = answer.get("error") or f"HTTP {status}"
    description = " ".join(str(answer.get("error_description", "")).split())[:300]
    return f"{error}: {description}" if description else str(error)
