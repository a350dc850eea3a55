"""`agentdesk doctor` on local things: the config, the schema, templates, spools, the webhook port.
Each failing or warning line says what to do next; `--json`; the exit status. (Against real IMAP
and SMTP servers: tests/integration/email/test_doctor.py.)"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from agentdesk import cli
from agentdesk.app import doctor
from agentdesk.store import db, migrations


def _doctor(config: Path, capsys) -> tuple[int, dict[str, dict]]:
    code = cli.main(["--config", str(config), "doctor", "--json"])
    checks = json.loads(capsys.readouterr().out)
    return code, {check["name"]: check for check in checks}


def test_a_config_error_exits_2_with_what_to_do(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text('[[mailbox]]\nname = "support"\nport = "993"\n')
    code, checks = _doctor(config, capsys)
    assert code == 2
    assert checks["config"]["status"] == "fail"
    assert "config.example.toml" in checks["config"]["fix"]


def test_no_sources_points_to_mailbox_spool_templates_and_sync(config_file, capsys):
    code, checks = _doctor(config_file, capsys)
    assert code == 0
    sources = checks["sources"]
    assert sources["status"] == "warn"
    for words in (
        "[[mailbox]]",
        "[[spool]]",
        str(config_file.parent / "templates"),
        "agentdesk sync",
        str(config_file),
    ):
        assert words in sources["fix"]
    # On the terminal, the fix is the line under the warning.
    assert cli.main(["--config", str(config_file), "doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("[warn] sources:"))
    assert lines[index + 1].strip().startswith("fix: add to")


def test_templates_render_with_a_sample_conversation(config_file, capsys):
    templates = config_file.parent / "templates"
    templates.mkdir()
    (templates / "thanks.md").write_text("Hi {{ customer_first_name }},\n\nthanks!\n{{ agent_signature }}\n")
    (templates / "broken.md").write_text("Hi {{ customer_first_name }\n")
    (templates / "typo.md").write_text("Hi {{ custmer_name }},\n")
    config_file.write_text(
        config_file.read_text() + f'\n[[spool]]\nname = "chat"\npath = "{config_file.parent}/chat"\n'
        'receipt = "got-it"\n'
    )
    code, checks = _doctor(config_file, capsys)
    assert code == 1
    broken = checks["template broken"]
    assert broken["status"] == "fail" and "line 1" in broken["detail"]
    assert broken["fix"] == f"edit {templates / 'broken.md'}"
    typo = checks["template typo"]
    assert typo["status"] == "warn" and "custmer_name" in typo["detail"] and "customer_name" in typo["fix"]
    assert "template thanks" not in checks
    assert "2 of 3 template(s) render" in checks["templates"]["detail"]
    receipt = checks["spool chat receipt"]
    assert receipt["status"] == "fail" and "got-it" in receipt["detail"]


def test_a_database_newer_than_this_agentdesk_fails_with_the_fix(config_file, capsys):
    settings_url = f"sqlite:///{config_file.parent / 'agentdesk.db'}"
    db.open_database(settings_url).dispose()
    engine = db.create_database_engine(settings_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO schema_revision (revision, name, applied_at) VALUES (?, 'future', '2030-01-01')",
            (migrations.HEAD + 1,),
        )
    engine.dispose()
    code, checks = _doctor(config_file, capsys)
    assert code == 1
    assert checks["schema"]["status"] == "fail"
    assert f"revision {migrations.HEAD + 1}, newer" in checks["schema"]["detail"]
    assert "upgrade agentdesk" in checks["schema"]["fix"]


def test_schema_at_the_current_revision(config_file, capsys):
    code, checks = _doctor(config_file, capsys)
    assert checks["schema"]["detail"] == f"no database yet: created at revision {migrations.HEAD}, the current one"
    code, checks = _doctor(config_file, capsys)
    assert checks["schema"] == {
        "name": "schema",
        "status": "ok",
        "detail": f"revision {migrations.HEAD}, the current one",
        "fix": "",
    }


def test_a_spool_its_group_cannot_write_is_a_warning_with_the_chmod(tmp_path):
    spool = tmp_path / "chat"
    for sub in ("tmp", "new", "cur", "rejected"):
        (spool / sub).mkdir(parents=True)
    for directory in (spool, *spool.iterdir()):
        os.chmod(directory, 0o755)
    check = doctor._spool_permissions("spool[0] (chat)", spool)
    assert check.status == "warn"
    assert f"chmod -R g+rwX {spool}" in check.fix
    for directory in (spool, *spool.iterdir()):
        os.chmod(directory, 0o2775)
    check = doctor._spool_permissions("spool[0] (chat)", spool)
    assert check.status == "ok" and "and the group" in check.detail


def test_the_webhook_port_free_ours_or_taken():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert doctor._webhook_port_check(port).status == "ok"

    with socket.socket() as other:  # another program that speaks no HTTP
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = doctor._webhook_port_check(other.getsockname()[1])
    assert taken.status == "fail" and "taken by another program" in taken.detail
    assert "--port" in taken.fix

    from agentdesk.channels.webhook import receiver

    server = receiver.make_server({}, port=0)
    thread = receiver.start_in_thread(server)
    try:
        ours = doctor._webhook_port_check(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert ours.status == "ok" and "is listening" in ours.detail


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["ok", "warn"], 0),
        (["ok", "fail"], 1),
    ],
)
def test_exit_status(statuses, expected):
    checks = [doctor.Check("config", "ok", "")] + [doctor.Check(f"c{i}", s, "") for i, s in enumerate(statuses)]
    assert doctor.exit_status(checks) == expected
