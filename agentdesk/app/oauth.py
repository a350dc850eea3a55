"""OAuth sign-in of a provider's mailbox (`agentdesk oauth login|status|logout`, and `doctor`).

`login` runs the device-code flow: the provider gives a short code, the agent types it in a
browser on any machine (their laptop, while agentdesk runs on a server over SSH), and the refresh
token is kept (`sync.credentials.TokenStore`); from then on `sync` refreshes the access token
itself. `status` reads what is kept, without asking the provider anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from agentdesk import config
from agentdesk.channels.email import oauth as protocol
from agentdesk.errors import InvalidInput, NotFound
from agentdesk.sync import credentials

DeviceCode = protocol.DeviceCode


@dataclass(frozen=True)
class SignInStatus:
    mailbox: str
    provider: str
    state: str  # signed-in | expired | revoked | signed-out | not-needed
    account: str = ""
    expires_at: datetime | None = None  # of the current access token
    signed_in_at: datetime | None = None
    refreshed_at: datetime | None = None
    detail: str = ""  # what to do, when something is to be done
    kept_in: str = ""

    def document(self) -> dict[str, Any]:
        def iso(moment):
            return moment.isoformat(timespec="seconds") if moment else None

        return {
            "mailbox": self.mailbox,
            "provider": self.provider,
            "state": self.state,
            "account": self.account,
            "expires_at": iso(self.expires_at),
            "signed_in_at": iso(self.signed_in_at),
            "refreshed_at": iso(self.refreshed_at),
            "detail": self.detail,
            "kept_in": self.kept_in,
        }

    def line(self) -> str:
        """One line for `oauth status` and `doctor`."""
        if self.state == "not-needed":
            return self.detail
        if self.state in ("signed-in", "expired"):
            until = f"{self.expires_at:%Y-%m-%d %H:%M} UTC" if self.expires_at else "unknown"
            word = "valid until" if self.state == "signed-in" else "expired at"
            tail = "" if self.state == "signed-in" else "; the next sync refreshes it"
            return f"signed in to {self.provider} as {self.account or '?'}; access token {word} {until}{tail}"
        return self.detail


def _mailbox(settings: config.Settings, name: str) -> config.MailboxSettings:
    for mailbox in settings.mailbox:
        if mailbox.name == name:
            return mailbox
    known = ", ".join(m.name for m in settings.mailbox) or "none configured"
    raise NotFound(f"no [[mailbox]] named {name!r} (known: {known})")


def _provider_mailbox(settings: config.Settings, name: str) -> config.MailboxSettings:
    mailbox = _mailbox(settings, name)
    if not mailbox.provider:
        raise InvalidInput(
            f"mailbox {name}: no `provider` set; `oauth login` signs in to microsoft365 or gmail "
            '(set provider = "microsoft365" or "gmail"), other servers take a token from '
            "password_command"
        )
    return mailbox


def _moment(epoch: float) -> datetime | None:
    return datetime.fromtimestamp(epoch, timezone.utc) if epoch else None


def login(
    settings: config.Settings,
    name: str,
    *,
    show_code: Callable[[DeviceCode], None],
    store: credentials.TokenStore | None = None,
) -> SignInStatus:
    """Sign the mailbox in with the device-code flow; `show_code` tells the person where to go
    and what to type, then this waits until they did (or declined, or the code expired)."""
    mailbox = _provider_mailbox(settings, name)
    endpoints = credentials.endpoints(mailbox)
    code = protocol.start_device_flow(endpoints)
    show_code(code)
    token = protocol.poll_for_token(endpoints, code)
    if not token.refresh_token:
        raise protocol.OAuthError(
            f"{mailbox.provider} signed in but gave no refresh token, so sync could not "
            "renew access; check that the application may ask for offline access"
        )
    store = store or credentials.TokenStore()
    now = time.time()
    store.save(
        mailbox.name,
        credentials.SignIn(
            provider=mailbox.provider,
            username=mailbox.username,
            account=token.account or mailbox.username,
            refresh_token=token.refresh_token,
            access_token=token.access_token,
            expires_at=token.expires_at,
            signed_in_at=now,
            refreshed_at=now,
        ),
    )
    return _status_of(mailbox, store)


def logout(settings: config.Settings, name: str, *, store: credentials.TokenStore | None = None) -> SignInStatus:
    """Forget the mailbox's sign-in here (the provider's own record of it stays until revoked there)."""
    mailbox = _provider_mailbox(settings, name)
    store = store or credentials.TokenStore()
    store.forget(mailbox.name)
    return _status_of(mailbox, store)


def status(
    settings: config.Settings, name: str | None = None, *, store: credentials.TokenStore | None = None
) -> list[SignInStatus]:
    """The sign-in of each mailbox that has a provider (or of the one named)."""
    mailboxes = [_mailbox(settings, name)] if name else [m for m in settings.mailbox if m.provider]
    store = store or credentials.TokenStore()
    return [_status_of(mailbox, store) for mailbox in mailboxes]


def _status_of(mailbox: config.MailboxSettings, store: credentials.TokenStore) -> SignInStatus:
    base: dict[str, Any] = dict(mailbox=mailbox.name, provider=mailbox.provider or "", kept_in=store.where())
    if not credentials.uses_sign_in(mailbox):
        why = (
            "no provider: the secret is password_command's"
            if not mailbox.provider
            else "password_command gives the token (an external helper); no sign-in kept here"
        )
        return SignInStatus(state="not-needed", detail=why, **base)
    sign_in = store.load(mailbox.name)
    again = credentials.sign_in_again(mailbox)
    if sign_in is None or not sign_in.refresh_token:
        return SignInStatus(state="signed-out", detail=f"not signed in; {again}", **base)
    moments: dict[str, Any] = dict(
        account=sign_in.account,
        expires_at=_moment(sign_in.expires_at),
        signed_in_at=_moment(sign_in.signed_in_at),
        refreshed_at=_moment(sign_in.refreshed_at),
    )
    if sign_in.revoked:
        return SignInStatus(
            state="revoked",
            detail=f"the sign-in was revoked or has expired ({sign_in.revoked}); {again}",
            **moments,
            **base,
        )
    state = "signed-in" if sign_in.expires_at > time.time() else "expired"
    return SignInStatus(state=state, **moments, **base)
