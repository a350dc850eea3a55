"""The queue's built-in views: their names, labels and what each shows.

Plain data, without SQLAlchemy: the command line names them in every command's help, which should
not load the database layer. Each view's condition is SQL, written in `queries` beside the reads.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class View:
    name: str
    label: str
    description: str


VIEWS: dict[str, View] = {
    view.name: view
    for view in (
        View("mine", "Mine", "assigned to me and not solved"),
        View("unassigned", "Unassigned", "new or open, nobody assigned"),
        View("open", "All open", "new or open, not snoozed"),
        View("breaching", "Breaching soon", "open, an SLA target in warning or breached"),
        View("pending", "Pending/on hold", "waiting on the customer or a third party"),
        View("snoozed", "Snoozed", "hidden until their snooze ends"),
        View("solved", "Solved", "solved or closed, newest first"),
        View("all", "All", "every conversation but those set aside (spam, bulk, system)"),
        View("spam", "Spam", "marked as spam or from a blocked sender"),
        View("bulk", "Bulk", "newsletters and list mail"),
        View("system", "System", "machine mail that matched none of our replies"),
    )
}
# The views of conversations set aside (`conversation.aside`): out of every other view.
ASIDE_VIEWS = ("spam", "bulk", "system")
