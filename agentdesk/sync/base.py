"""What the sync worker and its sources share: the `Source` protocol, a poll's report, the
context a source is built with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from agentdesk.errors import AgentdeskError

Progress = Callable[[int, int, str], None]


class SourceError(AgentdeskError):
    """A source could not be read (server unreachable, login refused, folder missing) or what it
    read could not be stored (the database's disk full).

    `report`: what the pass did before it failed (messages already committed are counted there),
    so a summary never says 0 stored when some were."""

    def __init__(self, message: str, *, report: PollReport | None = None):
        super().__init__(message)
        self.report = report


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


_libc_trim: Any = None


def release_freed_memory() -> None:
    """Hand the pages the C allocator holds free back to the system (glibc's `malloc_trim`; a
    no-op elsewhere). A source calls it after each stored batch: a batch's transient buffers
    leave holes between longer-lived allocations that glibc would otherwise keep, so a long pass
    (tens of thousands of spool files) grew the process by a few hundred bytes a file."""
    global _libc_trim
    if _libc_trim is None:
        _libc_trim = False
        try:
            import ctypes

            _libc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            pass
    if _libc_trim:
        _libc_trim(0)


@dataclass
class PollReport:
    source: str
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)


class Source(Protocol):
    name: str
    kind: str

    def poll(self, *, progress: Progress | None = None) -> PollReport: ...

    def wait(self, timeout: float) -> None: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


class SyncContext:
    """What sources need: settings, engine, SLA policies (clocks.Policies) and the clock.

    `load_policies` instead of `policies` builds them on first use: a pass with no new mail never
    needs them (nor the calendars they load).
    """

    def __init__(
        self,
        settings: Any,
        engine: Any,
        policies: Any = None,
        now_fn: Callable[[], datetime] = utcnow,
        *,
        load_policies: Callable[[], Any] | None = None,
    ):
        self.settings = settings
        self.engine = engine
        self._policies = policies
        self._load_policies = load_policies
        self.now_fn = now_fn

    @property
    def policies(self) -> Any:
        if self._policies is None and self._load_policies is not None:
            self._policies = self._load_policies()
        return self._policies

    @policies.setter
    def policies(self, value: Any) -> None:
        self._policies = value
