"""The agent workstation: `run(settings)` opens it (the CLI's `agentdesk` and `agentdesk demo`).

The app owns what outlives a screen: the `Desk` (the acting agent that `agentdesk.app`'s actions take), the
clock (injectable, so tests and snapshots freeze time), the keymap from the config's `[keys]`,
and the live-refresh poller that notices commits by other processes (sync, other agents, the CLI).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from textual.app import App, SystemCommand
from textual.screen import Screen

from agentdesk import config
from agentdesk.app import presence, queue
from agentdesk.app.desk import Commits, Desk, system_now
from agentdesk.app.layer import load_database_layer
from agentdesk.tui import actions
from agentdesk.tui.messages import DatabaseChanged, PresenceChanged, SyncStateChanged
from agentdesk.tui.screens.main import MainScreen  # here, not at mount: the first paint pays no import
from agentdesk.tui.widgets import shown, shown_line
from agentdesk.tui.workers import work

if TYPE_CHECKING:
    from agentdesk.app.alerts import AlertFeed


class AgentDeskApp(App[int]):
    TITLE = "agentdesk"
    # The main screen's CSS is parsed with the app's at start: pushing a screen with a CSS_PATH of
    # its own re-parses the whole stylesheet, on the first paint.
    CSS_PATH = ["app.tcss", "screens/main.tcss"]
    BINDINGS = actions.bindings("app")
    # The palette lists our actions (from the one table) next to Textual's own (theme, keys, quit).
    ENABLE_COMMAND_PALETTE = True
    COMMAND_PALETTE_BINDING = "ctrl+p"
    CURSOR_BLINK = True  # tests switch it off so snapshots are stable
    POLL_INTERVAL = 0.5  # seconds between checks for other processes' commits (changes must show within 2 s)
    ALERT_INTERVAL = 15.0  # seconds between checks for SLA warnings (the rest comes with commits)

    def __init__(
        self,
        settings: config.Settings,
        *,
        now: Callable[[], datetime] | None = None,
        agent: str | None = None,
        poll: bool = True,
        default_view: str = "open",
        presence: bool = True,
        engine=None,
        sync: bool | None = None,
        sync_recheck: float = 15.0,
        first_read: queue.FirstRead | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.now = now or system_now
        self.desk = Desk(settings, agent=agent or config.current_agent(), now=self.now, engine_given=engine)
        # The first rows' read, started now if the caller has not (on PostgreSQL: connecting).
        self.first_read: queue.FirstRead | None = first_read if first_read is not None else queue.FirstRead(settings)
        self.poll = poll
        self.default_view = default_view
        self.keymap, self.unknown_keys = actions.keymap(settings.keys)
        self.main: MainScreen | None = None
        self.presence = presence
        self.presence_target: tuple[int | None, str] = (None, "viewing")
        self.colleagues: dict[int, str] = {}
        self._background_started = False
        self.alert_count = 0  # alerts since the agent last looked at Mine (the header shows it)
        self.alert_feed: AlertFeed | None = None
        self.alerts_on = False
        self._making_alert_feed = threading.Lock()
        # The sync this app runs while no `agentdesk sync` does ([ui] sync; tests choose).
        self.own_sync = None
        self.sync_state: tuple[str, str] = ("off", "")
        if (settings.ui.sync if sync is None else sync) and (settings.mailbox or settings.spool):
            # Imported here, not at the top: a desk without sources (the demo) never loads the sync.
            from agentdesk.app.sync import DeskSync

            self.own_sync = DeskSync(self.desk, on_change=self._sync_changed, recheck=sync_recheck)
            self.sync_state = ("starting", "")

    def get_default_screen(self) -> Screen:
        from agentdesk.tui.widgets.queue_view import QueueView

        # The first rows are read here, where the terminal's size is known: as many as can show.
        queue.prefetch(
            self.desk,
            queue.Filter(self.default_view),
            limit=QueueView.first_rows(self.size.height),
            first_read=self.first_read,
        )
        self.first_read = None
        # The main screen is the first screen on the stack, not pushed over Textual's empty default
        # one: the first frame composes, styles and lays out one screen, not two.
        self.main = MainScreen(self.desk, now=self.now, default_view=self.default_view, width=self.size.width)
        return self.main

    def on_mount(self) -> None:
        theme = self.settings.ui.theme.strip()
        if theme:
            if theme in self.available_themes:
                self.theme = theme
            else:
                self.notify(
                    f"[ui] theme = {theme!r} is not a theme here; choose one of "
                    f"{', '.join(sorted(self.available_themes))}",
                    severity="warning",
                    timeout=10,
                )
        if self.keymap:
            self.set_keymap(self.keymap)
        if self.unknown_keys:
            self.notify(
                f"[keys] in the config names unknown binding ids: {', '.join(self.unknown_keys)} (see ? for the ids)",
                severity="warning",
                timeout=10,
            )

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity="information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast of the app (a screen's `notify` comes here): plain text, never markup, its
        control characters escaped, since errors and confirmations quote names and subjects that
        came from senders."""
        super().notify(
            shown(str(message)), title=shown_line(str(title)), severity=severity, timeout=timeout, markup=False
        )

    def start_background_work(self) -> None:
        """Watch for other processes' commits and send presence heartbeats. The main screen calls
        this once its first rows are on screen: both open the database engine in a thread, which is
        Python work holding the GIL that the first paint would otherwise wait for."""
        if self._background_started:
            return
        self._background_started = True
        self._load_database_layer()
        if self.poll:
            self._watch_database()
            self.alerts_on = True  # the feed is made in the first check's thread: it loads the ORM
            self.check_alerts()
            # SLA warnings come with time, not with a commit: look again now and then.
            self.set_interval(self.ALERT_INTERVAL, self.check_alerts)
        if self.presence:
            self.set_interval(presence.HEARTBEAT_EVERY.total_seconds(), self._heartbeat)
        if self.own_sync is not None:
            # A plain thread, not a Textual worker: it lives as long as the app and runs threads of
            # its own (each source, the outbox); the app only hears of what it changes.
            threading.Thread(target=self._run_own_sync, name="agentdesk-tui-sync", daemon=True).start()

    @work(thread=True, exclusive=True, group="database", exit_on_error=False)
    def _load_database_layer(self) -> None:
        """Import the ORM and the actions the screens run, and open the engine, in a thread right
        after the first frame: the first frame is drawn from rows read with the sqlite3 module, and
        these imports (SQLAlchemy, SQLModel, the models) cost more than the rest of the start. In a
        thread they never hold up a key press; the screens import the actions where they use them,
        which then finds them loaded (or, for a key pressed meanwhile, waits for this import)."""
        # The decorator has loaded the ORM and the actions (`tui.workers`); the engine next.
        try:
            self.desk.engine  # noqa: B018  (opened here, not by the first read that needs it)
        except Exception:  # the reads that need it say why, in their own words
            pass
        # What is alive now (modules, classes, the stylesheet, the screen) lives as long as the app:
        # Python's full collections, which rescanned it every few hundred thousand allocations
        # (pauses landing on a key press or a thread opening), leave it out from here on. Not once
        # the app is closing (its workers are cancelled then): `on_unmount` has unfrozen it.
        from textual.worker import get_current_worker

        if not get_current_worker().is_cancelled:
            gc.freeze()

    # --- the app's own sync ------------------------------------------------------------------------

    def _run_own_sync(self) -> None:
        assert self.own_sync is not None, "started only when there is one"
        load_database_layer()  # as every worker does (tui.workers): one thread imports the ORM
        self.own_sync.run()

    def _sync_changed(self, state: str, holder: str) -> None:
        """From the sync's thread: it started here, or another process holds the lock, or it failed."""
        self.post_message(SyncStateChanged(state, holder))

    def on_sync_state_changed(self, message: SyncStateChanged) -> None:
        self.sync_state = (message.state, message.holder)
        if self.main is not None:
            self.main.refresh_side()

    def deliver_now(self) -> None:
        """Ask this app's sync (when it runs here) for a delivery pass at once."""
        if self.own_sync is not None:
            self.own_sync.deliver_now()

    # --- presence ----------------------------------------------------------------------------------

    def set_presence(self, conversation_id: int | None, activity: str = "viewing") -> None:
        """What this agent is looking at or replying to; colleagues see it within a poll."""
        if (conversation_id, activity) != self.presence_target:
            self.presence_target = (conversation_id, activity)
            if self.presence:
                self._heartbeat()

    @work(thread=True, exclusive=True, group="presence", exit_on_error=False)
    def _heartbeat(self) -> None:
        conversation_id, activity = self.presence_target
        try:
            presence.heartbeat(self.desk, conversation_id, activity)
        except Exception:  # a busy database: the next heartbeat tries again
            pass

    @work(thread=True, exclusive=True, group="colleagues", exit_on_error=False)
    def refresh_colleagues(self) -> None:
        """Read the other agents' presence now (the poller does this on its own)."""
        self.post_message(PresenceChanged(presence.colleagues(self.desk)))

    def on_presence_changed(self, message: PresenceChanged) -> None:
        self.colleagues = message.colleagues
        if self.main is not None:
            self.main.show_colleagues(message.colleagues)

    def on_unmount(self) -> None:
        if self.own_sync is not None:
            self.own_sync.close()
        gc.unfreeze()  # the app is over: what it kept alive may be collected (tests run many apps)
        if self.presence:
            try:
                presence.leave(self.desk)
            except Exception:
                pass

    # --- live refresh ----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _watch_database(self) -> None:
        """Post DatabaseChanged when anyone commits; one long-lived connection, a cheap pragma."""
        from textual.worker import get_current_worker

        worker = get_current_worker()
        commits = Commits(self.desk)
        try:
            last = commits.change_marker()
            # The change marker moves on every commit, heartbeats included: reload only when what the
            # screens show changed, and re-read presence on any commit and every few polls (expiry).
            content = commits.content_marker(last)
            commits.end_read()
            seen: dict[int, str] | None = None
            polls = 0
            while not worker.is_cancelled:
                # Where the database tells of commits, a poll where nobody wrote skips the marker query.
                notified = commits.wait(self.POLL_INTERVAL)
                polls += 1
                try:
                    marker = commits.change_marker() if notified else last
                    committed = marker != last
                    if committed:
                        last = marker
                        new_content = commits.content_marker(marker)
                        if new_content != content:
                            content = new_content
                            self.post_message(DatabaseChanged())
                    commits.end_read()  # so the next poll sees new commits
                    if self.presence and (committed or polls % 4 == 0 or seen is None):
                        colleagues = presence.colleagues(self.desk)
                        if colleagues != seen:
                            seen = colleagues
                            self.post_message(PresenceChanged(colleagues))
                except Exception:
                    continue
        finally:
            commits.close()

    def on_database_changed(self, message: DatabaseChanged) -> None:
        if self.alerts_on:
            self.check_alerts()
        if self.main is not None:
            self.main.reload()

    # --- alerts -----------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="alerts", exit_on_error=False)
    def check_alerts(self) -> None:
        if not self.alerts_on:
            return
        try:
            with self._making_alert_feed:
                if self.alert_feed is None:
                    from agentdesk.app.alerts import AlertFeed

                    self.alert_feed = AlertFeed(self.desk)
            found = self.alert_feed.check()
        except Exception:  # a busy database: the next change or interval looks again
            return
        if found:
            self.call_from_thread(self._announce, found)

    def _announce(self, found: list) -> None:
        from agentdesk.tui import alerts as ring

        how = self.settings.ui.alerts
        for alert in found:
            self.alert_count += 1
            bad_rating = alert.kind == "bad_rating"
            # The text quotes customers (a subject, a rating's comment): one line, no control
            # characters, and never read as markup.
            self.notify(
                shown_line(alert.text),
                title="Bad rating" if bad_rating else "Alert",
                severity="warning" if alert.kind in ("bounced", "sla_warning", "bad_rating") else "information",
                timeout=20 if bad_rating else 10,
                markup=False,
            )
            if how == "desktop" and not ring.notify_send(alert.text):
                escape = ring.desktop_escape(alert.text)
                if escape and self._driver is not None:
                    self._driver.write(escape)
        if how in ("bell", "desktop"):
            self.bell()
        if self.main is not None:
            self.main.show_header_again()

    def alerts_seen(self) -> None:
        """The agent looked at their conversations: the header's counter starts again."""
        if self.alert_count:
            self.alert_count = 0
            if self.main is not None:
                self.main.show_header_again()

    # --- help and the command palette ------------------------------------------------------------

    def action_help(self) -> None:
        from agentdesk.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.keymap))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        scope = "composer" if type(screen).__name__ == "ComposerScreen" else "main"
        for action in actions.ACTIONS:
            if action.scope not in (scope, "app") or action.id == "command_palette":
                continue
            keys = actions.keys_of(action, self.keymap)
            # From a screen of its own (the report), a main-screen action acts on the main screen.
            target = self if action.scope == "app" else screen if scope == "composer" else (self.main or screen)
            yield SystemCommand(
                f"{action.description} ({keys})",
                action.help or action.description,
                _runner(target, action.action),
            )
        if scope == "main" and self.main is not None:
            # The saved views ([[view]] in the config); the built-in ones are actions of the table.
            for index, view in enumerate(self.main.filters):
                if view.label:
                    yield SystemCommand(
                        f"View: {view.title}", f"saved search: {view.query}", _runner(self.main, f"show_index({index})")
                    )
            # The config's macros ([[macro]]), on the marked rows or the one under the cursor.
            for index, macro in enumerate(self.settings.macro):
                keys = f" ({macro.key})" if macro.key else ""
                yield SystemCommand(
                    f"Macro: {macro.name}{keys}", _macro_help(macro), _runner(self.main, f"run_macro({index})")
                )
        for command in super().get_system_commands(screen):
            if command.title not in ("Quit", "Keys"):
                yield command


def _macro_help(macro) -> str:
    steps = [
        f"status {macro.status}" if macro.status else "",
        f"priority {macro.priority}" if macro.priority else "",
        " ".join([*(f"+{t}" for t in macro.add_tags), *(f"-{t}" for t in macro.remove_tags)]),
        f"assign {macro.assign}" if macro.assign else "",
        f"snooze {macro.snooze}" if macro.snooze else "",
        f"template {macro.template}" if macro.template else "",
    ]
    return ", ".join(step for step in steps if step)


def _runner(target, action: str) -> Callable[[], object]:
    async def run() -> None:
        await target.run_action(action)

    return run


def run(settings: config.Settings, engine=None, first_read: queue.FirstRead | None = None) -> int:
    """Open the workstation on the configured database (through `engine` when the caller opened it
    already, its first rows from `first_read` when the caller started it); the exit status for the CLI."""
    app = AgentDeskApp(settings, engine=engine, first_read=first_read)
    try:
        result = app.run()
    finally:
        try:
            presence.leave(app.desk)  # also when the app died: colleagues must not see a ghost
        except Exception:
            pass
    return int(result or 0)
