"""The senders of the outbox (`delivery.Sender`), one per channel family.

A sender's `prepare` reads what a reply needs from the store, inside the outbox's claim
transaction, and hands the channel a plain record (an `OutgoingMail`, a reply document); its
`send` puts that on the wire through the channel, with no transaction open. The channels
themselves never touch the database.

`email_senders` and `spool_senders` are the entries of `worker.SENDER_FACTORIES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from agentdesk.channels.base import DeliveryError, Handed
from agentdesk.store import customers as customer_queries
from agentdesk.store import queries, threads
from agentdesk.store.models import Conversation, Message, MessageRaw, Outbox, ref_of

if TYPE_CHECKING:
    from email.message import EmailMessage

    from agentdesk.channels.email.smtp import SmtpSender
    from agentdesk.channels.webhook.outbound import Transport
    from agentdesk.sync.base import SyncContext
    from agentdesk.sync.delivery import Sender


# --- email -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedMail:
    mailbox: str  # name
    mail: EmailMessage
    recipients: tuple[str, ...]


class EmailSender:
    """The `delivery.Sender` of the email channel: one SMTP server per configured mailbox.

    SMTP is imported when the first reply is prepared, and a mailbox's password is read
    (password_command) the first time it sends: a sync with nothing to send pays for neither.
    """

    def __init__(self, settings, *, timeout: float = 60.0):
        self.mailboxes = {mailbox.name: mailbox for mailbox in settings.mailbox}
        self.our_addresses = {m.address.strip().lower() for m in settings.mailbox if m.address}
        self.timeout = timeout
        self._smtp: dict[str, SmtpSender] = {}

    def prepare(
        self, session: Session, *, outbox: Outbox, message: Message, conversation: Conversation
    ) -> PreparedMail:
        from agentdesk.channels.email.smtp import OutgoingMail, compose

        mailbox = self.mailboxes.get(outbox.source) or self.mailboxes.get(conversation.source)
        if mailbox is None:
            raise DeliveryError(
                f"no [[mailbox]] named {outbox.source or conversation.source!r} in the config sends for this "
                "conversation; add it, then the reply is retried",
                permanent=False,
            )
        assert conversation.id is not None and message.id is not None, "a stored reply"
        last_inbound = threads.latest_inbound_message_before(
            session=session, conversation_id=conversation.id, message_id=message.id
        )
        attachments = attached_files(session, message)
        if outbox.to_addresses:
            # Addressed when it was queued (the composer, reply --to/--cc/--bcc, forward, new).
            to_list, queued_cc, bcc = (
                outbox.to_addresses.split(),
                outbox.cc_addresses.split(),
                outbox.bcc_addresses.split(),
            )
            threaded = last_inbound if message.kind != "forward" else None
            mail = compose(
                OutgoingMail(
                    from_address=mailbox.address,
                    from_name=message.author or "",
                    to=to_list,
                    cc=queued_cc,
                    subject=message.subject,
                    body=message.body_text,
                    message_id=message.external_id or "",
                    in_reply_to=(threaded.external_id or "") if threaded is not None else "",
                    references=[r for r in (threaded.references or "").split() if r] if threaded is not None else [],
                    automatic=message.kind in ("receipt", "survey"),
                    date=message.at,
                    attachments=attachments,
                )
            )
            return PreparedMail(
                mailbox=mailbox.name, mail=mail, recipients=tuple(dict.fromkeys([*to_list, *queued_cc, *bcc]))
            )
        to = last_inbound.sender_address if last_inbound is not None and last_inbound.sender_address else ""
        if not to:
            identity = customer_queries.identity_of_kind(
                session=session, customer_id=conversation.customer_id, kind="email"
            )
            to = identity.address if identity else ""
        if not to or "@" not in to:
            raise DeliveryError("the customer has no email address to reply to", permanent=True)
        cc: list[str] = []
        references: list[str] = []
        in_reply_to = ""
        if last_inbound is not None:
            in_reply_to = last_inbound.external_id or ""
            references = [r for r in (last_inbound.references or "").split() if r]
            raw = session.get(MessageRaw, last_inbound.id)
            # A receipt goes to the sender alone (docs/email.md, Recipients).
            if raw is not None and message.kind != "receipt":
                from agentdesk.channels.email.mime import parse_message

                parsed = parse_message(raw.raw, source=mailbox.name, received_at=last_inbound.at)
                skip = self.our_addresses | {to.lower()}
                cc = [address for address in parsed.recipients if address not in skip and "@" in address]
        mail = compose(
            OutgoingMail(
                from_address=mailbox.address,
                from_name=message.author or "",
                to=[to],
                cc=cc,
                subject=message.subject,
                body=message.body_text,
                message_id=message.external_id or "",
                in_reply_to=in_reply_to,
                references=references,
                automatic=message.kind in ("receipt", "survey"),
                date=message.at,
                attachments=attachments,
            )
        )
        return PreparedMail(mailbox=mailbox.name, mail=mail, recipients=tuple([to, *cc]))

    def _sender(self, mailbox) -> SmtpSender:
        from agentdesk.channels.email.smtp import SmtpSender, SmtpServer

        sender = self._smtp.get(mailbox.name)
        if sender is None:
            from agentdesk.sync import credentials

            password = None
            if mailbox.smtp.username:

                def secret(mailbox=mailbox) -> str:
                    try:
                        return credentials.smtp_secret(mailbox)
                    except Exception as error:  # a password command that failed, a sign-in revoked
                        raise DeliveryError(str(error), permanent=False) from None

                # A token is asked for with each connection (it is refreshed before it expires).
                tokens = credentials.token_changes(mailbox.smtp.auth) or credentials.uses_sign_in(mailbox)
                password = secret if tokens else secret()
            sender = SmtpSender(SmtpServer.from_mailbox(mailbox, timeout=self.timeout), password)
            self._smtp[mailbox.name] = sender
        return sender

    def send(self, prepared: PreparedMail) -> str:
        mailbox = self.mailboxes[prepared.mailbox]
        note = self._sender(mailbox).send(prepared.mail, recipients=prepared.recipients)
        if mailbox.sent_folder:
            problem = self._append_to_sent(mailbox, prepared.mail)
            if problem:
                note = "; ".join(
                    filter(None, [note, f"sent, but the copy to {mailbox.sent_folder!r} failed: {problem}"])
                )
        return note

    def _append_to_sent(self, mailbox, mail: EmailMessage) -> str:
        from agentdesk.channels.email import imap

        try:
            from agentdesk.sync import credentials

            connection = imap.BulkConnection(
                imap.ServerSettings.from_mailbox(mailbox, timeout=self.timeout), credentials.imap_secret(mailbox)
            )
            try:
                connection.append(mailbox.sent_folder, mail.as_bytes())
            finally:
                connection.close()
        except Exception as error:
            return str(error)
        return ""


def attached_files(session: Session, message: Message) -> list[tuple[str, str, bytes]]:
    """(name, content type, bytes) of each file a message carries, from the attachment store. A
    file gone from the store fails the message for good, saying which: sending it without would be
    sending something else than the agent wrote."""
    from agentdesk.errors import NotFound
    from agentdesk.store import attachments as stored_files

    assert message.id is not None, "a stored message"
    found = []
    for attachment in queries.attachments_of(session=session, message_ids=[message.id]).get(message.id, []):
        try:
            found.append(
                (
                    attachment.filename,
                    attachment.content_type,
                    stored_files.read(session=session, key=attachment.storage_key),
                )
            )
        except NotFound as error:
            raise DeliveryError(f"attachment {attachment.filename!r} cannot be read: {error}", permanent=True) from None
    return found


def email_senders(ctx: SyncContext) -> dict[str, Sender]:
    return {"email": EmailSender(ctx.settings)} if ctx.settings.mailbox else {}


# --- webhook spools --------------------------------------------------------------------------------


def _identity_kind(session: Session, conversation: Conversation, address: str) -> str:
    """The kind of the customer's identity at `address`: the channel's own kind, or another when
    the customer wrote on this channel under it (a chat payload naming its sender by email)."""
    from agentdesk.domain import customers

    identities = queries.identities_of(session=session, customer_ids=[conversation.customer_id])
    for identity in identities.get(conversation.customer_id, ()):
        if identity.address == address:
            return identity.kind
    return customers.IDENTITY_KIND.get(conversation.channel, conversation.channel)


def reply_document(
    session: Session, message: Message, conversation: Conversation, outbox: Outbox | None = None
) -> dict[str, Any]:
    """One outbound reply as an event of the generic schema, addressed to the recipient chosen when
    it was queued, else to the customer's last message; its files inline as base64."""
    from agentdesk.channels.webhook import outbound

    assert conversation.id is not None, "a stored conversation"
    last_inbound = threads.latest_inbound(session=session, conversation_id=conversation.id)
    thread_key = threads.latest_thread_key(session=session, conversation_id=conversation.id)
    recipient: dict[str, str] = {}
    chosen = outbox.to_addresses.split() if outbox is not None else []
    if chosen:
        recipient = {
            "recipient_kind": _identity_kind(session, conversation, chosen[0]),
            "recipient_address": chosen[0],
            "recipient_name": (last_inbound.author or "")
            if last_inbound is not None and last_inbound.sender_address == chosen[0]
            else "",
        }
    elif last_inbound is not None and last_inbound.sender_address:
        recipient = {
            "recipient_kind": _identity_kind(session, conversation, last_inbound.sender_address),
            "recipient_address": last_inbound.sender_address,
            "recipient_name": last_inbound.author or "",
        }
    return outbound.reply_document(
        event_id=message.external_id or f"agentdesk-message-{message.id}",
        channel=conversation.channel,
        at=message.at,
        author=message.author,
        author_login=message.author_login,
        ref=ref_of(conversation.id),
        subject=message.subject,
        text=message.body_text,
        source=conversation.source,
        message_kind=message.kind,
        thread_key=thread_key or "",
        in_reply_to=(last_inbound.external_id or "") if last_inbound is not None else "",
        attachments=attached_files(session, message),
        **recipient,
    )


