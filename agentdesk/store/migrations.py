"""Schema revisions, oldest first. A database records the revisions it has in `schema_revision`.

Rules: never edit a step that has shipped; add a new one and raise HEAD (in `first_window`). A fresh
database is built by `create_fresh` (the models plus what models cannot express, such as full-text indexes) and is
stamped HEAD, so `create_fresh` must always produce what running every step produces;
tests/unit/test_migrations.py upgrades a database written at revision 1 and compares the result
with a fresh one.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from agentdesk.store import changes, knowledge_base, search
from agentdesk.store.first_window import HEAD as HEAD


def create_fresh(connection: Connection) -> None:
    SQLModel.metadata.create_all(connection)
    search.install(connection)
    search.install_conversation_words(connection)
    changes.install(connection)
    knowledge_base.install(connection)


def revision_2_full_text_search(connection: Connection) -> None:
    """Full-text indexes over message subjects and bodies and customer names and addresses."""
    search.install(connection)


def revision_3_threads_clocks_drafts(connection: Connection) -> None:
    """Provider thread keys, customer merges, SLA clock events, drafts, change notifications."""
    import sqlalchemy as sa
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    from agentdesk.store.models import UTCDateTime

    op = Operations(MigrationContext.configure(connection))
    # Plain ADD COLUMN, no table rebuild: rebuilding `customer` would drop its full-text triggers.
    op.add_column("message", sa.Column("thread_key", sa.String(), nullable=True))
    op.create_index("ix_message_thread_key", "message", ["thread_key"])
    if connection.dialect.name == "sqlite":
        # SQLite adds a REFERENCES column in place when its default is NULL; Alembic would rebuild.
        connection.exec_driver_sql("ALTER TABLE customer ADD COLUMN merged_into_id INTEGER REFERENCES customer (id)")
    else:
        op.add_column("customer", sa.Column("merged_into_id", sa.Integer(), sa.ForeignKey("customer.id")))
    op.create_table(
        "slaclockevent",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("conversation_id", sa.Integer(), sa.ForeignKey("conversation.id"), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_slaclockevent_conversation_id", "slaclockevent", ["conversation_id"])
    op.create_table(
        "draft",
        sa.Column("conversation_id", sa.Integer(), sa.ForeignKey("conversation.id"), primary_key=True),
        sa.Column("agent", sa.String(), primary_key=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    changes.install(connection)


def revision_4_recent_changes_index(connection: Connection) -> None:
    """An index on conversation.updated_at, for change detection and `export --since`."""
    connection.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_conversation_updated_at ON conversation (updated_at)")


def revision_5_message_conversation_index(connection: Connection) -> None:
    """An index on message (id, conversation_id): full-text matches to conversations without
    reading message rows (a search matching most messages reads the index alone)."""
    connection.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_message_id_conversation ON message (id, conversation_id)")


def revision_6_set_aside_bounces_blocks(connection: Connection) -> None:
    """Conversations set aside (spam, bulk, system) and their views' index, a bounced reply's
    flag and its link to the bounce, and the blocked senders."""
    for statement in (
        "ALTER TABLE conversation ADD COLUMN aside VARCHAR DEFAULT '' NOT NULL",
        "ALTER TABLE conversation ADD COLUMN bounced_at DATETIME",
        "ALTER TABLE outbox ADD COLUMN bounce_message_id INTEGER",
        "CREATE INDEX IF NOT EXISTS ix_conversation_aside_queue ON conversation (aside, queue_due, queue_wait, id)",
    ):
        if connection.dialect.name != "sqlite":
            statement = statement.replace("DATETIME", "TIMESTAMP WITH TIME ZONE")
        connection.exec_driver_sql(statement)
    from agentdesk.store.models import BlockedSender

    BlockedSender.__table__.create(connection, checkfirst=True)  # type: ignore[attr-defined]  # set by SQLModel


def revision_7_delivery_attempts(connection: Connection) -> None:
    """Every delivery attempt's outcome (the delivery history), when an outbox row's state was
    last recorded, and when a sync found no sender for it."""
    for statement in (
        "ALTER TABLE outbox ADD COLUMN updated_at DATETIME",
        "ALTER TABLE outbox ADD COLUMN no_sender_at DATETIME",
    ):
        if connection.dialect.name != "sqlite":
            statement = statement.replace("DATETIME", "TIMESTAMP WITH TIME ZONE")
        connection.exec_driver_sql(statement)
    from agentdesk.store.models import DeliveryAttempt

    DeliveryAttempt.__table__.create(connection, checkfirst=True)  # type: ignore[attr-defined]  # set by SQLModel


def revision_8_satisfaction_knowledge_base(connection: Connection) -> None:
    """Satisfaction surveys and their answers, knowledge-base articles with their full-text
    index, and the articles sent to customers."""
    from agentdesk.store.models import ArticleUse, KbArticle, SatisfactionSurvey

    for table in (SatisfactionSurvey, KbArticle, ArticleUse):
        table.__table__.create(connection, checkfirst=True)  # type: ignore[union-attr]  # set by SQLModel
    knowledge_base.install(connection)


def revision_9_recipients(connection: Connection) -> None:
    """The addresses a message was sent to (inbound: its To and Cc; outbound: all of them), and an
    outbox row's To, Cc and Bcc as the agent chose them."""
    for statement in (
        "ALTER TABLE message ADD COLUMN recipients TEXT DEFAULT '' NOT NULL",
        "ALTER TABLE outbox ADD COLUMN to_addresses TEXT DEFAULT '' NOT NULL",
        "ALTER TABLE outbox ADD COLUMN cc_addresses TEXT DEFAULT '' NOT NULL",
        "ALTER TABLE outbox ADD COLUMN bcc_addresses TEXT DEFAULT '' NOT NULL",
    ):
        connection.exec_driver_sql(statement)


