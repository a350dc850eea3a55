"""What leaves the desk besides a plain reply: its recipients, its files, a forward, a conversation
we start.

Everything here is decided and stored when the agent sends, in the caller's transaction, as a
reply is (`replies.reply`): the To, Cc and Bcc on the Outbox row, each file copied into the
attachment store (`store/attachments.py`) and named by an Attachment row, so the outbox never depends on a file
staying where the agent picked it. Delivery reads them back (`sync/senders.py`).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from agentdesk.domain import audit, clocks, customers, queue, replies
from agentdesk.errors import InvalidInput
from agentdesk.sanitize import inert_line, safe_filename
from agentdesk.store.models import Attachment, Conversation, Customer, Message, ref_of

# The largest total of files one message may carry, per channel kind, when its mailbox or spool
# sets none (`attachments_max_bytes`): 25 MB is what the big mail providers accept.
DEFAULT_MAX_BYTES = {"email": 25 * 1000 * 1000}
DEFAULT_MAX_BYTES_OTHER = 5 * 1000 * 1000

# An address as it goes on the wire: no display name, no spaces, one @, a dotted or bare host.
_EMAIL = re.compile(r"[^@\s<>(),;:\"\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_HANDLE = re.compile(r"[^\s]{1,200}")


@dataclass(frozen=True)
class Recipients:
    """Who a message goes to. Bcc is only ever the SMTP envelope, never a header."""

    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()

    def all(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.to, *self.cc, *self.bcc)))

    def as_dict(self) -> dict[str, list[str]]:
        return {"to": list(self.to), "cc": list(self.cc), "bcc": list(self.bcc)}


@dataclass(frozen=True)
class OutgoingFile:
    """A file the agent attaches: `name` is what the recipient sees (made safe on the way in)."""

    name: str
    data: bytes = field(repr=False)
    content_type: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", safe_filename(self.name))
        if not self.content_type:
            guessed = mimetypes.guess_type(self.name, strict=False)[0]
            object.__setattr__(self, "content_type", guessed or "application/octet-stream")
        object.__setattr__(self, "content_type", inert_line(self.content_type))


# --- addresses ---------------------------------------------------------------------------------------


def email_address(text: str) -> str:
    """An email address as typed (`bo@example.com`, `Bo <bo@example.com>`), lower-cased; a clear
    InvalidInput when it is not one."""
    from email.utils import parseaddr

    typed = inert_line(text or "").strip()
    address = parseaddr(typed)[1].strip() if "<" in typed else typed
    if not _EMAIL.fullmatch(address):
        raise InvalidInput(f"{typed!r} is not an email address (like name@example.com)")
    return address.lower()


def address_for(channel: str, text: str) -> str:
    """A recipient on a channel kind, in the form identities are kept: email lower-cased, a phone in
    E.164, a handle as given."""
    kind = customers.IDENTITY_KIND.get(channel, channel)
    if kind == "email":
        return email_address(text)
    if kind == "phone":
        return customers.normalise_phone(inert_line(text or "").strip())
    handle = inert_line(text or "").strip()
    if not _HANDLE.fullmatch(handle):
        raise InvalidInput(f"{text!r} is not a {kind} handle (one word, no spaces)")
    return handle


def typed_kind(text: str) -> str:
    """What an agent typed as a recipient is: "email" (checked here, so a bad address is named as
    such), "phone", or "handle" (one word); InvalidInput when it is none of them."""
    typed = text.strip()
    if "@" in typed:
        email_address(typed)
        return "email"
    if typed.startswith("+") or (typed and typed.replace(" ", "").replace("-", "").isdigit()):
        return "phone"
    if not _HANDLE.fullmatch(typed):
        raise InvalidInput(
            f"{text!r} is not an email address, a phone number or a handle "
            "(like name@example.com, +31612345678 or web:kemi11)"
        )
    return "handle"


def checked(channel: str, recipients: Recipients) -> Recipients:
    """The recipients validated and normalised for the channel, each once (To before Cc before
    Bcc); InvalidInput names the first bad one. Cc and Bcc are email only; other channels take one
    recipient."""
    to = tuple(dict.fromkeys(address_for(channel, a) for a in recipients.to if a.strip()))
    if not to:
        raise InvalidInput("no recipient: give at least one To address")
    if channel != "email":  # a web form's, text's or chat's reply goes to its one sender
        if recipients.cc or recipients.bcc or len(to) > 1:
            raise InvalidInput(f"a {channel} message goes to one recipient; Cc and Bcc are for email")
        return Recipients(to=to)
    cc = tuple(a for a in dict.fromkeys(email_address(a) for a in recipients.cc if a.strip()) if a not in to)
    bcc = tuple(
        a for a in dict.fromkeys(email_address(a) for a in recipients.bcc if a.strip()) if a not in to and a not in cc
    )
    return Recipients(to, cc, bcc)


def split(text: str) -> tuple[str, ...]:
    """Addresses as an agent types them in one field: separated by commas, semicolons or spaces
    (a display name in angle brackets keeps its spaces)."""
    found: list[str] = []
    for part in re.split(r"[,;]", text or ""):
        part = part.strip()
        if "<" in part:
            found.append(part)  # Name <address>: one recipient, spaces and all
        else:
            found += part.split()
    return tuple(found)


# --- files ---------------------------------------------------------------------------------------------


def max_bytes(settings, channel: str, source: str) -> int:
    """The most the files of one message may total on this channel: its mailbox's or spool's
    `attachments_max_bytes`, else the channel kind's default."""
    for entry in (*settings.mailbox, *settings.spool):
        if entry.name == source:
            return entry.attachments_max_bytes
    return DEFAULT_MAX_BYTES.get(channel, DEFAULT_MAX_BYTES_OTHER)


