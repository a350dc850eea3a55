"""Raw RFC 5322 bytes in, one sanitised `InboundMessage` out — for any input, however broken.

Real mail is parsed with `compat32`: `policy.default` is several times slower and raises on real
artefacts (group syntax in To, CR/LF inside encoded words, unknown charsets; see the corpus
README). Every header is therefore read as a plain string and decoded here, defensively.

`parse_message` never raises. Each field is read on its own; a field that cannot be read is left
empty and the reason goes to `parse_error`, so the record is stored, flagged and the raw source
kept ("nothing is lost").
"""

from __future__ import annotations

import codecs
import dataclasses
import email
import email.feedparser
import email.parser
import email.utils
import hashlib
import mimetypes
import re
from datetime import datetime, timezone
from email.header import decode_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from typing import Callable, Iterator, Sequence

from agentdesk.channels.base import InboundAttachment, InboundMessage
from agentdesk.channels.email.content import email_content_hash
from agentdesk.sanitize import html_to_text, safe_filename, strip_control

__all__ = ["parse_message", "bounced_message_id", "bounce_reason", "MAX_BODY_CHARS"]

# Bodies longer than this are cut with a note; the raw message is kept whole.
MAX_BODY_CHARS = 2_000_000
# Bounds on the MIME tree walked: a hostile message can nest parts without end.
_MAX_DEPTH = 64
_MAX_PARTS = 2_000
_MAX_HEADER_CHARS = 2_000

# Headers later stages need (loop safety, bounce handling, list detection), lower-case keys.
KEPT_HEADERS = (
    "auto-submitted",
    "precedence",
    "list-id",
    "x-autoreply",
    "x-autorespond",
    "x-auto-response-suppress",
    "return-path",
    "x-agentdesk-loop",
    "content-type",
    "date",
)

# --- the stdlib parser's boundary regex -------------------------------------------------------
#
# `email.feedparser` compiles a regex for every multipart boundary it meets. Boundaries are unique
# per message, so Python's regex cache never hits: the compile (~0.4 ms) was a third of parsing an
# average mailbox. Its module's `re` is swapped for a stand-in that answers that one pattern with
# an equivalent matcher (the fixed part of the pattern is compiled once) and passes every other
# call to `re`. A pattern of any other shape (another Python version) gets the real regex.

_BOUNDARY_PREFIX = "(?P<sep>"
_BOUNDARY_SUFFIX = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_BOUNDARY_TAIL = re.compile(_BOUNDARY_SUFFIX[1:])
_UNESCAPE = re.compile(r"\\(.)", re.S)


class _BoundaryMatcher:
    """`re.compile("(?P<sep>" + re.escape(separator) + tail).match`, without compiling per boundary."""

    __slots__ = ("separator", "length")

    def __init__(self, separator: str):
        self.separator = separator
        self.length = len(separator)

    def match(self, line: str):
        if line.startswith(self.separator):
            return _BOUNDARY_TAIL.match(line, self.length)
        return None


class _FeedparserRe:
    def __getattr__(self, name: str):
        return getattr(re, name)

    def compile(self, pattern, flags=0):
        if not flags and isinstance(pattern, str) and pattern.startswith(_BOUNDARY_PREFIX) \
                and pattern.endswith(_BOUNDARY_SUFFIX):
            escaped = pattern[len(_BOUNDARY_PREFIX):-len(_BOUNDARY_SUFFIX)]
            separator = _UNESCAPE.sub(r"\1", escaped)
            if re.escape(separator) == escaped:
                return _BoundaryMatcher(separator)
        return re.compile(pattern, flags)


email.feedparser.re = _FeedparserRe()


# --- charsets and header decoding ------------------------------------------------------------

# Labels seen in real mail that Python's codec registry does not know, or knows as a narrower
# charset than the senders actually used (as browsers do: latin-1 and ascii mean windows-1252).
_CHARSET_ALIASES = {
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ansi_x3.4-1968": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "windows-874": "cp874",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "unknown-8bit": "",
    "x-unknown": "",
    "unknown": "",
    "default": "",
}


