"""The knowledge base as the front ends use it: search, show, suggest for a thread, usage.

Each call first brings the index in step with the articles directory (`knowledge_base.refresh`:
a stat of the directory when nothing changed), so an article saved a moment ago is found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentdesk.app.desk import Desk
from agentdesk.domain import knowledge_base
from agentdesk.errors import NotFound
from agentdesk.store import threads


@dataclass(frozen=True)
class Found:
    slug: str
    title: str
    tags: tuple[str, ...]
    url: str
    score: float
    excerpt: str

    def document(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "title": self.title,
            "tags": list(self.tags),
            "url": self.url or None,
            "score": round(self.score, 6),
            "excerpt": self.excerpt,
        }


def _excerpt(body: str, width: int = 160) -> str:
    text = " ".join(line.strip() for line in body.splitlines() if line.strip() and not line.startswith("#"))
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _found(match: knowledge_base.Match) -> Found:
    article = match.article
    return Found(article.slug, article.title, article.tags, article.url, match.score, _excerpt(article.body))


def refresh(desk: Desk, *, force: bool = False) -> list[str]:
    """Index what changed in the articles directory; the files left out, and why. Unchanged
    since the last look (a stat), it writes nothing: the picker searches at every key typed."""
    if not force and not knowledge_base.directory_changed(str(desk.engine.url), desk.settings.kb_dir):
        return []
    with desk.writing, desk.write() as session:
        problems = knowledge_base.refresh(session, desk.settings.kb_dir, now=desk.now(), force=force)
        session.commit()
    return problems


def search(desk: Desk, query: str, *, limit: int = 10) -> list[Found]:
    refresh(desk)
    with desk.read() as session:
        return [_found(match) for match in knowledge_base.search(session, query, limit=limit)]


def article(desk: Desk, slug: str) -> knowledge_base.Article:
    refresh(desk)
    with desk.read() as session:
        found = knowledge_base.find(session, slug)
        if found is None:
            known = ", ".join(a.slug for a in knowledge_base.all_articles(session)[:20]) or "none"
            raise NotFound(f"no article {slug!r} in {desk.settings.kb_dir} (articles: {known})")
        return found


def document(found: knowledge_base.Article) -> dict[str, Any]:
    return {
        "slug": found.slug,
        "title": found.title,
        "tags": list(found.tags),
        "url": found.url or None,
        "body": found.body,
    }


def suggestions(desk: Desk, conversation_id: int, *, limit: int = 3) -> list[Found]:
    """The articles that best match the customer's latest message of a conversation."""
    refresh(desk)
    with desk.read() as session:
        latest = threads.latest_inbound(session=session, conversation_id=conversation_id)
        if latest is None:
            return []
        text = f"{latest.subject}\n{latest.body_text or latest.body_html_text}"
        return [_found(match) for match in knowledge_base.suggest(session, text, limit=limit)]


def insertion(desk: Desk, slug: str, *, as_text: bool) -> str:
    """What the composer inserts for an article: a link line, or its text."""
    found = article(desk, slug)
    return knowledge_base.as_text(found) if as_text else knowledge_base.as_link(found)


def usage(desk: Desk, *, since: datetime | None = None, until: datetime | None = None) -> list[dict[str, Any]]:
    refresh(desk)
    with desk.read() as session:
        return [
            {
                "slug": u.slug,
                "title": u.title,
                "sent": u.sent,
                "conversations": u.conversations,
                "solved_without_reply": u.solved_without_reply,
                "self_service_rate": round(u.self_service_rate, 4) if u.self_service_rate is not None else None,
            }
            for u in knowledge_base.usage(session, since=since, until=until)
        ]
