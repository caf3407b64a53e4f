"""QCFS activation (Bu et al., ICLR 2022): quantisation-clip-floor-shift with a trainable threshold.

    h(z) = lam * clip(floor(z * L / lam + 1/2) / L, 0, 1)

One scalar trainable threshold `lam` per layer, L quantisation levels, shift 1/2. The floor uses a
straight-through estimator (backward = identity); `lam` gets its gradient from autograd through the
divide, clamp and multiply, as in the authors' public code (research/algorithms.md §1.1).
In the SNN the layer becomes an IF layer with theta = lam and v_init = theta / 2.
"""

from __future__ import annotations

import torch
from torch import nn

from spikec.errors import ConversionError
from spikec.quantize.activations import ClipActivation


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    """floor(x) in the forward pass, identity gradient in the backward pass."""
    return x + (torch.floor(x) - x).detach()


def quantised_clip(z: torch.Tensor, lam: torch.Tensor, levels: int) -> torch.Tensor:
    """lam * clip(floor(z * levels / lam + 1/2) / levels, 0, 1) with a straight-through floor."""
    unit = torch.clamp(z / lam, 0.0, 1.0)
    return floor_ste(unit * levels + 0.5) / levels * lam


class _LearnedThreshold(ClipActivation):
    """Shared part of the trainable-threshold activations: parameter `lam`, `threshold` check."""

    def __init__(self, levels: int | None, threshold: float):
        super().__init__()
        if levels is not None and (not isinstance(levels, int) or levels < 1):
            raise ConversionError(f"levels must be a positive int or None, got {levels!r}")
        if not threshold > 0:
            raise ConversionError(f"initial threshold must be > 0, got {threshold!r}")
        self.levels = levels
        self.lam = nn.Parameter(torch.tensor(float(threshold)))

    @property
    def threshold(self) -> torch.Tensor:
        """The trained clip value lam (a positive 0-d tensor)."""
        if not bool(self.lam.detach() > 0):
            raise ConversionError(f"{type(self).__name__} threshold drifted to {float(self.lam.detach()):.4g} <= 0; "
                                  "retrain with a larger initial threshold (8.0 is the QCFS default)")
        return self.lam

    def extra_repr(self) -> str:
        return f"levels={self.levels}, threshold={float(self.lam.detach()):.4g}"


class QCFS(_LearnedThreshold):
    """QCFS activation with L = `levels` quantisation steps and a trainable threshold (init 8.0)."""

    def __init__(self, levels: int = 4, threshold: float = 8.0):
        if levels is None:
            raise ConversionError("QCFS needs an integer number of levels (L), got None")
        super().__init__(levels, threshold)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return quantised_clip(z, self.lam, self.levels)
