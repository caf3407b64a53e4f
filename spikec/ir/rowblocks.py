"""Row blocks: big weight arrays processed a few million elements at a time (no whole-array temporaries)."""

from __future__ import annotations

ROW_BLOCK = 1 << 21   # elements per block


def row_blocks(rows: int, per_row: int) -> list[slice]:
    """Slices of about ROW_BLOCK elements covering `rows` rows of `per_row` elements each, in order."""
    step = max(1, ROW_BLOCK // max(1, per_row))
    return [slice(i, min(rows, i + step)) for i in range(0, rows, step)]
