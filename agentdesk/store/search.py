"""Full-text search over message subjects and bodies and customer names and addresses.

On SQLite, two FTS5 tables kept in step by triggers, so every write path (ingest, replies, the
demo builder, a future tool writing SQL by hand) updates the index in the same transaction:

- `message_fts` is an external-content index of `message(subject, body_text)`;
- `customer_fts` holds each customer's name, organization and every identity address.

On PostgreSQL, the same two indexes as tsvector: a generated, GIN-indexed column on `message`, and
a `customer_search` table kept in step by triggers on `customer` and `identity`; and
`conversation_search`, every conversation's words, which answers a search of one word or prefix
(`install_conversation_words`). Both backends
split text at every non-word character (so `greta@velo.example` is the words greta, velo,
example) and match what a person typed as phrases of those words, with a trailing `*` as a prefix:
the same query finds the same rows on either database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

# The triggers that index a row as it is written. The ones run on INSERT are named: a bulk
# insert (store/bulk.py) may stand in for them with one statement over the new rows, and only
# while they are exactly these (`stored_trigger_text`).
MESSAGE_FTS_INSERT = """CREATE TRIGGER IF NOT EXISTS message_fts_insert AFTER INSERT ON message BEGIN
        INSERT INTO message_fts(rowid, subject, body_text) VALUES (new.id, new.subject, new.body_text);
    END"""
CUSTOMER_FTS_INSERT = """CREATE TRIGGER IF NOT EXISTS customer_fts_insert AFTER INSERT ON customer BEGIN
        INSERT INTO customer_fts(rowid, name, organization, addresses)
        VALUES (new.id, new.name, new.organization, '');
    END"""
IDENTITY_FTS_INSERT = """CREATE TRIGGER IF NOT EXISTS identity_fts_insert AFTER INSERT ON identity BEGIN
        UPDATE customer_fts SET addresses = (
            SELECT group_concat(address, ' ') FROM identity WHERE customer_id = new.customer_id)
        WHERE rowid = new.customer_id;
    END"""

# A customer's indexed document: name, organization and every identity address.
_SQLITE_CUSTOMER_DOCUMENTS = (
    "INSERT INTO customer_fts(rowid, name, organization, addresses) "
    "SELECT c.id, c.name, c.organization, "
    "coalesce((SELECT group_concat(i.address, ' ') FROM identity AS i WHERE i.customer_id = c.id), '') "
    "FROM customer AS c"
)

_SQLITE_DDL = [
    """CREATE VIRTUAL TABLE IF NOT EXISTS message_fts USING fts5(
        subject, body_text, content='message', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2')""",
    MESSAGE_FTS_INSERT,
    """CREATE TRIGGER IF NOT EXISTS message_fts_delete AFTER DELETE ON message BEGIN
        INSERT INTO message_fts(message_fts, rowid, subject, body_text)
        VALUES ('delete', old.id, old.subject, old.body_text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS message_fts_update AFTER UPDATE OF subject, body_text ON message BEGIN
        INSERT INTO message_fts(message_fts, rowid, subject, body_text)
        VALUES ('delete', old.id, old.subject, old.body_text);
        INSERT INTO message_fts(rowid, subject, body_text) VALUES (new.id, new.subject, new.body_text);
    END""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS customer_fts USING fts5(
        name, organization, addresses, tokenize='unicode61 remove_diacritics 2')""",
    CUSTOMER_FTS_INSERT,
    """CREATE TRIGGER IF NOT EXISTS customer_fts_update AFTER UPDATE OF name, organization ON customer BEGIN
        UPDATE customer_fts SET name = new.name, organization = new.organization WHERE rowid = new.id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS customer_fts_delete AFTER DELETE ON customer BEGIN
        DELETE FROM customer_fts WHERE rowid = old.id;
    END""",
    IDENTITY_FTS_INSERT,
    """CREATE TRIGGER IF NOT EXISTS identity_fts_delete AFTER DELETE ON identity BEGIN
        UPDATE customer_fts SET addresses = coalesce((
            SELECT group_concat(address, ' ') FROM identity WHERE customer_id = old.customer_id), '')
        WHERE rowid = old.customer_id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS identity_fts_update AFTER UPDATE ON identity BEGIN
        UPDATE customer_fts SET addresses = coalesce((
            SELECT group_concat(address, ' ') FROM identity WHERE customer_id = old.customer_id), '')
        WHERE rowid = old.customer_id;
        UPDATE customer_fts SET addresses = (
            SELECT group_concat(address, ' ') FROM identity WHERE customer_id = new.customer_id)
        WHERE rowid = new.customer_id;
    END""",
]

