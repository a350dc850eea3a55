"""The questions ingest asks the database, for a whole chunk of inbound messages at once.

Keyword-only functions taking a Session, like store/queries.py. The bulk ones answer for many
values with a few `IN (…)` queries and return plain tuples, not ORM objects: a chunk asks about
thousands of Message-IDs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from sqlmodel import Session, col, select

from agentdesk.store.models import Conversation, Customer, Identity, Message

IN_CHUNK = 400  # values per IN (…): far below every backend's limit on bound parameters


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
    found: list[MessageKey] = []
    for part in _parts(sorted(set(filter(None, external_ids)))):
        found.extend(MessageKey(*row) for row in session.exec(
            select(Message.id, Message.conversation_id, Message.external_id, Message.content_hash,
                   Message.direction, Message.thread_reason)
            .where(col(Message.external_id).in_(part))
        ))
    found.sort(key=lambda key: key.id)
    return found


def latest_by_thread_key(*, session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], MessageKey]:
    """For each (source, provider thread key): the latest stored message of that thread."""
    wanted: dict[str, set[str]] = {}
    for source, key in keys:
        wanted.setdefault(source, set()).add(key)
    found: dict[tuple[str, str], MessageKey] = {}
    for source, source_keys in wanted.items():
        for part in _parts(sorted(source_keys)):
            rows = session.exec(
                select(Message.id, Message.conversation_id, Message.thread_key, Message.thread_reason)
                .where(Message.source == source, col(Message.thread_key).in_(part))
            )
            for message_id, conversation_id, key, reason in rows:
                current = found.get((source, key))
                if current is None or current.id < message_id:
                    found[(source, key)] = MessageKey(message_id, conversation_id, None, None, "inbound", reason)
    return found


def conversations_by_id(*, session: Session, conversation_ids: Iterable[int]) -> dict[int, Conversation]:
    found: dict[int, Conversation] = {}
    for part in _parts(sorted(set(conversation_ids))):
        for conversation in session.exec(select(Conversation).where(col(Conversation.id).in_(part))):
            found[conversation.id] = conversation
    return found


def customers_by_address(*, session: Session, kind: str, addresses: Iterable[str]) \
        -> dict[str, tuple[int, str, str]]:
    """address -> (customer id, name, tier) of the customers owning these identities of `kind`."""
    found: dict[str, tuple[int, str, str]] = {}
    for part in _parts(sorted(set(addresses))):
        rows = session.exec(
            select(Identity.address, Customer.id, Customer.name, Customer.tier)
            .join(Customer, col(Identity.customer_id) == col(Customer.id))
            .where(Identity.kind == kind, col(Identity.address).in_(part))
        )
        for address, customer_id, name, tier in rows:
            found[address] = (customer_id, name, tier)
    return found


def has_message_from(*, session: Session, conversation_id: int, sender_address: str) -> bool:
    statement = select(Message.id).where(
        Message.conversation_id == conversation_id, Message.sender_address == sender_address)
    return session.exec(statement.limit(1)).first() is not None


def has_messages(*, session: Session, conversation_id: int) -> bool:
    statement = select(Message.id).where(Message.conversation_id == conversation_id)
    return session.exec(statement.limit(1)).first() is not None


def _parts(values: list) -> Iterator[list]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start:start + IN_CHUNK]
