"""What an agent does to a conversation: read it, reply, note, change, claim, merge, draft.

Each action is one write transaction through the domain services (`queue.change`, `queue.claim`,
`replies.reply`, `replies.add_note`, `drafts.save`), so it lands in the audit log whichever front
end called it. A conversation is named by its id or by a reference as the agent typed it
(`AD-1042`, `ad-1042`, `1042`); errors quote it as typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentdesk.app.customers import CustomerCard, customer_card
from agentdesk.app.desk import Desk
from agentdesk.domain import drafts, knowledge_base, templates
from agentdesk.domain import queue as queue_service
from agentdesk.domain.outbound import OutgoingFile, Recipients
from agentdesk.errors import Conflict, InvalidInput
from agentdesk.store import queries
from agentdesk.store.models import Conversation, id_of, ref_of

Ref = int | str  # a conversation id, or a reference as typed


def conversation_id(ref: Ref) -> int:
    return ref if isinstance(ref, int) else queries.parse_ref(ref)


def reference(ref: Ref) -> str:
    """The conversation's reference as agentdesk writes it (AD-1042)."""
    return ref_of(conversation_id(ref))


def typed_ref(ref: Ref) -> str:
    """The reference as the agent typed it (AD-N for an id): lookups accept every form, and their
    errors name what was typed."""
    return ref_of(ref) if isinstance(ref, int) else ref


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThreadItem:
    """A message or an event of the thread timeline."""

    at: datetime
    kind: str  # inbound | outbound | note | event
    author: str = ""
    subject: str = ""
    body: str = ""
    delivery: str | None = None
    delivery_error: str = ""
    delivery_at: datetime | None = None  # when the delivery state or its error was recorded
    deliverable: bool = True  # False: the sync found no sender for this reply on its host
    number: int = 0  # the message's number in `show` (1-based), what `resend REF N` names
    attachments: tuple[Any, ...] = ()  # app.attachments.Listed, numbered across the thread
    message_kind: str = "message"
    recipients: str = ""  # an outbound message's To (and Cc, Bcc) as queued: "to a, b · cc c · bcc d"
    provenance: str = ""  # why an inbound message joined this conversation ("" for the first)


@dataclass(frozen=True)
class Thread:
    conversation: Conversation
    customer: CustomerCard
    tags: tuple[str, ...]
    items: tuple[ThreadItem, ...]
    sla: dict[str, Any]
    draft: Any = None  # store.models.Draft | None

    @property
    def conversation_id(self) -> int:
        """The conversation's id: a thread is always of a stored conversation."""
        return id_of(self.conversation)


def thread(desk: Desk, conversation_id: int) -> Thread:
    """The conversation with its messages and events in time order, its customer, SLA and this agent's draft."""
    from agentdesk.domain import documents

    now = desk.now()
    with desk.read() as session:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None:
            raise queries.NotFound(f"no conversation {ref_of(conversation_id)}")
        messages = queries.thread(session=session, conversation_id=conversation_id)
        ids = [id_of(m) for m in messages]
        outbox = queries.delivery_states(session=session, message_ids=ids)
        files = queries.attachments_of(session=session, message_ids=ids)
        events = queries.events(session=session, conversation_id=conversation_id, limit=500)
        clock_events = queries.sla_clock_events(session=session, conversation_id=conversation_id)
        tags = queries.tags_of(session=session, conversation_ids=[conversation_id])[conversation_id]
        customer = customer_card(session, conversation)
        sla = documents.sla_document(conversation, desk.policies, now=now)
        draft = drafts.get(session, conversation_id=conversation_id, agent=desk.agent)
    from agentdesk.app.attachments import numbered

    listed = numbered(messages, files)
    items = [
        ThreadItem(
            at=m.at,
            kind=m.direction,
            author=m.author or m.sender_address,
            subject=m.subject,
            body=m.body_text or m.body_html_text,
            message_kind=m.kind,
            delivery=documents.delivery_state(outbox.get(id_of(m))),
            delivery_error=outbox[m.id].last_error if m.id in outbox else "",
            delivery_at=outbox[m.id].updated_at if m.id in outbox else None,
            deliverable=outbox[m.id].no_sender_at is None if m.id in outbox else True,
            number=number,
            attachments=listed.get(id_of(m), ()),
            recipients=_addressed(outbox.get(id_of(m))),
            provenance=joined_because(m.thread_reason) if m.direction == "inbound" else "",
        )
        for number, m in enumerate(messages, start=1)
    ]
    items += [
        ThreadItem(at=e.at, kind="event", author=e.agent, body=describe_event(e.action, e.detail))
        for e in events
        if e.action not in ("reply", "note", "created", "receipt", "survey", "forward")
    ]
    items += [
        ThreadItem(at=e.at, kind="event", author="sla", body=f"SLA {e.target.replace('_', ' ')} {e.event}")
        for e in clock_events
        if e.event in ("breach",)
    ]
    items.sort(key=lambda item: item.at)
    return Thread(conversation, customer, tuple(tags), tuple(items), sla, draft)