# Rows written before the index existed (a database upgraded from revision 1).
_SQLITE_BACKFILL = [
    "INSERT INTO message_fts(message_fts) VALUES ('rebuild')",
    _SQLITE_CUSTOMER_DOCUMENTS + " WHERE c.id NOT IN (SELECT rowid FROM customer_fts)",
]


@dataclass(frozen=True)
class BulkIndex:
    """One statement that indexes a range of new rows as the `triggers` would have row by row."""

    triggers: tuple[str, ...]  # the CREATE TRIGGER statements it stands for
    sql: str  # indexes the rows with ids BETWEEN ? AND ?


# Messages: their subject and body. Customers: the trigger on customer inserts the name with no
# addresses, and the one on identity rewrites the row with them (in FTS5 a delete and a re-insert):
# one statement writes each new customer's finished document instead.
MESSAGE_BULK_INDEX = BulkIndex(
    (MESSAGE_FTS_INSERT,),
    "INSERT INTO message_fts(rowid, subject, body_text) "
    "SELECT id, subject, body_text FROM message WHERE id BETWEEN ? AND ? ORDER BY id",
)
CUSTOMER_BULK_INDEX = BulkIndex(
    (CUSTOMER_FTS_INSERT, IDENTITY_FTS_INSERT),
    _SQLITE_CUSTOMER_DOCUMENTS + " WHERE c.id BETWEEN ? AND ? ORDER BY c.id",
)

_TRIGGER_NAME = re.compile(r"CREATE TRIGGER (?:IF NOT EXISTS )?(\w+)")


def trigger_name(create_trigger: str) -> str:
    match = _TRIGGER_NAME.match(create_trigger)
    assert match is not None, create_trigger
    return match.group(1)


def stored_trigger_text(create_trigger: str) -> str:
    """The trigger's text as sqlite_master keeps it (SQLite drops IF NOT EXISTS), whitespace
    normalised: compare with `normalised_sql` of the stored text to know it is this trigger."""
    return normalised_sql(create_trigger.replace("CREATE TRIGGER IF NOT EXISTS ", "CREATE TRIGGER ", 1))


def normalised_sql(sql: str) -> str:
    return " ".join(sql.split())


# Every non-word character separates words, as FTS5's unicode61 tokenizer does.
_PG_WORDS = "regexp_replace({}, '\\W+', ' ', 'g')"
_PG_CUSTOMER_DOCUMENT = (
    "SELECT to_tsvector('simple', "
    + _PG_WORDS.format(
        "coalesce(c.name, '') || ' ' || coalesce(c.organization, '') || ' ' || "
        "coalesce((SELECT string_agg(i.address, ' ') FROM identity i WHERE i.customer_id = c.id), '')"
    )
    + ") FROM customer c WHERE c.id = {}"
)

