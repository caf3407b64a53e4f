"""ECL-style dual-threshold (signed) IF neurons -- partly unverified, see research/algorithms.md §5.

Verified: ECL uses "dual-threshold neurons" with a negative threshold whose value is a design
choice, and membranes start at theta/2. NOT verified (paper text unreachable, no public code):
the negative-spike condition, the negative threshold value, the reset rule and the gate.
Implemented here (closest published design, SNM, Wang et al. IJCAI 2022):

    theta_neg = round(kappa * theta)        (kappa = 1.0: SNM's symmetric choice)
    negative spike when v <= -theta_neg and, with gate "net", the neuron's net emitted count > 0
    reset: v += theta_neg on a negative spike (IR semantics, SEMANTICS.md §3)

A negative spike travels through the same synapses as a positive one (value -theta downstream)
while the membrane only gets theta_neg back, so kappa != 1 leaves (1 - kappa) theta unaccounted
per negative spike; kappa = 1 keeps the membrane's bookkeeping exact.
"""

from __future__ import annotations

import numpy as np

from spikec.conversion.graphs import map_if
from spikec.errors import ConversionError
from spikec.ir import Graph

GATES = ("net", "none")


def apply_signed(graph: Graph, kappa: float = 1.0, gate: str = "net") -> Graph:
    """Return a copy of `graph` whose IF layers also emit -1 spikes (theta_neg = round(kappa*theta)).

    Layers that are already signed without a gate (the compiler's signed clips of linear
    bottlenecks, spikec.quantize.SignedClip) keep their neurons."""
    if gate not in GATES:
        raise ConversionError(f"ecl gate must be one of {GATES}, got {gate!r}")
    if not kappa > 0:
        raise ConversionError(f"ecl kappa must be > 0, got {kappa!r}")

    def signed(layer):
        if layer.theta_neg is not None and layer.gate == "none":
            return {}   # a signed clip's layer (linear bottleneck): already symmetric, no gate
        if layer.theta_neg is not None:
            raise ConversionError(f"{layer.name}: already has a negative threshold")
        if layer.reset != "subtract":
            raise ConversionError(f"{layer.name}: signed neurons need reset 'subtract', got {layer.reset!r}")
        return {"theta_neg": np.maximum(np.rint(kappa * layer.theta), 1).astype(np.int64), "gate": gate}

    return map_if(graph, signed, meta={"ecl": {"kappa": float(kappa), "gate": gate}})