def check_size(outgoing: Sequence[OutgoingFile], *, limit: int, where: str) -> None:
    """Refuse, before anything is stored, files that together exceed `limit` bytes."""
    total = sum(len(f.data) for f in outgoing)
    if total > limit:
        biggest = max(outgoing, key=lambda f: len(f.data))
        raise InvalidInput(
            f"the attachments total {_size(total)}, over the {_size(limit)} {where} accepts "
            f"(largest: {biggest.name}, {_size(len(biggest.data))}); send fewer or smaller files"
        )


def _size(count: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


# --- forward -----------------------------------------------------------------------------------------


# The line above each forwarded message, as mail clients write it (the thread view folds from it).
FORWARD_MARKER = "---------- Forwarded message ----------"


def forward_subject(conversation: Conversation) -> str:
    base = replies.reply_subject(conversation).removeprefix("Re: ")
    return f"Fwd: {base}"


def forwardable(messages: Sequence[Message], *, customer_addresses: Iterable[str] = ()) -> list[Message]:
    """The messages a forward of the whole conversation carries: what the customer wrote and what
    we answered them. Never a note, an earlier forward (its cover note was for someone else), what
    a forwarded party answered us or what we wrote to them alone, nor machine mail (receipts,
    surveys, auto-replies, bounces)."""
    customer = {a.lower() for a in customer_addresses}
    third_parties = {a for m in messages if m.kind == "forward" for a in m.recipients.split()} - customer
    chosen = []
    for message in messages:
        if message.kind != "message" or message.direction not in ("inbound", "outbound"):
            continue
        if message.direction == "inbound" and message.sender_address.lower() in third_parties:
            continue
        went_to = set(message.recipients.split())
        if message.direction == "outbound" and went_to and went_to <= third_parties:
            continue
        chosen.append(message)
    return chosen


def unique_files(files: Iterable[Attachment]) -> list[Attachment]:
    """Each file once: the same file attached to several messages (a quote sent back and forth)
    goes once. A file is its name and its bytes: the same bytes under another name are another
    file to the reader (a form's blank copy saved as two documents), so they go too."""
    seen: dict[tuple[str, str], Attachment] = {}
    for each in files:
        seen.setdefault((each.storage_key or f"row:{each.id}", each.filename), each)
    return list(seen.values())


def forward_text(
    note: str,
    messages: Sequence[Message],
    *,
    when: Callable[[datetime], str],
    withheld: Sequence[str] = (),
    our_address: Callable[[Message], str] = lambda message: "",
) -> str:
    """The forward's text: the agent's note, then each forwarded message with its sender, time and
    subject, as mail clients forward; files that could not be included are named. A message of
    ours is from the agent at the address it went out from (`our_address`), never the address
    stored beside it (a customer's, on messages written before outbound ones kept their own)."""
    parts = [note.strip("\n")] if note.strip() else []
    for message in messages:
        address = our_address(message) if message.direction == "outbound" else message.sender_address
        who = message.author or address or "agentdesk"
        if address and address not in who:
            who = f"{who} <{address}>"
        header = [FORWARD_MARKER, f"From: {who}", f"Date: {when(message.at)}"]
        if message.subject:
            header.append(f"Subject: {message.subject}")
        parts.append("\n".join(header) + "\n\n" + (message.body_text or message.body_html_text).strip("\n"))
    if withheld:
        parts.append("(not included, not kept by the desk: " + ", ".join(withheld) + ")")
    return "\n\n".join(parts)


def forward(
    session: Session,
    *,
    conversation: Conversation,
    to: Recipients,
    note: str,
    messages: Sequence[Message],
    files: Sequence[Attachment],
    mailbox: str,
    agent: str,
    agent_name: str,
    now: datetime,
    policies: clocks.Policies,
    message_id_domain: str,
    signature: str = "",
    when: Callable[[datetime], str] = str,
    our_address: Callable[[Message], str] = lambda message: "",
    added: Sequence[OutgoingFile] = (),
) -> Message:
    """Forward messages of a conversation with the files of theirs in `files` (each stored once)
    and the files the agent `added`, by email from `mailbox`: an outbound message of the
    conversation, kind "forward", queued like a reply. Not an answer to the customer: no SLA clock
    moves. The forwarded party's answer threads back (it names our Message-ID, and its address is
    a recipient of this message: threading.is_participant)."""
    from agentdesk.store import attachments

    files = unique_files(files)
    kept = [f for f in files if f.state == "stored" and attachments.has(session=session, key=f.storage_key)]
    withheld = [f.filename for f in files if f not in kept]
    assert conversation.id is not None, "a stored conversation"
    body = forward_text(
        with_note_signature(note, signature), messages, when=when, withheld=withheld, our_address=our_address
    )
    message = Message(
        conversation_id=conversation.id,
        direction="outbound",
        kind="forward",
        author=agent_name,
        author_login=agent,
        subject=forward_subject(conversation),
        body_text=inert_body(body),
        at=now,
        ingested_at=now,
        source=mailbox,
        external_id=replies.make_message_id(message_id_domain),
    )
    session.add(message)
    session.flush()
    assert message.id is not None  # given by the flush
    replies.queue_outbox(session, message=message, channel="email", source=mailbox, recipients=to, now=now)
    session.add_all(
        [
            Attachment(
                message_id=message.id,
                filename=f.filename,
                content_type=f.content_type,
                size=f.size,
                storage_key=f.storage_key,
            )
            for f in kept
        ]
    )
    if added:
        replies.attach(session, message=message, outgoing=added)
    audit.record(
        session,
        agent=agent,
        action="forward",
        now=now,
        conversation_id=conversation.id,
        message_id=message.id,
        to=", ".join(to.all()),
        messages=len(messages),
        files=len(kept) + len(added),
    )
    queue.touch(session, conversation=conversation, policies=policies, now=now)
    return message


def with_note_signature(note: str, signature: str) -> str:
    return replies.with_signature(note.strip("\n"), signature) if note.strip() else note


def inert_body(body: str) -> str:
    from agentdesk.sanitize import strip_control

    return strip_control(body)


# --- a conversation we start -------------------------------------------------------------------------


def start(
    session: Session,
    *,
    channel: str,
    source: str,
    to: Recipients,
    subject: str,
    body: str | Callable[[Conversation, Customer], str],
    agent: str,
    agent_name: str,
    now: datetime,
    policies: clocks.Policies,
    message_id_domain: str,
    signature: str = "",
    assignee: str | None = None,
    customer_name: str = "",
    files: Sequence[OutgoingFile] = (),
) -> tuple[Conversation, Message]:
    """A conversation the agent starts: the customer found (or made) by the first To address's
    identity, so it joins their history; our message queued to them.

    The first response is ours, at once: no first-reply clock runs against the team on a
    conversation it opened. It starts pending (the customer's turn); the customer's answer opens
    it and starts the next-reply clock as any answer does (ingest/batch.py). `body` may be a
    function of the new conversation and its customer (a template to fill).
    """
    subject = inert_line(subject or "").strip()
    if not subject:
        raise InvalidInput("a new conversation needs a subject (--subject)")
    kind = customers.IDENTITY_KIND.get(channel, channel)
    customer = customers.find_or_create(session, kind=kind, address=to.to[0], name=customer_name, now=now)
    assert customer.id is not None, "find_or_create flushes a new customer"
    named = inert_line(customer_name).strip()
    if named and customer.name.strip().lower() in ("", to.to[0].lower()):
        # Known only by their address so far: the name the agent typed is better than none.
        customer.name = named
        session.add(customer)
    conversation = Conversation(
        channel=channel,
        source=source,
        subject=subject,
        customer_id=customer.id,
        status="pending",
        assignee=assignee,
        created_at=now,
        updated_at=now,
        first_responded_at=now,
        last_agent_reply_at=now,
    )
    session.add(conversation)
    session.flush()
    assert conversation.id is not None  # given by the flush
    audit.record(
        session,
        agent=agent,
        action="created",
        now=now,
        conversation_id=conversation.id,
        customer_id=customer.id,
        channel=channel,
        source=source,
        started_by=agent,
    )
    text = body(conversation, customer) if callable(body) else body
    message = Message(
        conversation_id=conversation.id,
        direction="outbound",
        kind="message",
        author=agent_name,
        author_login=agent,
        subject=f"{subject} [{ref_of(conversation.id)}]",
        body_text=replies.with_signature(replies.clean_body(text), signature),
        at=now,
        ingested_at=now,
        source=source,
        external_id=replies.make_message_id(message_id_domain),
    )
    session.add(message)
    session.flush()
    replies.queue_outbox(session, message=message, channel=channel, source=source, recipients=to, now=now)
    if files:
        replies.attach(session, message=message, outgoing=files)
    audit.record(session, agent=agent, action="reply", now=now, conversation_id=conversation.id, message_id=message.id)
    queue.touch(session, conversation=conversation, policies=policies, now=now)
    return conversation, message
