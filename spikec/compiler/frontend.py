"""torch.fx front end: check the model and example input, trace, and the MaxPool helper."""

from __future__ import annotations

import copy
import os
import re

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from spikec.errors import ConversionError, UnsupportedError
from spikec.quantize.activations import ClipActivation

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep   # with the separator: torchvision is not torch
_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


class SpikecTracer(fx.Tracer):
    """torch.fx tracer that keeps spikec's clip activations as leaves and records source lines."""

    def __init__(self):
        super().__init__()
        self.record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, ClipActivation):
            return True
        return super().is_leaf_module(m, qualname)


def as_input_tensor(x, what: str = "example_input") -> torch.Tensor:
    """A float32 tensor with a batch dimension, or ConversionError."""
    try:
        t = torch.as_tensor(x).detach()
    except Exception as err:  # noqa: BLE001 - any conversion failure is the user's input
        raise ConversionError(f"{what} must be a tensor or array, got {type(x).__name__}: {err}") from None
    if t.ndim < 2 or t.shape[0] < 1:
        raise ConversionError(f"{what} must be a batch [B, C, H, W] or [B, N] with B >= 1, "
                              f"got shape {tuple(t.shape)}")
    if not torch.is_floating_point(t):
        t = t.float()
    return t.float().cpu()


def check_finite(model: nn.Module) -> None:
    """ConversionError naming the first parameter or buffer holding NaN or Inf."""
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if not torch.is_floating_point(tensor):
            continue
        arr = tensor.detach().cpu().numpy()  # numpy: one thread, no contention on a busy machine
        finite = np.isfinite(arr)
        if not finite.all():
            bad = "NaN" if np.isnan(arr).any() else "Inf"
            raise ConversionError(f"{name}: contains {bad} values ({int((~finite).sum())} of "
                                  f"{arr.size}); a model with non-finite weights cannot be converted")


def trace(model: nn.Module, example: torch.Tensor, share_weights: bool = False) -> fx.GraphModule:
    """An eval-mode copy of `model`, checked against `example` and traced with torch.fx.

    The user's model is not modified. share_weights: the copy's modules use the model's own
    parameter and buffer tensors (no second copy of the weights) - for callers that only read them
    (compile and check; BatchNorm folding makes new tensors); `prepare` returns a model to
    fine-tune and copies them. Raises ConversionError if the model rejects the example input (with
    the model's own message), UnsupportedError if torch.fx cannot trace it.
    """
    if not isinstance(model, nn.Module):
        raise ConversionError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    memo = {id(t): t for t in (*model.parameters(), *model.buffers())} if share_weights else {}
    model = copy.deepcopy(model, memo).eval()
    check_finite(model)
    try:
        with torch.no_grad():
            out = model(example)
    except Exception as err:  # noqa: BLE001 - report the model's own message
        raise ConversionError(f"the model rejects example_input of shape {tuple(example.shape)}: "
                              f"{type(err).__name__}: {err}") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UnsupportedError(f"the model must return one tensor of logits [B, N], got {shape}")
    tracer = SpikecTracer()
    try:
        graph = tracer.trace(model)
    except Exception as err:  # noqa: BLE001 - fx raises many types
        raise UnsupportedError(f"torch.fx cannot trace {type(model).__name__}: {type(err).__name__}: {err}. "
                               "spikec needs a forward() without data-dependent control flow") from None
    return fx.GraphModule(model, graph, class_name=type(model).__name__)


def source_line(node: fx.Node) -> str:
    """'file.py:42' of the innermost frame outside torch itself that created `node` (the user's
    forward, or a library's such as torchvision's), or ''."""
    found = ""
    for path, line in _FRAME.findall(node.stack_trace or ""):
        if not path.startswith(_TORCH_DIR):
            found = f"{os.path.basename(path)}:{line}"
    return found


def module_scope(node: fx.Node) -> tuple[str, str]:
    """(module path, class name) of the innermost module whose forward created `node`, from the
    tracer's nn_module_stack; ('', '') at the top level of the model's forward."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    path, cls = list(stack.values())[-1]
    return str(path), getattr(cls, "__name__", str(cls).rsplit(".", 1)[-1].rstrip("'>"))


def replace_maxpool(model: nn.Module) -> nn.Module:
    """Replace every nn.MaxPool2d / nn.AdaptiveMaxPool2d of `model` (in place) by the average pool
    of the same geometry; returns `model`. Retrain (or fine-tune) afterwards: the function changes.
    Functional F.max_pool2d calls in forward() cannot be replaced; edit those by hand."""
    for name, mod in list(model.named_modules()):
        if isinstance(mod, nn.MaxPool2d):
            if mod.dilation not in (1, (1, 1)):
                raise UnsupportedError(f"{name} (MaxPool2d): dilation {mod.dilation} has no AvgPool2d "
                                       "equivalent")
            new = nn.AvgPool2d(mod.kernel_size, mod.stride, mod.padding, ceil_mode=mod.ceil_mode)
        elif isinstance(mod, nn.AdaptiveMaxPool2d):
            new = nn.AdaptiveAvgPool2d(mod.output_size)
        else:
            continue
        if not name:
            raise UnsupportedError("replace_maxpool needs a model containing a MaxPool2d, not a bare pool")
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)
    return model
