"""Mail no person wrote: bounces and auto-replies, and what a bounce says about the mail it returns.

`_classify` gives a message its kind and bulk flag by the DESIGN "Kinds" rule; for a bounce,
`bounced_message_id` finds the message it reports on and `bounce_reason` the remote server's words.
"""

from __future__ import annotations

import email
import re
from email.message import Message
from email.policy import compat32

from agentdesk.channels.base import InboundMessage
from agentdesk.channels.email.addresses import _message_id
from agentdesk.channels.email.decoding import _FOLD, _first_token, _raw, _unfold
from agentdesk.channels.email.mime_tree import _part_bytes, _part_text, _safe, _walk
from agentdesk.sanitize import html_to_text, strip_control

_AUTO_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]*\]\s*)?(?:"
    r"out\s+of\s+(?:the\s+)?office|automatic\s+reply|auto(?:matic)?[\s-]*repl|autoreply"
    r"|auto[\s-]*respon|auto:|away\s+until|on\s+vacation|vacation\s+(?:reply|notice|message)"
    r"|abwesenheit|automatische\s+antwort|r[ée]ponse\s+automatique|absence\s+du\s+bureau"
    r"|respuesta\s+autom[áa]tica|risposta\s+automatica|automatisch\s+antwoord|afwezig"
    r"|resposta\s+autom[áa]tica|automatiskt\s+svar|autosvar)",
    re.IGNORECASE,
)
# Local parts that only ever send machine-generated delivery notices.
_DAEMON_SENDER = re.compile(r"^(?:mailer-?daemon|mail-?daemon)(?:@|$)", re.I)
# Local parts and display names that usually do, but can also be a person (a postmaster).
_NOTICE_SENDER = re.compile(
    r"^(?:post_?master|mail[._-]?delivery[._-]?(?:system|subsystem)?)(?:@|$)", re.I
)
_DAEMON_NAME = re.compile(
    r"mail(?:er)?[\s-]*(?:delivery|daemon)|postmaster|mail\s+administrator|system\s+administrator",
    re.I,
)
_DSN_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery\s+(?:status|failure|failed|notification|report|problem|"
    r"has\s+failed|incomplete|delayed)|returned\s+mail|return(?:ed)?\s+to\s+sender|failure\s+notice|"
    r"mail\s+delivery|could\s+not\s+be\s+delivered|not\s+(?:be\s+)?delivered|non[\s-]?deliver|"
    r"delivery\s+notification|bounce|mail\s+system\s+error|unzustellbar|non\s+remis|"
    r"warning:\s+could\s+not\s+send|rejected|message\s+(?:delayed|blocked|not\s+delivered)|"
    r"permanent\s+(?:error|failure)|mailbox\s+(?:full|unavailable)|delivery\s+error|"
    r"nicht\s+zustellbar|returned\s+message|failed\s+delivery|failure\s+delivery|"
    r"mail\s+failed|mail\s+failure|returning\s+to\s+sender|could\s+not\s+send|"
    r"message\s+\S+\s+delayed|delayed\s+mail",
    re.IGNORECASE,
)
_FAILURE_TEXT = re.compile(
    r"could\s+not\s+be\s+delivered|was\s+not\s+delivered|delivery\s+(?:to\s+the\s+following\s+"
    r"recipients?\s+)?(?:has\s+)?failed|undeliverable|permanent(?:ly)?\s+(?:error|fail)|"
    r"user\s+unknown|unknown\s+user|no\s+such\s+(?:user|mailbox|recipient)|mailbox\s+"
    r"(?:unavailable|full|not\s+found|is\s+full)|recipient\s+address\s+rejected|"
    r"message\s+(?:was\s+)?(?:rejected|returned|bounced)|returned\s+to\s+sender|"
    r"delivery\s+status\s+notification|\b5\.\d{1,3}\.\d{1,3}\b|\b55[0-4][ -]|"
    r"(?:was|were)\s+rejected|couldn't\s+be\s+delivered|wasn't\s+delivered|"
    r"did\s+not\s+reach\s+the\s+following|recipient\s+name\s+is\s+not\s+recognized|"
    r"no\s+valid\s+recipients|error\s+has\s+occurred\s+while\s+attempting\s+to\s+deliver",
    re.IGNORECASE,
)
_SUPPRESS_VALUES = re.compile(r"\b(?:all|oof|autoreply)\b", re.IGNORECASE)


