"""The knowledge base's index and usage: the SQL behind `agentdesk kb` and article suggestions.

The Markdown files are the source of truth; `kbarticle` holds each article as last read and a
full-text index follows it. On SQLite that is the FTS5 table `kbarticle_fts` (written here, with
the row, not by triggers: articles change only through `replace_articles`); on PostgreSQL a
weighted tsvector column on `kbarticle` with a GIN index. Both rank a title match above a tag
match above a body match, and both take a list of words that match when ANY of them does: a
suggestion is the customer's words, most of which no article has.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, delete, select

from agentdesk.store.models import ArticleUse, KbArticle, UTCDateTime

_SQLITE_DDL = [
    """CREATE VIRTUAL TABLE IF NOT EXISTS kbarticle_fts USING fts5(
        slug UNINDEXED, title, tags, body, tokenize='unicode61 remove_diacritics 2')""",
]
_POSTGRES_DDL = [
    "ALTER TABLE kbarticle ADD COLUMN IF NOT EXISTS search_vector tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('simple', regexp_replace(coalesce(title, ''), '\\W+', ' ', 'g')), 'A') || "
    "setweight(to_tsvector('simple', regexp_replace(coalesce(tags, ''), '\\W+', ' ', 'g')), 'B') || "
    "setweight(to_tsvector('simple', regexp_replace(coalesce(body, ''), '\\W+', ' ', 'g')), 'D')) STORED",
    "CREATE INDEX IF NOT EXISTS ix_kbarticle_search_vector ON kbarticle USING gin (search_vector)",
]
# bm25 weights of slug (not indexed), title, tags and body.
_SQLITE_RANK = "bm25(kbarticle_fts, 0.0, 10.0, 5.0, 1.0)"


def install(connection: Connection) -> None:
    """Create the article index (the `kbarticle` table itself is a model)."""
    statements = {"sqlite": _SQLITE_DDL, "postgresql": _POSTGRES_DDL}.get(connection.dialect.name, [])
    for statement in statements:
        connection.exec_driver_sql(statement)


def stored_hashes(*, session: Session) -> dict[str, str]:
    """slug -> content hash of every indexed article."""
    return dict(session.exec(select(KbArticle.slug, KbArticle.content_hash)).all())


def replace_articles(*, session: Session, articles: Sequence[dict], removed: Iterable[str]) -> None:
    """Write new and changed articles (dicts of KbArticle's columns) and drop the `removed` slugs,
    keeping the full-text index in step."""
    slugs = [a["slug"] for a in articles] + list(removed)
    if not slugs:
        return
    sqlite = session.get_bind().dialect.name == "sqlite"
    session.exec(delete(KbArticle).where(col(KbArticle.slug).in_(slugs)))
    if sqlite:
        for slug in slugs:
            session.connection().execute(text("DELETE FROM kbarticle_fts WHERE slug = :slug"), {"slug": slug})
    for article in articles:
        session.add(KbArticle(**article))
    session.flush()
    if sqlite:
        for article in articles:
            session.connection().execute(
                text("INSERT INTO kbarticle_fts(slug, title, tags, body) VALUES (:slug, :title, :tags, :body)"),
                {name: article[name] for name in ("slug", "title", "tags", "body")},
            )


def article(*, session: Session, slug: str) -> KbArticle | None:
    return session.get(KbArticle, slug)


def all_articles(*, session: Session) -> list[KbArticle]:
    return list(session.exec(select(KbArticle).order_by(KbArticle.title, KbArticle.slug)).all())


def article_names(*, session: Session) -> list[tuple[str, str, str]]:
    """(slug, title, url) of every article: what a sent message is checked against, without the bodies."""
    return [
        (slug, title, url)
        for slug, title, url in session.exec(select(KbArticle.slug, KbArticle.title, KbArticle.url)).all()
    ]


def search(
    *, session: Session, words: Sequence[str], prefixes: Sequence[str] = (), limit: int = 10
) -> list[tuple[str, float]]:
    """(slug, score) of the articles matching any of `words` (or starting with one of
    `prefixes`), best first; a higher score is a better match on both backends."""
    words = [w for w in words if w]
    prefixes = [p for p in prefixes if p]
    if not (words or prefixes):
        return []
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        # Each term a quoted phrase: nothing a person typed reaches FTS5's query syntax.
        terms = [f'"{w}"' for w in words] + [f'"{p}"*' for p in prefixes]
        sql = (
            f"SELECT slug, -{_SQLITE_RANK} AS score FROM kbarticle_fts WHERE kbarticle_fts MATCH :q "
            f"ORDER BY {_SQLITE_RANK}, slug LIMIT :n"
        )
        query = " OR ".join(terms)
    else:
        # Words are \w+ (the domain splits them so): nothing to escape inside the quotes.
        terms = [f"'{w}'" for w in words] + [f"'{p}':*" for p in prefixes]
        query = " | ".join(terms)
        sql = (
            "SELECT slug, ts_rank(search_vector, to_tsquery('simple', :q)) AS score FROM kbarticle "
            "WHERE search_vector @@ to_tsquery('simple', :q) ORDER BY score DESC, slug LIMIT :n"
        )
    return [(row[0], float(row[1])) for row in connection.execute(text(sql), {"q": query, "n": limit})]


def add_uses(*, session: Session, conversation_id: int, message_id: int, slugs: Iterable[str], at: datetime) -> None:
    for slug in slugs:
        session.add(ArticleUse(slug=slug, conversation_id=conversation_id, message_id=message_id, at=at))


def usage(
    *, session: Session, since: datetime | None = None, until: datetime | None = None
) -> list[tuple[str, int, int, int]]:
    """(slug, times sent, conversations, conversations solved since without another customer
    message) per article sent in [since, until). An answer to the satisfaction survey is no new
    question: it does not count as another message."""
    where = []
    params: dict = {}
    if since is not None:
        where.append("u.at >= :since")
        params["since"] = since
    if until is not None:
        where.append("u.at < :until")
        params["until"] = until
    sql = f"""
        SELECT u.slug, count(*), count(DISTINCT u.conversation_id),
               count(DISTINCT CASE WHEN c.status IN ('solved', 'closed') AND NOT EXISTS (
                   SELECT 1 FROM message m WHERE m.conversation_id = u.conversation_id
                   AND m.direction = 'inbound' AND m.kind = 'message' AND m.at > u.at
                   AND NOT EXISTS (SELECT 1 FROM satisfactionsurvey s WHERE s.answer_message_id = m.id))
                   THEN u.conversation_id END)
        FROM articleuse u JOIN conversation c ON c.id = u.conversation_id
        {"WHERE " + " AND ".join(where) if where else ""}
        GROUP BY u.slug ORDER BY count(*) DESC, u.slug
    """
    statement = text(sql)
    if params:
        statement = statement.bindparams(*(bindparam(name, type_=UTCDateTime()) for name in params))
    return [(row[0], int(row[1]), int(row[2]), int(row[3])) for row in session.connection().execute(statement, params)]
