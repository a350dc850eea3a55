"""Undo (of a send in its window, of an agent's last change) and macros, through the CLI and app."""

from __future__ import annotations

import io
import json
import sys
from datetime import timedelta

import pytest
from conftest import FIXED_NOW
from factories import inbound, ingest
from sqlmodel import Session, select

from agentdesk import cli, config
from agentdesk.app import conversations, macros, undo
from agentdesk.app.desk import Desk
from agentdesk.errors import Conflict, InvalidInput
from agentdesk.store.models import Conversation, ConversationTag, Event, Message, Outbox

MACROS = """
[[macro]]
name = "refund-done"
status = "pending"
priority = "high"
add_tags = ["refund"]
assign = "me"
snooze = "2d"

[[macro]]
name = "with-template"
status = "solved"
add_tags = ["thanked"]
template = "thanks"
"""


@pytest.fixture
def macro_config(config_file, tmp_path):
    config_file.write_text(config_file.read_text(encoding="utf-8") + MACROS, encoding="utf-8")
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "thanks.md").write_text(
        "Thanks {{ customer_first_name }}, all done ({{ ref }}).\n", encoding="utf-8"
    )
    return config_file


@pytest.fixture
def run(macro_config, capsys):
    def invoke(*args: str):
        code = cli.main(["--config", str(macro_config), *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


@pytest.fixture
def ref(engine, policies):
    first = ingest(engine, policies, inbound(at=FIXED_NOW - timedelta(hours=2), external_id="m1@velo.example"))
    return f"AD-{first.conversation_id}"


def _desk(config_file, agent="tester", now=None):
    return Desk(config.load(config_file), agent=agent, now=now or (lambda: FIXED_NOW))


def _conversation(engine, ref) -> Conversation:
    with Session(engine) as session:
        return session.get(Conversation, int(ref.split("-")[1]))


def _tags(engine, ref) -> set[str]:
    with Session(engine) as session:
        return set(
            session.exec(select(ConversationTag.tag).where(ConversationTag.conversation_id == int(ref.split("-")[1])))
        )


def test_a_reply_held_in_its_undo_window_is_taken_back_whole(macro_config, engine, ref):
    desk = _desk(macro_config)
    sent = conversations.reply(desk, ref, "We refunded you today.", delay=10)
    with Session(engine) as session:
        outbox = session.exec(select(Outbox).where(Outbox.message_id == sent.message_id)).one()
        assert outbox.next_attempt_at == FIXED_NOW + timedelta(seconds=10)
    assert _conversation(engine, ref).last_agent_reply_at is not None

    body = conversations.withdraw(desk, ref, sent.message_id)
    assert body == "We refunded you today."  # the signature the reply got is not put back in the composer
    with Session(engine) as session:
        assert session.get(Message, sent.message_id) is None
        assert session.exec(select(Outbox).where(Outbox.message_id == sent.message_id)).first() is None
        actions = [e.action for e in session.exec(select(Event).order_by(Event.id))]
    conversation = _conversation(engine, ref)
    assert conversation.last_agent_reply_at is None and conversation.first_responded_at is None
    # The status the reply moved it to ("new" -> "open") goes back with it, audited.
    assert actions[-1] == "unsend" and conversation.status == "new"
    thread = conversations.thread(desk, conversation.id)
    assert thread.draft is not None and thread.draft.body == "We refunded you today."


def test_a_reply_a_sender_claimed_is_not_taken_back(macro_config, engine, ref):
    desk = _desk(macro_config)
    sent = conversations.reply(desk, ref, "On its way.", delay=10)
    with Session(engine) as session:
        outbox = session.exec(select(Outbox).where(Outbox.message_id == sent.message_id)).one()
        outbox.attempts = 1  # what a claim does, in its own transaction
        session.add(outbox)
        session.commit()
    with pytest.raises(Conflict, match="too late"):
        conversations.withdraw(desk, ref, sent.message_id)
    with Session(engine) as session:
        assert session.get(Message, sent.message_id) is not None


def test_send_now_makes_a_held_reply_due(macro_config, engine, ref):
    desk = _desk(macro_config)
    sent = conversations.reply(desk, ref, "On its way.", delay=30)
    assert "sent now" in conversations.send_now(desk, ref)
    with Session(engine) as session:
        outbox = session.exec(select(Outbox).where(Outbox.message_id == sent.message_id)).one()
    assert outbox.next_attempt_at == FIXED_NOW
    assert "no reply waiting" in conversations.send_now(desk, ref)


def test_reply_delay_on_the_command_line(run, engine, ref):
    sys.stdin = io.StringIO("Soon.")
    try:
        code, _, err = run("reply", ref, "--body-file", "-", "--delay", "20")
    finally:
        sys.stdin = sys.__stdin__
    assert code == 0 and "held 20 s" in err
    with Session(engine) as session:
        outbox = session.exec(select(Outbox)).one()
    assert outbox.next_attempt_at > outbox.created_at


def test_undo_reverts_the_last_change_and_refuses_after_someone_else(run, macro_config, engine, ref):
    code, _, _ = run("set", ref, "--status", "pending", "--tag", "vip")
    assert code == 0
    assert _conversation(engine, ref).status == "pending" and "vip" in _tags(engine, ref)
    code, out, _ = run("undo", ref, "--json")
    assert code == 0, out
    assert json.loads(out)["undone"] == [f"{ref}: undid your status, tag"]
    assert _conversation(engine, ref).status == "new"
    assert "vip" not in _tags(engine, ref)
    code, _, err = run("undo", ref)
    assert code == 2 and "undone already" in err

    conversations.update(_desk(macro_config), ref, priority="urgent")
    conversations.update(_desk(macro_config, agent="dana"), ref, priority="low")
    code, _, err = run("undo", ref)
    assert code == 3 and "changed since" in err and "dana" in err
    assert _conversation(engine, ref).priority == "low"


def test_undo_is_refused_after_a_customer_message(macro_config, engine, policies, ref):
    desk = _desk(macro_config)
    conversations.update(desk, ref, status="pending")
    ingest(
        engine,
        policies,
        inbound(
            at=FIXED_NOW,
            body="Any news?",
            subject="Re: Spokes keep breaking",
            in_reply_to="m1@velo.example",
            external_id="m2@velo.example",
        ),
    )
    later = _desk(macro_config, now=lambda: FIXED_NOW + timedelta(minutes=1))
    with pytest.raises(Conflict, match="new customer message"):
        undo.undo(later, ref)


def test_a_macro_applies_every_step_audited(run, engine, ref):
    code, out, _ = run("macro", "refund-done", ref, "--json")
    assert code == 0, out
    conversation = _conversation(engine, ref)
    assert (conversation.status, conversation.priority, conversation.assignee) == ("pending", "high", "tester")
    assert conversation.snoozed_until is not None and "refund" in _tags(engine, ref)
    with Session(engine) as session:
        actions = {e.action for e in session.exec(select(Event).where(Event.agent == "tester"))}
    assert {"status", "priority", "assign", "snooze", "tag", "macro"} <= actions
    code, _, _ = run("undo", ref)
    assert code == 0
    conversation = _conversation(engine, ref)
    assert conversation.priority == "normal" and conversation.assignee is None and "refund" not in _tags(engine, ref)


def test_a_macro_that_fails_half_way_changes_nothing(run, macro_config, engine, ref, tmp_path):
    (tmp_path / "templates" / "thanks.md").write_text("Thanks {{ order_number }}.\n", encoding="utf-8")
    second = ingest(
        engine,
        _desk(macro_config).policies,
        inbound(
            at=FIXED_NOW - timedelta(hours=1), sender="bo@velo.example", external_id="b1@velo.example", subject="Other"
        ),
    )
    refs = [ref, f"AD-{second.conversation_id}"]
    before = [(_conversation(engine, r).status, _tags(engine, r)) for r in refs]
    code, _, err = run("macro", "with-template", *refs)
    assert code == 2 and "nothing was changed" in err
    assert [(_conversation(engine, r).status, _tags(engine, r)) for r in refs] == before
    with Session(engine) as session:
        assert session.exec(select(Outbox)).first() is None
        assert not session.exec(select(Event).where(Event.action == "macro")).first()


def test_a_macro_with_a_template_replies_to_each(macro_config, engine, ref):
    ran = macros.run(_desk(macro_config), "with-template", [ref])
    assert len(ran.sent) == 1 and _conversation(engine, ref).status == "solved"
    with Session(engine) as session:
        reply = session.exec(select(Message).where(Message.direction == "outbound")).one()
    assert reply.body_text.startswith("Thanks ")


def test_an_unknown_macro_names_the_known_ones(run, ref):
    code, _, err = run("macro", "nope", ref)
    assert code == 2 and "refund-done, with-template" in err


def test_a_macro_without_steps_is_a_config_error(config_file):
    config_file.write_text(config_file.read_text(encoding="utf-8") + '[[macro]]\nname = "empty"\n', encoding="utf-8")
    with pytest.raises(Exception, match="at least one step"):
        config.load(config_file)


def test_withdraw_refuses_a_reply_of_another_agent(macro_config, ref):
    sent = conversations.reply(_desk(macro_config, agent="dana"), ref, "Hi.", delay=10)
    with pytest.raises(Conflict):
        conversations.withdraw(_desk(macro_config), ref, sent.message_id)
    with pytest.raises(InvalidInput):
        conversations.withdraw(_desk(macro_config), ref, 99999)


def test_a_new_template_file_is_picked_up_without_restarting(macro_config, tmp_path):
    from agentdesk.app import templates

    desk = _desk(macro_config)
    assert [t.name for t in templates.all_templates(desk)] == ["thanks"]
    (tmp_path / "templates" / "shipping.md").write_text("Your parcel left today.\n", encoding="utf-8")
    assert [t.name for t in templates.all_templates(desk)] == ["shipping", "thanks"]
    (tmp_path / "templates" / "thanks.md").unlink()
    assert [t.name for t in templates.all_templates(desk)] == ["shipping"]


def test_move_splits_a_misthreaded_message_into_a_new_conversation(run, engine, policies, ref):
    ingest(
        engine,
        policies,
        inbound(
            at=FIXED_NOW - timedelta(hours=1),
            body="Also: my invoice is wrong.",
            subject="Re: Spokes keep breaking",
            in_reply_to="m1@velo.example",
            external_id="m2@velo.example",
        ),
    )
    code, out, err = run("move", ref, "2", "--to", "new", "--json")
    assert code == 0, err
    moved_to = json.loads(out)["to"]
    assert moved_to != ref
    with Session(engine) as session:
        message = session.exec(select(Message).where(Message.external_id == "m2@velo.example")).one()
    assert f"AD-{message.conversation_id}" == moved_to and message.thread_reason == "moved by tester"
    code, _, err = run("move", moved_to, "1", "--to", ref)
    assert code == 0 and f"moved to {ref}" in err
    code, _, err = run("move", ref, "9", "--to", "new")
    assert code == 2 and "no message 9" in err


def test_the_thread_says_why_a_message_joined(macro_config, engine, policies, ref):
    ingest(
        engine,
        policies,
        inbound(
            at=FIXED_NOW - timedelta(hours=1),
            body="Any news?",
            subject="Re: Spokes keep breaking",
            in_reply_to="m1@velo.example",
            external_id="m2@velo.example",
        ),
    )
    thread = conversations.thread(_desk(macro_config), int(ref.split("-")[1]))
    assert [i.provenance for i in thread.items if i.kind == "inbound"] == ["", "joined by its In-Reply-To"]


def test_withdraw_and_undo_on_sqlite_and_postgresql(any_database_url, tmp_path, monkeypatch):
    """Team features: the conditional delete of a held reply and the undo read of the audit log
    behave the same on both databases."""
    from conftest import BASIC_CONFIG

    path = tmp_path / "pg-config.toml"
    path.write_text(
        f'[database]\nurl = "{any_database_url}"\n[templates]\ndir = "{tmp_path / "templates"}"\n' + BASIC_CONFIG,
        encoding="utf-8",
    )
    settings = config.load(path)
    desk = Desk(settings, agent="tester", now=lambda: FIXED_NOW)
    from agentdesk.domain import clocks

    conversation = ingest(
        desk.engine,
        clocks.Policies.from_settings(settings),
        inbound(at=FIXED_NOW - timedelta(hours=2), external_id="pg1@velo.example"),
    )
    ref = f"AD-{conversation.conversation_id}"
    sent = conversations.reply(desk, ref, "Held.", delay=10)
    assert conversations.withdraw(desk, ref, sent.message_id) == "Held."
    with pytest.raises(InvalidInput):
        conversations.withdraw(desk, ref, sent.message_id)  # gone: nothing to take back twice
    conversations.update(desk, ref, status="pending", add_tags=["pg"])
    assert undo.undo(desk, ref) == [f"{ref}: undid your status, tag"]
    conversations.update(desk, ref, priority="high")
    conversations.update(Desk(settings, agent="dana", now=lambda: FIXED_NOW), ref, priority="low")
    with pytest.raises(Conflict):
        undo.undo(desk, ref)
    desk.engine.dispose()
