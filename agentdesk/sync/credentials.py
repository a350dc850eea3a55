"""A mailbox's secret for IMAP and SMTP: its password_command's output, or the access token of
its OAuth sign-in (`agentdesk oauth login`), refreshed here before it expires so a sync runs for
months without a person.

The sign-in (refresh token, the current access token, who signed in, when) is kept in the system
keyring where there is one (the optional `keyring` package with a working backend), else in a
file only its owner can read under the data directory (`TokenStore`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from agentdesk import config, locations
from agentdesk.channels.email import oauth, sasl

log = logging.getLogger("agentdesk.sync")

KEYRING_SERVICE = "agentdesk-oauth"
TOKEN_FILE = "oauth-tokens.json"
# An access token with less than this left is refreshed before it is used: a sync's connections
# and a long fetch must not outlive it.
REFRESH_MARGIN_SECONDS = 300.0


@dataclass
class SignIn:
    """One mailbox's OAuth sign-in as kept between runs."""

    provider: str
    username: str  # the mailbox's login it was made for
    account: str  # who signed in, as the provider said (may be empty)
    refresh_token: str
    access_token: str = ""
    expires_at: float = 0.0  # of the access token, epoch seconds
    signed_in_at: float = 0.0
    refreshed_at: float = 0.0
    revoked: str = ""  # the provider's refusal of the refresh token, until the next sign-in

    @classmethod
    def from_json(cls, text: str) -> SignIn | None:
        try:
            data = json.loads(text)
            known = {f.name for f in fields(cls)}
            return cls(**{key: value for key, value in data.items() if key in known})
        except (ValueError, TypeError, AttributeError):
            return None


def _keyring():
    """The keyring module when it has a usable backend, else None (not installed, or no Secret
    Service / Keychain behind it: a server over SSH usually has none)."""
    try:
        import keyring
        import keyring.backend
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:
        return None
    if type(backend).__module__.startswith(("keyring.backends.fail", "keyring.backends.null")):
        return None
    if getattr(backend, "priority", 1) <= 0:
        return None
    return keyring


