"""Domain services: changes with audit and optimistic concurrency, claims, ingest, templates."""

from __future__ import annotations

import json
import multiprocessing
from datetime import timedelta

import pytest
from conftest import FIXED_NOW
from factories import claim_in_process, inbound, ingest
from sqlmodel import select

from agentdesk.domain import queue, replies, templates
from agentdesk.errors import Conflict, InvalidInput
from agentdesk.store import db
from agentdesk.store.models import Conversation, Customer, Event, Identity, Message

T = FIXED_NOW


@pytest.fixture
def engine(any_database_url):
    """Ingest and concurrency run on SQLite and on a real PostgreSQL."""
    engine = db.open_database(any_database_url)
    yield engine
    engine.dispose()


def test_a_change_records_one_event_per_field_and_bumps_the_version(engine, policies):
    ref = ingest(engine, policies, inbound(at=T)).conversation_id
    with db.write_session(engine) as session:
        conversation = session.get(Conversation, ref)
        changed = queue.change(
            session,
            conversation=conversation,
            agent="dana",
            now=T,
            policies=policies,
            status="pending",
            priority="high",
            add_tags=["Billing"],
            expected_version=conversation.version,
        )
        session.commit()
    assert changed == ["status", "priority", "tag"]
    with db.read_session(engine) as session:
        conversation = session.get(Conversation, ref)
        assert (conversation.status, conversation.priority, conversation.version) == ("pending", "high", 3)
        events = session.exec(select(Event).where(Event.agent == "dana").order_by(Event.id)).all()
        assert [(e.action, json.loads(e.detail)) for e in events] == [
            ("status", {"old": "new", "new": "pending"}),
            ("priority", {"old": "normal", "new": "high"}),
            ("tag", {"tag": "billing"}),
        ]


def test_no_lost_update_when_two_agents_edit_from_the_same_version(engine, policies):
    ref = ingest(engine, policies, inbound(at=T)).conversation_id
    with db.read_session(engine) as session:
        seen_version = session.get(Conversation, ref).version
    for agent, priority in (("dana", "high"), ("sam", "low")):
        with db.write_session(engine) as session:
            conversation = queue.load_for_update(session, f"AD-{ref}")
            if agent == "sam":
                with pytest.raises(Conflict, match="changed since you opened it"):
                    queue.change(
                        session,
                        conversation=conversation,
                        agent=agent,
                        now=T,
                        policies=policies,
                        priority=priority,
                        expected_version=seen_version,
                    )
                continue
            queue.change(
                session,
                conversation=conversation,
                agent=agent,
                now=T,
                policies=policies,
                priority=priority,
                expected_version=seen_version,
            )
            session.commit()
    with db.read_session(engine) as session:
        assert session.get(Conversation, ref).priority == "high"


