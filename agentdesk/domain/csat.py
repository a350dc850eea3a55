"""Customer satisfaction (CSAT): the survey after solving, the answer, the alert on a bad one.

A channel (a `[[mailbox]]` or `[[spool]]`) names a survey template in `csat`; without one no
survey is sent. Once a conversation of that channel has stayed solved (or closed) for
`csat_delay` (default 1 h), the sync worker queues the survey (`queue_due_surveys`): one per
conversation ever (the `satisfactionsurvey` row is keyed by conversation), never to machine mail
(`automatic_messages.refusal` on the customer's latest message, and no conversation set aside),
never one that could not be delivered. The decision not to send is recorded too, so it is made
once. Conversations solved longer than `LATE_WINDOW` ago when surveys are switched on, or while
no sync ran, are not surveyed: a survey about last month's problem is noise.

The customer answers by replying: a rating 1-5 (`5`, `4/5`, `★★★★`), or a word or emoji in one
of several languages (`good`, `schlecht`, `très bien`, `👍`), first in the reply, optionally
followed by a comment. Ingest recognises it (`read_answer`) in a reply to a solved conversation
whose survey is unanswered or answered: the rating and comment are stored on the survey and the
conversation stays solved, unless the reply carries more than a rating (a question, or more
than `COMMENT_WORDS` words): then it reopens as any customer message does. A rating of 1 or 2
alerts the conversation's assignee: a `csat_alert` event in the audit, which the TUI shows.

Every decision takes `now`; no SQL here (store/csat.py).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from agentdesk import config
from agentdesk.domain import audit, automatic_messages, clocks
from agentdesk.errors import AgentdeskError
from agentdesk.store import csat as store
from agentdesk.store import threads
from agentdesk.store.conversation_rows import ConversationRow
from agentdesk.store.models import Conversation, Customer, SatisfactionSurvey, id_of, ref_of

AUTHOR = "Satisfaction survey"
DEFAULT_DELAY = "1h"
LATE_WINDOW = timedelta(days=3)
COMMENT_WORDS = 15
SATISFIED = (4, 5)
BAD = (1, 2)

# Words and emoji that answer "how did we do?", by the rating they mean. Longer phrases are
# tried first, so "not good" is 2, not 4.
_WORDS: dict[int, tuple[str, ...]] = {
    5: (
        "excellent",
        "excellente",
        "excelente",
        "perfect",
        "perfekt",
        "parfait",
        "perfecto",
        "perfecta",
        "great",
        "awesome",
        "amazing",
        "fantastic",
        "very good",
        "very happy",
        "sehr gut",
        "super",
        "toll",
        "ausgezeichnet",
        "hervorragend",
        "très bien",
        "tres bien",
        "très bon",
        "génial",
        "genial",
        "muy bien",
        "muy bueno",
        "muy buena",
        "5 stars",
        "outstanding",
        "brilliant",
        "👍",
        "😀",
        "😃",
        "😄",
        "😍",
        "🤩",
        "❤️",
        "♥",
        "💯",
        "🙏",
    ),
    4: (
        "good",
        "happy",
        "satisfied",
        "gut",
        "zufrieden",
        "bien",
        "bon",
        "bonne",
        "bueno",
        "buena",
        "satisfait",
        "satisfecho",
        "pretty good",
        "🙂",
        "😊",
    ),
    3: (
        "ok",
        "okay",
        "fine",
        "so-so",
        "so so",
        "average",
        "neutral",
        "mediocre",
        "geht so",
        "mittel",
        "naja",
        "moyen",
        "bof",
        "pas mal",
        "regular",
        "más o menos",
        "normal",
        "😐",
        "🤷",
    ),
    2: (
        "bad",
        "poor",
        "not good",
        "not happy",
        "unhappy",
        "disappointed",
        "schlecht",
        "nicht gut",
        "enttäuscht",
        "mauvais",
        "mauvaise",
        "pas bien",
        "pas bon",
        "déçu",
        "mal",
        "malo",
        "mala",
        "no bien",
        "decepcionado",
        "👎",
        "🙁",
        "☹️",
        "😞",
        "😕",
    ),
    1: (
        "terrible",
        "awful",
        "horrible",
        "very bad",
        "worst",
        "useless",
        "sehr schlecht",
        "furchtbar",
        "schrecklich",
        "katastrophal",
        "très mauvais",
        "très mal",
        "nul",
        "nulle",
        "muy mal",
        "muy malo",
        "pésimo",
        "fatal",
        "😡",
        "😠",
        "🤬",
    ),
}
_PHRASES = sorted(
    ((phrase, rating) for rating, phrases in _WORDS.items() for phrase in phrases), key=lambda pair: -len(pair[0])
)
_LEAD_IN = re.compile(
    r"^(?:rating|score|note|bewertung|calificación|puntuación|my rating|i rate|i'd say)\s*[:=-]?\s*", re.IGNORECASE
)
_NUMBER = re.compile(
    r"^([1-5])(?:\s*(?:/|of|out of|von|sur|de)\s*5)?(?![\d.,]\d)(?:\s*(?:stars?|sterne?|étoiles?|"
    r"estrellas?|points?|punkte?))?",
    re.IGNORECASE,
)
_STARS = re.compile(r"^([★⭐]{1,5})[☆✩]*")
# Where the quoted survey starts in a reply: "> …" lines, "On … wrote:", and their translations.
_QUOTE_START = re.compile(
    r"^(>|On .+wrote:|Am .+schrieb|Le .+a écrit|El .+escribió|-{2,}\s*Original|-{2,}\s*Ursprüngliche|"
    r"From:\s|Von:\s|De:\s|_{5,})",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Answer:
    rating: int
    comment: str
    more_than_a_rating: bool  # a question, or a long text: a person must read it


def _own_text(body: str) -> str:
    """The customer's own words: up to the quoted survey or the signature."""
    kept = []
    for line in body.replace("\r\n", "\n").split("\n"):
        if line.rstrip() == "--" or _QUOTE_START.match(line.strip()):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def _boundary(rest: str) -> bool:
    return not rest or not (rest[0].isalnum() or rest[0] in "'’")


