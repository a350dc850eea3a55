"""No control sequence from outside reaches a terminal: real payloads of every webhook adapter,
each field in turn carrying a hostile string, written into real spools, stored by the real
`agentdesk sync --once`, then read back through the real CLI (subprocesses, text and `--json`) and
the real TUI (Pilot, rendered to what the terminal would be sent).

The hostile strings cover the class, not one example: OSC 52 clipboard writes, OSC 8 hyperlinks,
title changes, screen clears, 8-bit CSI/OSC/DCS, APC, C0 and C1 controls, DEL, CR line
overwrites, bidi overrides, isolates and marks, Textual markup. On top of what came through the
spools, rows are then written raw into the database, as an older version could have stored them:
the output guards alone must hold those.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import BASIC_CONFIG

DATA = Path(__file__).resolve().parents[1] / "data" / "webhooks"
ROOT = Path(__file__).resolve().parents[2]
FIXED_NOW = datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc)

# Each carries a visible marker, so a test can also see that the text did arrive (inert).
HOSTILE = [
    "\x1b]52;c;cm0gLXJmIH4K\x07MARK-osc52",
    "\x1b]8;;https://evil.example/\x1b\\MARK-osc8\x1b]8;;\x1b\\",
    "\x1b]0;pwned title\x07MARK-title",
    "\x1b[2J\x1b[H\x1b[31mMARK-clear\x1b[0m",
    "\x9b31m\x9d0;c1 title\x9cMARK-c1",
    "\x1bP1$r0m\x1b\\\x1b_Gf=24;AAAA\x1b\\MARK-dcs",
    "\u202egpj.exe\u202c\u2066MARK-bidi\u2069",
    "\x85\x8d\x7f\x00\x08\x0b\x0cMARK-controls",
    "\r\nforged: line\rMARK-cr",
    "[link=https://evil.example]MARK-markup[/link][@click=app.quit]q[/]",
    "\u200f\u061cMARK-marks\u200e\u2028\u2029",
    "\x1b]52;c;\x1b[MARK-unterminated",
]
# What must never reach a terminal: C0 but newline and tab (CR included), DEL, C1, bidi controls.
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# JSON is written with every one of those, and the bidi marks and separators, as \uXXXX.
FORBIDDEN_IN_JSON = re.compile(
    "[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u2028\u2029\ud800-\udfff]"
)


def assert_inert(text: str, where: str) -> None:
    found = FORBIDDEN.search(text)
    assert found is None, (
        f"{where}: {found.group()!r} at {found.start()}: {text[max(0, found.start() - 60) : found.start() + 60]!r}"
    )


# --- payload variants: every field of every adapter in turn ----------------------------------------


def leaves(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        yield path, value


def set_at(document: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        document = document[key]
    document[path[-1]] = value


def phone(n: int) -> str:
    return f"+1415555{n:04d}"


def unique_chatwoot(doc: dict, n: int) -> None:
    doc["id"] = 100_000 + n
    doc["conversation"]["id"] = 70_000 + n
    # Contact fields Chatwoot sends for a known contact: they become linked identities.
    doc["sender"].update(id=5_000 + n, email=f"cw{n}@contact.example", phone_number=phone(n))
    doc["conversation"]["meta"]["sender"].update(id=5_000 + n, email=f"cw{n}@contact.example", phone_number=phone(n))
    doc["attachments"] = [{"id": n, "file_type": "image", "data_url": f"https://cw.example/files/{n}/photo.png"}]


def unique_generic_chat(doc: dict, n: int) -> None:
    doc["id"] = f"tg-{n}"
    doc["sender"]["handle"] = f"telegram:{n}"
    doc["conversation"]["thread_key"] = f"telegram:chat:{n}"


def unique_generic_form(doc: dict, n: int) -> None:
    doc["id"] = f"form-{n}"
    doc["sender"].update(email=f"form{n}@velo.example", phone=phone(n))


def unique_whatsapp(doc: dict, n: int) -> None:
    value = doc["entry"][0]["changes"][0]["value"]
    wa_id = f"97298765{n:04d}"
    value["contacts"][0]["wa_id"] = wa_id
    value["messages"][0].update({"from": wa_id, "id": f"wamid.{n}"})


def unique_postmark(doc: dict, n: int) -> None:
    doc["MessageID"] = f"pm-{n}"
    doc["From"] = doc["FromFull"]["Email"] = f"pm{n}@sender.example"
    for header in doc["Headers"]:
        if header["Name"] == "Message-ID":
            header["Value"] = f"<pm-{n}@sender.example>"


def unique_twilio(fields: dict, n: int) -> None:
    fields["MessageSid"] = fields["SmsMessageSid"] = fields["SmsSid"] = f"SM{n:032x}"
    fields["From"] = phone(n)


def unique_sendgrid(fields: dict, n: int) -> None:
    fields["from"] = f"Sender {n} <sg{n}@sender.example>"
    fields["envelope"] = json.dumps({"to": ["inbound@inbound.example.com"], "from": f"sg{n}@sender.example"})
    fields["headers"] = fields["headers"].replace("Subject:", f"Message-ID: <sg-{n}@sender.example>\nSubject:", 1)


def _whatsapp_payloads() -> list[dict]:
    named = json.loads((DATA / "whatsapp" / "message.json").read_text(encoding="utf-8"))
    # One of each kind of message body the adapter reads (text, media, reply, contacts, location,
    # interactive, order, unsupported): the fields differ by kind.
    wanted = ("text", "document", "reply", "order", "unsupported")
    payloads = [named[name] for name in wanted if name in named]
    kinds = {p["entry"][0]["changes"][0]["value"]["messages"][0].get("type") for p in payloads}
    for payload in named.values():
        kind = payload["entry"][0]["changes"][0]["value"].get("messages", [{}])[0].get("type")
        if kind in ("contacts", "location", "interactive", "button") and kind not in kinds:
            payloads.append(payload)
            kinds.add(kind)
    return payloads


def _form_fields(path: Path) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(path.read_text(encoding="utf-8"), keep_blank_values=True))


def _multipart_fields(path: Path) -> dict[str, str]:
    fields = {}
    for part in path.read_text(encoding="utf-8").split("--xYzZY"):
        match = re.match(r'\s*Content-Disposition: form-data; name="([^"]+)"\n\n(.*)\n$', part, re.S)
        if match:
            fields[match.group(1)] = match.group(2)
    return fields


def _multipart_body(fields: dict[str, str]) -> bytes:
    parts = [
        f'--xYzZY\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n' for name, value in fields.items()
    ]
    return ("".join(parts) + "--xYzZY--\r\n").encode("utf-8", "surrogatepass")


def json_file(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


def http_file(content_type: str, body: bytes) -> bytes:
    return f"Content-Type: {content_type}\r\n\r\n".encode() + body


# spool name -> (adapter, kind, [(base document, make unique, serialise)])
SPOOLS = {
    "cw": (
        "chatwoot",
        "chat",
        [(json.loads((DATA / "chatwoot" / "message_created.json").read_text()), unique_chatwoot, json_file)],
    ),
    "chat": (
        "generic",
        "chat",
        [(json.loads((DATA / "generic" / "chat.json").read_text()), unique_generic_chat, json_file)],
    ),
    "form": (
        "generic",
        "webform",
        [(json.loads((DATA / "generic" / "webform.json").read_text()), unique_generic_form, json_file)],
    ),
    "wa": ("whatsapp", "chat", [(payload, unique_whatsapp, json_file) for payload in _whatsapp_payloads()]),
    "pm": (
        "postmark",
        "email",
        [(json.loads((DATA / "postmark" / "real-inbound-content.json").read_text()), unique_postmark, json_file)],
    ),
    "sms": (
        "twilio_sms",
        "sms",
        [
            (
                _form_fields(DATA / "twilio" / "inbound_sms.form"),
                unique_twilio,
                lambda fields: http_file(
                    "application/x-www-form-urlencoded", urllib.parse.urlencode(fields).encode("utf-8", "surrogatepass")
                ),
            ),
            (
                _form_fields(DATA / "twilio" / "inbound_mms.form"),
                unique_twilio,
                lambda fields: http_file(
                    "application/x-www-form-urlencoded", urllib.parse.urlencode(fields).encode("utf-8", "surrogatepass")
                ),
            ),
        ],
    ),
    "sg": (
        "sendgrid",
        "email",
        [
            (
                _multipart_fields(DATA / "sendgrid" / "default_data.txt"),
                unique_sendgrid,
                lambda fields: http_file("multipart/form-data; boundary=xYzZY", _multipart_body(fields)),
            )
        ],
    ),
}
# The names a sender's customer falls back to when the payload gives no name (the handle, the
# address, the phone): variants without a name whose address field is the hostile one.
NAME_FIELDS = {
    "cw": [("sender", "name"), ("conversation", "meta", "sender", "name")],
    "chat": [("sender", "name")],
    "form": [("sender", "name")],
    "wa": [("entry", 0, "changes", 0, "value", "contacts", 0, "profile", "name")],
    "pm": [("FromFull", "Name"), ("FromName",)],
    "sms": [],
    "sg": [],
}


def write_spools(root: Path) -> int:
    """Every variant of every payload into its spool's new/; how many files were written."""
    written, n = 0, 0
    for name, (_adapter, _kind, bases) in SPOOLS.items():
        new = root / name / "new"
        for base, make_unique, serialise in bases:
            shape = copy.deepcopy(base)
            make_unique(shape, 0)
            for path, _value in list(leaves(shape)):
                n += 1
                document = copy.deepcopy(base)
                make_unique(document, n)
                set_at(document, path, f"{_get(document, path)}{HOSTILE[n % len(HOSTILE)]}")
                (new / f"{n:05d}.{'json' if serialise is json_file else 'http'}").write_bytes(serialise(document))
                written += 1
            # Nameless variants: the customer's name is what the sender's address says.
            for unnamed in range(len(HOSTILE)):
                n += 1
                document = copy.deepcopy(base)
                make_unique(document, n)
                for field in NAME_FIELDS[name]:
                    try:
                        set_at(document, field, "")
                    except (KeyError, IndexError, TypeError):
                        pass
                _make_address_hostile(name, document, HOSTILE[unnamed])
                (new / f"{n:05d}.{'json' if serialise is json_file else 'http'}").write_bytes(serialise(document))
                written += 1
    # File names are the sender's too (a receiver keeps its own, but anyone can drop files in new/).
    hostile_names = ["evil\x1b]0;title\x07\u202e.json", "clear\x1b[2J\x9b31m.http", "bad\x1b]52;c;eA==\x07.txt"]
    for index, file_name in enumerate(hostile_names):
        (root / "chat" / "new" / file_name).write_bytes(
            b"{not json"
            if index
            else json_file(
                {"id": f"named-{index}", "kind": "chat", "sender": {"handle": f"file:{index}"}, "text": "hi"}
            )
        )
        written += 1
    return written


