"""Satisfaction answers as customers write them, and the knowledge base: indexing, ranking on the
demo's articles (SQLite FTS5 and PostgreSQL tsvector), usage counting, a receipt's suggestions."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import factories
import pytest
from conftest import FIXED_NOW

from agentdesk import config
from agentdesk.demo import build
from agentdesk.domain import clocks, csat, knowledge_base, receipts
from agentdesk.ingest import ingest_message
from agentdesk.store import db
from agentdesk.store.models import Conversation, Message

T = FIXED_NOW


@pytest.mark.parametrize(
    ("reply", "rating", "comment", "more"),
    [
        ("5, thanks!", 5, "thanks!", False),
        ("4/5", 4, "", False),
        ("Rating: 3", 3, "", False),
        ("★★★★☆ quick and friendly", 4, "quick and friendly", False),
        ("good", 4, "", False),
        ("Gut, danke", 4, "danke", False),
        ("sehr schlecht", 1, "", False),
        ("très bien merci", 5, "merci", False),
        ("mauvais", 2, "", False),
        ("muy bien", 5, "", False),
        ("not good", 2, "", False),
        ("👍", 5, "", False),
        ("👎", 2, "", False),
        (
            "2 - it charges again but the display stays dark. What can I do?",
            2,
            "it charges again but the display stays dark. What can I do?",
            True,
        ),
        ("5\n\nOn Mon, 7 Dec 2026 Support wrote:\n> How did we do? Reply 1-5\n", 5, "", False),
    ],
)
def test_a_rating_is_read_first_thing_in_the_reply(reply, rating, comment, more):
    answer = csat.read_answer(reply)
    assert answer == csat.Answer(rating, comment, more)


@pytest.mark.parametrize(
    "reply",
    [
        "Thanks for the help",
        "500 euros were charged",
        "5.5 km range only",
        "> how did we do?",
        "",
        "Hello, my battery broke again",
    ],
)
def test_text_without_a_leading_rating_is_no_answer(reply):
    assert csat.read_answer(reply) is None


def test_a_long_comment_is_more_than_a_rating():
    answer = csat.read_answer("4 " + "the new battery works but the lights flicker when I ride over cobbles " * 2)
    assert answer.rating == 4 and answer.more_than_a_rating


@pytest.fixture
def demo_kb(tmp_path) -> Path:
    directory = tmp_path / "kb"
    build.write_articles(directory)
    return directory


@pytest.fixture
def kb_session(any_database_url, demo_kb):
    engine = db.open_database(any_database_url)
    with db.write_session(engine) as session:
        assert knowledge_base.refresh(session, demo_kb, now=T, force=True) == []
        session.commit()
    with db.read_session(engine) as session:
        yield session
    engine.dispose()


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("battery charging", "battery-not-charging"),
        ("winter storage", "battery-storage-winter"),
        ("refund", "returns-and-refunds"),
        ("charged twice", "double-charge"),
        ("bluetooth", "app-pairing"),
        ("squeak*", "brakes-squeak"),
        ("leasing invoice", "business-leasing"),
    ],
)
def test_search_ranks_the_demo_articles(kb_session, query, best):
    found = knowledge_base.search(kb_session, query)
    assert found and found[0].article.slug == best, [m.article.slug for m in found]
    assert all(a.score >= b.score for a, b in zip(found, found[1:]))


def test_a_title_match_ranks_above_a_mention_in_the_body(kb_session):
    slugs = [m.article.slug for m in knowledge_base.search(kb_session, "warranty")]
    assert slugs[0] == "warranty-claims" and "battery-storage-winter" in slugs  # its body mentions warranty


def test_a_customer_message_suggests_the_matching_article(kb_session):
    text = "Hi, my battery stopped charging since yesterday, the charger LED stays green. What now?"
    suggested = [m.article.slug for m in knowledge_base.suggest(kb_session, text)]
    assert suggested[0] == "battery-not-charging"


def test_the_index_follows_the_directory(tmp_path, demo_kb):
    engine = db.open_database(f"sqlite:///{tmp_path / 'kb.db'}")
    with db.write_session(engine) as session:
        knowledge_base.refresh(session, demo_kb, now=T)
        (demo_kb / "brakes-squeak.md").unlink()
        (demo_kb / "tyre-pressure.md").write_text("---\ntitle: Tyre pressure\ntags: tyres\n---\nPump to 3.5 bar.\n")
        (demo_kb / "Not An Article!.md").write_text("x")
        problems = knowledge_base.refresh(session, demo_kb, now=T)
        assert [p.split(":")[0] for p in problems] == ["Not An Article!.md"]
        assert knowledge_base.search(session, "squeak*") == []
        assert [m.article.slug for m in knowledge_base.search(session, "tyre")][0] == "tyre-pressure"
    engine.dispose()


def test_articles_named_in_a_reply_count_as_sent_and_self_service_is_measured(engine, policies, demo_kb):
    with db.write_session(engine) as session:
        knowledge_base.refresh(session, demo_kb, now=T)
        result = ingest_message(
            session, factories.inbound(at=T, body="my battery does not charge"), policies=policies, now=T
        )
        conversation = session.get(Conversation, result.conversation_id)
        from agentdesk.domain import queue, replies

        reply = replies.reply(
            session,
            conversation=conversation,
            agent="tester",
            agent_name="Terry",
            now=T,
            policies=policies,
            body="Please try this:\n\nBattery not charging: "
            "https://help.northwind-bikes.example/articles/battery-not-charging",
        )
        assert knowledge_base.record_sent(session, message=reply, now=T) == ["battery-not-charging"]
        queue.change(
            session,
            conversation=conversation,
            agent="tester",
            now=T + timedelta(hours=1),
            policies=policies,
            status="solved",
        )
        session.commit()
        [use] = knowledge_base.usage(session)
        assert (use.slug, use.sent, use.conversations, use.solved_without_reply) == ("battery-not-charging", 1, 1, 1)


def test_a_receipt_lists_the_articles_that_match_the_first_message(config_file, tmp_path, demo_kb):
    text = config_file.read_text() + (
        f'[kb]\ndir = "{demo_kb}"\n[[mailbox]]\nname = "support"\naddress = "support@northwind.example"\n'
        'host = "imap.northwind.example"\nreceipt = "receipt"\n'
    )
    settings = config.parse(text, source=config_file)
    settings.templates_dir.mkdir(parents=True, exist_ok=True)
    (settings.templates_dir / "receipt.md").write_text(
        "We received your message ({{ ref }}).\n{% if articles %}While you wait, these may help:\n"
        "{{ articles }}\n{% endif %}",
        encoding="utf-8",
    )
    engine = db.open_database(settings.database_url)
    policies = clocks.Policies.from_settings(settings)
    bodies = []
    for body in ("The app cannot find my bike over bluetooth, pairing fails.", "Hello?"):
        with db.write_session(engine) as session:
            message = factories.inbound(at=T, body=body, subject="Question", sender=f"c{len(bodies)}@velo.example")
            result = ingest_message(session, message, policies=policies, now=T)
            receipt = receipts.maybe_queue_receipt(
                session,
                conversation=session.get(Conversation, result.conversation_id),
                message=session.get(Message, result.message_id),
                settings=settings,
                policies=policies,
                now=T,
                inbound=message,
            )
            session.commit()
            bodies.append(receipt.body_text)
    assert "these may help:\n- Pairing the Northwind app with your bike: https://" in bodies[0]
    assert "may help" not in bodies[1] and "[[" not in bodies[1]  # nothing matches: no list, still a receipt
    with db.read_session(engine) as session:
        listed = {a.slug for a in knowledge_base.all_articles(session) if a.url in bodies[0]}
        assert "app-pairing" in listed and {u.slug for u in knowledge_base.usage(session)} == listed
    engine.dispose()


def test_survey_answer_and_report_on_either_database(any_database_url, tmp_path):
    """The survey decision, the answer on ingest and the report's figures, with a fixed `now`,
    on SQLite and on a real PostgreSQL."""
    from agentdesk.domain import documents, queue

    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "csat.md").write_text("How did we do with {{ ref }}? Reply 1-5.\n", encoding="utf-8")
    settings = config.parse(
        f'[database]\nurl = "{any_database_url}"\n[templates]\ndir = "{templates}"\n'
        '[[mailbox]]\nname = "support"\naddress = "support@northwind.example"\nhost = "imap.example"\n'
        'csat = "csat"\ncsat_delay = "2h"\n',
        source=tmp_path / "config.toml",
    )
    policies = clocks.Policies.from_settings(settings)
    engine = db.open_database(any_database_url)
    with db.write_session(engine) as session:
        first = ingest_message(
            session,
            factories.inbound(at=T, body="my battery does not charge"),
            policies=policies,
            now=T,
            settings=settings,
        )
        machine = ingest_message(
            session,
            factories.inbound(at=T, sender="no-reply@shop.example", subject="Order"),
            policies=policies,
            now=T,
            settings=settings,
        )
        for conversation_id in (first.conversation_id, machine.conversation_id):
            conversation = session.get(Conversation, conversation_id)
            conversation.assignee = "dana"
            queue.change(session, conversation=conversation, agent="dana", now=T, policies=policies, status="solved")
        session.commit()
        assert csat.queue_due_surveys(session, settings=settings, policies=policies, now=T + timedelta(hours=1)) == []
        written = csat.queue_due_surveys(session, settings=settings, policies=policies, now=T + timedelta(hours=2))
        session.commit()
        assert sorted((s.conversation_id, bool(s.message_id), s.skipped[:28]) for s in written) == [
            (first.conversation_id, True, ""),
            (machine.conversation_id, False, "no-reply@shop.example is a m"),
        ]
        assert csat.queue_due_surveys(session, settings=settings, policies=policies, now=T + timedelta(hours=9)) == []
        survey = session.get(Message, written[0].message_id if written[0].message_id else written[1].message_id)
        assert survey.kind == "survey" and "How did we do" in survey.body_text
        later = T + timedelta(hours=3)
        ingest_message(
            session,
            factories.inbound(at=later, body="4 - quick, thanks", in_reply_to=survey.external_id),
            policies=policies,
            now=later,
            settings=settings,
        )
        session.commit()
        conversation = session.get(Conversation, first.conversation_id)
        # Still solved, and the rating moved no customer clock: nobody waits on us for it.
        assert conversation.status == "solved" and conversation.last_customer_message_at == T
        [document] = documents.documents(session, [conversation], policies=policies, now=later)
        assert document["csat"] == {"rating": 4, "comment": "quick, thanks", "at": later.isoformat()}
        figures = csat.report(session, since=T - timedelta(days=1), until=T + timedelta(days=1))
        assert (figures["sent"], figures["responses"], figures["csat"], figures["response_rate"]) == (1, 1, 1.0, 1.0)
        assert figures["by_agent"][0]["agent"] == "dana" and figures["by_channel"][0]["channel"] == "email"
        assert figures["over_time"] == [
            {
                "period": T.date().isoformat(),
                "sent": 1,
                "responses": 1,
                "satisfied": 1,
                "csat": 1.0,
                "response_rate": 1.0,
                "average": 4.0,
            }
        ]
        # The article usage's own SQL (time bounds, the survey-answer exclusion) on this database too.
        assert knowledge_base.usage(session, since=T - timedelta(days=1), until=T + timedelta(days=1)) == []
    engine.dispose()


def test_a_channels_survey_and_receipt_templates_are_not_suggested_as_replies(config_file):
    from types import SimpleNamespace

    from agentdesk.app import templates
    from agentdesk.app.desk import Desk

    settings = config.parse(
        config_file.read_text() + '[[mailbox]]\nname = "support"\naddress = "s@example.com"\n'
        'host = "imap.example"\nreceipt = "receipt"\ncsat = "csat"\n',
        source=config_file,
    )
    settings.templates_dir.mkdir(parents=True, exist_ok=True)
    for name, body in (
        ("csat", "How did we do with your battery? Reply 1-5."),
        ("receipt", "We received your message about the battery."),
        ("battery-help", "Charge the battery indoors; a cold battery refuses to charge."),
    ):
        (settings.templates_dir / f"{name}.md").write_text(body, encoding="utf-8")
    thread = SimpleNamespace(
        conversation=SimpleNamespace(subject="Battery will not charge"),
        items=[SimpleNamespace(kind="inbound", body="my battery does not charge")],
    )
    suggested = [t.name for t, _ in templates.suggestions(Desk(settings), thread)]
    assert suggested == ["battery-help"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("See Battery not charging: https://h.example/battery", ["battery"]),
        ("Try this:\n\nTyre pressure\n\nPump to 3.5 bar.", ["tyres"]),  # the picker's text: title on its own line
        ("- Battery not charging: https://h.example/battery\n- Tyre pressure", ["battery", "tyres"]),  # a receipt list
        ("Your battery is not charging? Tyre pressure matters too, see the manual.", []),  # words in a sentence
    ],
)
def test_an_article_is_named_by_its_url_or_its_title_on_a_line_of_its_own(body, named):
    articles = [("battery", "Battery not charging", "https://h.example/battery"), ("tyres", "Tyre pressure", "")]
    assert knowledge_base.named_in(body, articles) == named


def test_the_kb_commands(config_file, capsys):
    """`kb search --json`, `kb show`, `kb stats` on the demo articles (kb/ beside the config file)."""
    import json

    from agentdesk import cli

    build.write_articles(config_file.parent / "kb")
    (config_file.parent / "kb" / "Odd Name.md").write_text("x", encoding="utf-8")

    def run(*args):
        code = cli.main(["--config", str(config_file), *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, err = run("kb", "search", "charg*", "--json")
    found = json.loads(out)
    assert code == 0 and found[0]["slug"] == "battery-not-charging"
    assert set(found[0]) == {"slug", "title", "tags", "url", "score", "excerpt"}
    assert "Odd Name.md" in err
    code, out, _ = run("kb", "show", "brakes-squeak")
    assert code == 0 and out.startswith("Squeaking or weak brakes\n") and "isopropyl" in out
    code, _, err = run("kb", "show", "no-such-article")
    assert code != 0 and "no article 'no-such-article'" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run("kb", "stats", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = run("report")
    assert code == 0 and "satisfaction (CSAT): no survey went out in this period" in out