def _codec_for(charset: str | None) -> str:
    """The Python codec for a MIME charset label, or "" when the label names nothing usable."""
    if not charset:
        return ""
    label = str(charset).strip().strip("\"'").lower().split("*", 1)[0]
    label = _CHARSET_ALIASES.get(label, label)
    if not label:
        return ""
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError, TypeError):
        return ""


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode `data` in its declared charset, falling back to UTF-8, then windows-1252/latin-1.

    Mislabelled text is the norm: 8-bit UTF-8 declared as us-ascii, windows-1252 declared as
    nothing, invented labels ("UFT-8", "fakescii"). Never raises.
    """
    if not data:
        return ""
    codec = _codec_for(charset)
    if codec and codec not in ("cp1252", "utf-8"):
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError, ValueError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if codec and codec not in ("cp1252", "utf-8"):
        try:
            return data.decode(codec, errors="replace")
        except (LookupError, ValueError):
            pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def _restore_bytes(value: str) -> str:
    """Undo compat32's surrogateescape of 8-bit header bytes (raw UTF-8 or legacy text)."""
    if not _ESCAPED_BYTE.search(value):
        return value
    return decode_bytes(value.encode("utf-8", "surrogateescape"), None)


_FOLD = re.compile(r"\r?\n(?=[ \t])|\r(?=[ \t])")
_LINE_BREAKS = re.compile(r"[\r\n]+")


def _unfold(value: str) -> str:
    if "\n" not in value and "\r" not in value:  # most header values: nothing to unfold
        return value
    return _LINE_BREAKS.sub(" ", _FOLD.sub("", value))


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(\?=)[ \t]+(?==\?)")


def _decode_encoded_words_leniently(value: str) -> str:
    """RFC 2047 by hand, for what `decode_header` rejects: bad padding, stray characters."""
    import base64
    import binascii
    import quopri

    value = _BETWEEN_WORDS.sub(r"\1", value)

    def one(match: re.Match) -> str:
        charset, encoding, payload = match.groups()
        try:
            if encoding in "bB":
                payload = re.sub(r"[^A-Za-z0-9+/]", "", payload)
                payload += "=" * (-len(payload) % 4)
                data = base64.b64decode(payload)
            else:
                data = quopri.decodestring(payload.replace("_", " ").encode("ascii", "replace"))
        except (binascii.Error, ValueError):
            return match.group(0)
        return decode_bytes(data, charset)

    return _ENCODED_WORD.sub(one, value)


def decode_header_value(value: object) -> str:
    """A header's text: unfolded, RFC 2047 words decoded, control characters removed."""
    if value is None:
        return ""
    text = _unfold(_restore_bytes(str(value)))
    if "=?" in text:
        try:
            pieces = []
            for chunk, charset in decode_header(text):
                if isinstance(chunk, str):
                    pieces.append(chunk)
                elif charset is None:
                    pieces.append(chunk.decode("raw-unicode-escape", errors="replace"))
                else:
                    pieces.append(decode_bytes(chunk, charset))
            decoded = "".join(pieces)
            if "=?" in decoded:  # words decode_header left alone (e.g. inside quotes)
                decoded = _decode_encoded_words_leniently(decoded)
            text = decoded
        except Exception:
            text = _decode_encoded_words_leniently(text)
    return strip_control(text).strip()


def _raw(msg: Message, name: str) -> str | None:
    """The first `name` header as stored, 8-bit bytes still surrogate-escaped.

    compat32's `msg.get` wraps such values in a `Header` whose str() turns every 8-bit byte into
    U+FFFD; the stored string lets `_restore_bytes` decode raw UTF-8 headers instead.
    """
    values = _header_index(msg).get(name.lower())
    return values[0] if values else None


def _raw_all(msg: Message, name: str) -> list[str]:
    return list(_header_index(msg).get(name.lower(), ()))


