"""`agentdesk doctor`: check what a working setup needs and say what to fix.

Each check is independent: one broken mailbox does not hide the state of the database. Checks do
what the real work does, short of changing anything: log in to each IMAP server and open each
folder, greet, secure and authenticate with each SMTP server (sending nothing), run each secret
command, render each template with a sample conversation. A check that fails or warns says what
to do next (`fix`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agentdesk import config, locations
from agentdesk.errors import AgentdeskError, ConfigError


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""  # what to do next, when the detail does not say it already

    def document(self) -> dict[str, str]:
        """`doctor --json`: one object per check."""
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def exit_status(checks: list[Check]) -> int:
    """0 when nothing failed (warnings included), 2 when the config cannot be loaded (as every
    command exits on a config error), else 1."""
    if any(check.name == "config" and check.status == "fail" for check in checks):
        return ConfigError.exit_code
    return 1 if any(check.status == "fail" for check in checks) else 0


def run_checks(config_path: Path | None) -> Iterator[Check]:
    try:
        settings = config.load(config_path)
    except AgentdeskError as error:
        yield Check("config", "fail", str(error), fix="correct what it names; config.example.toml documents every key")
        return
    where = settings.source or "no config file; using defaults"
    yield Check("config", "ok", f"{where}")
    if not settings.mailbox and not settings.spool:
        yield _no_sources(settings)

    from agentdesk.store import db

    yield _schema_check(settings)
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
        yield from _shared_database_checks(database)

    yield from _template_checks(settings)

    for index, mailbox in enumerate(settings.mailbox):
        yield from _mailbox_checks(f"mailbox[{index}] ({mailbox.name})", mailbox)

    from agentdesk.channels.webhook import spool as spooling

    for index, spool in enumerate(settings.spool):
        key = f"spool[{index}] ({spool.name})"
        path = settings.spool_path(spool)
        missing = [sub for sub in ("tmp", "new", "cur", "rejected") if not (path / sub).is_dir()]
        if not path.is_dir():
            yield Check(key, "fail", f"{path} does not exist; create it with tmp/ new/ cur/ rejected/")
        elif missing:
            yield Check(key, "warn", f"{path} lacks {', '.join(missing)}/ (created on first sync)")
        else:
            yield _spool_permissions(key, path)
        if path.is_dir():
            yield _space_check(f"{key} disk", path, "payloads the receiver writes")
            stale = spooling.stale_tmp_files(path)
            if stale:
                size = sum(item.size for item in stale)
                yield Check(
                    f"{key} tmp",
                    "warn",
                    f"{len(stale)} file(s) ({db.human_bytes(size)}) in {path / 'tmp'} older than "
                    f"{spooling.STALE_TMP_SECONDS // 3600} h, left by a writer that died; "
                    f"`agentdesk spool clean {spool.name}` removes them",
                )
        if spool.secret_command:
            yield _secret_check(f"{key} secret", spool.secret_command, f"{key}.secret_command")
    if settings.spool:
        yield _webhook_port_check(locations.WEBHOOK_PORT)


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
    parts = [
        f"{count} {channel} reply(ies) since {oldest:%Y-%m-%d %H:%M} UTC" if oldest else f"{count} {channel}"
        for channel, count, oldest in stuck
    ]
    names = ", ".join(channel for channel, _, _ in stuck)
    return Check(
        "outbox",
        "warn",
        f"{'; '.join(parts)} cannot be delivered here: no sender for {names} on this "
        "host; configure a spool of that kind with an outbound, or run sync where one is",
    )


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
        return Check(
            name,
            "fail",
            f"{detail}: under {db.human_bytes(SPACE_FAIL_BYTES)}, storing will fail; "
            f"free space there or move it to a bigger disk",
        )
    if free < SPACE_WARN_BYTES:
        return Check(name, "warn", f"{detail}: under {db.human_bytes(SPACE_WARN_BYTES)}; free space soon")
    return Check(name, "ok", detail)


def _secret_check(name: str, command: str, key: str) -> Check:
    return _secret(name, command, key)[0]


def _secret(name: str, command: str, key: str) -> tuple[Check, str | None]:
    """The check of a secret command, and the secret it printed (None when it did not)."""
    if not command:
        return Check(
            name, "warn", f"{key} is not set", fix=f'set {key} to a command that prints the secret, e.g. "pass show …"'
        ), None
    try:
        secret = config.run_secret_command(command, key=key)
    except AgentdeskError as error:
        return Check(name, "fail", str(error), fix=f"run the command by hand as this user, then correct {key}"), None
    return Check(name, "ok", "the command printed a secret"), secret


# Seconds a server gets to answer each step of a live check.
SERVER_TIMEOUT = 10.0


def _no_sources(settings: config.Settings) -> Check:
    """No mailbox and no spool: the desk works, and nothing will ever arrive in it."""
    if settings.source is None:
        where = "run `agentdesk init` to write a config, then add"
    else:
        where = f"add to {settings.source}"
    return Check(
        "sources",
        "warn",
        "no [[mailbox]] or [[spool]] configured: no conversation will arrive",
        fix=f"{where} a [[mailbox]] (IMAP and SMTP) or a [[spool]] (webhooks) as config.example.toml "
        f"shows; put reply templates in {settings.templates_dir}; then run `agentdesk sync`",
    )


def _schema_check(settings: config.Settings) -> Check:
    """The database's schema revision as found, before the database check opens (and upgrades) it."""
    from agentdesk.store import db, migrations

    head = migrations.HEAD
    try:
        found = db.stored_revision(settings.database_url)
    except AgentdeskError as error:
        return Check("schema", "warn", f"cannot read the schema revision: {error}", fix="see the database check below")
    if found is None:
        return Check("schema", "ok", f"no database yet: created at revision {head}, the current one")
    if found == head:
        return Check("schema", "ok", f"revision {head}, the current one")
    if found < head:
        return Check(
            "schema",
            "ok",
            f"revision {found}, older than this agentdesk's {head}: upgraded now, as every command upgrades it",
        )
    return Check(
        "schema",
        "fail",
        f"revision {found}, newer than this agentdesk knows ({head})",
        fix="upgrade agentdesk to the version that wrote it (pip install -U agentdesk); every agent "
        "of a shared database runs the same version",
    )