# Why a message joined its conversation (ingest/threading.py's reasons), as the thread says it.
_JOINED = {
    "in-reply-to": "joined by its In-Reply-To",
    "references": "joined by its References",
    "thread-key": "joined by the channel's thread id",
    "hint-ref": "joined by the AD ref it names",
    "subject-tag": "joined by the [AD-n] tag in its subject",
    "answer-to-ours": "an answer to a message we started",
    "bounce": "joined as the bounce of our reply",
    "same-message-id": "joined by its Message-ID",
}


def joined_because(reason: str | None) -> str:
    if not reason or reason in ("new", "demo"):  # the demo's messages were placed by its builder
        return ""
    return _JOINED.get(reason, reason)  # "moved by dana" says itself


def _addressed(outbox) -> str:
    if outbox is None or not getattr(outbox, "to_addresses", ""):
        return ""
    parts = [
        (name, value.split())
        for name, value in (("to", outbox.to_addresses), ("cc", outbox.cc_addresses), ("bcc", outbox.bcc_addresses))
    ]
    return " · ".join(f"{name} {', '.join(values)}" for name, values in parts if values)


def document(desk: Desk, ref: Ref) -> dict[str, Any]:
    """The `show --json` document: the conversation, its messages and the customer's history."""
    from agentdesk.domain import documents

    with desk.read() as session:
        conversation = queries.conversation_by_ref(session=session, ref=typed_ref(ref))
        (found,) = documents.documents(session, [conversation], policies=desk.policies, now=desk.now(), full=True)
    return found


def changes_between(old: Thread, new: Thread) -> list[ThreadItem]:
    """What appeared in the thread between two reads of it: new messages and events, oldest first."""
    from collections import Counter

    seen = Counter(old.items)
    added = []
    for item in new.items:
        if seen[item]:
            seen[item] -= 1
        else:
            added.append(item)
    return added


def describe_event(action: str, detail_json: str) -> str:
    import json

    try:
        detail = json.loads(detail_json or "{}")
    except ValueError:
        detail = {}
    if action == "status":
        return f"status {detail.get('old')} → {detail.get('new')}"
    if action == "priority":
        return f"priority {detail.get('old')} → {detail.get('new')}"
    if action == "assign":
        new = detail.get("new") or "nobody"
        return f"assigned to {new}" + (f" (was {detail['old']})" if detail.get("old") else "")
    if action == "claim":
        return "claimed"
    if action in ("tag", "untag"):
        return f"{'tagged' if action == 'tag' else 'untagged'} {detail.get('tag')}"
    if action == "snooze":
        until = detail.get("until")
        return f"snoozed until {until}" if until else "snooze cleared"
    if action == "resend":
        return f"resent a reply (was {str(detail.get('previous', '')).replace('_', ' ')})"
    if action == "delivery_uncertain":
        return f"reply possibly sent: {detail.get('reason', '')}"
    if action == "move_message":
        return (
            f"moved a message to {detail['to']}"
            if detail.get("to")
            else f"a message moved here from {detail.get('from')}"
        )
    if action == "macro":
        return f"ran macro {detail.get('name')}"
    if action == "undo":
        if detail.get("separated"):
            return f"undid the merge of {detail['separated']}: its messages went back"
        if detail.get("out_of"):
            return f"undid the merge into {detail['out_of']}: the messages are back here"
        return "undid " + ", ".join(detail.get("undone") or [])
    if action == "unsend":
        words = detail.get("first_words")
        status = f" (status back to {detail['status']})" if detail.get("status") else ""
        return "took back a reply before it was sent" + (f": “{words}”" if words else "") + status
    if action == "merge":
        if detail.get("into"):
            return f"merged into {detail['into']}"
        tags = f", tags {' '.join(detail['tags'])}" if detail.get("tags") else ""
        return f"merged {detail.get('from')} into this ({detail.get('messages', 0)} messages{tags})"
    if action == "csat":
        rating = int(detail.get("rating") or 0)
        comment = f" “{detail['comment']}”" if detail.get("comment") else ""
        return f"rated {rating}/5 {'★' * rating}{'☆' * (5 - rating)}{comment}"
    if action == "csat_alert":
        return f"⚠ bad rating ({detail.get('rating')}/5): alert to {detail.get('assignee') or 'nobody (unassigned)'}"
    if action == "csat_skipped":
        return f"no satisfaction survey: {detail.get('reason', '')}"
    return action + ("" if not detail else " " + ", ".join(f"{k}={v}" for k, v in sorted(detail.items())))


