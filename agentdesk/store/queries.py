"""The reads front ends need, as keyword-only functions taking a Session.

The queue is never loaded whole: `queue_window` returns one window of rows in the view's order,
continuing after a keyset cursor (the last row's sort key) or from an offset, and `queue_count`
gives the view's size for scroll bars and tab labels. Each view's order is served by an index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Integer, String, and_, bindparam, func, or_, text, tuple_
from sqlmodel import Session, col, select

from agentdesk.errors import InvalidInput, NotFound
from agentdesk.store import search
from agentdesk.store.bound_lists import one_of

# Re-exported (the `as` names): callers name the store's statuses, row columns, refs and the first
# window's read from here; they are defined without SQLAlchemy, for the TUI's first frame.
from agentdesk.store.first_window import DONE_STATUSES as DONE_STATUSES
from agentdesk.store.first_window import IN_QUEUE, STATUSES_OF_VIEW, sorts_descending, view_sql
from agentdesk.store.first_window import OPEN_STATUSES as OPEN_STATUSES
from agentdesk.store.first_window import ROW_COLUMNS as ROW_COLUMNS
from agentdesk.store.first_window import WAITING_STATUSES as WAITING_STATUSES
from agentdesk.store.first_window import first_window_sqlite as first_window_sqlite
from agentdesk.store.first_window import sort_columns as sort_columns
from agentdesk.store.models import (
    Conversation,
    ConversationTag,
    Customer,
    Draft,
    Event,
    Identity,
    Message,
    Outbox,
    id_of,
)
from agentdesk.store.models import ref_of as ref_of
from agentdesk.store.views import VIEWS


def _view_filter(view: str, *, agent: str, now: datetime, ordered: bool = False, dialect: str = "sqlite"):
    """The WHERE clause of a view (`ordered`: for windows read in the view's order; `dialect`: see
    `first_window.view_sql`)."""
    sql = view_sql(view, ordered=ordered, dialect=dialect)
    binds = [bindparam("agent", agent, type_=String)] if ":agent" in sql else []
    if ":now" in sql:
        binds.append(bindparam("now", now, type_=Conversation.__table__.c.snoozed_until.type))  # type: ignore[attr-defined]  # set by SQLModel
    return text(sql).bindparams(*binds)


def _order_columns(view: str):
    """The view's sort key as columns (`first_window.sort_columns`), and whether it descends."""
    return tuple(col(getattr(Conversation, name)) for name in sort_columns(view)), sorts_descending(view)


def sort_key(view: str, conversation: Conversation) -> tuple:
    """The keyset cursor of a row: pass it as `after` to get the rows that follow it."""
    return tuple(getattr(conversation, name) for name in sort_columns(view))


def _search_filter(session: Session, query: str, matches: Sequence[int] | None = None, *, ordered: bool = False):
    """The full-text condition: `query` as a subquery, or `matches` (its resolved ids) when given.

    None when the search can match nothing."""
    dialect = session.get_bind().dialect.name
    if matches is not None:
        return _among(matches, dialect, ordered=ordered)
    parameters = search.search_parameters(query, dialect)
    if not parameters["q"]:
        return None
    matching = (
        text(search.matching_conversation_ids_sql(dialect, parameters["q"]))
        .bindparams(**parameters)
        .columns(conversation_id=Integer)
    )
    return col(Conversation.id).in_(matching)


# Above this many matches a window walks the view's order index and tests each row against the
# matches (it stops after one window); below it, it reads the few matching rows and sorts them.
_WALK_MATCHES = 2000


def _among(ids: Sequence[int], dialect: str, *, ordered: bool):
    """`conversation.id` is one of `ids`, as one bound value (a JSON array or a PostgreSQL array),
    so a search matching 100 000 conversations never turns into 100 000 bound parameters."""
    if not ids:
        return None
    if dialect == "postgresql":
        from sqlalchemy import String, any_, bindparam, cast
        from sqlalchemy.dialects.postgresql import ARRAY

        # The array written into the statement as one constant when it runs (the statement's cached
        # form is the same for every search): bound as a list, psycopg dumps it item by item in Python
        # (a regular expression each: ~10 ms for 20 000 ids, paid by every window and count), and bound
        # as text, the server casts it again for every row it tests.
        array = "{" + ",".join(map(str, ids)) + "}"
        literal = bindparam(None, array, type_=String, literal_execute=True)
        return col(Conversation.id) == any_(cast(literal, ARRAY(Integer)))
    import json

    values = select(func.json_each(json.dumps(list(ids))).table_valued("value").c.value)
    # `id + 0` hides the id from the planner, which then walks the order index instead of reading
    # every match and sorting them (the `status || ''` trick of `_view_filter`).
    column = col(Conversation.id) + 0 if ordered and len(ids) > _WALK_MATCHES else col(Conversation.id)
    return column.in_(values)


