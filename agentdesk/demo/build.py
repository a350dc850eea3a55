"""Build the embedded demo: a realistic queue, its config and its templates, once.

`ensure_demo(directory)` writes `config.toml`, `templates/` and `agentdesk.db` into `directory`
unless a demo of the requested size is already there. Everything is generated from a fixed seed,
relative to the build time, so a fresh demo always shows SLA states across ok, warning and
breached.

The database is written in bulk by `store.demo_load` (plain sqlite3, one transaction per chunk),
not through the ORM: `--conversations 100000` writes about a million messages and must finish in
a couple of minutes. This module makes the rows; their SLA fields still come from the same domain
code (`clocks.refresh`) that every other write path uses.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import TypeVar

from agentdesk import config
from agentdesk.demo import content
from agentdesk.domain import clocks
from agentdesk.store import db, demo_load
from agentdesk.store.demo_load import Rows
from agentdesk.store.models import ref_of, sqlite_text

T = TypeVar("T")

DEFAULT_CONVERSATIONS = 240
MARKER = "demo.json"
Progress = Callable[[int, int, str], None]

CHANNEL_WEIGHTS = (("email", 45), ("chat", 20), ("sms", 20), ("webform", 15))
STATUS_WEIGHTS = (("new", 14), ("open", 20), ("pending", 10), ("on_hold", 5), ("solved", 38), ("closed", 13))
PRIORITY_WEIGHTS = (("low", 15), ("normal", 55), ("high", 22), ("urgent", 8))


def demo_config(directory: Path) -> str:
    login = config.current_agent()
    # The demo's own agents are dana and sam; a user whose login is one of them is that agent.
    you = (
        ""
        if login in ("dana", "sam")
        else f"""
[agents.{config.toml_string(login)}]
name = {config.toml_string(f"You ({login})")}
signature = "Northwind Bikes support"
"""
    )
    return f"""# The agentdesk demo. Every key is documented in config.example.toml.
[database]
url = {config.toml_string(f"sqlite:///{directory / 'agentdesk.db'}")}

[templates]
dir = "templates"
{you}
[agents.dana]
name = "Dana Jansen"
signature = "Dana, Northwind Bikes support"

[agents.sam]
name = "Sam Okafor"
signature = "Sam, Northwind Bikes support"

[[calendar]]
name = "office"
timezone = "Europe/Amsterdam"
hours = {{ mon = ["08:30-12:30", "13:00-17:30"], tue = ["08:30-17:30"], wed = ["08:30-17:30"], thu = ["08:30-17:30"], fri = ["08:30-17:00"] }}
holidays = ["2026-12-25", "2026-12-26"]
holiday_rules = ["FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=1"]

[[sla_policy]]
name = "urgent-anytime"
match = {{ priority = ["urgent"] }}
first_reply = "15m"
next_reply = "1h"
resolution = "8h"
warning = "50%"

[[sla_policy]]
name = "messaging"
match = {{ channel = ["sms", "chat"] }}
first_reply = "20m"
next_reply = "1h"
periodic_update = "1d"
resolution = "2d"
warning = "50%"

