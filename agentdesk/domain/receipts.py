"""The automatic receipt: "we have your message AD-1042; a person will answer by Tuesday 11:30".

A channel (a `[[mailbox]]` or `[[spool]]`) names a template in `receipt`; without one nothing is
sent. A receipt goes out for the first message of a new conversation and, when the channel sets
`receipt_after_hours`, for a customer message that arrives while the policy's calendar is closed
(once per conversation until an agent replies). Its ETA is the due time the SLA clocks just
stored on the conversation, so the promise is the one the team is measured against: business
hours, holidays and pauses included.

Loop protection — a receipt never answers what `automatic_messages.refusal` refuses (the one rule
for every automatic message: machine mail by kind, bulk flag, headers or sender address, our own
addresses), a conversation set aside (spam, bulk, system), nor an address that already got
`receipt_limit` receipts (default 3) within the last hour, counted from the receipts stored for
that customer, so it holds across processes and restarts. And it is never queued when it could
not be delivered (no email address to send it to, a spool without an outbound).

A receipt is not a reply: it starts and stops no SLA clock (docs/sla.md). Domain code: no IO
beyond the store and the templates directory; every decision takes `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from agentdesk import config
from agentdesk.domain import audit, automatic_messages, clocks, knowledge_base, sla
from agentdesk.errors import AgentdeskError
from agentdesk.store import outbox, threads
from agentdesk.store.models import Conversation, Customer, Message, id_of, ref_of

DEFAULT_LIMIT_PER_HOUR = 3
WINDOW = timedelta(hours=1)
AUTHOR = "Automatic receipt"


@dataclass(frozen=True)
class Decision:
    send: bool
    reason: str  # why not, or the occasion ("new conversation", "after hours")
    template: str = ""


def channel_settings(settings: config.Settings, source: str) -> Any:
    """The `[[mailbox]]` or `[[spool]]` named `source`, or None."""
    entries: list[config.MailboxSettings | config.SpoolSettings] = [*settings.mailbox, *settings.spool]
    for entry in entries:
        if entry.name == source:
            return entry
    return None


def our_addresses(settings: config.Settings) -> frozenset[str]:
    """Every address that is us: mailbox addresses and mail logins that look like addresses."""
    found = set()
    for mailbox in settings.mailbox:
        for value in (mailbox.address, mailbox.username, mailbox.smtp.username):
            if value and "@" in value:
                found.add(value.strip().lower())
    return frozenset(found)


def why_undeliverable(channel: Any, address: str) -> str:
    """Why a receipt to `address` on `channel` could not be delivered, or "": a receipt that is
    queued only to fail would fail the sync that queued it (and tell the customer nothing)."""
    from agentdesk.config import MailboxSettings

    address = (address or "").strip()
    if isinstance(channel, MailboxSettings) or getattr(channel, "kind", "") == "email":
        local, at, domain = address.rpartition("@")
        if not (at and local and "." in domain.strip(".")):
            return f"{address or 'the sender'} is not an email address a receipt could go to"
    if not isinstance(channel, MailboxSettings):
        outbound = getattr(channel, "outbound", None)
        if outbound is None or not (getattr(outbound, "spool", "") or getattr(outbound, "url", "")):
            return f"spool {channel.name} has no outbound to send a receipt through"
    return ""


def receipts_sent(session: Session, *, customer_id: int, now: datetime, window: timedelta = WINDOW) -> int:
    """Receipts queued for this customer's conversations within `window` before `now`.

    Per customer, and so per address: an address belongs to exactly one customer. Indexed: the
    customer's conversations, then each one's messages by time.
    """
    return outbox.receipts_queued(session=session, customer_id=customer_id, after=now - window, until=now)


def _is_first_message(session: Session, conversation: Conversation, message: Message) -> bool:
    return not threads.has_other_message(
        session=session, conversation_id=id_of(conversation), message_id=id_of(message)
    )


def _receipt_since_last_reply(session: Session, conversation: Conversation) -> bool:
    return threads.has_receipt_since(
        session=session, conversation_id=id_of(conversation), since=conversation.last_agent_reply_at
    )


def decide(
    session: Session,
    *,
    conversation: Conversation,
    message: Message,
    settings: config.Settings,
    policies: clocks.Policies,
    now: datetime,
    inbound: Any = None,
    first_message: bool | None = None,
) -> Decision:
    """Whether `message` (stored, inbound) gets an automatic receipt, and why (not).

    `first_message`: whether it opened the conversation, when the caller knows (ingest's batches
    decide after later messages of the same batch may have joined it); None: looked up.
    """
    channel = channel_settings(settings, conversation.source)
    template = getattr(channel, "receipt", "") if channel is not None else ""
    if not template:
        return Decision(False, f"source {conversation.source!r} has no receipt template")
    if message.direction != "inbound":
        return Decision(False, "it is not a customer message")
    ours = our_addresses(settings)
    why_not = automatic_messages.refusal(
        kind=message.kind,
        bulk=message.bulk or bool(inbound is not None and inbound.bulk),
        sender_address=message.sender_address,
        headers=inbound.headers if inbound is not None else {},
        our_addresses=ours,
    )
    if why_not:
        return Decision(False, why_not)
    if getattr(conversation, "aside", ""):
        return Decision(False, f"its conversation is set aside as {conversation.aside}")
    undeliverable = why_undeliverable(channel, message.sender_address)
    if undeliverable:
        return Decision(False, undeliverable)
    address = message.sender_address.strip().lower()

    if first_message if first_message is not None else _is_first_message(session, conversation, message):
        occasion = "new conversation"
    elif getattr(channel, "receipt_after_hours", False) and _after_hours(conversation, policies, message.at):
        if _receipt_since_last_reply(session, conversation):
            return Decision(False, "a receipt already went out since the last reply")
        occasion = "after hours"
    else:
        return Decision(False, "not the first message of the conversation")

    limit = getattr(channel, "receipt_limit", DEFAULT_LIMIT_PER_HOUR)
    sent = receipts_sent(session, customer_id=conversation.customer_id, now=now)
    if sent >= limit:
        return Decision(False, f"{sent} receipts went to {address} within the last hour (limit {limit})")
    return Decision(True, occasion, template)


def _policy(conversation: Conversation, policies: clocks.Policies) -> sla.Policy | None:
    return policies.by_name(conversation.sla_policy) if conversation.sla_policy else None


def _after_hours(conversation: Conversation, policies: clocks.Policies, at: datetime) -> bool:
    policy = _policy(conversation, policies)
    return policy is not None and not policy.calendar.is_open(at)


def promised_at(conversation: Conversation) -> datetime | None:
    """When a person will answer: the stored due of the reply the customer waits for.

    None when no reply target runs (no policy sets one, or the clock is paused): then the
    receipt does not promise a time it cannot stand behind.
    """
    if conversation.first_responded_at is None:
        return conversation.first_response_due
    return conversation.next_response_due


def _zone(policy: sla.Policy | None, settings: config.Settings):
    calendar = policy.calendar if policy is not None else None
    if isinstance(calendar, sla.BusinessCalendar):
        return ZoneInfo(calendar.timezone)
    if settings.calendar:
        return ZoneInfo(settings.calendar[0].timezone)
    return timezone.utc


def format_eta(due: datetime, *, now: datetime, zone) -> tuple[str, str]:
    """(absolute, relative) wording: ("Tuesday 17 November, 11:30 CET", "within 45 minutes").

    The relative form rounds up to 5 minutes (never promise earlier than the clock says) and is
    used within 4 hours; after that it names the day and time too.
    """
    local = due.astimezone(zone)
    absolute = f"{local:%A} {local.day} {local:%B}, {local:%H:%M} {local.tzname() or ''}".strip()
    left = due - now
    if left <= timedelta(0):
        return absolute, "shortly"
    minutes = -(-int(left.total_seconds()) // 60)
    minutes = -(-minutes // 5) * 5
    if minutes < 60:
        return absolute, f"within {minutes} minutes"
    if minutes <= 4 * 60:
        hours, rest = divmod(minutes, 60)
        wording = f"{hours} hour{'s' if hours > 1 else ''}" + (f" {rest} minutes" if rest else "")
        return absolute, f"within {wording}"
    return absolute, f"by {absolute}"


def values(
    conversation: Conversation,
    customer: Customer | None,
    *,
    policies: clocks.Policies,
    settings: config.Settings,
    now: datetime,
) -> dict[str, str]:
    """The template's placeholders; `due` empty (so the template is refused) when nothing is promised."""
    from agentdesk.domain import templates

    name = customer.name if customer else ""
    filled = {
        "customer_name": name,
        "customer_first_name": templates.first_name(name),
        "ref": ref_of(id_of(conversation)),
        "subject": conversation.subject,
        "channel": conversation.channel,
        "due": "",
        "due_relative": "",
        "due_iso": "",
        "articles": "",
    }
    due = promised_at(conversation)
    if due is not None:
        absolute, relative = format_eta(due, now=now, zone=_zone(_policy(conversation, policies), settings))
        filled.update(due=absolute, due_relative=relative, due_iso=due.isoformat())
    return filled


