"""The top two lines of the main screen: the header (the agent, their load, each source's sync
state) over the view tabs."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from agentdesk.tui.widgets import LazyComponentStyles, shown_line

# A piece of a line: its text, and how it looks — a Rich style (bold, reverse, a click action),
# the name of one of the masthead's component classes (a theme colour), or both.
Part = tuple[str, Style | None, str]


class Masthead(LazyComponentStyles, Widget):
    """Both lines in one Line-API widget drawn from parts: the first frame mounts, styles, lays out
    and draws one plain widget instead of two Statics and their markup."""

    COMPONENT_CLASSES = {"masthead--header", "masthead--tabs", "masthead--error", "masthead--ok"}
    DEFAULT_CSS = """
    Masthead { height: 2; }
    Masthead > .masthead--header { background: $primary-background; color: $text; }
    Masthead > .masthead--tabs { background: $panel; }
    Masthead > .masthead--error { color: $text-error; }
    Masthead > .masthead--ok { color: $text-success; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._styles: dict[str, Style] = {}
        self._lines: list[Sequence[Part]] = [(), ()]

    @property
    def header(self) -> str:
        return "".join(text for text, _, _ in self._lines[0])

    @property
    def tabs(self) -> str:
        return "".join(text for text, _, _ in self._lines[1])

    def set_header(self, parts: Sequence[Part]) -> None:
        self._lines[0] = parts
        self.refresh()

    def set_tabs(self, parts: Sequence[Part]) -> None:
        self._lines[1] = parts
        self.refresh()

    def on_mount(self) -> None:
        self.follow_theme()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y > 1 or width <= 0:
            return Strip.blank(width, self.base_style)
        line = self.base_style + self.style_of("masthead--header" if y == 0 else "masthead--tabs")
        pieces = [(" ", line)] if y == 0 else []  # the header's left padding
        for text, style, component in self._lines[y]:
            look = line + self.style_of(component) if component else line
            pieces.append((shown_line(text), look + style if style is not None else look))
        # What does not fit is cut off at the edge, and an ellipsis says so.
        room = width if sum(cell_len(text) for text, _ in pieces) <= width else width - 1
        segments, used = [], 0
        for text, look in pieces:
            if used + cell_len(text) > room:
                segments.append(Segment(set_cell_size(text, room - used) + "…", look))
                used = width
                break
            segments.append(Segment(text, look))
            used += cell_len(text)
        if used < width:
            segments.append(Segment(" " * (width - used), line))
        return Strip(segments, width)
