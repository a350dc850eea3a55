"""What every command's `--help` ends with: an example, and what REF means.

`document(parser)` walks the built parser and gives each command without an epilog of its own the
example below, and each REF argument without help the one meaning of REF; tests/unit/test_cli_contract.py
checks that no command is left without.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

REF_HELP = "a conversation: its reference as `list` shows it (AD-1042), or just the number (1042)"

EXAMPLES = {
    "": "agentdesk --config ~/.local/share/agentdesk/demo/config.toml",
    "demo": "agentdesk demo --seed-only --data-dir /tmp/demo",
    "init": "agentdesk init --data-dir /var/lib/agentdesk",
    "sync": "agentdesk sync --once --source support --json",
    "webhook serve": "agentdesk webhook serve --host 127.0.0.1 --port 8025",
    "spool retry": "agentdesk spool retry sms --json",
    "spool list": "agentdesk spool list --json",
    "spool clean": "agentdesk spool clean sms",
    "list": "agentdesk list --view all --query 'tag:warranty waiting:>2h' --json",
    "show": "agentdesk show AD-1042 --json",
    "note": "echo 'Called them back' | agentdesk note AD-1042 - --json",
    "set": "agentdesk set AD-1042 --status pending --tag waiting-on-parts --assign me --json",
    "claim": "agentdesk claim AD-1042 --json || echo 'someone else has it'",
    "resend": "agentdesk resend AD-1042 3",
    "undo": "agentdesk undo AD-1042 --json || echo 'changed since: look again'",
    "macro": "agentdesk macro refund-done AD-1042 AD-1043 --json",
    "move": "agentdesk move AD-1042 3 --to new --json",
    "spam": "agentdesk spam AD-1042 AD-1043",
    "block": "agentdesk block @spam.example",
    "unblock": "agentdesk unblock @spam.example",
    "blocked": "agentdesk blocked --json",
    "customer merge": "agentdesk customer merge AD-1042 AD-1077",
    "customer unmerge": "agentdesk customer unmerge AD-1077",
    "customer show": "agentdesk customer show 42 --json",
    "customer list": "agentdesk customer list anke --json",
    "sla explain": "agentdesk sla explain AD-1042",
    "sla recompute": "agentdesk sla recompute --if-changed",
    "stats": "agentdesk stats --json",
    "report": "agentdesk report --since 30d --json",
    "audit": "agentdesk audit --since 7d --ref AD-1042",
    "export": "agentdesk export --since 2026-11-01 > conversations.jsonl",
    "db copy": "agentdesk db copy --to postgresql://agentdesk@db.example.com/agentdesk",
    "doctor": "agentdesk doctor --json",
    "oauth login": "agentdesk oauth login support",
    "oauth status": "agentdesk oauth status --json",
    "oauth logout": "agentdesk oauth logout support",
}


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command's parser with its path (`("spool", "retry")`); groups themselves are not commands."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not path or not groups:
        yield path, parser
    for group in groups:
        for name, sub in group.choices.items():
            yield from commands(sub, (*path, name))


def ref_arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not a.option_strings and str(a.metavar).startswith("REF")]


def document(parser: argparse.ArgumentParser) -> None:
    for path, command in commands(parser):
        example = EXAMPLES.get(" ".join(path))
        if example and not command.epilog:
            command.epilog = f"example: {example}"
        for action in ref_arguments(command):
            if not action.help:
                action.help = REF_HELP
