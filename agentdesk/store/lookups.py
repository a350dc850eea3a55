"""The questions ingest asks the database, for a whole chunk of inbound messages at once.

Keyword-only functions taking a Session, like store/queries.py. The bulk ones answer for many
values with one query each (the values bound as one parameter: `bound_lists.one_of`) and return
plain tuples, not ORM objects: a chunk asks about thousands of Message-IDs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from sqlalchemy import literal
from sqlmodel import Session, col, select

from agentdesk.store.bound_lists import one_of
from agentdesk.store.models import Conversation, Customer, Identity, Message, Outbox, id_of


class MessageKey(NamedTuple):
    """What threading and dedupe need of a stored message."""

    id: int
    conversation_id: int
    external_id: str | None
    content_hash: str | None
    direction: str
    thread_reason: str


def messages_by_external_id(*, session: Session, external_ids: Iterable[str]) -> list[MessageKey]:
    """Every stored message with one of these external ids (Message-IDs), by id."""
    wanted = sorted(set(filter(None, external_ids)))
    if not wanted:
        return []
    found = [
        MessageKey(*row)
        for row in session.exec(
            select(  # type: ignore[call-overload]  # sqlmodel's select is typed up to four columns
                Message.id,
                Message.conversation_id,
                Message.external_id,
                Message.content_hash,
                Message.direction,
                Message.thread_reason,
            ).where(one_of(session, Message.external_id, wanted))
        )
    ]
    found.sort(key=lambda key: key.id)
    return found


def latest_by_thread_key(*, session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], MessageKey]:
    """For each (source, provider thread key): the latest stored message of that thread."""
    wanted: dict[str, set[str]] = {}
    for source, key in keys:
        wanted.setdefault(source, set()).add(key)
    found: dict[tuple[str, str], MessageKey] = {}
    for source, source_keys in wanted.items():
        rows = session.exec(
            select(Message.id, Message.conversation_id, Message.thread_key, Message.thread_reason).where(
                Message.source == source, one_of(session, Message.thread_key, sorted(source_keys))
            )
        )
        for message_id, conversation_id, thread_key, reason in rows:
            assert message_id is not None and thread_key is not None  # a stored row; the key was matched
            current = found.get((source, thread_key))
            if current is None or current.id < message_id:
                found[(source, thread_key)] = MessageKey(message_id, conversation_id, None, None, "inbound", reason)
    return found


def conversations_by_id(*, session: Session, conversation_ids: Iterable[int]) -> dict[int, Conversation]:
    """The conversations with these ids, as ORM objects (a customer merge moves them). Ingest reads
    the conversations it changes as locked plain rows instead: `conversation_rows.by_id`."""
    found: dict[int, Conversation] = {}
    wanted = sorted(set(conversation_ids))
    if not wanted:
        return found
    statement = select(Conversation).where(one_of(session, Conversation.id, wanted)).order_by(col(Conversation.id))
    for conversation in session.exec(statement):
        found[id_of(conversation)] = conversation
    return found


def customers_by_address(*, session: Session, kind: str, addresses: Iterable[str]) -> dict[str, tuple[int, str, str]]:
    """address -> (customer id, name, tier) of the customers owning these identities of `kind`."""
    found: dict[str, tuple[int, str, str]] = {}
    wanted = sorted(set(addresses))
    if not wanted:
        return found
    rows = session.exec(
        select(Identity.address, Customer.id, Customer.name, Customer.tier)
        .join(Customer, col(Identity.customer_id) == col(Customer.id))
        .where(Identity.kind == kind, one_of(session, Identity.address, wanted))
    )
    for address, customer_id, name, tier in rows:
        assert customer_id is not None  # joined on it
        found[address] = (customer_id, name, tier)
    return found


def customer_tiers(*, session: Session, customer_ids: Iterable[int]) -> dict[int, str]:
    """customer id -> tier: plain columns, not ORM objects (ingest asks for the owner of every
    conversation a chunk touches)."""
    found: dict[int, str] = {}
    wanted = sorted(set(customer_ids))
    if not wanted:
        return found
    for customer_id, tier in session.exec(
        select(Customer.id, Customer.tier).where(one_of(session, Customer.id, wanted))
    ):
        assert customer_id is not None  # a stored row
        found[customer_id] = tier
    return found


def has_message_from(*, session: Session, conversation_id: int, sender_address: str) -> bool:
    """Whether `sender_address` wrote in the conversation, or was sent one of our messages in it
    (a forward's recipient, a Cc we added): either makes them a participant."""
    escaped = sender_address.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    padded = literal(" ") + col(Message.recipients) + literal(" ")
    statement = select(Message.id).where(
        Message.conversation_id == conversation_id,
        (col(Message.sender_address) == sender_address)
        | ((col(Message.direction) == "outbound") & padded.like(f"% {escaped} %", escape="\\")),
    )
    return session.exec(statement.limit(1)).first() is not None


def started_awaiting_answer(*, session: Session, customer_id: int, source: str) -> int | None:
    """The latest conversation the team started with this customer through this source that they
    have not answered yet (pending, no customer message), or None."""
    statement = (
        select(Conversation.id)
        .where(
            Conversation.customer_id == customer_id,
            Conversation.source == source,
            Conversation.status == "pending",
            col(Conversation.last_customer_message_at).is_(None),
            col(Conversation.merged_into_id).is_(None),
            col(Conversation.first_responded_at).is_not(None),
        )
        .order_by(col(Conversation.id).desc())
    )
    return session.exec(statement.limit(1)).first()


def has_messages(*, session: Session, conversation_id: int) -> bool:
    statement = select(Message.id).where(Message.conversation_id == conversation_id)
    return session.exec(statement.limit(1)).first() is not None


def identity_by_address(*, session: Session, address: str) -> Identity | None:
    """The first identity with this address, of any kind."""
    return session.exec(select(Identity).where(Identity.address == address)).first()


# --- machine mail: bounces' replies, the system customer, the block list ----------------------------


def latest_outbound(*, session: Session, conversation_id: int, addresses: Sequence[str] = ()) -> tuple[int, int] | None:
    """(message id, conversation id) of the latest message we sent in a conversation (one with an
    Outbox row), or None. With `addresses` (a bounce's failed recipients), only when the
    conversation's customer has one of them, or no address is known at all."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        return None
    while conversation.merged_into_id is not None:
        into = session.get(Conversation, conversation.merged_into_id)
        assert into is not None, "merged_into_id is a foreign key"
        conversation = into
    if addresses:
        owned = session.exec(
            select(Identity.id)
            .where(Identity.customer_id == conversation.customer_id, col(Identity.address).in_(list(addresses)))
            .limit(1)
        ).first()
        if owned is None:
            return None
    found = session.exec(
        select(Message.id)
        .join(Outbox, col(Outbox.message_id) == col(Message.id))
        .where(Message.conversation_id == conversation.id, Message.direction == "outbound")
        .order_by(col(Message.at).desc(), col(Message.id).desc())
        .limit(1)
    ).first()
    return (found, id_of(conversation)) if found is not None else None


def latest_outbound_to(*, session: Session, address: str) -> tuple[int, int] | None:
    """(message id, conversation id) of the latest message we sent to the customer owning this
    email address, or None."""
    found = session.exec(
        select(Message.id, Message.conversation_id)
        .join(Outbox, col(Outbox.message_id) == col(Message.id))
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .join(Identity, col(Identity.customer_id) == col(Conversation.customer_id))
        .where(Identity.kind == "email", Identity.address == address, Message.direction == "outbound")
        .order_by(col(Message.at).desc(), col(Message.id).desc())
        .limit(1)
    ).first()
    if found is None:
        return None
    message_id, conversation_id = found
    assert message_id is not None  # a stored row
    return message_id, conversation_id


# The desk's own customer for machine mail that matched nothing: one row, no identity, so no
# mailer-daemon ever becomes a customer.
SYSTEM_CUSTOMER_TIER = "system"
SYSTEM_CUSTOMER_NAME = "Mail system"


def system_customer(*, session: Session) -> Customer:
    """The mail-system customer, created on first use."""
    found = session.exec(
        select(Customer).where(Customer.tier == SYSTEM_CUSTOMER_TIER, Customer.name == SYSTEM_CUSTOMER_NAME).limit(1)
    ).first()
    if found is None:
        found = Customer(name=SYSTEM_CUSTOMER_NAME, tier=SYSTEM_CUSTOMER_TIER)
        session.add(found)
        session.flush()
    return found


def blocked_patterns(*, session: Session, patterns: Sequence[str] | set[str]) -> set[str]:
    """Which of these patterns (addresses, "@domain"s) are blocked: one query."""
    from agentdesk.store.models import BlockedSender

    wanted = sorted(set(patterns))
    if not wanted:
        return set()
    return set(session.exec(select(BlockedSender.pattern).where(one_of(session, BlockedSender.pattern, wanted))))
