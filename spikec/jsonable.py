"""Turn results holding numpy scalars and arrays into plain JSON-serialisable Python values."""

from __future__ import annotations

import numpy as np


def plain(value):
    """dicts, lists and tuples recursively; numpy bools, ints, floats and arrays to Python values."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