def _get(document: Any, path: tuple) -> Any:
    for key in path:
        document = document[key]
    return document


def _make_address_hostile(spool: str, document: Any, hostile: str) -> None:
    if spool == "cw":
        document["sender"]["id"] = f"{document['sender']['id']}{hostile}"
    elif spool == "chat":
        document["sender"]["handle"] += hostile
    elif spool == "form":
        document["sender"]["email"] = document["sender"]["email"].replace("@", hostile + "@")
    elif spool == "wa":
        document["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] += hostile
    elif spool == "pm":
        document["FromFull"]["Email"] = document["From"] = document["From"].replace("@", hostile + "@")
    elif spool == "sms":
        document["To"] = document["To"] + hostile
    elif spool == "sg":
        document["from"] = document["from"].replace("@", hostile + "@")


def config_text(root: Path) -> str:
    spools = "".join(
        f'\n[[spool]]\nname = "{name}"\npath = "{root / name}"\nadapter = "{adapter}"\nkind = "{kind}"\n'
        for name, (adapter, kind, _) in SPOOLS.items()
    )
    return (
        f'[database]\nurl = "sqlite:///{root / "agentdesk.db"}"\n[templates]\ndir = "{root / "templates"}"\n'
        + BASIC_CONFIG
        + spools
    )


def cli_env(root: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENTDESK_")}
    env.update(
        HOME=str(root / "home"),
        XDG_CONFIG_HOME=str(root / "home" / ".config"),
        XDG_DATA_HOME=str(root / "home" / ".local" / "share"),
        AGENTDESK_AGENT="tester",
        TZ="UTC",
        PYTHONUTF8="1",
        COLUMNS="200",
    )
    return env


def agentdesk(root: Path, *args: str, expect_ok: bool = True) -> tuple[str, str]:
    """Run `python -m agentdesk --config … ARGS` as a process: (stdout, stderr), decoded strictly."""
    done = subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(root / "config.toml"), *args],
        cwd=ROOT,
        env=cli_env(root),
        capture_output=True,
        timeout=120,
    )
    stdout, stderr = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    if expect_ok:
        assert done.returncode == 0, f"agentdesk {' '.join(args)} exited {done.returncode}: {stderr[-2000:]}"
    return stdout, stderr


