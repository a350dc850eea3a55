"""The workstation's own widgets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.style import Style
from textual.dom import DOMNode
from textual.widget import Widget

from agentdesk.sanitize import escape_control


def shown(text: str) -> str:
    """Text of many lines (a body, notes) as a widget may draw it: whatever the database holds,
    control and bidi characters appear as visible escapes, never reach the terminal."""
    return escape_control(text)


def shown_line(text: str) -> str:
    """A one-line value (a name, an address, a subject, a cell) as a widget may draw it."""
    return escape_control(text, keep_lines=False)


def overlay_style(widget: Widget, component: str) -> Style:
    """A component class's style for drawing over text that already has a background: its colour
    (blended the way Textual blends it: muted colours are translucent, so their partial style reads
    as plain white) and text style, and a background only where the class names one. Textual's full
    component style carries the widget's background, which painted over a row's cursor bar."""
    style = widget.get_component_rich_style(component)
    if widget.get_component_rich_style(component, partial=True).bgcolor is None:
        style = style.without_color + Style(color=style.color)
    return style


# The mixin is only ever placed before `Widget`: type-check it as one.
if TYPE_CHECKING:
    _MixinBase = Widget
else:
    _MixinBase = object


class LazyComponentStyles(_MixinBase):
    """For a Line-API widget (mixed in before `Widget`): its component classes styled when first
    drawn with, and the resulting Rich styles cached until the CSS or the theme changes.

    Textual styles every component class each time the widget is styled: for the queue 13 classes,
    three times before the first frame, ~40 of its ~50 style applications."""

    _styles: dict[str, Style]

    @classmethod
    def _get_component_classes(cls) -> frozenset[str]:  # type: ignore[override]  # Textual's is lru_cached
        return frozenset()  # Textual's own pass styles none of them; `get_component_styles` does, when asked

    def get_component_styles(self, *names: str):
        for name in names:
            if name not in self._component_styles:
                if name not in self.COMPONENT_CLASSES:
                    raise KeyError(f"No {name!r} key in COMPONENT_CLASSES")
                probe = DOMNode(classes=name)  # what Textual's stylesheet does for each component class
                probe._attach(self)
                self.app.stylesheet.apply(probe, animate=False)
                self._component_styles[name] = probe.styles
        return super().get_component_styles(*names)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget_styles()

    def follow_theme(self) -> None:
        """Call from `on_mount`: a theme can change a component class's colours without changing
        the widget's own styles."""
        self.watch(self.app, "theme", lambda _theme: self._forget_styles(), init=False)

    def _forget_styles(self) -> None:
        self._component_styles.clear()
        self._styles.clear()
        self.refresh()

    @property
    def base_style(self) -> Style:
        """`rich_style` (computed from every ancestor on each call), cached like the component styles."""
        style = self._styles.get("")
        if style is None:
            style = self._styles[""] = self.rich_style
        return style

    def style_of(self, name: str) -> Style:
        """A component class's style to add onto `base_style` or a row's style (`overlay_style`)."""
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = overlay_style(self, name)
        return style
