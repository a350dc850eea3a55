"""What an agent sends besides a plain reply: files, chosen recipients, a forward, a new conversation.

`read_files` takes the files off the disk (the reply then keeps its own copy in the file store),
`recipients` is the reply-all the composer and `reply` start from, `addressed` applies
`--to/--cc/--bcc/--no-cc` to it; `forward` and `start` are the actions behind `agentdesk forward`
and `agentdesk new` and their keys. Each checks everything (addresses, sizes, the channel) before
its one write transaction, so a refusal leaves nothing queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from agentdesk.app.conversations import Ref, Sent, reference, refuse_unfilled, typed_ref
from agentdesk.app.desk import Desk
from agentdesk.domain.outbound import FORWARD_MARKER, OutgoingFile, Recipients, split, typed_kind
from agentdesk.errors import InvalidInput, NotFound
from agentdesk.store.models import id_of, ref_of

__all__ = [
    "FORWARD_MARKER",
    "OutgoingFile",
    "Recipients",
    "read_files",
    "largest_accepted",
    "recipients",
    "addressed",
    "forward",
    "forward_content",
    "Forwarded",
    "ForwardContent",
    "start",
    "split",
    "lookup",
    "Contact",
    "sources",
]


def largest_accepted(desk: Desk) -> int:
    """The most any of this desk's channels accepts in one message's files: a file bigger than
    that is refused before it is read (it could never be sent)."""
    from agentdesk.domain.outbound import DEFAULT_MAX_BYTES, DEFAULT_MAX_BYTES_OTHER

    settings = desk.settings
    configured = [m.attachments_max_bytes for m in settings.mailbox] + [s.attachments_max_bytes for s in settings.spool]
    return max([*configured, *DEFAULT_MAX_BYTES.values(), DEFAULT_MAX_BYTES_OTHER])


def read_files(paths: Sequence[str | Path], *, limit: int | None = None) -> list[OutgoingFile]:
    """Each file as an attachment, named by its base name; a clear error for one that cannot be
    read, or is over `limit` bytes (checked before reading it: `largest_accepted`)."""
    # Worded for the CLI's --attach and the composer's ctrl+o alike: the path first, no flag named.
    found = []
    for given in paths:
        path = Path(str(given)).expanduser()
        if path.is_dir():
            raise InvalidInput(f"{given} is a directory; attach files one by one")
        if path.exists() and not path.is_file():
            # A pipe or a device would be read without end (or block forever): files only.
            raise InvalidInput(f"{given} is not a regular file (a pipe or a device); attach a file")
        if limit is not None and path.is_file() and path.stat().st_size > limit:
            raise InvalidInput(
                f"{given} is {path.stat().st_size} bytes, more than any channel here accepts "
                f"({limit} bytes: attachments_max_bytes); send a link instead"
            )
        try:
            data = path.read_bytes()
        except OSError as error:
            raise InvalidInput(f"cannot read {given}: {error.strerror or error}") from None
        found.append(OutgoingFile(name=path.name, data=data))
    return found


# --- recipients ------------------------------------------------------------------------------------


def recipients(desk: Desk, ref: Ref) -> Recipients:
    """Reply-all: To the customer (their latest message's address, else their identity on the
    channel), Cc every To and Cc address seen on the thread's inbound messages, minus our own
    addresses and the customer. Only email has Cc."""
    from agentdesk.domain import customers, receipts
    from agentdesk.store import queries

    with desk.read() as session:
        conversation = queries.conversation_by_ref(session=session, ref=typed_ref(ref))
        messages = queries.thread(session=session, conversation_id=id_of(conversation))
        identities = queries.identities_of(session=session, customer_ids=[conversation.customer_id])
        own = {i.address for i in identities[conversation.customer_id]}
        inbound = [m for m in messages if m.direction == "inbound" and m.kind == "message"]
        kind = customers.IDENTITY_KIND.get(conversation.channel, conversation.channel)
        to = next((m.sender_address for m in reversed(inbound) if m.sender_address in own), "")
        if not to:
            to = next((i.address for i in identities[conversation.customer_id] if i.kind == kind), "")
        if not to and inbound:
            to = inbound[-1].sender_address
        if kind != "email":
            return Recipients(to=(to,) if to else ())
        seen: list[str] = []
        for message in inbound:
            seen += message.recipients.split() or _legacy_recipients(session, message)
    ours = receipts.our_addresses(desk.settings) | {m.address.strip().lower() for m in desk.settings.mailbox}
    cc = tuple(a for a in dict.fromkeys(seen) if "@" in a and a not in ours and a != to)
    return Recipients(to=(to,) if to else (), cc=cc)


def _legacy_recipients(session, message) -> list[str]:
    """The To and Cc of a message stored before its recipients were (schema revision 9), from its raw mail."""
    from agentdesk.store.models import MessageRaw

    raw = session.get(MessageRaw, message.id)
    if raw is None:
        return []
    from agentdesk.channels.email.mime import parse_message

    return list(parse_message(raw.raw, source=message.source, received_at=message.at).recipients)


def addressed(
    desk: Desk,
    ref: Ref,
    *,
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    no_cc: bool = False,
) -> Recipients:
    """The reply-all with the agent's changes: `to` replaces the To, `cc` adds to the Cc (`no_cc`
    first drops the reply-all's), `bcc` is the Bcc; checked for the conversation's channel
    (`errors.InvalidInput` names a bad address)."""
    from agentdesk.domain import outbound
    from agentdesk.store import queries

    default = recipients(desk, ref)
    with desk.read() as session:
        channel = queries.conversation_by_ref(session=session, ref=typed_ref(ref)).channel
    return outbound.checked(
        channel, Recipients(to=tuple(to) or default.to, cc=(() if no_cc else default.cc) + tuple(cc), bcc=tuple(bcc))
    )


# --- forward -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Forwarded(Sent):
    """A forward queued: who it went to (checked, lower-cased) and the names of the files it carries."""

    recipients: Recipients = Recipients()
    attachments: tuple[str, ...] = ()


@dataclass(frozen=True)
class ForwardContent:
    """What a forward of the whole conversation carries before the agent changes it: how many
    messages, and their files once each with their bytes (the composer lists them, the agent
    removes or adds some). `withheld` names files the desk does not have the bytes of."""

    messages: int
    files: list[OutgoingFile]
    withheld: list[str]


def forward_content(desk: Desk, ref: Ref) -> ForwardContent:
    from agentdesk.app.attachments import keep_from_raw
    from agentdesk.store import attachments

    keep_from_raw(desk, ref, _forwarded_ids(desk, ref, None))
    with desk.read() as session:
        _, chosen, files = _forwarded(session, reference(ref), None)
        kept = [f for f in files if f.state == "stored" and attachments.has(session=session, key=f.storage_key)]
        found = [
            OutgoingFile(
                name=f.filename,
                data=attachments.read(session=session, key=f.storage_key),
                content_type=f.content_type,
            )
            for f in kept
        ]
    return ForwardContent(len(chosen), found, [f.filename for f in files if f not in kept])


def _forwarded_ids(desk: Desk, ref: Ref, number: int | None) -> list[int]:
    """The ids of the messages a forward of `ref` (or of its message `number`) carries."""
    with desk.read() as session:
        _, chosen, _ = _forwarded(session, reference(ref), number)
    return [id_of(m) for m in chosen]


def _forwarded(session, conversation_ref: str, number: int | None, *, for_update: bool = False):
    """The conversation, the messages a forward carries (all of them with the customer, or message
    `number` as `show` numbers them) and their files, each once."""
    from agentdesk.domain import outbound
    from agentdesk.domain import queue as queue_service
    from agentdesk.store import queries

    if for_update:
        conversation = queue_service.load_for_update(session, conversation_ref)
    else:
        conversation = queries.conversation_by_ref(session=session, ref=typed_ref(conversation_ref))
    messages = queries.thread(session=session, conversation_id=id_of(conversation))
    if number is not None:
        if not 1 <= number <= len(messages):
            raise InvalidInput(f"{conversation_ref} has {len(messages)} message(s); there is no message {number}")
        if messages[number - 1].direction == "note":
            raise InvalidInput(f"{conversation_ref} message {number} is an internal note; notes are never sent")
        chosen = [messages[number - 1]]
    else:
        identities = queries.identities_of(session=session, customer_ids=[conversation.customer_id])
        own = [i.address for i in identities.get(conversation.customer_id, [])]
        chosen = outbound.forwardable(messages, customer_addresses=own)
    found = queries.attachments_of(session=session, message_ids=[id_of(m) for m in chosen])
    files = outbound.unique_files(a for m in chosen for a in found.get(id_of(m), []))
    return conversation, chosen, files


def forward(
    desk: Desk,
    ref: Ref,
    to: Sequence[str],
    *,
    note: str = "",
    number: int | None = None,
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    files: Sequence[OutgoingFile] | None = None,
    attach: Sequence[OutgoingFile] = (),
    status: str | None = None,
) -> Forwarded:
    """Forward the conversation's messages with the customer (or message `number`, as `show`
    numbers them) with their files, each once, by email from the conversation's mailbox (the first
    mailbox for a conversation of another channel). `files`, when given, are the files to send
    instead (the composer's list, after the agent removed or added some); `attach`, files sent
    besides them (`forward --attach`); `status` is set as well.
    Replies from the addressee thread back into the conversation."""
    from agentdesk.app.attachments import keep_from_raw
    from agentdesk.domain import drafts, outbound
    from agentdesk.domain import queue as queue_service

    if note:
        refuse_unfilled(note)
    addressees = outbound.checked("email", Recipients(to=tuple(to), cc=tuple(cc), bcc=tuple(bcc)))
    mailboxes = {m.name: m for m in desk.settings.mailbox}
    if not mailboxes:
        raise InvalidInput("a forward is sent by email: configure a [[mailbox]] with [mailbox.smtp] first")
    conversation_ref = reference(ref)
    keep_from_raw(desk, conversation_ref, _forwarded_ids(desk, conversation_ref, number))
    with desk.writing, desk.write() as session:
        conversation, chosen, found = _forwarded(session, conversation_ref, number, for_update=True)
        mailbox = mailboxes.get(conversation.source) or next(iter(mailboxes.values()))
        if not chosen:
            raise InvalidInput(f"{conversation_ref} has no message to forward")
        if files is None:
            carried, added = found, list(attach)
            total = sum(f.size for f in found) + sum(len(f.data) for f in attach)
        else:
            # The agent's list: the conversation's files they kept come back as bytes (stored once
            # more under the same key); the ones the desk never had are still named in the text.
            carried, added = [f for f in found if f.state != "stored"], [*files, *attach]
            total = sum(len(f.data) for f in added)
        if total > mailbox.attachments_max_bytes:
            raise InvalidInput(
                f"the forwarded files total {total} bytes, over the {mailbox.attachments_max_bytes} "
                f"mailbox {mailbox.name} accepts; forward one message with --message N, or fewer files"
            )
        now = desk.now()
        addresses = {m.name: m.address for m in desk.settings.mailbox}
        message = outbound.forward(
            session,
            conversation=conversation,
            to=addressees,
            note=note,
            messages=chosen,
            files=carried,
            added=added,
            mailbox=mailbox.name,
            agent=desk.agent,
            agent_name=desk.agent_name,
            now=now,
            policies=desk.policies,
            signature=desk.agent_signature,
            message_id_domain=desk.settings.message_id_domain(mailbox.name),
            when=_mail_time,
            our_address=lambda m: addresses.get(m.source) or mailbox.address,
        )
        draft = drafts.get(session, conversation_id=id_of(conversation), agent=desk.agent)
        if draft is not None and draft.kind == "forward":  # sent: a reply's draft stays
            drafts.discard(session, conversation_id=id_of(conversation), agent=desk.agent)
        if status:
            queue_service.change(
                session, conversation=conversation, agent=desk.agent, now=now, policies=desk.policies, status=status
            )
        session.commit()
        names = [f.filename for f in carried if f.state == "stored"] + [f.name for f in added]
        return Forwarded(
            ref_of(id_of(conversation)),
            "forward",
            message.external_id or "",
            status,
            recipients=addressees,
            attachments=tuple(names),
        )


def _mail_time(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%a, %d %b %Y %H:%M UTC")


# --- a conversation we start -------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A mailbox or spool a new conversation can go out through."""

    name: str
    channel: str  # email | sms | chat | …
    sends: bool  # it has a way out (SMTP host, outbound spool or URL)


def sources(desk: Desk) -> list[Source]:
    found = [Source(m.name, "email", bool(m.smtp.host)) for m in desk.settings.mailbox]
    found += [Source(s.name, s.kind, bool(s.outbound.spool or s.outbound.url)) for s in desk.settings.spool]
    return found


def _source_for(desk: Desk, address: str, channel: str | None) -> Source:
    """The source named `channel` (a mailbox or spool name, or a channel kind), else the first one
    that fits the address: a mailbox for an email address, a phone spool for a number."""
    known = sources(desk)
    if channel:
        named = next((s for s in known if s.name == channel), None) or next(
            (s for s in known if s.channel == channel), None
        )
        if named is None:
            names = ", ".join(s.name for s in known) or "none configured"
            raise InvalidInput(f"--channel {channel}: no mailbox or spool of that name or kind ({names})")
        return named
    wanted = _REACHES[typed_kind(address)]
    fitting = [s for s in known if s.channel in wanted]
    if not fitting:
        raise InvalidInput(f"no mailbox or spool sends to {address!r}; name one with --channel")
    return next((s for s in fitting if s.sends), fitting[0])


# identity kind -> the channel kinds whose mailboxes and spools reach it
# (a typed handle may be either kind of handle)
_REACHES = {
    "email": ("email", "webform"),
    "phone": ("sms",),
    "chat": ("chat",),
    "social": ("social",),
    "handle": ("chat", "social"),
}


def start(
    desk: Desk,
    to: str,
    *,
    subject: str,
    body: str | None = None,
    template: str | None = None,
    channel: str | None = None,
    assign: str | None = None,
    files: Sequence[OutgoingFile] = (),
    name: str = "",
) -> Sent:
    """Start a conversation with `to` (an address, phone or handle): the customer found by that
    identity or made, our first message queued through the chosen mailbox or spool. Prints as the
    new ref."""
    from agentdesk.domain import outbound, templates

    if (body is None) == (template is None):
        raise InvalidInput("give the first message as --body-file FILE or --template NAME")
    if body is not None:
        refuse_unfilled(body)
    source = _source_for(desk, to, channel)
    if not name and "<" in to:
        # "Zed Q <zed@new.example>": the name typed with the address is the new customer's.
        from email.utils import parseaddr

        from agentdesk.sanitize import inert_line

        name = inert_line(parseaddr(to)[0]).strip()
    if not source.sends:
        # Queued through it, the first message would wait for ever: say so before anything is stored.
        way_out = "[mailbox.smtp] host" if source.channel == "email" else "outbound = { spool | url }"
        raise InvalidInput(
            f"{source.name} cannot send (no {way_out} in the config); set one, or name another with --channel"
        )
    addressees = outbound.checked(source.channel, Recipients(to=(to,)))
    if files:
        outbound.check_size(
            files,
            limit=outbound.max_bytes(desk.settings, source.channel, source.name),
            where=f"{source.channel} via {source.name}",
        )
    loaded = templates.load(desk.settings.templates_dir, template) if template else None

    def text(conversation, customer) -> str:
        if loaded is None:
            return body or ""
        rendered = templates.render(
            loaded,
            templates.values_for(
                conversation, customer, agent_name=desk.agent_name, agent_signature=desk.agent_signature
            ),
        )
        if rendered.undefined:
            raise InvalidInput(
                f"template {loaded.name!r} needs values agentdesk does not have: "
                f"{', '.join(rendered.undefined)}; use --body-file after filling them in"
            )
        return rendered.text

    assignee = {"me": desk.agent, "none": None, None: None}.get(assign, assign)
    with desk.writing, desk.write() as session:
        conversation, message = outbound.start(
            session,
            channel=source.channel,
            source=source.name,
            to=addressees,
            subject=subject,
            body=text,
            agent=desk.agent,
            agent_name=desk.agent_name,
            now=desk.now(),
            policies=desk.policies,
            message_id_domain=desk.settings.message_id_domain(source.name),
            signature=desk.agent_signature,
            assignee=assignee,
            customer_name=name,
            files=files,
        )
        session.commit()
        return Sent(ref_of(id_of(conversation)), "new", message.external_id or "")


# --- customer lookup -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    name: str
    kind: str  # identity kind: email | phone | chat | social
    address: str
    source: str = ""  # the mailbox or spool that reaches this identity; "" when none here does

    @property
    def unreachable(self) -> str:
        """Why no conversation can be started with this identity here ("" when one can)."""
        if self.source:
            return ""
        return f"no {' or '.join(_REACHES.get(self.kind, (self.kind,)))} mailbox or spool is configured"


def lookup(desk: Desk, text: str, *, limit: int = 8) -> list[Contact]:
    """Known identities matching what the agent typed (a name or part of an address), for the
    new-conversation composer: existing customers first, so their history is joined."""
    from agentdesk.app import customers

    text = text.strip()
    if len(text) < 2:
        return []
    try:
        found = customers.listing(desk, text, limit=limit)
    except (InvalidInput, NotFound):
        return []
    known = sources(desk)

    def reaching(kind: str) -> str:
        fitting = [s for s in known if s.channel in _REACHES.get(kind, (kind,))]
        return next((s.name for s in fitting if s.sends), fitting[0].name if fitting else "")

    contacts = [
        Contact(c["name"], i["kind"], i["address"], reaching(i["kind"])) for c in found for i in c["identities"]
    ]
    # The identities a conversation can be started with first; the others listed with the reason.
    return sorted(contacts, key=lambda c: not c.source)[:limit]
