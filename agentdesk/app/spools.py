"""Webhook spool directories: what each holds, and re-ingesting the files it rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentdesk.app.desk import Desk


def listing(settings) -> list[dict[str, Any]]:
    """Every configured spool with its file counts and its rejected files with their reasons."""
    from agentdesk.channels.webhook import spool as spooling

    rows = []
    for spool in settings.spool:
        path = settings._resolve(spool.path)
        counts = {sub: _count(path / sub) for sub in ("new", "cur", "rejected")}
        rejected = []
        folder = path / "rejected"
        if folder.is_dir():
            for entry in sorted(folder.iterdir()):
                if entry.is_file() and entry.suffix != spooling.ERROR_SUFFIX:
                    sidecar = entry.with_name(entry.name + spooling.ERROR_SUFFIX)
                    reason = sidecar.read_text(encoding="utf-8", errors="replace").strip() if sidecar.exists() else ""
                    rejected.append({"file": entry.name, "reason": reason})
        rows.append({"name": spool.name, "path": str(path), "adapter": spool.adapter, "kind": spool.kind,
                     "new": counts["new"], "cur": counts["cur"], "rejected": rejected})
    return rows


def _count(path: Path) -> int:
    try:
        return sum(1 for entry in path.iterdir() if entry.is_file() and not entry.name.startswith("."))
    except FileNotFoundError:
        return 0


def retry(desk: Desk, name: str):
    """Re-ingest spool `name`'s rejected files: (the spool source, how many were retried, the result)."""
    from agentdesk.sync.sources.spool import open_spools

    (source,) = open_spools(desk.settings, desk.engine, desk.policies, source=name)
    before = source.rejected()
    return source, len(before), source.retry()
