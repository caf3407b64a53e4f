"""ECL-style dual-threshold (signed) IF neurons -- partly unverified, see research/algorithms.md §5.

Verified: ECL uses "dual-threshold neurons" with a negative threshold whose value is a design
choice, and membranes start at theta/2. NOT verified (paper text unreachable, no public code):
the negative-spike condition, the negative threshold value, the reset rule and the gate.
Implemented here (closest published design, SNM, Wang et al. IJCAI 2022):

    theta_neg = max(round(kappa * theta), 1)    (default kappa 0.1; SNM's symmetric choice is 1.0)
    negative spike when v <= -theta_neg and, with gate "net", the neuron's net emitted count > 0
    reset: v += theta on a negative spike, the value it sends (IR semantics, docs/semantics.md)

theta_neg only sets when a -1 spike fires. A neuron that started at theta/2 and has sent its
rounded share holds v in [0, theta); v < 0 means it sent more than its input so far warrants
(over-firing: an early spike, then negative input). kappa -> 0 (theta_neg = 1) answers every
over-firing at once, best at T = 2 but neurons then flicker +1/-1 at larger T; kappa = 0.1 keeps
most of the T = 2 gain; from T = 8 on the best kappa depends on the model (docs/methods.md, docs/cifar10.md).
"""

from __future__ import annotations

import numpy as np

from spikec.conversion.graphs import map_if
from spikec.errors import ConversionError
from spikec.ir import Graph

GATES = ("net", "none")
DEFAULT_KAPPA = 0.1   # measured on CIFAR-10 ResNet-20 / VGG (docs/cifar10.md); SNM used 1.0


def apply_signed(graph: Graph, kappa: float = DEFAULT_KAPPA, gate: str = "net") -> Graph:
    """Return a copy of `graph` whose IF layers also emit -1 spikes (theta_neg = max(round(kappa*theta), 1)).

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