def read_answer(body: str) -> Answer | None:
    """The rating a reply gives first thing, and what follows it as a comment; None when it gives none."""
    text = unicodedata.normalize("NFC", _own_text(body))
    text = _LEAD_IN.sub("", text.lstrip(" \t*_\"'“«"))
    if not text:
        return None
    rating, rest = None, ""
    number = _NUMBER.match(text)
    stars = _STARS.match(text)
    if number:
        rating, rest = int(number.group(1)), text[number.end() :]
    elif stars:
        rating, rest = len(stars.group(1)), text[stars.end() :]
    else:
        lowered = text.lower()
        for phrase, value in _PHRASES:
            if lowered.startswith(phrase) and (not phrase[0].isalnum() or _boundary(lowered[len(phrase) :])):
                rating, rest = value, text[len(phrase) :]
                break
    if rating is None:
        return None
    comment = rest.strip().lstrip(",.;:!-–—)").strip()
    words = len(comment.split())
    return Answer(rating, comment, "?" in comment or "¿" in comment or words > COMMENT_WORDS)


# -- sending --------------------------------------------------------------------------------------


def delay_of(channel: Any) -> timedelta:
    from agentdesk.domain import sla

    return sla.parse_duration(getattr(channel, "csat_delay", "") or DEFAULT_DELAY)


def why_not(session: Session, conversation: Conversation, channel: Any, settings: config.Settings) -> str:
    """Why this conversation gets no survey, or "" when it may."""
    # Here, not at the top: `list` and `show` load this module for a survey's document only.
    from agentdesk.domain import receipts

    if conversation.aside:
        return f"its conversation is set aside as {conversation.aside}"
    latest = threads.latest_inbound(session=session, conversation_id=id_of(conversation))
    if latest is None:
        return "the customer never wrote"
    refusal = automatic_messages.refusal(
        kind=latest.kind,
        bulk=latest.bulk,
        sender_address=latest.sender_address,
        headers={},
        our_addresses=receipts.our_addresses(settings),
    )
    if refusal:
        return refusal
    return receipts.why_undeliverable(channel, latest.sender_address)


