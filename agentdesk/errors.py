"""Errors a user can hit, each with a message that says what went wrong and what to do next.

The CLI prints `str(error)` on one line and exits with `exit_code`; the TUI shows it in a
notification. Nothing here imports anything heavier than the standard library.
"""


class AgentdeskError(Exception):
    """Base of every error that is the user's to act on (as opposed to a bug)."""

    exit_code = 1


class ConfigError(AgentdeskError):
    """The config file is missing, unreadable, or a key has a wrong name, type or value."""

    exit_code = 2


class NotFound(AgentdeskError):
    """A reference (conversation, customer, template) names nothing that exists."""

    exit_code = 4


class InvalidInput(AgentdeskError):
    """An argument or value given on the command line or in the UI is not acceptable."""

    exit_code = 2


class Conflict(AgentdeskError):
    """Someone else changed the thing first (claimed it, updated it); nothing was overwritten."""

    exit_code = 3
