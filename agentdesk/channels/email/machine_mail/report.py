"""What a bounce says about the mail it returns: its Message-ID, the recipient, the reason.

A delivery-status report (RFC 3464) says it in fields; every other family says it in text,
so the text is read too: qmail's "<address>:" paragraphs, Exim's indented address and reason,
sendmail's "... User unknown" lines, a provider's sentence with an SMTP status.
"""

from __future__ import annotations

import email
import re
from email.message import Message
from email.policy import compat32
from functools import partial

from agentdesk.channels.base import InboundMessage
from agentdesk.channels.email.addresses import _message_id
from agentdesk.channels.email.decoding import _FOLD, _header_index, _raw, _unfold
from agentdesk.channels.email.mime_tree import _part_bytes, _part_text, _safe, _walk
from agentdesk.sanitize import html_to_text, strip_control

_MESSAGE_ID_LINE = re.compile(r"^[ \t>]*Message-ID:[ \t]*\r?\n?[ \t]*(<[^>\r\n]+>|[^\s]+)", re.I | re.M)


def _decoded(part: Message) -> str:
    return _part_bytes(part).decode("utf-8", "replace")


def _bounced_id(msg: Message) -> str | None:
    own = _message_id(_raw(msg, "Message-ID"))
    texts: list[str] = []
    for part, _depth, ctype in _walk(msg):
        if ctype is None:
            continue
        if ctype in ("message/rfc822", "message/global", "message/rfc822-headers"):
            inner = part.get_payload()
            if isinstance(inner, list):
                for sub in inner:
                    if isinstance(sub, Message) and _raw(sub, "Message-ID"):
                        found = _message_id(_raw(sub, "Message-ID"))
                        if found and found != own:
                            return found
            elif isinstance(inner, str):
                texts.append(inner)
        elif ctype == "text/rfc822-headers" or ctype.startswith("text/"):
            text = _safe(partial(_part_text, part), "") or ""
            if ctype == "text/html":
                text = html_to_text(text)
            if ctype == "text/rfc822-headers":
                texts.insert(0, text)
            else:
                texts.append(text)
        elif ctype == "message/delivery-status":
            texts.append(_safe(partial(_decoded, part), "") or "")
    for text in texts:
        for match in _MESSAGE_ID_LINE.finditer(_FOLD.sub("", text)):
            found = _message_id(match.group(1))
            if found and found != own:
                return found
    return None


_DSN_FIELD = re.compile(
    r"^(Diagnostic-Code|Status|Action|Final-Recipient|Original-Recipient)[ \t]*:[ \t]*(.*(?:\n[ \t].*)*)",
    re.I | re.M,
)


def _report_fields(msg: Message) -> dict[str, str]:
    """The first recipient's fields of the message's delivery-status part, lower-case keys."""
    for part, _depth, ctype in _walk(msg):
        if ctype not in ("message/delivery-status", "message/global-delivery-status"):
            continue
        text = _safe(partial(_decoded, part), "") or ""
        found: dict[str, str] = {}
        for match in _DSN_FIELD.finditer(text.replace("\r\n", "\n")):
            key = match.group(1).lower()
            if key not in found or (key == "action" and found[key].lower() == "delayed"):
                found[key] = " ".join(strip_control(_unfold(match.group(2))).split())
        if found:
            return found
    return {}


def _address_of(field: str) -> str:
    return field.split(";", 1)[-1].strip().strip("<>").strip()


def bounce_reason(msg: Message) -> str:
    """The remote server's words from a delivery-status report: recipient, status, diagnostic.

    Shown as the delivery error of the reply that bounced. Empty when the report has none, and
    for a delay warning or a success notice (they are not failures).
    """
    found = _report_fields(msg)
    if found.get("action", "failed").lower() in ("delayed", "delivered", "relayed", "expanded"):
        return ""
    pieces = []
    if found.get("final-recipient"):
        pieces.append(_address_of(found["final-recipient"]))
    if found.get("status"):
        pieces.append(found["status"])
    if found.get("diagnostic-code"):
        pieces.append(found["diagnostic-code"].split(";", 1)[-1].strip())
    return ": ".join(pieces)


