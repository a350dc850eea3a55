"""The knowledge base: Markdown articles in a directory, searched, suggested, sent and counted.

An article is `<kb dir>/<slug>.md`, so a team keeps them in git beside the templates. It may
start with front matter between `---` lines: `title`, `tags` (a comma-separated list, or a
`[a, b]` list) and `url` (where customers can read it). Without a title, the first `# heading`
is the title, else the slug. The files are the source of truth; the store keeps an index of them
(`store.knowledge_base`) that `refresh` brings in step when the directory changed.

Search takes what a person typed: words, and a trailing `*` for a prefix; an article matching
more of them, or matching in its title or tags, ranks higher. Suggestions (for a thread, for a
receipt) search with the customer's own words, less the ones that say nothing.

An article counts as sent when an outbound message names it: its URL, or its title as a line of
its own (what the composer inserts). `usage` says how often, and how often the conversation was
then solved without the customer writing again (a rating for the survey aside): the article
answered the question.

No SQL here: every query is in `store.knowledge_base`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import Session

from agentdesk.domain.templates import front_matter
from agentdesk.sanitize import strip_control
from agentdesk.store import knowledge_base as store
from agentdesk.store.models import KbArticle, Message

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
MAX_ARTICLE_BYTES = 256 * 1024
_WORD = re.compile(r"\w+", re.UNICODE)
_SUGGEST_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
# Words that say nothing about what a message is about, in the languages the demo and the
# surveys speak: a suggestion searches with the rest.
STOPWORDS = frozenset(
    # English
    "the and for you your are was were this that with have has had not but can could would will what when where "
    "which who how all any our out get got just like also from into been being they them their there then than "
    "thanks thank hello dear best regards please its it's there here does did doing don't some very much "
    "about after before again still since because would should my me am is it of on in to at by an or as be "
    # German
    "und der die das ist nicht ein eine einen mit für auf ich sie wir ihr mein meine bitte danke hallo "
    "grüße gruß freundlichen von zu den dem des bei aus noch schon aber oder wie was wann "
    # French
    "les des une est pas pour avec dans sur vous nous mon mes merci bonjour cordialement que qui "
    # Spanish
    "los las una por para con como pero mis gracias hola saludos que del".split()
)
MAX_SUGGESTION_WORDS = 24


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    tags: tuple[str, ...]
    url: str
    body: str


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_article(slug: str, text: str) -> Article:
    """An article from its file's text. Control characters go (the text reaches the terminal)."""
    meta, body = front_matter(strip_control(text.replace("\r\n", "\n")))
    tags = tuple(t for t in (_unquote(t).strip() for t in meta.get("tags", "").strip("[]").split(",")) if t)
    title = _unquote(meta.get("title", ""))
    if not title:
        heading = next((line[2:].strip() for line in body.splitlines() if line.startswith("# ")), "")
        title = heading or slug.replace("-", " ").capitalize()
    return Article(slug=slug, title=title, tags=tags, url=_unquote(meta.get("url", "")), body=body.strip())


def read_directory(directory: Path) -> tuple[list[Article], list[str]]:
    """Every article in `directory` (absent: none), and a line for each file that was left out."""
    articles, problems = [], []
    if not directory.is_dir():
        return [], []
    for path in sorted(directory.glob("*.md")):
        slug = path.stem.lower()
        if not SLUG_PATTERN.match(slug) or not path.is_file():
            problems.append(f"{path.name}: not an article name (use letters, digits, '.', '-', '_')")
            continue
        if path.stat().st_size > MAX_ARTICLE_BYTES:
            problems.append(f"{path.name}: larger than {MAX_ARTICLE_BYTES // 1024} KiB")
            continue
        articles.append(parse_article(slug, path.read_text(encoding="utf-8", errors="replace")))
    return articles, problems


def _hash(article: Article) -> str:
    return hashlib.sha256(
        "\0".join((article.title, " ".join(article.tags), article.url, article.body)).encode()
    ).hexdigest()


def _signature(directory: Path) -> tuple:
    if not directory.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in directory.glob("*.md")))


_seen: dict[tuple[str, str], tuple] = {}
_seen_lock = threading.Lock()


def directory_changed(database_url: str, directory: Path) -> bool:
    """Whether the articles directory changed since this process last indexed it into the
    database at `database_url`: a stat of its files, no database access."""
    with _seen_lock:
        return _seen.get((database_url, str(directory))) != _signature(directory)


def refresh(session: Session, directory: Path, *, now: datetime, force: bool = False) -> list[str]:
    """Bring the index in step with the directory; the files that were left out, and why.

    Cheap when nothing changed: the files' names, sizes and times are compared with those of the
    last refresh of this database in this process, and only a change reads them.
    """
    key = (str(session.get_bind().engine.url), str(directory))
    signature = _signature(directory)
    with _seen_lock:
        if not force and _seen.get(key) == signature:
            return []
    articles, problems = read_directory(directory)
    stored = store.stored_hashes(session=session)
    changed = [
        dict(
            slug=a.slug,
            title=a.title,
            tags=" ".join(a.tags),
            url=a.url,
            body=a.body,
            content_hash=_hash(a),
            indexed_at=now,
        )
        for a in articles
        if stored.get(a.slug) != _hash(a)
    ]
    removed = set(stored) - {a.slug for a in articles}
    store.replace_articles(session=session, articles=changed, removed=removed)
    with _seen_lock:
        _seen[key] = signature
    return problems


