"""The spool channel as `agentdesk.sync` sees it: a Source per spool, a Sender per channel kind.

`spool_sources(ctx)` and `spool_senders(ctx)` are the two registry entries of `agentdesk.sync`
(`SOURCE_FACTORIES["spool"]`, `SENDER_FACTORIES["spool"]`):

- `SyncSpoolSource` wraps `spool.SpoolSource` in the sync `Source` protocol: `poll()` returns a
  `sync.PollReport` and raises `sync.SourceError` when files could not be stored (the store was
  unavailable: they stay in new/ for the next pass); rejected files are handled input and are
  reported as warnings on the `agentdesk.sync` logger (stderr); `wait()` looks into new/ every
  0.5 s, so a new file is picked up within 2 s.
- `SpoolSender` implements `delivery.Sender` for replies on spool conversations, routed by the
  outbox row's source to that spool's `outbound` (directory or signed URL). Outbox rows are keyed
  by channel kind, so for a kind that mailboxes use too (`email`) it hands rows that are not from a
  spool to the mail sender.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from agentdesk.channels.webhook import outbound
from agentdesk.channels.webhook.spool import SpoolSource

log = logging.getLogger("agentdesk.sync")


class SyncSpoolSource:
    kind = "spool"

    def __init__(self, spool, ctx):
        self.ctx = ctx
        self.name = spool.name
        self.inner = SpoolSource(spool, engine=ctx.engine, policies=ctx.policies, path=ctx.settings._resolve(spool.path),
                                 now_fn=ctx.now_fn, templates_dir=ctx.settings.templates_dir,
                                 settings=ctx.settings)
        self.inner.ensure()
        self._stop = threading.Event()

    def poll(self, *, progress=None):
        from agentdesk import sync

        result = self.inner.poll()
        if progress is not None and result.files:
            progress(result.files, result.files, self.name)
        for name, reason in result.rejected:
            log.warning("spool %s: rejected %s: %s", self.name, name, reason)
        for warning in result.warnings:
            log.warning("spool %s: %s", self.name, warning)
        report = sync.PollReport(self.name, fetched=result.files + len(result.rejected), stored=result.stored,
                                 duplicates=result.duplicates)
        if result.failed:
            first = result.failed[0][1]
            report.errors.append(f"spool {self.name}: {len(result.failed)} file(s) not stored: {first}")
            raise sync.SourceError(report.errors[0])
        return report

    def wait(self, timeout: float) -> None:
        self.inner.wait(timeout, stop=self._stop.is_set)

    def interrupt(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()


def spool_sources(ctx) -> list[SyncSpoolSource]:
    return [SyncSpoolSource(spool, ctx) for spool in ctx.settings.spool]


class SpoolSender:
    """`delivery.Sender` for replies on spool conversations (one instance serves one channel kind)."""

    def __init__(self, settings, *, fallback: Any = None):
        self.settings = settings
        self.fallback = fallback
        self.spools = {spool.name: spool for spool in settings.spool}
        self._senders: dict[str, outbound.Sender | None] = {}

    def _sender(self, spool) -> outbound.Sender | None:
        if spool.name not in self._senders:
            from agentdesk.commands_webhook import outbound_sender

            self._senders[spool.name] = outbound_sender(self.settings, spool)
        return self._senders[spool.name]

    def prepare(self, session, *, outbox, message, conversation) -> Any:
        from agentdesk.delivery import DeliveryError

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
        from agentdesk.delivery import DeliveryError

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
