"""The TUI's one door to the store and the domain services: plain Python, no textual.

Screens and widgets never open sessions or build queries; they call a `Desk` method from a
worker thread and render what comes back (small frozen records). Every write goes through the
same domain services the CLI uses (`queue.change`, `queue.claim`, `replies.reply`,
`replies.add_note`, `drafts.save`), in one write transaction, and so lands in the audit log.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agentdesk import config
from agentdesk.domain import agents, clocks, drafts, presence, replies, search_query, templates
from agentdesk.domain import queue as queue_service
from agentdesk.store import db, migrations, queries
from agentdesk.store.models import Conversation, Customer, ref_of


def system_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Row:
    """One queue row: only what the list shows (never bodies)."""

    id: int
    ref: str
    customer: str
    subject: str
    channel: str
    status: str
    priority: str
    assignee: str | None
    waiting_since: datetime | None
    queue_due: datetime
    warning_at: datetime | None
    version: int
    sort_key: tuple
    has_draft: bool = False


@dataclass(frozen=True)
class Window:
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Filter:
    """What the queue pane shows: a built-in view, optionally narrowed by a search."""

    view: str = "open"
    query: str = ""  # the search text as typed (field filters included)
    label: str = ""

    @property
    def title(self) -> str:
        if self.label:
            return self.label
        return queries.VIEWS[self.view].label if self.view in queries.VIEWS else self.view


@dataclass(frozen=True)
class ThreadItem:
    """A message or an event of the thread timeline."""

    at: datetime
    kind: str  # inbound | outbound | note | event
    author: str = ""
    subject: str = ""
    body: str = ""
    delivery: str | None = None
    delivery_error: str = ""
    attachments: tuple[tuple[str, str, int], ...] = ()  # (filename, content type, size)
    message_kind: str = "message"


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


@dataclass(frozen=True)
class Thread:
    conversation: Conversation
    customer: CustomerCard
    tags: tuple[str, ...]
    items: tuple[ThreadItem, ...]
    sla: dict[str, Any]
    draft: Any = None  # store.models.Draft | None


@dataclass(frozen=True)
class Header:
    agent: str
    agent_name: str
    assigned_open: int
    waiting: int
    sources: tuple[tuple[str, datetime | None, str], ...]  # (name, last sync, error)


@dataclass
class Desk:
    settings: config.Settings
    agent: str = field(default_factory=config.current_agent)
    now: Callable[[], datetime] = system_now

    engine_given: Any = None  # an engine the caller already opened (the CLI opens it to report errors plainly)

    def __post_init__(self) -> None:
        # Opened on first use, not here: the first frame needs only the prefetched rows, and creating
        # an engine (and checking the schema) is Python work that would hold the GIL during it.
        self._engine = self.engine_given
        self._engine_lock = threading.Lock()
        self.policies = clocks.Policies.from_settings(self.settings)
        self._templates: list[templates.Template] | None = None
        self._lock = threading.Lock()
        self._prefetched: tuple[Filter, int, Any] | None = None
        # A search's full-text matches (search text -> conversation ids), resolved once and shared by
        # its windows, count and position until the queue reloads (`forget_matches`).
        self._matches: dict[str, list[int]] = {}
        self._resolving = threading.Lock()

    @property
    def engine(self):
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    self._engine = db.open_database(self.settings.database_url)
        return self._engine

    def prefetch(self, filter: Filter, *, limit: int) -> None:
        """Read the first rows now, before the UI starts, so the first frame can show them.

        On SQLite this is one plain read of ~3 ms (`_plain_first_window`), done here and now: in a
        thread it would take ~25 ms, because every return from a sqlite3 call waits for the GIL, which
        the UI thread, starting up, gives back only every switch interval (5 ms). Otherwise (PostgreSQL,
        or a database to create or upgrade first) a thread reads through the engine meanwhile."""
        from concurrent.futures import Future

        future: Future = Future()
        self._prefetched = (filter, limit, future)
        path = db.sqlite_path(self.settings.database_url)
        window = self._plain_first_window(path, filter, limit) if path is not None else None
        if window is not None:
            future.set_result(window)
            return

        def read() -> None:
            try:
                future.set_result(self.window(filter, offset=0, limit=limit))
            except Exception as error:  # the worker reads again and reports it
                future.set_exception(error)

        threading.Thread(target=read, name="agentdesk-prefetch", daemon=True).start()

    def _plain_first_window(self, path: Path, filter: Filter, limit: int) -> Window | None:
        """The first window through the sqlite3 module alone (`queries.first_window_sqlite`), when it can."""
        import sqlite3

        if filter.query:
            return None
        try:
            found = queries.first_window_sqlite(path, view=filter.view, agent=self.agent, now=self.now(), limit=limit,
                                                revision=migrations.HEAD)
        except sqlite3.Error:  # no database yet, or one this read does not understand: the engine's turn
            return None
        if found is None:
            return None
        return _window_of(filter.view, found)

    def prefetched_window(self, filter: Filter, *, limit: int, wait: float) -> Window | None:
        """The prefetched first rows if they are for this view and ready within `wait` seconds."""
        prefetched = self._prefetched
        if prefetched is None or prefetched[0] != filter or prefetched[1] != limit:
            return None
        try:
            window = prefetched[2].result(timeout=wait)
        except Exception:  # not ready in time, or failed: the worker reads (again) and reports
            return None
        self._prefetched = None
        return window

    def first_window(self, filter: Filter, *, limit: int) -> Window:
        """The prefetched first rows when they are for this view, else a fresh read."""
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[0] == filter and prefetched[1] == limit:
            try:
                return prefetched[2].result()
            except Exception:
                pass
        return self.window(filter, offset=0, limit=limit)

    # --- sessions ------------------------------------------------------------------------------

    def read(self):
        return db.read_session(self.engine)

    def write(self):
        session = db.write_session(self.engine)
        agents.ensure_agent(session, login=self.agent, name=self.agent_name,
                            signature=self.settings.agent_signature(self.agent), now=self.now())
        return session

    @property
    def agent_name(self) -> str:
        return self.settings.agent_name(self.agent)

    # --- the queue -----------------------------------------------------------------------------

    def _criteria(self, filter: Filter, now: datetime):
        parsed = search_query.parse(filter.query, now=now) if filter.query else search_query.SearchQuery()
        condition = queries.search_condition(search=parsed, agent=self.agent, now=now,
                                             dialect=self.engine.dialect.name)
        return parsed.text, condition

    def forget_matches(self) -> None:
        """Resolve searches afresh from now on (the queue reloads: something may have changed)."""
        self._matches = {}  # a resolution still running fills the dict it started with, not this one

    def _matching(self, session, text: str) -> list[int] | None:
        """The conversation ids the full text matches (None without full text), resolved once until forgotten."""
        if not text:
            return None
        matches = self._matches
        with self._resolving:  # a second window waits for the first resolution rather than repeating it
            found = matches.get(text)
            if found is None:
                found = matches[text] = queries.matching_conversation_ids(session=session, query=text)
        return found

    def validate_query(self, query: str) -> None:
        """Raise InvalidInput for a malformed search before the queue switches to it."""
        search_query.parse(query, now=self.now())

    def count(self, filter: Filter) -> int:
        now = self.now()
        text, condition = self._criteria(filter, now)
        with self.read() as session:
            return queries.queue_size(session=session, view=filter.view, agent=self.agent, now=now,
                                      extra_filter=condition, matches=self._matching(session, text))

    def view_counts(self) -> dict[str, int]:
        now = self.now()
        with self.read() as session:
            counts = {name: queries.queue_count(session=session, view=name, agent=self.agent, now=now)
                      for name in queries.VIEWS if name != "all"}
        for saved in self.settings.view:
            try:
                counts[f"saved:{saved.name}"] = self.count(Filter("all", saved.query, saved.name))
            except Exception:
                counts[f"saved:{saved.name}"] = 0
        return counts

    def window(self, filter: Filter, *, offset: int, limit: int, after: Sequence | None = None,
               from_end: int | None = None) -> Window:
        """Rows `offset`..`offset+limit` of the queue; `after` (the previous row's sort key) makes it a keyset
        read; `from_end` (rows between this window and the view's end) reads it backwards from the end."""
        now = self.now()
        text, condition = self._criteria(filter, now)
        with self.read() as session:
            rows = queries.queue_rows(
                session=session, view=filter.view, agent=self.agent, now=now, limit=limit,
                after=after, offset=0 if after is not None else offset, extra_filter=condition,
                from_end=from_end, matches=self._matching(session, text))
        return _window_of(filter.view, [row._mapping for row in rows])

    def position(self, filter: Filter, conversation_id: int) -> int | None:
        now = self.now()
        text, condition = self._criteria(filter, now)
        with self.read() as session:
            return queries.queue_position(session=session, view=filter.view, agent=self.agent, now=now,
                                          conversation_id=conversation_id, extra_filter=condition,
                                          matches=self._matching(session, text))

    def header(self) -> Header:
        with self.read() as session:
            load = queries.agent_load(session=session, agent=self.agent)
            states = queries.sync_states(session=session)
        by_source: dict[str, tuple[datetime | None, str]] = {}
        for state in states:
            last, error = by_source.get(state.source, (None, ""))
            if state.last_sync_at and (last is None or state.last_sync_at > last):
                last = state.last_sync_at
            error = error or state.last_error
            by_source[state.source] = (last, error)
        names = [m.name for m in self.settings.mailbox] + [s.name for s in self.settings.spool]
        names += [name for name in by_source if name not in names]
        sources = tuple((name, *by_source.get(name, (None, ""))) for name in names)
        return Header(self.agent, self.agent_name, load.assigned_open, load.waiting, sources)

    # --- presence: who else is looking at or replying to what -----------------------------------

    def heartbeat(self, conversation_id: int | None, activity: str) -> None:
        """Say what this agent is doing now (a small write; the app calls it every few seconds)."""
        with self._lock, self.write() as session:
            presence.heartbeat(session, agent=self.agent, conversation_id=conversation_id, activity=activity,
                               now=self.now())
            session.commit()

    def leave(self) -> None:
        with self._lock, self.write() as session:
            presence.leave(session, agent=self.agent)
            session.commit()

    def colleagues(self) -> dict[int, str]:
        """Other agents' fresh presence, as the text rows and thread headers show ("Dana is replying")."""
        with self.read() as session:
            found = presence.colleagues(session, agent=self.agent, now=self.now())
        names = {login: self.settings.agent_name(login) for people in found.values() for login in
                 (c.agent for c in people)}
        return {conversation_id: presence.describe(people, names) for conversation_id, people in found.items()}

    def report(self, *, days: int = 30) -> dict[str, Any]:
        """The `agentdesk report --json` document for the last `days` days."""
        from datetime import timedelta

        from agentdesk.domain import reports

        now = self.now()
        with self.read() as session:
            return reports.report(session, window=reports.Window(since=now - timedelta(days=days), until=now), now=now)

    # --- one conversation ----------------------------------------------------------------------

    def thread(self, conversation_id: int) -> Thread:
        from agentdesk.domain import documents

        now = self.now()
        with self.read() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise queries.NotFound(f"no conversation {ref_of(conversation_id)}")
            messages = queries.thread(session=session, conversation_id=conversation_id)
            ids = [m.id for m in messages]
            outbox = queries.delivery_states(session=session, message_ids=ids)
            files = queries.attachments_of(session=session, message_ids=ids)
            events = queries.events(session=session, conversation_id=conversation_id, limit=500)
            clock_events = queries.sla_clock_events(session=session, conversation_id=conversation_id)
            tags = queries.tags_of(session=session, conversation_ids=[conversation_id])[conversation_id]
            customer = self._customer_card(session, conversation)
            sla = documents.sla_document(conversation, self.policies, now=now)
            draft = drafts.get(session, conversation_id=conversation_id, agent=self.agent)
        items = [
            ThreadItem(
                at=m.at, kind=m.direction, author=m.author or m.sender_address, subject=m.subject,
                body=m.body_text or m.body_html_text, message_kind=m.kind,
                delivery=outbox[m.id].state if m.id in outbox else None,
                delivery_error=outbox[m.id].last_error if m.id in outbox else "",
                attachments=tuple((a.filename, a.content_type, a.size) for a in files.get(m.id, [])),
            )
            for m in messages
        ]
        items += [ThreadItem(at=e.at, kind="event", author=e.agent, body=describe_event(e.action, e.detail))
                  for e in events if e.action not in ("reply", "note", "created", "receipt")]
        items += [ThreadItem(at=e.at, kind="event", author="sla", body=f"SLA {e.target.replace('_', ' ')} {e.event}")
                  for e in clock_events if e.event in ("breach",)]
        items.sort(key=lambda item: item.at)
        return Thread(conversation, customer, tuple(tags), tuple(items), sla, draft)

    def _customer_card(self, session, conversation: Conversation) -> CustomerCard:
        customer = session.get(Customer, conversation.customer_id)
        identities = queries.identities_of(session=session, customer_ids=[conversation.customer_id])
        summary = queries.customer_summary(session=session, customer_id=conversation.customer_id)
        history = queries.customer_history(session=session, customer_id=conversation.customer_id,
                                           exclude_id=conversation.id)
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
            history=tuple(HistoryItem(c.id, ref_of(c.id), c.subject, c.status, c.channel, c.created_at)
                          for c in history[:200]),
        )

    # --- templates -----------------------------------------------------------------------------

    def templates(self, *, reload: bool = False) -> list[templates.Template]:
        if self._templates is None or reload:
            self._templates = templates.load_all(self.settings.templates_dir)
        return self._templates

    def suggestions(self, thread: Thread, limit: int = 3) -> list[tuple[templates.Template, float]]:
        # The customer's words say what the conversation is about; the newest weigh as much as the first.
        text = " ".join([thread.conversation.subject] + [i.body for i in thread.items if i.kind == "inbound"])
        return templates.suggest(self.templates(), text, limit=limit)

    def template_values(self, thread: Thread) -> dict[str, str]:
        return templates.values_for(thread.conversation, thread.customer, agent_name=self.agent_name,
                                    agent_signature=self.settings.agent_signature(self.agent))

    def render_template(self, template: templates.Template, thread: Thread) -> templates.Rendered:
        return templates.render(template, self.template_values(thread))

    def save_template(self, name: str, body: str, description: str = "", shortcut: str = "") -> Path:
        path = templates.save(self.settings.templates_dir,
                              templates.Template(name=name, body=body, description=description, shortcut=shortcut))
        self._templates = None
        return path

    # --- writes --------------------------------------------------------------------------------

    def change(self, conversation_ids: Sequence[int], *, versions: dict[int, int] | None = None,
               **changes: Any) -> list[str]:
        """Apply the same change to each conversation; return a line per conversation that changed.

        `versions`: the version each conversation had on screen. One that changed since (another
        agent, sync) is left alone and reported as stale (`StaleView`), after the others are saved.
        """
        from agentdesk.errors import Conflict

        done, stale = [], []
        versions = versions or {}
        with self._lock, self.write() as session:
            now = self.now()
            for conversation_id in conversation_ids:
                conversation = queue_service.load_for_update(session, ref_of(conversation_id))
                try:
                    changed = queue_service.change(session, conversation=conversation, agent=self.agent, now=now,
                                                   policies=self.policies, expected_version=versions.get(conversation_id),
                                                   **changes)
                except Conflict:
                    stale.append(ref_of(conversation_id))
                    continue
                if changed:
                    done.append(f"{ref_of(conversation_id)}: {', '.join(changed)}")
            session.commit()
        if stale:
            raise StaleView(stale, done)
        return done

    def merge(self, conversation_ids: Sequence[int], target_ref: str) -> list[str]:
        """Merge each conversation into the one `target_ref` names, in one transaction."""
        from agentdesk.errors import InvalidInput

        target_id = queries.parse_ref(target_ref.strip())
        if target_id in conversation_ids and len(conversation_ids) > 1:
            conversation_ids = [i for i in conversation_ids if i != target_id]
        done = []
        with self._lock, self.write() as session:
            now = self.now()
            target = queue_service.load_for_update(session, ref_of(target_id))
            for conversation_id in conversation_ids:
                source = queue_service.load_for_update(session, ref_of(conversation_id))
                moved = queue_service.merge_conversations(session, source=source, target=target, agent=self.agent,
                                                          now=now, policies=self.policies)
                done.append(f"{ref_of(conversation_id)} merged into {ref_of(target_id)} ({moved} messages moved)")
            session.commit()
        if not done:
            raise InvalidInput("nothing to merge")
        return done

    def claim(self, conversation_ids: Sequence[int]) -> list[str]:
        with self._lock, self.write() as session:
            now = self.now()
            for conversation_id in conversation_ids:
                queue_service.claim(session, conversation_id=conversation_id, agent=self.agent, now=now)
            session.commit()
        return [f"{ref_of(i)} is yours" for i in conversation_ids]

    def send(self, conversation_id: int, body: str, *, kind: str = "reply", status: str | None = None,
             expected_version: int | None = None) -> str:
        """Store a reply (queued in the outbox) or a note, drop the draft, optionally set the status.

        `expected_version`: the conversation's version when the composer opened; a reply to a
        conversation that changed since raises `errors.Conflict` (a note never does).
        """
        from agentdesk.errors import InvalidInput

        missing = templates.unfilled(body)
        if missing:
            raise InvalidInput(f"fill in {', '.join(missing)} before sending (the [[…?]] markers)")
        with self._lock, self.write() as session:
            now = self.now()
            conversation = queue_service.load_for_update(session, ref_of(conversation_id))
            if kind == "note":
                replies.add_note(session, conversation=conversation, body=body, agent=self.agent,
                                 agent_name=self.agent_name, now=now, policies=self.policies)
                if status:
                    queue_service.change(session, conversation=conversation, agent=self.agent, now=now,
                                         policies=self.policies, status=status)
            else:
                replies.reply(session, conversation=conversation, body=body, agent=self.agent,
                              agent_name=self.agent_name, signature=self.settings.agent_signature(self.agent),
                              now=now, policies=self.policies, status=status,
                              message_id_domain=self.settings.message_id_domain(conversation.source),
                              expected_version=expected_version)
            drafts.discard(session, conversation_id=conversation_id, agent=self.agent)
            session.commit()
        what = "note added" if kind == "note" else "reply queued for delivery"
        return f"{ref_of(conversation_id)}: {what}" + (f", status {status}" if status else "")


    def save_draft(self, conversation_id: int, body: str, *, kind: str, base_version: int) -> None:
        with self._lock, self.write() as session:
            drafts.save(session, conversation_id=conversation_id, agent=self.agent, body=body, kind=kind,
                        base_version=base_version, now=self.now())
            session.commit()


class StaleView(Exception):
    """Some conversations changed since the agent looked at them; they were left alone."""

    def __init__(self, refs: list[str], done: list[str]) -> None:
        self.refs, self.done = refs, done
        which = ", ".join(refs)
        super().__init__(f"{which} changed since you looked (another agent or a new message), so "
                         f"{'it was' if len(refs) == 1 else 'they were'} not changed; the queue is reloaded — "
                         "check and try again")


def changes_between(old: Thread, new: Thread) -> list[ThreadItem]:
    """What appeared in the thread between two reads of it: new messages and events, oldest first."""
    from collections import Counter

    seen = Counter(old.items)
    added = []
    for item in new.items:
        if seen[item]:
            seen[item] -= 1
        else:
            added.append(item)
    return added


def describe_event(action: str, detail_json: str) -> str:
    import json

    try:
        detail = json.loads(detail_json or "{}")
    except ValueError:
        detail = {}
    if action == "status":
        return f"status {detail.get('old')} → {detail.get('new')}"
    if action == "priority":
        return f"priority {detail.get('old')} → {detail.get('new')}"
    if action == "assign":
        new = detail.get("new") or "nobody"
        return f"assigned to {new}" + (f" (was {detail['old']})" if detail.get("old") else "")
    if action == "claim":
        return "claimed"
    if action in ("tag", "untag"):
        return f"{'tagged' if action == 'tag' else 'untagged'} {detail.get('tag')}"
    if action == "snooze":
        until = detail.get("until")
        return f"snoozed until {until}" if until else "snooze cleared"
    if action == "merge":
        return "merged " + ", ".join(f"{k} {v}" for k, v in sorted(detail.items()))
    return action + ("" if not detail else " " + ", ".join(f"{k}={v}" for k, v in sorted(detail.items())))


def _window_of(view: str, rows) -> Window:
    """Queue rows from mappings of `queries.FIRST_WINDOW_COLUMNS` (`queue_rows`, `first_window_sqlite`)."""
    order = queries.sort_columns(view)
    return Window(tuple(
        Row(id=r["id"], ref=ref_of(r["id"]), customer=r["customer"], subject=r["subject"], channel=r["channel"],
            status=r["status"], priority=r["priority"], assignee=r["assignee"], waiting_since=r["waiting_since"],
            queue_due=r["queue_due"], warning_at=r["warning_at"], version=r["version"],
            sort_key=tuple(r[name] for name in order), has_draft=bool(r["has_draft"]))
        for r in rows
    ))
