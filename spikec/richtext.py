"""Plain text of what a rich printer draws: the `__str__` of spikec's result objects."""

from __future__ import annotations

import io

WIDTH = 80


def to_text(draw, width: int = WIDTH) -> str:
    """Call `draw(console)` on a colourless console `width` columns wide; return what it printed."""
    from rich.console import Console

    buf = io.StringIO()
    draw(Console(file=buf, width=width, color_system=None, force_terminal=False, highlight=False))
    return buf.getvalue().rstrip()
