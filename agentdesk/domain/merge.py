"""Reversible customer merges: two customer records that are one person become one history.

Ingest joins a customer's channels by itself when an identity links them (a web form gave the
email and the phone). When nothing links them, an agent merges them: `merge_customers` moves the
merged customer's identities and conversations to the surviving customer and marks the merged one
with `merged_into_id`; everything it moved is listed in the audit event, which is what makes
`unmerge_customer` exact: it moves back those identities and conversations (and conversations
that arrived after the merge from one of the moved identities), and clears the mark. Both steps
are audit events (`customer_merge`, `customer_unmerge`) with the agent and time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from agentdesk.domain import audit, customers
from agentdesk.errors import Conflict, InvalidInput, NotFound
from agentdesk.store import customers as customer_store
from agentdesk.store import lookups, queries, threads
from agentdesk.store.models import Conversation, Customer, Event, id_of, ref_of

MERGE = "customer_merge"
UNMERGE = "customer_unmerge"
_PROFILE_FIELDS = ("name", "organization", "tier", "notes")


@dataclass(frozen=True)
class MergeOutcome:
    kept_id: int
    merged_id: int
    identities: tuple[int, ...]
    conversations: tuple[int, ...]
    event_id: int


def _live(session: Session, customer: Customer) -> Customer:
    """Follow merge marks to the customer that holds the history now."""
    seen = set()
    while customer.merged_into_id is not None and customer.id not in seen:
        seen.add(customer.id)
        into = session.get(Customer, customer.merged_into_id)
        assert into is not None, "merged_into_id is a foreign key"
        customer = into
    return customer


def merge_customers(
    session: Session, *, keep: Customer, merged: Customer, agent: str, now: datetime, conversation_id: int | None = None
) -> MergeOutcome:
    """Merge `merged` into `keep` in the caller's transaction; reversible with `unmerge_customer`."""
    keep, merged = _live(session, keep), _live(session, merged)
    if keep.id == merged.id:
        raise InvalidInput(f"both conversations already belong to customer {keep.id} ({keep.name}); nothing to merge")
    keep_id, merged_id = id_of(keep), id_of(merged)
    identity_ids = [id_of(i) for i in queries.identities_of(session=session, customer_ids=[merged_id])[merged_id]]
    conversation_ids = [id_of(c) for c in customer_store.customer_conversations(session=session, customer_id=merged_id)]
    for identity in customer_store.identities_by_id(session=session, identity_ids=identity_ids):
        identity.customer_id = keep_id
        session.add(identity)
    for conversation in lookups.conversations_by_id(session=session, conversation_ids=conversation_ids).values():
        conversation.customer_id = keep_id
        session.add(conversation)
    # A profile field the kept customer lacks is filled from the merged one (and emptied on undo).
    filled = {}
    for name in _PROFILE_FIELDS:
        if not getattr(keep, name) and getattr(merged, name) and not (name == "name" and merged.name == ""):
            filled[name] = getattr(merged, name)
            setattr(keep, name, getattr(merged, name))
    merged.merged_into_id = keep.id
    session.add_all([keep, merged])
    event = audit.record(
        session,
        agent=agent,
        action=MERGE,
        now=now,
        customer_id=merged.id,
        conversation_id=conversation_id,
        into=keep.id,
        merged=merged.id,
        identity_ids=identity_ids,
        conversation_ids=conversation_ids,
        refs=[ref_of(c) for c in conversation_ids],
        filled=filled,
    )
    session.flush()
    return MergeOutcome(keep_id, merged_id, tuple(identity_ids), tuple(conversation_ids), id_of(event))


def merge_by_refs(session: Session, *, ref_a: str, ref_b: str, agent: str, now: datetime) -> MergeOutcome:
    """`agentdesk customer merge REF_A REF_B`: REF_B's customer is merged into REF_A's."""
    conversation_a = queries.conversation_by_ref(session=session, ref=ref_a)
    conversation_b = queries.conversation_by_ref(session=session, ref=ref_b)
    keep = session.get(Customer, conversation_a.customer_id)
    merged = session.get(Customer, conversation_b.customer_id)
    assert keep is not None and merged is not None, "customer_id is a foreign key"
    return merge_customers(session, keep=keep, merged=merged, agent=agent, now=now, conversation_id=conversation_b.id)


def _merge_event(session: Session, merged_id: int) -> Event:
    event = customer_store.latest_customer_event(session=session, action=MERGE, customer_id=merged_id)
    if event is None:
        raise NotFound(f"customer {merged_id} was never merged; nothing to undo")
    return event


