"""Config that works when copied: every TOML snippet in the docs and config.example.toml is
parsed and validated by the same loader the app starts with, so a snippet a user pastes into
their config cannot stop the app from starting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentdesk import config

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"^```toml\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _snippets() -> list[tuple[str, str]]:
    found = []
    for path in sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")]):
        for number, match in enumerate(_BLOCK.finditer(path.read_text(encoding="utf-8")), start=1):
            found.append((f"{path.relative_to(ROOT)}#{number}", match.group(1)))
    return found


SNIPPETS = _snippets()


def test_there_are_snippets_to_check():
    assert len(SNIPPETS) >= 5


@pytest.mark.parametrize(("where", "text"), SNIPPETS, ids=[where for where, _ in SNIPPETS])
def test_a_docs_snippet_is_a_valid_config(where, text, tmp_path):
    config.parse(text, source=tmp_path / "config.toml")


def test_config_example_is_a_valid_config(tmp_path):
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    settings = config.parse(example, source=tmp_path / "config.toml")
    assert settings.mailbox and settings.spool and settings.sla_policy


def test_keys_snippet_remaps_a_dotted_binding_id():
    (text,) = [text for where, text in SNIPPETS if where.startswith("docs/keys.md")][:1]
    settings = config.parse(text)
    assert settings.keys["queue.down"] == "j,down,ctrl+n"


def test_an_unquoted_dotted_binding_id_says_how_to_write_it():
    with pytest.raises(
        config.ConfigError, match=r'keys.queue: binding ids with a dot are quoted in TOML: "queue.down"'
    ):
        config.parse('[keys]\nqueue.down = "j"\n')