# --- the same facts from a notice's text ---------------------------------------------------------

_ADDRESS = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_ADDRESS_RE = re.compile(_ADDRESS)
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_SMTP_LINE = re.compile(r"^.*\b(?:[45]\d\d[ -]|[45]\.\d{1,3}\.\d{1,3}\b).*$", re.M)
_REASON_LINE = re.compile(
    r"^.*(?:user\s+unknown|unknown\s+user|no\s+such\s+(?:user|mailbox|address)|mailbox\s+(?:full|unavailable|is\s+full"
    r"|not\s+found)|over\s+quota|quota\s+exceeded|does\s+not\s+exist|address\s+rejected|host\s+unknown"
    r"|not\s+listed\s+in|recipient\s+(?:not\s+found|rejected|unknown)|account\s+(?:is\s+)?(?:disabled|inactive)"
    r"|blocked|rejected|refused|spam|timed?\s*out|could\s+not\s+be\s+delivered|delayed|undeliverable"
    r"|voll\b|pleine|lleno|piena|nicht\s+zugestellt|n'a\s+pas\s+pu|no\s+se\s+pudo|unbekannt|inconnu|desconocido).*$",
    re.I | re.M,
)
# Bounce categories for the code that acts on a bounce: a delay is no failure, a full mailbox is
# worth a retry later, an unknown user is not, spam rejections point at our own sending.
_CATEGORIES = (
    (
        "delay",
        re.compile(
            r"\bdelay|warning\s+message\s+only|will\s+(?:continue|keep)\s+(?:trying|attempting)|"
            r"not\s+yet\s+been\s+delivered|\b4\.4\.7\b|still\s+being\s+retried|"
            r"could\s+not\s+be\s+delivered\s+for\s+(?:the\s+past\s+|more\s+than\s+)?\d+\s+hour|warning\s+only",
            re.I,
        ),
    ),
    (
        "mailbox-full",
        re.compile(
            r"mailbox\s+(?:is\s+)?full|over\s*quota|quota\s+exceeded|exceed\w*\s+(?:the\s+)?"
            r"(?:storage|quota|mailbox)|insufficient\s+(?:system\s+)?storage|\b[45]\.2\.2\b|"
            r"mailbox\s+size\s+limit|postfach\s+(?:\S+\s+)*?(?:ist\s+)?voll|bo[îi]te\s+(?:aux\s+lettres\s+)?pleine|"
            r"buz[óo]n\s+lleno|casella\s+piena|メールボックスが一杯",
            re.I,
        ),
    ),
    (
        "spam-rejection",
        re.compile(
            r"spam|blocked\s+using|block\s*list|black\s*list|\b5\.7\.1\b.*(?:policy|reject)|"
            r"reputation|content\s+(?:filter|rejected)|dnsbl|\brbl\b|listed\s+(?:at|on|in)\s+\S*(?:bl\b|spamhaus|sorbs|spamcop)|"
            r"virus|malware|phish",
            re.I,
        ),
    ),
    (
        "unknown-recipient",
        re.compile(
            r"user\s+unknown|unknown\s+(?:user|recipient|address)|no\s+such\s+(?:user|"
            r"mailbox|recipient|address)|does\s+not\s+exist|address\s+(?:not\s+found|"
            r"rejected)|\b5\.1\.[0136]\b|not\s+listed\s+in|recipient\s+(?:not\s+found|"
            r"rejected)|invalid\s+(?:recipient|mailbox|address)|account\s+(?:is\s+)?"
            r"(?:disabled|inactive|suspended)|unrouteable|unroutable",
            re.I,
        ),
    ),
    (
        "host-unknown",
        re.compile(
            r"host\s+(?:or\s+domain\s+name\s+)?(?:unknown|not\s+found)|domain\s+(?:not\s+"
            r"found|does\s+not\s+exist)|\b5\.1\.2\b|name\s+service\s+error|nxdomain",
            re.I,
        ),
    ),
)


