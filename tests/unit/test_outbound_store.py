"""Files and recipients of outbound messages stored and read back the way delivery reads them,
on SQLite (files beside the database) and PostgreSQL (the bytes in the database)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlmodel import select

from agentdesk.domain import outbound, replies
from agentdesk.domain.outbound import OutgoingFile, Recipients
from agentdesk.store import db
from agentdesk.store.models import Conversation, Outbox
from agentdesk.sync.senders import attached_files
from tests import factories

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


def test_reply_files_and_recipients_and_a_started_conversation(any_database_url, policies):
    engine = db.open_database(any_database_url)
    try:
        factories.ingest(engine, policies, factories.inbound(at=NOW))
        photo = bytes(range(256)) * 100
        with db.write_session(engine) as session:
            conversation = session.exec(select(Conversation)).one()
            message = replies.reply(
                session,
                conversation=conversation,
                body="Photo attached.",
                agent="tester",
                agent_name="Terry",
                now=NOW + timedelta(minutes=1),
                policies=policies,
                recipients=outbound.checked("email", Recipients(to=("greta@velo.example",), bcc=("audit@x.example",))),
                files=[OutgoingFile(name="wheel.jpg", data=photo), OutgoingFile(name="same.jpg", data=photo)],
            )
            session.commit()
            message_id = message.id
        with db.read_session(engine) as session:
            message = session.get(type(message), message_id)
            assert [(name, data == photo) for name, _, data in attached_files(session, message)] == [
                ("wheel.jpg", True),
                ("same.jpg", True),
            ]
            outbox = session.exec(select(Outbox).where(Outbox.message_id == message_id)).one()
            assert (outbox.to_addresses, outbox.cc_addresses, outbox.bcc_addresses) == (
                "greta@velo.example",
                "",
                "audit@x.example",
            )
            assert message.recipients == "greta@velo.example audit@x.example"

        with db.write_session(engine) as session:
            started, first = outbound.start(
                session,
                channel="email",
                source="support",
                to=Recipients(to=("greta@velo.example",)),
                subject="Your order is late",
                body="Sorry: a week late.",
                agent="tester",
                agent_name="Terry",
                now=NOW + timedelta(hours=1),
                policies=policies,
                message_id_domain="example.com",
            )
            session.commit()
            assert (started.status, started.customer_id, started.first_responded_at is not None) == (
                "pending",
                conversation.customer_id,
                True,
            )
            assert first.subject == f"Your order is late [AD-{started.id}]"
        # The customer's answer opens it; threading by In-Reply-To.
        factories.ingest(
            engine,
            policies,
            factories.inbound(
                at=NOW + timedelta(hours=2),
                in_reply_to=first.external_id,
                subject=f"Re: Your order is late [AD-{started.id}]",
            ),
        )
        with db.read_session(engine) as session:
            answered = session.get(Conversation, started.id)
            assert answered.status == "open" and answered.waiting_since is not None
            assert session.exec(select(Conversation)).all().__len__() == 2
    finally:
        engine.dispose()
