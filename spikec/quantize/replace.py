"""Swap a model's nn.ReLU modules for spikec's clip activations."""

from __future__ import annotations

from torch import nn

from spikec.errors import ConversionError
from spikec.quantize.ecl import ECLClip
from spikec.quantize.qcfs import QCFS

KINDS = {"qcfs": QCFS, "ecl": ECLClip}


def replace_relu(model: nn.Module, kind: str = "qcfs", levels: int | None = 4,
                 threshold: float = 8.0) -> nn.Module:
    """Replace every `nn.ReLU` submodule of `model` (in place) by a fresh activation; return `model`.

    kind: "qcfs" (QCFS, needs `levels`) or "ecl" (ECLClip; `levels=None` = pure learnable clip).
    threshold: the initial trainable threshold lam (8.0 as in the QCFS code).
    Only nn.ReLU modules are replaced (not nn.ReLU6, LeakyReLU, or F.relu calls inside forward);
    each occurrence gets its own threshold. Raises ConversionError if the model has no nn.ReLU.
    """
    if kind not in KINDS:
        raise ConversionError(f"unknown activation kind {kind!r}; expected one of {sorted(KINDS)}")
    targets = [(name, mod) for name, mod in model.named_modules(remove_duplicate=False)
               if type(mod) is nn.ReLU]
    if not targets and type(model) is nn.ReLU:
        raise ConversionError("replace_relu needs a model containing nn.ReLU, not a bare nn.ReLU")
    if not targets:
        raise ConversionError(f"{type(model).__name__} has no nn.ReLU submodule to replace")
    for name, _ in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, KINDS[kind](levels=levels, threshold=threshold))
    return model
