"""A conversation's attachments: list them, save one to a directory, open one with the desktop's
opener. The CLI (`agentdesk attachment …`) and the TUI's thread keys both act through these.

A sender's name for a file is display text: saved or opened, a file gets a name made safe here
(`save_name`), created inside the chosen directory only, never over an existing file.
Attachments are numbered across the thread from 1, in the order `show` prints messages.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentdesk.app.desk import Desk
from agentdesk.errors import AgentdeskError, InvalidInput, NotFound
from agentdesk.sanitize import inert_line, safe_filename
from agentdesk.store import attachments as attachment_store
from agentdesk.store import queries
from agentdesk.store.models import id_of, ref_of

log = logging.getLogger("agentdesk.attachments")

Ref = int | str
__all__ = ["Listed", "list_attachments", "save", "open_attachment", "preview_text", "save_name", "size_text"]

NOT_KEPT = "not kept (received before attachments were stored)"


def size_text(size: int) -> str:
    """A size as ingest words its limits: `12.5 KiB`."""
    # Imported on use: the ingest package loads its whole path (MIME, threading, batches) with it,
    # which the TUI's start and `attachment list` have no need of.
    from agentdesk.ingest.attachments import size_text as ingest_size_text

    return ingest_size_text(size)


# Names Windows reserves whatever the extension; a file saved to a shared or synced folder may meet it.
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\..*)?$", re.IGNORECASE)
_UNPORTABLE = re.compile(r'[<>:"|?*]')
_MAX_NAME_BYTES = 200  # room for " (999)" under the common 255-byte limit of a file name
_PREVIEW_CHARS = 200_000
_OPENED_KEEP_SECONDS = 24 * 3600
_OPENER_ANSWERS_SECONDS = 1.0


@dataclass(frozen=True)
class Listed:
    """One attachment as `attachment list` shows it."""

    number: int  # across the thread, from 1
    message_number: int  # the message's number in `show`
    filename: str  # the sender's name, display only
    content_type: str
    size: int
    sha256: str
    state: str  # stored | withheld | failed | in_raw | legacy
    reason: str
    url: str
    message_id: int
    attachment_id: int

    @property
    def available(self) -> bool:
        """Whether its bytes can be had (kept, or taken from the raw message on first use)."""
        return self.state in ("stored", "in_raw", "legacy")

    @property
    def status(self) -> str:
        """A few words for a person: empty when kept."""
        if self.state == "withheld":
            return f"withheld: {self.reason}" if self.reason else "withheld"
        if self.state == "failed":
            return self.reason or "download failed"
        if self.state == "legacy":
            return "received before attachments were stored"
        return ""

    def document(self) -> dict[str, Any]:
        return {
            "n": self.number,
            "message": self.message_number,
            "name": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256 or None,
            "state": self.state,
            "reason": self.reason,
            "url": self.url or None,
        }


def _conversation_id(ref: Ref) -> int:
    return ref if isinstance(ref, int) else queries.parse_ref(ref)


def numbered(messages: Sequence[Any], files: dict[int, list[Any]]) -> dict[int, tuple[Listed, ...]]:
    """Each message's attachments (rows of `queries.attachments_of`), numbered across the thread:
    `messages` in the order `show` prints them."""
    found: dict[int, tuple[Listed, ...]] = {}
    number = 0
    for message_number, message in enumerate(messages, start=1):
        items = []
        for a in files.get(message.id, []):
            number += 1
            items.append(
                Listed(
                    number,
                    message_number,
                    a.filename,
                    a.content_type,
                    a.size,
                    a.storage_key,
                    a.state,
                    a.reason,
                    a.url,
                    message.id,
                    a.id,
                )
            )
        if items:
            found[message.id] = tuple(items)
    return found


def list_attachments(desk: Desk, ref: Ref) -> list[Listed]:
    conversation_id = _conversation_id(ref)
    with desk.read() as session:
        queries.conversation_by_ref(session=session, ref=ref_of(conversation_id))
        messages = queries.thread(session=session, conversation_id=conversation_id)
        files = queries.attachments_of(session=session, message_ids=[id_of(m) for m in messages])
    return [item for items in numbered(messages, files).values() for item in items]


def by_message(listed: list[Listed]) -> dict[int, list[Listed]]:
    found: dict[int, list[Listed]] = {}
    for item in listed:
        found.setdefault(item.message_id, []).append(item)
    return found


def one(desk: Desk, ref: Ref, number: int) -> Listed:
    listed = list_attachments(desk, ref)
    if not listed:
        raise NotFound(f"{ref_of(_conversation_id(ref))} has no attachments")
    if not 1 <= number <= len(listed):
        raise NotFound(
            f"{ref_of(_conversation_id(ref))} has no attachment {number}; "
            f"it has {len(listed)} (`agentdesk attachment list` numbers them)"
        )
    return listed[number - 1]


def content(desk: Desk, item: Listed) -> bytes:
    """The attachment's bytes; a clear error when they were not kept."""
    if item.state == "withheld":
        raise AgentdeskError(f"attachment {item.number} ({item.filename}) was not kept: {item.status}")
    if item.state == "failed":
        where = f"; its link: {item.url}" if item.url else ""
        raise AgentdeskError(f"attachment {item.number} ({item.filename}) was not downloaded: {item.reason}{where}")
    damaged = False
    data: bytes | None
    with desk.read() as session:
        if item.sha256 and attachment_store.has(session=session, key=item.sha256):
            data = attachment_store.read(session=session, key=item.sha256)
            if hashlib.sha256(data).hexdigest() == item.sha256:
                return data
            damaged = True  # on disk (a crash of the host, a hand edit): taken again from the raw message
        raw = attachment_store.raw_of(session=session, message_id=item.message_id)
    data = _from_raw(raw, item.sha256) if raw else None
    if data is None:
        if item.state == "stored":
            raise AgentdeskError(
                f"attachment {item.number} ({item.filename}) is missing from the attachment "
                "store; `agentdesk doctor` checks the store's directory"
            )
        raise AgentdeskError(f"attachment {item.number} ({item.filename}) was {NOT_KEPT}")
    with desk.write() as session:
        # Taken from the raw message once; kept like any other from now on.
        if damaged:
            attachment_store.discard(session=session, key=item.sha256)
        attachment_store.put(session=session, data=data)
        attachment_store.mark_stored(session=session, attachment_ids=[item.attachment_id])
        session.commit()
    return data