def values(conversation: Conversation, customer: Customer | None, settings: config.Settings) -> dict[str, str]:
    from agentdesk.domain import templates

    name = customer.name if customer else ""
    agent = conversation.assignee or ""
    return {
        "customer_name": name,
        "customer_first_name": templates.first_name(name),
        "ref": ref_of(id_of(conversation)),
        "subject": conversation.subject,
        "channel": conversation.channel,
        "agent_name": settings.agent_name(agent) if agent else "",
    }


def send_survey(
    session: Session,
    *,
    conversation: Conversation,
    channel: Any,
    settings: config.Settings,
    policies: clocks.Policies,
    now: datetime,
) -> SatisfactionSurvey:
    """Queue the survey of one due conversation (or record why none goes out); the survey row."""
    from agentdesk.domain import replies, templates

    survey = SatisfactionSurvey(conversation_id=id_of(conversation), sent_at=now, agent=conversation.assignee or "")
    reason = why_not(session, conversation, channel, settings)
    if not reason:
        try:
            template = templates.load(settings.templates_dir, channel.csat)
            customer = session.get(Customer, conversation.customer_id)
            rendered = templates.render(template, values(conversation, customer, settings))
            if rendered.undefined:
                raise AgentdeskError(
                    f"template {template.name!r} needs {', '.join(rendered.undefined)}, which "
                    f"agentdesk cannot fill for {ref_of(id_of(conversation))}"
                )
            with session.begin_nested():
                message = replies.reply(
                    session,
                    conversation=conversation,
                    body=rendered.text,
                    agent=audit.SYSTEM,
                    agent_name=AUTHOR,
                    now=now,
                    policies=policies,
                    kind="survey",
                    message_id_domain=settings.message_id_domain(conversation.source),
                )
            survey.message_id = message.id
        except AgentdeskError as error:
            reason = f"the survey could not be written: {error}"
    if reason:
        survey.skipped = reason[:500]
        audit.record(
            session,
            agent=audit.SYSTEM,
            action="csat_skipped",
            now=now,
            conversation_id=conversation.id,
            reason=survey.skipped,
        )
    store.add(session=session, survey=survey)
    session.flush()
    return survey


def queue_due_surveys(
    session: Session, *, settings: config.Settings, policies: clocks.Policies, now: datetime
) -> list[SatisfactionSurvey]:
    """Queue the survey of every conversation that has stayed solved long enough, per channel
    that sends surveys; the survey rows written (sent or skipped)."""
    written = []
    channels: list[config.MailboxSettings | config.SpoolSettings] = [*settings.mailbox, *settings.spool]
    for channel in channels:
        if not getattr(channel, "csat", ""):
            continue
        before = now - delay_of(channel)
        for conversation in store.due_conversations(
            session=session,
            source=channel.name,
            solved_after=before - LATE_WINDOW,
            solved_before=before,
            for_update=True,
        ):
            written.append(
                send_survey(
                    session, conversation=conversation, channel=channel, settings=settings, policies=policies, now=now
                )
            )
    return written


def any_channel_surveys(settings: config.Settings) -> bool:
    return any(getattr(channel, "csat", "") for channel in (*settings.mailbox, *settings.spool))


def surveys_due(session: Session, *, settings: config.Settings, now: datetime) -> bool:
    """Whether any conversation waits for its survey: a read, so an idle worker asks without
    taking the write lock."""
    channels: list[config.MailboxSettings | config.SpoolSettings] = [*settings.mailbox, *settings.spool]
    for channel in channels:
        if getattr(channel, "csat", ""):
            before = now - delay_of(channel)
            if store.due_conversations(
                session=session, source=channel.name, solved_after=before - LATE_WINDOW, solved_before=before, limit=1
            ):
                return True
    return False


# -- answers --------------------------------------------------------------------------------------


def answerable(session: Session, conversation: Conversation | ConversationRow) -> SatisfactionSurvey | None:
    """The survey a customer's reply to this conversation may answer: one was sent, and the
    conversation is still solved or closed."""
    if conversation.status not in ("solved", "closed") or conversation.id is None:
        return None
    survey = store.survey_of(session=session, conversation_id=conversation.id)
    if survey is None or survey.message_id is None:
        return None
    return survey


