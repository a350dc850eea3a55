"""The email channel: IMAP mailboxes in, SMTP out; `mime` turns raw messages into records."""

from agentdesk.channels.email.mime import bounced_message_id, parse_message

__all__ = ["parse_message", "bounced_message_id"]
