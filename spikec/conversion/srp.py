"""SRP: pre-simulation with a residual-membrane-potential mask (Hao et al., AAAI 2023).

Per sample, every IF layer first runs `tau` ordinary steps; at the end of its local step tau it
latches mask = (v > 0) (the authors' code tests v > 1e-3 in threshold units), resets v to v_init
(theta/2) and from then on only unmasked neurons emit. The readout ignores its first tau local
steps. All of this is IR semantics (IF.presim, Readout.skip, SEMANTICS.md §3), so this pass only
sets two fields; the tau extra steps show up in `graph.latency`, hence in every reported step count.
"""

from __future__ import annotations

import dataclasses

from spikec.conversion.graphs import map_if, replace_nodes
from spikec.errors import ConversionError, UnsupportedError
from spikec.ir import Graph


def apply_srp(graph: Graph, tau: int) -> Graph:
    """Return a copy of `graph` with IF.presim = tau on every IF layer and Readout.skip = tau."""
    if not isinstance(tau, int) or isinstance(tau, bool) or tau < 1:
        raise ConversionError(f"srp_presim must be a positive int (pre-simulation steps), got {tau!r}")
    already = [p.name for p in graph.if_layers if p.presim] + (
        [graph.readout.name] if graph.readout.skip else [])
    if already:
        raise ConversionError(f"SRP applied twice: {already} already have a pre-simulation phase")
    signed = [p.name for p in graph.if_layers if p.theta_neg is not None and p.gate == "none"]
    if signed:
        raise UnsupportedError(f"SRP cannot run signed-clip layers {signed[:3]}{'...' if len(signed) > 3 else ''}: "
                               "its residual mask (v > 0) would silence every neuron carrying a negative value")
    staged = map_if(graph, lambda layer: {"presim": tau},
                    meta={"srp": {"presim": tau}})
    return replace_nodes(staged, {graph.readout.name: dataclasses.replace(graph.readout, skip=tau)})
