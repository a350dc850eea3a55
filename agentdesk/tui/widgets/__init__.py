"""The workstation's own widgets."""

from __future__ import annotations

from rich.style import Style
from textual.widget import Widget


def overlay_style(widget: Widget, component: str) -> Style:
    """A component class's style for drawing over text that already has a background: its colour
    (blended the way Textual blends it: muted colours are translucent, so their partial style reads
    as plain white) and text style, and a background only where the class names one. Textual's full
    component style carries the widget's background, which painted over a row's cursor bar."""
    style = widget.get_component_rich_style(component)
    if widget.get_component_rich_style(component, partial=True).bgcolor is None:
        style = style.without_color + Style(color=style.color)
    return style
