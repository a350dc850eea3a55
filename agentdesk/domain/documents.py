"""Conversations as the JSON documents of the CLI contract (`show --json`, `list --json`, export).

The field names here are a public interface (DESIGN.md, "CLI contract"): extend, never rename.
Documents for a whole window are built with one query per related table, not one per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from agentdesk.domain import clocks, csat, sla
from agentdesk.store import csat as csat_store
from agentdesk.store import outbox as outbox_store
from agentdesk.store import queries
from agentdesk.store.models import Attachment, Conversation, DeliveryAttempt, Message, id_of, ref_of


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _seconds(value: timedelta | None) -> int | None:
    return int(value.total_seconds()) if value is not None else None


def sla_document(
    conversation: Conversation, policies: clocks.Policies, *, now: datetime, events=None
) -> dict[str, Any]:
    """The SLA part of a document. With the conversation's clock `events` (show, export) paused
    targets also tell the time they have left; without (list) it reads the stored due times."""
    policy = policies.by_name(conversation.sla_policy) if conversation.sla_policy else None
    states = clocks.evaluate(conversation, policy, now=now, events=events)
    return {
        "policy": conversation.sla_policy or None,
        "first_response_due": iso(conversation.first_response_due),
        "next_response_due": iso(conversation.next_response_due),
        "periodic_update_due": iso(conversation.periodic_update_due),
        "resolution_due": iso(conversation.resolution_due),
        "state": sla.overall_state(states),
        "targets": [
            {
                "target": state.target,
                "state": state.state,
                "due": iso(state.due),
                "remaining_seconds": _seconds(state.remaining),
                "breached_by_seconds": _seconds(state.overdue),
                "length_seconds": _seconds(state.length),
                "paused_reason": state.reason or None,
                "fulfilled_at": iso(state.fulfilled_at),
            }
            for state in states
        ],
    }


def documents(
    session: Session,
    conversations: Sequence[Conversation],
    *,
    policies: clocks.Policies,
    now: datetime,
    full: bool = False,
) -> list[dict[str, Any]]:
    """One document per conversation; `full` adds `messages` and `history` (show, export)."""
    ids = [id_of(c) for c in conversations]
    customer_ids = [c.customer_id for c in conversations]
    tags = queries.tags_of(session=session, conversation_ids=ids)
    customers = queries.customers_by_id(session=session, customer_ids=customer_ids)
    identities = queries.identities_of(session=session, customer_ids=customer_ids)
    clock_events = clocks.load_events(session, ids) if full else {}
    surveys = csat_store.surveys_of(session=session, conversation_ids=ids)
    result = []
    for conversation_id, conversation in zip(ids, conversations):
        customer = customers.get(conversation.customer_id)
        hold = sla.hold_time(conversation.waiting_since, now)
        document: dict[str, Any] = {
            "ref": ref_of(conversation_id),
            "subject": conversation.subject,
            "status": conversation.status,
            "priority": conversation.priority,
            "assignee": conversation.assignee,
            "channel": conversation.channel,
            "source": conversation.source,
            "tags": tags.get(conversation_id, []),
            "view": conversation.aside or None,  # spam | bulk | system when set aside, else null
            "bounced_at": iso(conversation.bounced_at),
            "customer": {
                "id": conversation.customer_id,
                "name": customer.name if customer else "",
                "organization": customer.organization if customer else "",
                "tier": customer.tier if customer else "",
                "identities": [
                    {"kind": identity.kind, "address": identity.address}
                    for identity in identities.get(conversation.customer_id, [])
                ],
            },
            "sla": sla_document(conversation, policies, now=now, events=clock_events.get(conversation_id)),
            "waiting_since": iso(conversation.waiting_since),
            "hold_seconds": _seconds(hold),
            "created_at": iso(conversation.created_at),
            "updated_at": iso(conversation.updated_at),
            "solved_at": iso(conversation.solved_at),
            "snoozed_until": iso(conversation.snoozed_until),
            "version": conversation.version,
            "csat": csat.document(surveys.get(conversation_id)),
        }
        if full:
            document["messages"] = _messages(session, conversation_id)
            document["history"] = [
                {
                    "ref": ref_of(id_of(past)),
                    "subject": past.subject,
                    "status": past.status,
                    "channel": past.channel,
                    "created_at": iso(past.created_at),
                }
                for past in queries.customer_history(
                    session=session, customer_id=conversation.customer_id, exclude_id=conversation.id
                )
            ]
        result.append(document)
    return result


def _messages(session: Session, conversation_id: int) -> list[dict[str, Any]]:
    messages = queries.thread(session=session, conversation_id=conversation_id)
    message_ids = [id_of(m) for m in messages]
    outbox = queries.delivery_states(session=session, message_ids=message_ids)
    attachments = queries.attachments_of(session=session, message_ids=message_ids)
    history = delivery_history(session, [id_of(row) for row in outbox.values()])
    documents = [
        message_document(
            m,
            outbox.get(m_id),
            attachments.get(m_id, []),
            history.get(id_of(outbox[m_id]), []) if m_id in outbox else None,
        )
        for m_id, m in zip(message_ids, messages)
    ]
    # `n`: numbered across the thread, as `attachment list` and `attachment save REF N` take it.
    for n, attachment in enumerate((a for document in documents for a in document["attachments"]), start=1):
        attachment["n"] = n
    return documents


def delivery_history(session: Session, outbox_ids: Sequence[int]) -> dict[int, list[DeliveryAttempt]]:
    """Every delivery attempt of these outbox rows, oldest first, by outbox id."""
    return outbox_store.delivery_attempts(session=session, outbox_ids=outbox_ids)


def delivery_state(outbox) -> str | None:
    """A message's `delivery`: its Outbox state, "bounced" for a failure a bounce reported."""
    if outbox is None:
        return None
    if outbox.state == "failed" and getattr(outbox, "bounce_message_id", None) is not None:
        return "bounced"
    return outbox.state


