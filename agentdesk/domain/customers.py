"""Customers and their identities: who wrote, on which channel, and everything they wrote before."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from agentdesk.domain import audit
from agentdesk.errors import InvalidInput
from agentdesk.sanitize import inert_line
from agentdesk.store import queries
from agentdesk.store.models import Customer, Identity

# Identity kinds by channel: an SMS number and a WhatsApp number are the same phone.
IDENTITY_KIND = {"email": "email", "sms": "phone", "chat": "chat", "webform": "email", "social": "social"}


def sender_identity_kind(message) -> str:
    """The identity kind of an inbound message's sender address: the channel's own, unless the
    payload named its sender by another kind (a chat message from a customer known by email)."""
    return getattr(message, "sender_kind", "") or IDENTITY_KIND.get(message.channel, message.channel)


def normalise_address(kind: str, address: str) -> str:
    """The canonical form identities are matched by: email lower-cased, phones in E.164; one inert
    line, since an address comes from a sender and becomes a customer's name when they give none."""
    address = inert_line(address).strip()
    if kind == "email":
        return address.lower()
    if kind == "phone":
        return normalise_phone(address)
    return address


def normalise_phone(number: str, default_region: str | None = None) -> str:
    import phonenumbers

    try:
        parsed = phonenumbers.parse(number, default_region)
    except phonenumbers.NumberParseException as error:
        raise InvalidInput(f"{number!r} is not a phone number: {error}") from None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def find_or_create(session: Session, *, kind: str, address: str, name: str, now: datetime, tier: str = "") -> Customer:
    """The customer owning this identity, creating both when the identity is new."""
    address = normalise_address(kind, address)
    name = inert_line(name)
    if not address:
        raise InvalidInput(f"an empty {kind} address cannot identify a customer")
    customer = queries.customer_by_identity(session=session, kind=kind, address=address)
    if customer is not None:
        if not customer.name and name:
            customer.name = name
            session.add(customer)
        return customer
    customer = Customer(name=name or address, tier=tier, created_at=now)
    session.add(customer)
    session.flush()
    assert customer.id is not None  # given by the flush
    session.add(Identity(customer_id=customer.id, kind=kind, address=address, created_at=now))
    audit.record(
        session,
        agent=audit.SYSTEM,
        action="customer_created",
        now=now,
        customer_id=customer.id,
        kind=kind,
        address=address,
    )
    return customer


def add_identity(session: Session, *, customer: Customer, kind: str, address: str, now: datetime) -> Identity:
    assert customer.id is not None, "a stored customer"
    identity = Identity(customer_id=customer.id, kind=kind, address=normalise_address(kind, address), created_at=now)
    session.add(identity)
    return identity
