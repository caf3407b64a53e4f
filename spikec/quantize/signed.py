"""Signed clip activation for linear bottlenecks (MobileNetV2 / MnasNet projection outputs).

An inverted-residual block ends in a 1x1 projection conv + BN with no activation; its signed
output feeds the next block's conv and the residual addition. spikec needs an activation between
two linear layers, so `spikec.prepare` puts a SignedClip there. In the SNN it becomes a
dual-threshold IF layer (IF.theta_neg = theta, gate "none", subtract reset both ways,
v_init = theta/2 under the QCFS-style methods):

    levels=None:  y = clamp(z, -lam, lam)
    levels=L:     y = lam / L * trunc(clamp(z / lam, -1, 1) * L + 1/2)     in [-(L-1)/L lam, lam]

The quantised form is what such a neuron emits at T = L on a constant input z with
|z| < 1.5 lam: starting at theta/2, a positive spike needs +theta/2 of input and each further one
theta (round half up, as QCFS), a negative spike needs -3 theta/2 and then -theta each, so the
negative side rounds with a shift of -1/2 instead of +1/2 and reaches only -(L-1) spikes
(trunc(u + 1/2) is both sides in one expression). Only an input beyond -1.5 lam makes the neuron
fire -1 at every step (-L). This asymmetry is the price of v_init = theta/2 with thresholds
+-theta (the IR ties the negative threshold to its reset); fine-tuning through the quantiser lets
the network adapt to it. trunc uses a straight-through gradient; lam gets its gradient from
autograd, as in QCFS.
"""

from __future__ import annotations

import torch

from spikec.errors import ConversionError
from spikec.quantize.qcfs import _LearnedThreshold, quantised_clip


def trunc_ste(x: torch.Tensor) -> torch.Tensor:
    """trunc(x) (round toward zero) in the forward pass, identity gradient in the backward pass."""
    return x + (torch.trunc(x) - x).detach()


def signed_quantised_clip(z: torch.Tensor, lam: torch.Tensor, levels: int) -> torch.Tensor:
    """lam / L * trunc(clamp(z / lam, -1, 1) * L + 1/2) with a straight-through trunc."""
    unit = torch.clamp(z / lam, -1.0, 1.0)
    return trunc_ste(unit * levels + 0.5) / levels * lam


NEURONS = ("signed", "signed-zero", "pair")


class SignedClip(_LearnedThreshold):
    """y = clamp(z, -lam, lam) (levels=None) or an L-level quantised form; one trainable lam per layer.

    neurons="signed": one dual-threshold IF layer (quantiser and its asymmetry: module docstring).
    neurons="signed-zero": the same neurons starting at v_init = 0 instead of theta/2: symmetric,
    y = lam / L * trunc(clamp(z / lam, -1, 1) * L), exact at T = L for every constant input, but
    rounding toward zero (QCFS without its 1/2 shift) on both sides.
    neurons="pair": two ordinary IF layers, one for +z and one for -z, each a QCFS neuron
    (v_init theta/2), the next layer taking W from the first and -W from the second. Its
    quantiser is the QCFS one on both sides, lam / L * (q(z) - q(-z)) with
    q(z) = clamp(floor(z L / lam + 1/2), 0, L): symmetric, at twice the neurons and edges.
    """

    signed = True

    def __init__(self, levels: int | None = 4, threshold: float = 1.0, neurons: str = "signed"):
        super().__init__(levels, threshold)
        if neurons not in NEURONS:
            raise ConversionError(f"SignedClip neurons must be one of {NEURONS}, got {neurons!r}")
        self.neurons = neurons

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.levels is None:
            return torch.minimum(torch.maximum(z, -self.lam), self.lam)
        if self.neurons == "signed-zero":
            return trunc_ste(torch.clamp(z / self.lam, -1.0, 1.0) * self.levels) / self.levels * self.lam
        if self.neurons == "pair":
            return quantised_clip(z, self.lam, self.levels) - quantised_clip(-z, self.lam, self.levels)
        return signed_quantised_clip(z, self.lam, self.levels)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, neurons={self.neurons!r}"


__all__ = ["SignedClip", "NEURONS", "signed_quantised_clip", "trunc_ste"]