def message_document(
    message: Message, outbox, attachments: Sequence[Attachment] = (), history: Sequence[DeliveryAttempt] | None = None
) -> dict[str, Any]:
    return {
        "direction": message.direction,
        "kind": message.kind,
        "bulk": message.bulk,
        "author": message.author,
        "author_login": message.author_login,
        "sender_address": message.sender_address,
        "at": iso(message.at),
        "subject": message.subject,
        "body_text": message.body_text,
        "external_id": message.external_id,
        "delivery": delivery_state(outbox),
        "delivery_error": (outbox.last_error or None) if outbox is not None else None,
        "delivery_attempts": outbox.attempts if outbox is not None else None,
        # When the state or error above was recorded (for possibly_sent: when the answer never came).
        "delivery_at": iso(outbox.updated_at) if outbox is not None and outbox.updated_at else None,
        # False while the sync found no sender for it on its host (`delivery_error` says which).
        "deliverable": (outbox.no_sender_at is None) if outbox is not None else None,
        "delivery_history": [
            {
                "started_at": iso(a.started_at),
                "at": iso(a.finished_at) if a.finished_at else None,
                "outcome": a.outcome,
                "reason": a.reason or None,
            }
            for a in history or ()
        ]
        if outbox is not None
        else None,
        # Who an outbound message was addressed to when it was queued (Bcc included: this is the
        # desk's record, never a header); null for others and for replies queued before revision 9.
        "recipients": {
            "to": outbox.to_addresses.split(),
            "cc": outbox.cc_addresses.split(),
            "bcc": outbox.bcc_addresses.split(),
        }
        if outbox is not None and getattr(outbox, "to_addresses", None)
        else None,
        "thread_reason": message.thread_reason or None,
        "parse_error": message.parse_error or None,
        "attachments": [
            {
                "filename": a.filename,
                "name": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.storage_key or None,
                "state": a.state,
                "reason": a.reason or None,
            }
            for a in attachments
        ],
    }