def keep_from_raw(desk: Desk, ref: Ref, message_ids: Sequence[int] | None = None) -> None:
    """Take out of their raw mail, and keep, the conversation's files (of `message_ids` only, when
    given) that are still only in it (a mail too big to parse whole at sync), as opening one does:
    a forward sends files from the store. Each raw mail is parsed once, however many of its files
    wait in it. A file not found there, or a mail that will not parse, stays as it was (a forward
    names such a file as not included)."""
    waiting = [
        item
        for item in list_attachments(desk, ref)
        if item.state == "in_raw" and item.sha256 and (message_ids is None or item.message_id in message_ids)
    ]
    for message_id, items in by_message(waiting).items():
        with desk.read() as session:
            raw = attachment_store.raw_of(session=session, message_id=message_id)
        try:
            found = _all_from_raw(raw) if raw else {}
        except Exception as error:  # a mail the parser cannot read whole: its files stay in it
            log.warning(
                "files of message %s could not be taken from its raw mail: %s", message_id, inert_line(str(error))
            )
            continue
        kept = [(item, found[item.sha256]) for item in items if item.sha256 in found]
        if not kept:
            continue
        with desk.write() as session:
            for _, data in kept:
                attachment_store.put(session=session, data=data)
            attachment_store.mark_stored(session=session, attachment_ids=[item.attachment_id for item, _ in kept])
            session.commit()


def _all_from_raw(raw: bytes) -> dict[str, bytes]:
    """Every attachment of a stored mail by its sha256, parsed whole (not bounded as at sync)."""
    from agentdesk.channels.email.mime import attachments_of_raw

    return {hashlib.sha256(a.data).hexdigest(): a.data for a in attachments_of_raw(raw)}


def _from_raw(raw: bytes, sha256: str) -> bytes | None:
    """The attachment with this digest in a stored mail, parsed whole (not bounded as at sync)."""
    return _all_from_raw(raw).get(sha256) if sha256 else None


# --- names and places ------------------------------------------------------------------------------


def save_name(name: str) -> str:
    """A sender's name for a file made safe to create: one component (no path), no control,
    format or bidi character, no leading dot, no name Windows reserves, no character other
    systems refuse, at most `_MAX_NAME_BYTES` of UTF-8 with its extension kept."""
    text = safe_filename(name or "", fallback="attachment")
    text = _UNPORTABLE.sub("_", text)
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C").strip().lstrip(".").strip()
    if not text or text in (".", ".."):
        text = "attachment"
    if _RESERVED.match(text):
        text = "_" + text
    if len(text.encode("utf-8")) > _MAX_NAME_BYTES:
        stem, dot, extension = text.rpartition(".")
        extension = extension if dot and stem and len(extension.encode()) <= 16 else ""
        stem = stem if extension else text
        room = _MAX_NAME_BYTES - len(extension.encode()) - 1 - len("….".encode())
        stem = stem.encode("utf-8")[: max(room, 1)].decode("utf-8", "ignore").rstrip()
        text = f"{stem}…{'.' + extension if extension else ''}"
    return text


def _numbered(name: str, n: int) -> str:
    if n == 0:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and stem:
        return f"{stem} ({n}).{extension}"
    return f"{name} ({n})"


