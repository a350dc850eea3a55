"""Pilot-driven flows: what an agent does in a shift, checked against the database."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from agentdesk.app import queue as queue_actions
from agentdesk.app.queue import Filter
from agentdesk.store.models import Conversation, ConversationTag, Draft, Message, Outbox
from agentdesk.tui.screens.composer import ComposerScreen
from agentdesk.tui.screens.dialogs import ChoiceScreen, PromptScreen
from agentdesk.tui.screens.help import HelpScreen
from tests.tui.conftest import AGENT, FIXED_NOW, engine_of, settle

SIZE = (120, 40)


def current(app):
    return app.main.queue.current_row


async def test_queue_opens_on_all_open_in_urgency_order(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        queue = app.main.queue
        assert queue.count == queue_actions.count(app.desk, Filter("open"))
        rows = [queue.row_at(i) for i in range(queue.count)]
        assert all(rows)
        keys = [(r.queue_due, r.waiting_since is None, r.id) for r in rows]
        assert [r.queue_due for r in rows] == sorted(r.queue_due for r in rows)
        assert keys
        # The thread of the highlighted row is open beside it.
        assert app.main.thread.conversation.id == rows[0].id


async def test_cursor_paging_past_the_first_window(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("7")  # Solved: bigger than one window of 100
        await settle(pilot, app)
        queue = app.main.queue
        assert queue.count > queue.WINDOW
        await pilot.press("G")
        await settle(pilot, app)
        assert queue.cursor == queue.count - 1
        assert current(app) is not None
        # Read backwards from the end: the same last row as an offset read.
        assert (
            current(app).id
            == queue_actions.window(app.desk, Filter("solved"), offset=queue.count - 1, limit=1).rows[0].id
        )
        assert (
            queue.row_at(queue.count - queue.WINDOW).id
            == queue_actions.window(app.desk, Filter("solved"), offset=queue.count - queue.WINDOW, limit=1).rows[0].id
        )
        await pilot.press("g", "j", "j")
        assert queue.cursor == 2


async def test_reply_with_suggested_template_then_pending(make_app, demo_settings):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        row = current(app)
        await pilot.press("r")
        await settle(pilot, app)
        composer = app.screen
        assert isinstance(composer, ComposerScreen)
        assert composer.suggested, "a demo thread always shares words with some template"
        suggested_name = composer.suggested[0][0].name
        # Nothing written yet: the composer opens on the template filter, the best suggestion highlighted.
        assert composer.focused is composer.query_one("#template-filter")
        await pilot.press("enter")
        body = composer.query_one("#body")
        assert "Best," in body.text
        body.move_cursor(body.document.end)
        await pilot.press(*"PS: thanks")
        await pilot.press("ctrl+g")
        await settle(pilot, app)
        assert app.screen is app.main
        # The demo's config has no mailbox or spool to send through: the agent is told at once.
        assert any(f"no sender for {row.channel} is configured here" in str(n.message) for n in app._notifications)
    with Session(engine_of(demo_settings)) as session:
        conversation = session.get(Conversation, row.id)
        assert conversation.status == "pending"
        reply = session.exec(
            select(Message)
            .where(Message.conversation_id == row.id, Message.direction == "outbound")
            .order_by(Message.id.desc())
        ).first()
        assert reply.body_text.startswith("Hi ")
        assert "PS: thanks" in reply.body_text
        outbox = session.exec(select(Outbox).where(Outbox.message_id == reply.id)).one()
        assert outbox.state == "queued"
        assert session.get(Draft, (row.id, AGENT)) is None
    assert suggested_name


async def test_reply_shows_in_thread(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        row = current(app)
        await pilot.press("n")
        await settle(pilot, app)
        await pilot.press(*"checked the warehouse")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        thread = app.main.thread
        assert thread.conversation.id == row.id
        assert thread.items[-1].kind == "note" or any(
            i.kind == "note" and "checked the warehouse" in i.body for i in thread.items
        )
        rendered = app.main.thread_view.render_thread().plain
        assert "internal note" in rendered and "checked the warehouse" in rendered


async def test_a_long_line_wrapped_in_the_thread_keeps_the_message_s_bar_on_every_row(make_app):
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("n")
        await settle(pilot, app)
        words = " ".join(f"word{n}" for n in range(60))  # ~420 characters: several rows in the pane
        app.screen.query_one("#body").insert(words)
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        lines = [strip.text for strip in app.main.thread_view._lines]
        first = next(i for i, line in enumerate(lines) if "word0 " in line)
        last = next(i for i, line in enumerate(lines) if "word59" in line)
        assert last - first >= 3
        assert all(line.startswith("▌ ") for line in lines[first : last + 1])
        assert " ".join(" ".join(line[2:].split()) for line in lines[first : last + 1]) == words


async def test_undefined_placeholder_blocks_sending(make_app, demo_settings):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        row = current(app)
        await pilot.press("r")
        await settle(pilot, app)
        composer = app.screen
        composer.query_one("#body").load_text("Hi [[order_number?]], on it.")
        await pilot.pause()
        assert "order_number" in str(composer.query_one("#composer-warnings").render())
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert isinstance(app.screen, ComposerScreen)
    with Session(engine_of(demo_settings)) as session:
        assert session.get(Conversation, row.id).version == row.version


async def test_draft_survives_restart(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        row = current(app)
        await pilot.press("r")
        await settle(pilot, app)
        await pilot.press("ctrl+t")  # from the suggested templates to the text
        await pilot.press(*"half a thought")
        await pilot.press("escape")
        await settle(pilot, app)
        assert app.screen is app.main
    again = make_app()
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot, again)
        assert current(again).id == row.id and current(again).has_draft
        await pilot.press("r")
        await settle(pilot, again)
        assert "half a thought" in again.screen.query_one("#body").text


async def test_a_draft_keeps_the_cc_typed_and_the_file_attached(make_app, tmp_path):
    from agentdesk.tui.widgets.envelope import Envelope

    leaflet = tmp_path / "returns.txt"
    leaflet.write_text("How to send a wheel back.\n")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        queue = app.main.queue
        queue.cursor = next(i for i in range(queue.count) if queue.row_at(i).channel == "email")
        await settle(pilot, app)
        row = current(app)
        await pilot.press("r")
        await settle(pilot, app)
        composer = app.screen
        composer.query_one("#envelope-cc").focus()
        await pilot.press(*"workshop@example.com")
        await pilot.pause()
        # What the agent types shows as they type it: a focused field keeps its one line for text
        # (a border drawn on focus left it none).
        assert composer.query_one("#envelope-cc").content_region.height == 1
        await pilot.press("ctrl+o")
        await settle(pilot, app)
        app.screen.query_one("#attach-path").value = str(leaflet)
        await pilot.press("enter")
        await settle(pilot, app)
        assert [f.name for f in composer.query_one(Envelope).files] == ["returns.txt"]
        await pilot.press("escape")
        await settle(pilot, app)
        assert app.screen is app.main
    leaflet.unlink()  # the draft holds its own copy of the file
    again = make_app()
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot, again)
        queue = again.main.queue
        queue.cursor = next(i for i in range(queue.count) if queue.row_at(i).id == row.id)
        await settle(pilot, again)
        assert current(again).has_draft  # files alone make a draft: nothing typed yet is still kept
        await pilot.press("r")
        await settle(pilot, again)
        envelope = again.screen.query_one(Envelope)
        assert [(f.name, f.data) for f in envelope.files] == [("returns.txt", b"How to send a wheel back.\n")]
        assert again.screen.query_one("#envelope-cc").value == "workshop@example.com"
        assert envelope.recipients().cc == ("workshop@example.com",)


def _burst(app, keys: list[str]) -> None:
    """Keys queued at once, the way the terminal driver hands them over (Pilot's press waits for
    the app to be idle after each key)."""
    from textual import events
    from textual.keys import _character_to_key

    for key in keys:
        name = _character_to_key(key) if len(key) == 1 and not key.isalnum() else key
        event = events.Key(name, key if len(key) == 1 else None)
        event.set_sender(app)
        app._driver.send_message(event)


async def test_tab_right_after_typing_completes_the_path_typed_so_far(make_app, tmp_path):
    from agentdesk.tui.widgets.envelope import Envelope

    folder = tmp_path / "shared drive"
    (folder / "returns").mkdir(parents=True)
    (folder / "returns" / "label-2026.pdf").write_bytes(b"%PDF-1.4 label\n")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await settle(pilot, app)
        composer = app.screen
        await pilot.press("ctrl+o")
        await settle(pilot, app)
        # One burst, as a terminal delivers a fast typist's keys: each tab arrives before any
        # suggestion for the letters just typed could have come back from its worker.
        _burst(app, [*f"{tmp_path}/sh", "tab", *"ret", "tab", *"lab", "tab", "enter"])
        await settle(pilot, app)
        assert app.screen is composer
        assert [(f.name, f.data) for f in composer.query_one(Envelope).files] == [
            ("label-2026.pdf", b"%PDF-1.4 label\n")
        ]


async def test_claim_tag_snooze_status(make_app, demo_settings):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        queue = app.main.queue
        # All open: claiming keeps the conversation in the view (in Unassigned it would leave it).
        queue.cursor = next(i for i in range(queue.count) if queue.row_at(i).assignee is None)
        await settle(pilot, app)
        row = current(app)
        await pilot.press("c")
        await settle(pilot, app)
        assert current(app).id == row.id and current(app).assignee == AGENT
        await pilot.press("t")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"+callback vip", "enter")
        await settle(pilot, app)
        assert current(app).id == row.id
        await pilot.press("s")
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("home", "down", "enter")  # new, open
        await settle(pilot, app)
        await pilot.press("z", *"4h", "enter")
        await settle(pilot, app)
    with Session(engine_of(demo_settings)) as session:
        conversation = session.get(Conversation, row.id)
        assert conversation.assignee == AGENT
        assert conversation.status == "open"
        assert conversation.snoozed_until == FIXED_NOW + timedelta(hours=4)
        tags = set(session.exec(select(ConversationTag.tag).where(ConversationTag.conversation_id == row.id)))
        assert {"callback", "vip"} <= tags


async def test_multi_selection_assign(make_app, demo_settings):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("2")
        await settle(pilot, app)
        first = current(app).id
        await pilot.press("x")
        second = current(app).id
        await pilot.press("x", "a")
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("down", "enter")  # the agent after me: dana
        await settle(pilot, app)
    with Session(engine_of(demo_settings)) as session:
        assert {session.get(Conversation, i).assignee for i in (first, second)} == {"dana"}


async def test_search_with_field_filters(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("slash")
        await pilot.press(*"tag:battery status:new,open")
        await pilot.press("enter")
        await settle(pilot, app)
        expected = queue_actions.count(app.desk, Filter("all", "tag:battery status:new,open"))
        assert 0 < expected < queue_actions.count(app.desk, Filter("all"))
        assert app.main.queue.count == expected
        assert app.main.search.query == "tag:battery status:new,open"
        await pilot.press("escape")
        await settle(pilot, app)
        assert app.main.search is None


async def test_bad_search_says_why(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("slash", *"status:nope", "enter")
        await settle(pilot, app)
        assert app.main.search is None
        assert any("status:nope" in n.message for n in app._notifications)


async def test_remapped_keys(make_app, demo_settings):
    demo_settings.keys = {"reply": "f2", "queue.down": "ctrl+n,down", "nonsense": "f9"}
    app = make_app(demo_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await settle(pilot, app)
        assert app.screen is app.main
        await pilot.press("ctrl+n")
        assert app.main.queue.cursor == 1
        await pilot.press("f2")
        await settle(pilot, app)
        assert isinstance(app.screen, ComposerScreen)
        await pilot.press("escape", "question_mark")
        await settle(pilot, app)
        # The composer's escape returned to the queue, and help lists the remapped key.
        assert isinstance(app.screen, HelpScreen)
        import re

        from rich.console import Console

        from agentdesk.tui.screens.help import help_table

        console = Console(record=True, width=120, file=io.StringIO())
        console.print(help_table(app.screen.keymap))
        assert re.search(r"\bf2\s+Reply\b", console.export_text())
        assert any("nonsense" in n.message for n in app._notifications)


async def test_history_conversation_opens(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        history = app.main.thread.customer.history
        if not history:
            pytest.skip("first customer has no history in this demo")
        await pilot.press("h")
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.main.thread.conversation.id == history[0].id
        await pilot.press("escape")
        await settle(pilot, app)
        assert app.main.thread.conversation.id == current(app).id


async def test_live_refresh_keeps_cursor(make_app, demo_settings):
    from agentdesk.domain import clocks, queue
    from agentdesk.store import db

    app = make_app(poll=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.6)
        await pilot.press("j", "j", "j")
        await pilot.pause(0.4)
        row = current(app)
        # Another process changes the conversation under the cursor and the one at the top.
        engine = engine_of(demo_settings)
        policies = clocks.Policies.from_settings(demo_settings)
        top = app.main.queue.row_at(0)
        with db.write_session(engine) as session:
            for conversation_id in (row.id, top.id):
                conversation = session.get(Conversation, conversation_id)
                queue.change(
                    session,
                    conversation=conversation,
                    agent="dana",
                    now=FIXED_NOW,
                    policies=policies,
                    assignee="dana",
                    add_tags=["elsewhere"],
                )
            session.commit()
        for _ in range(20):
            await pilot.pause(0.1)
            if current(app) and current(app).assignee == "dana":
                break
        assert current(app).id == row.id
        assert current(app).assignee == "dana"
        app.workers.cancel_group(app, "poll")


async def test_q_quits_and_escape_leaves_zoom(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await pilot.press("enter")
        assert app.main.has_class("-zoomed")
        await pilot.press("escape")
        assert not app.main.has_class("-zoomed") and app.main.queue.has_focus
        await pilot.press("q")
        await pilot.pause(0.3)
        assert app.return_code == 0 and not app.is_running


async def test_merge_into_another_conversation(make_app, demo_settings):
    from agentdesk.tui.screens.report import ReportScreen  # noqa: F401  (imported by the palette too)

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        queue = app.main.queue
        source, target = queue.row_at(0), queue.row_at(1)
        await pilot.press("m")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*target.ref, "enter")
        await settle(pilot, app)
        assert any(f"{source.ref} merged into {target.ref}" in n.message for n in app._notifications)
        # The source left All open (closed); the target's thread shows the merge.
        assert all(queue.row_at(i).id != source.id for i in range(queue.count))
        await pilot.press("m", *source.ref, "enter")  # merging into a merged one is refused, with the reason
        await settle(pilot, app)
        assert any("merged into" in n.message and n.severity == "error" for n in app._notifications)
    with Session(engine_of(demo_settings)) as session:
        merged = session.get(Conversation, source.id)
        assert merged.merged_into_id == target.id and merged.status == "closed"
        assert session.exec(select(Message).where(Message.conversation_id == source.id)).all() == []


async def test_report_screen_by_key_and_palette(make_app):
    from agentdesk.tui.screens.report import ReportScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("R")
        await settle(pilot, app)
        assert isinstance(app.screen, ReportScreen)
        document = app.screen.document
        assert document is not None and document["backlog"]["open"] > 0
        from rich.console import Console

        from agentdesk.tui.screens.report import compliance_table

        console = Console(record=True, width=120, file=io.StringIO())
        console.print(compliance_table(document))
        text = console.export_text()
        assert "first reply" in text and "%" in text
        await pilot.press("escape")
        assert app.screen is app.main
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert any(t.startswith("Report (R)") for t in titles)
        assert any(t.startswith("Merge (m)") for t in titles)


async def test_live_refresh_on_postgresql_follows_notifications(make_app, postgres_server, tmp_path):
    """On PostgreSQL the queue learns of another process's commit by LISTEN/NOTIFY."""
    from datetime import timedelta

    from factories import inbound, ingest

    from agentdesk import config
    from agentdesk.domain import clocks, queue
    from agentdesk.store import db

    url = postgres_server.create_database("tui_live")
    settings = config.parse(f'[database]\nurl = "{url}"\n', source=tmp_path / "config.toml")
    engine = db.open_database(url)
    policies = clocks.Policies.from_settings(settings)
    for index in range(3):
        ingest(engine, policies, inbound(sender=f"c{index}@x.example", at=FIXED_NOW - timedelta(hours=index)))
    app = make_app(settings, poll=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.8)  # not settle(): the poll worker never completes
        row = current(app)
        assert row is not None and row.assignee is None
        with db.write_session(engine) as session:
            conversation = session.get(Conversation, row.id)
            queue.change(
                session, conversation=conversation, agent="dana", now=FIXED_NOW, policies=policies, assignee="dana"
            )
            session.commit()
        for _ in range(20):
            await pilot.pause(0.1)
            if current(app) and current(app).assignee == "dana":
                break
        assert current(app).assignee == "dana"
        app.workers.cancel_group(app, "poll")
    engine.dispose()


