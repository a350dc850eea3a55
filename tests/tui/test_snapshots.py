"""Snapshots of the main screen, the composer and the help screen, wide and at 80×24.

Deterministic: the demo database is built with a fixed `now`, the app clock is frozen, cursors
don't blink, the poller is off and local time is UTC. Update with `pytest --snapshot-update`.
"""

from __future__ import annotations

import pytest

from tests.tui.conftest import settle

SIZES = [pytest.param((120, 40), id="120x40"), pytest.param((80, 24), id="80x24")]


async def _ready(pilot) -> None:
    await settle(pilot, pilot.app)


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare, make_app, size):
    assert snap_compare(make_app(), terminal_size=size, run_before=_ready)


@pytest.mark.parametrize("size", SIZES)
def test_composer(snap_compare, make_app, size):
    async def open_composer(pilot) -> None:
        await settle(pilot, pilot.app)
        await pilot.press("r")
        await settle(pilot, pilot.app)
        await pilot.press("ctrl+t", "enter")
        await settle(pilot, pilot.app)

    assert snap_compare(make_app(), terminal_size=size, run_before=open_composer)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, make_app, size):
    async def open_help(pilot) -> None:
        await settle(pilot, pilot.app)
        await pilot.press("question_mark")
        await settle(pilot, pilot.app)

    assert snap_compare(make_app(), terminal_size=size, run_before=open_help)


@pytest.mark.parametrize("size", [pytest.param((120, 40), id="120x40")])
def test_report(snap_compare, make_app, size):
    async def open_report(pilot) -> None:
        await settle(pilot, pilot.app)
        await pilot.press("R")
        await settle(pilot, pilot.app)

    assert snap_compare(make_app(), terminal_size=size, run_before=open_report)
