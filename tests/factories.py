"""Building test data through the same ingest path real channels use."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from agentdesk.channels.base import InboundMessage
from agentdesk.ingest import ingest_message
from agentdesk.store import db

_counter = itertools.count(1)


def inbound(
    *,
    sender: str = "greta@velo.example",
    name: str = "Greta Lindqvist",
    subject: str = "Spokes keep breaking",
    body: str = "The rear wheel lost three spokes this month.",
    channel: str = "email",
    source: str = "support",
    at: datetime,
    external_id: str | None = None,
    in_reply_to: str = "",
    kind: str = "message",
    conversation_hint: str = "",
) -> InboundMessage:
    return InboundMessage(
        source=source,
        channel=channel,
        external_id=external_id or f"test-{next(_counter)}@velo.example",
        sender_address=sender,
        sender_name=name,
        received_at=at,
        subject=subject,
        body_text=body,
        in_reply_to=in_reply_to,
        kind=kind,
        conversation_hint=conversation_hint,
    )


def ingest(engine, policies, message: InboundMessage, *, now: datetime | None = None):
    with db.write_session(engine) as session:
        result = ingest_message(
            session, message, policies=policies, now=now or message.received_at + timedelta(seconds=5)
        )
        session.commit()
    return result


def claim_in_process(url: str, ref: int, agent: str, start, results) -> None:
    from datetime import datetime, timezone

    from agentdesk.domain import queue as queue_module
    from agentdesk.store import db as db_module

    engine = db_module.open_database(url)
    start.wait()
    try:
        with db_module.write_session(engine) as session:
            queue_module.claim(session, conversation_id=ref, agent=agent, now=datetime.now(timezone.utc))
            session.commit()
        results.put((agent, "won"))
    except Exception as error:  # Conflict, reported to the test
        results.put((agent, str(error)))


class FakeSender:
    """A `delivery.Sender` that records what it sent; `outcomes` are returned (or raised) in turn."""

    def __init__(self, outcomes=()):
        self.outcomes = list(outcomes)
        self.sent: list[int] = []

    def prepare(self, session, *, outbox, message, conversation):
        return message.id

    def send(self, prepared):
        outcome = self.outcomes.pop(0) if self.outcomes else ""
        if isinstance(outcome, Exception):
            raise outcome
        self.sent.append(prepared)
        return outcome
