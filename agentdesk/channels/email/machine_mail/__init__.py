"""Mail no person wrote: bounces and auto-replies, and what a bounce says about the mail it returns.

`classify` gives a message its kind and bulk flag by the DESIGN "Kinds" rule (classifier.py; the
wording it looks for, by MTA family and language, is in phrases.py); for a bounce,
`bounce_details` reads the returned message's Message-ID, the failed recipient, the status,
a category and the reason (report.py).
"""

from agentdesk.channels.email.machine_mail.classifier import Verdict, classify
from agentdesk.channels.email.machine_mail.classifier import _classify as _classify  # mime.py uses it
from agentdesk.channels.email.machine_mail.report import (
    bounce_details,
    bounce_reason,
    bounced_message_id,
)

__all__ = ["Verdict", "classify", "bounce_details", "bounce_reason", "bounced_message_id"]