def resend(desk: Desk, ref: Ref, number: int) -> str:
    """Queue message `number` of the conversation (as `show` numbers them) to be sent again:
    a failed or possibly sent reply only (`errors.InvalidInput` says why not)."""
    from agentdesk.domain import replies

    conversation_ref = reference(ref)
    with desk.writing, desk.write() as session:
        conversation = queries.conversation_by_ref(session=session, ref=conversation_ref)
        messages = queries.thread(session=session, conversation_id=id_of(conversation))
        replies.resend(
            session, messages=messages, number=number, ref=conversation_ref, agent=desk.agent, now=desk.now()
        )
        session.commit()
    return f"{conversation_ref} message {number} queued to be sent again"


def resend_latest(desk: Desk, conversation_id: int) -> str:
    """Queue the conversation's latest failed or possibly sent reply again (read fresh: the thread
    on screen may be older than the outbox); say so when there is none. A bounced reply shows as
    "bounced", not "failed", so it is never picked: a bounce is answered with a new reply."""
    from agentdesk.domain.replies import RESENDABLE

    found = thread(desk, conversation_id)
    latest = next(
        (item for item in reversed(found.items) if item.kind == "outbound" and item.delivery in RESENDABLE), None
    )
    if latest is None:
        return f"{ref_of(conversation_id)}: no failed or possibly sent reply to resend"
    return resend(desk, conversation_id, latest.number)


def withdraw(desk: Desk, ref: Ref, message_id: int) -> str:
    """Take back this agent's reply while it waits out its undo window: its text, recipients and
    files become the agent's draft again (the composer opens with them); the text is returned.
    `errors.Conflict` once a sender has it."""
    from agentdesk.domain import replies

    with desk.writing, desk.write() as session:
        conversation = queue_service.load_for_update(session, typed_ref(ref))
        taken = replies.withdraw(
            session,
            conversation=conversation,
            message_id=message_id,
            agent=desk.agent,
            signature=desk.agent_signature,
            now=desk.now(),
            policies=desk.policies,
        )
        chosen = Recipients(taken.to, taken.cc, taken.bcc) if taken.to else None
        drafts.save(
            session,
            conversation_id=id_of(conversation),
            agent=desk.agent,
            body=taken.body,
            kind="reply",
            base_version=conversation.version,
            now=desk.now(),
            envelope=drafts.Envelope(chosen, tuple(drafts.DraftFile(*each) for each in taken.files)),
        )
        session.commit()
    return taken.body


def send_now(desk: Desk, ref: Ref) -> str:
    """Deliver the conversation's waiting replies at the next delivery pass: those still in their
    undo window or waiting to retry are made due now; the latest failed or possibly sent one is
    queued again (`resend`)."""
    from agentdesk.store import outbox as outbox_queries

    conversation_ref = reference(ref)
    with desk.writing, desk.write() as session:
        conversation = queries.conversation_by_ref(session=session, ref=conversation_ref)
        messages = queries.thread(session=session, conversation_id=id_of(conversation))
        hurried = outbox_queries.hurry(session=session, message_ids=[id_of(m) for m in messages], now=desk.now())
        session.commit()
    if hurried:
        return f"{conversation_ref}: {hurried} waiting repl{'y' if hurried == 1 else 'ies'} sent now"
    with desk.read() as session:
        conversation = queries.conversation_by_ref(session=session, ref=conversation_ref)
        messages = queries.thread(session=session, conversation_id=id_of(conversation))
        states = queries.delivery_states(session=session, message_ids=[id_of(m) for m in messages])
    from agentdesk.domain.replies import RESENDABLE

    for number in range(len(messages), 0, -1):
        outbox = states.get(id_of(messages[number - 1]))
        if outbox is not None and outbox.state in RESENDABLE and outbox.bounce_message_id is None:
            return resend(desk, conversation_ref, number)
    return f"{conversation_ref}: no reply waiting to be sent"


