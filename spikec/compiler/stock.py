"""Neuron legalisation for targets that run on Lava's stock neurons (target "loihi-stock").

Lava's stock LIF (and every netx CUBA block) with du=4095, dv=0 is an IF neuron that fires on
v > vth, resets to zero and starts at v = 0. The IR's `v >= theta` equals stock `v > theta - 1`, so
thresholds need no change; this pass makes the rest of each IF layer stock-expressible:

    reset    -> "zero"        (stock neurons cannot subtract the threshold)
    v_init   -> 0             (stock deployments start from rest; netx cannot store it)
    signed spikes, SRP pre-simulation, bias schedules -> UnsupportedError naming the layer and the
             method that asked for them (use target "loihi", which runs spikec's own IF process).

It runs on the quantized, retimed graph after the method's own pass and before the bound check,
so the bounds are proven for the neurons that will actually run. The accuracy cost of zero reset
and v_init = 0 against the project's subtract-reset neurons is measured in docs/lava.md.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from spikec.errors import UnsupportedError
from spikec.ir.graph import Graph
from spikec.ir.nodes import IF


def legalize_neurons(graph: Graph, target) -> Graph:
    """Return `graph` with every IF layer in the target's neuron model (no-op for "spikec")."""
    if getattr(target, "neurons", "spikec") != "stock":
        return graph
    method = graph.meta.get("method", "?")
    problems = []
    pops = []
    for pop in graph.populations:
        if isinstance(pop, IF):
            needs = [what for what, used in (("signed spikes", pop.theta_neg is not None),
                                             ("SRP pre-simulation", bool(pop.presim)),
                                             ("a bias schedule", pop.bias_schedule is not None)) if used]
            problems += [f"layer {pop.name}: {what}" for what in needs]
            pop = replace(pop, reset="zero", v_init=np.zeros((), np.int64))
        pops.append(pop)
    if problems:
        raise UnsupportedError(
            f"target {target.name!r} runs Lava's stock neurons, which cannot express what method "
            f"{method!r} needs:\n  - " + "\n  - ".join(problems)
            + "\nuse target='loihi' (spikec's IF process)")
    meta = dict(graph.meta)
    meta["neurons"] = "stock"
    if "layers" in meta:
        meta["layers"] = [{**row, "v_init": 0, "reset": "zero"} if row.get("type") == "IF" else row
                          for row in meta["layers"]]
    return Graph(tuple(pops), graph.edges, meta)
