"""Replies out: an outbound Message as an RFC 5322 mail, sent through the mailbox's SMTP server.

`compose` builds the mail (From our address, To the customer, Cc the others who were on the
customer's last message, `Re: … [AD-n]`, In-Reply-To/References, our own Message-ID, the loop
header on every mail and `Auto-Submitted` on automatic ones). `SmtpSender` sends it with
ssl / starttls / none and optional AUTH, and turns every failure into a `DeliveryError` that
carries the server's own words and whether trying again can help.

Nothing here touches the database: `agentdesk.sync.senders.EmailSender` gathers an
`OutgoingMail` from the store and sends it through here.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr

from agentdesk.channels.base import (
    DeliveryError,  # noqa: F401  (re-exported: senders raise it)
    DeliveryOutcomeUnknown,
)
from agentdesk.channels.email import sasl
from agentdesk.sanitize import safe_filename

__all__ = ["LOOP_HEADER", "DeliveryError", "DeliveryOutcomeUnknown", "OutgoingMail", "compose", "probe", "SmtpSender"]

# On every mail we send; an inbound mail carrying it with one of our addresses is our own mail
# come back, and is never answered automatically (mime.KEPT_HEADERS keeps it).
LOOP_HEADER = "X-Agentdesk-Loop"


@dataclass(frozen=True)
class OutgoingMail:
    """Everything `compose` needs, gathered from the store by the delivery worker."""

    from_address: str
    from_name: str
    to: Sequence[str]
    subject: str
    body: str
    message_id: str  # without angle brackets, as stored in Message.external_id
    cc: Sequence[str] = ()
    in_reply_to: str = ""
    references: Sequence[str] = ()
    automatic: bool = False
    date: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    attachments: Sequence[tuple[str, str, bytes]] = ()  # (file name, content type, bytes)


def _bracket(message_id: str) -> str:
    return f"<{message_id.strip().strip('<>')}>"


def compose(mail: OutgoingMail) -> EmailMessage:
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = formataddr((mail.from_name, mail.from_address)) if mail.from_name else mail.from_address
    message["To"] = ", ".join(mail.to)
    if mail.cc:
        message["Cc"] = ", ".join(mail.cc)
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(mail.date.astimezone(timezone.utc))
    message["Message-ID"] = _bracket(mail.message_id)
    if mail.in_reply_to:
        message["In-Reply-To"] = _bracket(mail.in_reply_to)
    references = [r for r in mail.references if r]
    if mail.in_reply_to and mail.in_reply_to not in references:
        references.append(mail.in_reply_to)
    if references:
        # The first (thread root) and the most recent ones: RFC 5322 3.6.4 allows trimming.
        if len(references) > 20:
            references = references[:1] + references[-19:]
        message["References"] = " ".join(_bracket(r) for r in references)
    message[LOOP_HEADER] = mail.from_address
    if mail.automatic:
        # RFC 3834: automatic responses say so, and ask Exchange not to answer them.
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"
        message["Precedence"] = "auto_reply"
    message.set_content(mail.body, charset="utf-8", cte="quoted-printable")
    for name, content_type, data in mail.attachments:
        maintype, _, subtype = content_type.partition("/")
        if not maintype or not subtype or maintype == "multipart" or "\n" in content_type:
            maintype, subtype = "application", "octet-stream"
        # The name is one safe path component whoever chose it (a sender whose file we forward).
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=safe_filename(name))
    return message


@dataclass(frozen=True)
class SmtpServer:
    name: str  # the mailbox name, for messages
    host: str
    port: int
    tls: str  # ssl | starttls | none
    username: str = ""
    timeout: float = 60.0
    auth: str = ""  # login | plain | xoauth2 | oauthbearer; "" = what the server offers, a password first

    @classmethod
    def from_mailbox(cls, mailbox, *, timeout: float = 60.0) -> SmtpServer:
        smtp = mailbox.smtp
        return cls(
            name=mailbox.name,
            host=smtp.host,
            port=smtp.port,
            tls=smtp.tls,
            username=smtp.username,
            timeout=timeout,
            auth=getattr(smtp, "auth", ""),
        )


class _DataWatch:
    """Notes when the message data, final "." included, has been written (`data_written`):
    from then until the server's reply, a broken connection leaves the outcome unknown."""

    data_written = False
    _in_data = False

    def data(self, msg):
        self._in_data = True
        try:
            return super().data(msg)
        finally:
            self._in_data = False

    def send(self, s):
        super().send(s)
        # Within DATA, commands are str and the message (ending in CRLF "." CRLF) is bytes.
        if self._in_data and isinstance(s, (bytes, bytearray)):
            self.data_written = True


class _WatchedSMTP(_DataWatch, smtplib.SMTP):
    pass


class _WatchedSMTP_SSL(_DataWatch, smtplib.SMTP_SSL):
    pass


def _reason(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(str(text).split())}"


def _log_in(client: smtplib.SMTP, server: SmtpServer, secret: str) -> None:
    client.ehlo_or_helo_if_needed()
    offered = {name.upper() for name in client.esmtp_features.get("auth", "").split()}
    mechanism = sasl.choose(server.auth, offered, login_command=False)
    if mechanism in ("login", "plain") and not server.auth:
        client.login(server.username, secret)  # smtplib picks among the password mechanisms offered
        return
    if mechanism == "login":
        client.user, client.password = server.username, secret
        client.auth("LOGIN", client.auth_login)
        return
    client.auth(
        mechanism.upper(), sasl.responder(mechanism, server.username, secret, host=server.host, port=server.port)
    )