class TokenStore:
    """Sign-ins by mailbox name: the keyring's entry, else the 0600 file's."""

    def __init__(self, directory: Path | None = None, *, use_keyring: bool = True):
        self.directory = directory or locations.data_dir()
        self.keyring = _keyring() if use_keyring else None

    @property
    def path(self) -> Path:
        return self.directory / TOKEN_FILE

    def where(self) -> str:
        if self.keyring is not None:
            return f"the system keyring ({type(self.keyring.get_keyring()).__name__})"
        return str(self.path)

    def load(self, name: str) -> SignIn | None:
        if self.keyring is not None:
            try:
                text = self.keyring.get_password(KEYRING_SERVICE, name)
                if text:
                    return SignIn.from_json(text)
            except Exception as error:  # a locked or broken keyring: the file may still hold it
                log.debug("keyring read for %s failed: %s", name, error)
        entry = self._read_file().get(name)
        return SignIn.from_json(json.dumps(entry)) if isinstance(entry, dict) else None

    def save(self, name: str, sign_in: SignIn) -> None:
        if self.keyring is not None:
            try:
                self.keyring.set_password(KEYRING_SERVICE, name, json.dumps(asdict(sign_in)))
                return
            except Exception as error:
                log.warning("cannot write to the system keyring (%s); keeping the sign-in in %s", error, self.path)
        with self._locked():
            entries = self._read_file()
            entries[name] = asdict(sign_in)
            self._write_file(entries)

    def forget(self, name: str) -> None:
        if self.keyring is not None:
            with contextlib.suppress(Exception):
                self.keyring.delete_password(KEYRING_SERVICE, name)
        with self._locked():
            entries = self._read_file()
            if entries.pop(name, None) is not None:
                self._write_file(entries)

    def _read_file(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise oauth.OAuthError(f"{self.path}: cannot read the OAuth sign-ins: {error}") from None
        return data if isinstance(data, dict) else {}

    def _write_file(self, entries: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{TOKEN_FILE}.{os.getpid()}")
        # A new file, 0600 before anything is written: not a leftover of another mode (open's
        # mode applies only to a file it creates), nor a link someone left in its place. The
        # refresh tokens are never readable by others.
        temporary.unlink(missing_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(entries, file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (a sync refreshing while an agent signs in again)."""
        import fcntl

        self.directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.directory / f".{TOKEN_FILE}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


def uses_sign_in(mailbox: config.MailboxSettings) -> bool:
    """Whether the mailbox's secret is its `oauth login` token (a provider, no password_command)."""
    return bool(getattr(mailbox, "provider", "")) and not mailbox.password_command


def endpoints(mailbox: config.MailboxSettings) -> oauth.Endpoints:
    if not mailbox.oauth_client_id:
        raise oauth.OAuthError(
            f"mailbox {mailbox.name}: oauth_client_id is not set; register an application for agentdesk with "
            f'{mailbox.provider} and put its client id there (docs/email.md, "Signing in")'
        )
    secret = None
    if mailbox.oauth_client_secret_command:
        secret = config.run_secret_command(
            mailbox.oauth_client_secret_command, key=f"mailbox {mailbox.name}.oauth_client_secret_command"
        )
    return oauth.endpoints_for(
        mailbox.provider,
        client_id=mailbox.oauth_client_id,
        tenant=mailbox.oauth_tenant,
        device_url=mailbox.oauth_device_url,
        token_url=mailbox.oauth_token_url,
        client_secret=secret,
    )


def sign_in_again(mailbox: config.MailboxSettings) -> str:
    return f"run `agentdesk oauth login {mailbox.name}`"


def access_token(
    mailbox: config.MailboxSettings, *, store: TokenStore | None = None, now: Callable[[], float] = time.time
) -> str:
    """The mailbox's access token, refreshed first when it has less than REFRESH_MARGIN_SECONDS
    left. Raises OAuthError (one line, naming the command to run) when there is no sign-in or
    the provider revoked it."""
    store = store or TokenStore()
    # One refresh at a time in this process (the mailbox's poll, its IDLE and the outbox's SMTP may
    # all ask at once): the others then find the fresh token instead of spending a refresh token
    # the provider may have rotated away already.
    with _REFRESHING:
        return _access_token(mailbox, store, now)


_REFRESHING = threading.Lock()


def _access_token(mailbox: config.MailboxSettings, store: TokenStore, now: Callable[[], float]) -> str:
    sign_in = store.load(mailbox.name)
    if sign_in is None or not sign_in.refresh_token:
        raise oauth.OAuthError(f"mailbox {mailbox.name}: not signed in to {mailbox.provider}; {sign_in_again(mailbox)}")
    if sign_in.revoked:
        raise oauth.SignInRevoked(
            f"mailbox {mailbox.name}: the sign-in to {mailbox.provider} was revoked or has "
            f"expired ({sign_in.revoked}); {sign_in_again(mailbox)}"
        )
    if sign_in.access_token and sign_in.expires_at - now() > REFRESH_MARGIN_SECONDS:
        return sign_in.access_token
    try:
        token = oauth.refresh(endpoints(mailbox), sign_in.refresh_token)
    except oauth.SignInRevoked as error:
        sign_in.revoked = str(error)[:300]
        store.save(mailbox.name, sign_in)
        raise oauth.SignInRevoked(
            f"mailbox {mailbox.name}: the sign-in to {mailbox.provider} was revoked or has "
            f"expired ({error}); {sign_in_again(mailbox)}"
        ) from None
    except oauth.OAuthError as error:
        raise oauth.OAuthError(f"mailbox {mailbox.name}: cannot refresh the access token: {error}") from None
    sign_in.access_token, sign_in.expires_at = token.access_token, token.expires_at
    sign_in.refresh_token = token.refresh_token or sign_in.refresh_token
    sign_in.refreshed_at = now()
    sign_in.account = token.account or sign_in.account
    store.save(mailbox.name, sign_in)
    log.info(
        "%s: access token refreshed, valid until %s",
        mailbox.name,
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(token.expires_at)),
    )
    return token.access_token


def imap_secret(mailbox: config.MailboxSettings) -> str:
    if uses_sign_in(mailbox):
        return access_token(mailbox)
    return mailbox.password(f"mailbox {mailbox.name}")


def smtp_secret(mailbox: config.MailboxSettings) -> str:
    """The SMTP login's secret: its own password_command, else (with a provider sign-in) the
    mailbox's token, which covers sending too."""
    if mailbox.smtp.password_command or not uses_sign_in(mailbox):
        return mailbox.smtp.password(f"mailbox {mailbox.name}.smtp")
    return access_token(mailbox)


def token_changes(mechanism: str) -> bool:
    """Whether the secret of this mechanism may change between connections (a token): then it is
    asked for again for each connection instead of once per process."""
    return mechanism in sasl.OAUTH_MECHANISMS