# --- the desk: spools stored by the real sync, then older rows written raw -----------------------------


def _raw_rows(database: Path) -> None:
    """What an older version could have stored: raw controls in every column a screen shows."""
    hostile = "".join(HOSTILE)
    with sqlite3.connect(database) as connection:
        connection.execute(
            "UPDATE customer SET name = ?, organization = ?, notes = ? WHERE id IN "
            "(SELECT id FROM customer ORDER BY id LIMIT 3)",
            (f"Old {hostile} Name", f"Org {hostile}", f"notes {hostile}\nsecond line"),
        )
        connection.execute(
            "UPDATE identity SET address = address || ? WHERE id IN (SELECT id FROM identity ORDER BY id LIMIT 3)",
            (hostile,),
        )
        connection.execute(
            "UPDATE conversation SET subject = ? WHERE id IN (SELECT id FROM conversation ORDER BY id LIMIT 3)",
            (f"Old subject {hostile}",),
        )
        connection.execute(
            "UPDATE message SET body_text = ?, author = ? WHERE id IN (SELECT id FROM message ORDER BY id LIMIT 3)",
            (f"old body {hostile}", f"Old {hostile}"),
        )
        connection.execute(
            "UPDATE attachment SET filename = ? WHERE id IN (SELECT id FROM attachment LIMIT 3)", (f"old{hostile}.pdf",)
        )
        connection.execute(
            "UPDATE event SET detail = ? WHERE id IN (SELECT id FROM event ORDER BY id LIMIT 3)",
            (json.dumps({"address": f"raw {hostile}"}, ensure_ascii=False),),
        )
        connection.execute(
            "INSERT INTO syncstate (source, folder, last_uid, last_error) VALUES (?, ?, 0, ?)",
            ("cw", "old", f"LOGIN failed: {hostile}"),
        )


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile-desk")
    for name in SPOOLS:
        for sub in ("new", "cur", "tmp", "rejected"):
            (root / name / sub).mkdir(parents=True)
    (root / "templates").mkdir()
    (root / "config.toml").write_text(config_text(root), encoding="utf-8")
    written = write_spools(root)
    assert written > 300
    _stdout, stderr = agentdesk(root, "sync", "--once", expect_ok=False)
    assert_inert(stderr, "sync --once stderr")
    stored = _count(root, "message")
    assert stored > 200, f"only {stored} of {written} hostile payloads were stored: {stderr[-3000:]}"
    _assert_stored_inert(root / "agentdesk.db")
    _raw_rows(root / "agentdesk.db")
    return root