# --- replies and notes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    ref: str
    kind: str  # reply | note | forward | new
    external_id: str = ""  # the reply's Message-ID (a note has none)
    status: str | None = None  # the status also set
    message_id: int | None = None  # the reply's row: what `withdraw` takes back
    delay: float = 0.0  # seconds it waits before delivery (the undo window)
    waits: str = ""  # why it cannot go out from here (no sender for its channel in this config)

    def __str__(self) -> str:
        what = {
            "note": "note added",
            "forward": "forward queued for delivery",
            "new": "conversation started, first message queued for delivery",
        }.get(self.kind, "reply queued for delivery")
        held = f", sent in {self.delay:g} s unless undone" if self.delay and self.kind == "reply" else ""
        waits = f"; but {self.waits}" if self.waits else ""
        return f"{self.ref}: {what}" + (f", status {self.status}" if self.status else "") + held + waits


def no_sender_here(desk: Desk, channel: str) -> str:
    """Why a reply on `channel` cannot leave through this config's sync, or "" when it can: the agent
    learns it on sending, not from a queue that never moves (`show` gives the sync's own reason,
    naming its host, once a sync has looked). The senders are the sync's own
    (`worker.build_senders`), built without connecting."""
    from agentdesk.sync import worker

    senders = worker.build_senders(worker.SyncContext(settings=desk.settings, engine=None))
    if channel in senders:
        return ""
    return f"no sender for {channel} is configured here: it waits, queued, for a sync whose config can send it"


def reply(
    desk: Desk,
    ref: Ref,
    body: str,
    *,
    status: str | None = None,
    expected_version: int | None = None,
    recipients: Any = None,
    files: Sequence[Any] = (),
    delay: float = 0.0,
) -> Sent:
    """Store a reply (queued in the outbox), drop this agent's draft, optionally set the status.

    `expected_version`: the conversation's version when the agent started writing; a reply to a
    conversation that changed since raises `errors.Conflict`. `recipients` (`app.outbound.addressed`)
    and `files` (`app.outbound.read_files`): see `domain.replies.reply`. `delay`: seconds before it
    may be delivered, during which `withdraw` takes it back."""
    refuse_unfilled(body)
    with desk.writing, desk.write() as session:
        conversation = queue_service.load_for_update(session, typed_ref(ref))
        return reply_in_session(
            desk,
            session,
            conversation,
            body,
            status=status,
            expected_version=expected_version,
            recipients=recipients,
            files=files,
            delay=delay,
        )


def reply_with_template(
    desk: Desk,
    ref: Ref,
    template_name: str,
    *,
    status: str | None = None,
    recipients: Any = None,
    files: Sequence[Any] = (),
    delay: float = 0.0,
) -> Sent:
    """Reply with a template of the templates directory, filled with the conversation's values;
    one the desk cannot fill completely is refused (the composer lets the agent fill it in)."""
    with desk.writing, desk.write() as session:
        conversation = queue_service.load_for_update(session, typed_ref(ref))
        template = templates.load(desk.settings.templates_dir, template_name)
        rendered = templates.render(template, template_values(desk, session, conversation))
        if rendered.undefined:
            raise InvalidInput(
                f"template {template.name!r} needs values agentdesk does not have: "
                f"{', '.join(rendered.undefined)}; reply with --body-file after filling them in"
            )
        return reply_in_session(
            desk, session, conversation, rendered.text, status=status, recipients=recipients, files=files, delay=delay
        )


