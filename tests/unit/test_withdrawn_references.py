"""A reply taken back in its undo window leaves nothing naming its id. On SQLite the next message
stored is given that very id (the table has no AUTOINCREMENT: the largest rowid plus one), so a row
left behind would say the new reply was taken back, or carry the old one's files; on PostgreSQL
(a sequence: no id twice) it would dangle. Both databases, through the app layer and the CLI."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import BASIC_CONFIG, FIXED_NOW
from factories import inbound, ingest
from sqlmodel import SQLModel, select

from agentdesk import cli, config
from agentdesk.app import conversations, kb
from agentdesk.app.desk import Desk
from agentdesk.demo import build
from agentdesk.domain import clocks
from agentdesk.domain.outbound import OutgoingFile
from agentdesk.errors import Conflict
from agentdesk.store import db, message_removal
from agentdesk.store.models import (
    Attachment,
    DeliveryAttempt,
    Event,
    Message,
    Outbox,
    SatisfactionSurvey,
    id_of,
)


@pytest.fixture
def team(any_database_url, tmp_path):
    """A config on this database (with the demo's knowledge base), its desk, and a conversation."""
    (tmp_path / "templates").mkdir()
    build.write_articles(tmp_path / "kb")
    path = tmp_path / "team.toml"
    path.write_text(
        f'[database]\nurl = "{any_database_url}"\n[templates]\ndir = "{tmp_path / "templates"}"\n'
        f'[kb]\ndir = "{tmp_path / "kb"}"\n'
        '[agents.tester]\nname = "Terry Tester"\nsignature = "Terry, Example Support"\n' + BASIC_CONFIG,
        encoding="utf-8",
    )
    settings = config.load(path)
    desk = Desk(settings, agent="tester", now=lambda: FIXED_NOW)
    stored = ingest(
        desk.engine,
        clocks.Policies.from_settings(settings),
        inbound(at=FIXED_NOW - timedelta(hours=2), external_id="w1@velo.example"),
    )
    yield path, desk, f"AD-{stored.conversation_id}"
    desk.engine.dispose()


def _events_naming(desk: Desk, message_id: int) -> list[tuple[str, dict]]:
    """Every audit event whose detail names the message, under any key of a message id."""
    with db.read_session(desk.engine) as session:
        events = session.exec(select(Event).order_by(Event.id)).all()
    found = []
    for event in events:
        detail = json.loads(event.detail)
        if any(key.endswith("message_id") and value == message_id for key, value in detail.items()):
            found.append((event.action, detail))
    return found


def _audit(path, ref: str, capsys, *extra: str) -> str:
    capsys.readouterr()
    assert cli.main(["--config", str(path), "audit", "--ref", ref, *extra]) == 0
    return capsys.readouterr().out


def test_after_a_withdrawal_the_audit_log_names_the_next_reply_only_for_itself(team, capsys, any_database_url):
    path, desk, ref = team
    held = conversations.reply(desk, ref, "Oops, this was for\nanother customer entirely, sorry about that.", delay=10)
    assert held.message_id is not None
    conversations.withdraw(desk, ref, held.message_id)
    sent = conversations.reply(desk, ref, "Your refund went out today.")
    assert sent.message_id is not None
    if any_database_url.startswith("sqlite"):
        assert sent.message_id == held.message_id  # the id is reused: what made the old rows lie

    # The reply's event also keeps what a withdrawal would put back (its clocks' and status).
    assert [
        (action, {key: value for key, value in detail.items() if key.endswith("message_id")})
        for action, detail in _events_naming(desk, sent.message_id)
    ] == [("reply", {"message_id": sent.message_id})]

    # What a person reads: the reply that was taken back, by when it was written and its first
    # words; neither it nor the unsend names the new reply's id.
    lines = [line.split(None, 4) for line in _audit(path, ref, capsys).splitlines()]
    replies_and_unsends = [
        (line[2], " ".join(word for word in (line[4] if len(line) > 4 else "").split(" ") if "_before=" not in word))
        for line in lines
        if line[2] in ("reply", "unsend")
    ]
    assert replies_and_unsends == [
        ("reply", "message_id="),
        (
            "unsend",
            "first_words=Oops, this was for another customer entirely, sorry about… "
            "message_id= status=new written=2026-11-17T09:30:00+00:00",
        ),
        ("reply", f"message_id={sent.message_id}"),
    ]
    documents = json.loads(_audit(path, ref, capsys, "--json"))
    unsend = next(d for d in documents if d["action"] == "unsend")
    assert unsend["detail"]["message_id"] is None
    assert unsend["detail"]["first_words"].startswith("Oops, this was for another customer")

    # The thread says which reply was taken back, and the new one is the only reply in it.
    thread = conversations.thread(desk, int(ref.split("-")[1]))
    assert [item.body for item in thread.items if item.kind == "outbound"] == [
        "Your refund went out today.\n\n-- \nTerry, Example Support"
    ]
    assert any(
        item.kind == "event" and item.body.startswith("took back a reply before it was sent: “Oops, this was for")
        for item in thread.items
    )


def test_a_withdrawn_replys_files_and_articles_do_not_pass_to_the_next_reply(team):
    path, desk, ref = team
    kb.refresh(desk, force=True)
    held = conversations.reply(
        desk,
        ref,
        "Battery not charging: https://help.northwind-bikes.example/articles/battery-not-charging",
        files=[OutgoingFile("invoice.pdf", b"%PDF-1.4 not for this customer", "application/pdf")],
        delay=10,
    )
    assert [use["slug"] for use in kb.usage(desk)] == ["battery-not-charging"]
    assert held.message_id is not None
    conversations.withdraw(desk, ref, held.message_id)
    # The file is not lost: the withdrawal made it the draft's again.
    draft = conversations.thread(desk, int(ref.split("-")[1])).draft
    assert draft is not None and [f["name"] for f in json.loads(draft.envelope)["files"]] == ["invoice.pdf"]
    sent = conversations.reply(desk, ref, "Your refund went out today.")

    thread = conversations.thread(desk, int(ref.split("-")[1]))
    [reply] = [item for item in thread.items if item.kind == "outbound"]
    assert reply.attachments == ()
    assert kb.usage(desk) == []  # the article was never sent
    with db.read_session(desk.engine) as session:
        assert session.exec(select(Attachment).where(Attachment.message_id == sent.message_id)).all() == []


def test_a_reply_queued_again_after_a_failed_attempt_is_not_taken_back(team):
    """Its delivery history says it was tried: it may have reached the customer, so it stays in the
    thread (and its attempts keep their outbox row)."""
    path, desk, ref = team
    sent = conversations.reply(desk, ref, "First try.")
    with db.write_session(desk.engine) as session:
        outbox = session.exec(select(Outbox).where(Outbox.message_id == sent.message_id)).one()
        outbox.state, outbox.attempts = "possibly_sent", 1
        session.add(outbox)
        session.add(DeliveryAttempt(outbox_id=id_of(outbox), started_at=FIXED_NOW, outcome="possibly_sent"))
        session.commit()
    conversations.resend(desk, ref, 2)  # queued again, its attempts counted from 0
    assert sent.message_id is not None
    with pytest.raises(Conflict, match="too late"):
        conversations.withdraw(desk, ref, sent.message_id)
    with db.read_session(desk.engine) as session:
        assert session.get(Message, sent.message_id) is not None
        assert len(session.exec(select(DeliveryAttempt)).all()) == 1


def test_a_removed_message_leaves_its_history_rows_without_its_id(team):
    """The rows that are history of something else keep standing, without the id: a survey and its
    answer, the bounce that failed a reply, an event that moved the message."""
    path, desk, ref = team
    conversation_id = int(ref.split("-")[1])
    with db.read_session(desk.engine) as session:
        [customer_message] = session.exec(select(Message).where(Message.conversation_id == conversation_id)).all()
    answer = id_of(customer_message)
    sent = conversations.reply(desk, ref, "Sent and bounced.")
    with db.write_session(desk.engine) as session:
        survey_message = Message(
            conversation_id=conversation_id, direction="outbound", kind="survey", at=FIXED_NOW, ingested_at=FIXED_NOW
        )
        session.add(survey_message)
        session.flush()
        survey = id_of(survey_message)
        outbox = session.exec(select(Outbox).where(Outbox.message_id == sent.message_id)).one()
        outbox.state, outbox.bounce_message_id = "failed", answer
        session.add(outbox)
        session.add(
            SatisfactionSurvey(
                conversation_id=conversation_id, message_id=survey, sent_at=FIXED_NOW, answer_message_id=answer
            )
        )
        session.add(
            Event(
                at=FIXED_NOW,
                agent="tester",
                action="move_message",
                conversation_id=conversation_id,
                detail=json.dumps({"from_message_id": answer, "message_id": answer * 10, "to": "AD-9"}),
            )
        )
        session.commit()
    with db.write_session(desk.engine) as session:
        assert message_removal.remove(session=session, message_id=answer)
        assert message_removal.remove(session=session, message_id=survey)
        session.commit()
    with db.read_session(desk.engine) as session:
        assert session.get(Message, answer) is None and session.get(Message, survey) is None
        assert session.exec(select(Outbox).where(Outbox.message_id == sent.message_id)).one().bounce_message_id is None
        stored = session.get(SatisfactionSurvey, conversation_id)
        assert stored is not None and (stored.message_id, stored.answer_message_id) == (None, None)
    assert _events_naming(desk, answer) == [] and _events_naming(desk, survey) == []
    moved = [detail for action, detail in _events_naming(desk, answer * 10) if action == "move_message"]
    assert moved == [{"from_message_id": None, "message_id": answer * 10, "to": "AD-9"}]


def test_every_column_that_holds_a_message_id_is_decided_on_removal():
    """A new table (or column) naming messages must say what a message's removal does to it."""
    holding = {
        (table.name, column.name)
        for table in SQLModel.metadata.sorted_tables
        for column in table.columns
        if column.name.endswith("message_id") or any(fk.target_fullname == "message.id" for fk in column.foreign_keys)
    }
    assert holding == set(message_removal.REFERENCES)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("Short one.", "Short one."),
        ("Two\n\nlines\tand   spaces", "Two lines and spaces"),
        ("Refund \u202edone\u202c now", "Refund done now"),  # a bidi override would reorder the audit line
        ("word " * 20, "word word word word word word word word word word word word…"),
        ("x" * 70, "x" * 60 + "…"),
    ],
)
def test_the_unsend_event_names_the_reply_by_its_first_words_on_one_inert_line(body, words):
    from agentdesk.domain.replies import first_words

    assert first_words(body) == words
