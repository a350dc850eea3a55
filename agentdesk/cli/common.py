"""What every command shares: the context, JSON output, the inert output streams, times and bodies
from the command line, exit codes and the one progress printer.

Imports here stay light (standard library, config, errors): every command, `--help` included,
loads this module.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from agentdesk import config
from agentdesk.errors import InvalidInput
from agentdesk.sanitize import escape_control, escape_json_controls

EXIT_OK = 0
EXIT_FAILED = 1  # the job ran and something in it failed (sync --once, spool retry, doctor)
EXIT_CLAIMED_BY_OTHER = 3  # `claim`: another agent holds the conversation
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Context:
    """What a command needs, loaded on first use so `--help` and errors stay instant."""

    config_path: Path | None
    now: datetime  # one instant for the whole command

    @cached_property
    def settings(self) -> config.Settings:
        return config.load(self.config_path)

    @cached_property
    def desk(self):
        """The acting agent's desk, which the actions of `agentdesk.app` take."""
        from agentdesk.app.desk import Desk

        return Desk(self.settings, agent=config.current_agent(), now=lambda: self.now)


def context(args: argparse.Namespace) -> Context:
    return Context(config_path=getattr(args, "config", None), now=_now())


def json_text(value: Any, *, indent: int | None = None) -> str:
    """`value` as JSON that is safe on a terminal: non-ASCII text as it is, but every control and
    bidi character as a `\\uXXXX` escape, so it parses back to exactly `value`."""
    return escape_json_controls(json.dumps(value, ensure_ascii=False, indent=indent))


def print_json(value: Any) -> None:
    sys.stdout.write(json_text(value, indent=2) + "\n")


def one_line(value: Any) -> str:
    """A value for one line of text output (a column, a name, a subject): newlines and tabs as
    spaces, anything a terminal would act on as a visible escape."""
    return escape_control("" if value is None else str(value), keep_lines=False)


# --- inert output ---------------------------------------------------------------------------------


class InertStream:
    """A text stream whose every write passes through `escape_control`: the last guard between a
    sender's text (stored now or by an older version) and the terminal. Newlines and tabs pass;
    JSON from `json_text` has nothing left to escape, so it passes unchanged."""

    def __init__(self, stream) -> None:
        self.unguarded = stream

    def write(self, text: str) -> int:
        return self.unguarded.write(escape_control(text))

    def writelines(self, lines: Iterable[str]) -> None:
        for text in lines:
            self.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unguarded, name)


