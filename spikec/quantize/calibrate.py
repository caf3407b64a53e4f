"""Data-driven initial thresholds for clip activations.

A fixed initial threshold (QCFS's 8.0) only suits layers whose pre-activations happen to reach 8;
on a BN-normalised layer most values lie below 3, so with L=4 levels of width 2 nearly every
neuron quantises to 0 or 1 step and training starts from a crippled network. Here each
activation's threshold is set to a high percentile of its own input on a calibration batch, the
usual starting point for clip-based conversion (robust normalisation, Rueckauer et al. 2017).
"""

from __future__ import annotations

import torch
from torch import nn

from spikec.errors import ConversionError
from spikec.quantize.qcfs import _LearnedThreshold


@torch.no_grad()
def calibrate_thresholds(model: nn.Module, x: torch.Tensor, percentile: float = 99.9,
                         batch_size: int = 256) -> dict[str, float]:
    """Set every trainable-threshold activation's `lam` to the `percentile` of its positive inputs
    (of |input| for a signed clip) over the calibration images `x`; return {module path: new threshold}.

    Layers are calibrated one after another, front to back, so each sees the outputs of already
    calibrated layers before it. The model runs in the mode it is in (eval: BN running statistics;
    train: batch statistics, as training will see them). Raises ConversionError if the
    model has no such activation or a layer never sees a positive input.
    """
    if not 0 < percentile <= 100:
        raise ConversionError(f"percentile must lie in (0, 100], got {percentile!r}")
    acts = [(name, m) for name, m in model.named_modules() if isinstance(m, _LearnedThreshold)]
    if not acts:
        raise ConversionError(f"{type(model).__name__} has no trainable-threshold activation to calibrate "
                              "(run spikec.quantize.replace_relu or spikec.prepare first)")
    if len(x) <= batch_size and _one_pass(model, acts, x, percentile):
        return {name: float(act.lam.detach().reshape(-1)[0]) for name, act in acts}
    result: dict[str, float] = {}
    for name, act in acts:
        seen: list[torch.Tensor] = []
        hook = act.register_forward_hook(
            lambda _m, inp, _out, into=seen: into.append(inp[0].detach().flatten().float()))
        try:
            for start in range(0, len(x), batch_size):
                model(x[start:start + batch_size])
        finally:
            hook.remove()
        result[name] = _set_threshold(name, act, torch.cat(seen), percentile)
    return result


def _set_threshold(name: str, act: _LearnedThreshold, values: torch.Tensor, percentile: float) -> float:
    if act.signed:   # a signed clip covers both signs: the percentile of |input|
        values = values.abs()
    positive = values[values > 0]
    if positive.numel() == 0:
        raise ConversionError(f"activation {name!r} sees no {'nonzero' if act.signed else 'positive'} input "
                              "on the calibration data; its threshold cannot be set from data")
    k = max(1, int(round(positive.numel() * percentile / 100.0)))
    threshold = float(positive.kthvalue(min(k, positive.numel())).values)
    act.lam.data.fill_(threshold)
    return threshold


def _one_pass(model: nn.Module, acts, x: torch.Tensor, percentile: float) -> bool:
    """Calibrate every layer in one forward pass: a pre-hook sets each activation's threshold from
    its input just before it runs, so later layers see calibrated earlier ones -- the same values
    the layer-by-layer loop gives for one batch, at the cost of one pass instead of one per layer.
    Returns False (thresholds restored) if some activation module runs more than once per forward
    (a shared module: its threshold must come from all its call sites, which the loop handles)."""
    saved = [act.lam.detach().clone() for _, act in acts]
    calls = {name: 0 for name, _ in acts}

    def pre_hook(name, act):
        def hook(_m, inp):
            calls[name] += 1
            if calls[name] == 1:
                _set_threshold(name, act, inp[0].detach().flatten().float(), percentile)
        return hook

    # prepended: hooks the caller registered (prepare's caps on bounded clips) still act after ours
    hooks = [act.register_forward_pre_hook(pre_hook(name, act), prepend=True) for name, act in acts]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    if all(n == 1 for n in calls.values()):
        return True
    for (_, act), lam in zip(acts, saved):
        act.lam.data.copy_(lam)
    return False