def _header_index(msg: Message) -> dict[str, list[str]]:
    # Parsing asks for a dozen headers of each message: index them once (the parsed message is
    # never changed afterwards).
    index = msg.__dict__.get("_agentdesk_raw_headers")
    if index is None:
        index = {}
        for key, value in msg.raw_items():
            index.setdefault(str(key).lower(), []).append(str(value))
        msg.__dict__["_agentdesk_raw_headers"] = index
    return index


# --- addresses and ids -----------------------------------------------------------------------

_BARE_ADDRESS = re.compile(r"[^\s<>\"(),;:\[\]]+@[^\s<>\"(),;:\[\]]+")
# The shapes nearly every address header has — `addr`, `<addr>`, `Name <addr>`, `"Name" <addr>`
# with a dot-atom address and a name of plain words or one quoted string without escapes —
# read without email.utils' tokenizer (a tenth of parsing a mailbox). For these shapes it
# returns exactly the (name, address) `parseaddr` does; anything else goes to `parseaddr`.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_SIMPLE_ADDRESS = re.compile(
    rf"[ \t]*(?:(?:\"(?P<quoted>[^\"\\\r\n]*)\"|(?P<words>{_ATEXT}+(?: {_ATEXT}+)*))[ \t]*)?<(?P<bracketed>{_DOT_ATOM})>[ \t]*"
    rf"|[ \t]*(?P<bare>{_DOT_ATOM})[ \t]*"
)


def _simple_address(text: str) -> tuple[str, str] | None:
    """What `email.utils.parseaddr(text)` returns, for the common shapes; None for the others."""
    simple = _SIMPLE_ADDRESS.fullmatch(text)
    if simple is None:
        return None
    if simple["bare"]:
        return "", simple["bare"]
    return simple["quoted"] if simple["quoted"] is not None else simple["words"] or "", simple["bracketed"]


def _address(raw_value: object) -> tuple[str, str]:
    """(display name decoded, address lower-cased) from one address header."""
    if raw_value is None:
        return "", ""
    text = _unfold(_restore_bytes(str(raw_value)))
    name, address = "", ""
    try:
        name, address = _simple_address(text) or parseaddr(text)
    except Exception:
        pass
    if "@" not in address:
        match = _BARE_ADDRESS.search(text)
        if match:
            address = match.group(0)
    address = strip_control(address).strip().strip("<>").strip().lower()
    name = decode_header_value(name) if name else ""
    if not name and "@" in address:
        # "=?utf-8?q?Jos=C3=A9?= <jose@x>" confuses parseaddr when the word holds specials.
        before = text.split("<", 1)[0] if "<" in text else ""
        name = decode_header_value(before).strip().strip('"').strip()
    return name.strip().strip('"').strip(), address