def _count(root: Path, table: str) -> int:
    with sqlite3.connect(root / "agentdesk.db") as connection:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _assert_stored_inert(database: Path) -> None:
    """Inert where it enters: every text a sender supplied was stored without a control."""
    one_line = {
        ("customer", "name"),
        ("identity", "address"),
        ("conversation", "subject"),
        ("message", "author"),
        ("message", "sender_address"),
        ("message", "external_id"),
        ("attachment", "filename"),
        ("attachment", "content_type"),
    }
    with sqlite3.connect(database) as connection:
        for table, column in sorted(one_line):
            for (value,) in connection.execute(f"SELECT {column} FROM {table}"):
                assert not FORBIDDEN.search(value or "") and "\n" not in (value or ""), (table, column, value)
                assert not re.search("[\u200e\u200f\u061c\t]", value or ""), (table, column, value)
        for (value,) in connection.execute("SELECT body_text FROM message"):
            assert_inert(value or "", "stored body")
        for (value,) in connection.execute("SELECT detail FROM event"):
            assert_inert(json.dumps(json.loads(value or "{}"), ensure_ascii=False), "stored audit detail")


def test_the_hostile_strings_were_stored_inert_and_visible(desk: Path) -> None:
    with sqlite3.connect(desk / "agentdesk.db") as connection:
        names = [name for (name,) in connection.execute("SELECT name FROM customer")]
    # Markers of every hostile string reached a customer's name (inert): the class, not one case.
    for hostile in HOSTILE:
        marker = re.search(r"MARK-[a-z0-9]+", hostile).group()
        assert any(marker in name for name in names), f"no customer name carries {marker}"
    for spool in SPOOLS:
        assert any((desk / spool / "cur").iterdir()), f"spool {spool} stored nothing"


# --- the CLI, as a process -------------------------------------------------------------------------


def _refs(desk: Path) -> list[str]:
    stdout, _ = agentdesk(desk, "list", "--view", "all", "--limit", "100000", "--json")
    return [doc["ref"] for doc in json.loads(stdout)]


