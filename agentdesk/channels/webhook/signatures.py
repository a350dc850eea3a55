"""The signatures a webhook post is checked against: agentdesk's HMAC-SHA256 of the body, and
Twilio's own X-Twilio-Signature (base64 HMAC-SHA1 of the public URL and the sorted form fields).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse


def agentdesk_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def twilio_signature(url: str, params: dict[str, list[str]], token: str) -> str:
    """Twilio's X-Twilio-Signature: base64 HMAC-SHA1 of the URL followed by each sorted key+value."""
    data = url
    for name in sorted(set(params)):
        for value in sorted(set(params[name])):
            data += name + value
    digest = hmac.new(token.encode("utf-8"), data.encode("utf-8", "surrogatepass"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def same(given: str, expected: str) -> bool:
    """Constant-time comparison of a client's signature with ours; any text, never a TypeError
    (hmac.compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def _url_variants(url: str) -> list[str]:
    """The URL as given, and with the default port added or removed (Twilio signs either form)."""
    parts = urllib.parse.urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    if parts.port is None and default:
        variants.append(urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}")))
    elif parts.port == default:
        variants.append(urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname or "")))
    return variants


def _twilio_params(
    url: str, body: bytes, content_type: str, body_sha256: str | None = None
) -> dict[str, list[str]] | None:
    """The fields Twilio signs beside the URL; None when the body does not match the URL's bodySHA256."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query, keep_blank_values=True)
    if "bodySHA256" in query:
        # JSON bodies: the URL (with its bodySHA256 parameter) is signed, the body is hashed.
        digest = body_sha256 if body_sha256 is not None else hashlib.sha256(body).hexdigest()
        return {} if same(query["bodySHA256"][0], digest) else None
    if content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            return urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return None
    return {}


def verify_twilio(
    url: str, body: bytes, content_type: str, signature: str, token: str, *, body_sha256: str | None = None
) -> bool:
    try:
        params = _twilio_params(url, body, content_type, body_sha256)
        return params is not None and any(
            same(signature, twilio_signature(candidate, params, token)) for candidate in _url_variants(url)
        )
    except ValueError:  # a Host or forwarded header that makes no URL (a bad port, a broken IPv6 literal)
        return False