_POSTGRES_DDL = [
    "ALTER TABLE message ADD COLUMN IF NOT EXISTS search_vector tsvector GENERATED ALWAYS AS (to_tsvector('simple', "
    + _PG_WORDS.format("coalesce(subject, '') || ' ' || coalesce(body_text, '')")
    + ")) STORED",
    "CREATE INDEX IF NOT EXISTS ix_message_search_vector ON message USING gin (search_vector)",
    """CREATE TABLE IF NOT EXISTS customer_search (
        customer_id INTEGER PRIMARY KEY REFERENCES customer (id) ON DELETE CASCADE,
        document tsvector NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS ix_customer_search_document ON customer_search USING gin (document)",
    """CREATE OR REPLACE FUNCTION agentdesk_index_customer(target integer) RETURNS void AS $$
    BEGIN
        INSERT INTO customer_search (customer_id, document) VALUES (target, ("""
    + _PG_CUSTOMER_DOCUMENT.format("target")
    + """))
        ON CONFLICT (customer_id) DO UPDATE SET document = EXCLUDED.document;
    END $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE FUNCTION agentdesk_customer_changed() RETURNS trigger AS $$
    BEGIN
        PERFORM agentdesk_index_customer(NEW.id);
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE FUNCTION agentdesk_identity_changed() RETURNS trigger AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            IF EXISTS (SELECT 1 FROM customer WHERE id = OLD.customer_id) THEN
                PERFORM agentdesk_index_customer(OLD.customer_id);
            END IF;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            PERFORM agentdesk_index_customer(NEW.customer_id);
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS customer_search_customer ON customer",
    """CREATE TRIGGER customer_search_customer AFTER INSERT OR UPDATE OF name, organization ON customer
        FOR EACH ROW EXECUTE FUNCTION agentdesk_customer_changed()""",
    "DROP TRIGGER IF EXISTS customer_search_identity ON identity",
    """CREATE TRIGGER customer_search_identity AFTER INSERT OR UPDATE OR DELETE ON identity
        FOR EACH ROW EXECUTE FUNCTION agentdesk_identity_changed()""",
    "SELECT agentdesk_index_customer(id) FROM customer",
]


def install(connection: Connection) -> None:
    """Create the indexes and their triggers, and index rows that are already there."""
    if connection.dialect.name == "sqlite":
        statements = _SQLITE_DDL + _SQLITE_BACKFILL
    elif connection.dialect.name == "postgresql":
        statements = _POSTGRES_DDL
    else:
        return
    for statement in statements:
        connection.exec_driver_sql(statement)


