"""Which reply of ours a bounce reports on.

A bounce is an event on the reply it bounced, never a customer's message. It names that reply in
one of three ways, tried in order: the returned message's Message-ID (`x-bounced-message-id`,
found by the batch's own prefetch), our `[AD-n]` ref (in the subject, or in the returned
headers and text of the notice), or the address that failed (the report's original recipient,
then the failed recipient), whose latest reply from us is the one that bounced. A bounce that
names none of ours is unmatched: it goes to the `system` view, under the desk's own mail-system
customer, with no SLA clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from agentdesk.channels.base import InboundMessage
from agentdesk.ingest.threading import SUBJECT_TAG
from agentdesk.store import lookups

# The notice's text searched for our ref: the returned headers sit near its top.
_REF_SEARCH_CHARS = 20_000
# A delay warning is news, not a failure: the server is still trying.
NOT_A_FAILURE = frozenset({"delay"})


@dataclass(frozen=True)
class Bounced:
    """The outbound message a bounce reports on."""

    message_id: int
    conversation_id: int
    how: str  # message-id | ref | recipient


def is_failure(message: InboundMessage) -> bool:
    return message.headers.get("x-bounce-category", "").strip().lower() not in NOT_A_FAILURE


def recipients(message: InboundMessage) -> list[str]:
    found = []
    for key in ("x-bounce-original-recipient", "x-bounce-recipient"):
        value = message.headers.get(key, "").strip().strip("<>").lower()
        if "@" in value and value not in found:
            found.append(value)
    return found


def find(session: Session, message: InboundMessage) -> Bounced | None:
    """The reply of ours a bounce reports on, by our ref or by the failed recipient (the
    Message-ID is the batch's to match); None when it names none of ours."""
    addresses = recipients(message)
    refs = SUBJECT_TAG.findall(message.subject) or SUBJECT_TAG.findall(message.body_text[:_REF_SEARCH_CHARS])
    for number in dict.fromkeys(int(n) for n in refs):
        found = lookups.latest_outbound(session=session, conversation_id=number, addresses=addresses)
        if found is not None:
            return Bounced(found[0], found[1], "ref")
    for address in addresses:
        found = lookups.latest_outbound_to(session=session, address=address)
        if found is not None:
            return Bounced(found[0], found[1], "recipient")
    return None
