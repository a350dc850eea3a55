"""Fixtures of the unit tests that drive the CLI."""

from __future__ import annotations

import io
import sys

import pytest

from agentdesk import cli


@pytest.fixture
def run(config_file, capsys):
    """Run the CLI in-process against the test config; returns (exit code, stdout, stderr)."""

    def invoke(*args: str, stdin: str | None = None):
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            code = cli.main(["--config", str(config_file), *args])
        finally:
            sys.stdin = sys.__stdin__
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke
