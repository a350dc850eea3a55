"""App-level messages: facts in the past tense, requests in the imperative (STYLE.md).

Widget-local messages live nested in their widget (`QueueView.Highlighted`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # for the annotations only: the first frame is drawn before the ORM is imported
    from agentdesk.app.conversations import Thread
    from agentdesk.app.desk import Header


@dataclass
class DatabaseChanged(Message):
    """Another process (or this one) committed: queue, counts and the open thread reload."""


@dataclass
class ThreadLoaded(Message):
    thread: Thread
    generation: int


@dataclass
class ThreadFailed(Message):
    error: str


@dataclass
class CountsLoaded(Message):
    counts: dict[str, int]


@dataclass
class HeaderLoaded(Message):
    header: Header


@dataclass
class ActionDone(Message):
    text: str


@dataclass
class ActionFailed(Message):
    text: str
    reload: bool = False  # the view was stale: reload it


@dataclass
class OpenConversation(Message):
    conversation_id: int


@dataclass
class PresenceChanged(Message):
    """Other agents' presence moved: {conversation id: "Dana is replying"}."""

    colleagues: dict[int, str]


@dataclass
class SyncStateChanged(Message):
    """The app's own sync started here, found another sync holding the lock, or failed."""

    state: str
    holder: str