def _classify(
    msg: Message,
    headers: dict[str, str],
    subject: str,
    sender_address: str,
    sender_name: str,
    body_text: str,
    content_types: list[str],
) -> tuple[str, bool]:
    """(kind, bulk) by the DESIGN "Kinds" rule."""
    report_type = ""
    try:
        # Parsing the Content-Type's parameters is costly; a header without the name has none.
        if "report-type" in (_raw(msg, "content-type") or "").lower():
            report_type = str(msg.get_param("report-type", "") or "").strip().lower()
    except Exception:
        pass
    top_type = content_types[0] if content_types else ""
    # The body scan is the costly test (a long alternation over 20 000 characters): run it only
    # for the few messages where the answer matters.
    def failure_text() -> bool:
        return _FAILURE_TEXT.search(body_text[:20_000]) is not None

    dsn_subject = _DSN_SUBJECT.search(subject) is not None
    notice_sender = bool(
        _NOTICE_SENDER.match(sender_address) or (sender_name and _DAEMON_NAME.search(sender_name))
    )
    kind = "message"
    if (
        report_type == "delivery-status"
        or "message/delivery-status" in content_types
        or "message/global-delivery-status" in content_types
        # A report whose parts are too broken to find the status part.
        or (top_type == "multipart/report" and not report_type and (dsn_subject or failure_text()))
    ):
        kind = "bounce"
    elif _DAEMON_SENDER.match(sender_address) or (
        not sender_address and _DAEMON_SENDER.match(sender_name.replace(" ", "-"))
    ):
        kind = "bounce"
    elif notice_sender and (dsn_subject or failure_text()):
        kind = "bounce"
    elif headers.get("return-path", "").strip() == "<>" and dsn_subject and failure_text():
        kind = "bounce"
    if kind == "message":
        auto_submitted = _first_token(headers.get("auto-submitted", ""))
        precedence = _first_token(headers.get("precedence", ""))
        if (
            (auto_submitted and auto_submitted != "no")
            or headers.get("x-autoreply", "").strip()
            or headers.get("x-autorespond", "").strip()
            or _SUPPRESS_VALUES.search(headers.get("x-auto-response-suppress", ""))
            or precedence == "auto_reply"
            or _first_token(str(msg.get("X-Autogenerated", "") or "")) == "reply"
            or report_type in ("disposition-notification", "feedback-report")
            or _AUTO_SUBJECT.search(subject)
        ):
            kind = "auto_reply"
    precedence = _first_token(headers.get("precedence", ""))
    bulk = precedence in ("bulk", "list", "junk") or bool(headers.get("list-id", "").strip())
    return kind, bulk


_MESSAGE_ID_LINE = re.compile(r"^[ \t>]*Message-ID:[ \t]*\r?\n?[ \t]*(<[^>\r\n]+>|[^\s]+)", re.I | re.M)


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
            text = _safe(lambda p=part: _part_text(p), "") or ""
            if ctype == "text/html":
                text = html_to_text(text)
            if ctype == "text/rfc822-headers":
                texts.insert(0, text)
            else:
                texts.append(text)
        elif ctype == "message/delivery-status":
            texts.append(_safe(lambda p=part: _part_bytes(p).decode("utf-8", "replace"), "") or "")
    for text in texts:
        for match in _MESSAGE_ID_LINE.finditer(_FOLD.sub("", text)):
            found = _message_id(match.group(1))
            if found and found != own:
                return found
    return None


_DSN_FIELD = re.compile(r"^(Diagnostic-Code|Status|Action|Final-Recipient)[ \t]*:[ \t]*(.*(?:\n[ \t].*)*)", re.I | re.M)


def bounce_reason(msg: Message) -> str:
    """The remote server's words from a delivery-status report: recipient, status, diagnostic.

    Shown as the delivery error of the reply that bounced. Empty when the report has none.
    """
    for part, _depth, ctype in _walk(msg):
        if ctype is None:
            continue
        if ctype not in ("message/delivery-status", "message/global-delivery-status"):
            continue
        text = _safe(lambda p=part: _part_bytes(p).decode("utf-8", "replace"), "") or ""
        found: dict[str, str] = {}
        for match in _DSN_FIELD.finditer(text.replace("\r\n", "\n")):
            key = match.group(1).lower()
            if key not in found or (key == "action" and found[key] == "delayed"):
                found[key] = " ".join(strip_control(_unfold(match.group(2))).split())
        if found.get("action", "failed").lower() in ("delayed", "delivered", "relayed", "expanded"):
            return ""  # a delay warning or a success notice is not a failure
        pieces = []
        if found.get("final-recipient"):
            pieces.append(found["final-recipient"].split(";", 1)[-1].strip())
        if found.get("status"):
            pieces.append(found["status"])
        if found.get("diagnostic-code"):
            pieces.append(found["diagnostic-code"].split(";", 1)[-1].strip())
        if pieces:
            return ": ".join(pieces)
    return ""


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