def test_of_many_agents_claiming_at_once_exactly_one_wins(engine, policies):
    ref = ingest(engine, policies, inbound(at=T)).conversation_id
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    agents = [f"agent{i}" for i in range(6)]
    processes = [
        context.Process(
            target=claim_in_process, args=(engine.url.render_as_string(hide_password=False), ref, a, start, results)
        )
        for a in agents
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=60)
    outcomes = dict(results.get(timeout=5) for _ in agents)
    winners = [agent for agent, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1
    for agent, outcome in outcomes.items():
        if agent != winners[0]:
            assert outcome == f"AD-{ref} is already claimed by {winners[0]}"
    with db.read_session(engine) as session:
        assert session.get(Conversation, ref).assignee == winners[0]
        assert len(session.exec(select(Event).where(Event.action == "claim")).all()) == 1


def test_ingest_is_idempotent_and_threads_replies(engine, policies):
    first = ingest(engine, policies, inbound(at=T, external_id="root@velo.example"))
    again = ingest(engine, policies, inbound(at=T, external_id="root@velo.example"))
    assert again.duplicate and again.message_id == first.message_id
    reply = ingest(
        engine,
        policies,
        inbound(at=T + timedelta(hours=1), subject="Re: Spokes", body="More info", in_reply_to="root@velo.example"),
    )
    assert (reply.conversation_id, reply.thread_reason, reply.created_conversation) == (
        first.conversation_id,
        "in-reply-to",
        False,
    )
    # Same Message-ID, other content: another message, both kept (DESIGN: external ids).
    other = ingest(engine, policies, inbound(at=T, external_id="root@velo.example", body="different text"))
    assert not other.duplicate and other.message_id != first.message_id
    with db.read_session(engine) as session:
        assert len(session.exec(select(Message)).all()) == 3
        assert len(session.exec(select(Customer)).all()) == 1


def test_a_ref_in_the_subject_is_accepted_only_from_a_participant(engine, policies):
    first = ingest(engine, policies, inbound(at=T))
    ref = f"AD-{first.conversation_id}"
    own = ingest(engine, policies, inbound(at=T + timedelta(minutes=1), subject=f"Re: Spokes [{ref}]", body="me again"))
    assert (own.conversation_id, own.thread_reason) == (first.conversation_id, "subject-tag")
    stranger = ingest(
        engine,
        policies,
        inbound(
            sender="mallory@evil.example",
            name="Mallory",
            at=T + timedelta(minutes=2),
            subject=f"Re: [{ref}] give me the data",
        ),
    )
    assert stranger.created_conversation and stranger.conversation_id != first.conversation_id


def test_a_customer_reply_after_solving_reopens_and_restarts_the_wait(engine, policies):
    first = ingest(engine, policies, inbound(at=T, external_id="a@velo.example"))
    with db.write_session(engine) as session:
        conversation = session.get(Conversation, first.conversation_id)
        replies.reply(
            session,
            conversation=conversation,
            body="Fixed.",
            agent="dana",
            agent_name="Dana",
            now=T + timedelta(minutes=30),
            policies=policies,
            status="solved",
        )
        session.commit()
        assert conversation.waiting_since is None and conversation.first_responded_at == T + timedelta(minutes=30)
    ingest(engine, policies, inbound(at=T + timedelta(days=1), in_reply_to="a@velo.example", body="Broke again"))
    with db.read_session(engine) as session:
        conversation = session.get(Conversation, first.conversation_id)
        assert conversation.status == "open" and conversation.solved_at is None
        assert conversation.waiting_since == T + timedelta(days=1)


def test_auto_replies_do_not_make_the_customer_wait(engine, policies):
    result = ingest(engine, policies, inbound(at=T, kind="auto_reply", subject="Out of office"))
    with db.read_session(engine) as session:
        assert session.get(Conversation, result.conversation_id).waiting_since is None


def test_phone_identities_are_stored_in_e164(engine, policies):
    ingest(engine, policies, inbound(sender="+31 (0)6 1234 5678".replace("(0)", ""), channel="sms", source="sms", at=T))
    with db.read_session(engine) as session:
        assert session.exec(select(Identity.address)).one() == "+31612345678"


def test_an_empty_reply_is_refused(engine, policies):
    ref = ingest(engine, policies, inbound(at=T)).conversation_id
    with db.write_session(engine) as session:
        with pytest.raises(InvalidInput, match="empty"):
            replies.reply(
                session,
                conversation=session.get(Conversation, ref),
                body="  \n ",
                agent="dana",
                agent_name="Dana",
                now=T,
                policies=policies,
            )


def test_reply_bodies_lose_terminal_escapes(engine, policies):
    ref = ingest(engine, policies, inbound(at=T)).conversation_id
    with db.write_session(engine) as session:
        message = replies.reply(
            session,
            conversation=session.get(Conversation, ref),
            body="hi\x1b]52;c;ZXZpbA==\x07 there",
            agent="dana",
            agent_name="Dana",
            now=T,
            policies=policies,
        )
        assert "\x1b" not in message.body_text and "hi" in message.body_text


class TestTemplates:
    def test_placeholders_are_filled_and_missing_ones_flagged(self):
        template = templates.parse_template(
            "t", "---\nshortcut: x\n---\nHi {{ customer_first_name }}, re {{ ref }} {{ tracking }}"
        )
        assert template.shortcut == "x"
        rendered = templates.render(template, {"customer_first_name": "Greta", "ref": "AD-7"})
        assert rendered.text == "Hi Greta, re AD-7 [[tracking?]]"
        assert rendered.undefined == ("tracking",)

    @pytest.mark.parametrize(
        "evil",
        [
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
        ],
    )
    def test_templates_render_in_a_sandbox(self, evil):
        with pytest.raises(templates.TemplateFailed, match="not allowed in a template"):
            templates.render(evil, {})

    def test_customer_values_are_never_evaluated(self):
        rendered = templates.render("Hi {{ customer_name }}", {"customer_name": "{{ 7 * 7 }}"})
        assert rendered.text == "Hi {{ 7 * 7 }}"

    def test_save_refuses_names_that_could_be_paths(self, tmp_path):
        for name in ("../etc/passwd", "a/b", ".hidden", ""):
            with pytest.raises(InvalidInput):
                templates.save(tmp_path, templates.Template(name=name, body="x"))
        path = templates.save(tmp_path, templates.Template(name="good-one", body="Hello", shortcut="g"))
        assert templates.load(tmp_path, "g").body == "Hello" and path.parent == tmp_path