def record_answer(
    session: Session,
    *,
    survey: SatisfactionSurvey,
    answer: Answer,
    message_id: int,
    conversation: Conversation,
    at: datetime,
    now: datetime,
) -> None:
    """Store the rating and comment on the survey (a later answer replaces an earlier one), with
    its audit event, and alert the assignee of a bad one."""
    previous = survey.rating
    survey.rating = answer.rating
    survey.comment = answer.comment[:2000]
    survey.answered_at = at
    survey.answer_message_id = message_id
    session.add(survey)
    audit.record(
        session,
        agent=audit.SYSTEM,
        action="csat",
        now=now,
        conversation_id=conversation.id,
        rating=answer.rating,
        comment=survey.comment,
        previous=previous,
        message_id=message_id,
    )
    if answer.rating in BAD:
        audit.record(
            session,
            agent=audit.SYSTEM,
            action="csat_alert",
            now=now,
            conversation_id=conversation.id,
            rating=answer.rating,
            assignee=conversation.assignee or survey.agent or "",
            comment=survey.comment,
        )


def satisfied(rating: int | None) -> bool:
    return rating is not None and rating in SATISFIED


def document(survey: SatisfactionSurvey | None) -> dict[str, Any] | None:
    """`show --json`'s `csat`: {rating, comment, at} once answered, else null."""
    if survey is None or survey.rating is None:
        return None
    return {
        "rating": survey.rating,
        "comment": survey.comment,
        "at": survey.answered_at.isoformat() if survey.answered_at else None,
    }


def customer_ratings(session: Session, customer_id: int) -> list[dict[str, Any]]:
    """A customer's answered surveys, newest first: {ref, subject, rating, comment, at}."""
    return [
        {
            "ref": ref_of(conversation_id),
            "subject": subject,
            "rating": survey.rating,
            "comment": survey.comment,
            "at": survey.answered_at,
        }
        for conversation_id, subject, survey in store.ratings_of_customer(session=session, customer_id=customer_id)
    ]


# -- the report -----------------------------------------------------------------------------------


def _cell(rows: list) -> dict[str, Any]:
    """sent, responses, satisfied, csat (share of answers that are 4-5), response rate, average."""
    sent = len(rows)
    ratings = [row[1] for row in rows if row[1] is not None]
    happy = sum(1 for rating in ratings if rating in SATISFIED)
    return {
        "sent": sent,
        "responses": len(ratings),
        "satisfied": happy,
        "csat": round(happy / len(ratings), 4) if ratings else None,
        "response_rate": round(len(ratings) / sent, 4) if sent else None,
        "average": round(sum(ratings) / len(ratings), 2) if ratings else None,
    }


def _grouped(rows: list, key, name: str) -> list[dict[str, Any]]:
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return [{name: value, **_cell(members)} for value, members in sorted(groups.items())]


def report(session: Session, *, since: datetime, until: datetime) -> dict[str, Any]:
    """The `csat` section of `report --json`: the surveys sent in [since, until) and their answers,
    overall, per agent (the assignee when it went out), per SLA policy, per channel and per day
    (per ISO week for windows over 62 days)."""
    rows = store.surveys_in(session=session, since=since, until=until)
    weekly = until - since > timedelta(days=62)

    def period(row) -> str:
        day = row[0].date()
        return (day - timedelta(days=day.weekday())).isoformat() if weekly else day.isoformat()

    overall = _cell(rows)
    counts = {str(value): 0 for value in range(1, 6)}
    for row in rows:
        if row[1] is not None:
            counts[str(row[1])] += 1
    return {
        **overall,
        "ratings": counts,
        "by_agent": _grouped(rows, lambda row: row[2] or "", "agent"),
        "by_policy": _grouped(rows, lambda row: row[3] or "", "policy"),
        "by_channel": _grouped(rows, lambda row: row[4], "channel"),
        "period": "week" if weekly else "day",
        "over_time": _grouped(rows, period, "period"),
    }
