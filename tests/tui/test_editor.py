"""The composer's $EDITOR path: the draft goes to a temporary file, the editor runs, the text comes back."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

from agentdesk.tui.screens.composer import ComposerScreen, edit_in_editor
from tests.tui.conftest import settle

SIZE = (120, 40)


@pytest.fixture
def appending_editor(tmp_path: Path) -> tuple[str, Path]:
    """An "editor" that records the file it was given and appends a line to it."""
    seen = tmp_path / "seen.txt"
    script = tmp_path / "editor.py"
    script.write_text(
        "import sys\n"
        "path = sys.argv[-1]\n"
        f"open({str(seen)!r}, 'w', encoding='utf-8').write(path)\n"
        "with open(path, 'a', encoding='utf-8') as handle:\n"
        "    handle.write('Added in the editor — ünïcode.\\n')\n",
        encoding="utf-8",
    )
    return f"{sys.executable} {script}", seen


def test_the_editor_edits_the_draft_in_a_temporary_file_that_is_removed(appending_editor):
    command, seen = appending_editor
    text = edit_in_editor("Hi Greta,\n\n", command)
    assert text == "Hi Greta,\n\nAdded in the editor — ünïcode.\n"
    path = Path(seen.read_text(encoding="utf-8"))
    assert path.name.startswith("agentdesk-") and path.suffix == ".txt"
    assert not path.exists()


def test_an_editor_that_exits_without_saving_returns_the_draft_unchanged(tmp_path):
    assert edit_in_editor("unchanged\n", f"{sys.executable} -c pass") == "unchanged\n"


def test_a_missing_editor_raises_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(FileNotFoundError):
        edit_in_editor("text", str(tmp_path / "no-such-editor"))
    assert list(tmp_path.iterdir()) == []


async def test_e_opens_the_editor_and_its_text_lands_in_the_composer(make_app, appending_editor, monkeypatch):
    command, _ = appending_editor
    monkeypatch.setenv("EDITOR", command)
    monkeypatch.delenv("VISUAL", raising=False)
    suspended = []

    @contextlib.contextmanager
    def suspend(self):  # headless there is no terminal to hand over; record that the app asked
        suspended.append(True)
        yield

    app = make_app()
    monkeypatch.setattr(type(app), "suspend", suspend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("e")
        await settle(pilot, app)
        composer = app.screen
        assert isinstance(composer, ComposerScreen)
        await pilot.pause()
        body = composer.query_one("#body").text
        assert suspended == [True]
        assert body.endswith("Added in the editor — ünïcode.\n")


async def test_without_a_terminal_to_hand_over_the_composer_says_so(make_app, monkeypatch):
    monkeypatch.setenv("EDITOR", "true")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await settle(pilot, app)
        composer = app.screen
        before = composer.query_one("#body").text
        messages = []
        monkeypatch.setattr(composer, "notify", lambda text, **kwargs: messages.append(text))
        await pilot.press("ctrl+e")
        await pilot.pause()
        assert any("cannot open $EDITOR (true)" in text for text in messages)
        assert composer.query_one("#body").text == before
