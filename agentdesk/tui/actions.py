"""Every key of the workstation, in one table: binding id, action, description, default keys.

The footer, the `?` help screen and the command palette are all generated from `ACTIONS`, so they
cannot disagree. Keys are remapped by binding id in the config's `[keys]` table
(`reply = "r,f2"`), which the app applies with `set_keymap`.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class Action:
    id: str  # the stable binding id users remap in [keys]
    action: str  # the textual action it runs
    description: str  # short: footer and palette title
    keys: str  # default keys, comma-separated
    scope: str  # app | main | composer | picker
    group: str  # heading on the help screen
    footer: bool = False  # shown in the footer (few, so it fits 80 columns)
    priority: bool = False  # wins over a focused text box (composer keys)
    help: str = ""  # longer text for the palette and help screen
    key_display: str | None = None


ACTIONS: tuple[Action, ...] = (
    # First, so the footer shows it even on an 80-column terminal.
    Action("help", "app.help", "Help", "question_mark,f1", "main", "App", footer=True, key_display="?"),
    # --- moving around the queue
    Action("queue.down", "cursor_down", "Next", "j,down", "main", "Queue"),
    Action("queue.up", "cursor_up", "Previous", "k,up", "main", "Queue"),
    Action("queue.first", "cursor_first", "First", "g,home", "main", "Queue"),
    Action("queue.last", "cursor_last", "Last", "G,end", "main", "Queue"),
    Action("queue.page_down", "page_down", "Page down", "pagedown,ctrl+f", "main", "Queue"),
    Action("queue.page_up", "page_up", "Page up", "pageup,ctrl+b", "main", "Queue"),
    Action(
        "queue.open", "open", "Open/zoom", "enter", "main", "Queue", help="Read the thread full size; again to go back"
    ),
    Action("queue.mark", "mark", "Mark", "x", "main", "Queue", help="Mark for a multi-selection action"),
    Action("queue.unmark", "unmark_all", "Unmark all", "X", "main", "Queue"),
    Action("view.next", "next_view", "Next view", "],right", "main", "Views"),
    Action("view.previous", "previous_view", "Previous view", "[,left", "main", "Views"),
    *(
        Action(f"view.{name}", f"show_view('{name}')", f"View: {label}", str(number), "main", "Views")
        for number, (name, label) in enumerate(
            (
                ("mine", "Mine"),
                ("unassigned", "Unassigned"),
                ("open", "All open"),
                ("breaching", "Breaching soon"),
                ("pending", "Pending/on hold"),
                ("snoozed", "Snoozed"),
                ("solved", "Solved"),
                ("spam", "Spam"),
                ("bulk", "Bulk"),
            ),
            start=1,
        )
    ),
    Action(
        "view.system",
        "show_view('system')",
        "View: System",
        "0",
        "main",
        "Views",
        help="Machine mail that matched none of our replies",
    ),
    Action(
        "search",
        "search",
        "Search",
        "slash",
        "main",
        "Views",
        footer=True,
        key_display="/",
        help="Full text with from: status: tag: channel: assignee: before: after: sla: waiting:",
    ),
    Action("search.clear", "clear_search", "Back", "escape", "main", "Views", help="Leave a search or zoomed thread"),
    # --- the thread
    Action("thread.down", "thread_scroll(1)", "Scroll thread down", "J,ctrl+down", "main", "Thread"),
    Action("thread.up", "thread_scroll(-1)", "Scroll thread up", "K,ctrl+up", "main", "Thread"),
    Action("thread.page_down", "thread_page(1)", "Thread page down", "space", "main", "Thread"),
    Action("thread.page_up", "thread_page(-1)", "Thread page up", "b", "main", "Thread"),
    Action(
        "thread.quoted",
        "toggle_quoted",
        "Quotes",
        "o",
        "main",
        "Thread",
        help="Show or hide quoted history and signatures",
    ),
    Action(
        "attachment.next",
        "next_attachment",
        "Next attachment",
        "A",
        "main",
        "Thread",
        help="Select the thread's next attachment (then v opens it, W saves it)",
    ),
    Action(
        "attachment.open",
        "open_attachment",
        "Open attachment",
        "v",
        "main",
        "Thread",
        help="Open the selected attachment: text shown here, anything else with the opener "
        "([attachments] opener, xdg-open or $BROWSER)",
    ),
    Action(
        "attachment.save",
        "save_attachment",
        "Save attachment",
        "W",
        "main",
        "Thread",
        help="Save the selected attachment to a directory (never over a file: name (1).ext)",
    ),
    Action(
        "customer.toggle", "toggle_customer", "Customer", "i", "main", "Thread", help="Show or hide the customer pane"
    ),
    Action(
        "customer.history",
        "focus_history",
        "History",
        "h",
        "main",
        "Thread",
        help="Pick one of the customer's past conversations (enter opens it)",
    ),
    # --- acting on the conversation
    Action("reply", "reply", "Reply", "r", "main", "Act", footer=True),
    Action("note", "note", "Note", "n", "main", "Act", footer=True, help="Internal note, never sent"),
    Action("editor", "editor", "Reply in $EDITOR", "e", "main", "Act"),
    Action("claim", "claim", "Claim", "c", "main", "Act", footer=True, help="Assign to me"),
    Action("assign", "assign", "Assign", "a", "main", "Act", help="Assign to an agent or nobody"),
    Action("unassign", "unassign", "Unassign", "u", "main", "Act"),
    Action("status", "status", "Status", "s", "main", "Act", footer=True),
    Action("priority", "priority", "Priority", "p", "main", "Act"),
    Action("tag", "tag", "Tags", "t", "main", "Act", footer=True, help="Add and remove tags: +billing -refund"),
    Action(
        "snooze",
        "snooze",
        "Snooze",
        "z",
        "main",
        "Act",
        footer=True,
        help="Hide until a time: 4h, 2d, 2026-12-01 09:00, none",
    ),
    Action("copy_ref", "copy_ref", "Copy ref", "y", "main", "Act"),
    Action(
        "spam",
        "spam",
        "Spam",
        "S",
        "main",
        "Act",
        help="Move to the spam view (no SLA, no receipt); in the spam view, put it back",
    ),
    Action(
        "block",
        "block",
        "Block sender",
        "B",
        "main",
        "Act",
        help="Block the sender (their new mail goes to spam) and move this to spam",
    ),
    Action(
        "conversation.resend",
        "resend",
        "Resend reply",
        "D",
        "main",
        "Act",
        help="Send again this conversation's latest failed or possibly sent reply",
    ),
    Action(
        "undo",
        "undo",
        "Undo",
        "ctrl+z",
        "main",
        "Act",
        help="Take back the reply still in its undo window (the composer reopens with it), or undo your "
        "last status, assignment, tag, snooze, priority, spam or merge change",
    ),
    Action(
        "send_now",
        "send_now",
        "Send now",
        "ctrl+d",
        "main",
        "Act",
        help="Deliver this conversation's waiting reply at once: past its undo window or retry pause; "
        "a failed one is queued again",
    ),
    Action(
        "move_message",
        "move_message",
        "Move message",
        "M",
        "main",
        "Act",
        help="Put a misthreaded message in another conversation or a new one: its number, then a ref or new",
    ),
    Action(
        "forward",
        "forward",
        "Forward",
        "f",
        "main",
        "Act",
        help="Forward the conversation with its files by email (a supplier, a colleague); their answer comes back here",
    ),
    Action(
        "new_conversation",
        "new_conversation",
        "New conversation",
        "N",
        "main",
        "Act",
        help="Write first: start a conversation with a customer, found by name or address",
    ),
    Action(
        "merge",
        "merge",
        "Merge",
        "m",
        "main",
        "Act",
        help="Merge this conversation (or the marked ones) into another, picked by ref",
    ),
    Action(
        "report",
        "report",
        "Report",
        "R",
        "main",
        "App",
        help="Reply and resolution times, SLA compliance, backlog by age, volume by channel",
    ),
    Action("refresh", "refresh_all", "Refresh", "f5,ctrl+l", "main", "App"),
    # --- the whole app
    Action("command_palette", "command_palette", "Commands", "ctrl+p", "app", "App"),
    Action("quit", "app.quit", "Quit", "q", "main", "App", footer=True),
    # --- the composer (priority: they win over the text box)
    Action(
        "composer.send",
        "send",
        "Send",
        "ctrl+s",
        "composer",
        "Composer",
        footer=True,
        priority=True,
        help="Send (a note: save); a new conversation becomes open",
    ),
    Action(
        "composer.send_pending",
        "send('pending')",
        "Send+pending",
        "ctrl+g",
        "composer",
        "Composer",
        footer=True,
        priority=True,
        help="Send and set pending: waiting on the customer",
    ),
    Action(
        "composer.send_solved",
        "send('solved')",
        "Send+solved",
        "ctrl+r",
        "composer",
        "Composer",
        footer=True,
        priority=True,
    ),
    Action(
        "composer.templates",
        "focus_templates",
        "Templates",
        "ctrl+t",
        "composer",
        "Composer",
        footer=True,
        priority=True,
        help="Pick a template: suggested first, type to filter by name or shortcut",
    ),
    Action("composer.kind", "toggle_kind", "Reply/note", "ctrl+n", "composer", "Composer", footer=True, priority=True),
    Action(
        "composer.article",
        "knowledge_base",
        "Article",
        "f4,ctrl+b",
        "composer",
        "Composer",
        priority=True,
        help="Search the knowledge base and insert an article's link (enter) or its text (ctrl+t)",
    ),
    Action(
        "composer.attach",
        "attach",
        "Attach",
        "ctrl+o",
        "composer",
        "Composer",
        footer=True,
        priority=True,
        help="Attach a file: type its path (tab completes); in the list of files, del removes one",
    ),
    Action(
        "composer.recipients",
        "recipients",
        "To/Cc/Bcc",
        "f3",
        "composer",
        "Composer",
        priority=True,
        help="Edit the recipients, comma-separated (shift+tab from the text gets there too)",
    ),
    Action("composer.editor", "editor", "$EDITOR", "ctrl+e", "composer", "Composer", priority=True),
    Action(
        "composer.save_template", "save_template", "Save as template", "ctrl+k", "composer", "Composer", priority=True
    ),
    Action("composer.help", "app.help", "Help", "f1", "composer", "Composer", footer=True, priority=True),
    Action(
        "composer.close",
        "close",
        "Close",
        "escape",
        "composer",
        "Composer",
        footer=True,
        help="Back to the queue; the draft is kept",
    ),
)

ACTIONS += (
    # --- a new conversation (its own screen: no thread yet)
    Action(
        "new.send",
        "send",
        "Send",
        "ctrl+s",
        "new_conversation",
        "New conversation",
        footer=True,
        priority=True,
        help="Start the conversation: the first message is queued and its new ref shown",
    ),
    Action(
        "new.pick",
        "pick_contact",
        "Pick customer",
        "ctrl+down",
        "new_conversation",
        "New conversation",
        footer=True,
        priority=True,
        help="Move to the known customers matching what To holds",
    ),
    Action(
        "new.attach",
        "attach",
        "Attach",
        "ctrl+o",
        "new_conversation",
        "New conversation",
        footer=True,
        priority=True,
        help="Attach a file: its path, with completion; del on the files list removes one",
    ),
    Action(
        "new.close",
        "close",
        "Close",
        "escape",
        "new_conversation",
        "New conversation",
        footer=True,
        help="Back to the queue; nothing is sent",
    ),
)

BY_ID = {action.id: action for action in ACTIONS}


def bindings(scope: str) -> list[BindingType]:
    return [
        Binding(
            a.keys,
            a.action,
            a.description,
            show=a.footer,
            key_display=a.key_display,
            priority=a.priority,
            id=a.id,
            tooltip=a.help,
        )
        for a in ACTIONS
        if a.scope == scope
    ]


def keymap(configured: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The config's `[keys]` table as a keymap, and a warning for each id that names no action."""
    known = {}
    unknown = []
    for binding_id, keys in configured.items():
        if binding_id in BY_ID:
            known[binding_id] = ",".join(k.strip() for k in keys.split(",") if k.strip())
        else:
            unknown.append(binding_id)
    return known, unknown


def keys_of(action: Action, keymap_: dict[str, str]) -> str:
    """The keys an action answers to now, for the help screen: `j, down`."""
    names = {"slash": "/", "question_mark": "?", "space": "space", "pagedown": "PgDn", "pageup": "PgUp"}
    keys = keymap_.get(action.id, action.keys)
    return ", ".join(names.get(k, k) for k in keys.split(","))