@pytest.mark.parametrize(
    "template",
    [
        "Hi {{ customer_first_name }\n",  # a syntax error
        "{% for i in range(10**9) %}{% for j in range(10**9) %}x{% endfor %}{% endfor %}\n",  # runaway loops
        "{{ 'x' * 10**9 }}\n",  # a gigabyte of text
    ],
)
async def test_a_template_that_cannot_render_is_reported_in_the_composer_and_the_draft_kept(
    make_app, demo_settings, template
):
    (demo_settings.templates_dir / "broken.md").write_text(
        "---\nshortcut: brk\ndescription: broken on purpose\n---\n" + template, encoding="utf-8"
    )
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await settle(pilot, app)
        composer = app.screen
        assert isinstance(composer, ComposerScreen)
        body = composer.query_one("#body")
        body.load_text("My own words so far")
        composer.query_one("#template-filter").focus()
        await pilot.press(*"broken", "enter")
        await settle(pilot, app)
        assert app.screen is composer  # still writing: nothing crashed, nothing closed
        assert body.text == "My own words so far"
        warning = composer.query_one("#composer-warnings")
        assert warning.has_class("-visible")
        assert "template 'broken'" in str(warning.render())


async def test_spam_key_moves_the_conversation_to_the_spam_view_and_back(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        target = current(app).id
        await pilot.press("S")
        await settle(pilot, app)
        assert current(app).id != target  # it left All open
        with Session(app.desk.engine) as session:
            conversation = session.get(Conversation, target)
            assert conversation.aside == "spam" and conversation.first_response_due is None
        await pilot.press("8")  # the Spam view
        await settle(pilot, app)
        assert app.main.filters[app.main.view_index].view == "spam"
        assert [app.main.queue.row_at(i).id for i in range(app.main.queue.count)] == [target]
        await pilot.press("S")  # in the spam view the same key puts it back
        await settle(pilot, app)
        assert app.main.queue.count == 0
        with Session(app.desk.engine) as session:
            assert session.get(Conversation, target).aside == ""
