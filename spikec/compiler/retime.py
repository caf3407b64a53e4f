"""Retiming: extra edge delays so that paths of different depth meet in step (SEMANTICS §2).

Every edge delays by 1 + delay. Give each population a depth (Input 0, else 1 + the deepest
source) and each edge delay = depth(dst) - depth(src) - 1: then all inputs of a layer arrive
together, its start step is depth + 1, and the conversion theory's (layer-synchronous) local
step k is every backend's hardware step start + k - 1. The latency is the readout's depth.
"""

from __future__ import annotations

from dataclasses import replace

from spikec.errors import UnsupportedError
from spikec.ir.graph import Graph


def retime(graph: Graph, max_delay: int) -> Graph:
    depth: dict[str, int] = {}
    for name in graph.topo_order():
        ins = graph.in_edges(name)
        depth[name] = 0 if not ins else 1 + max(depth[e.src] for e in ins)
    edges = []
    for e in graph.edges:
        delay = depth[e.dst] - depth[e.src] - 1
        if delay > max_delay:
            raise UnsupportedError(f"edge {e.src}->{e.dst}: balancing needs a delay of {delay} steps, "
                                   f"beyond the target's {max_delay}")
        edges.append(replace(e, delay=delay))
    out = Graph(graph.populations, tuple(edges), dict(graph.meta))
    starts = out.start_steps()
    meta = dict(graph.meta)
    if "layers" in meta:
        meta["layers"] = [{**row, "start": starts.get(row["name"], row.get("start"))}
                          for row in meta["layers"]]
    meta["latency"] = out.latency
    return Graph(out.populations, out.edges, meta)