def _sample_values(settings: config.Settings) -> dict[str, str]:
    """A sample conversation's placeholder values: what a template sees when an agent replies."""
    agent = config.current_agent()
    return {
        "customer_name": "Anke Bakker",
        "customer_first_name": "Anke",
        "agent_name": settings.agent_name(agent),
        "agent_signature": settings.agent_signature(agent) or settings.agent_name(agent),
        "ref": "AD-1042",
        "subject": "Where is my order?",
        "channel": "email",
        "due": "Monday 07 December, 10:00",
    }


def _template_checks(settings: config.Settings) -> Iterator[Check]:
    """Every template renders with a sample conversation, uses only placeholders agentdesk fills,
    and every receipt the config names exists."""
    from agentdesk.domain import templates

    directory = settings.templates_dir
    if not directory.is_dir():
        yield Check(
            "templates",
            "warn",
            f"{directory} does not exist; replies from templates are unavailable",
            fix=f"mkdir -p {directory} and put reply templates there as NAME.md (docs/tui.md)",
        )
        return
    found = templates.load_all(directory)
    names = {t.name for t in found} | {t.shortcut for t in found if t.shortcut}
    sources: list[tuple[str, config.MailboxSettings | config.SpoolSettings]] = [
        *(("mailbox", m) for m in settings.mailbox),
        *(("spool", s) for s in settings.spool),
    ]
    for key, source in sources:
        if source.receipt and source.receipt not in names:
            yield Check(
                f"{key} {source.name} receipt",
                "fail",
                f"the receipt template {source.receipt!r} is not in {directory}",
                fix=f"write {directory / (source.receipt + '.md')} or correct receipt",
            )
    sample = _sample_values(settings)
    rendered = 0
    for template in found:
        where = template.path or directory / f"{template.name}.md"
        try:
            result = templates.render(template, sample)
        except templates.TemplateFailed as error:
            yield Check(f"template {template.name}", "fail", str(error), fix=f"edit {where}")
            continue
        rendered += 1
        unknown = [name for name in result.undefined if name not in templates.VARIABLES]
        if unknown:
            yield Check(
                f"template {template.name}",
                "warn",
                f"uses {', '.join(unknown)}, which agentdesk does not fill: the agent fills it by hand each time",
                fix=f"edit {where}; the placeholders: {', '.join(templates.VARIABLES)}",
            )
    if not found:
        yield Check(
            "templates", "warn", f"{directory}: no templates", fix="put reply templates there as NAME.md (docs/tui.md)"
        )
    else:
        yield Check(
            "templates", "ok", f"{directory}: {rendered} of {len(found)} template(s) render with a sample conversation"
        )