# PostgreSQL: every conversation's words, the distinct lexemes of all its messages (no positions),
# one row a conversation. A GIN index has no index-only scans: matching a common word in `message`
# reads every matching message's heap row (bodies included, a page per few messages) only to learn
# its conversation; here it reads one narrow row a matching conversation. Exact for a query of
# one word or one prefix (a conversation has the word when one of its messages has it); a query of
# several words or a phrase must match within one message, so it keeps matching messages
# (`matching_conversation_ids_sql`). A tsvector's words may not exceed 1 MB: `bytes` is the size of
# a document's words, and a conversation whose words could outgrow the limit (the old size plus the
# new words' before they are merged) keeps a NULL document; a search reads its messages instead.
CONVERSATION_WORDS_LIMIT = 1_000_000
_CONVERSATION_DOCUMENTS = (
    "SELECT conversation_id, "
    "CASE WHEN sum(octet_length(lexeme)) <= {limit} THEN array_to_tsvector(array_agg(lexeme)) END, "
    "CASE WHEN sum(octet_length(lexeme)) <= {limit} THEN sum(octet_length(lexeme)) END "
    "FROM (SELECT DISTINCT m.conversation_id, u.lexeme FROM {messages} AS m, unnest(m.search_vector) AS u) AS d "
    "GROUP BY conversation_id ORDER BY conversation_id"
)
_POSTGRES_CONVERSATION_DDL = [
    """CREATE TABLE IF NOT EXISTS conversation_search (
        conversation_id INTEGER PRIMARY KEY,
        document tsvector,
        bytes INTEGER)""",
    # A stripped tsvector is a 4-byte length, a 4-byte count, 4 bytes a word, then the words' bytes.
    """CREATE OR REPLACE FUNCTION agentdesk_tsvector_bytes(words tsvector) RETURNS integer AS $$
    BEGIN
        RETURN pg_column_size(words) - 8 - 4 * length(words);
    END $$ LANGUAGE plpgsql IMMUTABLE""",
    """CREATE OR REPLACE FUNCTION agentdesk_index_conversation(target integer) RETURNS void AS $$
    DECLARE
        words text[];
        size bigint;
    BEGIN
        PERFORM pg_advisory_xact_lock({words_lock}, target);
        SELECT array_agg(lexeme), sum(octet_length(lexeme)) INTO words, size FROM (
            SELECT DISTINCT u.lexeme FROM message AS m, unnest(m.search_vector) AS u WHERE m.conversation_id = target
        ) AS d;
        IF words IS NULL THEN
            DELETE FROM conversation_search WHERE conversation_id = target;
        ELSIF size <= {limit} THEN
            INSERT INTO conversation_search (conversation_id, document, bytes)
            VALUES (target, array_to_tsvector(words), size)
            ON CONFLICT (conversation_id) DO UPDATE SET document = EXCLUDED.document, bytes = EXCLUDED.bytes;
        ELSE
            INSERT INTO conversation_search (conversation_id, document, bytes) VALUES (target, NULL, NULL)
            ON CONFLICT (conversation_id) DO UPDATE SET document = NULL, bytes = NULL;
        END IF;
    END $$ LANGUAGE plpgsql""",
    # Statement-level: a batch of new messages is one INSERT … SELECT, their conversations in id
    # order (two writers lock the rows they share in the same order).
    """CREATE OR REPLACE FUNCTION agentdesk_messages_added() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock({words_lock}, conversation_id)
        FROM (SELECT DISTINCT conversation_id FROM added ORDER BY conversation_id) AS d;
        INSERT INTO conversation_search AS s (conversation_id, document, bytes) """
    + _CONVERSATION_DOCUMENTS.format(limit="{limit}", messages="added")
    + """
        ON CONFLICT (conversation_id) DO UPDATE SET
            document = CASE WHEN s.bytes + EXCLUDED.bytes <= {limit} THEN s.document || EXCLUDED.document END,
            bytes = CASE WHEN s.bytes + EXCLUDED.bytes <= {limit}
                THEN agentdesk_tsvector_bytes(s.document || EXCLUDED.document) END
        -- Rewritten only when there is a word it lacks: a new row version is indexed whole again.
        WHERE s.document IS NOT NULL AND (EXCLUDED.document IS NULL
            OR length(ts_delete(EXCLUDED.document, tsvector_to_array(s.document))) > 0);
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE FUNCTION agentdesk_messages_removed() RETURNS trigger AS $$
    BEGIN
        PERFORM agentdesk_index_conversation(conversation_id)
        FROM (SELECT DISTINCT conversation_id FROM removed ORDER BY conversation_id) AS d;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    # A message moved to another conversation (a merge, its undo, a move) or its text edited: both
    # conversations' words are read again from their messages.
    """CREATE OR REPLACE FUNCTION agentdesk_messages_changed() RETURNS trigger AS $$
    BEGIN
        PERFORM agentdesk_index_conversation(conversation_id) FROM (
            SELECT DISTINCT unnest(ARRAY[o.conversation_id, n.conversation_id]) AS conversation_id
            FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id
            WHERE o.conversation_id <> n.conversation_id OR o.search_vector IS DISTINCT FROM n.search_vector
            ORDER BY conversation_id
        ) AS d;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS conversation_search_insert ON message",
    """CREATE TRIGGER conversation_search_insert AFTER INSERT ON message REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION agentdesk_messages_added()""",
    "DROP TRIGGER IF EXISTS conversation_search_delete ON message",
    """CREATE TRIGGER conversation_search_delete AFTER DELETE ON message REFERENCING OLD TABLE AS removed
        FOR EACH STATEMENT EXECUTE FUNCTION agentdesk_messages_removed()""",
    "DROP TRIGGER IF EXISTS conversation_search_update ON message",
    """CREATE TRIGGER conversation_search_update AFTER UPDATE ON message
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION agentdesk_messages_changed()""",
    # The words of the messages already there, then the indexes (faster built over the rows).
    "INSERT INTO conversation_search (conversation_id, document, bytes) "
    + _CONVERSATION_DOCUMENTS.format(limit="{limit}", messages="message")
    + " ON CONFLICT (conversation_id) DO NOTHING",
    "CREATE INDEX IF NOT EXISTS ix_conversation_search_document ON conversation_search USING gin (document)",
    # The few conversations whose words outgrew a document.
    "CREATE INDEX IF NOT EXISTS ix_conversation_search_too_big ON conversation_search (conversation_id) "
    "WHERE document IS NULL",
]
# Who writes a conversation's document holds this lock (with the conversation's id) until commit:
# a rebuild reads the messages first and writes after, so without it a rebuild running beside
# another transaction's new messages (uncommitted, unseen by the rebuild) would write their words
# away. Waiting for the lock, the rebuild's read (READ COMMITTED: a snapshot per statement) sees
# them. The app already locks a conversation's row before changing its messages; this keeps the
# documents right for any other writer too.
CONVERSATION_WORDS_LOCK = 0x5745  # the advisory lock space of conversation_search ("WE")
_POSTGRES_CONVERSATION_DDL = [
    statement.replace("{limit}", str(CONVERSATION_WORDS_LIMIT)).replace("{words_lock}", str(CONVERSATION_WORDS_LOCK))
    for statement in _POSTGRES_CONVERSATION_DDL
]


