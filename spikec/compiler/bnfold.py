"""BN folding: a BatchNorm in eval mode right after a conv/linear is an affine change of its weights.

    BN(W x + b) = (g * W) x + g * (b - mean) + beta,   g = gamma / sqrt(var + eps)

Pure: returns a new GraphModule; the input module is not modified. A BN that does not directly
follow a single-use conv/linear stays in the graph and is lowered as a per-channel scale.
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx
from torch import nn

from spikec.errors import UnsupportedError

_FOLDABLE = {nn.BatchNorm2d: nn.Conv2d, nn.BatchNorm1d: nn.Linear}


def bn_affine(bn: nn.Module, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(gain, shift) of an eval-mode BatchNorm, float64 per channel."""
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedError(f"{where}: BatchNorm without running statistics (track_running_stats="
                               "False) normalises with batch statistics and cannot be folded")
    var = bn.running_var.detach().double()
    mean = bn.running_mean.detach().double()
    gain = 1.0 / torch.sqrt(var + bn.eps)
    shift = -mean * gain
    if bn.affine:
        gain = gain * bn.weight.detach().double()
        shift = shift * bn.weight.detach().double() + bn.bias.detach().double()
    return gain, shift


def fold_batchnorm(gm: fx.GraphModule) -> fx.GraphModule:
    """A new GraphModule with every conv/linear -> BN pair fused into the conv/linear.

    The input is not modified: the new module has its own graph and module tree; unchanged leaf
    modules are shared (not copied), fused layers are fresh copies."""
    gm = fx.GraphModule(gm, copy.deepcopy(gm.graph), class_name=type(gm).__name__)
    modules = dict(gm.named_modules())
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    changed = False
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or type(modules[node.target]) not in _FOLDABLE:
            continue
        prev = node.args[0] if node.args else None
        if not isinstance(prev, fx.Node) or prev.op != "call_module" or len(prev.users) != 1:
            continue
        layer = modules[prev.target]
        if type(layer) is not _FOLDABLE[type(modules[node.target])] or calls[prev.target] != 1:
            continue
        bn = modules[node.target]
        if bn.running_mean is None or bn.num_features != layer.weight.shape[0]:
            continue
        gain, shift = bn_affine(bn, node.target)
        modules[prev.target] = _fused(layer, gain, shift)   # a second BN in a row folds into this one
        _install(gm, prev.target, modules[prev.target])
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
        changed = True
    if changed:
        gm.graph.lint()
        gm.recompile()
    return gm


def _fused(layer: nn.Module, gain: torch.Tensor, shift: torch.Tensor) -> nn.Module:
    """A copy of the layer with W <- g W, b <- g b + shift."""
    w = layer.weight.detach().double()
    b = torch.zeros(w.shape[0], dtype=torch.float64)
    if layer.bias is not None:
        b = layer.bias.detach().double()
    new = copy.copy(layer)  # shallow: same config, own parameter dict below
    new._parameters = dict(layer._parameters)
    dtype = layer.weight.dtype
    new.weight = nn.Parameter((w * gain.reshape((-1,) + (1,) * (w.ndim - 1))).to(dtype), requires_grad=False)
    new.bias = nn.Parameter((b * gain + shift).to(dtype), requires_grad=False)
    return new


def _install(gm: fx.GraphModule, path: str, module: nn.Module) -> None:
    parent, _, attr = path.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, attr, module)
