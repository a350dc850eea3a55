"""Drafts: an agent's unsent reply or note, one per conversation and agent.

A draft is saved as the agent types (the composer debounces) and when they leave the
conversation, so it survives switching conversations and restarting the app. `base_version` is
the conversation's version when the composer opened: the composer can tell the agent that the
conversation changed under their draft. Its envelope keeps the recipients the agent chose and
the files they attached (their bytes in the attachment store, by key), so neither is lost when
the composer closes or a reply is taken back in its undo window.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from agentdesk.domain.outbound import OutgoingFile, Recipients
from agentdesk.errors import InvalidInput
from agentdesk.store import attachments, collaboration
from agentdesk.store.models import Draft

# A forward's draft is the agent's one draft on the conversation like a reply's: its To, its note
# and the files it carries (the conversation's, less the ones removed, plus the ones added).
KINDS = ("reply", "note", "forward")


@dataclass(frozen=True)
class DraftFile:
    """A file attached to a draft: its bytes are in the attachment store under `key`."""

    key: str
    name: str
    content_type: str


@dataclass(frozen=True)
class Envelope:
    """A draft's recipients (None: the reply-all the composer fills in) and files."""

    recipients: Recipients | None = None
    files: tuple[DraftFile, ...] = ()

    def as_json(self) -> str:
        found: dict = self.recipients.as_dict() if self.recipients is not None else {}
        if self.files:
            found["files"] = [{"key": f.key, "name": f.name, "content_type": f.content_type} for f in self.files]
        return json.dumps(found, sort_keys=True)


def envelope_of(draft: Draft | None) -> Envelope:
    """What the draft's envelope holds; an unreadable one (written by hand) as empty."""
    try:
        found = json.loads(draft.envelope or "{}") if draft is not None else {}
    except ValueError:
        return Envelope()
    if not isinstance(found, dict):
        return Envelope()

    def listed(name: str) -> list:
        value = found.get(name)
        return value if isinstance(value, list) else []

    recipients = None
    if any(name in found for name in ("to", "cc", "bcc")):
        recipients = Recipients(**{name: tuple(str(a) for a in listed(name)) for name in ("to", "cc", "bcc")})
    files = tuple(
        DraftFile(key=str(f.get("key", "")), name=str(f.get("name", "")), content_type=str(f.get("content_type", "")))
        for f in listed("files")
        if isinstance(f, dict)
    )
    return Envelope(recipients, files)


def keep_files(session: Session, outgoing: Sequence[OutgoingFile]) -> tuple[DraftFile, ...]:
    """Put the files' bytes in the attachment store (once per content) for the draft to name."""
    return tuple(
        DraftFile(key=attachments.put(session=session, data=f.data), name=f.name, content_type=f.content_type)
        for f in outgoing
    )


def files_of(session: Session, envelope: Envelope) -> list[OutgoingFile]:
    """The draft's files with their bytes, to attach again (NotFound when the store lost one)."""
    return [
        OutgoingFile(name=f.name, data=attachments.read(session=session, key=f.key), content_type=f.content_type)
        for f in envelope.files
    ]


def get(session: Session, *, conversation_id: int, agent: str) -> Draft | None:
    return session.get(Draft, (conversation_id, agent))


def save(
    session: Session,
    *,
    conversation_id: int,
    agent: str,
    body: str,
    kind: str = "reply",
    base_version: int = 0,
    now: datetime,
    envelope: Envelope = Envelope(),
) -> Draft | None:
    """Store the draft (in the caller's transaction); one with neither text nor files (nor, for a
    forward, an addressee) is discarded instead."""
    if kind not in KINDS:
        raise InvalidInput(f"draft kind {kind!r} is not one of: {', '.join(KINDS)}")
    addressed = kind == "forward" and envelope.recipients is not None and bool(envelope.recipients.all())
    if not body.strip() and not envelope.files and not addressed:
        discard(session, conversation_id=conversation_id, agent=agent)
        return None
    draft = get(session, conversation_id=conversation_id, agent=agent)
    if draft is None:
        draft = Draft(conversation_id=conversation_id, agent=agent)
    draft.kind = kind
    draft.body = body
    draft.base_version = base_version
    draft.envelope = envelope.as_json()
    draft.updated_at = now
    session.add(draft)
    return draft


def discard(session: Session, *, conversation_id: int, agent: str) -> None:
    collaboration.delete_draft(session=session, conversation_id=conversation_id, agent=agent)


def with_drafts(session: Session, *, agent: str, conversation_ids: list[int]) -> set[int]:
    """Which of these conversations the agent has a draft in (a marker in the queue)."""
    if not conversation_ids:
        return set()
    return collaboration.conversations_with_drafts(session=session, agent=agent, conversation_ids=conversation_ids)
