"""What agents do to conversations: status, priority, assignment, claim, tags, snooze.

Every change goes through `change`, which checks the caller's view is current (optimistic
concurrency on `version`), applies the change, recomputes the SLA fields, bumps the version and
records one audit event per changed field, all in the caller's transaction. Use
`store.db.write_session` so that, on SQLite, the transaction holds the write lock from its start.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlmodel import Session

from agentdesk.config import PRIORITIES, STATUSES
from agentdesk.domain import audit, clocks
from agentdesk.errors import Conflict, InvalidInput
from agentdesk.store import collaboration, conversations, queries
from agentdesk.store.models import Conversation, ConversationTag, Customer, Draft, id_of, ref_of


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def lock_in_order(session: Session, refs: Iterable[int | str]) -> None:
    """Before a change to several conversations in one transaction: lock them all at once, in
    ascending id order. Each agent marks rows in their own order; two bulk changes locking row by
    row in those orders could each hold a row the other waits for, a deadlock PostgreSQL ends by
    failing one of them. A ref to no conversation is left for the change itself to report."""
    ids = {ref if isinstance(ref, int) else queries.parse_ref(ref) for ref in refs}
    if len(ids) > 1:
        conversations.lock_rows(session=session, conversation_ids=ids)


def load_for_update(session: Session, ref: str) -> Conversation:
    """The conversation, row-locked where the database supports it (PostgreSQL)."""
    conversation_id = queries.parse_ref(ref)
    conversation = session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise queries.NotFound(f"no conversation {ref}; `agentdesk list` shows the queue")
    return conversation


def _tags(session: Session, conversation_id: int) -> set[str]:
    return conversations.tag_names(session=session, conversation_id=conversation_id)


def _normalise_tag(tag: str) -> str:
    cleaned = tag.strip().lower()
    if not cleaned or any(ch.isspace() or ch in ",:" for ch in cleaned):
        raise InvalidInput(f"tag {tag!r} is not valid; a tag is one word without spaces, commas or colons")
    return cleaned


def check_version(conversation: Conversation, expected_version: int | None) -> None:
    """Optimistic concurrency: refuse to act on a conversation that changed since the caller read it."""
    if expected_version is not None and conversation.version != expected_version:
        raise Conflict(
            f"{ref_of(id_of(conversation))} changed since you opened it "
            f"(version {expected_version}, now {conversation.version}); reload and try again"
        )


def change(
    session: Session,
    *,
    conversation: Conversation,
    agent: str,
    now: datetime,
    policies: clocks.Policies,
    status: str | None = None,
    priority: str | None = None,
    assignee: str | None = UNSET,
    add_tags: Iterable[str] = (),
    remove_tags: Iterable[str] = (),
    snoozed_until: datetime | None = UNSET,
    expected_version: int | None = None,
) -> list[str]:
    """Apply the given changes; return the names of the fields that actually changed."""
    check_version(conversation, expected_version)
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status {status!r} is not one of: {', '.join(STATUSES)}")
    if priority is not None and priority not in PRIORITIES:
        raise InvalidInput(f"priority {priority!r} is not one of: {', '.join(PRIORITIES)}")
    ref_id = id_of(conversation)
    changed: list[str] = []

    def note(action: str, **detail: Any) -> None:
        changed.append(action)
        audit.record(session, agent=agent, action=action, now=now, conversation_id=ref_id, **detail)

    if status is not None and status != conversation.status:
        note("status", old=conversation.status, new=status)
        if status in queries.DONE_STATUSES and conversation.status not in queries.DONE_STATUSES:
            conversation.solved_at = now
        elif status not in queries.DONE_STATUSES:
            conversation.solved_at = None
        conversation.status = status
    if priority is not None and priority != conversation.priority:
        note("priority", old=conversation.priority, new=priority)
        conversation.priority = priority
    if assignee is not UNSET and assignee != conversation.assignee:
        note("assign", old=conversation.assignee, new=assignee)
        conversation.assignee = assignee
    if snoozed_until is not UNSET and snoozed_until != conversation.snoozed_until:
        if snoozed_until is not None and snoozed_until <= now:
            raise InvalidInput("snooze until a time in the future")
        note("snooze", until=snoozed_until, old=conversation.snoozed_until)
        conversation.snoozed_until = snoozed_until

    tags = _tags(session, ref_id)
    for tag in sorted({_normalise_tag(t) for t in add_tags} - tags):
        session.add(ConversationTag(conversation_id=ref_id, tag=tag))
        tags.add(tag)
        note("tag", tag=tag)
    for tag in sorted({_normalise_tag(t) for t in remove_tags} & tags):
        conversations.delete_tags(session=session, conversation_id=ref_id, tag=tag)
        tags.discard(tag)
        note("untag", tag=tag)

    if changed:
        touch(session, conversation=conversation, policies=policies, tags=tags, now=now)
    return changed


def touch(
    session: Session,
    *,
    conversation: Conversation,
    policies: clocks.Policies,
    now: datetime,
    tags: set[str] | None = None,
) -> None:
    """After a change: record SLA clock events, recompute SLA fields, bump the version, mark the time."""
    if tags is None:
        tags = _tags(session, id_of(conversation))
    customer = session.get(Customer, conversation.customer_id)
    clocks.refresh(
        conversation, policies=policies, tags=tags, tier=customer.tier if customer else "", now=now, session=session
    )
    conversation.version += 1
    conversation.updated_at = now
    session.add(conversation)


def claim(session: Session, *, conversation_id: int, agent: str, now: datetime) -> None:
    """Assign to `agent` if nobody holds it; raise Conflict naming the holder otherwise.

    One conditional UPDATE, so of two agents claiming at once exactly one wins, on any database.
    """
    if not conversations.claim_if_unassigned(session=session, conversation_id=conversation_id, agent=agent, now=now):
        holder = conversations.assignee_of(session=session, conversation_id=conversation_id)
        if holder is None and session.get(Conversation, conversation_id) is None:
            raise queries.NotFound(f"no conversation {ref_of(conversation_id)}")
        raise Conflict(f"{ref_of(conversation_id)} is already claimed by {holder}")
    audit.record(session, agent=agent, action="claim", now=now, conversation_id=conversation_id)


def _move_draft(session: Session, draft: Draft, *, to: Conversation) -> None:
    """An agent's draft, whole (text, recipients, files), onto another conversation: its key is
    the conversation, so the row is replaced, not updated."""
    session.add(
        Draft(
            conversation_id=id_of(to),
            agent=draft.agent,
            kind=draft.kind,
            body=draft.body,
            base_version=to.version,
            updated_at=draft.updated_at,
            envelope=draft.envelope,
        )
    )
    session.delete(draft)


def merge_conversations(
    session: Session,
    *,
    source: Conversation,
    target: Conversation,
    agent: str,
    now: datetime,
    policies: clocks.Policies,
) -> int:
    """Merge `source` into `target`: its messages (notes included) and tags move over, `source` is
    closed with `merged_into_id` set, both get an audit event, and the target's SLA is recomputed.
    Return how many messages moved. The caller commits.

    The target's event records everything the merge moved or overwrote (the messages' ids, the
    source's tags, the drafts that followed, the target's waiting times before), which is what
    makes `unmerge_conversations` exact.
    """

    source_ref, target_ref = ref_of(id_of(source)), ref_of(id_of(target))
    if source.id == target.id:
        raise InvalidInput(f"cannot merge {source_ref} into itself; pick another conversation")
    if target.merged_into_id is not None:
        raise InvalidInput(
            f"{target_ref} was itself merged into {ref_of(target.merged_into_id)}; merge into that one instead"
        )
    if source.merged_into_id is not None:
        raise InvalidInput(f"{source_ref} was already merged into {ref_of(source.merged_into_id)}")

    message_ids = conversations.message_ids_of(session=session, conversation_id=id_of(source))
    moved = conversations.move_messages(session=session, from_id=id_of(source), to_id=id_of(target))
    target_tags = _tags(session, id_of(target))
    source_tags = _tags(session, id_of(source))
    for tag in sorted(source_tags - target_tags):
        session.add(ConversationTag(conversation_id=id_of(target), tag=tag))
    conversations.delete_tags(session=session, conversation_id=id_of(source))
    # A draft on the source follows it unless the agent already has one on the target; then it
    # stays where it is (on the merged conversation), so no text is lost.
    drafts_moved = []
    for draft in collaboration.drafts_on(session=session, conversation_id=id_of(source)):
        if session.get(Draft, (target.id, draft.agent)) is None:
            _move_draft(session, draft, to=target)
            drafts_moved.append(draft.agent)
    session.flush()

    before = {"waiting_since": target.waiting_since, "last_customer_message_at": target.last_customer_message_at}
    # The SLA clocks are replayed from their recorded events: what the merge makes them record is
    # forgotten on undo, so both clocks run on as if the merge had not happened.
    clock_events_before = conversations.last_clock_event_id(
        session=session, conversation_ids=[id_of(target), id_of(source)]
    )
    # The customer waits since the older of the two unanswered messages; the newer contact counts.
    waits = [t for t in (source.waiting_since, target.waiting_since) if t is not None]
    target.waiting_since = min(waits) if waits else None
    contacts = [t for t in (source.last_customer_message_at, target.last_customer_message_at) if t is not None]
    target.last_customer_message_at = max(contacts) if contacts else None

    merged_from: dict[str, Any] = {
        "from": source_ref,
        "messages": moved,
        "tags": sorted(source_tags - target_tags),
        "message_ids": message_ids,
        "source_tags": sorted(source_tags),
        "drafts": sorted(drafts_moved),
        "target_before": before,
        "clock_events_before": clock_events_before,
    }
    audit.record(session, agent=agent, action="merge", now=now, conversation_id=target.id, **merged_from)
    audit.record(session, agent=agent, action="merge", now=now, conversation_id=source.id, into=target_ref)
    source.merged_into_id = target.id
    if not change(session, conversation=source, agent=agent, now=now, policies=policies, status="closed"):
        touch(session, conversation=source, policies=policies, tags=set(), now=now)
    touch(session, conversation=target, policies=policies, tags=source_tags | target_tags, now=now)
    return moved


def unmerge_conversations(
    session: Session,
    *,
    source: Conversation,
    target: Conversation,
    merge: dict[str, Any],
    old_status: str | None,
    agent: str,
    now: datetime,
    policies: clocks.Policies,
) -> int:
    """Undo the merge of `source` into `target` that `merge` (the target's merge event's detail)
    records: the messages, tags and drafts it moved go back, the target's waiting times are what
    they were, `source` is no longer merged and gets `old_status` back (None: as it is). The SLA
    clock events recorded since the merge are forgotten and both clocks replayed from before it. The caller checks nothing changed since (domain/undo.py),
    audits and commits. How many messages went back.
    """

    if source.merged_into_id != target.id:
        raise InvalidInput(f"{ref_of(id_of(source))} is not merged into {ref_of(id_of(target))}")
    if "message_ids" not in merge:
        raise InvalidInput(
            f"{ref_of(id_of(source))} was merged before agentdesk recorded what a merge moves; "
            f"move its messages back one by one (`agentdesk move {ref_of(id_of(target))} N --to {ref_of(id_of(source))}`)"
        )
    moved = conversations.move_messages(
        session=session, from_id=id_of(target), to_id=id_of(source), message_ids=merge["message_ids"]
    )
    for tag in merge.get("tags", []):
        conversations.delete_tags(session=session, conversation_id=id_of(target), tag=tag)
    for tag in merge.get("source_tags", []):
        session.add(ConversationTag(conversation_id=id_of(source), tag=tag))
    for agent_login in merge.get("drafts", []):
        draft = session.get(Draft, (target.id, agent_login))
        if draft is not None and session.get(Draft, (source.id, agent_login)) is None:
            _move_draft(session, draft, to=source)
    session.flush()
    before = merge.get("target_before", {})
    for name in ("waiting_since", "last_customer_message_at"):
        value = before.get(name)
        setattr(target, name, datetime.fromisoformat(value) if value else None)
    source.merged_into_id = None
    if "clock_events_before" in merge:
        conversations.delete_clock_events_after(
            session=session, conversation_ids=[id_of(target), id_of(source)], after_id=merge["clock_events_before"]
        )
    if old_status is None or not change(
        session, conversation=source, agent=agent, now=now, policies=policies, status=old_status
    ):
        touch(session, conversation=source, policies=policies, now=now)
    touch(session, conversation=target, policies=policies, now=now)
    return moved
