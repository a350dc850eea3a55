"""Spool directories: the Maildir discipline that webhook payloads are written and read by.

Layout of a spool (DESIGN, config contract):

    tmp/       writers create files here ...
    new/       ... and rename them here when complete; agentdesk reads only this directory
    cur/       files whose messages are stored (or that were handled: status callbacks, ignored events)
    rejected/  files that cannot be accepted, each with `<name>.error` saying exactly why

A file is `*.json` (a JSON payload as delivered) or `*.http` (`Content-Type: …` CRLF CRLF and the
raw body, for form and multipart payloads). `agentdesk.sync.sources.spool` stores what is in
`new/`, exactly once.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from agentdesk.channels.webhook.adapters import Payload, Rejected

SUBDIRS = ("tmp", "new", "cur", "rejected")
EXTENSIONS = (".json", ".http")
ERROR_SUFFIX = ".error"
RETRIED_DIR = "retried"  # rejected/retried/: sidecars of rejections that were retried (kept, not deleted)
LOCK_FILE = ".agentdesk.lock"

_HOST = socket.gethostname().replace("/", "_").replace(":", "_").replace(".", "_") or "localhost"
_COUNTER = itertools.count()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --- writing: the Maildir discipline -----------------------------------------------------------


def ensure_spool(path: Path) -> None:
    for sub in SUBDIRS:
        (path / sub).mkdir(parents=True, exist_ok=True)


def unique_name(extension: str) -> str:
    """A Maildir-style name unique across time, processes, threads and hosts."""
    return f"{time.time_ns()}.P{os.getpid()}Q{next(_COUNTER)}R{secrets.token_hex(4)}.{_HOST}{extension}"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def spool_bytes(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The file content and extension for a payload: JSON as delivered, anything else as *.http."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return body, ".json"
    header = f"Content-Type: {content_type.strip() or 'application/octet-stream'}\r\n\r\n"
    return header.encode("latin-1", "replace") + body, ".http"


def write_file(path: Path, data: bytes, *, extension: str = ".json", name: str | None = None,
               durable: bool = True) -> str:
    """Write `data` into `path/tmp/`, fsync it, rename it into `path/new/`, fsync `new/`.

    Returns the file name. When this returns, the file survives a power cut (with `durable`).
    """
    name = name or unique_name(extension)
    temporary = path / "tmp" / name
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temporary)  # never acknowledged, so never anyone's data
        raise
    os.close(fd)
    os.rename(temporary, path / "new" / name)
    if durable:
        fsync_dir(path / "new")
    return name


def write_payload(path: Path, body: bytes, content_type: str, *, durable: bool = True) -> str:
    data, extension = spool_bytes(body, content_type)
    return write_file(path, data, extension=extension, durable=durable)


# --- reading -----------------------------------------------------------------------------------


def rejected_files(path: Path) -> list[tuple[str, str]]:
    """(file, reason) of every file in the spool's rejected/, oldest first; the reason is its sidecar."""
    folder = path / "rejected"
    if not folder.is_dir():
        return []
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix != ERROR_SUFFIX:
            sidecar = entry.with_name(entry.name + ERROR_SUFFIX)
            reason = sidecar.read_text(encoding="utf-8", errors="replace").strip() if sidecar.exists() else ""
            found.append((entry.name, reason))
    return found


def read_payload(file: Path, *, max_bytes: int) -> Payload:
    """The spool file as a Payload; Rejected with the exact reason when it cannot be one."""
    if file.suffix not in EXTENSIONS:
        raise Rejected(f"unknown file type {file.suffix or '(none)'!r}: spool files are *.json or *.http")
    stat = file.stat()
    if stat.st_size > max_bytes:
        raise Rejected(f"over the size limit: {stat.st_size} bytes > max_bytes {max_bytes}")
    data = file.read_bytes()
    written_at = datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc)
    if file.suffix == ".json":
        return Payload(file.name, "application/json", data, written_at)
    separator = data.find(b"\r\n\r\n")
    width = 4
    if separator < 0 or data.find(b"\n\n", 0, separator) >= 0:
        separator, width = data.find(b"\n\n"), 2
    if separator < 0:
        raise Rejected("*.http file without the blank line that ends its Content-Type header")
    content_type = ""
    for line in data[:separator].decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-type":
            content_type = value.strip()
    if not content_type:
        raise Rejected("*.http file without a Content-Type header line")
    return Payload(file.name, content_type, data[separator + width:], written_at)
