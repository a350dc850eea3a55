"""The knowledge base in the composer (the article picker, suggestions beside the templates) and
ratings in the thread, the customer pane and the report screen, driven with Pilot."""

from __future__ import annotations

import io
import time

from sqlmodel import Session, select
from textual.widgets import Input, OptionList

from agentdesk.store.models import ArticleUse, Message, SatisfactionSurvey
from agentdesk.tui.screens.composer import ComposerScreen
from agentdesk.tui.screens.kb_picker import KbPickerScreen
from agentdesk.tui.screens.report import ReportScreen, csat_table, knowledge_base_table
from tests.tui.conftest import engine_of, settle

SIZE = (120, 40)


async def test_an_article_searched_in_the_composer_is_inserted_as_a_link_and_counted_as_sent(make_app, demo_settings):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        conversation_id = app.main.queue.current_row.id
        await pilot.press("r")
        await settle(pilot, app)
        composer = app.screen
        assert isinstance(composer, ComposerScreen)
        await pilot.press("f4")
        await settle(pilot, app)
        assert isinstance(app.screen, KbPickerScreen)
        await pilot.press(*"winter storage")
        await settle(pilot, app)
        options = app.screen.query_one("#kb-articles", OptionList)
        assert options.get_option_at_index(options.highlighted).id == "battery-storage-winter"
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.screen is composer
        body = composer.query_one("#body")
        assert (
            "Storing your e-bike battery over winter: https://help.northwind-bikes.example/articles/battery-winter"
        ) in body.text
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert app.screen is app.main
    with Session(engine_of(demo_settings)) as session:
        reply = session.exec(
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.direction == "outbound")
            .order_by(Message.id.desc())
        ).first()
        uses = session.exec(select(ArticleUse).where(ArticleUse.message_id == reply.id)).all()
        assert [use.slug for use in uses] == ["battery-storage-winter"]


async def test_the_picker_inserts_the_text_and_escape_inserts_nothing(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await settle(pilot, app)
        composer = app.screen
        body = composer.query_one("#body")
        before = body.text
        await pilot.press("f4", *"squeak*")
        await settle(pilot, app)
        await pilot.press("escape")
        await settle(pilot, app)
        assert app.screen is composer and body.text == before
        await pilot.press("f4", *"squeak*")
        await settle(pilot, app)
        await pilot.press("ctrl+t")
        await settle(pilot, app)
        assert "Squeaking or weak brakes\n\nNew disc brakes squeak" in body.text
        assert body.text.rstrip().endswith("https://help.northwind-bikes.example/articles/brakes")


async def test_articles_are_suggested_beside_the_templates(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        # A conversation about the battery: its suggested articles lead with the battery ones.
        await pilot.press("slash", *"tag:battery status:new,open", "enter")
        await settle(pilot, app)
        await pilot.press("r")
        await settle(pilot, app)
        composer = app.screen
        assert isinstance(composer, ComposerScreen)
        assert composer.suggested_articles and composer.suggested_articles[0].slug.startswith("battery")
        options = composer.query_one("#templates", OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert f"a:{composer.suggested_articles[0].slug}" in ids
        composer.query_one("#template-filter", Input).focus()
        options.highlighted = ids.index(f"a:{composer.suggested_articles[0].slug}")
        await pilot.press("enter")
        await settle(pilot, app)
        assert "https://help.northwind-bikes.example/articles/battery" in composer.query_one("#body").text


async def test_ratings_show_in_the_thread_the_customer_pane_and_the_report(make_app, demo_settings):
    with Session(engine_of(demo_settings)) as session:
        survey = session.exec(select(SatisfactionSurvey).where(SatisfactionSurvey.rating == 5)).first()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.main.load_thread(survey.conversation_id)
        await settle(pilot, app)
        rendered = app.main.thread_view.render_thread().plain
        assert "satisfaction survey" in rendered and "rated 5/5 ★★★★★" in rendered
        card = app.main.thread.customer
        assert any(rating == 5 for _, rating, _, _ in card.ratings)
        pane = str(app.main.query_one("#customer-card").render())
        assert "rated " in pane and " well · latest " in pane
        await pilot.press("R")
        await settle(pilot, app)
        assert isinstance(app.screen, ReportScreen)
        text = _text(csat_table(app.screen.document))
        assert "Satisfaction (CSAT):" in text and "answered" in text and "agent tester" in text
        assert "policy email" in text and "channel sms" in text and "★★★★★" in text
        assert "Knowledge base: articles sent" in _text(knowledge_base_table(app.screen.document))


def _text(renderable) -> str:
    from rich.console import Console

    console = Console(width=120, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


async def test_a_bad_rating_of_my_conversation_shows_a_warning_with_the_comment_as_text(make_app, demo_settings):
    from datetime import timedelta

    from agentdesk.domain import audit
    from agentdesk.store import db
    from tests.tui.conftest import AGENT, FIXED_NOW

    app = make_app(poll=True)  # alerts come with the database's changes (its watcher never settles)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)
        engine = engine_of(demo_settings)
        with db.write_session(engine) as session:
            # A customer's comment is theirs to write: markup in it is text, not a crash or a style.
            for assignee, comment in ((AGENT, "still broken [/] [bold red]"), ("dana", "not mine")):
                audit.record(
                    session,
                    agent=audit.SYSTEM,
                    action="csat_alert",
                    now=FIXED_NOW + timedelta(minutes=1),
                    conversation_id=3,
                    rating=1,
                    assignee=assignee,
                    comment=comment,
                )
            session.commit()
        shown: list[str] = []
        deadline = time.monotonic() + 20  # the watcher's poll, then the alert check in a worker
        while time.monotonic() < deadline:
            await pilot.pause(0.1)
            shown = [str(n.message) for n in app._notifications]
            if any("AD-3 was rated" in m for m in shown):
                break
        assert any("AD-3 was rated 1/5" in m and "still broken [/] [bold red]" in m for m in shown), shown
        assert not any("not mine" in m for m in shown)
        assert app.alert_count == 1
        # Drawn as text: the comment's brackets are not read as markup (a style, or an error).
        (toast,) = [n for n in app._notifications if "AD-3" in n.message]
        assert toast.markup is False
