"""The CLI contract: commands, exit codes, and the JSON fields scripts depend on."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from conftest import FIXED_NOW
from factories import inbound, ingest

from agentdesk import cli
from agentdesk.store import db
from agentdesk.store.models import Outbox

CONTRACT_TOP = {
    "ref",
    "subject",
    "status",
    "priority",
    "assignee",
    "channel",
    "tags",
    "customer",
    "sla",
    "waiting_since",
}
CONTRACT_SLA = {"policy", "first_response_due", "next_response_due", "resolution_due", "state", "targets"}
CONTRACT_MESSAGE = {"direction", "kind", "bulk", "author", "at", "subject", "body_text", "external_id", "delivery"}
CONTRACT_HISTORY = {"ref", "subject", "status", "channel", "created_at"}


@pytest.fixture
def two_conversations(engine, policies):
    now = FIXED_NOW - timedelta(hours=2)
    first = ingest(engine, policies, inbound(at=now, external_id="m1@velo.example"))
    ingest(
        engine,
        policies,
        inbound(
            at=now + timedelta(minutes=5),
            subject="Re: Spokes keep breaking",
            body="Any news?",
            in_reply_to="m1@velo.example",
        ),
    )
    second = ingest(
        engine,
        policies,
        inbound(
            sender="+31 6 12345678",
            name="Greta Lindqvist",
            channel="sms",
            source="sms",
            subject="",
            body="Is my bike ready?",
            at=now + timedelta(minutes=30),
        ),
    )
    return f"AD-{first.conversation_id}", f"AD-{second.conversation_id}"


def test_every_command_has_help():
    parser = cli.build_parser()
    commands = [
        ["demo"],
        ["init"],
        ["sync"],
        ["webhook", "serve"],
        ["spool", "retry"],
        ["list"],
        ["show"],
        ["reply"],
        ["note"],
        ["set"],
        ["claim"],
        ["customer", "merge"],
        ["customer", "show"],
        ["customer", "list"],
        ["customer", "unmerge"],
        ["spool", "list"],
        ["sla", "explain"],
        ["sla", "recompute"],
        ["stats"],
        ["report"],
        ["audit"],
        ["export"],
        ["db", "copy"],
        ["doctor"],
    ]
    for command in commands:
        with pytest.raises(SystemExit) as exited:
            parser.parse_args([*command, "--help"])
        assert exited.value.code == 0, command


@pytest.mark.parametrize(
    "args, said",
    [
        (["attachment", "save", "AD-1", "abc"], "agentdesk attachment save: argument N: invalid int value: 'abc'"),
        (["forward", "AD-1"], "agentdesk forward: the following arguments are required: --to"),
        (["webhook"], "agentdesk webhook: the following arguments are required: COMMAND"),
    ],
)
def test_a_usage_error_is_one_line_that_says_where_the_usage_is(args, said, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(said) and f"`{said.split(':')[0]} --help`" in err


def test_list_json_carries_the_contract_fields(run, two_conversations):
    code, out, err = run("list", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [row["ref"] for row in rows] and {row["ref"] for row in rows} == set(two_conversations)
    for row in rows:
        assert row.keys() >= CONTRACT_TOP
        assert "messages" not in row and "history" not in row
        assert row["sla"].keys() >= CONTRACT_SLA
        assert row["sla"]["state"] in ("ok", "warning", "breached", "paused", "met")
        assert row["customer"]["name"] == "Greta Lindqvist"


def test_list_orders_by_urgency_and_respects_limit(run, two_conversations):
    email, sms = two_conversations
    code, out, _ = run("list", "--json", "--limit", "1")
    # The SMS first reply (20 min, calendar time) broke long before the email's (1 business hour).
    assert [row["ref"] for row in json.loads(out)] == [sms]


def test_show_json_carries_the_contract_fields(run, two_conversations):
    email, sms = two_conversations
    code, out, err = run("show", email, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert CONTRACT_TOP | {"messages", "history"} <= doc.keys()
    assert doc["customer"]["identities"] == [
        {"kind": "email", "address": "greta@velo.example"},
    ]
    assert [m["body_text"] for m in doc["messages"]] == ["The rear wheel lost three spokes this month.", "Any news?"]
    for message in doc["messages"]:
        assert message.keys() >= CONTRACT_MESSAGE
        assert (message["direction"], message["kind"], message["delivery"]) == ("inbound", "message", None)
    assert doc["messages"][0]["external_id"] == "m1@velo.example"
    assert doc["waiting_since"] == (FIXED_NOW - timedelta(hours=2)).isoformat()
    targets = {t["target"]: t for t in doc["sla"]["targets"]}
    assert doc["sla"]["policy"] == "email" and set(targets) >= {"first_reply", "resolution"}
    assert all(isinstance(t["state"], str) for t in targets.values())


def test_history_spans_channels_when_an_identity_links_them(run, engine, policies, two_conversations):
    email, sms = two_conversations
    # The SMS sender is a different identity: a different customer until an agent merges them.
    code, out, _ = run("show", sms, "--json")
    assert json.loads(out)["history"] == []
    later = ingest(engine, policies, inbound(at=FIXED_NOW, subject="Another question", body="Do you sell locks?"))
    code, out, _ = run("show", f"AD-{later.conversation_id}", "--json")
    history = json.loads(out)["history"]
    assert [h["ref"] for h in history] == [email]
    assert history[0].keys() >= CONTRACT_HISTORY


def test_reply_stores_the_message_with_its_outbox_row(run, engine, two_conversations, tmp_path):
    email, _ = two_conversations
    code, _, err = run(
        "reply", email, "--body-file", "-", "--status", "pending", stdin="Hi Greta,\nnew spokes are on the way.\n"
    )
    assert code == 0, err
    code, out, _ = run("show", email, "--json")
    doc = json.loads(out)
    reply = doc["messages"][-1]
    assert (reply["direction"], reply["delivery"], reply["author"]) == ("outbound", "queued", "Terry Tester")
    assert reply["body_text"].startswith("Hi Greta,\nnew spokes are on the way.")
    assert reply["body_text"].endswith("Terry, Example Support")  # the agent's signature
    assert reply["subject"] == f"Re: Spokes keep breaking [{email}]"
    assert doc["status"] == "pending" and doc["waiting_since"] is None
    assert {t["target"]: t["state"] for t in doc["sla"]["targets"]}["first_reply"] in ("met", "missed")
    with db.read_session(engine) as session:
        from sqlmodel import select

        outbox = session.exec(select(Outbox)).one()
        assert (outbox.state, outbox.channel, outbox.attempts) == ("queued", "email", 0)


def test_a_reply_no_sender_here_can_take_says_so_when_it_is_queued(run, config_file, two_conversations):
    """The test config has no mailbox: a reply on an email conversation would wait for ever on this
    host. The agent learns it on sending, not from a queue that never moves."""
    email, _ = two_conversations
    code, out, err = run("reply", email, "--body-file", "-", "--json", stdin="Hi Greta,\nthey ship today.\n")
    assert code == 0, err
    assert json.loads(out)["waits"].startswith("no sender for email is configured here")
    assert f"{email}: no sender for email is configured here" in err

    config_file.write_text(
        config_file.read_text()
        + '\n[[mailbox]]\nname = "support"\naddress = "support@example.com"\nhost = "127.0.0.1"\n'
        'username = "support"\npassword_command = "echo x"\n[mailbox.smtp]\nhost = "127.0.0.1"\n'
    )
    code, out, err = run("reply", email, "--body-file", "-", "--json", stdin="And a second note.\n")
    assert code == 0, err
    assert json.loads(out)["waits"] is None and "no sender" not in err


def test_reply_from_a_template_fills_placeholders(run, settings, two_conversations):
    email, _ = two_conversations
    settings.templates_dir.mkdir(parents=True)
    (settings.templates_dir / "thanks.md").write_text(
        "---\nshortcut: ty\n---\nHi {{ customer_first_name }}, thanks for writing about {{ ref }}.\n"
    )
    code, _, err = run("reply", email, "--template", "ty")
    assert code == 0, err
    _, out, _ = run("show", email, "--json")
    assert json.loads(out)["messages"][-1]["body_text"].startswith(f"Hi Greta, thanks for writing about {email}.")


def test_a_template_with_a_value_agentdesk_lacks_is_refused(run, settings, two_conversations):
    email, _ = two_conversations
    settings.templates_dir.mkdir(parents=True)
    (settings.templates_dir / "order.md").write_text("Your order {{ order_number }} ships today.\n")
    code, _, err = run("reply", email, "--template", "order")
    assert code == 2 and "order_number" in err
    _, out, _ = run("show", email, "--json")
    assert all(m["direction"] == "inbound" for m in json.loads(out)["messages"])


def test_note_set_claim_and_the_audit_log(run, two_conversations, monkeypatch):
    email, _ = two_conversations
    assert run("note", email, "-", stdin="Customer called, sending parts.")[0] == 0
    code, _, err = run("set", email, "--priority", "urgent", "--tag", "Warranty", "--tag", "vip", "--status", "open")
    assert code == 0, err
    assert run("set", email, "--untag", "vip")[0] == 0
    assert run("claim", email) == (0, "", f"{email} is yours\n")
    monkeypatch.setenv("AGENTDESK_AGENT", "dana")
    code, _, err = run("claim", email)
    assert code == cli.EXIT_CLAIMED_BY_OTHER and "already claimed by tester" in err
    _, out, _ = run("show", email, "--json")
    doc = json.loads(out)
    assert (doc["priority"], doc["status"], doc["tags"], doc["assignee"]) == ("urgent", "open", ["warranty"], "tester")
    assert doc["messages"][-1]["direction"] == "note"
    code, out, _ = run("audit", "--json")
    actions = [(e["agent"], e["action"]) for e in json.loads(out) if e["ref"] == email]
    assert ("tester", "note") in actions and ("tester", "priority") in actions and ("tester", "tag") in actions
    assert ("tester", "untag") in actions and ("tester", "claim") in actions
    assert ("dana", "claim") not in actions


def test_set_refuses_a_stale_version(run, two_conversations):
    email, _ = two_conversations
    _, out, _ = run("show", email, "--json")
    version = json.loads(out)["version"]
    assert run("set", email, "--priority", "high", "--if-version", str(version))[0] == 0
    code, _, err = run("set", email, "--priority", "low", "--if-version", str(version))
    assert code == 3 and "changed since you opened it" in err


def test_export_writes_one_show_document_per_line(run, two_conversations):
    code, out, _ = run("export", "--jsonl")
    lines = [json.loads(line) for line in out.splitlines()]
    assert {line["ref"] for line in lines} == set(two_conversations)
    assert all({"messages", "history"} <= line.keys() for line in lines)


def test_stats_json_has_the_contract_shape(run, two_conversations):
    code, out, _ = run("stats", "--json")
    stats = json.loads(out)
    assert stats["conversations"] == 2 and stats["customers"] == 2 and stats["identities"] == 2
    assert stats["messages"] == {"inbound": 3, "outbound": 0, "note": 0}
    assert stats["kinds"] == {"message": 3, "auto_reply": 0, "bounce": 0, "receipt": 0, "survey": 0}
    assert stats["outbox"] == {"queued": 0, "sent": 0, "failed": 0}
    assert stats["spool_rejected"] == 0 and stats["sources"] == {}


@pytest.mark.parametrize("args", [["show", "AD-999"], ["show", "banana"], ["set", "AD-1"], ["list", "--view", "nope"]])
def test_bad_input_exits_non_zero_with_one_line_on_stderr(run, two_conversations, args):
    with pytest.raises(SystemExit) if args[:2] == ["list", "--view"] else _no_exit():
        code, out, err = run(*args)
        assert code != 0 and out == "" and len(err.strip().splitlines()) == 1, err


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_any_command_creates_the_database(tmp_path):
    config = tmp_path / "c.toml"
    database = tmp_path / "x.db"
    config.write_text(f'[database]\nurl = "sqlite:///{database}"\n')
    result = subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(config), "list", "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [] and database.exists()


def test_the_default_database_location_is_created_but_an_explicit_one_is_not(tmp_path):
    import os

    home = tmp_path / "home"
    environment = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(tmp_path / "data")}
    default = tmp_path / "c.toml"
    default.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(default), "list", "--json"],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "agentdesk" / "agentdesk.db").exists()

    explicit = tmp_path / "e.toml"
    database = tmp_path / "deep" / "dir" / "x.db"
    explicit.write_text(f'[database]\nurl = "sqlite:///{database}"\n')
    result = subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(explicit), "list", "--json"],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert result.returncode != 0 and not (tmp_path / "deep").exists()
    assert result.stderr.count("\n") == 1 and f"{database.parent} of the database" in result.stderr


def test_init_writes_a_config_that_works(tmp_path, capsys):
    assert cli.main(["init", "--data-dir", str(tmp_path / "desk")]) == 0
    config = tmp_path / "desk" / "config.toml"
    assert config.exists() and (tmp_path / "desk" / "agentdesk.db").exists()
    assert cli.main(["--config", str(config), "doctor"]) == 0
    assert "[ok  ] database" in capsys.readouterr().out


def test_snooze_hides_a_conversation_until_its_time(run, two_conversations):
    email, sms = two_conversations
    assert run("set", email, "--snooze", "4h")[0] == 0
    _, out, _ = run("list", "--json")
    assert [row["ref"] for row in json.loads(out)] == [sms]
    _, out, _ = run("list", "--view", "snoozed", "--json")
    assert [row["ref"] for row in json.loads(out)] == [email]
    code, _, err = run("set", email, "--snooze", "next tuesday")
    assert code == 2 and "--snooze 'next tuesday'" in err
    assert run("set", email, "--snooze", "none")[0] == 0
    _, out, _ = run("list", "--json")
    assert {row["ref"] for row in json.loads(out)} == {email, sms}