def matching_conversation_ids(*, session: Session, query: str) -> list[int]:
    """The ids of the conversations whose messages or customer match the full-text `query`.

    Resolved once per search and passed as `matches` to the queue reads, so a window, the count and
    every later window don't each repeat the full-text match and its join to messages."""
    dialect = session.get_bind().dialect.name
    parameters = search.search_parameters(query, dialect)
    if not parameters["q"]:
        return []
    # One row holding every id: fetching 20 000 rows one by one costs more than matching them.
    aggregate = ("json_group_array(conversation_id)" if dialect == "sqlite"
                 else "coalesce(array_agg(conversation_id), '{}')")
    matching = search.matching_conversation_ids_sql(dialect, parameters["q"])
    statement = text(f"SELECT {aggregate} FROM ({matching}) AS matching"
                     ).bindparams(**parameters)
    found = session.connection().execute(statement).scalar_one()
    if dialect == "sqlite":
        import json

        found = json.loads(found)
    return sorted(found)


def queue_statement(
    *, session: Session, view: str, agent: str, now: datetime, query: str = "", after: Sequence | None = None,
    extra_filter=None, reverse: bool = False, matches: Sequence[int] | None = None, columns: Sequence | None = None,
):
    """The ordered SELECT of a view (without limit); None when the search can match nothing.

    `reverse`: in the opposite order, so the end of a big view is an index walk from its far end
    instead of a large OFFSET (`G` on 100 000 rows). `matches`: the ids `matching_conversation_ids`
    resolved for `query`, used instead of matching it again. `columns`: select these (`row_columns`)
    instead of whole conversations."""
    if columns is None:
        statement = select(Conversation)
    else:
        statement = select(*columns).select_from(Conversation).outerjoin(Customer, Customer.id == Conversation.customer_id)
    dialect = session.get_bind().dialect.name
    statement = statement.where(_view_filter(view, agent=agent, now=now, ordered=True, dialect=dialect))
    if query or matches is not None:
        condition = _search_filter(session, query, matches, ordered=True)
        if condition is None:
            return None
        statement = statement.where(condition)
    if extra_filter is not None:
        statement = statement.where(extra_filter)
    columns, descending = _order_columns(view)
    if after is not None:
        key = tuple_(*columns)
        statement = statement.where(key < tuple_(*after) if descending else key > tuple_(*after))
    if reverse:
        descending = not descending
    return statement.order_by(*[c.desc() if descending else c for c in columns])


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
    from_end: int | None = None,
    matches: Sequence[int] | None = None,
) -> list[Conversation]:
    """One window of a view, in the view's order, starting after `after` (a `sort_key`) or at `offset`.

    `from_end`: instead, the `limit` rows that end `from_end` rows before the view's last row (read in
    reverse order, returned in the view's order)."""
    return _window(session=session, view=view, agent=agent, now=now, limit=limit, after=after, offset=offset,
                   query=query, extra_filter=extra_filter, from_end=from_end, matches=matches, columns=None)


def row_columns(agent: str) -> tuple:
    """ROW_COLUMNS as columns of one statement, so a window is read without loading conversations
    (`has_draft`: whether `agent` has a draft there)."""
    computed = {
        "customer": func.coalesce(Customer.name, "").label("customer"),
        "has_draft": select(Draft.conversation_id)
        .where(Draft.conversation_id == Conversation.id, Draft.agent == agent).exists().label("has_draft"),
        "bounced": col(Conversation.bounced_at).is_not(None).label("bounced"),
    }
    return tuple(computed[name] if name in computed else getattr(Conversation, name) for name in ROW_COLUMNS)


def queue_rows(
    *, session: Session, view: str = "open", agent: str, now: datetime, limit: int = 50, after: Sequence | None = None,
    offset: int = 0, query: str = "", extra_filter=None, from_end: int | None = None,
    matches: Sequence[int] | None = None,
) -> list:
    """`queue_window` as rows of `row_columns` (attributes named as ROW_COLUMNS): a few times
    cheaper than loading conversations, for lists that show only those."""
    return _window(session=session, view=view, agent=agent, now=now, limit=limit, after=after, offset=offset,
                   query=query, extra_filter=extra_filter, from_end=from_end, matches=matches,
                   columns=row_columns(agent))


