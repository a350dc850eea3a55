"""Where agentdesk keeps things by default, following the XDG base directory spec."""

from __future__ import annotations

import os
from pathlib import Path

APP = "agentdesk"

# Where `agentdesk webhook serve` listens unless told otherwise (and where `doctor` looks).
WEBHOOK_PORT = 8025


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "")
    # The spec says relative paths are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / APP


def data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / APP


def state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / APP


def default_config_path() -> Path:
    """$AGENTDESK_CONFIG if set, else the XDG config dir's config.toml."""
    explicit = os.environ.get("AGENTDESK_CONFIG")
    if explicit:
        return Path(explicit)
    return config_dir() / "config.toml"


def demo_dir() -> Path:
    return data_dir() / "demo"


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'agentdesk.db'}"


def example_config() -> Path | None:
    """config.example.toml, every key documented: installed inside the package, or at the top of a
    source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "config.example.toml", here.parent / "config.example.toml"):
        if candidate.is_file():
            return candidate
    return None
