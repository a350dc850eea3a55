"""A database that refuses writes (read-only to this user) is one line in the TUI, never a traceback."""

from __future__ import annotations

from sqlalchemy import event

from tests.tui.conftest import settle

SIZE = (120, 40)


async def test_a_read_only_database_is_one_notification(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        engine = app.desk.engine
        engine.dispose()

        # SQLite's own refusal, as for a file this user cannot write: SQLITE_READONLY on the first write.
        @event.listens_for(engine, "connect")
        def _read_only(dbapi_connection, _record):
            dbapi_connection.execute("PRAGMA query_only = ON")

        await pilot.press("c")  # claim: a write
        await settle(pilot, app)
        messages = [str(n.message) for n in app._notifications]
        refused = [m for m in messages if "read-only for this user" in m]
        assert refused, messages
        assert "\n" not in refused[0] and "Traceback" not in refused[0]
        assert app.is_running
