"""Config: strict typed loading with messages that name the key, secrets from commands, the example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentdesk import config, locations
from agentdesk.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent.parent / "config.example.toml"


def _missing_keys(cls, data, prefix="") -> list[str]:
    """Keys of the settings model that the example does not set, walking tables and arrays."""
    import dataclasses
    import typing

    missing = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.metadata.get("internal"):
            continue
        key = f"{prefix}{field.name}"
        if field.name not in data:
            missing.append(key)
            continue
        value, kind = data[field.name], hints[field.name]
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        inner = args[-1] if origin in (list, dict) else kind
        if not dataclasses.is_dataclass(inner):
            continue
        if origin is list:
            entries = value
        elif origin is dict:
            entries = list(value.values())
        else:
            entries = [value]
        if not entries:
            missing.append(f"{key} (an example entry)")
        # Every key must be shown in at least one of the entries.
        per_entry = [set(_missing_keys(inner, entry, f"{key}.")) for entry in entries]
        missing.extend(sorted(set.intersection(*per_entry)) if per_entry else [])
    return missing


def test_the_example_config_loads_and_documents_every_key():
    import tomllib

    text = EXAMPLE.read_text(encoding="utf-8")
    settings = config.parse(text, source=EXAMPLE)
    assert settings.mailbox and settings.spool and settings.sla_policy and settings.calendar
    assert _missing_keys(config.Settings, tomllib.loads(text)) == []
    for key, doc in config.documented_keys():
        assert doc, f"{key} has no documentation in the settings model"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[databse]\nurl = 'x'", r"databse: unknown key \(did you mean `database`\?\)"),
        (
            "[[mailbox]]\nname='a'\naddress='a@b'\nhost='h'\nprot=993",
            r"mailbox\[0\]\.prot: unknown key \(did you mean `port`\?\)",
        ),
        (
            "[[mailbox]]\nname='a'\naddress='a@b'\nhost='h'\nport='993'",
            r"mailbox\[0\]\.port: expected an integer, got a string '993'",
        ),
        (
            "[[mailbox]]\nname='a'\naddress='a@b'\nhost='h'\nidle='yes'",
            r"mailbox\[0\]\.idle: expected true or false, got a string",
        ),
        (
            "[[mailbox]]\nname='a'\naddress='a@b'\nhost='h'\nport=true",
            r"mailbox\[0\]\.port: expected an integer, got a boolean",
        ),
        (
            "[[mailbox]]\nname='a'\naddress='a@b'\nhost='h'\ntls='tls'",
            r"mailbox\[0\]\.tls: expected one of 'ssl', 'starttls', 'none', got 'tls'",
        ),
        (
            "[[mailbox]]\nname='a'\naddress='a@b'\nhost='h'\nafter_fetch='delete'",
            r"mailbox\[0\] \(a\)\.after_fetch: expected keep \| seen \| move:Folder",
        ),
        ("[[mailbox]]\nname='a'\nhost='h'", r"mailbox\[0\]\.address: required key is missing"),
        ("[[spool]]\nname='s'\npath='/x'\nadapter='telegram'", r"spool\[0\]\.adapter: expected one of 'generic'"),
        ("mailbox = 'imap.example.com'", r"mailbox: expected a list of tables, got a string"),
        ("[[sla_policy]]\nname='p'\nfirst_reply='soon'", r"sla_policy\[0\] \(p\)\.first_reply: .*'soon'"),
        ("[[sla_policy]]\nname='p'\ncalendar='office'", r"sla_policy\[0\] \(p\)\.calendar: no calendar named 'office'"),
        (
            "[[sla_policy]]\nname='p'\nwarning='150%'",
            r"sla_policy\[0\] \(p\)\.warning: expected a share between 0% and 100%",
        ),
        ("[[calendar]]\nname='c'\ntimezone='Mars/Olympus'", r"calendar\[0\] \(c\): .*Mars/Olympus"),
        ("[[calendar]]\nname='c'\nhours={mon=['17:00-09:00']}", r"calendar\[0\] \(c\): .*17:00-09:00"),
        ("[keys]\nreply = 3", r"keys\.reply: expected a string, got an integer 3"),
        ("not toml at all [", r"not valid TOML"),
    ],
)
def test_a_bad_config_names_the_key_and_what_was_expected(text, message):
    with pytest.raises(ConfigError, match=message):
        config.parse(text)


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[database]\nuri = 'sqlite://'\n")
    with pytest.raises(ConfigError, match=re.escape(str(path)) + r": database\.uri: unknown key"):
        config.load(path)


def test_a_named_config_that_does_not_exist_is_an_error_but_the_default_may_be_absent(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "missing.toml")
    settings = config.load()  # $HOME is a fresh directory in tests
    assert settings.database_url == locations.default_database_url()


def test_password_command_output_is_the_secret():
    settings = config.parse(
        "[[mailbox]]\nname='support'\naddress='s@x'\nhost='h'\npassword_command='printf \"s3cret\\\\nignored\"'\n"
    )
    assert settings.mailbox[0].password("mailbox[0]") == "s3cret"


def test_a_failing_password_command_names_the_key_and_the_reason():
    settings = config.parse(
        "[[mailbox]]\nname='support'\naddress='s@x'\nhost='h'\n"
        "password_command='echo \"gpg: decryption failed\" >&2; exit 2'\n"
    )
    with pytest.raises(ConfigError) as raised:
        settings.mailbox[0].password("mailbox[0] (support)")
    message = str(raised.value)
    assert "mailbox[0] (support).password_command" in message
    assert "exit status 2" in message and "gpg: decryption failed" in message


def test_a_password_command_that_prints_nothing_is_an_error():
    settings = config.parse("[[spool]]\nname='sms'\npath='/x'\nsecret_command='true'\n")
    with pytest.raises(ConfigError, match=r"spool\[0\]\.secret_command: .*printed nothing"):
        settings.spool[0].secret("spool[0]")


def test_xdg_locations_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert locations.default_config_path() == tmp_path / "cfg" / "agentdesk" / "config.toml"
    assert locations.data_dir() == tmp_path / "data" / "agentdesk"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/path")  # invalid per the spec: ignored
    assert locations.data_dir() == Path.home() / ".local/share/agentdesk"
    monkeypatch.setenv("AGENTDESK_CONFIG", str(tmp_path / "elsewhere.toml"))
    assert locations.default_config_path() == tmp_path / "elsewhere.toml"


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[templates]\ndir = 'my-templates'\n")
    assert config.load(path).templates_dir == tmp_path / "my-templates"
