"""ECL-style learnable threshold clipping function (Liu et al., ICML 2025) -- partly unverified.

Verified (research/algorithms.md §5.1): ECL replaces every ReLU of the ANN with a *learnable
threshold clipping function*; in the SNN the clip value becomes the neuron threshold, membranes
start at half the threshold and the neurons are dual-threshold (signed) neurons.

NOT verified (the paper's method section could not be read, and no code is public, §5.2):
  * whether the clip also quantises. Here `levels=None` gives the pure clip
    y = clip(z, 0, lam) (gradient w.r.t. lam is 1 where z > lam, as in PACT/TCL-style clips), and
    `levels=L` gives the QCFS-shaped quantised clip lam * clip(floor(z L / lam + 1/2) / L, 0, 1);
  * whether lam is per layer or per channel (here: one scalar per layer, as QCFS);
  * its exact gradient and the training hyper-parameters.
Results obtained with this module are therefore "ECL-style", not a reproduction of the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spikec.quantize.qcfs import _LearnedThreshold, quantised_clip


class ECLClip(_LearnedThreshold):
    """Learnable clip y = clip(z, 0, lam) (levels=None) or its L-level quantised form (levels=L)."""

    def __init__(self, levels: int | None = None, threshold: float = 8.0):
        super().__init__(levels, threshold)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.levels is None:
            return F.relu(z) - F.relu(z - self.lam)
        return quantised_clip(z, self.lam, self.levels)
