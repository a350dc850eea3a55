"""Undoing a merge: a conversation merge (the TUI's `m`) and a customer merge (`agentdesk customer
merge`), from either side's ref, on SQLite and PostgreSQL; nothing is lost, and a merge that
anything touched since is refused (exit 3)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import BASIC_CONFIG, FIXED_NOW
from factories import inbound, ingest
from sqlmodel import Session, select

from agentdesk import cli, config
from agentdesk.app import conversations, customers, undo
from agentdesk.app.desk import Desk
from agentdesk.domain import clocks
from agentdesk.domain.outbound import OutgoingFile, Recipients
from agentdesk.errors import Conflict, InvalidInput
from agentdesk.store.models import Conversation, ConversationTag, Customer, Draft, Event, Identity, Message

LATER = FIXED_NOW + timedelta(minutes=2)


@pytest.fixture
def team_settings(any_database_url, tmp_path) -> config.Settings:
    path = tmp_path / "merge-config.toml"
    path.write_text(
        f'[database]\nurl = "{any_database_url}"\n[templates]\ndir = "{tmp_path / "templates"}"\n' + BASIC_CONFIG,
        encoding="utf-8",
    )
    return config.load(path)


@pytest.fixture
def desk(team_settings):
    desk = Desk(team_settings, agent="tester", now=lambda: FIXED_NOW)
    yield desk
    desk.engine.dispose()


def _later(settings, agent: str = "tester") -> Desk:
    return Desk(settings, agent=agent, now=lambda: LATER)


def _two_conversations(desk: Desk, settings) -> tuple[int, int]:
    """Greta's two conversations: one about spokes (kept), one about an invoice (merged into it),
    each with tags; the invoice one also with a note and a draft."""
    policies = clocks.Policies.from_settings(settings)
    kept = ingest(desk.engine, policies, inbound(at=FIXED_NOW - timedelta(hours=3), external_id="k1@velo.example"))
    merged = ingest(
        desk.engine,
        policies,
        inbound(
            at=FIXED_NOW - timedelta(hours=5),
            subject="Invoice missing",
            body="I never got the invoice.",
            external_id="m1@velo.example",
        ),
    )
    kept_id, merged_id = kept.conversation_id, merged.conversation_id
    assert kept_id != merged_id
    conversations.update(desk, kept_id, add_tags=["wheels", "vip"])
    conversations.update(desk, merged_id, status="open", add_tags=["billing", "vip"])
    conversations.note(desk, merged_id, "Checked: the invoice went to an old address.")
    # The draft has a Cc and a file too: they follow it on the merge and come back on the undo.
    conversations.save_draft(
        desk,
        merged_id,
        "Dear Greta, half a reply",
        kind="reply",
        base_version=1,
        recipients=Recipients(to=("greta@velo.example",), cc=("accounts@velo.example",)),
        files=[OutgoingFile("invoice.pdf", b"%PDF invoice")],
    )
    return kept_id, merged_id


def _state(engine, conversation_id: int) -> dict:
    """What a merge changes and its undo must put back."""
    with Session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        return {
            "status": conversation.status,
            "merged_into": conversation.merged_into_id,
            "tags": set(
                session.exec(select(ConversationTag.tag).where(ConversationTag.conversation_id == conversation_id))
            ),
            "messages": sorted(
                session.exec(select(Message.id).where(Message.conversation_id == conversation_id)).all()
            ),
            "waiting_since": conversation.waiting_since,
            "last_customer_message_at": conversation.last_customer_message_at,
            "customer": conversation.customer_id,
            "sla": (
                conversation.sla_policy,
                conversation.first_response_due,
                conversation.next_response_due,
                conversation.resolution_due,
                conversation.queue_due,
                conversation.warning_at,
            ),
            "drafts": {
                (d.agent, d.body, d.envelope)
                for d in session.exec(select(Draft).where(Draft.conversation_id == conversation_id))
            },
        }


@pytest.mark.parametrize("side", ["merged", "kept"])
def test_undo_of_a_conversation_merge_puts_everything_back(desk, team_settings, side):
    kept_id, merged_id = _two_conversations(desk, team_settings)
    before = {i: _state(desk.engine, i) for i in (kept_id, merged_id)}
    assert conversations.merge(desk, [merged_id], f"AD-{kept_id}") == [
        f"AD-{merged_id} merged into AD-{kept_id} (2 messages moved)"
    ]
    after_merge = _state(desk.engine, merged_id)
    assert after_merge["messages"] == [] and after_merge["merged_into"] == kept_id
    assert after_merge["status"] == "closed" and after_merge["drafts"] == set()

    ref = f"AD-{merged_id if side == 'merged' else kept_id}"
    done = undo.undo(_later(team_settings), ref)

    assert done == [f"AD-{merged_id}: undid your merge into AD-{kept_id} (2 messages back)"]
    assert {i: _state(desk.engine, i) for i in (kept_id, merged_id)} == before
    with Session(desk.engine) as session:
        undos = session.exec(select(Event).where(Event.action == "undo")).all()
        assert {(e.conversation_id, e.agent, e.at) for e in undos} == {
            (kept_id, "tester", LATER),
            (merged_id, "tester", LATER),
        }
        assert all(json.loads(e.detail)["undone"] == ["merge"] for e in undos)
    thread = conversations.thread(desk, kept_id)
    assert any(f"undid the merge of AD-{merged_id}" in item.body for item in thread.items if item.kind == "event")
    with pytest.raises(InvalidInput, match="undone already"):
        undo.undo(_later(team_settings), ref)


def test_undo_of_a_merge_of_several_separates_each(desk, team_settings):
    kept_id, merged_id = _two_conversations(desk, team_settings)
    third = ingest(
        desk.engine,
        clocks.Policies.from_settings(team_settings),
        inbound(at=FIXED_NOW - timedelta(hours=1), subject="Bell rings", external_id="t1@velo.example"),
    ).conversation_id
    before = {i: _state(desk.engine, i) for i in (kept_id, merged_id, third)}
    conversations.merge(desk, [merged_id, third], f"AD-{kept_id}")
    assert len(_state(desk.engine, kept_id)["messages"]) == 4

    done = undo.undo(_later(team_settings), f"AD-{third}")  # from one merged conversation: the whole merge

    assert len(done) == 2
    assert {i: _state(desk.engine, i) for i in (kept_id, merged_id, third)} == before


def test_undo_of_a_merge_is_refused_after_a_change_since(desk, team_settings):
    kept_id, merged_id = _two_conversations(desk, team_settings)
    conversations.merge(desk, [merged_id], f"AD-{kept_id}")
    conversations.update(_later(team_settings, agent="dana"), kept_id, priority="urgent")
    merged_state = _state(desk.engine, kept_id)

    for ref in (f"AD-{merged_id}", f"AD-{kept_id}"):
        with pytest.raises(Conflict, match=f"AD-{kept_id} changed since your merge \\(priority by dana\\)"):
            undo.undo(_later(team_settings), ref)
    assert _state(desk.engine, kept_id) == merged_state


def test_undo_of_a_merge_is_refused_after_a_reply_in_the_merged_thread(desk, team_settings):
    kept_id, merged_id = _two_conversations(desk, team_settings)
    conversations.merge(desk, [merged_id], f"AD-{kept_id}")
    conversations.reply(_later(team_settings), kept_id, "Both sorted: new spokes and the invoice.")
    with pytest.raises(Conflict, match="reply by tester"):
        undo.undo(_later(team_settings), f"AD-{merged_id}")
    assert _state(desk.engine, merged_id)["merged_into"] == kept_id


def test_undo_of_a_merge_is_refused_after_a_customer_message(desk, team_settings):
    kept_id, merged_id = _two_conversations(desk, team_settings)
    conversations.merge(desk, [merged_id], f"AD-{kept_id}")
    ingest(
        desk.engine,
        clocks.Policies.from_settings(team_settings),
        inbound(at=LATER, body="Any news?", in_reply_to="m1@velo.example", external_id="m2@velo.example"),
        now=LATER,
    )
    with pytest.raises(Conflict, match="new customer message"):
        undo.undo(_later(team_settings), f"AD-{kept_id}")


# --- customer merges ------------------------------------------------------------------------------


def _two_customers(desk: Desk, settings) -> tuple[int, int]:
    """Greta by email and the same Greta on SMS, two customers until an agent merges them."""
    policies = clocks.Policies.from_settings(settings)
    email = ingest(desk.engine, policies, inbound(at=FIXED_NOW - timedelta(hours=2), external_id="e1@velo.example"))
    sms = ingest(
        desk.engine,
        policies,
        inbound(
            at=FIXED_NOW - timedelta(hours=1),
            sender="+31612345678",
            name="Greta",
            channel="sms",
            source="sms",
            subject="",
            body="Spokes again, it's Greta",
        ),
    )
    return email.conversation_id, sms.conversation_id


def _customers(engine) -> dict:
    with Session(engine) as session:
        return {
            "conversations": {c.id: c.customer_id for c in session.exec(select(Conversation))},
            "identities": {(i.kind, i.address): i.customer_id for i in session.exec(select(Identity))},
            "merged": {c.id: c.merged_into_id for c in session.exec(select(Customer))},
        }


@pytest.mark.parametrize("side", ["a", "b"])
def test_undo_of_a_customer_merge_from_either_conversation(desk, team_settings, side):
    ref_a, ref_b = (f"AD-{i}" for i in _two_customers(desk, team_settings))
    before = _customers(desk.engine)
    merged = customers.merge(desk, ref_a, ref_b)
    assert _customers(desk.engine) != before

    done = undo.undo(_later(team_settings), ref_a if side == "a" else ref_b)

    assert done == [
        f"{ref_a if side == 'a' else ref_b}: undid your merge of customer {merged.merged_id} into customer "
        f"{merged.kept_id} (1 identity, 1 conversation back)"
    ]
    assert _customers(desk.engine) == before
    with Session(desk.engine) as session:
        unmerge = session.exec(select(Event).where(Event.action == "customer_unmerge")).one()
    assert unmerge.agent == "tester" and json.loads(unmerge.detail)["undoes"] is not None
    with pytest.raises(InvalidInput, match="already"):
        undo.undo(_later(team_settings), ref_b)


def test_undo_of_a_customer_merge_is_refused_after_another_merge_into_it(desk, team_settings):
    ref_a, ref_b = (f"AD-{i}" for i in _two_customers(desk, team_settings))
    customers.merge(desk, ref_a, ref_b)
    third = ingest(
        desk.engine,
        clocks.Policies.from_settings(team_settings),
        inbound(at=FIXED_NOW - timedelta(minutes=30), sender="greta@work.example", external_id="w1@velo.example"),
    ).conversation_id
    customers.merge(_later(team_settings, agent="dana"), ref_a, f"AD-{third}")
    merged_state = _customers(desk.engine)
    with pytest.raises(Conflict, match="customer merge by dana"):
        undo.undo(_later(team_settings), ref_b)
    assert _customers(desk.engine) == merged_state


def test_the_undo_command_exits_3_with_the_reason(config_file, engine, policies, capsys):
    desk = Desk(config.load(config_file), agent="tester", now=lambda: FIXED_NOW)
    kept = ingest(engine, policies, inbound(at=FIXED_NOW - timedelta(hours=3), external_id="k1@velo.example"))
    merged = ingest(
        engine, policies, inbound(at=FIXED_NOW - timedelta(hours=2), subject="Other", external_id="o1@velo.example")
    )
    conversations.merge(desk, [merged.conversation_id], f"AD-{kept.conversation_id}")
    conversations.update(Desk(desk.settings, agent="dana", now=lambda: LATER), kept.conversation_id, priority="high")
    code = cli.main(["--config", str(config_file), "undo", f"AD-{merged.conversation_id}"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.strip().count("\n") == 0 and "changed since your merge" in err and "dana" in err


def test_a_merge_recorded_before_undo_existed_is_refused_with_what_to_do(config_file, engine, policies):
    desk = Desk(config.load(config_file), agent="tester", now=lambda: FIXED_NOW)
    kept = ingest(engine, policies, inbound(at=FIXED_NOW - timedelta(hours=3), external_id="k1@velo.example"))
    merged = ingest(
        engine, policies, inbound(at=FIXED_NOW - timedelta(hours=2), subject="Other", external_id="o1@velo.example")
    )
    conversations.merge(desk, [merged.conversation_id], f"AD-{kept.conversation_id}")
    with Session(engine) as session:  # as an older agentdesk wrote it
        event = session.exec(
            select(Event).where(Event.action == "merge", Event.conversation_id == kept.conversation_id)
        ).one()
        event.detail = json.dumps({"from": f"AD-{merged.conversation_id}", "messages": 1, "tags": []})
        session.add(event)
        session.commit()
    with pytest.raises(InvalidInput, match="agentdesk move"):
        undo.undo(Desk(desk.settings, agent="tester", now=lambda: LATER), f"AD-{merged.conversation_id}")
    with Session(engine) as session:
        assert session.get(Conversation, merged.conversation_id).merged_into_id == kept.conversation_id