def _text_of(msg: Message, body_text: str) -> str:
    return body_text[:20_000] if body_text else ""


def bounce_details(msg: Message, body_text: str = "") -> dict[str, str]:
    """What a bounce tells the code that links it to the mail it returns, as parsed-header keys:

    - `x-bounced-message-id`: the returned message's Message-ID;
    - `x-bounce-recipient`: the address that failed (Final-Recipient, X-Failed-Recipients,
      or the first address in the notice's text);
    - `x-bounce-original-recipient`: the report's Original-Recipient, when it gives one;
    - `x-bounce-status`: the enhanced status code (5.1.1, 4.2.2, ...), when there is one;
    - `x-bounce-category`: delay | mailbox-full | spam-rejection | unknown-recipient |
      host-unknown | failed (a failure of no known category);
    - `x-bounce-reason`: the remote server's words (a report's fields, or the notice's line
      that carries the SMTP reply); empty for a delay, which is not a failure.

    Keys with nothing to say are left out. Never raises.
    """
    details: dict[str, str] = {}
    try:
        original = _bounced_id(msg)
        if original:
            details["x-bounced-message-id"] = original
        fields = _report_fields(msg)
        text = _text_of(msg, body_text)
        recipient = _address_of(fields["final-recipient"]) if fields.get("final-recipient") else ""
        if not recipient:
            failed = _header_index(msg).get("x-failed-recipients")
            if failed:
                recipient = _address_of(failed[0].split(",")[0])
        if not recipient:
            own = {
                a.lower() for key in ("from", "to", "return-path") for a in _ADDRESS_RE.findall(_raw(msg, key) or "")
            }
            for found in _ADDRESS_RE.findall(text):
                if found.lower() not in own:
                    recipient = found
                    break
        if recipient:
            details["x-bounce-recipient"] = strip_control(recipient)
        if fields.get("original-recipient"):
            details["x-bounce-original-recipient"] = _address_of(fields["original-recipient"])
        status = fields.get("status", "").split(" ")[0] if fields.get("status") else ""
        if not status:
            match = _STATUS.search(text)
            status = match.group(1) if match else ""
        if status:
            details["x-bounce-status"] = status
        action = fields.get("action", "").lower()
        diagnostic = fields.get("diagnostic-code", "")
        evidence = " ".join([diagnostic, text[:4_000]])
        category = "failed"
        if action == "delayed" or status.startswith("4.") and action != "failed":
            category = "delay"
        else:
            for name, pattern in _CATEGORIES:
                if name == "delay" and (action == "failed" or status.startswith("5.")):
                    continue
                if pattern.search(diagnostic or evidence):
                    category = name
                    break
        details["x-bounce-category"] = category
        reason = bounce_reason(msg)
        if not reason and category != "delay":
            line = _SMTP_LINE.search(text) or _REASON_LINE.search(text)
            if line:
                reason = " ".join(strip_control(line.group(0)).split())
                if recipient and recipient not in reason:
                    reason = f"{recipient}: {reason}"
        if reason:
            details["x-bounce-reason"] = reason
    except Exception:
        pass
    return details


def bounced_message_id(message: bytes | Message | InboundMessage) -> str | None:
    """The Message-ID of the message a bounce reports on, or None when it cannot be found.

    Looks in an attached original (message/rfc822), its returned headers (text/rfc822-headers),
    then for a "Message-ID:" line in the bounce's text. Accepts raw bytes, a parsed `Message`
    or an `InboundMessage` (its `raw`). Never raises.
    """
    try:
        if isinstance(message, InboundMessage):
            if message.headers.get("x-bounced-message-id"):
                return message.headers["x-bounced-message-id"]
            message = message.raw
        if isinstance(message, (bytes, bytearray, memoryview)):
            message = email.message_from_bytes(bytes(message), policy=compat32)
        if not isinstance(message, Message):
            return None
        return _bounced_id(message)
    except Exception:
        return None