def reply_in_session(
    desk: Desk,
    session,
    conversation: Conversation,
    body: str,
    *,
    status: str | None,
    expected_version: int | None = None,
    recipients: Any = None,
    files: Sequence[Any] = (),
    delay: float = 0.0,
    commit: bool = True,
) -> Sent:
    """Store a reply in the caller's `session` (a macro's one transaction commits it with the rest
    with `commit=False`): what `send` and `reply` do after loading the conversation."""
    from datetime import timedelta

    from agentdesk.domain import outbound, replies

    if recipients is not None:
        recipients = outbound.checked(conversation.channel, recipients)
        if (recipients.cc or recipients.bcc) and conversation.source in {s.name for s in desk.settings.spool}:
            raise InvalidInput(
                f"{ref_of(id_of(conversation))}'s replies go through the spool {conversation.source}, "
                "which has one recipient: Cc and Bcc are for conversations of a mailbox"
            )
    if files:
        outbound.check_size(
            files,
            limit=outbound.max_bytes(desk.settings, conversation.channel, conversation.source),
            where=f"{conversation.channel} via {conversation.source or 'its source'}",
        )
    message = replies.reply(
        session,
        conversation=conversation,
        body=body,
        agent=desk.agent,
        agent_name=desk.agent_name,
        signature=desk.agent_signature,
        now=desk.now(),
        policies=desk.policies,
        status=status,
        message_id_domain=desk.settings.message_id_domain(conversation.source),
        expected_version=expected_version,
        recipients=recipients,
        files=files,
        send_after=desk.now() + timedelta(seconds=delay) if delay > 0 else None,
    )
    # The knowledge-base articles it names count as sent (docs/csat-kb.md, usage).
    knowledge_base.record_sent(session, message=message, now=desk.now())
    drafts.discard(session, conversation_id=id_of(conversation), agent=desk.agent)
    if commit:
        session.commit()
    return Sent(
        ref_of(id_of(conversation)),
        "reply",
        message.external_id or "",
        status,
        id_of(message),
        max(delay, 0.0),
        no_sender_here(desk, conversation.channel),
    )


def note(desk: Desk, ref: Ref, body: str, *, status: str | None = None) -> Sent:
    """Add an internal note (never sent), drop this agent's draft, optionally set the status."""
    from agentdesk.domain import replies

    refuse_unfilled(body)
    with desk.writing, desk.write() as session:
        now = desk.now()
        conversation = queue_service.load_for_update(session, typed_ref(ref))
        replies.add_note(
            session,
            conversation=conversation,
            body=body,
            agent=desk.agent,
            agent_name=desk.agent_name,
            now=now,
            policies=desk.policies,
        )
        if status:
            queue_service.change(
                session, conversation=conversation, agent=desk.agent, now=now, policies=desk.policies, status=status
            )
        drafts.discard(session, conversation_id=id_of(conversation), agent=desk.agent)
        session.commit()
        return Sent(ref_of(id_of(conversation)), "note", status=status)


def send(
    desk: Desk,
    ref: Ref,
    body: str,
    *,
    kind: str = "reply",
    status: str | None = None,
    expected_version: int | None = None,
    recipients: Any = None,
    files: Sequence[Any] = (),
    delay: float = 0.0,
) -> Sent:
    """What the composer sends: a reply (`kind="reply"`, to `recipients` with `files`) or a note
    (which never conflicts, and goes to nobody)."""
    if kind == "note":
        return note(desk, ref, body, status=status)
    return reply(
        desk,
        ref,
        body,
        status=status,
        expected_version=expected_version,
        recipients=recipients,
        files=files,
        delay=delay,
    )


def refuse_unfilled(body: str) -> None:
    missing = templates.unfilled(body)
    if missing:
        raise InvalidInput(f"fill in {', '.join(missing)} before sending (the [[…?]] markers)")


def template_values(desk: Desk, session, conversation: Conversation) -> dict[str, str]:
    from agentdesk.store.models import Customer

    return templates.values_for(
        conversation,
        session.get(Customer, conversation.customer_id),
        agent_name=desk.agent_name,
        agent_signature=desk.agent_signature,
    )


def save_draft(
    desk: Desk,
    conversation_id: int,
    body: str,
    *,
    kind: str,
    base_version: int,
    recipients: Recipients | None = None,
    files: Sequence[OutgoingFile] = (),
) -> None:
    """Keep this agent's draft: its text, and for a reply the recipients they chose
    (`outbound.Recipients`, None: the reply-all) and the files they attached (`OutgoingFile`)."""
    with desk.writing, desk.write() as session:
        drafts.save(
            session,
            conversation_id=conversation_id,
            agent=desk.agent,
            body=body,
            kind=kind,
            base_version=base_version,
            now=desk.now(),
            envelope=drafts.Envelope(recipients, drafts.keep_files(session, files)),
        )
        session.commit()