def _mailbox_checks(key: str, mailbox: config.MailboxSettings) -> Iterator[Check]:
    """Log in to the IMAP server and open every folder the mailbox uses; greet, secure and
    authenticate with its SMTP server."""
    from agentdesk.channels.email import imap

    check, password = _oauth_sign_in(key, mailbox) or _secret(
        f"{key} password", mailbox.password_command, f"{key}.password_command"
    )
    yield check
    if password is None:
        yield Check(
            f"{key} imap",
            "warn",
            f"not tried: no password to log in to {mailbox.host}:{mailbox.port} with",
            fix=f"fix {key}.password_command first",
        )
    else:
        server = imap.ServerSettings.from_mailbox(mailbox, timeout=SERVER_TIMEOUT)
        try:
            connection = imap.BulkConnection(server, password)
        except imap.ImapError as error:
            yield Check(
                f"{key} imap", "fail", str(error), fix=f"check {key}.host, port, tls, username and password_command"
            )
        else:
            try:
                yield Check(
                    f"{key} imap",
                    "ok",
                    f"logged in to {mailbox.host}:{mailbox.port} ({mailbox.tls}) as {mailbox.username!r}",
                )
                yield from _folder_checks(key, mailbox, connection)
            finally:
                connection.close()
    yield from _smtp_checks(key, mailbox)


def _folder_checks(key: str, mailbox: config.MailboxSettings, connection) -> Iterator[Check]:
    from agentdesk.channels.email import imap

    folders = [(folder, f"{key}.folders") for folder in mailbox.folders]
    if mailbox.sent_folder:
        folders.append((mailbox.sent_folder, f"{key}.sent_folder"))
    if mailbox.after_fetch.startswith("move:"):
        folders.append((mailbox.after_fetch.removeprefix("move:"), f"{key}.after_fetch"))
    for folder, setting in folders:
        try:
            state = connection.select(folder, readonly=True)
        except imap.ImapError as error:
            yield Check(
                f"{key} folder {folder}",
                "fail",
                str(error),
                fix=f"correct {setting}, or create {folder!r} on the server",
            )
        except imap.CONNECTION_ERRORS as error:
            yield Check(
                f"{key} folder {folder}",
                "fail",
                f"the server broke off while opening {folder!r}: {error}",
                fix="run doctor again; if it persists, check the server's log",
            )
            return
        else:
            yield Check(f"{key} folder {folder}", "ok", f"opened: {state.exists} message(s)")


def _smtp_checks(key: str, mailbox: config.MailboxSettings) -> Iterator[Check]:
    from agentdesk.channels.base import DeliveryError
    from agentdesk.channels.email import smtp

    settings = mailbox.smtp
    if not settings.host:
        yield Check(
            f"{key} smtp",
            "warn",
            "no [mailbox.smtp] host: replies from this mailbox cannot be sent",
            fix=f"add host, port, tls, username and password_command under [mailbox.smtp] of {key}",
        )
        return
    password = None
    if settings.username:
        check, password = (not settings.password_command and _oauth_sign_in(f"{key} smtp", mailbox)) or _secret(
            f"{key} smtp password", settings.password_command, f"{key}.smtp.password_command"
        )
        yield check
        if password is None:
            yield Check(
                f"{key} smtp",
                "warn",
                f"not tried: no password to authenticate with at {settings.host}:{settings.port}",
                fix=f"fix {key}.smtp.password_command first",
            )
            return
    steps = (
        "EHLO"
        + (", STARTTLS" if settings.tls == "starttls" else "")
        + (f", AUTH as {settings.username!r}" if settings.username else "")
    )
    try:
        smtp.probe(smtp.SmtpServer.from_mailbox(mailbox, timeout=SERVER_TIMEOUT), password)
    except DeliveryError as error:
        reason = str(error)
        if "refused the login" in reason:
            fix = f"check {key}.smtp.username and {key}.smtp.password_command"
        elif "AUTH" in reason and "not supported" in reason:
            fix = (
                f"the server offers no AUTH on this connection: set {key}.smtp.tls to starttls or ssl (many "
                f"servers offer AUTH only after STARTTLS), or leave {key}.smtp.username empty"
            )
        else:
            fix = f"check {key}.smtp.host, port and tls"
        yield Check(f"{key} smtp", "fail", reason, fix=fix)
        return
    yield Check(
        f"{key} smtp", "ok", f"{settings.host}:{settings.port} ({settings.tls}): {steps} accepted; nothing sent"
    )


SPOOL_DIRECTORIES = ("tmp", "new", "cur", "rejected")


