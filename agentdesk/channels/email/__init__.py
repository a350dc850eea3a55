"""The email channel: IMAP mailboxes in, SMTP out; `mime` turns raw messages into records.

The names below are loaded on first use: a sync with no new mail never pays for the MIME parser.
"""

__all__ = ["parse_message", "bounced_message_id"]


def __getattr__(name: str):
    if name in __all__:
        from agentdesk.channels.email import mime

        return getattr(mime, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
