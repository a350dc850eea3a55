"""Storing a chunk of inbound messages: the one path every message takes, alone or in thousands.

A first sync of a mailbox or a full spool ingests thousands of messages, and one webhook or a
moved message ingests one: both are a chunk. The chunk asks the database what it needs for all
its messages at once (a few `IN (…)` queries), keeps what it adds itself in memory so a later
message of the chunk threads and dedupes against an earlier one, and writes with one multi-row
INSERT per table. Each conversation's SLA clocks are refreshed once per chunk rather than once
per message: its clocks follow the conversation's facts (status, created_at, waiting_since, …),
which the chunk's last message leaves as message-by-message ingest would, and the refresh runs
at the chunk's one `now`, so the same events are recorded. The rare cases that need the ORM (a
bounce failing an Outbox row, a receipt, a customer's missing name) use it for that one row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import overload

from sqlmodel import Session

from agentdesk.channels.base import InboundMessage
from agentdesk.config import Settings
from agentdesk.domain import audit, clocks, csat, customers, receipts
from agentdesk.errors import InvalidInput
from agentdesk.ingest import bounces, threading
from agentdesk.ingest.attachments import Keeper
from agentdesk.ingest.records import (
    CustomerRef,
    Ingested,
    Known,
    NewConversation,
    NewCustomer,
    PendingMessage,
    content_hash,
    conversation_id_of,
    customer_id_of,
)
from agentdesk.store import bulk, conversation_rows, lookups, queries
from agentdesk.store.conversation_rows import ConversationRow
from agentdesk.store.models import (
    Attachment,
    Conversation,
    Customer,
    Event,
    Message,
    MessageRaw,
    Outbox,
    SatisfactionSurvey,
    SlaClockEvent,
)

_REOPENING = ("solved", "closed")


def _written(row_id: int | None) -> int:
    """An id the chunk has written by the time its results are read."""
    assert row_id is not None, "read before the chunk was written"
    return row_id


_CONVERSATION_TABLE = Conversation.__table__  # type: ignore[attr-defined]  # set by SQLModel
_CONVERSATION_COLUMNS = tuple(c.key for c in _CONVERSATION_TABLE.columns if c.key != "id")
_conversation_values = attrgetter(*_CONVERSATION_COLUMNS)  # a NewConversation's row, in C
# An audit event's detail as `json.dumps(detail, default=str, sort_keys=True)` writes it, with
# one encoder for the chunk's thousands of events rather than one made per call.
_DETAIL_JSON = json.JSONEncoder(default=str, sort_keys=True)


def ingest(
    session: Session,
    messages: Sequence[InboundMessage],
    *,
    policies: clocks.Policies,
    now: datetime,
    settings: Settings | None,
    openings: Sequence[object] | None,
) -> list[Ingested]:
    messages = list(messages)
    if not messages:
        return []
    # The conversations the chunk changes are read again once locked (`_prefetch`): the caller's
    # pending changes are written first so that reread cannot drop them.
    session.flush()
    # Autoflush would write what the ORM holds before each lookup; the chunk writes once, at the end.
    with session.no_autoflush:
        batch = Batch(session, messages, policies=policies, now=now, settings=settings)
        results = [
            batch.add(message, opening)
            for message, opening in zip(messages, openings if openings is not None else [None] * len(messages))
        ]
        batch.write()
    return [result() for result in results]


class Batch:
    """A chunk being ingested: what the database knew when it started, what it added since, and
    the rows still to write. Answers threading's questions (`threading.Lookup`) from both."""

    def __init__(
        self,
        session: Session,
        messages: list[InboundMessage],
        *,
        policies: clocks.Policies | None,
        now: datetime | None,
        settings: Settings | None,
    ):
        self.session = session
        # A chunk that stores changes the conversations it joins (version, SLA fields, status):
        # it locks them before reading them (`conversation_rows.by_id`); a lookup does not.
        self.storing = policies is not None
        self.policies = policies
        self.now = now
        self.settings = settings
        self.known: dict[str, list[Known]] = {}  # external id -> messages with it, by id
        self.thread_keys: dict[tuple[str, str], Known] = {}  # (source, thread key) -> latest message
        self.identities: dict[tuple[str, str], CustomerRef | None] = {}  # -> (id, name, tier) | NewCustomer | None
        self.conversations: dict[int, ConversationRow] = {}
        self.keeper = Keeper(session, settings)
        self._reset_pending()
        self._prefetch(messages)

    @classmethod
    def lookup_for(cls, session: Session, messages: list[InboundMessage]) -> Batch:
        """A chunk that stores nothing: what threading needs to place `messages`."""
        return cls(session, messages, policies=None, now=None, settings=None)

    def _reset_pending(self) -> None:
        self.new_customers: list[NewCustomer] = []
        self.new_conversations: list[NewConversation] = []
        self.touched: dict[int, ConversationRow] = {}
        self.pending: list[PendingMessage] = []
        # Audit events in the order message-by-message ingest records them: (action, detail,
        # conversation, customer); a PendingMessage in a detail stands for its id.
        self.events: list[tuple[str, dict, ConversationRow | NewConversation | None, NewCustomer | None]] = []
        # (message, whether it opened its conversation) whose receipt is decided once written.
        self.receipts: list[tuple[PendingMessage, bool]] = []
        # Outbox rows a bounce of this chunk failed, linked to the bounce once it has its id.
        self.bounced_outboxes: list[tuple[Outbox, PendingMessage]] = []
        # Answers to satisfaction surveys, recorded once their message has its id.
        self.answers: list[tuple[PendingMessage, csat.Answer, SatisfactionSurvey, ConversationRow, datetime]] = []
        # Attachment rows (but their message_id) of pending messages, by the message's place in `pending`.
        self.attachment_rows: dict[int, list[dict]] = {}

    # -- what the database already knows, for the whole chunk ------------------------------------

    def _prefetch(self, messages: list[InboundMessage]) -> None:
        session = self.session
        ids: set[str] = set()
        for message in messages:
            ids.update(
                filter(
                    None, (message.external_id, message.in_reply_to, *message.references, threading.bounced_id(message))
                )
            )
        for row in lookups.messages_by_external_id(session=session, external_ids=ids):
            assert row.external_id is not None  # matched on it
            self.known.setdefault(row.external_id, []).append(
                Known(row.id, row.conversation_id, row.content_hash, row.direction, row.thread_reason)
            )
        keys = {(m.source, m.thread_key) for m in messages if m.thread_key}
        for key, row in lookups.latest_by_thread_key(session=session, keys=keys).items():
            self.thread_keys[key] = Known(row.id, row.conversation_id, None, row.direction, row.thread_reason)
        # Stored messages: their conversation is an id.
        conversation_ids = {
            k.conversation for found in self.known.values() for k in found if isinstance(k.conversation, int)
        }
        conversation_ids.update(k.conversation for k in self.thread_keys.values() if isinstance(k.conversation, int))
        self.conversations.update(
            conversation_rows.by_id(session=session, conversation_ids=conversation_ids, for_update=self.storing)
        )
        addresses: dict[str, set[str]] = {}
        for message in messages:
            kind = customers.sender_identity_kind(message)
            address = customers.normalise_address(kind, message.sender_address)
            addresses.setdefault(kind, set()).add(address)
            self.identities.setdefault((kind, address), None)
        for kind, wanted in addresses.items():
            for address, customer in lookups.customers_by_address(session=session, kind=kind, addresses=wanted).items():
                self.identities[(kind, address)] = customer
        # The block list, once per chunk: an address or its "@domain" (sets, not a query a message).
        self.blocked = lookups.blocked_patterns(
            session=session,
            patterns={
                pattern
                for wanted in addresses.values()
                for address in wanted
                if "@" in address
                for pattern in (address, "@" + address.rpartition("@")[2])
            },
        )

    # -- threading.Lookup ---------------------------------------------------------------------------

    def latest(self, external_ids: Iterable[str]) -> Known | None:
        best: Known | None = None
        for external_id in external_ids:
            for known in self.known.get(external_id, ()) if external_id else ():
                if best is None or known.order() > best.order():
                    best = known
        return best

    def bounced(self, external_id: str) -> Known | None:
        candidates = self.known.get(external_id, ())
        return max(candidates, key=lambda k: (k.direction == "outbound", k.order()), default=None)

    def keyed(self, source: str, thread_key: str) -> Known | None:
        return self.thread_keys.get((source, thread_key))

    @overload
    def conversation(self, conversation: int) -> ConversationRow | None: ...
    @overload
    def conversation(
        self, conversation: int | ConversationRow | NewConversation
    ) -> ConversationRow | NewConversation | None: ...
    def conversation(
        self, conversation: int | ConversationRow | NewConversation
    ) -> ConversationRow | NewConversation | None:
        """The stored conversation (loaded once) or the chunk's new one."""
        if isinstance(conversation, NewConversation):
            if conversation.id is None:
                return conversation
            conversation = conversation.id  # written already: changes now go through the ORM
        if not isinstance(conversation, int):
            return conversation
        found = self.conversations.get(conversation)
        if found is None:
            found = conversation_rows.by_id(
                session=self.session, conversation_ids=[conversation], for_update=self.storing
            ).get(conversation)
            if found is not None:
                self.conversations[conversation] = found
        return found

    def conversation_by_id(self, conversation_id: int) -> ConversationRow | None:
        found = self.conversation(conversation_id)
        if found is None and self.new_conversations:
            # It may be one this chunk opened: written, it has its id.
            self.write()
            found = self.conversation(conversation_id)
        return found

    def awaiting_answer(self, source: str, customer: CustomerRef) -> ConversationRow | None:
        customer_id = None if isinstance(customer, NewCustomer) else customer_id_of(customer)
        if customer_id is None:
            return None  # a customer this chunk made has no conversation we started
        found = lookups.started_awaiting_answer(session=self.session, customer_id=customer_id, source=source)
        conversation = self.conversation(found) if found is not None else None
        # An earlier message of this chunk may have answered it already (it is no longer waiting).
        return conversation if conversation is not None and conversation.last_customer_message_at is None else None

    def has_message_from(self, conversation: ConversationRow | NewConversation, address: str) -> bool:
        if any(p.conversation is conversation and p.row["sender_address"] == address for p in self.pending):
            return True
        return conversation.id is not None and lookups.has_message_from(
            session=self.session, conversation_id=conversation.id, sender_address=address
        )

    # -- one message ------------------------------------------------------------------------------

    def add(self, message: InboundMessage, opening: object = None) -> Callable[[], Ingested]:
        now = self.now
        assert now is not None, "a lookup adds nothing"
        digest = content_hash(message)
        external_id = message.external_id
        known = self.known.get(external_id, []) if external_id else []
        for candidate in known:
            if candidate.content_hash == digest:
                return self._duplicate(candidate)
        if message.channel == "email":
            for candidate in known:
                # Our own reply coming back (we were in Cc, the Sent folder is imported): the
                # outbound message with that Message-ID is already the record of it.
                if candidate.direction == "outbound":
                    return self._duplicate(candidate)
        kind = customers.sender_identity_kind(message)
        address = customers.normalise_address(kind, message.sender_address)
        bounced, matched_by = self._bounced(message) if message.kind == "bounce" else (None, "")
        aside = ""
        customer: CustomerRef
        conversation: ConversationRow | NewConversation | None
        if message.kind == "bounce":
            # An event on the reply it bounced, never a customer: it joins that reply's
            # conversation, or, matching none of ours, the system view under the desk's own customer.
            if bounced is not None:
                conversation, reason = self.conversation(bounced.conversation), "bounce"
                assert conversation is not None, "the bounced message's conversation"
                customer = (
                    conversation.customer
                    if isinstance(conversation, NewConversation)
                    else (conversation.customer_id, "", "")
                )
            else:
                owner = lookups.system_customer(session=self.session)
                customer, conversation, reason, aside = (owner.id, owner.name, owner.tier), None, "new", "system"
        else:
            if not address:
                raise InvalidInput(f"an empty {kind} address cannot identify a customer")
            customer = self._customer(kind, address, message.sender_name)
            conversation, reason = threading.thread(message, customer, address, self)
            aside = self._aside_for(message, address)

        # A message's time is the channel's own, never later than when we saw it (DESIGN).
        at = min(message.received_at, now)
        created = conversation is None
        if conversation is None:
            conversation = NewConversation(message, customer, at, now)
            conversation.opening = opening
            self.new_conversations.append(conversation)
            self.events.append(("created", {"channel": message.channel, "source": message.source}, conversation, None))
        elif not isinstance(conversation, NewConversation):
            self.touched[conversation.id] = conversation
        its_customer = (
            conversation.customer if isinstance(conversation, NewConversation) else (conversation.customer_id,)
        )
        if not created and not (
            aside == "spam" and not conversation.aside and customer_id_of(customer) == customer_id_of(its_customer)
        ):
            aside = ""  # joining a conversation leaves it where it is; a blocked sender's own goes to spam
        if aside and conversation.aside != aside:
            conversation.aside = aside
            self.events.append(
                ("set_aside", {"view": aside, "why": self._aside_reason(message, aside, address)}, conversation, None)
            )
        row = dict(
            direction="inbound",
            kind=message.kind,
            bulk=message.bulk,
            author_login=None,
            author=message.sender_name or message.sender_address,
            sender_address=address,
            subject=message.subject,
            body_text=message.body_text,
            body_html_text=message.body_html_text,
            at=at,
            ingested_at=now,
            source=message.source,
            external_id=external_id or None,
            content_hash=digest,
            in_reply_to=message.in_reply_to,
            references=" ".join(message.references),
            thread_reason=reason,
            parse_error=message.parse_error,
            thread_key=message.thread_key or None,
            recipients=" ".join(dict.fromkeys(r.lower() for r in message.recipients if r)),
        )
        pending = PendingMessage(row, conversation, message, created)
        if bounced is not None and bounced.direction == "outbound":
            self._fail_bounced_reply(message, pending, bounced, matched_by, conversation)
        rating_only = self._survey_answer(pending, conversation, created, at)
        if not rating_only:
            self._consider_receipt(pending, reason)
        if message.attachments:
            self.attachment_rows[len(self.pending)] = self.keeper.rows_for(message)
        self.pending.append(pending)
        entry = Known(None, conversation, digest, "inbound", reason, pending)
        if external_id:
            self.known.setdefault(external_id, []).append(entry)
        if message.thread_key:
            self.thread_keys[(message.source, message.thread_key)] = entry

        # Automatic mail (auto-replies, bounces) never makes the customer "waiting" on us, nor
        # does an answer to the satisfaction survey that is only a rating.
        if message.kind == "message" and not rating_only:
            # A conversation we started waits, pending, for the customer: their first answer opens it.
            answers_us = conversation.status == "pending" and conversation.last_customer_message_at is None
            conversation.last_customer_message_at = max(at, conversation.last_customer_message_at or at)
            if conversation.waiting_since is None or at < conversation.waiting_since:
                conversation.waiting_since = at
            if conversation.status in _REOPENING or answers_us:
                self._reopen(conversation)
        conversation.version += 1
        conversation.updated_at = now
        return lambda: Ingested(
            _written(pending.id), _written(conversation_id_of(pending.conversation)), created, False, reason
        )

    def _duplicate(self, known: Known) -> Callable[[], Ingested]:
        return lambda: Ingested(
            _written(known.message_id()), _written(known.conversation_id()), False, True, known.thread_reason
        )

    def _customer(self, kind: str, address: str, name: str) -> CustomerRef:
        key = (kind, address)
        if key not in self.identities:
            customer = queries.customer_by_identity(session=self.session, kind=kind, address=address)
            self.identities[key] = (customer.id, customer.name, customer.tier) if customer is not None else None
        found = self.identities[key]
        if found is None:
            found = NewCustomer(kind, address, name or address)
            self.new_customers.append(found)
            self.events.append(("customer_created", {"kind": kind, "address": address}, None, found))
            self.identities[key] = found
        elif isinstance(found, tuple) and not found[1] and name:
            customer = self.session.get(Customer, found[0])
            assert customer is not None, "a customer the lookup found"
            customer.name = name
            self.session.add(customer)
            self.identities[key] = (found[0], name, found[2])
        return found

    def _reopen(self, conversation: ConversationRow | NewConversation) -> None:
        """A customer writing to a solved or closed conversation opens it again (as queue.change
        would, with its audit event; it and ingest's own touch each count a version)."""
        self.events.append(("status", {"old": conversation.status, "new": "open"}, conversation, None))
        conversation.status = "open"
        conversation.solved_at = None
        conversation.version += 1

    def _bounced(self, message: InboundMessage) -> tuple[Known | None, str]:
        """The outbound message of ours a bounce reports on (bounces.py) and how it was matched."""
        original = threading.bounced_id(message)
        found = self.bounced(original) if original else None
        if found is not None and found.direction == "outbound":
            return found, "message-id"
        named = bounces.find(self.session, message)
        if named is None:
            return found, "message-id"  # a bounce of a customer's message we know: it joins that conversation
        return Known(named.message_id, named.conversation_id, None, "outbound", "bounce"), named.how

    def _aside_for(self, message: InboundMessage, address: str) -> str:
        """The view a customer message's new conversation is set aside in: spam for a blocked
        sender, bulk for list mail when its mailbox says so; "" for the queue."""
        if address in self.blocked or ("@" in address and "@" + address.rpartition("@")[2] in self.blocked):
            return "spam"
        if message.bulk:
            mailbox = receipts.channel_settings(self.settings, message.source) if self.settings else None
            if getattr(mailbox, "bulk", "bulk-view") == "bulk-view":
                return "bulk"
        return ""

    def _aside_reason(self, message: InboundMessage, aside: str, address: str) -> str:
        if aside == "spam":
            return f"blocked sender {address}"
        if aside == "bulk":
            return "list or bulk mail"
        return "a bounce that matched none of our replies"

    def _fail_bounced_reply(
        self,
        message: InboundMessage,
        bounce: PendingMessage,
        original: Known,
        matched_by: str,
        conversation: ConversationRow | NewConversation,
    ) -> None:
        """The reply a bounce reports on was not delivered: its Outbox row failed with the reason,
        linked to the bounce; the conversation flagged and back in its assignee's Mine. A delay
        warning only joins the thread: the server is still trying."""
        if not bounces.is_failure(message):
            return
        original_id = _written(original.message_id())  # our reply: stored
        outbox = queries.delivery_states(session=self.session, message_ids=[original_id]).get(original_id)
        if outbox is None:
            return
        reason = message.headers.get("x-bounce-reason") or message.subject or "the recipient's server returned it"
        outbox.state = "failed"
        outbox.last_error = f"bounced: {reason}"[:2_000]
        outbox.next_attempt_at = None
        self.session.add(outbox)
        self.bounced_outboxes.append((outbox, bounce))
        conversation.bounced_at = self.now
        if conversation.status != "open" and conversation.status != "new":
            self._reopen(conversation)
        if conversation.snoozed_until is not None:
            conversation.snoozed_until = None
        self.events.append(
            (
                "bounced",
                {
                    "message_id": original.message_id(),
                    "bounce_message_id": bounce,
                    "matched_by": matched_by,
                    "recipient": ", ".join(bounces.recipients(message)),
                    "reason": outbox.last_error,
                },
                conversation,
                None,
            )
        )

    def _survey_answer(
        self, pending: PendingMessage, conversation: ConversationRow | NewConversation, created: bool, at: datetime
    ) -> bool:
        """A customer's reply to a solved conversation whose survey went out, giving a rating
        (domain/csat.py): recorded once written. True when it is only a rating, so the
        conversation stays solved; with more (a question, a long text) it reopens as usual."""
        message = pending.message
        if created or message.kind != "message" or isinstance(conversation, NewConversation):
            return False
        survey = csat.answerable(self.session, conversation)
        if survey is None:
            return False
        answer = csat.read_answer(message.body_text or message.body_html_text)
        if answer is None:
            return False
        self.answers.append((pending, answer, survey, conversation, at))
        return not answer.more_than_a_rating

    def _consider_receipt(self, pending: PendingMessage, reason: str) -> None:
        """Queue the message for the receipt decision (domain/receipts.py) when its conversation's
        source sends receipts and the decision could be yes: it opened the conversation, or the
        source answers after hours too."""
        if self.settings is None:
            return
        conversation = pending.conversation
        channel = receipts.channel_settings(self.settings, conversation.source)
        if channel is None or not getattr(channel, "receipt", ""):
            return
        first = pending.created or (
            # A ref can name a conversation whose messages were all moved away.
            reason in ("hint-ref", "subject-tag")
            and not isinstance(conversation, NewConversation)
            and not any(p.conversation is conversation for p in self.pending)
            and not lookups.has_messages(session=self.session, conversation_id=conversation.id)
        )
        if first or getattr(channel, "receipt_after_hours", False):
            self.receipts.append((pending, first))

    # -- writing ----------------------------------------------------------------------------------

    def write(self) -> None:
        """Insert everything pending, with one statement per table, refresh the clocks, and decide
        the receipts."""
        session = self.session
        if not (self.pending or self.touched or self.new_customers):
            return
        # The ORM's own changes (a customer's name, an Outbox row) are written by the one flush
        # after the inserts, and the touched conversations by one UPDATE a set of changed columns
        # after their clocks: none of the inserts reads them.
        now, policies = self.now, self.policies
        assert now is not None and policies is not None, "a lookup writes nothing"
        if self.new_customers:
            ids = bulk.insert_customers(
                session,
                [
                    dict(name=c.name, organization="", tier="", notes="", created_at=now, merged_into_id=None)
                    for c in self.new_customers
                ],
                lambda ids: [
                    dict(customer_id=new_id, kind=c.kind, address=c.address, created_at=now)
                    for c, new_id in zip(self.new_customers, ids)
                ],
            )
            for customer, new_id in zip(self.new_customers, ids):
                customer.id = new_id
                self.identities[(customer.kind, customer.address)] = (new_id, customer.name, "")
        clock_rows: list[tuple[ConversationRow | NewConversation, list[dict]]] = []
        if self.new_conversations:
            for conversation in self.new_conversations:
                conversation.customer_id = customer_id_of(conversation.customer)
                tier = conversation.customer[2] if isinstance(conversation.customer, tuple) else ""
                rows = self._opened(conversation, tier)
                if rows is None:
                    rows = clocks.refresh_rows(conversation, policies=policies, tags=set(), tier=tier, now=now)
                clock_rows.append((conversation, rows))
            ids = bulk.insert_returning(
                session,
                Conversation,
                [dict(zip(_CONVERSATION_COLUMNS, _conversation_values(c))) for c in self.new_conversations],
            )
            for conversation, new_id in zip(self.new_conversations, ids):
                conversation.id = new_id
        if self.pending:
            rows = []
            for pending in self.pending:
                pending.row["conversation_id"] = conversation_id_of(pending.conversation)
                rows.append(pending.row)
            for pending, new_id in zip(self.pending, bulk.insert_messages(session, rows)):
                pending.id = new_id
            for outbox, bounce in self.bounced_outboxes:
                outbox.bounce_message_id = bounce.id
                session.add(outbox)
            self.bounced_outboxes = []
            bulk.insert(
                session, MessageRaw, [dict(message_id=p.id, raw=p.message.raw) for p in self.pending if p.message.raw]
            )
            self.keeper.finish()  # the bytes are kept before the rows that name them
            bulk.insert(
                session,
                Attachment,
                [
                    dict(row, message_id=self.pending[index].id)
                    for index, rows in self.attachment_rows.items()
                    for row in rows
                ],
            )
        if self.touched:
            touched = list(self.touched.items())
            ids = [conversation_id for conversation_id, _ in touched]
            tags = queries.tags_of(session=session, conversation_ids=ids)
            tiers = lookups.customer_tiers(session=session, customer_ids=[c.customer_id for _, c in touched])
            recorded = clocks.load_events(session, ids)
            for conversation_id, stored in touched:
                rows = clocks.refresh_rows(
                    stored,
                    policies=policies,
                    tags=set(tags[conversation_id]),
                    tier=tiers.get(stored.customer_id, ""),
                    now=now,
                    events=recorded[conversation_id],
                )
                clock_rows.append((stored, rows))
        # The stored conversations this chunk changed (version, SLA fields, status, a bounce's flag).
        conversation_rows.write_changes(session=session, rows=self.conversations.values())
        bulk.insert(
            session, SlaClockEvent, [dict(row, conversation_id=owned.id) for owned, rows in clock_rows for row in rows]
        )
        bulk.insert(
            session,
            Event,
            [
                dict(
                    at=now,
                    agent=audit.SYSTEM,
                    action=action,
                    conversation_id=conversation_id_of(conversation) if conversation is not None else None,
                    customer_id=customer.id if customer is not None else None,
                    detail=_DETAIL_JSON.encode(
                        {
                            name: value.id if isinstance(value, PendingMessage) else value
                            for name, value in detail.items()
                        }
                    ),
                )
                for action, detail, conversation, customer in self.events
            ],
        )
        session.flush()
        for pending, answer, survey, answered, at in self.answers:
            csat.record_answer(
                session,
                survey=survey,
                answer=answer,
                message_id=_written(pending.id),
                conversation=self._stored(answered.id),
                at=at,
                now=now,
            )
        candidates = self.receipts
        self._reset_pending()
        for pending, first in candidates:
            self._receipt(pending, first)
        if candidates:
            # A receipt is a reply, written through the ORM (status, version, first response):
            # the chunk's rows of those conversations read again for its later messages.
            replied = {conversation_id_of(pending.conversation) for pending, _ in candidates}
            conversation_rows.reread(
                session=session, rows=[row for row_id, row in self.conversations.items() if row_id in replied]
            )

    def _stored(self, conversation_id: int | None) -> Conversation:
        """The ORM object of a conversation the chunk has written, for the domain's rare paths
        that change it through the session (a receipt's reply, a survey's answer)."""
        found = self.session.get(Conversation, _written(conversation_id))
        assert found is not None, "a written conversation"
        return found

    def _opened(self, conversation: NewConversation, tier: str) -> list[dict] | None:
        """`refresh_rows` for a new conversation from its opening computed ahead, when that was
        computed for exactly this conversation's facts, policy and `now`; None otherwise."""
        opening = conversation.opening
        if (
            opening is None
            or tier
            or opening.now != self.now
            or conversation.status != "new"
            or conversation.priority != opening.priority
            or conversation.created_at != opening.created_at
            or conversation.waiting_since != opening.waiting_since
            or conversation.solved_at is not None
            or conversation.first_responded_at is not None
            or conversation.last_agent_reply_at is not None
        ):
            return None
        assert self.policies is not None, "a lookup writes nothing"
        policy = self.policies.select(channel=conversation.channel, priority=conversation.priority, tags=set(), tier="")
        if policy is None or policy.name != opening.policy:
            return None
        conversation.sla_policy = opening.policy
        for name, value in opening.fields.items():
            setattr(conversation, name, value)
        return [
            {"target": target, "event": event, "at": at, "detail": detail}
            for target, event, at, detail in opening.events
        ]

    def _receipt(self, pending: PendingMessage, first: bool) -> None:
        """The receipt decision for a message once it and its conversation are written (in message
        order, so the hourly limit counts as it would one by one)."""
        session = self.session
        conversation = self._stored(conversation_id_of(pending.conversation))
        stored = session.get(Message, pending.id)
        assert stored is not None, "written"
        assert self.settings is not None and self.policies is not None and self.now is not None
        receipts.maybe_queue_receipt(
            session,
            conversation=conversation,
            message=stored,
            settings=self.settings,
            policies=self.policies,
            now=self.now,
            inbound=pending.message,
            first_message=first,
        )
        session.flush()
