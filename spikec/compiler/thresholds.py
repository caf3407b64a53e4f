"""Thresholds and the input scale: from trained clip activations or from calibration statistics.

Calibration runs the (BN-folded) ANN on a batch and records each activation's output. The
statistic is a percentile of the *positive* activations of the layer (or of each channel):
100 = max ("maxnorm"), 99.9 = robust normalisation (Rueckauer et al. 2017). Zeros are left out
so that a sparse layer is not given a tiny threshold.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
import torch.fx as fx

from spikec.compiler.floatir import FloatGraph, FloatLayer
from spikec.compiler.methods import Policy
from spikec.errors import ConversionError


class _Recorder(fx.Interpreter):
    def __init__(self, gm, nodes: set[str]):
        super().__init__(gm)
        self.nodes = nodes
        self.seen: dict[str, list[torch.Tensor]] = {n: [] for n in nodes}

    def run_node(self, n):
        out = super().run_node(n)
        if n.name in self.nodes:
            self.seen[n.name].append(out.detach().float())
        return out


def activation_statistics(gm: fx.GraphModule, data: torch.Tensor, nodes: set[str], percentile: float,
                          per_channel: bool, batch_size: int = 64) -> dict[str, np.ndarray]:
    """{fx node name: threshold} (scalar, or per channel) from the node's outputs on `data`."""
    rec = _Recorder(gm, nodes)
    with torch.no_grad():
        for i in range(0, data.shape[0], batch_size):
            rec.run(data[i:i + batch_size])
    out = {}
    for name, chunks in rec.seen.items():
        acts = torch.cat(chunks)
        if per_channel:
            chans = acts.transpose(0, 1).reshape(acts.shape[1], -1)
            layer = _statistic(acts.reshape(-1), percentile)
            out[name] = np.array([_statistic(c, percentile, layer) for c in chans])
        else:
            out[name] = np.float64(_statistic(acts.reshape(-1), percentile))
    return out


def _statistic(values: torch.Tensor, percentile: float, fallback: float = 0.0) -> float:
    pos = values[values > 0]
    if pos.numel() == 0:
        return fallback
    if percentile >= 100:
        return float(pos.max())
    return float(np.percentile(pos.numpy(), percentile))


def assign_thresholds(fir: FloatGraph, stats: dict[str, np.ndarray] | None, policy: Policy) -> FloatGraph:
    """Set theta (float units), v_init and the policy's extra fields on every IF layer."""
    new = {}
    for layer in fir.layers:
        if layer.kind != "if":
            continue
        where = f"{layer.source} ({layer.activation})"
        notes = {}
        if layer.clip is not None:
            if not policy.accepts_clip:
                raise ConversionError(f"{where}: method {policy.name!r} converts plain ReLU networks, "
                                      f"but this layer is a trained {layer.activation}")
            theta = np.asarray(layer.clip, np.float64)
            notes["threshold_from"] = "clip"
        else:
            if not policy.accepts_relu:
                raise ConversionError(
                    f"{where}: method {policy.name!r} needs trained clip activations (e.g. QCFS), "
                    f"but this layer is a plain {layer.activation}. Train with "
                    "spikec.quantize.replace_relu(model, 'qcfs'), or convert the ReLU network with "
                    "method='opi', 'robust' or 'maxnorm' and calibration data")
            if stats is None or layer.node not in stats:
                raise ConversionError(
                    f"{where}: a plain ReLU takes its threshold from calibration data with method "
                    f"{policy.name!r}; pass calibration=<a batch of training inputs [B, ...]>")
            theta = np.asarray(stats[layer.node], np.float64)
            if layer.channels is not None and theta.ndim == 1:
                theta = theta[slice(*layer.channels)]
            notes["threshold_from"] = "calibration"
            dead = theta <= 0
            if np.all(dead):
                notes["dead"] = "no positive activation on the calibration data; theta set to 1"
                theta = np.ones_like(theta)
            elif np.any(dead):
                notes["dead_channels"] = int(dead.sum())
                theta = np.where(dead, theta[~dead].max(), theta)
        fields = dict(policy.if_fields({"name": layer.name, "source": layer.source, "shape": layer.shape}))
        fields.update(layer.fields)   # a signed clip's own theta_neg / gate (/ v_init) win over the method's
        v_init = fields.pop("v_init", policy.v_init)
        new[layer.name] = replace(layer, theta=theta, v_init=v_init, fields=fields,
                                  notes={**layer.notes, **notes})
    return fir.replace_layers(new)


def relu_nodes(fir: FloatGraph) -> set[str]:
    """fx node names of the IF layers that need calibration (plain ReLUs)."""
    return {lay.node for lay in fir.layers if lay.kind == "if" and lay.clip is None}


def choose_input_scale(data: torch.Tensor, bits: int, override: float | None) -> float:
    """Integer input units per float unit, or `override`.

    The input range is max|x| of `data` rounded UP to a power of two (headroom for samples
    brighter than the few seen here; at most one bit of resolution is spent on it); the scale is
    the largest integer mapping that range into `bits` signed bits (a fraction only when the
    range exceeds 2^(bits-1) - 1)."""
    if override is not None:
        if not (isinstance(override, (int, float)) and math.isfinite(override) and override > 0):
            raise ConversionError(f"input_scale must be a positive number, got {override!r}")
        return float(override)
    limit = 2 ** (bits - 1) - 1
    peak = float(data.abs().max()) if data.numel() else 0.0
    if not math.isfinite(peak):
        raise ConversionError("the example/calibration input holds NaN or Inf")
    if peak == 0:
        raise ConversionError("cannot infer the input range: the example input is all zeros and no "
                              "calibration data was given; pass calibration=<real samples> or input_scale=")
    span = 2.0 ** math.ceil(math.log2(peak))
    s = limit / span
    return float(math.floor(s)) if s >= 1 else s


def set_input_scale(fir: FloatGraph, scale: float) -> FloatGraph:
    inp: FloatLayer = next(lay for lay in fir.layers if lay.kind == "input")
    return fir.replace_layers({inp.name: replace(inp, scale=scale)})