def article_of(row: KbArticle) -> Article:
    return Article(slug=row.slug, title=row.title, tags=tuple(row.tags.split()), url=row.url, body=row.body)


def query_terms(query: str) -> tuple[list[str], list[str]]:
    """(words, prefixes) of what a person typed: `batt*` is a prefix."""
    words, prefixes = [], []
    for term in query.split():
        found = [w.lower() for w in _WORD.findall(term)]
        if not found:
            continue
        if term.endswith("*"):
            words.extend(found[:-1])
            prefixes.append(found[-1])
        else:
            words.extend(found)
    return list(dict.fromkeys(words)), list(dict.fromkeys(prefixes))


def suggestion_words(text: str) -> list[str]:
    """The words of a customer's text worth searching for: no stop words, no numbers, at most
    MAX_SUGGESTION_WORDS (the first ones: a message says what it is about early)."""
    words = [w.lower() for w in _SUGGEST_WORD.findall(text)]
    kept = [w for w in dict.fromkeys(words) if w not in STOPWORDS]
    return kept[:MAX_SUGGESTION_WORDS]


@dataclass(frozen=True)
class Match:
    article: Article
    score: float


def _load(session: Session, ranked: list[tuple[str, float]]) -> list[Match]:
    matches = []
    for slug, score in ranked:
        row = store.article(session=session, slug=slug)
        if row is not None:
            matches.append(Match(article_of(row), score))
    return matches


def search(session: Session, query: str, *, limit: int = 10) -> list[Match]:
    words, prefixes = query_terms(query)
    return _load(session, store.search(session=session, words=words, prefixes=prefixes, limit=limit))


# A suggestion scoring under this share of the best one is a chance match on a common word.
SUGGESTION_FLOOR = 0.35


def suggest(session: Session, text: str, *, limit: int = 3) -> list[Match]:
    """The articles that best match a customer's text, best first; weak matches left out."""
    ranked = store.search(session=session, words=suggestion_words(text), limit=limit)
    best = ranked[0][1] if ranked else 0.0
    return _load(session, [(slug, score) for slug, score in ranked if best <= 0 or score >= best * SUGGESTION_FLOOR])


def find(session: Session, slug: str) -> Article | None:
    row = store.article(session=session, slug=slug.strip().lower())
    return article_of(row) if row is not None else None


def all_articles(session: Session) -> list[Article]:
    return [article_of(row) for row in store.all_articles(session=session)]


def as_link(article: Article) -> str:
    """What the composer inserts for "link": the title and where to read it."""
    return f"{article.title}: {article.url}" if article.url else article.title


def as_text(article: Article) -> str:
    """What the composer inserts for "text": the title as a line of its own, the body, the URL."""
    parts = [article.title, "", article.body]
    if article.url:
        parts += ["", article.url]
    return "\n".join(parts)


def as_list(articles: list[Article]) -> str:
    """The receipt's `{{ articles }}`: one "- Title: URL" line per article."""
    return "\n".join(f"- {as_link(article)}" for article in articles)


def named_in(body: str, articles: list[tuple[str, str, str]]) -> list[str]:
    """The slugs of the articles, (slug, title, url), a message names: by URL, or by title on a
    line of its own (alone, or as "Title: URL")."""
    lines = {line.strip().lstrip("-* ").strip().lower() for line in body.splitlines()}
    found = []
    for slug, title, url in articles:
        if (url and url in body) or title.lower() in lines:
            found.append(slug)
    return found


def record_sent(session: Session, *, message: Message, now: datetime) -> list[str]:
    """Count the articles an outbound message names as sent to its conversation."""
    slugs = named_in(message.body_text, store.article_names(session=session))
    assert message.id is not None, "a stored message"
    store.add_uses(session=session, conversation_id=message.conversation_id, message_id=message.id, slugs=slugs, at=now)
    return slugs


@dataclass(frozen=True)
class Usage:
    slug: str
    title: str
    sent: int
    conversations: int
    solved_without_reply: int

    @property
    def self_service_rate(self) -> float | None:
        return self.solved_without_reply / self.conversations if self.conversations else None


def usage(session: Session, *, since: datetime | None = None, until: datetime | None = None) -> list[Usage]:
    """Per article sent: times sent, conversations, and of those, solved with no customer message since."""
    titles = {a.slug: a.title for a in all_articles(session)}
    return [
        Usage(slug, titles.get(slug, ""), sent, conversations, solved)
        for slug, sent, conversations, solved in store.usage(session=session, since=since, until=until)
    ]
