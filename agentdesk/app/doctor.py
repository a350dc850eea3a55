"""`agentdesk doctor`: check what a working setup needs and say what to fix.

Each check is independent: one broken mailbox does not hide the state of the database.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agentdesk import config
from agentdesk.errors import AgentdeskError


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str


def _reachable(host: str, port: int, timeout: float = 3.0) -> str | None:
    """None when a TCP connection opens, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as error:
        return error.strerror or str(error)


def run_checks(config_path: Path | None) -> Iterator[Check]:
    try:
        settings = config.load(config_path)
    except AgentdeskError as error:
        yield Check("config", "fail", str(error))
        return
    where = settings.source or "no config file; using defaults"
    yield Check("config", "ok", f"{where}")

    from agentdesk.store import db

    try:
        engine = db.open_database(settings.database_url)
        with engine.connect() as connection:
            revision = db.schema_revision(connection)
            if engine.dialect.name == "sqlite":
                verdict, mode = db.sqlite_health(connection)
                if verdict != "ok":
                    raise AgentdeskError(f"integrity check failed: {verdict}")
                detail = f"{db.describe_url(settings.database_url)} (schema revision {revision}, journal {mode})"
            else:
                detail = f"{db.describe_url(settings.database_url)} (schema revision {revision})"
        yield Check("database", "ok", detail)
    except AgentdeskError as error:
        yield Check("database", "fail", str(error))
    else:
        yield _outbox_check(settings, engine)
    database = db.sqlite_path(settings.database_url)
    if database is not None:
        # Attachments and raw mail live in the database, and big messages are staged beside it:
        # this one directory is where stored mail needs room.
        yield _space_check("database disk", database.parent, "the database, its attachments and raw mail")

    templates_dir = settings.templates_dir
    if templates_dir.is_dir():
        count = len(list(templates_dir.glob("*.md")))
        yield Check("templates", "ok" if count else "warn", f"{templates_dir}: {count} template(s)")
    else:
        yield Check("templates", "warn", f"{templates_dir} does not exist; replies from templates are unavailable")

    for index, mailbox in enumerate(settings.mailbox):
        key = f"mailbox[{index}] ({mailbox.name})"
        yield _secret_check(f"{key} password", mailbox.password_command, f"{key}.password_command")
        problem = _reachable(mailbox.host, mailbox.port)
        yield Check(f"{key} imap", "fail" if problem else "ok",
                    f"{mailbox.host}:{mailbox.port}" + (f": {problem}" if problem else " reachable"))
        if mailbox.smtp.host:
            problem = _reachable(mailbox.smtp.host, mailbox.smtp.port)
            yield Check(f"{key} smtp", "fail" if problem else "ok",
                        f"{mailbox.smtp.host}:{mailbox.smtp.port}" + (f": {problem}" if problem else " reachable"))
            if mailbox.smtp.username:
                yield _secret_check(f"{key} smtp password", mailbox.smtp.password_command,
                                    f"{key}.smtp.password_command")
        else:
            yield Check(f"{key} smtp", "warn", "no [mailbox.smtp] host: replies from this mailbox cannot be sent")

    from agentdesk.channels.webhook import spool as spooling

    for index, spool in enumerate(settings.spool):
        key = f"spool[{index}] ({spool.name})"
        path = settings.spool_path(spool)
        missing = [sub for sub in ("tmp", "new", "cur", "rejected") if not (path / sub).is_dir()]
        if not path.is_dir():
            yield Check(key, "fail", f"{path} does not exist; create it with tmp/ new/ cur/ rejected/")
        elif missing:
            yield Check(key, "warn", f"{path} lacks {', '.join(missing)}/ (created on first sync)")
        elif not os.access(path / "new", os.R_OK | os.W_OK):
            yield Check(key, "fail", f"{path / 'new'} is not readable and writable by this user")
        else:
            yield Check(key, "ok", f"{path}")
        if path.is_dir():
            yield _space_check(f"{key} disk", path, "payloads the receiver writes")
            stale = spooling.stale_tmp_files(path)
            if stale:
                size = sum(item.size for item in stale)
                yield Check(f"{key} tmp", "warn",
                            f"{len(stale)} file(s) ({db.human_bytes(size)}) in {path / 'tmp'} older than "
                            f"{spooling.STALE_TMP_SECONDS // 3600} h, left by a writer that died; "
                            f"`agentdesk spool clean {spool.name}` removes them")
        if spool.secret_command:
            yield _secret_check(f"{key} secret", spool.secret_command, f"{key}.secret_command")


def _outbox_check(settings, engine) -> Check:
    """Queued replies that no sender this config builds can deliver: they would wait for ever."""
    from agentdesk.store import db, outbox
    from agentdesk.sync import worker

    try:
        channels = set(worker.build_senders(worker.SyncContext(settings=settings, engine=engine)))
        with db.read_session(engine) as session:
            stuck = outbox.undeliverable(session=session, senders=channels)
    except Exception as error:  # an older schema, a database that went away: the database check said why
        return Check("outbox", "warn", f"cannot read the outbox: {error}")
    if not stuck:
        return Check("outbox", "ok", "every queued reply has a sender here")
    parts = [f"{count} {channel} reply(ies) since {oldest:%Y-%m-%d %H:%M} UTC" if oldest else f"{count} {channel}"
             for channel, count, oldest in stuck]
    names = ", ".join(channel for channel, _, _ in stuck)
    return Check("outbox", "warn", f"{'; '.join(parts)} cannot be delivered here: no sender for {names} on this "
                 "host; configure a spool of that kind with an outbound, or run sync where one is")


# Free space under which a directory that stores mail fails the check, and under which it warns.
SPACE_FAIL_BYTES = 64 * 1024 * 1024
SPACE_WARN_BYTES = 512 * 1024 * 1024


def _space_check(name: str, directory: Path, holds: str) -> Check:
    from agentdesk.store import db

    free = db.free_space(directory)
    if free is None:
        return Check(name, "warn", f"cannot tell the free space of {directory}")
    detail = f"{db.human_bytes(free)} free in {directory} ({holds})"
    if free < SPACE_FAIL_BYTES:
        return Check(name, "fail", f"{detail}: under {db.human_bytes(SPACE_FAIL_BYTES)}, storing will fail; "
                                   f"free space there or move it to a bigger disk")
    if free < SPACE_WARN_BYTES:
        return Check(name, "warn", f"{detail}: under {db.human_bytes(SPACE_WARN_BYTES)}; free space soon")
    return Check(name, "ok", detail)


def _secret_check(name: str, command: str, key: str) -> Check:
    if not command:
        return Check(name, "warn", f"{key} is not set")
    try:
        config.run_secret_command(command, key=key)
    except AgentdeskError as error:
        return Check(name, "fail", str(error))
    return Check(name, "ok", "the command printed a secret")