def write_new_file(directory: Path, name: str, data: bytes, *, mode: int = 0o666) -> Path:
    """Create `name` (or `name (1)`, `name (2)` …) in `directory` and write `data`; never replaces
    a file, never follows a link, never lands outside `directory`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidInput(f"{directory} is not a directory; create it or choose another directory")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for n in range(1000):
        candidate = directory / _numbered(name, n)
        if candidate.parent != directory or os.sep in candidate.name:
            raise InvalidInput(f"refusing the file name {name!r}")  # cannot happen with save_name's names
        try:
            descriptor = os.open(candidate, flags, mode)
        except FileExistsError:
            continue
        except PermissionError:
            raise InvalidInput(f"cannot write in {directory}: permission denied") from None
        try:
            with os.fdopen(descriptor, "wb") as out:
                out.write(data)
        except BaseException:
            candidate.unlink(missing_ok=True)
            raise
        return candidate
    raise InvalidInput(f"{directory} already holds {name} and 999 numbered copies of it")


def default_save_dir(desk: Desk) -> Path:
    configured = desk.settings.attachments.save_dir
    if configured:
        return Path(os.path.expanduser(configured))
    downloads = Path.home() / "Downloads"
    return downloads if downloads.is_dir() else Path.home()


def save(desk: Desk, ref: Ref, number: int, directory: Path | str | None = None) -> tuple[Listed, Path]:
    """Write attachment `number` into `directory` (default: the current directory) under a safe
    name; returns it and the path written."""
    item = one(desk, ref, number)
    data = content(desk, item)
    target = Path(os.path.expanduser(str(directory))) if directory else Path.cwd()
    return item, write_new_file(target, save_name(item.filename), data)


# --- opening ---------------------------------------------------------------------------------------


def opener_command(desk: Desk) -> list[str]:
    """The configured opener, else xdg-open, else $BROWSER; InvalidInput when there is none."""
    configured = desk.settings.attachments.opener
    if configured:
        return shlex.split(configured)
    if shutil.which("xdg-open"):
        return ["xdg-open"]
    browser = os.environ.get("BROWSER", "").split(os.pathsep)[0].strip()
    if browser:
        return shlex.split(browser)
    raise InvalidInput(
        "no program to open files with: set [attachments] opener in the config "
        '(e.g. opener = "xdg-open"), install xdg-utils, or set $BROWSER; '
        "`agentdesk attachment save` writes the file instead"
    )


def _private_dir() -> Path:
    """A fresh directory only this user can read, under one per-user parent; copies handed to
    openers are kept a day (the opener may read the file long after it returns), then pruned."""
    parent = Path(tempfile.gettempdir()) / f"agentdesk-{os.getuid()}"
    parent.mkdir(mode=0o700, exist_ok=True)
    if parent.is_symlink() or parent.stat().st_uid != os.getuid():
        raise AgentdeskError(f"{parent} is not this user's own directory; remove it and try again")
    os.chmod(parent, 0o700)
    cutoff = time.time() - _OPENED_KEEP_SECONDS
    for old in parent.glob("open-*"):
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix="open-", dir=parent))


def open_attachment(desk: Desk, ref: Ref, number: int) -> tuple[Listed, Path]:
    """Hand a private, safely named copy of attachment `number` to the opener (which runs on its
    own; we do not wait for it); returns it and the copy's path."""
    item = one(desk, ref, number)
    command = opener_command(desk)
    data = content(desk, item)
    copy = write_new_file(_private_dir(), save_name(item.filename), data, mode=0o600)
    # What the opener says goes to a file beside the copy, not to a pipe: a viewer that keeps
    # running after we stop listening must not die of a closed pipe.
    said = copy.parent / ".opener-said"
    with open(said, "wb") as errors:
        try:
            opener = subprocess.Popen(
                [*command, str(copy)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
            )
        except OSError as error:
            raise InvalidInput(
                f"cannot run the opener `{shlex.join(command)}`: {error.strerror or error}; "
                "set [attachments] opener in the config"
            ) from None
    # xdg-open and most openers hand the file to a viewer and end at once, saying by their exit
    # status whether one took it; others are the viewer and run on. Wait a moment for the first.
    try:
        status = opener.wait(timeout=_OPENER_ANSWERS_SECONDS)
    except subprocess.TimeoutExpired:
        return item, copy  # still running: the viewer itself, on its own from here
    if status != 0:
        last = next((line for line in reversed(said.read_text(errors="replace").splitlines()) if line.strip()), "")
        raise AgentdeskError(
            f"the opener `{shlex.join(command)}` could not open {save_name(item.filename)} (exit status {status}"
            + (f": {inert_line(last)[:200]}" if last else "")
            + "); set [attachments] opener in the config, or `agentdesk attachment save` writes the file instead"
        )
    return item, copy


def preview_text(desk: Desk, ref: Ref, number: int) -> tuple[Listed, str] | None:
    """The text of a text attachment for an inline preview (bounded), or None when it is not text."""
    item = one(desk, ref, number)
    if not is_text(item):
        return None
    data = content(desk, item)[: _PREVIEW_CHARS * 4]
    from agentdesk.sanitize import strip_control

    text = data.decode("utf-8", "replace")
    cut = len(text) > _PREVIEW_CHARS
    return item, strip_control(text[:_PREVIEW_CHARS]) + ("\n…" if cut else "")


def is_text(item: Listed) -> bool:
    return item.content_type.startswith("text/") or item.content_type in (
        "application/json",
        "application/xml",
        "message/rfc822",
        "message/delivery-status",
        "text/rfc822-headers",
    )
