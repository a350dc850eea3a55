"""Customers: the card beside a thread, the customer document, search, merge and unmerge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentdesk.app.desk import Desk
from agentdesk.domain import csat
from agentdesk.errors import InvalidInput, NotFound
from agentdesk.store import queries
from agentdesk.store.models import Conversation, Customer, id_of, ref_of


@dataclass(frozen=True)
class HistoryItem:
    id: int
    ref: str
    subject: str
    status: str
    channel: str
    created_at: datetime


@dataclass(frozen=True)
class CustomerCard:
    id: int
    name: str
    organization: str
    tier: str
    notes: str
    identities: tuple[tuple[str, str], ...]
    conversations: int
    first_contact: datetime | None
    last_contact: datetime | None
    history: tuple[HistoryItem, ...]
    # Their answered satisfaction surveys, newest first: (ref, rating 1-5, comment, answered at).
    ratings: tuple[tuple[str, int, str, datetime | None], ...] = ()


HISTORY_ON_CARD = 200  # past conversations the card lists; its count says how many there are


def customer_card(session, conversation: Conversation) -> CustomerCard:
    """The customer of `conversation` with their other conversations (read in the caller's session)."""
    customer = session.get(Customer, conversation.customer_id)
    identities = queries.identities_of(session=session, customer_ids=[conversation.customer_id])
    summary = queries.customer_summary(session=session, customer_id=conversation.customer_id)
    history = queries.customer_history(
        session=session, customer_id=conversation.customer_id, exclude_id=conversation.id
    )
    return CustomerCard(
        id=conversation.customer_id,
        name=customer.name if customer else "",
        organization=customer.organization if customer else "",
        tier=customer.tier if customer else "",
        notes=customer.notes if customer else "",
        identities=tuple((i.kind, i.address) for i in identities.get(conversation.customer_id, [])),
        conversations=summary.conversations,
        first_contact=summary.first_contact,
        last_contact=summary.last_contact,
        history=tuple(
            HistoryItem(id_of(c), ref_of(id_of(c)), c.subject, c.status, c.channel, c.created_at)
            for c in history[:HISTORY_ON_CARD]
        ),
        ratings=tuple(
            (r["ref"], r["rating"], r["comment"], r["at"])
            for r in csat.customer_ratings(session, conversation.customer_id)
        ),
    )


def customer_id(text: str) -> int:
    """`C-42` or `42` -> 42."""
    cleaned = text.strip().upper().removeprefix("C-")
    if not cleaned.isdigit():
        raise InvalidInput(f"{text!r} is not a customer id; expected a number (see `agentdesk customer list`)")
    return int(cleaned)


def document(desk: Desk, text: str) -> dict[str, Any]:
    """The `customer show --json` document: identities and every conversation."""
    from agentdesk.domain import documents

    with desk.read() as session:
        customer = session.get(Customer, customer_id(text))
        if customer is None:
            raise NotFound(f"no customer {text}; `agentdesk customer list QUERY` finds one")
        found_id = id_of(customer)
        identities = queries.identities_of(session=session, customer_ids=[found_id])[found_id]
        history = queries.customer_history(session=session, customer_id=found_id)
        return {
            "id": customer.id,
            "name": customer.name,
            "organization": customer.organization,
            "tier": customer.tier,
            "notes": customer.notes,
            "identities": [{"kind": i.kind, "address": i.address} for i in identities],
            "conversations": [
                {
                    "ref": ref_of(id_of(c)),
                    "subject": c.subject,
                    "status": c.status,
                    "channel": c.channel,
                    "created_at": documents.iso(c.created_at),
                }
                for c in history
            ],
        }


def listing(desk: Desk, query: str | None, *, limit: int) -> list[dict[str, Any]]:
    """Customers matching a full-text search (or the first ones by id), with their identities;
    never the desk's mail-system customer."""
    from agentdesk.store import search

    with desk.read() as session:
        if query:
            # One more than asked: the mail-system customer may be among the hits and is dropped.
            ids = search.search_customer_ids(session.connection(), query, limit=limit + 1)
            customers = queries.agent_customers(session=session, customer_ids=ids)[:limit]
        else:
            customers = queries.agent_customers(session=session, limit=limit)
        identities = queries.identities_of(session=session, customer_ids=[id_of(c) for c in customers])
    return [
        {
            "id": c.id,
            "name": c.name,
            "organization": c.organization,
            "identities": [{"kind": i.kind, "address": i.address} for i in identities[id_of(c)]],
        }
        for c in customers
    ]


@dataclass(frozen=True)
class Merged:
    """What a merge or an unmerge moved, and its `--json` document."""

    kept_id: int
    merged_id: int
    identities: tuple
    conversations: tuple

    document: dict[str, Any]


def merge(desk: Desk, ref_a: str, ref_b: str) -> Merged:
    """Merge the customer of conversation `ref_b` into the customer of `ref_a` (reversible)."""
    from agentdesk.domain import merge as merging

    with desk.writing, desk.write() as session:
        outcome = merging.merge_by_refs(session, ref_a=ref_a, ref_b=ref_b, agent=desk.agent, now=desk.now())
        session.commit()
    return _merged(outcome)


def unmerge(desk: Desk, ref: str) -> Merged:
    """Undo the merge that brought conversation `ref` to its customer."""
    from agentdesk.domain import merge as merging

    with desk.writing, desk.write() as session:
        outcome = merging.unmerge_by_ref(session, ref=ref, agent=desk.agent, now=desk.now())
        session.commit()
    return _merged(outcome)


def _merged(outcome) -> Merged:
    document = {
        "customer": outcome.kept_id,
        "merged_customer": outcome.merged_id,
        "identities": list(outcome.identities),
        "conversations": [ref_of(c) for c in outcome.conversations],
        "event": outcome.event_id,
    }
    return Merged(outcome.kept_id, outcome.merged_id, tuple(outcome.identities), tuple(outcome.conversations), document)
