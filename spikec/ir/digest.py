"""A content digest of a graph: equal digests <=> the same populations, edges, parameters and meta.

Used to key evaluation checkpoints to the exact network they belong to. Every dataclass field of
every population, edge and synapse op enters the hash (arrays by dtype, shape and bytes), in order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np


def content_digest(graph) -> str:
    """SHA-256 hex digest of everything that defines `graph` (and its meta)."""
    h = hashlib.sha256()
    for pop in graph.populations:
        _feed(h, pop)
    for edge in graph.edges:
        _feed(h, edge)
    h.update(json.dumps(graph.meta, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _feed(h, obj) -> None:
    h.update(type(obj).__name__.encode() + b"{")
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        h.update(f.name.encode() + b"=")
        if isinstance(value, np.ndarray):
            arr = np.ascontiguousarray(value)
            h.update(f"{arr.dtype.str}{arr.shape}".encode() + arr.tobytes())
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for item in value:
                _feed(h, item)
        else:
            h.update(repr(value).encode())
        h.update(b";")
    h.update(b"}")
