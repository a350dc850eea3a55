"""How an alert reaches the agent beyond the toast ([ui] alerts): the terminal bell, or a desktop
notification — `notify-send` where there is a display, else the terminal's own notification
escape where the terminal is known to show it (OSC 777 in VTE terminals, OSC 9 in iTerm2,
WezTerm and Windows Terminal). The text is the sender's subject among others: control characters
are stripped before it goes into an escape sequence or a command's argument."""

from __future__ import annotations

import os
import shutil
import subprocess

from agentdesk.sanitize import strip_control


def desktop_escape(text: str, environ=os.environ) -> str:
    """The notification escape this terminal shows, or "" where none is known."""
    clean = strip_control(text).replace("\n", " ").replace(";", ",")[:200]
    if environ.get("VTE_VERSION"):
        return f"\x1b]777;notify;agentdesk;{clean}\x1b\\"
    if environ.get("TERM_PROGRAM") in ("iTerm.app", "WezTerm") or environ.get("WT_SESSION"):
        return f"\x1b]9;{clean}\x1b\\"
    return ""


def notify_send(text: str, environ=os.environ) -> bool:
    """A desktop notification through notify-send when there is a display; False when there is none."""
    if not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")) or not shutil.which("notify-send"):
        return False
    try:
        subprocess.Popen(
            ["notify-send", "--app-name=agentdesk", "agentdesk", strip_control(text)[:300]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return False
    return True