class SmtpSender:
    """Sends composed mail through one SMTP server; a new connection per batch of sends."""

    def __init__(
        self,
        server: SmtpServer,
        password: str | Callable[[], str] | None = None,
        *,
        context: ssl.SSLContext | None = None,
    ):
        """`password`: the secret, or a function giving it, called for each connection (an OAuth
        access token expires within the hour; the function returns a fresh one)."""
        self.server = server
        self.password = password
        self.context = context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        server = self.server
        if not server.host:
            raise DeliveryError(
                f"mailbox {server.name}: no [mailbox.smtp] host configured; replies cannot be sent", permanent=False
            )
        if server.tls == "ssl":
            client: smtplib.SMTP = _WatchedSMTP_SSL(
                server.host, server.port, timeout=server.timeout, context=self.context
            )
        else:
            client = _WatchedSMTP(server.host, server.port, timeout=server.timeout)
            if server.tls == "starttls":
                client.starttls(context=self.context)
        if server.username:
            secret = self.password() if callable(self.password) else self.password or ""
            _log_in(client, server, secret)
        return client

    @property
    def where(self) -> str:
        return f"SMTP {self.server.host}:{self.server.port}"

    def connect(self) -> smtplib.SMTP:
        """A client past EHLO, STARTTLS and AUTH, as the config asks; DeliveryError says which step failed."""
        where = self.where
        try:
            return self._connect()
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as error:
            raise DeliveryError(
                f"{where} refused the login of {self.server.username!r}: {_reason(error.smtp_code, error.smtp_error)}"
            ) from None
        except smtplib.SMTPNotSupportedError as error:
            raise DeliveryError(
                f"{where}: {error}; check tls and username of [mailbox.smtp]", permanent=False
            ) from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(f"{where}: {_reason(error.smtp_code, error.smtp_error)}", permanent=False) from None
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"{where} unreachable: {error or type(error).__name__}") from None

    def send(self, message: EmailMessage, recipients: Sequence[str] = ()) -> str:
        """Send; returns a note for the record ("" when all went well). Raises DeliveryError.

        `recipients`: the envelope (RCPT TO), Bcc included; empty: the To and Cc headers'."""
        where = self.where
        client = self.connect()
        try:
            refused = client.send_message(message, to_addrs=list(recipients) or None)
        except smtplib.SMTPRecipientsRefused as error:
            detail = "; ".join(f"{rcpt}: {_reason(code, text)}" for rcpt, (code, text) in error.recipients.items())
            permanent = all(code >= 500 for code, _ in error.recipients.values())
            raise DeliveryError(f"{where} refused every recipient: {detail}", permanent=permanent) from None
        except smtplib.SMTPSenderRefused as error:
            raise DeliveryError(
                f"{where} refused the sender {error.sender}: {_reason(error.smtp_code, error.smtp_error)}",
                permanent=error.smtp_code >= 500,
            ) from None
        except smtplib.SMTPDataError as error:
            raise DeliveryError(
                f"{where} rejected the message: {_reason(error.smtp_code, error.smtp_error)}",
                permanent=error.smtp_code >= 500,
            ) from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(
                f"{where}: {_reason(error.smtp_code, error.smtp_error)}", permanent=error.smtp_code >= 500
            ) from None
        except (TimeoutError, OSError, smtplib.SMTPException) as error:
            if getattr(client, "data_written", False):
                # The whole message and its final "." reached the server, its answer did not: it
                # may have queued the mail. A retry could send it twice (docs/email.md).
                raise DeliveryOutcomeUnknown(
                    f"{where} took the whole message, then the connection was lost before its answer "
                    f"({error or type(error).__name__}): it may have been sent"
                ) from None
            # Broken before the message's end went out: the server cannot have accepted it.
            raise DeliveryError(f"{where} connection lost while sending: {error or type(error).__name__}") from None
        finally:
            _quit(client)
        if refused:
            detail = "; ".join(f"{rcpt}: {_reason(code, text)}" for rcpt, (code, text) in refused.items())
            return f"sent; some recipients refused: {detail}"
        return ""


def probe(server: SmtpServer, password: str | None = None) -> str:
    """Connect, EHLO, STARTTLS and AUTH as a send would, then QUIT, sending nothing: for `doctor`.
    What the server offers (its EHLO extensions); DeliveryError says which step failed."""
    sender = SmtpSender(server, password)
    client = sender.connect()
    try:
        client.ehlo_or_helo_if_needed()
        return " ".join(sorted(name.upper() for name in client.esmtp_features))
    except (OSError, smtplib.SMTPException) as error:
        raise DeliveryError(f"{sender.where}: EHLO failed: {error or type(error).__name__}") from None
    finally:
        _quit(client)


def _quit(client: smtplib.SMTP) -> None:
    """QUIT politely; a connection already broken is just closed."""
    try:
        client.quit()
    except Exception:
        client.close()
