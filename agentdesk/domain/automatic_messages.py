"""Loop safety for automatic messages (receipts): the one rule on whether one may go out.

Two checks, one rule:

- `refusal` (and `automatic_reply_allowed`, which adds the rate limit), when an inbound message is
  stored: may an automatic message answer it at all? RFC 3834 §2, in depth: never a bounce or
  an auto-reply, list or bulk mail, an empty envelope sender, a machine address (as sender or
  Return-Path), `Auto-Submitted` other than `no`, `Precedence: bulk|list|junk`, `List-Id`,
  `List-Unsubscribe`, `X-Auto-Response-Suppress`, our own addresses, our loop header — whatever
  the classification said, so a bounce taken for customer mail still gets nothing.
- `automatic_limit_reached`, when the outbox is about to send one: the per-customer rate limit,
  checked again at send time, because another system's autoresponder that our header checks did
  not recognise would otherwise ping-pong with us (`sync.delivery` enforces it).

Kept apart from `receipts` so the outbox can ask without loading the SLA calendars.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from agentdesk.store import lookups, outbox

# At most this many automatic messages to one customer (and so one address) per window.
AUTOMATIC_LIMIT = 3
AUTOMATIC_WINDOW = timedelta(hours=1)
AUTOMATIC_KINDS = ("receipt", "survey")


def recent_automatic(session: Session, *, customer_id: int, now: datetime, sent_only: bool = False) -> int:
    """Automatic messages to this customer within the window (queued or sent, or sent only)."""
    return outbox.automatic_message_count(
        session=session,
        customer_id=customer_id,
        kinds=AUTOMATIC_KINDS,
        since=now - AUTOMATIC_WINDOW,
        sent_only=sent_only,
    )


def automatic_limit_reached(session: Session, *, customer_id: int, now: datetime, claimed: int = 0) -> str:
    """At send time: why this customer may get no more automatic messages now, or "" when they may.

    Counts those sent within the window plus `claimed`, the ones the caller is already sending.
    """
    count = recent_automatic(session, customer_id=customer_id, now=now, sent_only=True) + claimed
    if count < AUTOMATIC_LIMIT:
        return ""
    return (
        f"suppressed: {count} automatic messages to this customer in the last "
        f"{int(AUTOMATIC_WINDOW.total_seconds() // 60)} min (limit {AUTOMATIC_LIMIT}); a mail loop is likely"
    )


# Local parts of addresses that belong to machines: mail delivery systems, list managers and
# senders that say no one reads replies. Answering them is how mail loops start (RFC 3834 §2).
MACHINE_LOCAL_PARTS = frozenset(
    {
        "mailer-daemon",
        "mailer_daemon",
        "mailerdaemon",
        "mail-daemon",
        "postmaster",
        "mailer",
        "daemon",
        "noreply",
        "no-reply",
        "no_reply",
        "no.reply",
        "donotreply",
        "do-not-reply",
        "do_not_reply",
        "do.not.reply",
        "bounce",
        "bounces",
        "bounced",
        "listserv",
        "listserver",
        "majordomo",
        "mailman",
        "lyris",
        "ecartis",
        "smartlist",
        "autoreply",
        "auto-reply",
        "autoresponder",
        "auto-responder",
        "root",
        "nobody",
    }
)
MACHINE_PREFIXES = (
    "owner-",
    "bounce-",
    "bounces-",
    "bounce+",
    "bounces+",
    "noreply-",
    "no-reply-",
    "noreply+",
    "no-reply+",
    "mailer-daemon",
    "postmaster-",
    "srs0=",
    "srs1=",
    "prvs=",
    "btv1==",
)
MACHINE_SUFFIXES = ("-request", "-owner", "-bounces", "-bounce", "-admin", "-noreply", "-no-reply", "-daemon")
LIST_PRECEDENCES = frozenset({"bulk", "list", "junk"})


def is_machine_address(address: str) -> bool:
    """Whether an address belongs to a machine by its local part (mailer-daemon, postmaster,
    no-reply, bounce, owner-…, …-request, a VERP or SRS bounce address, …)."""
    local = address.strip().lower().rpartition("@")[0] if "@" in address else address.strip().lower()
    local = local.split("+", 1)[0] if local.split("+", 1)[0] in MACHINE_LOCAL_PARTS else local
    if not local:
        return False
    return local in MACHINE_LOCAL_PARTS or local.startswith(MACHINE_PREFIXES) or local.endswith(MACHINE_SUFFIXES)


def _return_path(value: str) -> str:
    return value.strip().strip("<>").strip()


def refusal(
    *, kind: str, bulk: bool, sender_address: str, headers: dict[str, str], our_addresses: set[str] | frozenset[str]
) -> str:
    """Why no automatic message may answer this inbound message, or "" when one may (the rate
    limit aside: `automatic_reply_allowed` adds it).

    The one rule for every automatic message, independent of how the message was classified.
    `headers` are the parsed headers the email channel keeps (lower-case names); a channel without
    headers (a spool) has `{}` and is judged on its sender address alone.
    """
    if kind != "message":
        return f"it is {kind.replace('_', '-')}"
    if bulk:
        return "it is list or bulk mail"
    address = (sender_address or "").strip().lower()
    if not address:
        return "it has no sender address"
    ours = {a.strip().lower() for a in our_addresses}
    if address in ours:
        return "it comes from one of our own addresses"
    if is_machine_address(address):
        return f"{address} is a machine address"
    if "return-path" in headers:
        envelope = _return_path(headers["return-path"]).lower()
        if not envelope:
            return "its Return-Path is empty (a machine-generated notice)"
        if envelope in ours:
            return "its Return-Path is one of our own addresses"
        if is_machine_address(envelope):
            return f"its Return-Path {envelope} is a machine address"
    auto_submitted = headers.get("auto-submitted", "").split(";", 1)[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"it is Auto-Submitted: {auto_submitted}"
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in LIST_PRECEDENCES:
        return f"it has Precedence: {precedence}"
    for name in ("list-id", "list-unsubscribe"):
        if headers.get(name, "").strip():
            return f"it carries {name.title()} (list mail)"
    if "x-auto-response-suppress" in headers:
        return "its sender asks for no automatic replies (X-Auto-Response-Suppress)"
    if headers.get("x-agentdesk-loop", "").strip():
        return "it carries our loop header (mail from a help desk)"
    return ""


def automatic_reply_allowed(
    session: Session,
    *,
    inbound: Any,
    our_addresses: set[str] | frozenset[str],
    now: datetime,
) -> tuple[bool, str]:
    """May an automatic message (a receipt) answer this inbound message? (allowed, why not)

    `inbound` is the channel's InboundMessage: `refusal`, then never more than AUTOMATIC_LIMIT
    per address per AUTOMATIC_WINDOW.
    """
    why_not = refusal(
        kind=inbound.kind,
        bulk=inbound.bulk,
        sender_address=inbound.sender_address,
        headers=inbound.headers,
        our_addresses=our_addresses,
    )
    if why_not:
        return False, why_not
    address = (inbound.sender_address or "").strip().lower()
    identity = lookups.identity_by_address(session=session, address=address)
    if identity is not None:
        count = recent_automatic(session, customer_id=identity.customer_id, now=now)
        if count >= AUTOMATIC_LIMIT:
            return False, f"{count} automatic messages went to {address} within the last hour"
    return True, ""
