"""SASL initial responses for IMAP AUTHENTICATE and SMTP AUTH: PLAIN (RFC 4616), XOAUTH2 (the
Google and Microsoft bearer-token format) and OAUTHBEARER (RFC 7628).

A mailbox's `auth` names the mechanism; "" lets the server's offer decide, a password
mechanism first (`choose`). The secret is what the mailbox's password_command printed, or
the access token its OAuth sign-in keeps fresh: the same string either way.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

__all__ = ["OAUTH_MECHANISMS", "choose", "initial_response", "responder"]

OAUTH_MECHANISMS = ("xoauth2", "oauthbearer")


def choose(configured: str, offered: Collection[str], *, login_command: bool) -> str:
    """The mechanism to use: the configured one, or what the server offers, a password first.

    `offered`: the server's SASL mechanisms, upper case (IMAP's AUTH=… capabilities, SMTP's
    AUTH line). `login_command`: whether a plain password login is possible without SASL (IMAP's
    LOGIN command when the server does not say LOGINDISABLED; SMTP has no such command).
    """
    if configured:
        return configured
    if login_command:
        return "login"
    for mechanism in ("plain", "login", "xoauth2", "oauthbearer"):
        if mechanism.upper() in offered:
            return mechanism
    return "login"


def initial_response(mechanism: str, username: str, secret: str, *, host: str = "", port: int = 0) -> str:
    """The client's first (and, on success, only) message of `mechanism`, unencoded."""
    if mechanism == "plain":
        return f"\0{username}\0{secret}"
    if mechanism == "xoauth2":
        return f"user={username}\x01auth=Bearer {secret}\x01\x01"
    if mechanism == "oauthbearer":
        return f"n,a={_gs2_name(username)},\x01host={host}\x01port={port}\x01auth=Bearer {secret}\x01\x01"
    raise ValueError(f"no initial response for {mechanism!r}")


def responder(mechanism: str, username: str, secret: str, *, host: str = "", port: int = 0) -> Callable[..., str]:
    """A callable for imaplib's `authenticate` and smtplib's `auth`: the initial response first,
    then an empty answer to anything else. Both bearer mechanisms send a failure as a challenge
    (a JSON status) that the client must answer empty before the server says NO."""
    answered = False

    def respond(challenge: bytes | None = None) -> str:
        nonlocal answered
        if answered:
            return ""
        answered = True
        return initial_response(mechanism, username, secret, host=host, port=port)

    return respond


def _gs2_name(username: str) -> str:
    # RFC 5801: "," and "=" in the authzid are escaped.
    return username.replace("=", "=3D").replace(",", "=2C")