def _window(*, session: Session, view: str, agent: str, now: datetime, limit: int, after: Sequence | None,
            offset: int, query: str, extra_filter, from_end: int | None, matches: Sequence[int] | None,
            columns: Sequence | None) -> list:
    if limit <= 0:
        raise InvalidInput(f"limit must be a positive number, got {limit}")
    statuses = STATUSES_OF_VIEW.get(view)
    if from_end is not None and statuses and from_end + limit <= _MERGE_FROM_END:
        return _window_from_end_by_status(session=session, view=view, agent=agent, now=now, limit=limit,
                                          from_end=from_end, statuses=statuses, query=query,
                                          extra_filter=extra_filter, matches=matches, columns=columns)
    statement = queue_statement(session=session, view=view, agent=agent, now=now, query=query,
                                after=None if from_end is not None else after, extra_filter=extra_filter,
                                reverse=from_end is not None, matches=matches, columns=columns)
    if statement is None:
        return []
    if from_end is not None:
        return list(reversed(session.exec(statement.offset(from_end).limit(limit)).all()))
    return list(session.exec(statement.offset(offset).limit(limit)).all())


# The views that hold a few statuses (`STATUSES_OF_VIEW`). Their last rows sit just before the solved
# ones in the order index (queue_due NEVER): read backwards there, `G` would first walk past every solved
# conversation.
_MERGE_FROM_END = 200  # beyond it, reading every status's rows up to there costs more than the walk


def _window_from_end_by_status(
    *, session: Session, view: str, agent: str, now: datetime, limit: int, from_end: int, statuses: Sequence[str],
    query: str, extra_filter, matches: Sequence[int] | None, columns: Sequence | None,
) -> list:
    """`queue_window(from_end=...)` of a few-status view: each status's last rows, read backwards
    from the (status, queue_due, queue_wait, id) index, merged in Python."""
    rows: list = []
    for status in statuses:
        statement = queue_statement(session=session, view=view, agent=agent, now=now, query=query,
                                    extra_filter=extra_filter, reverse=True, matches=matches, columns=columns)
        if statement is None:
            return []
        rows += session.exec(statement.where(Conversation.status == status).limit(from_end + limit)).all()
    _, descending = _order_columns(view)
    rows.sort(key=lambda conversation: sort_key(view, conversation), reverse=not descending)
    return list(reversed(rows[from_end:from_end + limit]))


def queue_count(*, session: Session, view: str, agent: str, now: datetime, query: str = "") -> int:
    return queue_size(session=session, view=view, agent=agent, now=now, query=query)


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
        .where(one_of(session, ConversationTag.conversation_id, conversation_ids))
        .order_by(col(ConversationTag.tag))
    )
    for row in rows:
        tags[row.conversation_id].append(row.tag)
    return tags


def _not_the_mail_system():
    """Every customer but the desk's own mail-system one (lookups.system_customer): the row that
    owns unmatched bounces is the desk's, not a customer an agent lists, finds or counts."""
    from agentdesk.store.lookups import SYSTEM_CUSTOMER_NAME, SYSTEM_CUSTOMER_TIER

    return ~and_(col(Customer.tier) == SYSTEM_CUSTOMER_TIER, col(Customer.name) == SYSTEM_CUSTOMER_NAME)


def agent_customers(*, session: Session, customer_ids: Sequence[int] | None = None, limit: int | None = None,
                    ) -> list[Customer]:
    """Customers by id (`customer_ids`, in that order; else the first `limit` by id), the
    mail-system customer left out."""
    statement = select(Customer).where(_not_the_mail_system())
    if customer_ids is None:
        return list(session.exec(statement.order_by(col(Customer.id)).limit(limit)))
    if not customer_ids:
        return []
    found = {c.id: c for c in session.exec(statement.where(col(Customer.id).in_(set(customer_ids))))}
    return [found[i] for i in customer_ids if i in found]


def customer_counts(*, session: Session) -> tuple[int, int]:
    """(customers, identities), the mail-system customer not counted (it has no identity)."""
    customers = session.exec(select(func.count()).select_from(Customer).where(_not_the_mail_system())).one()
    identities = session.exec(select(func.count()).select_from(Identity)).one()
    return customers, identities


def customers_by_id(*, session: Session, customer_ids: Sequence[int]) -> dict[int, Customer]:
    if not customer_ids:
        return {}
    rows = session.exec(select(Customer).where(col(Customer.id).in_(set(customer_ids))))
    return {id_of(customer): customer for customer in rows}


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


def blocked_senders(*, session: Session) -> list:
    from agentdesk.store.models import BlockedSender

    return list(session.exec(select(BlockedSender).order_by(col(BlockedSender.pattern))).all())


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


