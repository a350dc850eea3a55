"""The reads front ends need, as keyword-only functions taking a Session.

The queue is never loaded whole: `queue_window` returns one window of rows in the view's order,
continuing after a keyset cursor (the last row's sort key) or from an offset, and `queue_count`
gives the view's size for scroll bars and tab labels. Each view's order is served by an index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, and_, func, or_, text, tuple_
from sqlmodel import Session, col, select

from agentdesk.errors import InvalidInput, NotFound
from agentdesk.store import search
from agentdesk.store.models import (
    ref_of,
    Conversation,
    ConversationTag,
    Customer,
    Event,
    Identity,
    Message,
    Outbox,
)

OPEN_STATUSES = ("new", "open")
WAITING_STATUSES = ("pending", "on_hold")
DONE_STATUSES = ("solved", "closed")


@dataclass(frozen=True)
class View:
    name: str
    label: str
    description: str


VIEWS: dict[str, View] = {
    view.name: view
    for view in (
        View("mine", "Mine", "assigned to me and not solved"),
        View("unassigned", "Unassigned", "new or open, nobody assigned"),
        View("open", "All open", "new or open, not snoozed"),
        View("breaching", "Breaching soon", "open, an SLA target in warning or breached"),
        View("pending", "Pending/on hold", "waiting on the customer or a third party"),
        View("snoozed", "Snoozed", "hidden until their snooze ends"),
        View("solved", "Solved", "solved or closed, newest first"),
        View("all", "All", "every conversation"),
    )
}


def _view_filter(view: str, *, agent: str, now: datetime):
    c = Conversation
    awake = or_(col(c.snoozed_until).is_(None), col(c.snoozed_until) <= now)
    not_merged = col(c.merged_into_id).is_(None)
    if view == "mine":
        return and_(c.assignee == agent, col(c.status).not_in(DONE_STATUSES), awake, not_merged)
    if view == "unassigned":
        return and_(col(c.assignee).is_(None), col(c.status).in_(OPEN_STATUSES), awake, not_merged)
    if view == "open":
        return and_(col(c.status).in_(OPEN_STATUSES), awake, not_merged)
    if view == "breaching":
        return and_(col(c.status).in_(OPEN_STATUSES), awake, not_merged, col(c.warning_at) <= now)
    if view == "pending":
        return and_(col(c.status).in_(WAITING_STATUSES), not_merged)
    if view == "snoozed":
        return and_(col(c.snoozed_until) > now, col(c.status).not_in(DONE_STATUSES), not_merged)
    if view == "solved":
        return and_(col(c.status).in_(DONE_STATUSES), not_merged)
    if view == "all":
        return not_merged
    known = ", ".join(VIEWS)
    raise InvalidInput(f"unknown view {view!r}; expected one of: {known}")


def _order_columns(view: str):
    """The view's sort key, all ascending or all descending, ending in the unique id."""
    if view == "solved":
        return (col(Conversation.solved_at), col(Conversation.id)), True
    return (col(Conversation.queue_due), col(Conversation.queue_wait), col(Conversation.id)), False


def sort_key(view: str, conversation: Conversation) -> tuple:
    """The keyset cursor of a row: pass it as `after` to get the rows that follow it."""
    columns, _ = _order_columns(view)
    return tuple(getattr(conversation, column.key) for column in columns)


def _search_filter(session: Session, query: str):
    dialect = session.get_bind().dialect.name
    parameters = search.search_parameters(query, dialect)
    if dialect == "sqlite" and not parameters["q"]:
        return None
    matching = (
        text(search.matching_conversation_ids_sql(dialect))
        .bindparams(**parameters)
        .columns(conversation_id=Integer)
    )
    return col(Conversation.id).in_(matching)


def queue_window(
    *,
    session: Session,
    view: str = "open",
    agent: str,
    now: datetime,
    limit: int = 50,
    after: Sequence | None = None,
    offset: int = 0,
    query: str = "",
    extra_filter=None,
) -> list[Conversation]:
    """One window of a view, in the view's order, starting after `after` (a `sort_key`) or at `offset`."""
    if limit <= 0:
        raise InvalidInput(f"limit must be a positive number, got {limit}")
    statement = select(Conversation).where(_view_filter(view, agent=agent, now=now))
    if query:
        condition = _search_filter(session, query)
        if condition is None:
            return []
        statement = statement.where(condition)
    if extra_filter is not None:
        statement = statement.where(extra_filter)
    columns, descending = _order_columns(view)
    if after is not None:
        key = tuple_(*columns)
        statement = statement.where(key < tuple_(*after) if descending else key > tuple_(*after))
    statement = statement.order_by(*[c.desc() if descending else c for c in columns])
    return list(session.exec(statement.offset(offset).limit(limit)).all())


