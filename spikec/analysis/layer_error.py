"""Where a converted network loses accuracy: each IF layer's spike rate against the ANN activation
it stands for, layer by layer, at several T.

For IF layer l with threshold theta (integer) and scale s (integer membrane units per float unit),
the ANN activation a maps to a = theta / s * r: the SNN's firing rate r over its first T local steps
should equal a * s / theta (in [0, 1] for clip activations). The error per layer is the mean
|r_T - a s / theta| over samples and neurons; it grows along the network where the conversion loses
information (few steps, residual joins, uneven spikes), which the final accuracy alone cannot show.
"""

from __future__ import annotations

import numpy as np
import torch


def layer_errors(graph, model, x: torch.Tensor, steps=(1, 2, 4, 8, 16, 32)) -> list[dict]:
    """Rows {layer, source, ann_rate, snn_rate: {T: ...}, error: {T: ...}} in topological order.

    model: the float ANN the graph was compiled from; x: float images (a small batch: every IF
    layer's spikes are recorded for max(steps) evaluated steps).
    """
    from spikec.backends import get
    from spikec.conversion.ftbc import _activations, _channel_scale, layer_sources

    sources = layer_sources(graph)
    with torch.no_grad():
        acts = _activations(model, sources, x.float())
    t_max = max(steps)
    trace = get("torch").run(graph, graph.encode(x.numpy()), t_max, record=True)
    starts = graph.start_steps()
    rows = []
    for layer in graph.if_layers:
        src = sources[layer.name]
        theta = torch.as_tensor(np.broadcast_to(_per_channel(layer.theta, layer.shape), layer.shape).copy(),
                                dtype=torch.float64)
        low = -1 if layer.theta_neg is not None else 0   # signed layers (ECL, signed clips) emit -1 too
        ann = (acts[layer.name] * _channel_scale(src["scale"], layer.shape) / theta).clamp(low, 1).numpy()
        spikes = trace.spikes[layer.name][starts[layer.name] - 1: starts[layer.name] - 1 + t_max].astype(np.int32)
        counts = np.cumsum(spikes, axis=0)
        snn = {t: counts[t - 1] / t for t in steps if t <= len(counts)}
        rows.append({"layer": layer.name, "source": src["source"], "ann_rate": float(ann.mean()),
                     "snn_rate": {t: float(r.mean()) for t, r in snn.items()},
                     "error": {t: float(np.abs(r - ann).mean()) for t, r in snn.items()}})
    return rows


def _per_channel(value: np.ndarray, shape) -> np.ndarray:
    value = np.asarray(value)
    return value.reshape((-1,) + (1,) * (len(shape) - 1)) if value.ndim == 1 and len(shape) > 1 else value