def _customer_ids(desk: Path) -> list[int]:
    with sqlite3.connect(desk / "agentdesk.db") as connection:
        return [row[0] for row in connection.execute("SELECT id FROM customer ORDER BY id")]


@pytest.mark.parametrize(
    "args",
    [
        ("list", "--view", "all", "--limit", "100000"),
        ("list", "--view", "open"),
        ("list", "--view", "all", "--query", "MARK"),
        ("customer", "list", "--limit", "100000"),
        ("customer", "list", "MARK", "--limit", "100000"),
        ("audit",),
        ("stats",),
        ("spool", "list"),
        ("sync", "--once"),
    ],
    ids=" ".join,
)
def test_cli_text_output_is_inert(desk: Path, args: tuple[str, ...]) -> None:
    stdout, stderr = agentdesk(desk, *args, expect_ok=args[0] != "sync")
    assert_inert(stdout, f"{' '.join(args)} stdout")
    assert_inert(stderr, f"{' '.join(args)} stderr")
    if args[0] in ("list", "customer"):
        assert "MARK-" in stdout


@pytest.mark.parametrize(
    "args",
    [
        ("list", "--view", "all", "--limit", "100000", "--json"),
        ("customer", "list", "--limit", "100000", "--json"),
        ("audit", "--json"),
        ("stats", "--json"),
        ("spool", "list", "--json"),
        ("export",),
    ],
    ids=" ".join,
)
def test_cli_json_output_is_inert_and_parses(desk: Path, args: tuple[str, ...]) -> None:
    stdout, stderr = agentdesk(desk, *args)
    found = FORBIDDEN_IN_JSON.search(stdout.replace("\n", "").replace("\t", ""))
    assert found is None, (
        f"{' '.join(args)}: {found.group()!r} in {stdout[max(0, found.start() - 60) : found.start() + 60]!r}"
    )
    assert_inert(stderr, f"{' '.join(args)} stderr")
    if args[0] == "export":
        documents = [json.loads(line) for line in stdout.splitlines()]
        assert len(documents) == len(_refs(desk))
    else:
        json.loads(stdout)


def test_show_and_customer_show_of_a_sample_as_processes(desk: Path) -> None:
    refs, customers = _refs(desk), _customer_ids(desk)
    for ref in refs[:3] + refs[-2:]:
        for extra in ((), ("--json",)):
            stdout, stderr = agentdesk(desk, "show", ref, *extra)
            assert_inert(stdout + stderr, f"show {ref} {' '.join(extra)}")
    for customer in customers[:3] + customers[-2:]:
        for extra in ((), ("--json",)):
            stdout, stderr = agentdesk(desk, "customer", "show", str(customer), *extra)
            assert_inert(stdout + stderr, f"customer show {customer} {' '.join(extra)}")


def test_show_and_customer_show_of_every_one(desk: Path) -> None:
    """Every conversation and customer, text and JSON, through the CLI's entry point in one
    process (a process per conversation would take minutes), writing to real pipes."""
    script = (
        "import sys\n"
        "from agentdesk.cli import main\n"
        "config, refs, customers = sys.argv[1], sys.argv[2].split(','), sys.argv[3].split(',')\n"
        "for ref in refs:\n"
        "    main(['--config', config, 'show', ref]); main(['--config', config, 'show', ref, '--json'])\n"
        "for customer in customers:\n"
        "    main(['--config', config, 'customer', 'show', customer])\n"
        "    main(['--config', config, 'customer', 'show', customer, '--json'])\n"
    )
    refs, customers = _refs(desk), _customer_ids(desk)
    done = subprocess.run(
        [sys.executable, "-c", script, str(desk / "config.toml"), ",".join(refs), ",".join(map(str, customers))],
        cwd=ROOT,
        env=cli_env(desk),
        capture_output=True,
        timeout=600,
    )
    stdout, stderr = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    assert done.returncode == 0, stderr[-2000:]
    assert_inert(stdout, "show / customer show of every one")
    assert_inert(stderr, "show / customer show of every one (stderr)")
    assert stdout.count("MARK-") > len(HOSTILE)


# --- the TUI, rendered as the terminal would be sent it -----------------------------------------------


def _screen(app) -> tuple[str, str]:
    """(the text of every cell on screen, everything the driver would write to the terminal)."""
    compositor = app.screen._compositor
    cells = "\n".join("".join(segment.text for segment in strip) for strip in compositor.render_strips())
    return cells, compositor.render_full_update().render_segments(app.console)


