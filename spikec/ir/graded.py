"""Bounds on what SigmaDelta layers emit, from the graph alone (Python integers, exact).

A SigmaDelta layer's graded output telescopes: the messages it has sent up to any step sum to its
current activation minus the unsent residue, each floored by the shift. So its sigma (the sum of
everything it received) is bounded by the *cumulative* output of its sources, not by steps times
a per-step bound. With C(src) a bound on |sum of what src emitted over the run| and R the edge's
largest row sum of |weight| (times 2^weight_exp when positive):

    Input "delta": C = max|x|;  "current": C = H * max|x|;  "spikes", IF: C = H   (H hardware steps)
    SigmaDelta:  sigma <= min(limit, sum over edges of R * C(src) + H)    (+H: the edges' floors)
                 act   <= sigma + |bias|
                 per step |out| <= (2 * act + vth) >> shift;   C = (act + vth) >> shift + H

The Lava backend uses the per-step bound to prove its 32-bit synapse accumulators cannot wrap,
the torch backend to choose an exact dtype. The overflow proof (spikec.ir.overflow) keeps the
cruder bound that needs no run length.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikec.ir.nodes import Input, SigmaDelta
from spikec.ir.overflow import edge_bounds, max_abs


class GradedBound(NamedTuple):
    emit: int     # |what the layer emits in one step|
    sigma: int    # |sigma| before saturation (above the state limit: the layer may saturate)


def sigma_delta_bounds(graph, hardware_steps: int, x: np.ndarray | None = None) -> dict[str, GradedBound]:
    """{SigmaDelta layer name: its bounds} for runs of `hardware_steps` (inputs like `x`, or
    anything in the declared range when x is None)."""
    cumulative: dict[str, int] = {}
    bounds: dict[str, GradedBound] = {}
    for name in graph.topo_order():
        node = graph.nodes[name]
        if isinstance(node, Input):
            peak = max_abs(x) if x is not None and node.encoding != "spikes" else (
                1 if node.encoding == "spikes" else 2 ** (int(node.value_bits) - 1) - 1)
            cumulative[name] = peak if node.encoding == "delta" else hardware_steps * peak
        elif isinstance(node, SigmaDelta):
            edges = graph.in_edges(name)
            sigma = sum(edge_bounds(e, cumulative[e.src])[0] for e in edges) + hardware_steps * len(edges)
            act = min(2 ** (int(node.state_bits) - 1) - 1, sigma) + max_abs(node.bias)
            bounds[name] = GradedBound(emit=(2 * act + int(node.vth)) >> int(node.shift), sigma=sigma)
            cumulative[name] = ((act + int(node.vth)) >> int(node.shift)) + hardware_steps
        else:
            cumulative[name] = hardware_steps
    return bounds