ARTICLES_IN_RECEIPT = 3


def _articles(session: Session, template: Any, message: Message, *, settings: config.Settings, now: datetime) -> list:
    """The knowledge-base articles that best match the customer's first message, when the
    template lists them (`{{ articles }}`); none otherwise, so a receipt without them never
    reads the articles directory."""
    if "articles" not in template.body:
        return []
    knowledge_base.refresh(session, settings.kb_dir, now=now)
    text = f"{message.subject}\n{message.body_text or message.body_html_text}"
    return [match.article for match in knowledge_base.suggest(session, text, limit=ARTICLES_IN_RECEIPT)]


def maybe_queue_receipt(
    session: Session,
    *,
    conversation: Conversation,
    message: Message,
    settings: config.Settings,
    policies: clocks.Policies,
    now: datetime,
    inbound: Any = None,
    first_message: bool | None = None,
) -> Message | None:
    """Queue the automatic receipt for `message` when it should get one; the queued Message or None.

    Call it after ingest stored the message and refreshed the conversation's clocks, in the same
    transaction. `inbound` (the channel's InboundMessage) adds the header checks. A missing or
    unfillable template is recorded in the audit log (`receipt_failed`) and never fails the
    ingest: losing the customer's message over a receipt would be the worse outcome.
    """
    from agentdesk.domain import replies, templates

    decision = decide(
        session,
        conversation=conversation,
        message=message,
        settings=settings,
        policies=policies,
        now=now,
        inbound=inbound,
        first_message=first_message,
    )
    if not decision.send:
        return None
    customer = session.get(Customer, conversation.customer_id)
    try:
        template = templates.load(settings.templates_dir, decision.template)
        filled = values(conversation, customer, policies=policies, settings=settings, now=now)
        suggested = _articles(session, template, message, settings=settings, now=now)
        filled["articles"] = knowledge_base.as_list(suggested)
        rendered = templates.render(template, filled, optional=frozenset({"articles"}))
        if rendered.undefined:
            missing = ", ".join(rendered.undefined)
            raise AgentdeskError(
                f"template {template.name!r} needs {missing}, which agentdesk cannot fill for "
                f"{ref_of(id_of(conversation))}"
                + (" (no reply target is running, so no time is promised)" if "due" in rendered.undefined else "")
            )
        with session.begin_nested():
            receipt = replies.reply(
                session,
                conversation=conversation,
                body=rendered.text,
                agent=audit.SYSTEM,
                agent_name=AUTHOR,
                now=now,
                policies=policies,
                kind="receipt",
                message_id_domain=settings.message_id_domain(conversation.source),
            )
            if suggested and "articles" in template.body:
                knowledge_base.record_sent(session, message=receipt, now=now)
            return receipt
    except AgentdeskError as error:
        audit.record(
            session,
            agent=audit.SYSTEM,
            action="receipt_failed",
            now=now,
            conversation_id=conversation.id,
            message_id=message.id,
            template=decision.template,
            reason=str(error),
        )
        return None
