"""The conventional ANN baseline: MACs and accumulates (ACs) of one inference.

From the source model (forward hooks on its leaf modules, the same input as the SNN):
- Conv2d: MACs = output elements x C_in/groups x kh x kw (every kernel position, padding included,
  as FLOP counters do); effective MACs = (nonzero input, nonzero weight) pairs actually multiplied
  (padding excluded), computed exactly with a convolution of indicator tensors; ACs = output
  elements when it has a bias.
- Linear: MACs = in x out per sample; effective MACs likewise; ACs = out with a bias.
- BatchNorm: one MAC per element (scale and shift; zero once folded into the conv).
- AvgPool / AdaptiveAvgPool: one AC per window element; MaxPool: window - 1 comparisons, counted as
  ACs. Activations (ReLU, clipping) and functional ops (`x + y`, `F.relu`) are not counted.
From the graph alone (no model): the equivalent ANN has MACs = synapses (nnz of each edge matrix)
and one AC per neuron with a nonzero bias plus one per extra in-edge that reaches it (residual
adds; edges of a channel concatenation reach disjoint neurons and add nothing).
All figures are per inference (per sample).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikec.errors import InputDataError
from spikec.ir import IF, Graph, Readout, broadcast_param


@dataclass
class AnnCounts:
    source: str                      # "model" or "graph"
    macs: float
    acs: float
    effective_macs: float | None = None
    rows: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def ann_from_graph(graph: Graph, matrices: list) -> AnnCounts:
    """matrices: each edge's sparse weight matrix [n_dst, n_src], in graph.edges order."""
    rows = []
    reached = {}   # population -> per-neuron count of in-edges with a synapse onto it
    for e, m in zip(graph.edges, matrices):
        rows.append({"module": e.name, "type": "edge", "macs": int(m.nnz), "acs": 0})
        hit = (np.diff(m.tocsr().indptr) > 0).astype(np.int64)
        reached[e.dst] = reached.get(e.dst, 0) + hit
    acs = 0
    for p in graph.populations:
        if not isinstance(p, (IF, Readout)):
            continue
        biased = int(np.count_nonzero(broadcast_param(p.bias, p.shape)))
        extra = int(np.maximum(np.asarray(reached.get(p.name, 0)) - 1, 0).sum())
        acs += biased + extra
        rows.append({"module": p.name, "type": "neurons", "macs": 0, "acs": biased + extra})
    return AnnCounts("graph", float(sum(int(m.nnz) for m in matrices)), float(acs), None, rows)


def ann_input(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The float sample the ANN sees for the SNN's integer input (spike trains: their mean rate)."""
    inp = graph.input
    values = x.astype(np.float64)
    if inp.encoding == "spikes":
        values = values.mean(axis=1)
    return values / inp.scale


def ann_from_model(model, x_float: np.ndarray) -> AnnCounts:
    """Count MACs / ACs of `model` on a batch of float inputs with forward hooks (per sample)."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise InputDataError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    batch = x_float.shape[0]
    rows: list[dict] = []
    hooks = []
    for path, module in model.named_modules():
        if next(module.children(), None) is None:
            hooks.append(module.register_forward_hook(_hook(path, rows)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.as_tensor(x_float, dtype=dtype, device=device))
    except Exception as err:
        raise InputDataError(f"the model did not accept the estimate's input "
                             f"(shape {tuple(x_float.shape)}): {err}") from err
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    for r in rows:
        for key in ("macs", "effective_macs", "acs"):
            r[key] = r[key] / batch
    return AnnCounts("model", float(sum(r["macs"] for r in rows)), float(sum(r["acs"] for r in rows)),
                     float(sum(r["effective_macs"] for r in rows)), rows)


def _hook(path: str, rows: list[dict]):
    def hook(module, inputs, output):
        counted = _count(module, inputs[0] if inputs else None, output)
        if counted is not None:
            macs, eff, acs = counted
            rows.append({"module": path, "type": type(module).__name__, "macs": float(macs),
                         "effective_macs": float(eff), "acs": float(acs)})
    return hook


def _count(module, x, out):
    import torch
    import torch.nn.functional as F
    from torch import nn

    if isinstance(module, nn.Conv2d):
        w = module.weight
        macs = out.numel() * (w.shape[1] * w.shape[2] * w.shape[3])
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            eff = macs  # not worth an exact count for these rare cases
        else:
            eff = F.conv2d((x != 0).float(), (w != 0).float(), None, module.stride, module.padding,
                           module.dilation, module.groups).sum().item()
        return macs, eff, out.numel() if module.bias is not None else 0
    if isinstance(module, nn.Linear):
        macs = out.numel() * module.in_features
        eff = ((x != 0).float().reshape(-1, module.in_features)
               @ (module.weight != 0).float().T).sum().item()
        return macs, eff, out.numel() if module.bias is not None else 0
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return out.numel(), int(torch.count_nonzero(x)), 0
    if isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
        k = module.kernel_size
        window = k * k if isinstance(k, int) else k[0] * k[1]
        return 0, 0, out.numel() * (window if isinstance(module, nn.AvgPool2d) else window - 1)
    if isinstance(module, nn.AdaptiveAvgPool2d):
        window = -(-x.shape[-1] // out.shape[-1]) * -(-x.shape[-2] // out.shape[-2])
        return 0, 0, out.numel() * window
    return None
