"""`agentdesk init`: a config that loads whatever the data directory is called, the next steps
on screen, and the agent's login where $USER is unset."""

from __future__ import annotations

import getpass
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentdesk import cli, config


@pytest.mark.parametrize("name", ['quote"d', "back\\slash", "tab\there", "ümlaut é", 'both \\" end\\'])
def test_init_with_any_directory_name_writes_valid_toml(tmp_path, capsys, name):
    data_dir = tmp_path / name
    assert cli.main(["init", "--data-dir", str(data_dir)]) == 0
    path = data_dir / "config.toml"
    settings = config.load(path)
    assert settings.database_url == f"sqlite:///{data_dir / 'agentdesk.db'}"
    assert settings.templates_dir == data_dir / "templates"
    assert (data_dir / "agentdesk.db").exists()
    assert cli.main(["--config", str(path), "doctor"]) == 0


def test_init_says_what_to_edit_next(tmp_path, capsys):
    data_dir = tmp_path / "my desk"
    assert cli.main(["init", "--data-dir", str(data_dir)]) == 0
    err = capsys.readouterr().err
    assert f"edit {data_dir / 'config.toml'}: add a [[mailbox]]" in err
    assert "[[spool]]" in err and "config.example.toml" in err
    assert f"put reply templates in {data_dir / 'templates'}" in err
    assert f"agentdesk --config '{data_dir / 'config.toml'}' doctor" in err
    assert "sync" in err


@given(st.text())
def test_toml_string_round_trips_any_text(text):
    assert tomllib.loads(f"value = {config.toml_string(text)}")["value"] == text.replace("\r\n", "\r\n")


def test_the_agent_is_the_login_without_user(monkeypatch):
    for variable in ("AGENTDESK_AGENT", "USER", "LOGNAME"):
        monkeypatch.delenv(variable, raising=False)
    assert config.current_agent() == getpass.getuser() != "agent"