def queue_count(*, session: Session, view: str, agent: str, now: datetime, query: str = "") -> int:
    statement = select(func.count()).select_from(Conversation).where(_view_filter(view, agent=agent, now=now))
    if query:
        condition = _search_filter(session, query)
        if condition is None:
            return 0
        statement = statement.where(condition)
    return session.exec(statement).one()


def view_counts(*, session: Session, agent: str, now: datetime) -> dict[str, int]:
    return {name: queue_count(session=session, view=name, agent=agent, now=now) for name in VIEWS}


def parse_ref(ref: str) -> int:
    """`AD-1042`, `ad-1042` or `1042` -> 1042."""
    cleaned = ref.strip().upper().removeprefix("AD-")
    if not cleaned.isdigit():
        raise InvalidInput(f"{ref!r} is not a conversation reference; expected something like AD-1042")
    return int(cleaned)


def conversation_by_ref(*, session: Session, ref: str) -> Conversation:
    conversation = session.get(Conversation, parse_ref(ref))
    if conversation is None:
        raise NotFound(f"no conversation {ref}; `agentdesk list` shows the queue")
    return conversation


def thread(*, session: Session, conversation_id: int) -> list[Message]:
    """Every message, reply and note of a conversation, oldest first."""
    statement = (
        select(Message)
        .where(Message.conversation_id == conversation_id)
        .order_by(col(Message.at), col(Message.id))
    )
    return list(session.exec(statement).all())


def tags_of(*, session: Session, conversation_ids: Sequence[int]) -> dict[int, list[str]]:
    tags: dict[int, list[str]] = {cid: [] for cid in conversation_ids}
    if not conversation_ids:
        return tags
    rows = session.exec(
        select(ConversationTag)
        .where(col(ConversationTag.conversation_id).in_(conversation_ids))
        .order_by(col(ConversationTag.tag))
    )
    for row in rows:
        tags[row.conversation_id].append(row.tag)
    return tags


def customers_by_id(*, session: Session, customer_ids: Sequence[int]) -> dict[int, Customer]:
    if not customer_ids:
        return {}
    rows = session.exec(select(Customer).where(col(Customer.id).in_(set(customer_ids))))
    return {customer.id: customer for customer in rows}


def identities_of(*, session: Session, customer_ids: Sequence[int]) -> dict[int, list[Identity]]:
    found: dict[int, list[Identity]] = {cid: [] for cid in customer_ids}
    if not customer_ids:
        return found
    rows = session.exec(
        select(Identity).where(col(Identity.customer_id).in_(set(customer_ids))).order_by(col(Identity.id))
    )
    for identity in rows:
        found[identity.customer_id].append(identity)
    return found


def delivery_states(*, session: Session, message_ids: Sequence[int]) -> dict[int, Outbox]:
    if not message_ids:
        return {}
    rows = session.exec(select(Outbox).where(col(Outbox.message_id).in_(message_ids)))
    return {row.message_id: row for row in rows}


def customer_history(*, session: Session, customer_id: int, exclude_id: int | None = None) -> list[Conversation]:
    """Every conversation of the customer, on every channel, newest first."""
    statement = select(Conversation).where(Conversation.customer_id == customer_id)
    if exclude_id is not None:
        statement = statement.where(Conversation.id != exclude_id)
    statement = statement.order_by(col(Conversation.created_at).desc(), col(Conversation.id).desc())
    return list(session.exec(statement).all())


def customer_by_identity(*, session: Session, kind: str, address: str) -> Customer | None:
    statement = (
        select(Customer).join(Identity, col(Identity.customer_id) == col(Customer.id))
        .where(Identity.kind == kind, Identity.address == address)
    )
    return session.exec(statement).first()


def events(
    *, session: Session, since: datetime | None = None, conversation_id: int | None = None,
    after_id: int = 0, limit: int = 1000,
) -> list[Event]:
    """Audit events in order, paged by id so an export of millions never loads them all."""
    statement = select(Event).where(col(Event.id) > after_id)
    if since is not None:
        statement = statement.where(col(Event.at) >= since)
    if conversation_id is not None:
        statement = statement.where(Event.conversation_id == conversation_id)
    return list(session.exec(statement.order_by(col(Event.id)).limit(limit)).all())


def conversations_since(
    *, session: Session, since: datetime | None = None, after_id: int = 0, limit: int = 500
) -> list[Conversation]:
    """Conversations updated since `since`, in id order, one page at a time (for export)."""
    statement = select(Conversation).where(col(Conversation.id) > after_id)
    if since is not None:
        statement = statement.where(col(Conversation.updated_at) >= since)
    return list(session.exec(statement.order_by(col(Conversation.id)).limit(limit)).all())