class SpoolSender:
    """`delivery.Sender` for replies on spool conversations (one instance serves one channel kind).

    A spool's transport (outbound directory or signed URL) is built on its first reply, which is
    when its secret command runs. `fallback` takes the rows of sources that are not spools: the
    mailboxes, when a spool feeds email conversations too.
    """

    def __init__(self, settings, *, fallback: Any = None):
        self.settings = settings
        self.fallback = fallback
        self.spools = {spool.name: spool for spool in settings.spool}
        self._transports: dict[str, Transport | None] = {}

    def _transport(self, spool) -> Transport | None:
        if spool.name not in self._transports:
            from agentdesk.channels.webhook import outbound

            index = self.settings.spool.index(spool)
            secret = (lambda: spool.secret(f"spool[{index}] ({spool.name})")) if spool.secret_command else None
            base = self.settings.source.parent if self.settings.source else None
            self._transports[spool.name] = outbound.transport_for(spool, base=base, secret=secret)
        return self._transports[spool.name]

    def prepare(self, session: Session, *, outbox: Outbox, message: Message, conversation: Conversation) -> Any:
        spool = self.spools.get(outbox.source)
        if spool is None:
            if self.fallback is not None:
                return (
                    "fallback",
                    self.fallback.prepare(session, outbox=outbox, message=message, conversation=conversation),
                )
            raise DeliveryError(
                f"no spool or mailbox named {outbox.source!r} to send this reply through", permanent=True
            )
        try:
            transport = self._transport(spool)
        except Exception as error:  # a failing secret command
            raise DeliveryError(f"spool {spool.name}: {error}") from None
        if transport is None:
            raise DeliveryError(
                f"spool {spool.name} has no outbound (set outbound.spool or outbound.url)", permanent=True
            )
        return ("spool", transport, reply_document(session, message, conversation, outbox))

    def send(self, prepared: Any) -> str:
        if prepared[0] == "fallback":
            return self.fallback.send(prepared[1])
        _, transport, document = prepared
        provider_id = transport(document)
        return Handed("", provider_id=provider_id) if provider_id else ""


def spool_senders(ctx: SyncContext) -> dict[str, Sender]:
    """One SpoolSender per channel kind that a spool feeds; `email` keeps mailbox replies on SMTP."""
    senders: dict[str, Sender] = {}
    for kind in sorted({spool.kind for spool in ctx.settings.spool}):
        fallback = EmailSender(ctx.settings) if kind == "email" and ctx.settings.mailbox else None
        senders[kind] = SpoolSender(ctx.settings, fallback=fallback)
    return senders