def _address_list(values: list[object]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    texts = [_unfold(_restore_bytes(str(v))) for v in values if v is not None]
    try:
        simple = [_simple_address(text) for text in texts]
        pairs = simple if all(simple) else getaddresses(texts)
    except Exception:
        pairs = [("", m) for t in texts for m in _BARE_ADDRESS.findall(t)]
    for _, address in pairs:
        address = strip_control(address).strip().strip("<>").strip().lower()
        if address and " " not in address:
            found[address] = None
    return tuple(found)


_BRACKETED_ID = re.compile(r"<([^<>]*)>")


def _message_id(value: object) -> str:
    """The Message-ID as sent, without angle brackets and surrounding space."""
    if value is None:
        return ""
    text = strip_control(_unfold(_restore_bytes(str(value)))).strip()
    match = _BRACKETED_ID.search(text)
    if match and match.group(1).strip():
        return match.group(1).strip()
    return text.strip("<> \t")


def _id_list(value: object) -> list[str]:
    if value is None:
        return []
    text = strip_control(_unfold(_restore_bytes(str(value))))
    ids = [i.strip() for i in _BRACKETED_ID.findall(text) if i.strip()]
    if not ids:  # some clients drop the brackets
        ids = [t.strip("<>,;") for t in text.split() if "@" in t]
    return [i for i in ids if i]


# --- classification --------------------------------------------------------------------------

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


def _first_token(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


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


# --- the MIME tree ---------------------------------------------------------------------------


def _walk(msg: Message) -> Iterator[tuple[Message, int, str | None]]:
    """Every part with its depth and content type (None when it cannot be read), iteratively
    and bounded (Message.walk recurses)."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        try:
            ctype = part.get_content_type()
        except Exception:
            ctype = None
        yield part, depth, ctype
        # Attached messages are attachments, not part of this message's body.
        if depth >= _MAX_DEPTH or ctype is None or not ctype.startswith("multipart/"):
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in reversed(payload) if isinstance(child, Message))


def _safe(call: Callable[[], object], default: object = None) -> object:
    try:
        return call()
    except Exception:
        return default


def _part_bytes(part: Message) -> bytes:
    """A leaf part's decoded payload (base64/QP undone), or its serialised form for messages."""
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    inner = part.get_payload()
    if isinstance(inner, list):  # message/rfc822, message/delivery-status: parsed sub-messages
        chunks = []
        for sub in inner:
            if isinstance(sub, Message):
                try:
                    chunks.append(sub.as_bytes(policy=compat32))
                except Exception:
                    chunks.append(str(sub).encode("utf-8", "surrogateescape"))
        return b"\n".join(chunks)
    if isinstance(inner, str):
        return inner.encode("utf-8", "surrogateescape")
    return b""


def _part_text(part: Message) -> str:
    data = _part_bytes(part)
    charset = _safe(part.get_content_charset)
    return decode_bytes(data, charset if isinstance(charset, str) else None)


def _filename(part: Message) -> str:
    # With 8-bit bytes in the parameter, compat32 hands back U+FFFD for each: re-read the
    # parameters from the stored headers, decoded as `decode_bytes` would.
    raw = [(k, v) for k, v in part.raw_items() if str(k).lower() in ("content-disposition", "content-type")]
    if not any("name" in str(v).lower() for _, v in raw):
        return ""  # neither filename= nor name= (nor their RFC 2231 forms): most parts, cheaply
    if any(any("\udc80" <= c <= "\udcff" for c in str(v)) for _, v in raw):
        clean = Message()
        for key, value in raw:
            clean[key] = _restore_bytes(str(value))
        part = clean
    name = _safe(part.get_filename)
    if not name:
        name = _safe(lambda: part.get_param("name"))
    if isinstance(name, tuple):  # an RFC 2231 value email.utils did not collapse
        name = _safe(lambda: email.utils.collapse_rfc2231_value(name), "")
    if not isinstance(name, str) or not name.strip():
        return ""
    return decode_header_value(name)


def _disposition(part: Message) -> str:
    value = part.get("Content-Disposition")
    if value is None:
        return ""
    return _first_token(str(value))


def _truncate(text: str) -> str:
    if len(text) <= MAX_BODY_CHARS:
        return text
    hidden = len(text) - MAX_BODY_CHARS
    return (
        text[:MAX_BODY_CHARS]
        + f"\n\n[agentdesk: message truncated, {hidden} more characters not shown; "
        "the original is kept in full]"
    )


def _attachment_name(part: Message, ctype: str, index: int) -> str:
    name = _filename(part)
    if not name and ctype in ("message/rfc822", "message/global"):
        sub = part.get_payload()
        if isinstance(sub, list) and sub and isinstance(sub[0], Message):
            subject = decode_header_value(_raw(sub[0], "Subject"))
            name = f"{subject[:80]}.eml" if subject else ""
    if not name:
        extension = {
            "message/rfc822": ".eml",
            "message/delivery-status": ".txt",
            "text/rfc822-headers": ".txt",
            "message/disposition-notification": ".txt",
            "message/feedback-report": ".txt",
        }.get(ctype) or (mimetypes.guess_extension(ctype) or ".bin")
        base = ctype.split("/", 1)[-1] if ctype.startswith(("message/", "text/")) else "attachment"
        name = f"{base}-{index}{extension}"
    return safe_filename(name)


# --- the public API --------------------------------------------------------------------------


def parse_message(
    raw: bytes,
    *,
    source: str,
    received_at: datetime,
    channel: str = "email",
) -> InboundMessage:
    """One RFC 5322 message as an `InboundMessage`; never raises.

    `received_at` is the mailbox's own time for the message (IMAP INTERNALDATE) and is kept as
    given (a naive value is taken as UTC). Whatever cannot be read is left empty and explained
    in `parse_error`; `raw` is always the input, unchanged.
    """
    if not isinstance(raw, bytes):
        try:
            raw = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
        except Exception:
            raw = b""
    if isinstance(received_at, datetime) and received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=timezone.utc)
    errors: list[str] = []
    fields: dict[str, object] = {}
    try:
        _parse_into(fields, errors, raw)
    except Exception as exc:  # the last line of "never raises"
        errors.append(f"message: {type(exc).__name__}: {exc}")
    external_id = str(fields.pop("external_id", "") or "") or "sha256:" + hashlib.sha256(raw).hexdigest()
    try:
        return InboundMessage(
            source=source,
            channel=channel,
            external_id=external_id,
            sender_address=str(fields.pop("sender_address", "")),
            sender_name=str(fields.pop("sender_name", "")),
            received_at=received_at,
            raw=raw,
            parse_error="; ".join(errors)[:2_000],
            content_hash=email_content_hash(raw) if raw and channel == "email" else "",
            **fields,  # type: ignore[arg-type]
        )
    except Exception as exc:
        return InboundMessage(
            source=source,
            channel=channel,
            external_id=external_id,
            sender_address="",
            sender_name="",
            received_at=received_at,
            raw=raw,
            parse_error=f"record: {type(exc).__name__}: {exc}",
        )


def _parse_into(fields: dict[str, object], errors: list[str], raw: bytes) -> None:
    def step(name: str, call: Callable[[], object]) -> object:
        try:
            return call()
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            return None

    msg = step("structure", lambda: email.message_from_bytes(raw, policy=compat32))
    if not isinstance(msg, Message):
        # Too broken (or too deep) to parse as MIME: keep what the header block says.
        msg = step(
            "headers-only",
            lambda: email.parser.BytesParser(policy=compat32).parsebytes(raw, headersonly=True),
        )
        if not isinstance(msg, Message):
            fields["body_text"] = _truncate(strip_control(decode_bytes(raw, None)))
            return
        fields["body_text"] = _truncate(
            strip_control(decode_bytes(raw.split(b"\n\n", 1)[-1], None)).strip()
        )

    headers: dict[str, str] = {}
    for key in KEPT_HEADERS:
        value = _raw(msg, key)
        if value is not None:
            decoded = step(key, lambda v=value: decode_header_value(v))
            if decoded is not None:
                headers[key] = decoded[:_MAX_HEADER_CHARS]
    if "return-path" in headers:
        # "<>" is what marks a bounce-like message; keep it exactly, but unwrap a real address.
        headers["return-path"] = headers["return-path"].strip()

    fields["external_id"] = step("message-id", lambda: _message_id(_raw(msg, "Message-ID"))) or ""
    fields["subject"] = step("subject", lambda: decode_header_value(_raw(msg, "Subject"))) or ""

    sender = step("from", lambda: _address(_raw(msg, "From"))) or ("", "")
    name, address = sender
    if not address:
        for header in ("Sender", "Return-Path"):
            fallback = step(header.lower(), lambda h=header: _address(_raw(msg, h))) or ("", "")
            if fallback[1]:
                address = fallback[1]
                name = name or fallback[0]
                break
    fields["sender_name"], fields["sender_address"] = name, address

    fields["recipients"] = step(
        "recipients", lambda: _address_list(_raw_all(msg, "To") + _raw_all(msg, "Cc"))
    ) or ()
    parents = step("in-reply-to", lambda: _id_list(_raw(msg, "In-Reply-To"))) or []
    fields["in_reply_to"] = parents[0] if parents else ""
    references = step("references", lambda: _id_list(_raw(msg, "References"))) or []
    fields["references"] = tuple(dict.fromkeys(references))

    body = step("body", lambda: _read_body(msg, errors))
    content_types: list[str] = []
    if body is not None:
        text, html_text, attachments, content_types = body
        if "body_text" not in fields or text or html_text:
            fields["body_text"] = _truncate(text or html_text)
        fields["body_html_text"] = _truncate(html_text)
        fields["attachments"] = tuple(attachments)

    classified = step(
        "classification",
        lambda: _classify(
            msg,
            headers,
            str(fields.get("subject", "")),
            address,
            name,
            str(fields.get("body_text", "")),
            content_types,
        ),
    )
    if classified:
        fields["kind"], fields["bulk"] = classified
    if fields.get("kind") == "bounce":
        original = step("bounced message-id", lambda: _bounced_id(msg))
        if original:
            headers["x-bounced-message-id"] = original
        reason = step("bounce reason", lambda: bounce_reason(msg))
        if reason:
            headers["x-bounce-reason"] = reason[:_MAX_HEADER_CHARS]
    fields["headers"] = headers


def _read_body(
    msg: Message, errors: list[str]
) -> tuple[str, str, list[InboundAttachment], list[str]]:
    """(text, html as text, attachments, content types in tree order) of a parsed message."""
    plain: str | None = None
    html: str | None = None
    fallback_text: str | None = None
    attachments: list[InboundAttachment] = []
    content_types: list[str] = []
    for index, (part, _depth, ctype) in enumerate(_walk(msg)):
        ctype = ctype or "application/octet-stream"
        content_types.append(ctype)
        if ctype.startswith("multipart/"):
            payload = part.get_payload()
            if isinstance(payload, str) and fallback_text is None:
                # A multipart without a usable boundary: its text is all there is to read.
                fallback_text = _part_text(part)
            continue
        try:
            filename = _filename(part)
            disposition = _disposition(part)
            is_attachment = bool(filename) or disposition == "attachment"
            if not is_attachment and ctype == "text/plain" and plain is None:
                plain = _part_text(part)
                continue
            if not is_attachment and ctype == "text/html" and html is None:
                html = _part_text(part)
                continue
            if not is_attachment and ctype in ("text/plain", "text/html"):
                continue  # further alternatives of a body already read
            data = _part_bytes(part)
            if fallback_text is None and (
                ctype in ("message/delivery-status", "text/rfc822-headers") or ctype.startswith("text/")
            ):
                fallback_text = decode_bytes(data, _safe(part.get_content_charset))
            attachments.append(
                InboundAttachment(
                    filename=_attachment_name(part, ctype, len(attachments) + 1),
                    content_type=ctype,
                    data=data,
                )
            )
        except Exception as exc:
            errors.append(f"part {index} ({ctype}): {type(exc).__name__}: {exc}")
    html_text = ""
    if html:
        html_text = html_to_text(html)
    text = strip_control(plain).strip("\n") if plain else ""
    if not text and not html_text and fallback_text:
        text = strip_control(fallback_text).strip("\n")
    return text, html_text, attachments, content_types


# --- bounces ---------------------------------------------------------------------------------

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


# --- batches, for the sync's parser processes ------------------------------------------------------

UNKNOWN_SENDER = "unknown-sender@invalid"


def ensure_sender(message: InboundMessage) -> InboundMessage:
    """A mail with no readable sender is still stored (flagged), under a placeholder address."""
    if message.sender_address:
        return message
    note = "no sender address could be read; stored under " + UNKNOWN_SENDER
    return dataclasses.replace(
        message, sender_address=UNKNOWN_SENDER,
        parse_error="; ".join(filter(None, [message.parse_error, note])),
    )


def ready() -> None:
    """Nothing: the sync submits it to start its parser processes (importing this module) early."""


def parse_fetched(items: Sequence[tuple[int, datetime, bytes]], source: str) -> list[tuple[int, InboundMessage]]:
    """Parse fetched mail: (uid, internal date, raw) -> (uid, message). Lives here, not in sync.py,
    so a parser process started with "spawn" imports this module alone (not the database layer)."""
    return [(uid, ensure_sender(parse_message(raw, source=source, received_at=date))) for uid, date, raw in items]
