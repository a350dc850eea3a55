"""One typed settings model, read from TOML.

The file's shape is a public contract (see DESIGN.md, "Config contract"): users' configs and
scripts depend on these section and key names, so keys are added, never renamed. Every field
carries its documentation in `metadata["doc"]`; a test checks that `config.example.toml` mentions
every one of them.

Loading is strict: an unknown key, a value of the wrong type or a value out of range stops with a
`ConfigError` that names the key (as a dotted path such as `mailbox[0].port`) and what was
expected. Secrets never live in the file: `password_command` / `secret_command` name a command
whose standard output is the secret. Those commands run only when the secret is needed (a sync
connecting, `doctor` checking), never on every `list`, because a password manager may prompt.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tomllib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from agentdesk import locations
from agentdesk.errors import ConfigError

CHANNEL_KINDS = ("email", "sms", "chat", "webform", "social")
STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
# The registry of webhook adapters: each name is a module agentdesk/channels/webhook/adapters/<name>.py
# with a `parse(payload)` function, so adding an adapter is its module plus its name here. The
# names live in this base module, not beside the adapters, so that the config can check `adapter`
# without importing the channels; `adapters.adapter_for` imports the module of the name.
SPOOL_ADAPTERS = ("generic", "twilio_sms", "postmark", "sendgrid", "chatwoot", "whatsapp")
SLA_TARGETS = ("first_reply", "next_reply", "periodic_update", "resolution")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Mail providers whose servers, ports, login mechanism and OAuth endpoints are known: a mailbox
# naming one needs only its address (and an OAuth client id). A key the mailbox sets wins.
PROVIDER_PRESETS: dict[str, dict[str, Any]] = {
    "microsoft365": {
        "host": "outlook.office365.com", "port": 993, "tls": "ssl", "auth": "xoauth2",
        "smtp": {"host": "smtp.office365.com", "port": 587, "tls": "starttls", "auth": "xoauth2"},
    },
    "gmail": {
        "host": "imap.gmail.com", "port": 993, "tls": "ssl", "auth": "xoauth2",
        "smtp": {"host": "smtp.gmail.com", "port": 465, "tls": "ssl", "auth": "xoauth2"},
    },
}


def setting(default: Any = dataclasses.MISSING, *, doc: str, factory: Any = None) -> Any:
    """A settings field with its documentation attached."""
    if factory is not None:
        return field(default_factory=factory, metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


def run_secret_command(command: str, *, key: str, timeout: float = 30.0) -> str:
    """Run a password/secret command and return the first line of its output.

    Raises ConfigError naming `key` when the command fails, times out or prints nothing.
    """
    try:
        completed = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{key}: the command `{command}` did not finish within {timeout:.0f}s") from None
    if completed.returncode != 0:
        detail = completed.stderr.strip().splitlines()
        reason = f": {detail[-1]}" if detail else ""
        raise ConfigError(
            f"{key}: the command `{command}` failed with exit status "
            f"{completed.returncode}{reason}; fix the command or the secret it reads"
        )
    secret = completed.stdout.split("\n", 1)[0].rstrip("\r")
    if not secret:
        raise ConfigError(f"{key}: the command `{command}` printed nothing; expected the secret")
    return secret


@dataclass
class DatabaseSettings:
    url: str = setting(
        "",
        doc="SQLAlchemy URL of the database: sqlite:////abs/path.db (default: the XDG data dir) "
        "or postgresql://user@host/db for teams past one host.",
    )


@dataclass
class AgentSettings:
    name: str = setting("", doc="Display name of the agent, shown to colleagues and in replies.")
    signature: str = setting("", doc="Signature appended to the agent's replies.")


@dataclass
class CalendarSettings:
    name: str = setting(doc="Name that SLA policies use to refer to this calendar.")
    timezone: str = setting("UTC", doc="IANA time zone of the business hours, e.g. Europe/Amsterdam.")
    hours: dict[str, list[str]] = setting(
        factory=dict,
        doc="Opening windows per weekday (mon..sun), e.g. mon = [\"09:00-12:30\", \"13:30-17:30\"]; "
        "an absent day is closed.",
    )
    holidays: list[str] = setting(factory=list, doc="Closed dates, ISO format (2026-12-25).")
    holiday_rules: list[str] = setting(
        factory=list, doc="Recurring closed days as RFC 5545 RRULEs, e.g. FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=1."
    )


@dataclass
class PolicyMatch:
    channel: list[str] = setting(factory=list, doc="Channel kinds this policy applies to; empty = all.")
    priority: list[str] = setting(factory=list, doc="Priorities this policy applies to; empty = all.")
    tags: list[str] = setting(factory=list, doc="The conversation must carry one of these tags; empty = any.")
    tier: list[str] = setting(factory=list, doc="Customer tiers this policy applies to; empty = all.")


@dataclass
class TargetOverrides:
    first_reply: str = setting("", doc="Override of first_reply for this priority.")
    next_reply: str = setting("", doc="Override of next_reply for this priority.")
    periodic_update: str = setting("", doc="Override of periodic_update for this priority.")
    resolution: str = setting("", doc="Override of resolution for this priority.")


@dataclass
class SlaPolicySettings:
    name: str = setting(doc="Name of the policy, shown in `show --json` and reports.")
    calendar: str = setting("", doc="Calendar whose business hours the targets count in; empty = 24/7.")
    match: PolicyMatch = setting(factory=PolicyMatch, doc="Which conversations the policy applies to.")
    first_reply: str = setting("", doc="Target for the first agent reply, a duration like \"1h\".")
    next_reply: str = setting("", doc="Target for answering the customer's oldest unanswered message.")
    periodic_update: str = setting("", doc="Longest silence from agents while a conversation is open.")
    resolution: str = setting("", doc="Target for solving the conversation.")
    warning: str = setting("25%", doc="When a target turns to warning: a share of it left (\"25%\") or a duration (\"1h\").")
    priority: dict[str, TargetOverrides] = setting(
        factory=dict, doc="Per-priority overrides of any target: [sla_policy.priority.urgent]."
    )


@dataclass
class SmtpSettings:
    host: str = setting("", doc="SMTP server that sends this mailbox's replies.")
    port: int = setting(465, doc="SMTP port (465 for ssl, 587 for starttls, 25 for none).")
    tls: Literal["ssl", "starttls", "none"] = setting("ssl", doc="Transport security: ssl | starttls | none.")
    username: str = setting("", doc="SMTP login; empty = no authentication (with a provider: the IMAP username).")
    password_command: str = setting("", doc="Command whose output is the SMTP password or OAuth access token; "
                                    "empty with a provider signed in: the mailbox's token.")
    auth: Literal["", "login", "plain", "xoauth2", "oauthbearer"] = setting(
        "", doc="SASL mechanism: login | plain | xoauth2 | oauthbearer; empty = what the server offers, "
        "a password mechanism first.")

    def password(self, key: str) -> str:
        return run_secret_command(self.password_command, key=f"{key}.password_command")


@dataclass
class MailboxSettings:
    name: str = setting(doc="Name of the mailbox, used by `sync --source` and in `stats`.")
    address: str = setting(doc="Our address: the From of replies, never sent a receipt.")
    host: str = setting("", doc="IMAP server (required unless `provider` names one).")
    port: int = setting(993, doc="IMAP port (993 for ssl, 143 for starttls/none).")
    tls: Literal["ssl", "starttls", "none"] = setting("ssl", doc="Transport security: ssl | starttls | none.")
    username: str = setting("", doc="IMAP login.")
    password_command: str = setting(
        "", doc="Command whose output is the IMAP password, or an OAuth access token for xoauth2 / "
        "oauthbearer (run for every new connection then, so a token helper can refresh it).")
    auth: Literal["", "login", "plain", "xoauth2", "oauthbearer"] = setting(
        "", doc="SASL mechanism: login | plain | xoauth2 | oauthbearer; empty = what the server offers, "
        "a password mechanism first.")
    provider: Literal["", "microsoft365", "gmail"] = setting(
        "", doc="A known provider: microsoft365 | gmail. Presets host, port, tls, auth and [mailbox.smtp], "
        "and enables `agentdesk oauth login` (the token then needs no password_command).")
    oauth_client_id: str = setting("", doc="OAuth client (application) id registered for agentdesk at the provider.")
    oauth_client_secret_command: str = setting(
        "", doc="Command whose output is the OAuth client secret, for providers that want one (Google).")
    oauth_tenant: str = setting("organizations", doc="Microsoft 365: the directory (tenant) id or domain; "
                                "default organizations (any work account).")
    oauth_device_url: str = setting("", doc="Device authorization endpoint; empty = the provider's.")
    oauth_token_url: str = setting("", doc="Token endpoint; empty = the provider's.")
    folders: list[str] = setting(factory=lambda: ["INBOX"], doc="Folders to import from.")
    sent_folder: str = setting("", doc="Folder to append a copy of each reply to; empty = none.")
    idle: bool = setting(True, doc="Keep an IMAP IDLE connection open for push; false = poll.")
    after_fetch: str = setting(
        "keep", doc="What to do on the server after import: keep | seen | move:Folder (default keep)."
    )
    receipt: str = setting("", doc="Template name of the automatic receipt; empty = none.")
    receipt_after_hours: bool = setting(
        False, doc="Also send the receipt for a customer message outside business hours "
        "(once per conversation until an agent replies).")
    receipt_limit: int = setting(3, doc="At most this many automatic receipts to one address per hour (loop protection).")
    csat: str = setting("", doc="Template name of the satisfaction survey sent once a conversation stays solved; "
                              "empty = no surveys.")
    csat_delay: str = setting("1h", doc="How long a conversation stays solved before its survey goes out "
                                        "(a duration: \"1h\", \"30m\", \"1d\").")
    bulk: Literal["queue", "bulk-view"] = setting(
        "bulk-view", doc="Where newsletters and list mail (List-Id, List-Unsubscribe, Precedence bulk) go: "
        "bulk-view (the Bulk view: no SLA clock, no receipt) | queue (the queue, as customer mail; still no receipt).")
    smtp: SmtpSettings = setting(factory=SmtpSettings, doc="How replies from this mailbox are sent.")
    attachments_max_bytes: int = setting(
        25_000_000, doc="The files of one message sent from this mailbox (reply, forward, new) may total at most "
        "this many bytes; more is refused before anything is queued (default 25 MB).")

    def password(self, key: str) -> str:
        return run_secret_command(self.password_command, key=f"{key}.password_command")


@dataclass
class OutboundSettings:
    spool: str = setting("", doc="Directory that receives one JSON file per reply.")
    url: str = setting("", doc="URL that receives each reply as an HMAC-signed HTTP POST.")


@dataclass
class SpoolSettings:
    name: str = setting(doc="Name of the spool; `webhook serve` accepts POST /hooks/<name>.")
    path: str = setting(doc="Directory holding tmp/ new/ cur/ rejected/.")
    # Literal of a tuple: the loader checks the value against the registry above.
    adapter: Literal[SPOOL_ADAPTERS] = setting(  # type: ignore[valid-type]  # a tuple's values, checked by the loader
        "generic", doc="Payload format: " + " | ".join(SPOOL_ADAPTERS) + ".")
    kind: Literal["email", "sms", "chat", "webform", "social"] = setting(
        "chat", doc="Channel kind of the conversations it feeds: sms | chat | webform | social | email."
    )
    secret_command: str = setting("", doc="Command whose output is the HMAC secret for `webhook serve`.")
    receipt: str = setting("", doc="Template name of the automatic receipt; empty = none.")
    receipt_after_hours: bool = setting(
        False, doc="Also send the receipt for a customer message outside business hours "
        "(once per conversation until an agent replies).")
    receipt_limit: int = setting(3, doc="At most this many automatic receipts to one address per hour (loop protection).")
    csat: str = setting("", doc="Template name of the satisfaction survey sent once a conversation stays solved; "
                              "empty = no surveys.")
    csat_delay: str = setting("1h", doc="How long a conversation stays solved before its survey goes out "
                                        "(a duration: \"1h\", \"30m\", \"1d\").")
    outbound: OutboundSettings = setting(factory=OutboundSettings, doc="Where replies on this spool go.")
    attachments_max_bytes: int = setting(
        5_000_000, doc="The files of one reply on this spool may total at most this many bytes (sent base64 in "
        "the reply document); more is refused before anything is queued (default 5 MB).")
    max_bytes: int = setting(5 * 1024 * 1024, doc="Payloads larger than this are rejected (bytes).")

    def secret(self, key: str) -> str:
        return run_secret_command(self.secret_command, key=f"{key}.secret_command")


@dataclass
class WebhookSettings:
    header_timeout: float = setting(
        10.0, doc="Seconds `webhook serve` gives a connection to send a request's line and headers "
        "(a new connection, or a kept-alive one between requests); then it is closed.")
    body_timeout: float = setting(
        30.0, doc="Seconds `webhook serve` gives a request to send its whole body once the headers are in; "
        "then it answers 408 and closes the connection.")
    max_connections: int = setting(
        256, doc="Connections `webhook serve` handles at once; one more is answered 503 at once and closed.")


@dataclass
class TemplateSettings:
    dir: str = setting("", doc="Directory of reply templates (*.md files); default: <data dir>/templates.")


@dataclass
class KnowledgeBaseSettings:
    dir: str = setting("", doc="Directory of knowledge-base articles (*.md files with title, tags and url in "
                               "front matter); default: kb/ beside the config file, else <data dir>/kb.")


@dataclass
class SavedView:
    name: str = setting(doc="Name of the view, shown as a tab beside the built-in views.")
    query: str = setting(doc="Search with field filters, e.g. \"tag:billing status:open waiting:>2h\".")
    key: str = setting("", doc="Optional key that opens the view.")


@dataclass
class UiSettings:
    theme: str = setting(
        "",
        doc="Colour theme of the TUI: a Textual theme name such as \"textual-dark\" (the default) or "
            "\"textual-light\"; ctrl+p \"Theme\" lists them all. Empty: the default.",
    )
    sync: bool = setting(
        True,
        doc="The TUI runs the sync worker itself (intake and delivery) while no `agentdesk sync` holds "
            "the team's sync lock; false: it only shows what a separate `agentdesk sync` does.",
    )
    undo_send_seconds: float = setting(
        10.0,
        doc="A reply sent from the TUI waits this long before delivery, so that ctrl+z can take it back "
            "(seconds; 0: sent at once). `agentdesk reply` waits only with --delay.",
    )
    alerts: Literal["toast", "bell", "desktop"] = setting(
        "toast",
        doc="How the TUI tells you of new work, an answer, a bounce, an SLA warning or a bad rating on "
            "your conversations: toast (a notification in the app), bell (and the terminal bell) or "
            "desktop (and a desktop notification: OSC 9/777 or notify-send).",
    )


@dataclass
class MacroSettings:
    name: str = setting(doc="Name of the macro: `agentdesk macro NAME REF…` and the command palette.")
    key: str = setting("", doc="Optional key that runs the macro in the TUI (on the marked rows, or the one under the cursor).")
    template: str = setting("", doc="Template to reply with: the TUI opens the composer with it; "
                                     "`agentdesk macro` sends it (refused if the template cannot be filled).")
    status: str = setting("", doc="Status to set: " + " | ".join(STATUSES) + "; empty = unchanged.")
    priority: str = setting("", doc="Priority to set: " + " | ".join(PRIORITIES) + "; empty = unchanged.")
    add_tags: list[str] = setting(factory=list, doc="Tags to add.")
    remove_tags: list[str] = setting(factory=list, doc="Tags to remove.")
    assign: str = setting("", doc="Assign to this agent's login, \"me\" (who runs it) or \"none\"; empty = unchanged.")
    snooze: str = setting("", doc="Snooze for this long, a duration like \"2d\" or \"4h\"; empty = unchanged.")


@dataclass
class AttachmentSettings:
    max_file_bytes: int = setting(
        25 * 1024 * 1024, doc="An inbound attachment larger than this is not kept: recorded as withheld "
        "with its size (bytes; default 25 MiB). Also the most a linked attachment's download reads.")
    max_message_bytes: int = setting(
        50 * 1024 * 1024, doc="At most this many bytes of one message's attachments are kept, in their order; "
        "the rest are withheld with their sizes (bytes; default 50 MiB).")
    download_timeout: float = setting(
        30.0, doc="Seconds the sync gives the download of a linked (URL) webhook attachment, "
        "connection and transfer together; then it is recorded as failed with the reason.")
    download: bool = setting(
        True, doc="Whether the sync downloads linked (URL) webhook attachments (http and https only); "
        "false: they are recorded as not downloaded, with their URL.")
    opener: str = setting(
        "", doc="Command that opens a saved attachment (the file's path is added as its last argument), "
        "e.g. \"xdg-open\" or \"open\"; empty: xdg-open, else $BROWSER.")
    save_dir: str = setting(
        "", doc="Default directory the TUI saves attachments to; empty: ~/Downloads when it exists, else ~.")


@dataclass
class Settings:
    database: DatabaseSettings = setting(factory=DatabaseSettings, doc="Where the queue is stored.")
    agents: dict[str, AgentSettings] = setting(
        factory=dict, doc="Agents by Unix login: [agents.dana] name and signature."
    )
    calendar: list[CalendarSettings] = setting(factory=list, doc="Business-hours calendars.")
    sla_policy: list[SlaPolicySettings] = setting(
        factory=list, doc="SLA policies, in order: the first whose match fits applies."
    )
    mailbox: list[MailboxSettings] = setting(factory=list, doc="IMAP mailboxes to import and reply from.")
    spool: list[SpoolSettings] = setting(factory=list, doc="Webhook spool directories to import from.")
    webhook: WebhookSettings = setting(factory=WebhookSettings, doc="Limits of the `webhook serve` receiver.")
    templates: TemplateSettings = setting(factory=TemplateSettings, doc="Reply templates.")
    kb: KnowledgeBaseSettings = setting(factory=KnowledgeBaseSettings, doc="Knowledge-base articles.")
    view: list[SavedView] = setting(factory=list, doc="Saved searches shown as views: [[view]] name and query.")
    macro: list[MacroSettings] = setting(
        factory=list, doc="Macros: [[macro]] name, key and steps (template, status, priority, tags, assign, snooze).")
    ui: UiSettings = setting(factory=UiSettings, doc="How the TUI looks: [ui] theme.")
    attachments: AttachmentSettings = setting(
        factory=AttachmentSettings, doc="Inbound attachments: size caps, linked downloads, the opener.")
    keys: dict[str, str] = setting(
        factory=dict, doc="Key remapping: binding id = \"keys\" (comma-separated), e.g. reply = \"r,f2\"."
    )

    # Where this config was read from (not a TOML key); relative paths in it resolve against it.
    source: Path | None = field(default=None, metadata={"doc": "", "internal": True})

    @property
    def database_url(self) -> str:
        return self.database.url or locations.default_database_url()

    @property
    def templates_dir(self) -> Path:
        if self.templates.dir:
            return self._resolve(self.templates.dir)
        return locations.data_dir() / "templates"

    @property
    def kb_dir(self) -> Path:
        if self.kb.dir:
            return self._resolve(self.kb.dir)
        if self.source is not None:
            return self.source.parent / "kb"
        return locations.data_dir() / "kb"

    def spool_path(self, spool: SpoolSettings) -> Path:
        """A spool's directory; a relative path is taken from the config file's directory."""
        return self._resolve(spool.path)

    def _resolve(self, path: str) -> Path:
        candidate = Path(os.path.expanduser(path))
        if not candidate.is_absolute() and self.source is not None:
            candidate = self.source.parent / candidate
        return candidate

    def agent_name(self, login: str) -> str:
        agent = self.agents.get(login)
        return agent.name if agent and agent.name else login

    def agent_signature(self, login: str) -> str:
        agent = self.agents.get(login)
        return agent.signature if agent else ""

    def message_id_domain(self, source: str) -> str:
        """The domain of the Message-IDs we write for a conversation from `source`: its mailbox's,
        so replies thread in the customer's client; a reserved domain for other channels."""
        for mailbox in self.mailbox:
            if mailbox.name == source and "@" in mailbox.address:
                return mailbox.address.rsplit("@", 1)[1]
        return "agentdesk.invalid"


