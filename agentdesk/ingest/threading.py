"""Which conversation an inbound message belongs to, and why.

In order: a bounce joins the conversation of the message it reports on; the same Message-ID
with other content (a list added a footer, a server rewrote a header) joins that message's
conversation when the sender is a participant of it; then In-Reply-To and References against
every Message-ID we know (inbound and our own outbound); the provider's thread key seen on an
earlier message of the same source; the channel's conversation hint (our ref); our `[AD-n]`
subject tag; on channels without Message-IDs, a conversation we started with the sender on that
source and they have not answered yet. A ref from a hint or a subject tag is accepted only when the sender is already a
participant of that conversation (a stranger quoting a ref must not join it). Else a new
conversation. The reason is stored on the message and shown in the thread.

The decision is made against a `Lookup`: what the database holds and what the chunk being
ingested has added so far (batch.py), so a chunk threads its messages as one-by-one ingest would.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from agentdesk.channels.base import InboundMessage
from agentdesk.ingest.records import CustomerRef, Known, NewConversation, customer_id_of
from agentdesk.store.conversation_rows import ConversationRow

SUBJECT_TAG = re.compile(r"\[AD-(\d+)\]")


class Lookup(Protocol):
    def latest(self, external_ids: Iterable[str]) -> Known | None:
        """The most recent message with one of these external ids (ORDER BY id DESC)."""

    def bounced(self, external_id: str) -> Known | None:
        """The message with this external id a bounce reports on: ours (outbound) first."""

    def keyed(self, source: str, thread_key: str) -> Known | None:
        """The most recent message of this provider thread."""

    def conversation(
        self, conversation: int | ConversationRow | NewConversation
    ) -> ConversationRow | NewConversation | None:
        """A Known's conversation, as threading and ingest change it."""

    def conversation_by_id(self, conversation_id: int) -> ConversationRow | None:
        """A conversation a ref names (not merged away, or merged into another)."""

    def has_message_from(self, conversation: ConversationRow | NewConversation, address: str) -> bool:
        """Whether `address` (normalised) sent a message in `conversation`."""

    def awaiting_answer(self, source: str, customer: CustomerRef) -> ConversationRow | None:
        """The conversation the team started with `customer` on `source` that they have not answered yet."""


def bounced_id(message: InboundMessage) -> str:
    """For a bounce: the Message-ID of the message it reports on, when it says."""
    if message.kind != "bounce":
        return ""
    return (message.headers.get("x-bounced-message-id") or "").strip()


def thread(
    message: InboundMessage, customer: CustomerRef, address: str, lookup: Lookup
) -> tuple[ConversationRow | NewConversation | None, str]:
    """The existing conversation `message` from `customer` (sent from normalised `address`) belongs
    to, and why; (None, "new") for a new one."""
    original = bounced_id(message)
    if original:
        bounced = lookup.bounced(original)
        if bounced is not None:
            return lookup.conversation(bounced.conversation), "bounce"
    if message.external_id:
        same = lookup.latest([message.external_id])
        if same is not None:
            conversation = lookup.conversation(same.conversation)
            if conversation is not None and is_participant(lookup, conversation, customer, address):
                return conversation, "same-message-id"
    replied = lookup.latest([message.in_reply_to])
    if replied is not None:
        return lookup.conversation(replied.conversation), "in-reply-to"
    referenced = lookup.latest(message.references)
    if referenced is not None:
        return lookup.conversation(referenced.conversation), "references"
    if message.thread_key:
        keyed = lookup.keyed(message.source, message.thread_key)
        if keyed is not None:
            conversation = lookup.conversation(keyed.conversation)
            # A provider thread that went quiet after we solved it starts a new conversation.
            if conversation is not None and conversation.status != "closed":
                return conversation, "thread-key"
    hint = message.conversation_hint.strip().upper().removeprefix("AD-")
    if hint.isdigit():
        conversation = by_ref(lookup, int(hint), customer, address)
        if conversation is not None:
            return conversation, "hint-ref"
    for number in SUBJECT_TAG.findall(message.subject):
        conversation = by_ref(lookup, int(number), customer, address)
        if conversation is not None:
            return conversation, "subject-tag"
    if message.channel != "email" and message.kind == "message":
        # A text or chat message has no Message-ID to answer ours by: the customer's first message
        # after we wrote to them first (agentdesk new) on this source is their answer.
        started = lookup.awaiting_answer(message.source, customer)
        if started is not None:
            return started, "answer-to-ours"
    return None, "new"


def needs_a_ref_check(message: InboundMessage) -> bool:
    hint = message.conversation_hint.strip().upper().removeprefix("AD-")
    return hint.isdigit() or SUBJECT_TAG.search(message.subject) is not None


def by_ref(lookup: Lookup, conversation_id: int, customer: CustomerRef, address: str) -> ConversationRow | None:
    """The conversation a ref (hint or subject tag) names, when the sender is a participant of it.

    A conversation merged into another lives on in that one (and its messages moved there): the
    ref leads to the end of the merge chain, and a participant of the named conversation or of the
    one it ended up in is accepted.
    """
    named = lookup.conversation_by_id(conversation_id)
    if named is None:
        return None
    conversation, seen = named, {named.id}
    while conversation.merged_into_id is not None and conversation.merged_into_id not in seen:
        target = lookup.conversation_by_id(conversation.merged_into_id)
        if target is None:
            break
        conversation = target
        seen.add(conversation.id)
    if _same_customer(named, customer) or is_participant(lookup, conversation, customer, address):
        return conversation
    return None


def is_participant(
    lookup: Lookup, conversation: ConversationRow | NewConversation, customer: CustomerRef, address: str
) -> bool:
    return _same_customer(conversation, customer) or lookup.has_message_from(conversation, address)


def _same_customer(conversation: ConversationRow | NewConversation, customer: CustomerRef) -> bool:
    if isinstance(conversation, NewConversation):
        if conversation.customer is customer:
            return True
        owner = customer_id_of(conversation.customer)
    else:
        owner = conversation.customer_id
    return owner is not None and owner == customer_id_of(customer)
