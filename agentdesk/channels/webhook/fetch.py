"""Downloading a webhook payload's linked (URL) attachments, bounded.

Providers such as Twilio and Chatwoot (and the generic format's `url`) send a link instead of the
bytes. The sync's spool source downloads each before ingest — never the TUI, never the adapter —
over http or https only (a redirect elsewhere is refused), within one deadline for the connection
and the transfer together, reading at most the per-file cap. A link that cannot be fetched does
not cost the message: the attachment is recorded as failed (or withheld, over the cap) with the
reason, and the message is stored as always.
"""

from __future__ import annotations

import dataclasses
import time
import urllib.error
import urllib.parse
import urllib.request

from agentdesk.channels.base import InboundAttachment, InboundMessage
from agentdesk.config import AttachmentSettings

_SCHEMES = ("http", "https")
_BLOCK = 64 * 1024


class DownloadFailed(Exception):
    def __init__(self, reason: str, *, withheld: bool = False, size: int = 0):
        super().__init__(reason)
        self.reason = reason
        self.withheld = withheld
        self.size = size


class _OnlyWebRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme.lower() not in _SCHEMES:
            raise DownloadFailed(
                f"redirected to a {urllib.parse.urlsplit(newurl).scheme or 'relative'} URL; "
                "only http and https are fetched"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_OnlyWebRedirects)


def download(url: str, *, max_bytes: int, timeout: float) -> tuple[bytes, str]:
    """The bytes at `url` and the server's content type; DownloadFailed with the reason otherwise."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise DownloadFailed(f"not downloaded: only http and https links are fetched, not {scheme or 'this'}")
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": "agentdesk", "Accept-Encoding": "identity"})
    try:
        with _opener.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise DownloadFailed(
                    f"{int(declared)} bytes, over the {max_bytes}-byte limit per file ([attachments] max_file_bytes)",
                    withheld=True,
                    size=int(declared),
                )
            chunks, size = [], 0
            while True:
                if time.monotonic() > deadline:
                    raise DownloadFailed(f"download timed out after {timeout:g} s")
                chunk = response.read1(_BLOCK)  # what has arrived: the deadline is checked between reads
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise DownloadFailed(
                        f"more than {max_bytes} bytes, over the limit per file ([attachments] max_file_bytes)",
                        withheld=True,
                        size=size,
                    )
                chunks.append(chunk)
            content_type = response.headers.get_content_type() if response.headers.get("Content-Type") else ""
            return b"".join(chunks), content_type
    except DownloadFailed:
        raise
    except urllib.error.HTTPError as error:
        raise DownloadFailed(f"download failed: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise DownloadFailed(f"download timed out after {timeout:g} s") from None
        raise DownloadFailed(f"download failed: {reason}") from None
    except TimeoutError:
        raise DownloadFailed(f"download timed out after {timeout:g} s") from None
    except (OSError, ValueError) as error:
        raise DownloadFailed(f"download failed: {type(error).__name__}: {error}") from None


def _fetched(attachment: InboundAttachment, caps: AttachmentSettings) -> InboundAttachment:
    try:
        data, served_type = download(attachment.url, max_bytes=caps.max_file_bytes, timeout=caps.download_timeout)
    except DownloadFailed as failure:
        return dataclasses.replace(attachment, failure=failure.reason, withheld=failure.withheld, size=failure.size)
    content_type = attachment.content_type
    if content_type == "application/octet-stream" and served_type:
        content_type = served_type
    return dataclasses.replace(attachment, data=data, content_type=content_type)


def with_downloads(message: InboundMessage, caps: AttachmentSettings) -> InboundMessage:
    """`message` with its linked attachments' bytes (or each one's reason why not)."""
    if not caps.download or not any(a.url and not a.data and not a.failure for a in message.attachments):
        return message
    attachments = tuple(_fetched(a, caps) if a.url and not a.data and not a.failure else a for a in message.attachments)
    return dataclasses.replace(message, attachments=attachments)
