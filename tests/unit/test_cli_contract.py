"""The CLI contract kept: --json on the commands that change things and on sync --once, the exit
codes the README lists, every command's --help with an example and the meaning of REF, and
-v/--verbose and -q/--quiet on every command."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import FIXED_NOW
from factories import inbound, ingest

from agentdesk import cli
from agentdesk.cli import examples


@pytest.fixture
def ref(engine, policies) -> str:
    outcome = ingest(engine, policies, inbound(at=FIXED_NOW - timedelta(hours=1), external_id="m1@velo.example"))
    return f"AD-{outcome.conversation_id}"


def test_note_set_claim_print_what_they_did_as_json(run, ref):
    code, out, _ = run("note", ref, "-", "--json", stdin="Called them back.")
    assert code == 0 and json.loads(out) == {"ref": ref, "direction": "note", "author": "tester"}

    code, out, _ = run("set", ref, "--status", "pending", "--priority", "high", "--tag", "spokes", "--json")
    assert code == 0
    assert json.loads(out) == {
        "ref": ref,
        "changed": ["status", "priority", "tag"],
        "status": "pending",
        "priority": "high",
        "tags_added": ["spokes"],
        "tags_removed": [],
    }

    code, out, _ = run("claim", ref, "--json")
    assert code == 0 and json.loads(out) == {"ref": ref, "claimed": True, "assignee": "tester"}


def test_claim_held_by_another_exits_3_with_json(run, ref, monkeypatch):
    monkeypatch.setenv("AGENTDESK_AGENT", "dana")
    assert run("claim", ref)[0] == 0
    monkeypatch.setenv("AGENTDESK_AGENT", "tester")
    code, out, err = run("claim", ref, "--json")
    assert code == 3
    document = json.loads(out)
    assert document["claimed"] is False and "dana" in document["reason"]
    assert err.startswith("agentdesk: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["customer", "show", "99999"], 4),
        (["show", "AD-99999"], 4),
        (["claim", "AD-99999"], 4),
        (["customer", "show", "abc"], 2),
        (["list", "--query", "waiting:>abc"], 2),
    ],
)
def test_exit_codes_as_the_readme_says(run, ref, args, code):
    status, out, err = run(*args)
    assert status == code, err
    assert out == "" and err.startswith("agentdesk: ") and err.count("\n") == 1


def test_sync_once_json_says_what_was_stored_and_rejected(tmp_path, config_file, capsys):
    spool = tmp_path / "chat"
    for sub in ("tmp", "new", "cur", "rejected"):
        (spool / sub).mkdir(parents=True)
    good = {
        "id": "tg-1",
        "kind": "chat",
        "sender": {"name": "Greta", "handle": "telegram:881"},
        "conversation": {"thread_key": "telegram:chat:881"},
        "text": "Is my bike ready?",
        "timestamp": "2026-11-20T10:00:00Z",
    }
    (spool / "new" / "1-good.json").write_text(json.dumps(good))
    (spool / "new" / "2-bad.json").write_text("{not json")
    config_file.write_text(config_file.read_text() + f'\n[[spool]]\nname = "chat"\npath = "{spool}"\nkind = "chat"\n')
    code = cli.main(["--config", str(config_file), "sync", "--once", "--json"])
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert code == 0, captured.err
    assert document["ok"] is True and document["stored"] == 1 and document["rejected"] == 1
    (source,) = document["sources"]
    assert source["name"] == "chat" and source["stored"] == 1
    assert [r["file"] for r in source["rejected"]] == ["2-bad.json"] and source["rejected"][0]["reason"]
    assert document["delivery"] == {"sent": 0, "retrying": 0, "failed": 0, "possibly_sent": 0, "errors": []}


def test_every_command_has_an_example_and_says_what_ref_is(capsys):
    parser = cli.build_parser()
    for path, command in examples.commands(parser):
        help_text = command.format_help()
        assert "example: " in help_text and "agentdesk" in command.epilog, path
        for action in examples.ref_arguments(command):
            assert action.help, (path, action.dest)
        if examples.ref_arguments(command) and not command.epilog.startswith("example: agentdesk kb"):
            assert "AD-1042" in help_text, path


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_and_verbose_on_every_command(run, ref, where):
    code, out, err = run("note", ref, "-", stdin="first")
    assert code == 0 and "note added" in err
    code, out, err = run(*(["-q", "note", ref, "-"] if where == "before" else ["note", ref, "-", "-q"]), stdin="x")
    assert code == 0 and err == ""
    code, out, err = run(*(["-q", "show", "AD-99999"] if where == "before" else ["show", "AD-99999", "-q"]))
    assert code == 4 and err.startswith("agentdesk: no conversation AD-99999")
    parser = cli.build_parser()
    for path, command in examples.commands(parser):
        options = {option for action in command._actions for option in action.option_strings}
        assert {"-v", "--verbose", "-q", "--quiet"} <= options, path


def test_verbose_logs_sync(tmp_path, config_file, capsys):
    code = cli.main(["--config", str(config_file), "sync", "--once", "-v"])
    err = capsys.readouterr().err
    assert code == 0
    assert "sync: one pass over no sources: add a [[mailbox]] or [[spool]]" in err