def revision_10_attachment_bytes(connection: Connection) -> None:
    """Attachments' bytes: each row's state (what it had before is `legacy`: no bytes kept), why
    it was not stored, a linked one's URL, and the table of bytes for databases without files."""
    for statement in (
        "ALTER TABLE attachment ADD COLUMN state VARCHAR DEFAULT 'legacy' NOT NULL",
        "ALTER TABLE attachment ADD COLUMN reason TEXT DEFAULT '' NOT NULL",
        "ALTER TABLE attachment ADD COLUMN url TEXT DEFAULT '' NOT NULL",
    ):
        connection.exec_driver_sql(statement)
    from agentdesk.store.models import AttachmentBlob

    AttachmentBlob.__table__.create(connection, checkfirst=True)  # type: ignore[attr-defined]  # set by SQLModel


def revision_11_provider_message_id(connection: Connection) -> None:
    """The provider's own id of a reply it accepted (Twilio's MessageSid, WhatsApp's wamid), which
    its delivery callbacks name instead of ours."""
    connection.exec_driver_sql("ALTER TABLE outbox ADD COLUMN provider_id VARCHAR DEFAULT '' NOT NULL")
    connection.exec_driver_sql("CREATE INDEX ix_outbox_provider_id ON outbox (provider_id)")


def revision_12_draft_envelope(connection: Connection) -> None:
    """A draft's recipients and attached files, so leaving the composer or taking a reply back
    in its undo window loses neither."""
    connection.exec_driver_sql("ALTER TABLE draft ADD COLUMN envelope TEXT DEFAULT '{}' NOT NULL")


def revision_13_conversation_words(connection: Connection) -> None:
    """PostgreSQL: every conversation's words (`conversation_search`, kept by triggers on
    `message`), so a search of one word reads a row a matching conversation, not every matching
    message. SQLite: nothing to add (its revision moves with PostgreSQL's)."""
    search.install_conversation_words(connection)


STEPS = {
    2: revision_2_full_text_search,
    3: revision_3_threads_clocks_drafts,
    4: revision_4_recent_changes_index,
    5: revision_5_message_conversation_index,
    6: revision_6_set_aside_bounces_blocks,
    7: revision_7_delivery_attempts,
    8: revision_8_satisfaction_knowledge_base,
    9: revision_9_recipients,
    10: revision_10_attachment_bytes,
    11: revision_11_provider_message_id,
    12: revision_12_draft_envelope,
    13: revision_13_conversation_words,
}
# HEAD is written where the first frame can read it without SQLAlchemy (`first_window`).
if max(STEPS, default=1) != HEAD:
    raise RuntimeError(f"migrations end at revision {max(STEPS)}: set first_window.HEAD to it")
