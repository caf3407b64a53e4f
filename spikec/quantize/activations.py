"""ANN-side clip activations. The compiler reads `threshold` from any ClipActivation."""

from __future__ import annotations

import torch
from torch import nn


class ClipActivation(nn.Module):
    """Base of spikec's activations: y in [0, threshold] (or [-threshold, threshold] when `signed`);
    `threshold` is positive (scalar or [C]).

    The compiler treats every subclass as a leaf, turns it into an IF layer with theta derived
    from `threshold`, and uses `levels` (None = not quantised) for reporting.
    """

    levels: int | None = None
    signed: bool = False   # True: y in [-threshold, threshold], a dual-threshold (signed) IF layer

    @property
    def threshold(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
