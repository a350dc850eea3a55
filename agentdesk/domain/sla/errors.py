"""The SLA package's errors: a duration it cannot read, calendar or policy settings that cannot work."""

from __future__ import annotations

from agentdesk.errors import ConfigError, InvalidInput


# Both errors are ValueErrors (what callers of a parser expect) and AgentdeskErrors (so the CLI
# prints them on one line with the right exit status instead of a traceback).
class InvalidDuration(InvalidInput, ValueError):
    """A duration string that is not in the accepted "1d 4h" form."""


class SlaConfigError(ConfigError, ValueError):
    """A calendar or SLA policy whose settings cannot work."""
