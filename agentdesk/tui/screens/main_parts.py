"""What the main screen's mixins (its attachment keys, its rating alerts, the working day's keys)
use of it: the type checker sees a `Screen` with these attributes; at run time the base is a
plain `object`, and the main screen itself provides them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.screen import Screen

    from agentdesk.app.conversations import Thread
    from agentdesk.app.desk import Desk
    from agentdesk.tui.widgets.queue_view import QueueView
    from agentdesk.tui.widgets.thread_view import ThreadView

    class MainScreenParts(Screen):
        desk: Desk
        now: Callable[[], datetime]
        thread: Thread | None

        @property
        def queue(self) -> QueueView: ...

        @property
        def thread_view(self) -> ThreadView: ...

        def show_header_again(self) -> None: ...

        def reload(self) -> None: ...

        def _targets(self) -> list[int]: ...

        # Workers on the main screen (their decorator changes what a call returns).
        _act: Callable[..., object]
        _thread_for_composer: Callable[..., object]

else:
    MainScreenParts = object