def install_conversation_words(connection: Connection) -> None:
    """PostgreSQL: `conversation_search`, its triggers on `message`, and the words of the messages
    already stored. Nothing on SQLite: FTS5 finds a match's conversation in the (id,
    conversation_id) index, never in message rows."""
    if connection.dialect.name == "postgresql":
        for statement in _POSTGRES_CONVERSATION_DDL:
            connection.exec_driver_sql(statement)


_TERM = re.compile(r'"[^"]*"|\S+')


def fts_query(user_query: str) -> str:
    """Turn what a person typed into a safe FTS5 query: every term must match, as typed.

    Each term becomes a quoted phrase (so `dana@example.com` or `re:` never reach FTS5's own query
    syntax); a trailing `*` keeps prefix search; quoted phrases stay phrases.
    """
    parts = []
    for term in _TERM.findall(user_query):
        prefix = term.endswith("*") and not term.startswith('"')
        word = term.strip('"').rstrip("*").replace('"', '""')
        if not word.strip():
            continue
        parts.append(f'"{word}"' + ("*" if prefix else ""))
    return " AND ".join(parts)


# A word as both databases' tokenizers split text: letters and digits (SQLite's unicode61 and
# PostgreSQL's parser both break at "_", so `john_doe` is two words, a phrase).
_WORD = re.compile(r"[^\W_]+")


def ts_query(user_query: str) -> str:
    """What a person typed as a PostgreSQL tsquery: each term a phrase of its words, all required."""
    parts = []
    for term in _TERM.findall(user_query):
        prefix = term.endswith("*") and not term.startswith('"')
        words = [w.lower() for w in _WORD.findall(term)]
        if not words:
            continue
        lexemes = [f"'{w}'" for w in words]  # a word has no quote or backslash to escape
        if prefix:
            lexemes[-1] += ":*"
        parts.append("(" + " <-> ".join(lexemes) + ")")
    return " & ".join(parts)


def one_word(query: str) -> bool:
    """Whether a PostgreSQL `ts_query` is one word or one prefix (no phrase, no second term)."""
    return bool(query) and "&" not in query and "<->" not in query


