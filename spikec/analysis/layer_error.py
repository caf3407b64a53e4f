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

from spikec.errors import InputDataError


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


def firing_balance(graph, x: torch.Tensor, steps=(2, 4, 8), chunk: int = 10) -> list[dict]:
    """Rows {layer, over: {T: fraction}, under: {T: fraction}}: per IF layer, the share of neurons
    whose net spike count after T local steps is above (over-firing) or below (under-firing) the
    count the same summed input would give if it had arrived evenly, one T-th per step.

    For subtract reset that count is clip(floor((v_init + S) / theta), low, T) with S the summed
    input, and v_init + S = v_T + theta * net_T, so it is read off the integer run itself
    (low = -T for ungated signed layers, else 0). Over-firing is an early spike followed by
    negative input, which a -1 spike can undo; under-firing is input that came too late to be sent.
    Layers with reset "zero" or an SRP pre-simulation are left out. x: float samples (encoded with
    graph.encode), or 0/1 spike trains [batch, time, ...] for a spike-encoded input."""
    from spikec.backends import get

    if not len(x):
        raise InputDataError("firing_balance needs at least one sample, got none")
    if not steps or any(isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1 for t in steps):
        raise InputDataError(f"firing_balance steps must be positive ints, got {steps!r}")
    if not (isinstance(chunk, (int, np.integer)) and chunk >= 1):
        raise InputDataError(f"firing_balance chunk must be a positive int, got {chunk!r}")
    backend = get("torch")
    starts = graph.start_steps()
    layers = [layer for layer in graph.if_layers if layer.reset == "subtract" and not layer.presim]
    t_max = max(steps)
    over = {layer.name: np.zeros(len(steps)) for layer in layers}
    under = {layer.name: np.zeros(len(steps)) for layer in layers}
    count = {layer.name: 0 for layer in layers}
    thetas = {layer.name: np.broadcast_to(_per_channel(layer.theta, layer.shape), layer.shape) for layer in layers}
    for i in range(0, len(x), chunk):
        part = np.asarray(x[i:i + chunk])
        part = part.astype(np.int64) if graph.input.encoding == "spikes" else graph.encode(part)
        trace = backend.run(graph, part, t_max, record=True, record_v=True)
        for layer in layers:
            first = starts[layer.name] - 1
            theta = thetas[layer.name]
            low_all = layer.theta_neg is not None and layer.gate == "none"
            net = np.cumsum(trace.spikes[layer.name][first:first + t_max].astype(np.int64), axis=0)
            volts = trace.voltages[layer.name][first:first + t_max]
            for j, t in enumerate(steps):
                even = np.clip(np.floor_divide(volts[t - 1] + theta * net[t - 1], theta), -t if low_all else 0, t)
                over[layer.name][j] += np.count_nonzero(net[t - 1] > even)
                under[layer.name][j] += np.count_nonzero(net[t - 1] < even)
            count[layer.name] += net[0].size
    return [{"layer": layer.name,
             "over": {t: float(over[layer.name][j] / count[layer.name]) for j, t in enumerate(steps)},
             "under": {t: float(under[layer.name][j] / count[layer.name]) for j, t in enumerate(steps)}}
            for layer in layers]