[[sla_policy]]
name = "email"
calendar = "office"
match = {{ channel = ["email", "webform"] }}
first_reply = "1h"
next_reply = "4h"
periodic_update = "1d"
resolution = "3d"
warning = "25%"
[sla_policy.priority.high]
first_reply = "30m"
"""


def ensure_demo(directory: Path, *, conversations: int | None = None, progress: Progress | None = None) -> Path:
    """Build the demo into `directory` unless one of that size is there; return its config path."""
    directory = directory.resolve()
    config_path = directory / "config.toml"
    marker = directory / MARKER
    wanted = conversations or DEFAULT_CONVERSATIONS
    if wanted < 1:
        from agentdesk.errors import InvalidInput

        raise InvalidInput(f"--conversations must be at least 1, got {wanted}")
    if marker.exists() and config_path.exists():
        if not (directory / "kb").exists():
            write_articles(directory / "kb")  # a demo built before the knowledge base existed
        built = json.loads(marker.read_text())
        if conversations is None or built.get("conversations") == wanted:
            if built.get("conversations", 0) <= MAX_CONVERSATIONS_TO_REFRESH:
                _bring_up_to_date(config_path, marker, built)
            return config_path
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in ("agentdesk.db", "agentdesk.db-wal", "agentdesk.db-shm", MARKER):
        (directory / leftover).unlink(missing_ok=True)
    config_path.write_text(demo_config(directory), encoding="utf-8")
    write_templates(directory / "templates")
    write_articles(directory / "kb")
    settings = config.load(config_path)
    started = datetime.now(timezone.utc)
    build_database(settings, conversations=wanted, now=started, progress=progress)
    marker.write_text(json.dumps({"conversations": wanted, "built_at": started.isoformat()}))
    return config_path


# Moving every time of a demo this size takes well under a second; bigger (benchmark) demos keep
# their times, so benchmarks measure the same data every run.
MAX_CONVERSATIONS_TO_REFRESH = 5000
SURVEYS_SINCE = timedelta(days=30)


def _bring_up_to_date(config_path: Path, marker: Path, built: dict) -> None:
    """Shift every stored time forward by the time since the demo was built (or last opened).

    The demo is built once, but a queue whose every clock broke days ago shows nothing about SLA
    states: moved forward, it looks as it did when it was built: some ok, some in warning, some
    breached, customers waiting minutes to hours.
    """
    last = datetime.fromisoformat(built["built_at"])
    seconds = int((datetime.now(timezone.utc) - last).total_seconds())
    if seconds < 60:
        return
    path = db.sqlite_path(config.load(config_path).database_url)
    assert path is not None, "the demo's database is SQLite"
    demo_load.shift_times(path, seconds)
    built["built_at"] = (last + timedelta(seconds=seconds)).isoformat()
    marker.write_text(json.dumps(built))


def write_templates(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, (meta, body) in content.TEMPLATES.items():
        (directory / f"{name}.md").write_text(f"---\n{meta}\n---\n{body}", encoding="utf-8")


def write_articles(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for slug, (title, tags, url, body) in content.ARTICLES.items():
        (directory / f"{slug}.md").write_text(
            f"---\ntitle: {title}\ntags: {', '.join(tags)}\nurl: {url}\n---\n{body}\n", encoding="utf-8"
        )


# --- generation ---------------------------------------------------------------------------------


def _pick(rng: random.Random, weighted: tuple[tuple[T, int], ...]) -> T:
    values, weights = zip(*weighted)
    return rng.choices(values, weights)[0]


@dataclass
class DemoCustomer:
    id: int
    name: str
    first: str
    last: str
    organization: str
    tier: str
    identities: dict[str, str] = field(default_factory=dict)  # identity kind -> address


def make_customers(rng: random.Random, count: int) -> list[DemoCustomer]:
    customers = []
    for index in range(1, count + 1):
        first = content.FIRST_NAMES[(index - 1) % len(content.FIRST_NAMES)]
        last = rng.choice(content.LAST_NAMES)
        organization = rng.choice(content.ORGANIZATIONS)
        customer = DemoCustomer(
            index, f"{first} {last.replace('-', ' ')}", first, last, organization, rng.choice(content.TIERS)
        )
        domain = organization.lower().replace(" ", "").replace("&", "") + ".example" if organization else "mail.example"
        customer.identities["email"] = f"{first}.{last}{index}@{domain}".lower()
        # Most customers also text or chat: the demo is about one history across channels.
        if rng.random() < 0.7:
            customer.identities["phone"] = f"+316{index:08d}"
        if rng.random() < 0.55:
            customer.identities["chat"] = f"web:{first.lower()}{index}"
        customers.append(customer)
    return customers


def _channel_for(rng: random.Random, customer: DemoCustomer) -> tuple[str, str]:
    """A channel the customer can use, and the identity kind it is addressed by."""
    while True:
        channel = _pick(rng, CHANNEL_WEIGHTS)
        kind = {"email": "email", "webform": "email", "sms": "phone", "chat": "chat"}[channel]
        if kind in customer.identities:
            return channel, kind


class DemoWriter:
    """Generates conversations and writes them in chunks through one raw SQLite connection."""

    CHUNK = 2000

    def __init__(self, settings: config.Settings, *, conversations: int, now: datetime, seed: int = 1042):
        self.rng = random.Random(seed)
        self.now = now
        self.total = conversations
        self.policies = clocks.Policies.from_settings(settings)
        self.agents = [config.current_agent(), "dana", "sam"]
        self.agent_names = {login: settings.agent_name(login) for login in self.agents}
        big = conversations > DEFAULT_CONVERSATIONS
        self.customers = make_customers(self.rng, max(60, conversations // 4))
        # The small demo shows short threads; the benchmark demo averages ~10 messages a thread.
        self.thread_lengths = (7, 15) if big else (2, 7)
        self.rows = Rows()
        self.message_id = 0
        self.event_id = 0
        # Surveys, ratings and articles sent draw from their own sequence: the rest of the demo
        # stays what it was before they existed.
        self.outcomes = random.Random(seed + 18)
        self.articles_by_tag: dict[str, list[str]] = {}
        for slug, (_title, tags, _url, _body) in content.ARTICLES.items():
            for tag in tags:
                self.articles_by_tag.setdefault(tag, []).append(slug)

    def customer_rows(self) -> None:
        for customer in self.customers:
            created = sqlite_text(self.now - timedelta(days=400))
            self.rows.customers.append((customer.id, customer.name, customer.organization, customer.tier, "", created))
            for kind, address in customer.identities.items():
                self.rows.identities.append((customer.id, kind, address, created))

    def _event(self, at: datetime, agent: str, action: str, conversation_id: int, **detail) -> None:
        self.event_id += 1
        self.rows.events.append(
            (self.event_id, sqlite_text(at), agent, action, conversation_id, None, json.dumps(detail, sort_keys=True))
        )

    def _message(
        self,
        conversation_id: int,
        direction: str,
        at: datetime,
        *,
        author: str,
        login: str | None,
        address: str,
        subject: str,
        body: str,
        source: str,
        delivery: str | None = None,
        error: str = "",
        kind: str = "message",
    ) -> None:
        self.message_id += 1
        mid = self.message_id
        external_id = f"demo-{mid}@northwind.example" if direction != "note" else None
        self.rows.messages.append(
            (
                mid,
                conversation_id,
                direction,
                kind,
                0,
                author,
                login,
                address,
                subject,
                body,
                "",
                sqlite_text(at),
                sqlite_text(at),
                source if direction != "note" else "",
                external_id,
                None,
                "",
                "",
                "demo" if direction == "inbound" else "",
                "",
            )
        )
        if delivery is not None:
            sent_at = sqlite_text(at + timedelta(seconds=3)) if delivery == "sent" else None
            self.rows.outbox.append(
                (
                    mid,
                    "",
                    source,
                    delivery,
                    1 if delivery != "queued" else 0,
                    error,
                    sqlite_text(at),
                    sqlite_text(at),
                    sent_at,
                )
            )

    def conversation(self, conversation_id: int) -> None:
        rng = self.rng
        customer = rng.choice(self.customers)
        channel, identity_kind = _channel_for(rng, customer)
        address = customer.identities[identity_kind]
        source = {"email": "support", "webform": "webform", "sms": "sms", "chat": "chat"}[channel]
        status = _pick(rng, STATUS_WEIGHTS)
        priority = _pick(rng, PRIORITY_WEIGHTS)
        tag, subject, long_text, short_text, followups, replies = rng.choice(content.SCENARIOS)
        values = {
            "order": f"{rng.randint(100000, 999999)}",
            "product": rng.choice(content.PRODUCTS),
            "day": (self.now - timedelta(days=rng.randint(3, 30))).strftime("%d %B"),
            "serial": f"NW{rng.randint(1000000, 9999999)}",
            "amount": f"{rng.randint(30, 3400)}.00",
            "city": rng.choice(content.CITIES),
            "street": rng.choice(content.STREETS),
            "first": customer.first,
            "last": customer.last.replace("-", " "),
            "org": customer.organization or "",
            "agent": "",
        }
        subject = subject.format(**values)
        long_form = channel in ("email", "webform")

        # Open work is recent (hours), so the SLA clocks show every state; done work spreads over months.
        if status in ("new", "open"):
            # Half arrived within the hour (clocks still ok or in warning), the rest up to a day ago.
            minutes = rng.uniform(1, 60) if rng.random() < 0.5 else rng.uniform(60, 60 * 26)
            created = self.now - timedelta(minutes=minutes)
        elif status in ("pending", "on_hold"):
            created = self.now - timedelta(hours=rng.uniform(2, 24 * 6))
        else:
            created = self.now - timedelta(days=rng.uniform(1, 120))
        assignee = None if status == "new" or rng.random() < 0.2 else rng.choice(self.agents)
        agent = assignee or rng.choice(self.agents)
        agent_name = self.agent_names[agent]
        values["agent"] = agent_name

        low, high = self.thread_lengths
        length = 1 if status == "new" else rng.randint(low, high)
        # Who speaks last decides who waits: the customer for new/open, the agent otherwise.
        customer_last = status in ("new", "open")
        speakers = []
        for index in range(length):
            from_customer = (length - 1 - index) % 2 == 0 if customer_last else (length - 1 - index) % 2 == 1
            speakers.append(from_customer)
        speakers[0] = True  # customers start conversations

        at = created
        span = (self.now - created) * 0.9
        step = span / max(length, 1)
        first_responded_at = last_agent_reply_at = last_customer_at = waiting_since = None
        followup_index = reply_index = 0
        article = self._article_for(tag) if status in ("solved", "closed", "pending") else None
        # The reply that links it: the last one of a solved conversation (the article was the
        # answer), else the first.
        agent_turns = [index for index, from_customer in enumerate(speakers) if not from_customer]
        article_turn = (agent_turns[-1] if status in ("solved", "closed") else agent_turns[0]) if agent_turns else -1
        self._event(created, "system", "created", conversation_id, channel=channel)
        for index, from_customer in enumerate(speakers):
            if index:
                at = at + step * rng.uniform(0.5, 1.0)
            if from_customer:
                if index == 0:
                    body = (long_text if long_form else short_text).format(**values)
                else:
                    body = followups[followup_index % len(followups)].format(**values)
                    followup_index += 1
                self._message(
                    conversation_id,
                    "inbound",
                    at,
                    author=customer.name,
                    login=None,
                    address=address,
                    subject=subject if index == 0 or long_form else "",
                    body=body,
                    source=source,
                )
                last_customer_at = at
                if waiting_since is None:
                    waiting_since = at
            else:
                body = replies[reply_index % len(replies)].format(**values)
                reply_index += 1
                if article is not None and index == article_turn:
                    title, _tags, url, _body = content.ARTICLES[article]
                    body += f"\n\nThis may help too: {title}: {url}"
                # A few deliveries fail or wait, so the demo shows the outbox's states.
                roll = rng.random()
                delivery, error = "sent", ""
                if index == length - 1 and roll < 0.04:
                    delivery, error = "failed", "550 5.1.1 mailbox unavailable (demo)"
                elif index == length - 1 and roll < 0.08:
                    delivery = "queued"
                self._message(
                    conversation_id,
                    "outbound",
                    at,
                    author=agent_name,
                    login=agent,
                    address=address,
                    subject=f"Re: {subject} [{ref_of(conversation_id)}]" if long_form else "",
                    body=body,
                    source=source,
                    delivery=delivery,
                    error=error,
                )
                self._event(at, agent, "reply", conversation_id)
                if article is not None and index == article_turn:
                    self.rows.article_uses.append((article, conversation_id, self.message_id, sqlite_text(at)))
                first_responded_at = first_responded_at or at
                last_agent_reply_at = at
                waiting_since = None
        if rng.random() < 0.18:
            note_at = at + timedelta(minutes=rng.uniform(1, 30))
            note_at = min(note_at, self.now)
            note = rng.choice(content.NOTES).format(other=max(1, conversation_id - rng.randint(1, 50)))
            self._message(
                conversation_id,
                "note",
                note_at,
                author=agent_name,
                login=agent,
                address="",
                subject="",
                body=note,
                source=source,
            )
            self._event(note_at, agent, "note", conversation_id)

        solved_at = None
        if status in ("solved", "closed"):
            solved_at = min(at + timedelta(minutes=rng.uniform(5, 600)), self.now)
            self._event(solved_at, agent, "status", conversation_id, old="open", new=status)
            self._survey(conversation_id, solved_at, assignee, customer, address, subject, source, long_form)
        snoozed_until = None
        if status == "open" and rng.random() < 0.06:
            snoozed_until = self.now + timedelta(hours=rng.uniform(1, 48))
        tags = {tag} | ({"vip"} if customer.tier == "gold" else set())
        if customer.organization and tag != "b2b" and rng.random() < 0.3:
            tags.add("b2b")

        # The clock fields as a plain namespace: clocks.refresh reads and writes only attributes, and
        # building 100 000 ORM objects would cost most of the build's time.
        conversation = SimpleNamespace(
            id=conversation_id,
            channel=channel,
            source=source,
            subject=subject,
            customer_id=customer.id,
            status=status,
            priority=priority,
            assignee=assignee,
            created_at=created,
            updated_at=max(at, created),
            solved_at=solved_at,
            first_responded_at=first_responded_at,
            last_agent_reply_at=last_agent_reply_at,
            last_customer_message_at=last_customer_at,
            waiting_since=waiting_since,
            snoozed_until=snoozed_until,
        )
        clocks.refresh(conversation, policies=self.policies, tags=tags, tier=customer.tier, now=self.now)
        c = conversation
        self.rows.conversations.append(
            (
                c.id,
                c.channel,
                c.source,
                c.subject,
                c.customer_id,
                c.status,
                c.priority,
                c.assignee,
                sqlite_text(c.snoozed_until),
                sqlite_text(c.created_at),
                sqlite_text(c.updated_at),
                sqlite_text(c.solved_at),
                c.sla_policy,
                sqlite_text(c.first_response_due),
                sqlite_text(c.next_response_due),
                sqlite_text(c.periodic_update_due),
                sqlite_text(c.resolution_due),
                sqlite_text(c.first_responded_at),
                sqlite_text(c.last_agent_reply_at),
                sqlite_text(c.last_customer_message_at),
                sqlite_text(c.waiting_since),
                sqlite_text(c.warning_at),
                sqlite_text(c.queue_due),
                sqlite_text(c.queue_wait),
                None,
                1,
            )
        )
        for t in sorted(tags):
            self.rows.tags.append((conversation_id, t))

    def _article_for(self, tag: str) -> str | None:
        """An article an agent linked in a reply, for about a third of the conversations
        whose topic has one."""
        candidates = self.articles_by_tag.get(tag)
        if not candidates or self.outcomes.random() >= 0.35:
            return None
        return self.outcomes.choice(candidates)

    def _survey(
        self,
        conversation_id: int,
        solved_at: datetime,
        assignee: str | None,
        customer: DemoCustomer,
        address: str,
        subject: str,
        source: str,
        long_form: bool,
    ) -> None:
        """The satisfaction survey an hour after solving, and for about half of them the customer's
        rating, as the sync and ingest would have written them."""
        rng = self.outcomes
        sent_at = solved_at + timedelta(hours=1)
        # Surveys were switched on a month ago: older conversations have none.
        if not self.now - SURVEYS_SINCE <= sent_at <= self.now - timedelta(minutes=5) or rng.random() < 0.1:
            return
        ref = ref_of(conversation_id)
        body = (
            content.CSAT_TEMPLATE[1]
            .replace("{{ customer_first_name }}", customer.first)
            .replace("{{ ref }}", ref)
            .replace("{{ subject }}", subject)
        )
        self._message(
            conversation_id,
            "outbound",
            sent_at,
            author="Satisfaction survey",
            login=None,
            address=address,
            subject=f"Re: {subject} [{ref}]" if long_form else "",
            body=body,
            source=source,
            delivery="sent",
            kind="survey",
        )
        survey_message = self.message_id
        self._event(sent_at, "system", "survey", conversation_id, message_id=survey_message)
        rating = comment = answered_at = answer_message = None
        if rng.random() < 0.55:
            rating = _pick(rng, content.RATING_WEIGHTS)
            comment = rng.choice(content.RATING_COMMENTS[rating])
            answered_at = min(sent_at + timedelta(hours=rng.uniform(0.1, 30)), self.now - timedelta(minutes=1))
            self._message(
                conversation_id,
                "inbound",
                answered_at,
                author=customer.name,
                login=None,
                address=address,
                subject=f"Re: {subject} [{ref}]" if long_form else "",
                body=f"{rating}, {comment}" if comment else str(rating),
                source=source,
            )
            answer_message = self.message_id
            self._event(
                answered_at,
                "system",
                "csat",
                conversation_id,
                rating=rating,
                comment=comment,
                message_id=answer_message,
            )
            if rating <= 2:
                self._event(
                    answered_at,
                    "system",
                    "csat_alert",
                    conversation_id,
                    rating=rating,
                    comment=comment,
                    assignee=assignee or "",
                )
        self.rows.surveys.append(
            (
                conversation_id,
                survey_message,
                sqlite_text(sent_at),
                assignee or "",
                "",
                rating,
                comment or "",
                sqlite_text(answered_at),
                answer_message,
            )
        )


def _generate_chunks(settings: config.Settings, conversations: int, now: datetime) -> Iterator[Rows]:
    writer = DemoWriter(settings, conversations=conversations, now=now)
    writer.customer_rows()
    for conversation_id in range(1, conversations + 1):
        writer.conversation(conversation_id)
        if conversation_id % writer.CHUNK == 0 or conversation_id == conversations:
            yield writer.rows
            writer.rows = Rows()


def _generator_process(settings: config.Settings, conversations: int, now: datetime, chunks) -> None:
    for rows in _generate_chunks(settings, conversations, now):
        chunks.put(rows)
    chunks.put(None)


def _chunks_from_other_process(settings: config.Settings, conversations: int, now: datetime) -> Iterator[Rows]:
    """Generate in a second process while this one writes: the build uses both cores."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    chunks = context.Queue(maxsize=4)
    process = context.Process(target=_generator_process, args=(settings, conversations, now, chunks), daemon=True)
    process.start()
    try:
        while (rows := chunks.get()) is not None:
            yield rows
    finally:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
    if process.exitcode not in (0, None):
        raise RuntimeError(f"the demo generator process failed with exit code {process.exitcode}")


def build_database(
    settings: config.Settings, *, conversations: int, now: datetime, progress: Progress | None = None
) -> None:
    engine = db.open_database(settings.database_url)
    engine.dispose()
    big = conversations > 5 * DemoWriter.CHUNK
    chunks = (_chunks_from_other_process if big else _generate_chunks)(settings, conversations, now)
    done = 0

    def count(rows: Rows) -> None:
        nonlocal done
        done += len(rows.conversations)
        if progress:
            progress(done, conversations, "building demo")

    path = db.sqlite_path(settings.database_url)
    assert path is not None, "the demo's database is SQLite"
    demo_load.write_rows(path, chunks, on_chunk=count)
