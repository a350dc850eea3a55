"""The main screen's keys for a working day: take back a reply in its undo window or the last
change (ctrl+z), send now (ctrl+d), and the config's macros (their keys and the palette).

A reply sent from the composer waits `[ui] undo_send_seconds` before a sender may take it; while
it waits, the header counts down and ctrl+z withdraws it (app.conversations.withdraw) and reopens
the composer with its text, which the withdrawal saved as the agent's draft.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from textual.timer import Timer

from agentdesk.tui import format
from agentdesk.tui.messages import ActionDone, ActionFailed
from agentdesk.tui.screens.main_parts import MainScreenParts
from agentdesk.tui.workers import work

# `app.conversations`, `app.macros` and `app.undo` load the ORM: imported where used, like the main screen's actions (see
# screens/main.py), so the first frame is drawn without it.


@dataclass
class HeldSend:
    conversation_id: int
    message_id: int
    until: datetime  # when the delivery may take it (the app's clock, as the outbox row's due time)


class WorkdayKeys(MainScreenParts):
    """Mixed into the main screen, which has `desk`, `now`, `queue`, `thread`, `_targets`, `_act` and
    the masthead."""

    held: HeldSend | None = None
    last_changed: list[int] | None = None  # what this TUI changed last (for ctrl+z)
    _countdown: Timer | None = None

    # --- a merge, undone as one ------------------------------------------------------------------------

    def _merge(self, ids: list[int], target: str) -> list[str]:
        """In the actions worker: merge, then let ctrl+z take the whole merge back (undoing it from
        one merged conversation separates every one this merge moved)."""
        from agentdesk.app import conversations

        lines = conversations.merge(self.desk, ids, target)
        kept = conversations.conversation_id(target.strip())
        self.last_changed = [next(i for i in ids if i != kept)]
        return lines

    # --- the undo window of a send -------------------------------------------------------------------

    def hold_send(self, conversation_id: int, message_id: int, seconds: float) -> None:
        """A reply just sent waits `seconds`: count down in the header and on its row until it is gone."""
        self.held = HeldSend(conversation_id, message_id, self.now() + timedelta(seconds=seconds))
        self.queue.show_sending(conversation_id, seconds)
        if self._countdown is None:
            self._countdown = self.set_interval(1.0, self._tick_countdown)
        self._tick_countdown()

    def held_left(self) -> int:
        """Seconds left in the current send's undo window (0: none)."""
        if self.held is None:
            return 0
        return max(0, math.ceil((self.held.until - self.now()).total_seconds()))

    def _tick_countdown(self) -> None:
        if self.held is not None and self.held_left() == 0:
            self.held = None
            if hasattr(self.app, "deliver_now"):
                self.app.deliver_now()  # its window is over: the delivery need not wait for its next pass
        if self.held is None and self._countdown is not None:
            self._countdown.stop()  # nothing counts down: no timer
            self._countdown = None
        self.show_header_again()

    def _release(self, conversation_id: int) -> None:
        """The held reply was taken back or sent at once: no countdown for it any more."""
        if self.held is not None and self.held.conversation_id == conversation_id:
            self.held = None
        self.queue.show_sending(conversation_id, 0)
        self._tick_countdown()

    def held_part(self) -> str:
        left = self.held_left()
        if not left or self.held is None:
            return ""
        return f"↶ reply to {format.ref(self.held.conversation_id)} sends in {left} s — ctrl+z takes it back"

    def action_undo(self) -> None:
        from agentdesk.app import undo as undo_actions

        if self.held is not None and self.held_left():
            held = self.held
            self._release(held.conversation_id)
            self._withdraw(held)
            return
        if not self.last_changed:
            self.notify("nothing to undo since the desk opened", severity="warning")
            return
        ids, self.last_changed = self.last_changed, None
        self._act(lambda: [line for each in ids for line in undo_actions.undo(self.desk, each)])

    @work(thread=True, group="actions")
    def _withdraw(self, held: HeldSend) -> None:
        from agentdesk.app import conversations

        try:
            conversations.withdraw(self.desk, held.conversation_id, held.message_id)
        except Exception as error:
            self.post_message(ActionFailed(str(error)))
            return
        self.app.call_from_thread(self._reopen_composer, held.conversation_id)

    def _reopen_composer(self, conversation_id: int) -> None:
        self.notify(f"{format.ref(conversation_id)}: reply taken back — not sent", timeout=4)
        self.reload()
        self._thread_for_composer(conversation_id, "reply", False)

    # --- send now --------------------------------------------------------------------------------------

    def action_send_now(self) -> None:
        from agentdesk.app import conversations

        ids = self._targets()
        if not ids:
            self.notify("no conversation selected", severity="warning")
            return
        for conversation_id in ids:
            self._release(conversation_id)

        def send() -> list[str]:
            lines = [conversations.send_now(self.desk, each) for each in ids]
            if hasattr(self.app, "deliver_now"):
                self.app.deliver_now()
            return lines

        self._act(send)

    # --- moving a misthreaded message -------------------------------------------------------------------

    def action_move_message(self) -> None:
        from agentdesk.app import undo as undo_actions
        from agentdesk.tui.screens.dialogs import PromptScreen

        if self.thread is None:
            self.notify("no conversation selected", severity="warning")
            return
        conversation_id = self.thread.conversation_id
        last = max((item.number for item in self.thread.items if item.kind == "inbound"), default=1)

        def entered(value: str | None) -> None:
            words = (value or "").split()
            if len(words) != 2 or not words[0].isdigit():
                if value and value.strip():
                    self.notify("type the message's number and where it goes: 3 new, or 3 AD-1042", severity="error")
                return
            self._act(lambda: undo_actions.move(self.desk, conversation_id, int(words[0]), words[1]))

        self.app.push_screen(
            PromptScreen(
                f"Move a message of {format.ref(conversation_id)}",
                hint="its number (as in the thread) and a ref, or new: 3 AD-1042, 3 new",
                value=f"{last} new",
            ),
            entered,
        )

    # --- macros ----------------------------------------------------------------------------------------

    def bind_macros(self) -> None:
        for index, macro in enumerate(self.desk.settings.macro):
            if macro.key:
                self._bindings.bind(macro.key, f"run_macro({index})", f"Macro: {macro.name}", show=False)

    def action_run_macro(self, index: int) -> None:
        from agentdesk.app import macros as macro_actions

        macro = self.desk.settings.macro[index]
        ids = self._targets()
        if not ids:
            self.notify("no conversation selected", severity="warning")
            return
        # One conversation: the steps now, the template in the composer to read and send. Marked
        # rows: every step and the template's reply on each, in one transaction (as `agentdesk macro`).
        single = len(ids) == 1
        delay = self.desk.settings.ui.undo_send_seconds

        def run() -> list[str]:
            ran = macro_actions.run(self.desk, macro.name, ids, send_template=not single, delay=delay)
            if single and macro.template:
                self.app.call_from_thread(self._compose_with_template, ids[0], macro.template)
            return ran.lines

        self.last_changed = list(ids)
        self._act(run)

    def _compose_with_template(self, conversation_id: int, template: str) -> None:
        self._pending_template = template
        self._thread_for_composer(conversation_id, "reply", False)


def apply_pending_template(screen, composer) -> None:
    """Once the composer a macro opened is on screen: put the macro's template in it."""
    template = getattr(screen, "_pending_template", None)
    if template:
        screen._pending_template = None
        composer.call_after_refresh(composer._use_template, f"t:{template}")


__all__ = ["ActionDone", "HeldSend", "WorkdayKeys", "apply_pending_template"]
