"""Textual's footer, recomposed only when the keys it shows change.

Textual's `Footer` rebuilds all its key widgets (and re-lays out the screen) on every bindings
update, and focus moving between the search box and the queue sends two of them although the keys
shown stay the same: about half of a search's time on the UI thread before the rows could be drawn.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


class KeyFooter(Footer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown: tuple | None = None

    def _keys_shown(self) -> tuple:
        """What `Footer.compose` draws from: each shown binding, whether it is enabled, its tooltip."""
        active = self.screen.active_bindings
        keys = tuple(
            (binding.key, binding.action, binding.description, enabled, tooltip, self.app.get_key_display(binding))
            for _, binding, enabled, tooltip in active.values()
            if binding.show
        )
        palette = active.get(self.app.COMMAND_PALETTE_BINDING) if self.show_command_palette else None
        return keys, None if palette is None else (palette[1].key, palette[2])

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        if not self.is_attached:
            return
        shown = self._keys_shown()
        if shown != self._shown:
            self._shown = shown
            await self.recompose()
