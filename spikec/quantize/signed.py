"""Signed clip activation for linear bottlenecks (MobileNetV2 / MnasNet projection outputs).

An inverted-residual block ends in a 1x1 projection conv + BN with no activation; its signed
output feeds the next block's conv and the residual addition. spikec needs an activation between
two linear layers, so `spikec.prepare` puts a SignedClip there: y = clamp(z, -lam, lam)
(levels=None) or an L-level quantised form, one trainable lam per layer. The compiler turns it
into IF neurons in one of three ways (`neurons`); the quantiser of each is what those neurons
emit at T = L on a constant input (u = z / lam):

  "signed-zero" (default): dual-threshold IF (IF.theta_neg = theta, gate "none", subtract
      reset both ways) starting at v_init = 0. Symmetric, rounding toward zero:
      y = lam / L * trunc(clamp(u, -1, 1) * L); exact for every constant input.
  "signed": the same neurons from v_init = theta/2, as QCFS layers start. A positive spike needs
      +theta/2 of input, a negative one -3 theta/2 (the IR ties the negative threshold to its
      reset, so the thresholds are +-theta), so the positive side rounds half up and the negative
      side loses a level: y = lam / L * trunc(clamp(u, -1, 1) * L + 1/2), exact for z > -1.5 lam
      (beyond, the neuron fires -1 at every step: -L). The network learns that offset of one
      level on negative values, which the SNN only reproduces at T = L.
  "pair": two ordinary IF layers (QCFS neurons, v_init theta/2), one fed +z and one -z; the next
      layer takes W from the first and -W from the second. y = lam / L * (q(u) - q(-u)) with
      q(u) = clamp(floor(u L + 1/2), 0, L): QCFS on both sides, twice the neurons and edges, no
      signed spikes (stock Loihi neurons can run it).

docs/models.md ("Linear bottlenecks") measures all three. trunc / floor use a straight-through
gradient; lam gets its gradient from autograd, as in QCFS.
"""

from __future__ import annotations

import torch

from spikec.errors import ConversionError
from spikec.quantize.qcfs import _LearnedThreshold, quantised_clip

NEURONS = ("signed-zero", "signed", "pair")


def trunc_ste(x: torch.Tensor) -> torch.Tensor:
    """trunc(x) (round toward zero) in the forward pass, identity gradient in the backward pass."""
    return x + (torch.trunc(x) - x).detach()


def signed_quantised_clip(z: torch.Tensor, lam: torch.Tensor, levels: int, shift: float) -> torch.Tensor:
    """lam / L * trunc(clamp(z / lam, -1, 1) * L + shift) with a straight-through trunc."""
    unit = torch.clamp(z / lam, -1.0, 1.0)
    return trunc_ste(unit * levels + shift) / levels * lam


class SignedClip(_LearnedThreshold):
    """y = clamp(z, -lam, lam) (levels=None) or its L-level quantised form for `neurons`
    ("signed-zero", "signed" or "pair", see the module docstring); trainable lam (init `threshold`)."""

    signed = True

    def __init__(self, levels: int | None = 4, threshold: float = 1.0, neurons: str = "signed-zero"):
        super().__init__(levels, threshold)
        if neurons not in NEURONS:
            raise ConversionError(f"SignedClip neurons must be one of {NEURONS}, got {neurons!r}")
        self.neurons = neurons

    @property
    def v_init(self) -> float | None:
        """The initial membrane (fraction of theta) the neurons need; None = the method's (theta/2)."""
        return 0.0 if self.neurons == "signed-zero" else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.levels is None:
            return torch.minimum(torch.maximum(z, -self.lam), self.lam)
        if self.neurons == "pair":
            return quantised_clip(z, self.lam, self.levels) - quantised_clip(-z, self.lam, self.levels)
        shift = 0.0 if self.neurons == "signed-zero" else 0.5
        return signed_quantised_clip(z, self.lam, self.levels, shift)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, neurons={self.neurons!r}"


__all__ = ["SignedClip", "NEURONS", "signed_quantised_clip", "trunc_ste"]