def draft_envelope(desk: Desk, draft: Any) -> tuple[Recipients | None, list[OutgoingFile]]:
    """A draft's recipients (None: the reply-all) and its files with their bytes, to put back in
    the composer."""
    envelope = drafts.envelope_of(draft)
    if not envelope.files:
        return envelope.recipients, []
    with desk.read() as session:
        return envelope.recipients, drafts.files_of(session, envelope)


# --- status, priority, assignee, tags, snooze -----------------------------------------------------


def update(desk: Desk, ref: Ref, *, expected_version: int | None = None, **changes: Any) -> list[str]:
    """Change one conversation (`status`, `priority`, `assignee`, `snoozed_until`, `add_tags`,
    `remove_tags`); the names of what changed. `expected_version`: raise `errors.Conflict` if the
    conversation is no longer at that version."""
    with desk.writing, desk.write() as session:
        conversation = queue_service.load_for_update(session, typed_ref(ref))
        changed = queue_service.change(
            session,
            conversation=conversation,
            agent=desk.agent,
            now=desk.now(),
            policies=desk.policies,
            expected_version=expected_version,
            **changes,
        )
        session.commit()
    return changed


def change(
    desk: Desk, conversation_ids: Sequence[int], *, versions: dict[int, int] | None = None, **changes: Any
) -> list[str]:
    """Apply the same change to each conversation, in one transaction; a line per conversation that changed.

    `versions`: the version each conversation had on screen. One that changed since (another
    agent, sync) is left alone and reported as stale (`StaleView`), after the others are saved.
    """
    done, stale = [], []
    versions = versions or {}
    with desk.writing, desk.write() as session:
        now = desk.now()
        queue_service.lock_in_order(session, conversation_ids)
        for conversation_id in conversation_ids:
            conversation = queue_service.load_for_update(session, ref_of(conversation_id))
            try:
                changed = queue_service.change(
                    session,
                    conversation=conversation,
                    agent=desk.agent,
                    now=now,
                    policies=desk.policies,
                    expected_version=versions.get(conversation_id),
                    **changes,
                )
            except Conflict:
                stale.append(ref_of(conversation_id))
                continue
            if changed:
                done.append(f"{ref_of(conversation_id)}: {', '.join(changed)}")
        session.commit()
    if stale:
        raise StaleView(stale, done)
    return done


class StaleView(Exception):
    """Some conversations changed since the agent looked at them; they were left alone."""

    def __init__(self, refs: list[str], done: list[str]) -> None:
        self.refs, self.done = refs, done
        which = ", ".join(refs)
        super().__init__(
            f"{which} changed since you looked (another agent or a new message), so "
            f"{'it was' if len(refs) == 1 else 'they were'} not changed; the queue is reloaded — "
            "check and try again"
        )


def claim(desk: Desk, refs: Sequence[Ref]) -> list[str]:
    """Assign each conversation to this agent unless another holds it (`errors.Conflict` names who)."""
    ids = [conversation_id(ref) for ref in refs]
    with desk.writing, desk.write() as session:
        now = desk.now()
        queue_service.lock_in_order(session, ids)
        for each in ids:
            queue_service.claim(session, conversation_id=each, agent=desk.agent, now=now)
        session.commit()
    return [f"{ref_of(i)} is yours" for i in ids]


def merge(desk: Desk, conversation_ids: Sequence[int], target_ref: str) -> list[str]:
    """Merge each conversation into the one `target_ref` names, in one transaction."""
    target_id = queries.parse_ref(target_ref.strip())
    if target_id in conversation_ids and len(conversation_ids) > 1:
        conversation_ids = [i for i in conversation_ids if i != target_id]
    done = []
    with desk.writing, desk.write() as session:
        now = desk.now()
        queue_service.lock_in_order(session, [target_id, *conversation_ids])
        target = queue_service.load_for_update(session, ref_of(target_id))
        for each in conversation_ids:
            source = queue_service.load_for_update(session, ref_of(each))
            moved = queue_service.merge_conversations(
                session, source=source, target=target, agent=desk.agent, now=now, policies=desk.policies
            )
            done.append(f"{ref_of(each)} merged into {ref_of(target_id)} ({moved} message{'s' * (moved != 1)} moved)")
        session.commit()
    if not done:
        raise InvalidInput("nothing to merge")
    return done
