"""The senders of the outbox (`delivery.Sender`), one per channel kind."""

from __future__ import annotations

from typing import Any

from agentdesk.channels.webhook import outbound
from agentdesk.sync.delivery import DeliveryError


class LazyEmailSender:
    """The email channel's sender, built (SMTP imported) when the first reply is prepared."""

    def __init__(self, settings: Any):
        self.settings = settings
        self._sender = None

    def _real(self):
        if self._sender is None:
            from agentdesk.channels.email.smtp import EmailSender

            self._sender = EmailSender(self.settings)
        return self._sender

    def prepare(self, session, *, outbox, message, conversation):
        return self._real().prepare(session, outbox=outbox, message=message, conversation=conversation)

    def send(self, prepared):
        return self._real().send(prepared)

    def __getattr__(self, name: str):
        return getattr(self._real(), name)


class SpoolSender:
    """`delivery.Sender` for replies on spool conversations (one instance serves one channel kind)."""

    def __init__(self, settings, *, fallback: Any = None):
        self.settings = settings
        self.fallback = fallback
        self.spools = {spool.name: spool for spool in settings.spool}
        self._senders: dict[str, outbound.Sender | None] = {}

    def _sender(self, spool) -> outbound.Sender | None:
        if spool.name not in self._senders:
            from agentdesk.sync.sources.spool import outbound_sender

            self._senders[spool.name] = outbound_sender(self.settings, spool)
        return self._senders[spool.name]

    def prepare(self, session, *, outbox, message, conversation) -> Any:
        spool = self.spools.get(outbox.source)
        if spool is None:
            if self.fallback is not None:
                return ("fallback", self.fallback.prepare(session, outbox=outbox, message=message,
                                                          conversation=conversation))
            raise DeliveryError(f"no spool or mailbox named {outbox.source!r} to send this reply through",
                                permanent=True)
        try:
            sender = self._sender(spool)
        except Exception as error:  # a failing secret command
            raise DeliveryError(f"spool {spool.name}: {error}") from None
        if sender is None:
            raise DeliveryError(f"spool {spool.name} has no outbound (set outbound.spool or outbound.url)",
                                permanent=True)
        return ("spool", sender, outbound.reply_document(session, message, conversation))

    def send(self, prepared: Any) -> str:
        if prepared[0] == "fallback":
            return self.fallback.send(prepared[1])
        _, sender, document = prepared
        try:
            sender(document)
        except outbound.DeliveryError as error:
            raise DeliveryError(str(error), permanent=error.permanent) from None
        return ""


def spool_senders(ctx) -> dict[str, SpoolSender]:
    """One SpoolSender per channel kind that a spool feeds; `email` keeps mailbox replies on SMTP."""
    kinds = {spool.kind for spool in ctx.settings.spool}
    senders = {}
    for kind in sorted(kinds):
        fallback = None
        if kind == "email" and ctx.settings.mailbox:
            from agentdesk.channels.email.smtp import EmailSender

            fallback = EmailSender(ctx.settings)
        senders[kind] = SpoolSender(ctx.settings, fallback=fallback)
    return senders