def _spool_permissions(key: str, path: Path) -> Check:
    """This user reads and writes every directory of the spool; so does its group, for a
    `webhook serve` or `sync` that runs as another user of the team."""
    import grp
    import stat

    directories = [path, *(path / sub for sub in SPOOL_DIRECTORIES if (path / sub).is_dir())]
    login = config.current_agent()
    try:
        group = grp.getgrgid(path.stat().st_gid).gr_name
    except KeyError:
        group = str(path.stat().st_gid)
    mine = [str(d) for d in directories if not os.access(d, os.R_OK | os.W_OK | os.X_OK)]
    if mine:
        return Check(
            key,
            "fail",
            f"not readable and writable by this user ({login}): {', '.join(mine)}",
            fix=f"add {login} to the group {group} and run chmod -R g+rwX {path}, or run agentdesk as "
            "the user that owns it",
        )
    closed = [str(d) for d in directories if not d.stat().st_mode & stat.S_IWGRP]
    if closed:
        return Check(
            key,
            "warn",
            f"{path}: writable by you, not by its group {group} ({', '.join(closed)}): a "
            "`webhook serve` or `sync` running as another user cannot write there",
            fix=f"chmod -R g+rwX {path} && chmod g+s {path} " + " ".join(str(path / sub) for sub in SPOOL_DIRECTORIES),
        )
    return Check(key, "ok", f"{path}: writable by you and the group {group}")


def _shared_database_checks(database: Path) -> Iterator[Check]:
    """In a team's shared directory, every agent of the group can write every database file."""
    import shlex
    import stat

    from agentdesk.store import shared_files

    directory = database.parent
    if not shared_files.is_shared(directory):
        return
    group = shared_files.directory_group(directory)
    stuck = shared_files.problems(database)
    if stuck:
        files = " ".join(shlex.quote(str(problem.file)) for problem in stuck)
        owners = " or ".join(sorted({problem.owner for problem in stuck} | {"root"}))
        yield Check(
            "database sharing",
            "fail",
            "; ".join(f"{problem.file} (owner {problem.owner}): {problem.reason}" for problem in stuck)
            + f": the other agents of {group} fail on their first write",
            fix=f"as {owners}: chgrp {group} {files} && chmod g+rw {files}",
        )
    else:
        yield Check(
            "database sharing",
            "ok",
            f"{directory} is shared with the group {group}: every database file is group-writable",
        )
    if not directory.stat().st_mode & stat.S_ISGID:
        yield Check(
            "database directory",
            "warn",
            f"{directory} is group-writable but not setgid: new files get their creator's own group, not {group}",
            fix=f"chmod g+s {shlex.quote(str(directory))}",
        )


def _webhook_port_check(port: int) -> Check:
    """The port `webhook serve` listens on by default is free, or it is our receiver that holds it."""
    import http.client

    with socket.socket() as probe:
        # As the receiver binds it: a port in TIME_WAIT after a restart is free to it.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            pass
        else:
            return Check("webhook port", "ok", f"port {port} is free for `agentdesk webhook serve`")
    server = ""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        connection.request("GET", "/healthz")
        server = connection.getresponse().getheader("Server", "")
        connection.close()
    except (OSError, http.client.HTTPException):
        pass
    if server.startswith("agentdesk-webhook"):
        return Check("webhook port", "ok", f"`agentdesk webhook serve` is listening on port {port}")
    by = f" ({server})" if server else ""
    return Check(
        "webhook port",
        "fail",
        f"port {port} is taken by another program{by}",
        fix="stop that program, or run `agentdesk webhook serve --port N` on a free port and point the "
        "providers' webhooks there",
    )


def _oauth_sign_in(key: str, mailbox: config.MailboxSettings) -> tuple[Check, str | None] | None:
    """For a mailbox signed in with `agentdesk oauth login`: who is signed in and until when,
    and the access token to try the servers with (refreshed first, as a sync would); None for
    a mailbox whose secret is its password_command."""
    from agentdesk.app import oauth
    from agentdesk.sync import credentials

    if not credentials.uses_sign_in(mailbox):
        return None
    (status,) = oauth.status(config.Settings(mailbox=[mailbox]), mailbox.name)
    if status.state in ("signed-out", "revoked"):
        return Check(f"{key} sign-in", "fail", status.line(), fix=f"run `agentdesk oauth login {mailbox.name}`"), None
    try:
        token = credentials.access_token(mailbox)
    except AgentdeskError as error:
        return Check(f"{key} sign-in", "fail", str(error), fix=f"run `agentdesk oauth login {mailbox.name}`"), None
    (status,) = oauth.status(config.Settings(mailbox=[mailbox]), mailbox.name)
    return Check(f"{key} sign-in", "ok", status.line()), token