def _assert_screen_inert(app, where: str) -> str:
    cells, terminal = _screen(app)
    assert_inert(cells, where)
    # The terminal stream holds Textual's own CSI sequences (colours, cursor) and nothing else.
    assert "\x1b]" not in terminal, f"{where}: an OSC sequence (hyperlink, title, clipboard) was drawn"
    assert "\x1bP" not in terminal and "\x1b_" not in terminal, f"{where}: a DCS or APC string was drawn"
    assert not re.search("[\x80-\x9f\u202a-\u202e\u2066-\u2069\x07]", terminal), where
    return cells


@pytest.fixture
def tui_desk(desk: Path, tmp_path: Path) -> Path:
    copy_root = tmp_path / "desk"
    copy_root.mkdir()
    shutil.copy(desk / "agentdesk.db", copy_root / "agentdesk.db")
    (copy_root / "templates").mkdir()
    text = (desk / "config.toml").read_text(encoding="utf-8").replace(str(desk), str(copy_root))
    (copy_root / "config.toml").write_text(text, encoding="utf-8")
    for name in SPOOLS:
        (copy_root / name).mkdir()
    (copy_root / "templates" / "quote.md").write_text(
        "---\ndescription: quotes the customer\n---\nHi {{ customer_first_name }} ({{ customer_name }}),\n\nthanks.\n",
        encoding="utf-8",
    )
    return copy_root


def test_tui_queue_thread_customer_pane_and_composer_are_inert(tui_desk: Path, monkeypatch) -> None:
    import asyncio

    monkeypatch.setenv("AGENTDESK_AGENT", "tester")
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    assert "MARK-" in asyncio.run(_drive_the_tui(tui_desk))


async def _drive_the_tui(tui_desk: Path) -> str:
    from agentdesk import config
    from agentdesk.app import conversations
    from agentdesk.tui.app import AgentDeskApp
    from agentdesk.tui.screens.composer import ComposerScreen
    from agentdesk.tui.widgets.customer_pane import CustomerPane
    from tests.tui.conftest import settle, workers_done

    settings = config.load(tui_desk / "config.toml")
    app = AgentDeskApp(settings, now=lambda: FIXED_NOW, poll=False, presence=False, agent="tester", default_view="all")
    app.CURSOR_BLINK = False
    with sqlite3.connect(tui_desk / "agentdesk.db") as connection:
        ids = [row[0] for row in connection.execute("SELECT id FROM conversation ORDER BY id")]
        hostile_names = [
            row[0]
            for row in connection.execute(
                "SELECT conversation.id FROM conversation JOIN customer ON customer.id = conversation.customer_id "
                "WHERE customer.name LIKE '%MARK-%' ORDER BY conversation.id"
            )
        ]
    seen = ""
    async with app.run_test(size=(180, 50)) as pilot:
        await settle(pilot, app)
        main = app.main
        seen += _assert_screen_inert(app, "first frame")
        # The queue, window by window, down to its last row.
        for _ in range(len(ids) // 40 + 1):
            await pilot.press("pagedown")
            await settle(pilot, app)
            seen += _assert_screen_inert(app, "queue")
        # Every conversation's thread beside its customer's card, drawn by the real widgets.
        for conversation_id in ids:
            main._show_thread(conversations.thread(app.desk, conversation_id))
            main.query_one(CustomerPane).display = True
            await pilot.pause()
            seen += _assert_screen_inert(app, f"thread and customer pane of conversation {conversation_id}")
        # The reply composer names the customer in its title (markup): for a sample of threads.
        drafts = []
        for conversation_id in ids[:2] + hostile_names[:: max(1, len(hostile_names) // 8)]:
            thread = conversations.thread(app.desk, conversation_id)
            app.push_screen(ComposerScreen(app.desk, thread, kind="reply", now=lambda: FIXED_NOW, open_editor=False))
            await pilot.pause()
            await workers_done(app)  # the envelope's reply-all is prefilled in a worker
            await pilot.pause()
            seen += _assert_screen_inert(app, f"composer of conversation {conversation_id}")
            # A draft from a template that quotes the customer's name (raw for the first customers).
            app.screen._use_template("t:quote")
            await pilot.pause()
            drafts.append(app.screen.query_one("#body").text)
            seen += _assert_screen_inert(app, f"composer draft of conversation {conversation_id}")
            app.pop_screen()
            await pilot.pause()
        # A toast quoting a sender's text.
        app.notify("".join(HOSTILE), title=HOSTILE[0])
        await pilot.pause()
        seen += _assert_screen_inert(app, "notification")
    assert any("MARK-" in draft for draft in drafts), drafts
    return seen