@contextlib.contextmanager
def inert_output() -> Iterator[None]:
    """Standard output and error made `InertStream`s for the length of one command."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = InertStream(sys.stdout), InertStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


# --- how much a command says: -v/--verbose, -q/--quiet ------------------------------------------


@dataclass
class Verbosity:
    """What every command was asked to say: `-v` (log lines; `-vv` debug), `-q` (errors only)."""

    verbose: int = 0
    quiet: bool = False


VERBOSITY = Verbosity()


class ErrorsOnly:
    """Standard error under `--quiet`: only the lines that report a problem (they start with
    "agentdesk:"); what was done, progress and summaries are left out."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.startswith("agentdesk:"):
                self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def verbosity(args: argparse.Namespace) -> Iterator[None]:
    """Apply `-v`/`-q` for the length of one command: the log level of agentdesk's loggers, and
    under `--quiet` a standard error that keeps only errors."""
    import logging

    chosen = Verbosity(verbose=getattr(args, "verbose", 0) or 0, quiet=bool(getattr(args, "quiet", False)))
    saved_verbose, saved_quiet = VERBOSITY.verbose, VERBOSITY.quiet
    VERBOSITY.verbose, VERBOSITY.quiet = chosen.verbose, chosen.quiet
    logger = logging.getLogger("agentdesk")
    saved_level, handler = logger.level, None
    stream = sys.stderr
    if chosen.quiet:
        logger.setLevel(logging.WARNING)
        sys.stderr = ErrorsOnly(sys.stderr)
    elif chosen.verbose:
        from agentdesk.sanitize import InertLogFormatter

        logger.setLevel(logging.DEBUG if chosen.verbose > 1 else logging.INFO)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(InertLogFormatter("%(asctime)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False  # once, not again through a handler a command set up (sync)
    try:
        yield
    finally:
        if chosen.quiet:
            sys.stderr.flush()
            sys.stderr = stream
        if handler is not None:
            logger.removeHandler(handler)
            logger.propagate = True
        logger.setLevel(saved_level)
        VERBOSITY.verbose, VERBOSITY.quiet = saved_verbose, saved_quiet


def choices(values: Iterable[str]) -> str:
    return ", ".join(values)


# --- times and bodies -----------------------------------------------------------------------------


def parse_moment(text: str, *, option: str, now: datetime, ago: bool) -> datetime:
    """A time given on the command line: an ISO date or time (local time when it has no offset),
    or a duration like `7d` counted back from now (`ago`) or forward from now."""
    from agentdesk.domain import sla

    try:
        duration = sla.parse_duration(text)
    except ValueError:
        pass
    else:
        return now - duration if ago else now + duration
    from dateutil import parser as date_parser

    try:
        moment = date_parser.isoparse(text)
    except ValueError:
        example = "7d" if ago else "4h"
        raise InvalidInput(
            f"{option} {text!r}: expected a date like 2026-11-01, a time like 2026-11-01T09:00, "
            f"or a duration like {example}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the user's local time
    return moment.astimezone(timezone.utc)


def parse_since(text: str | None, *, option: str = "--since") -> datetime | None:
    """`--since` (or another bound in the past): None when not given."""
    return parse_moment(text, option=option, now=_now(), ago=True) if text else None


def local_time(iso_time: str) -> str:
    """Times are UTC inside; a person reads them in their own zone (local only at the edge)."""
    return datetime.fromisoformat(iso_time).astimezone().strftime("%a %d %b %Y %H:%M")


def read_body(path: str) -> str:
    """The text of `--body-file PATH`; `-` reads standard input."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"--body-file {path}: cannot read it: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"--body-file {path}: not UTF-8 text") from None


# --- progress ------------------------------------------------------------------------------------


class Progress:
    """The progress of a long job on stderr: a demo build, a database copy, a sync, an SLA recompute.

    Called as `progress(done, total, what)`. On a terminal, a bar redrawn in place (at most every
    REDRAW seconds), with the rate when the job counts a `unit`; in a log file, a line per tenth
    so a long run shows life, the last with the time taken when it counts a `unit`. A job of fewer
    than `min_total` items finishes before a bar is worth drawing and prints nothing.
    `count(done, what)` serves a job without a known total: a running count, on a terminal only.
    """

    REDRAW = 0.1  # seconds
    WIDTH = 30

    def __init__(self, *, unit: str = "", rate_unit: str = "", min_total: int = 0, stream=None) -> None:
        # The bar redraws its line with a carriage return, which an InertStream would escape; what
        # it draws is ours, and the job's name goes through `one_line`.
        stream = stream or sys.stderr
        self.stream = getattr(stream, "unguarded", stream)
        self.tty = self.stream.isatty()
        self.unit, self.rate_unit, self.min_total = unit, rate_unit or unit, min_total
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.counting = False

    def __call__(self, done: int, total: int, what: str) -> None:
        if total < self.min_total or VERBOSITY.quiet:
            return
        now = time.monotonic()
        if done == 0:
            self.started = now
        what = one_line(what)
        if not self.tty:
            step = max(total // 10, 1)
            if done == total or done // step != (done - 1) // step:
                text = f"{what}: {done}/{total}" + (f" {self.unit}" if self.unit else "")
                if done == total and self.unit:
                    text += f" in {now - self.started:.1f}s"
                print(text, file=self.stream, flush=True)
            return
        if done != total and now - self.last_draw < self.REDRAW:
            return
        self.last_draw = now
        filled = int(self.WIDTH * done / total) if total else self.WIDTH
        text = f"\r{what}: [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total}"
        if self.unit:
            rate = done / (now - self.started) if now > self.started else 0.0
            text += f" ({rate:.0f} {self.rate_unit}/s)"
        print(text, end="", file=self.stream, flush=True)
        if done == total:
            print(file=self.stream)

    def count(self, done: int, what: str) -> None:
        if self.tty and not VERBOSITY.quiet:
            self.counting = True
            print(
                f"\r{one_line(what)}: {done}" + (f" {self.unit}" if self.unit else ""),
                end="",
                file=self.stream,
                flush=True,
            )

    def finish(self) -> None:
        """End a running count's line."""
        if self.counting:
            print(file=self.stream)
            self.counting = False