def unmerge_customer(
    session: Session, *, merged_id: int, agent: str, now: datetime, conversation_id: int | None = None
) -> MergeOutcome:
    """Undo the latest merge of customer `merged_id` in the caller's transaction."""
    merged = session.get(Customer, merged_id)
    if merged is None:
        raise NotFound(f"no customer {merged_id}")
    if merged.merged_into_id is None:
        raise InvalidInput(f"customer {merged_id} ({merged.name}) is not merged into anyone; nothing to undo")
    event = _merge_event(session, merged_id)
    detail = json.loads(event.detail)
    keep = session.get(Customer, detail["into"])
    assert keep is not None, "customers are never deleted"
    holder = _live(session, keep)  # keep itself, or whoever keep was merged into since
    holder_id = id_of(holder)
    moved_identities = []
    for identity in customer_store.identities_by_id(session=session, identity_ids=detail["identity_ids"]):
        if identity.customer_id == holder_id:
            identity.customer_id = merged_id
            session.add(identity)
            moved_identities.append(identity)
    conversation_ids = set(detail["conversation_ids"])
    # Conversations that started after the merge from one of the merged customer's identities are theirs too.
    addresses = {(identity.kind, identity.address) for identity in moved_identities}
    for conversation in customer_store.customer_conversations(
        session=session, customer_id=holder_id, created_since=event.at
    ):
        first = threads.first_inbound(session=session, conversation_id=id_of(conversation))
        if first is not None:
            kind = customers.IDENTITY_KIND.get(conversation.channel, conversation.channel)
            if (kind, first.sender_address) in addresses:
                conversation_ids.add(conversation.id)
    moved_conversations: list[int] = []
    for conversation in lookups.conversations_by_id(session=session, conversation_ids=conversation_ids).values():
        if conversation.customer_id == holder_id:
            conversation.customer_id = merged_id
            session.add(conversation)
            moved_conversations.append(id_of(conversation))
    for name, value in detail.get("filled", {}).items():
        if getattr(keep, name) == value:
            setattr(keep, name, "")
    merged.merged_into_id = None
    session.add_all([keep, merged])
    undo = audit.record(
        session,
        agent=agent,
        action=UNMERGE,
        now=now,
        customer_id=merged.id,
        conversation_id=conversation_id,
        undoes=event.id,
        out_of=holder.id,
        identity_ids=[i.id for i in moved_identities],
        conversation_ids=sorted(moved_conversations),
        refs=[ref_of(c) for c in sorted(moved_conversations)],
    )
    session.flush()
    return MergeOutcome(
        holder_id, merged_id, tuple(id_of(i) for i in moved_identities), tuple(sorted(moved_conversations)), id_of(undo)
    )


def unmerge_by_ref(session: Session, *, ref: str, agent: str, now: datetime) -> MergeOutcome:
    """`agentdesk customer unmerge REF`: undo the merge that brought REF's conversation to its customer."""
    conversation = queries.conversation_by_ref(session=session, ref=ref)
    candidates = customer_store.events_newest_first(session=session, action=MERGE)
    for event in candidates:
        detail = json.loads(event.detail)
        merged = session.get(Customer, detail["merged"])
        if merged is not None and merged.merged_into_id is not None and conversation.id in detail["conversation_ids"]:
            return unmerge_customer(
                session, merged_id=id_of(merged), agent=agent, now=now, conversation_id=conversation.id
            )
    raise NotFound(f"{ref_of(id_of(conversation))} did not come to its customer through a merge; nothing to undo")


def latest_merge_by(session: Session, *, agent: str, conversation: Conversation) -> Event | None:
    """`agent`'s latest customer merge that touched the conversation: one that merged its customer
    into another (its conversations moved) or another customer into its customer; None without."""
    for event in customer_store.events_newest_first(session=session, action=MERGE, agent=agent):
        detail = json.loads(event.detail)
        if detail.get("into") == conversation.customer_id or conversation.id in detail.get("conversation_ids", []):
            return event
    return None


def undo_merge(session: Session, *, event: Event, agent: str, now: datetime, conversation_id: int) -> MergeOutcome:
    """Undo the customer merge `event` (`agentdesk undo REF`, REF of either customer) in the
    caller's transaction; `Conflict` when anything happened to either customer since (another
    merge, an unmerge, an identity linked): look again instead of splitting what you have not seen."""
    detail = json.loads(event.detail)
    keep_id, merged_id = detail["into"], detail["merged"]
    merged = session.get(Customer, merged_id)
    assert merged is not None, "customers are never deleted"
    later = customer_store.customer_events_after(
        session=session, customer_ids=[keep_id, merged_id], after_id=id_of(event)
    )
    later += [
        e
        for e in customer_store.events_newest_first(session=session, action=(MERGE, UNMERGE), after_id=id_of(event))
        if json.loads(e.detail).get("into") in (keep_id, merged_id) or json.loads(e.detail).get("out_of") == keep_id
    ]
    if merged.merged_into_id is None and any(
        e.action == UNMERGE and json.loads(e.detail).get("undoes") == event.id for e in later
    ):
        raise InvalidInput(f"customer {merged_id} was separated from customer {keep_id} already; nothing to undo")
    if later:
        first = min(later, key=id_of)
        raise Conflict(
            f"customer {keep_id} or {merged_id} changed since your merge ({first.action.replace('_', ' ')} "
            f"by {first.agent}); not undone — look at them again (`agentdesk customer unmerge` still separates them)"
        )
    if merged.merged_into_id != keep_id:
        raise Conflict(f"customer {merged_id} is no longer merged into customer {keep_id}; not undone")
    return unmerge_customer(session, merged_id=merged_id, agent=agent, now=now, conversation_id=conversation_id)
