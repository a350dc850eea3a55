"""Webhook spool directories: what each holds, and re-ingesting the files it rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentdesk.app.desk import Desk
from agentdesk.errors import InvalidInput


def listing(settings) -> list[dict[str, Any]]:
    """Every configured spool with its file counts and its rejected files with their reasons."""
    from agentdesk.channels.webhook import spool as spooling
    from agentdesk.sanitize import printable

    rows = []
    for spool in settings.spool:
        path = settings.spool_path(spool)
        counts = {sub: _count(path / sub) for sub in ("new", "cur", "rejected")}
        # A file's name is whatever its writer chose: shown as `printable` writes it, like the
        # sync's log lines do, so the same file reads the same everywhere. The reason comes
        # from the sidecar reader already printable.
        rejected = [{"file": printable(name), "reason": reason} for name, reason in spooling.rejected_files(path)]
        stale = [
            {"file": printable(item.name), "bytes": item.size, "age_seconds": int(item.age)}
            for item in spooling.stale_tmp_files(path)
        ]
        rows.append(
            {
                "name": spool.name,
                "path": str(path),
                "adapter": spool.adapter,
                "kind": spool.kind,
                "new": counts["new"],
                "cur": counts["cur"],
                "rejected": rejected,
                "stale_tmp": stale,
            }
        )
    return rows


def clean(settings, name: str) -> dict[str, Any]:
    """Remove the files a dead writer left in spool `name`'s tmp/ (older than an hour)."""
    from agentdesk.channels.webhook import spool as spooling
    from agentdesk.sanitize import printable
    from agentdesk.sync.sources.spool import find_spool

    path = settings.spool_path(find_spool(settings, name))
    removed, kept = spooling.remove_stale_tmp_files(path)
    return {
        "spool": name,
        "path": str(path),
        "removed": [{"file": printable(item.name), "bytes": item.size} for item in removed],
        "kept": [{"file": printable(file), "reason": reason} for file, reason in kept],
    }


def _count(path: Path) -> int:
    try:
        return sum(1 for entry in path.iterdir() if entry.is_file() and not entry.name.startswith("."))
    except FileNotFoundError:
        return 0


def webhook_server(settings, *, host: str, port: int, public_url: str = "", quiet: bool = False):
    """The receiver of `webhook serve`, listening, and its endpoints (spool name -> endpoint)."""
    from agentdesk.channels.webhook import receiver

    if not settings.spool:
        raise InvalidInput("no [[spool]] in the config; `webhook serve` writes to spools, so configure one first")
    endpoints = receiver.endpoints_from_settings(settings)
    if not any(endpoint.secret for endpoint in endpoints.values()):
        raise InvalidInput(
            "no spool has a secret_command; `webhook serve` refuses unauthenticated posts, "
            "so set secret_command on the spools it should accept"
        )
    try:
        server = receiver.make_server(
            endpoints, host=host, port=port, public_url=public_url, log=None if quiet else receiver.stderr_log
        )
    except OSError as error:
        raise InvalidInput(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return server, endpoints


def retry(desk: Desk, name: str):
    """Re-ingest spool `name`'s rejected files: (the spool source, how many were retried, the result)."""
    from agentdesk.sync.base import SyncContext
    from agentdesk.sync.sources.spool import spool_sources

    (source,) = spool_sources(SyncContext(desk.settings, desk.engine, desk.policies), only=name)
    before = source.rejected()
    return source, len(before), source.retry()