# --- reads for the agent workstation (TUI) -------------------------------------------------------


def queue_size(
    *, session: Session, view: str, agent: str, now: datetime, query: str = "", extra_filter=None,
    matches: Sequence[int] | None = None,
) -> int:
    """`queue_count` that also honours `extra_filter` (a search's field filters) and `matches`."""
    statement = select(func.count()).select_from(Conversation).where(_view_filter(view, agent=agent, now=now))
    if query or matches is not None:
        condition = _search_filter(session, query, matches)
        if condition is None:
            return 0
        statement = statement.where(condition)
    if extra_filter is not None:
        statement = statement.where(extra_filter)
    return session.exec(statement).one()


def queue_position(
    *, session: Session, view: str, agent: str, now: datetime, conversation_id: int, query: str = "",
    extra_filter=None, matches: Sequence[int] | None = None,
) -> int | None:
    """The row number of a conversation in a view (how many rows precede it), or None when it left the view."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        return None
    view_filter = _view_filter(view, agent=agent, now=now)
    member = select(func.count()).select_from(Conversation).where(view_filter, Conversation.id == conversation_id)
    if extra_filter is not None:
        member = member.where(extra_filter)
    searching = bool(query) or matches is not None
    if searching:
        condition = _search_filter(session, query, matches)
        if condition is None:
            return None
        member = member.where(condition)
    if not session.exec(member).one():
        return None
    columns, descending = _order_columns(view)
    key = tuple_(*columns)
    cursor = tuple_(*sort_key(view, conversation))
    before = select(func.count()).select_from(Conversation).where(view_filter)
    before = before.where(key > cursor if descending else key < cursor)
    if extra_filter is not None:
        before = before.where(extra_filter)
    if searching:
        before = before.where(condition)
    return session.exec(before).one()


def search_condition(*, search, agent: str, now: datetime, dialect: str = ""):
    """The SQL condition of a parsed search's field filters (`domain.search_query.SearchQuery`), or None.

    Values in one filter are alternatives (`tag:billing,refund`); separate filters must all hold;
    a `-` before a filter negates it. `dialect` "sqlite": `from:` compares with LIKE alone, which
    there already ignores case exactly as `lower()` does (ASCII only) at half the cost per row.
    """
    from datetime import timedelta

    from sqlalchemy import not_

    from agentdesk.store.models import NEVER

    c = Conversation
    conditions = []
    for item in search.filters:
        values = item.values
        if item.field == "from":
            alternatives = []
            folded = (lambda column: column) if dialect == "sqlite" else func.lower
            for value in values:
                like = f"%{value.lower()}%"
                alternatives.append(col(c.customer_id).in_(
                    select(Identity.customer_id).where(folded(col(Identity.address)).like(like))))
                alternatives.append(col(c.customer_id).in_(
                    select(Customer.id).where(folded(col(Customer.name)).like(like))))
            condition = or_(*alternatives)
        elif item.field == "status":
            condition = col(c.status).in_(values)
        elif item.field == "priority":
            condition = col(c.priority).in_(values)
        elif item.field == "channel":
            condition = col(c.channel).in_(values)
        elif item.field == "ref":
            condition = col(c.id).in_([int(value) for value in values])
        elif item.field == "tag":
            condition = col(c.id).in_(
                select(ConversationTag.conversation_id).where(col(ConversationTag.tag).in_(values)))
        elif item.field == "assignee":
            named = [agent if value == "me" else value for value in values if value != "none"]
            parts: list[ColumnElement[bool]] = [col(c.assignee).in_(named)] if named else []
            if "none" in values:
                parts.append(col(c.assignee).is_(None))
            condition = or_(*parts)
        elif item.field == "before":
            condition = col(c.created_at) < item.at
        elif item.field == "after":
            condition = col(c.created_at) >= item.at
        elif item.field == "waiting":
            threshold = now - (item.duration or timedelta(0))
            if item.op == "<":
                condition = and_(col(c.waiting_since).is_not(None), col(c.waiting_since) > threshold)
            else:
                condition = and_(col(c.waiting_since).is_not(None), col(c.waiting_since) <= threshold)
        elif item.field == "sla":
            parts = []
            for value in values:
                if value == "breached":
                    parts.append(col(c.queue_due) < now)
                elif value == "warning":
                    parts.append(and_(col(c.warning_at) <= now, col(c.queue_due) >= now))
                elif value == "ok":
                    parts.append(and_(col(c.queue_due) >= now, col(c.queue_due) < NEVER,
                                      or_(col(c.warning_at).is_(None), col(c.warning_at) > now)))
                elif value == "paused":
                    parts.append(col(c.status).in_(WAITING_STATUSES))
            condition = or_(*parts)
        else:
            raise InvalidInput(f"unknown search filter {item.field!r}")
        conditions.append(not_(condition) if item.negated else condition)
    return and_(*conditions) if conditions else None


def attachments_of(*, session: Session, message_ids: Sequence[int]) -> dict[int, list]:
    from agentdesk.store.models import Attachment

    found: dict[int, list] = {}
    if not message_ids:
        return found
    rows = session.exec(select(Attachment).where(col(Attachment.message_id).in_(message_ids)).order_by(col(Attachment.id)))
    for attachment in rows:
        found.setdefault(attachment.message_id, []).append(attachment)
    return found


def sla_clock_events(*, session: Session, conversation_id: int) -> list:
    from agentdesk.store.models import SlaClockEvent

    statement = (select(SlaClockEvent).where(SlaClockEvent.conversation_id == conversation_id)
                 .order_by(col(SlaClockEvent.at), col(SlaClockEvent.id)))
    return list(session.exec(statement).all())


@dataclass(frozen=True)
class CustomerSummary:
    conversations: int
    first_contact: datetime | None
    last_contact: datetime | None


def customer_summary(*, session: Session, customer_id: int) -> CustomerSummary:
    """Lifetime figures of a customer: conversations on every channel, first and last contact."""
    count, first, last = session.exec(
        select(func.count(), func.min(Conversation.created_at), func.max(Conversation.updated_at))
        .where(Conversation.customer_id == customer_id)
    ).one()
    # min/max keep their column's type, so these come back as aware UTC datetimes.
    return CustomerSummary(conversations=count, first_contact=first, last_contact=last)


@dataclass(frozen=True)
class AgentLoad:
    assigned_open: int  # assigned to the agent and not solved or closed
    waiting: int  # of those, how many have a customer waiting for an answer
    bounced: int = 0  # of those, how many have a reply that bounced (the masthead's counter)


def agent_load(*, session: Session, agent: str) -> AgentLoad:
    mine = and_(col(Conversation.assignee) == agent, col(Conversation.status).not_in(DONE_STATUSES),
                col(Conversation.merged_into_id).is_(None), text(IN_QUEUE))
    assigned, waiting, bounced = session.exec(
        select(func.count(),
               func.count().filter(and_(col(Conversation.waiting_since).is_not(None),
                                        col(Conversation.status).in_(OPEN_STATUSES))),
               func.count(col(Conversation.bounced_at)))
        .select_from(Conversation).where(mine)
    ).one()
    return AgentLoad(assigned_open=assigned, waiting=waiting, bounced=bounced)


def sync_states(*, session: Session) -> list:
    from agentdesk.store.models import SyncState

    return list(session.exec(select(SyncState).order_by(col(SyncState.source), col(SyncState.folder))).all())


def change_marker(*, connection) -> tuple:
    """Something that changes whenever another connection commits: polled for live refresh.

    On SQLite `PRAGMA data_version` on one long-lived connection (cheap, no table scan); elsewhere
    the newest conversation update and the message count.
    """
    if connection.dialect.name == "sqlite":
        return (connection.exec_driver_sql("PRAGMA data_version").scalar(),)
    # Three index lookups, not a join: each max() is its own scalar subquery.
    row = connection.execute(
        select(
            select(func.max(Conversation.updated_at)).scalar_subquery(),
            select(func.max(Message.id)).scalar_subquery(),
            select(func.max(Event.id)).scalar_subquery(),
        )
    ).one()
    return tuple(row)


def content_marker(*, connection) -> tuple:
    """What the screens show changed (not only a presence heartbeat): newest update, message,
    event, draft, sync and the outbox backlog. Each part is an index lookup."""
    from agentdesk.store.models import Draft, Outbox, SyncState

    row = connection.execute(
        select(  # type: ignore[call-overload]  # sqlmodel's select is typed up to four columns
            select(func.max(Conversation.updated_at)).scalar_subquery(),
            select(func.max(Message.id)).scalar_subquery(),
            select(func.max(Event.id)).scalar_subquery(),
            select(func.max(Draft.updated_at)).scalar_subquery(),
            select(func.count()).select_from(Draft).scalar_subquery(),
            select(func.max(SyncState.last_sync_at)).scalar_subquery(),
            select(func.count()).select_from(SyncState).where(SyncState.last_error != "").scalar_subquery(),
            select(func.count()).select_from(Outbox).where(col(Outbox.state).in_(("queued", "failed"))).scalar_subquery(),
        )
    ).one()
    return tuple(row)
