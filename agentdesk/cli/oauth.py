"""`agentdesk oauth login|status|logout`: sign a provider's mailbox in, show who is signed in."""

from __future__ import annotations

import argparse
import sys

from agentdesk.cli.common import EXIT_FAILED, context, print_json


def cmd_oauth_login(args: argparse.Namespace) -> int:
    from agentdesk.app import oauth

    def show_code(code) -> None:
        # On stdout and flushed at once: the person (or a script) reads it while we wait.
        print(
            f"To sign in, open {code.verification_uri} in a browser (any machine) and enter the code {code.user_code}",
            flush=True,
        )
        print(
            f"Waiting for the sign-in (the code expires in {max(0, int(code.expires_at - _now())) // 60} min)…",
            file=sys.stderr,
            flush=True,
        )

    status = oauth.login(context(args).settings, args.mailbox, show_code=show_code)
    if args.json:
        print_json(status.document())
    else:
        print(f"{status.mailbox}: {status.line()}; kept in {status.kept_in}")
    return 0


def cmd_oauth_status(args: argparse.Namespace) -> int:
    from agentdesk.app import oauth

    statuses = oauth.status(context(args).settings, args.mailbox)
    if args.json:
        print_json([status.document() for status in statuses])
    else:
        if not statuses:
            print('no mailbox has a provider (provider = "microsoft365" or "gmail")')
        for status in statuses:
            print(f"{status.mailbox}: {status.line()}")
    return EXIT_FAILED if any(s.state in ("signed-out", "revoked") for s in statuses) else 0


def cmd_oauth_logout(args: argparse.Namespace) -> int:
    from agentdesk.app import oauth

    status = oauth.logout(context(args).settings, args.mailbox)
    if args.json:
        print_json(status.document())
    else:
        print(f"{status.mailbox}: sign-in forgotten here; revoke it at the provider too if the machine is gone")
    return 0


def _now() -> float:
    import time

    return time.time()


def add_commands(commands, command) -> None:
    """The `oauth` group, added by parser.build_parser."""
    group = commands.add_parser("oauth", help="sign a Microsoft 365 or Gmail mailbox in (OAuth device code)")
    sub = group.add_subparsers(title="commands", metavar="COMMAND", required=True)
    login = command(
        "login",
        cmd_oauth_login,
        "sign a provider's mailbox in: prints a URL and a code to enter in any browser, waits, keeps "
        "the refresh token; `sync` renews access from then on",
        sub,
    )
    login.add_argument("mailbox", metavar="MAILBOX", help="the [[mailbox]] name")
    login.add_argument("--json", action="store_true", help="print the resulting status as JSON")
    status = command(
        "status",
        cmd_oauth_status,
        "who is signed in for each provider mailbox and when its access token expires; exit 1 when one needs a sign-in",
        sub,
    )
    status.add_argument("mailbox", metavar="MAILBOX", nargs="?", help="only this mailbox")
    status.add_argument("--json", action="store_true", help="JSON on stdout")
    logout = command("logout", cmd_oauth_logout, "forget a mailbox's sign-in on this machine", sub)
    logout.add_argument("mailbox", metavar="MAILBOX", help="the [[mailbox]] name")
    logout.add_argument("--json", action="store_true", help="print the resulting status as JSON")
