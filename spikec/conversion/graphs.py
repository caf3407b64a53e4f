"""Small helpers for rewriting frozen IR graphs."""

from __future__ import annotations

import dataclasses

from spikec.ir import IF, Graph
from spikec.ir.nodes import Population


def replace_nodes(graph: Graph, new: dict[str, Population], meta: dict | None = None) -> Graph:
    """A copy of `graph` with the populations named in `new` swapped (same edges); `meta` is
    merged into a copy of the graph's meta."""
    pops = tuple(new.get(p.name, p) for p in graph.populations)
    merged = dict(graph.meta)
    merged.update(meta or {})
    return Graph(pops, graph.edges, merged).validate()


def map_if(graph: Graph, fn, meta: dict | None = None) -> Graph:
    """Apply `fn(layer) -> dict of IF field changes` to every IF layer."""
    return replace_nodes(graph, {p.name: dataclasses.replace(p, **fn(p)) for p in graph.if_layers}, meta)


def is_if(node) -> bool:
    return isinstance(node, IF)
