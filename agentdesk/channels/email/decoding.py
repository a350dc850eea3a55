"""Text out of what real mail sends: charsets as labelled (or mislabelled), header values.

Headers are read as compat32 stores them (8-bit bytes surrogate-escaped) and decoded here,
defensively: folded lines, RFC 2047 words with bad padding, unknown charset labels.
"""

from __future__ import annotations

import codecs
import re
from email.header import decode_header
from email.message import Message

from agentdesk.sanitize import strip_control

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


def _first_token(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()