def matching_conversation_ids_sql(connection_dialect: str, query: str = "") -> str:
    """SQL selecting the ids of conversations whose messages or customer match :q (`query`, the
    value :q will have, chooses PostgreSQL's plan: see `conversation_search`)."""
    if connection_dialect == "sqlite":
        # SQLite's planner looks matches up in the message table itself (a page read per message when
        # its cache is cold); the (id, conversation_id) index holds the same answer in 1/50 the pages.
        return """
            SELECT m.conversation_id FROM message_fts f
            JOIN message m INDEXED BY ix_message_id_conversation ON m.id = f.rowid
            WHERE message_fts MATCH :q
            UNION
            SELECT c.id FROM conversation c
            WHERE c.customer_id IN (SELECT rowid FROM customer_fts WHERE customer_fts MATCH :q)
        """
    if one_word(query):
        # The conversations without a document (too many words) are few: each one's messages are read
        # by its own index (LATERAL … LIMIT 1 keeps the planner from starting at the messages' matches).
        messages = """
            SELECT s.conversation_id FROM conversation_search s WHERE s.document @@ to_tsquery('simple', :q)
            UNION
            SELECT s.conversation_id FROM conversation_search s CROSS JOIN LATERAL (
                SELECT 1 FROM message m
                WHERE m.conversation_id = s.conversation_id AND m.search_vector @@ to_tsquery('simple', :q) LIMIT 1
            ) AS hit
            WHERE s.document IS NULL"""
    else:
        messages = "SELECT m.conversation_id FROM message m WHERE m.search_vector @@ to_tsquery('simple', :q)"
    customers = """
        SELECT c.id FROM conversation c
        WHERE c.customer_id IN (SELECT customer_id FROM customer_search WHERE document @@ to_tsquery('simple', :q))
    """
    return f"{messages}\n        UNION{customers}"


def search_parameters(user_query: str, dialect: str) -> dict[str, str]:
    return {"q": fts_query(user_query) if dialect == "sqlite" else ts_query(user_query)}


def as_prefixes(user_query: str) -> str:
    """Each typed word as a prefix (`brouw` finds Brouwer, `supp` supplier.example, `3161` a
    phone number's digits); a quoted phrase stays exact."""
    return " ".join(t if t.startswith('"') or t.endswith("*") else t + "*" for t in _TERM.findall(user_query))


def search_customer_ids(connection: Connection, user_query: str, *, limit: int = 50) -> list[int]:
    """Customers whose name, organization or an address has a word starting with each typed word
    (`as_prefixes`), best match first: the one query behind `customer list` and the lookup of the
    new-conversation composer."""
    query = search_parameters(as_prefixes(user_query), connection.dialect.name)["q"]
    if not query:
        return []
    if connection.dialect.name == "sqlite":
        sql = "SELECT rowid FROM customer_fts WHERE customer_fts MATCH :q ORDER BY rank LIMIT :n"
    else:
        sql = (
            "SELECT customer_id FROM customer_search WHERE document @@ to_tsquery('simple', :q) "
            "ORDER BY ts_rank(document, to_tsquery('simple', :q)) DESC, customer_id LIMIT :n"
        )
    return [row[0] for row in connection.execute(text(sql), {"q": query, "n": limit})]


def search_message_ids(connection: Connection, user_query: str, *, limit: int = 50) -> list[int]:
    query = search_parameters(user_query, connection.dialect.name)["q"]
    if not query:
        return []
    if connection.dialect.name == "sqlite":
        sql = "SELECT rowid FROM message_fts WHERE message_fts MATCH :q ORDER BY rank LIMIT :n"
    else:
        sql = (
            "SELECT id FROM message WHERE search_vector @@ to_tsquery('simple', :q) "
            "ORDER BY ts_rank(search_vector, to_tsquery('simple', :q)) DESC, id LIMIT :n"
        )
    return [row[0] for row in connection.execute(text(sql), {"q": query, "n": limit})]