def current_agent() -> str:
    """The agent at the keyboard: their Unix login (DESIGN: an agent IS a login). Where $USER is
    unset (cron, systemd units, containers), the login the system knows for this process's uid."""
    named = os.environ.get("AGENTDESK_AGENT") or os.environ.get("USER") or os.environ.get("LOGNAME")
    if named:
        return named
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a uid without a passwd entry
        return "agent"


def toml_string(value: str) -> str:
    """`value` as a TOML basic string: quotes, backslashes and control characters escaped (JSON's
    escapes are TOML's; TOML also wants DEL escaped), so a path or name of any kind round-trips."""
    import json

    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


# --- loading ---------------------------------------------------------------------------------

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", float: "a number"}


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(tp))
    if origin is list:
        return f"a list of {_describe(get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return str(tp)


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        return _convert(value, options[0], key)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {_toml_type(value)}")
        return _build(tp, value, key)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected {_describe(tp)}, got {_toml_type(value)}")
        (item_type,) = get_args(tp)
        return [_convert(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {_toml_type(value)}")
        _, item_type = get_args(tp)
        return {k: _convert(v, item_type, f"{key}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # bool is an int in Python; TOML keeps them apart and so do we.
    if tp is int and isinstance(value, bool) or not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {_describe(tp)}, got {_toml_type(value)} {value!r}")
    return value


def _toml_type(value: Any) -> str:
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "an array", dict: "a table",
    }.get(type(value), type(value).__name__)


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in known:
            suggestion = _closest(name, known)
            hint = f" (did you mean `{suggestion}`?)" if suggestion else ""
            expected = ", ".join(known)
            raise ConfigError(f"{key}: unknown key{hint}; expected one of: {expected}")
        kwargs[name] = _convert(value, hints[name], key)
    for name, f in known.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            key = f"{prefix}.{name}" if prefix else name
            raise ConfigError(f"{key}: required key is missing ({f.metadata['doc']})")
    return cls(**kwargs)


def _closest(name: str, candidates: dict[str, Any]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _entry_key(section: str, index: int, name: str) -> str:
    return f"{section}[{index}] ({name})" if name else f"{section}[{index}]"


_AFTER_FETCH = re.compile(r"^(keep|seen|move:.+)$")


def _validate(settings: Settings) -> None:
    """Checks that go beyond types: references between sections, value formats, durations."""
    from agentdesk.domain import sla  # the SLA module knows what a valid duration and calendar are

    calendar_names: set[str] = set()
    for i, cal in enumerate(settings.calendar):
        key = _entry_key("calendar", i, cal.name)
        if cal.name in calendar_names:
            raise ConfigError(f"{key}.name: a calendar named {cal.name!r} is already defined")
        calendar_names.add(cal.name)
        try:
            sla.BusinessCalendar(cal.name, cal.timezone, cal.hours, cal.holidays, cal.holiday_rules)
        except ValueError as error:
            raise ConfigError(f"{key}: {error}") from None

    for i, policy in enumerate(settings.sla_policy):
        key = _entry_key("sla_policy", i, policy.name)
        if policy.calendar and policy.calendar not in calendar_names:
            known = ", ".join(sorted(calendar_names)) or "none defined"
            raise ConfigError(f"{key}.calendar: no calendar named {policy.calendar!r} (known: {known})")
        for target in SLA_TARGETS:
            _check_duration(getattr(policy, target), f"{key}.{target}")
        for priority, overrides in policy.priority.items():
            if priority not in PRIORITIES:
                raise ConfigError(f"{key}.priority.{priority}: expected one of {', '.join(PRIORITIES)}")
            for target in SLA_TARGETS:
                _check_duration(getattr(overrides, target), f"{key}.priority.{priority}.{target}")
        _check_warning(policy.warning, f"{key}.warning")
        for value in policy.match.channel:
            if value not in CHANNEL_KINDS:
                raise ConfigError(f"{key}.match.channel: expected one of {', '.join(CHANNEL_KINDS)}, got {value!r}")
        for value in policy.match.priority:
            if value not in PRIORITIES:
                raise ConfigError(f"{key}.match.priority: expected one of {', '.join(PRIORITIES)}, got {value!r}")

    # Both kinds of source, for the checks they share.
    sources: tuple[tuple[str, Sequence[MailboxSettings | SpoolSettings]], ...] = (
        ("mailbox", settings.mailbox), ("spool", settings.spool))
    names: set[str] = set()
    for section, entries in sources:
        for i, entry in enumerate(entries):
            key = _entry_key(section, i, entry.name)
            if entry.name in names:
                raise ConfigError(f"{key}.name: a source named {entry.name!r} is already defined; names must be unique")
            names.add(entry.name)
    for name in ("max_file_bytes", "max_message_bytes", "download_timeout"):
        if getattr(settings.attachments, name) <= 0:
            raise ConfigError(f"attachments.{name}: expected a positive number, got {getattr(settings.attachments, name)}")
    for i, mailbox in enumerate(settings.mailbox):
        key = _entry_key("mailbox", i, mailbox.name)
        if not mailbox.host:
            raise ConfigError(f"{key}.host: required key is missing (IMAP server; or set `provider`)")
        if not _AFTER_FETCH.match(mailbox.after_fetch):
            raise ConfigError(f"{key}.after_fetch: expected keep | seen | move:Folder, got {mailbox.after_fetch!r}")
        if not (0 < mailbox.port < 65536):
            raise ConfigError(f"{key}.port: expected a TCP port 1-65535, got {mailbox.port}")
    for section, entries in sources:
        for i, entry in enumerate(entries):
            if entry.receipt_limit < 1:
                raise ConfigError(f"{_entry_key(section, i, entry.name)}.receipt_limit: expected at least 1, "
                                  f"got {entry.receipt_limit}")
            if entry.attachments_max_bytes <= 0:
                raise ConfigError(f"{_entry_key(section, i, entry.name)}.attachments_max_bytes: expected a "
                                  f"positive number of bytes, got {entry.attachments_max_bytes}")
    for section, entries in sources:
        for i, entry in enumerate(entries):
            _check_duration(entry.csat_delay, f"{_entry_key(section, i, entry.name)}.csat_delay")
    for i, spool in enumerate(settings.spool):
        key = _entry_key("spool", i, spool.name)
        if spool.max_bytes <= 0:
            raise ConfigError(f"{key}.max_bytes: expected a positive number of bytes, got {spool.max_bytes}")
        if spool.outbound.spool and spool.outbound.url:
            raise ConfigError(f"{key}.outbound: set either spool or url, not both")
    for name in ("header_timeout", "body_timeout"):
        value = getattr(settings.webhook, name)
        if not 0 < value <= 3600:
            raise ConfigError(f"webhook.{name}: expected a number of seconds above 0 and at most 3600, got {value}")
    if settings.webhook.max_connections < 1:
        raise ConfigError(f"webhook.max_connections: expected at least 1, got {settings.webhook.max_connections}")
    if not 0 <= settings.ui.undo_send_seconds <= 600:
        raise ConfigError(f"ui.undo_send_seconds: expected 0 to 600 seconds, got {settings.ui.undo_send_seconds}")
    macro_names: set[str] = set()
    for i, macro in enumerate(settings.macro):
        key = _entry_key("macro", i, macro.name)
        if not macro.name.strip():
            raise ConfigError(f"{key}.name: a macro needs a name")
        if macro.name in macro_names:
            raise ConfigError(f"{key}.name: a macro named {macro.name!r} is already defined")
        macro_names.add(macro.name)
        if macro.status and macro.status not in STATUSES:
            raise ConfigError(f"{key}.status: expected one of {', '.join(STATUSES)}, got {macro.status!r}")
        if macro.priority and macro.priority not in PRIORITIES:
            raise ConfigError(f"{key}.priority: expected one of {', '.join(PRIORITIES)}, got {macro.priority!r}")
        _check_duration(macro.snooze, f"{key}.snooze")
        if not (macro.template or macro.status or macro.priority or macro.add_tags or macro.remove_tags
                or macro.assign or macro.snooze):
            raise ConfigError(f"{key}: a macro needs at least one step (template, status, priority, add_tags, "
                              "remove_tags, assign, snooze)")


def _check_duration(value: str, key: str) -> None:
    from agentdesk.domain import sla

    if value:
        try:
            sla.parse_duration(value)
        except ValueError as error:
            raise ConfigError(f"{key}: {error}") from None


def _check_warning(value: str, key: str) -> None:
    if value.endswith("%"):
        try:
            share = float(value[:-1])
        except ValueError:
            share = -1
        if not 0 < share < 100:
            raise ConfigError(f"{key}: expected a share between 0% and 100% like \"25%\", got {value!r}")
        return
    _check_duration(value, key)


def _apply_provider_presets(data: dict[str, Any]) -> None:
    """Fill the keys a mailbox's `provider` presets and the mailbox leaves out (the raw TOML
    tables, before typing: a key the user wrote always wins). Malformed tables are left for
    `_build` to reject with its usual message."""
    mailboxes = data.get("mailbox")
    if not isinstance(mailboxes, list):
        return
    for entry in mailboxes:
        if not isinstance(entry, dict):
            continue
        preset = PROVIDER_PRESETS.get(entry.get("provider", ""))
        if preset is None:
            continue
        for key, value in preset.items():
            if key != "smtp":
                entry.setdefault(key, value)
        if isinstance(entry.get("address"), str):
            entry.setdefault("username", entry["address"])  # the providers' login is the address
        smtp = entry.setdefault("smtp", {})
        if isinstance(smtp, dict):
            for key, value in preset["smtp"].items():
                smtp.setdefault(key, value)
            if isinstance(entry.get("username"), str):
                smtp.setdefault("username", entry["username"])


def _refuse_dotted_binding_ids(data: dict[str, Any]) -> None:
    """`queue.down = "j"` is TOML for a table `queue` holding `down`: say how to write the id."""
    keys = data.get("keys")
    if isinstance(keys, dict):
        for name, value in keys.items():
            if isinstance(value, dict):
                inner = next(iter(value), "down")
                raise ConfigError(f"keys.{name}: binding ids with a dot are quoted in TOML: "
                                  f"\"{name}.{inner}\" = \"…\", not {name}.{inner} = \"…\"")


def parse(text: str, *, source: Path | None = None) -> Settings:
    where = f"{source}: " if source else ""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}not valid TOML: {error}") from None
    try:
        _apply_provider_presets(data)
        _refuse_dotted_binding_ids(data)
        settings = _build(Settings, data, "")
        settings.source = source
        _validate(settings)
    except ConfigError as error:
        raise ConfigError(f"{where}{error}") from None
    return settings


def load(path: Path | None = None, *, required: bool = False) -> Settings:
    """Read the config at `path` (default: $AGENTDESK_CONFIG or the XDG config file).

    A missing file is an empty config (every default) unless `required` — the user named it.
    """
    explicit = path is not None or "AGENTDESK_CONFIG" in os.environ
    path = path or locations.default_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required or explicit:
            raise ConfigError(
                f"{path}: config file not found; create it with `agentdesk init` "
                "or copy config.example.toml"
            ) from None
        return Settings()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config file: {error}") from None
    return parse(text, source=path.resolve())


def documented_keys(cls: type = Settings, prefix: str = "") -> list[tuple[str, str]]:
    """Every key of the settings model with its documentation, as (dotted key, doc)."""
    keys = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        key = f"{prefix}{f.name}"
        keys.append((key, f.metadata["doc"]))
        tp = typing.get_type_hints(cls)[f.name]
        inner = tp
        if get_origin(tp) in (list, dict):
            inner = get_args(tp)[-1]
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            keys.extend(documented_keys(inner, f"{key}."))
    return keys
