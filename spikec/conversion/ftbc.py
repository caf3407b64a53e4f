"""FTBC: Forward Temporal Bias Correction (Wu et al., ECCV 2024), on the compiled integer graph.

Follows the first author's calibration code (research/algorithms.md §4.3, FTBC-tmp @ eb4db06):

    for each of the first K calibration batches:
      for each IF layer l in topological order:
        a = the ANN activation feeding layer l (its ClipActivation output), in membrane units
        X = layer l's input current at local steps k = 1..S, from the integer graph run with
            every bias calibrated so far (earlier layers already updated in this pass)
        replay from v = v_init, IGNORING layer l's own stored schedule:
          m = v + X[k];  s = theta * [m >= theta];  e = s - a        (element-wise, target a not a/T)
          m' = m - e;    s' = theta * [m' >= theta];  v = m' - s'
          b_l[k] += alpha * mean over batch and space of e          (one value per channel)

FTBC *subtracts* b from the membrane every step; the IR *adds* `bias_schedule[k-1]` at local step
k, so the graph stores bias_schedule = -round(b) in integer membrane units. The schedule is indexed
by local time, so the compiler's retiming (per-layer start steps) needs no correction here.
Calibration is causal (b[k] only depends on steps <= k), so a schedule calibrated for S steps
serves every T <= S unchanged; beyond S there is no bias.

Deliberate differences from the authors' code: the ANN reference uses the model's own activations
(their script's reference copy silently uses L = 8 whatever -L says), and the calibration batches
are consecutive slices of the calibration data given to compile (the authors take the first K
batches of their shuffled, augmented train loader). Signed (ECL-style) layers are replayed with
the same rule extended by the negative spike (an output of -theta), an extension of ours.
"""

from __future__ import annotations

import numpy as np
import torch

from spikec.conversion.graphs import replace_nodes
from spikec.errors import ConversionError, UnsupportedError
from spikec.ir import IF, Graph, dynamics
from spikec.ir.graph import broadcast_param

DEFAULTS = {"alpha": 0.4, "batches": 3, "batch_size": 200, "steps": 32}


def layer_sources(graph: Graph) -> dict[str, dict]:
    """{IF layer name: {"source": module path, "node": fx node name (or None), "scale": integer
    membrane units per float activation unit (scalar or per channel)}} from graph.meta["layers"]."""
    rows = graph.meta.get("layers")
    if rows is None:
        raise ConversionError("graph.meta has no 'layers' record; FTBC needs a graph from spikec.compile")
    items = rows.items() if isinstance(rows, dict) else ((r.get("name"), r) for r in rows)
    out = {}
    for name, row in items:
        if name in graph.nodes and isinstance(graph.nodes[name], IF):
            if row.get("source") is None or row.get("scale") is None:
                raise ConversionError(f"{name}: meta lacks 'source' or 'scale'; cannot calibrate FTBC")
            out[name] = {"source": str(row["source"]), "node": row.get("node"),
                         "channels": row.get("channels"), "scale": np.asarray(row["scale"], dtype=np.float64),
                         "part": (row.get("notes") or {}).get("part")}
    missing = [p.name for p in graph.if_layers if p.name not in out]
    if missing:
        raise ConversionError(f"IF layers {missing} have no ANN source in graph.meta['layers']")
    return out


def replay_errors(drive, steps: int, target: torch.Tensor, layer: IF) -> torch.Tensor:
    """Sum over the batch and space of the element-wise FTBC error e per step and channel.

    drive(k) -> [B, *shape]: input current + static bias at local step k (0-based);
    target: [B, *shape], the ANN activation in membrane units; the replay computes in target's
    dtype (float64 for exact hand checks, float32 in calibration). Returns float64 [steps, C].

    The firing and reset rules are `spikec.ir.dynamics.fire` / `reset` (`replay_step`); unsigned
    layers take `_replay_unsigned`, an in-place mirror of the same rule (tests/methods/test_ftbc.py
    checks it equal to `replay_step` on random states).
    """
    dtype = target.dtype
    shape = tuple(target.shape)
    full = lambda a: torch.as_tensor(np.array(broadcast_param(a, layer.shape)), dtype=dtype)  # noqa: E731
    theta = full(layer.theta)
    v = full(layer.v_init).expand(shape).clone()
    if layer.theta_neg is None:
        if np.all(layer.theta == layer.theta.flat[0]):
            theta = float(layer.theta.flat[0])      # a scalar broadcasts faster than a full tensor
        return _replay_unsigned(drive, steps, target, theta, v)
    theta_neg = full(layer.theta_neg)
    net = torch.zeros(shape, dtype=dtype) if layer.gate == "net" else None
    sums = torch.zeros((steps, shape[1]), dtype=torch.float64)
    for k in range(steps):
        v, net, e = replay_step(v, net, drive(k).to(dtype), target, theta, theta_neg)
        sums[k] = _channel_sums(e)
    return sums


def replay_step(v, net, drive, target, theta, theta_neg=None):
    """One FTBC replay step on the IF rule of spikec.ir.dynamics -> (v, net, e).

    m = v + drive; e = theta * s(m) - target (s in {-1, 0, 1}: a negative spike outputs -theta);
    m' = m - e; v = reset(m', fire(m')). net (None: no "net" gate) sums the spikes of m'.
    """
    m = v + drive
    pos, neg = dynamics.fire(m, theta, theta_neg, None if net is None else net > 0)
    e = theta * pos - target if neg is None else theta * pos - theta * neg - target
    m = m - e
    pos, neg = dynamics.fire(m, theta, theta_neg, None if net is None else net > 0)
    v = dynamics.reset(m, pos, neg, theta, "subtract")
    if net is not None:
        net = net + pos.to(net.dtype) - neg.to(net.dtype)
    return v, net, e


def _replay_unsigned(drive, steps: int, target: torch.Tensor, theta, v: torch.Tensor) -> torch.Tensor:
    """`replay_step` for unsigned layers, in place (v is m): e = theta [m >= theta] - a;
    m' = m - e; v = m' - theta [m' >= theta]. Returns the per-step channel sums of e."""
    shape, dtype = tuple(target.shape), target.dtype
    sums = torch.zeros((steps, shape[1]), dtype=torch.float64)
    target_sum = _channel_sums(target)
    above = torch.empty(shape, dtype=torch.bool)
    fired = torch.empty(shape, dtype=dtype)
    for k in range(steps):
        v += drive(k)
        torch.mul(torch.ge(v, theta, out=above), theta, out=fired)
        sums[k] = _channel_sums(fired) - target_sum
        v += target
        v -= fired
        v -= torch.mul(torch.ge(v, theta, out=above), theta, out=fired)
    return sums


def _channel_sums(t: torch.Tensor) -> torch.Tensor:
    """Per-channel sums of [B, C, ...] as float64 [C]: the batch first, then space (two reductions
    over contiguous runs, much faster than one over dims (0, 2, 3))."""
    per_sample = t.sum(dim=0)
    return (per_sample.reshape(per_sample.shape[0], -1) if per_sample.ndim > 1 else per_sample[:, None]
            ).sum(dim=1, dtype=torch.float64)


def _activations(model: torch.nn.Module, sources: dict[str, dict], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """{IF layer name: the ANN activation feeding it} on the float batch x (model in eval mode).

    A torch.fx GraphModule holding every recorded fx node (the compiler's traced, BN-folded model)
    is read by fx node name; any other module (spikec.prepare's output too: the compiler's retrace
    names its nodes differently) by the activation's module path, with forward hooks.
    """
    from torch import fx

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            names = {n.name for n in model.graph.nodes} if isinstance(model, fx.GraphModule) else set()
            if names and all(s["node"] in names for s in sources.values()):   # the compiler's own trace
                got = _fx_outputs(model, {s["node"] for s in sources.values()}, x)
                return {name: _channels(got[s["node"]], s) for name, s in sources.items()}
            got = _hooked_outputs(model, {s["source"] for s in sources.values()}, x)
            return {name: _channels(got[s["source"]], s) for name, s in sources.items()}
    finally:
        model.train(was_training)


def _channels(activation: torch.Tensor, source: dict) -> torch.Tensor:
    """The layer's channels range(*channels) of its node's output (layers split from an activation of
    a concatenation or channel shuffle); for one half of a pair signed clip, its part of the value:
    max(y, 0) ("+") or max(-y, 0) ("-")."""
    span = source.get("channels")
    out = activation if span is None else activation[:, slice(*span)]
    part = source.get("part")
    return out if part is None else (out if part == "+" else -out).clamp(min=0)


def _fx_outputs(gm, wanted: set[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    from torch import fx

    got: dict[str, torch.Tensor] = {}

    class Capture(fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.name in wanted:
                got[n.name] = out.detach().double()
            return out

    Capture(gm).run(x)
    missing = wanted - set(got)
    if missing:
        raise ConversionError(f"FTBC: the traced model has no node(s) {sorted(missing)} (from graph.meta)")
    return got


def _hooked_outputs(model, wanted: set[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    got: dict[str, torch.Tensor] = {}
    hooks = []
    try:
        for src in wanted:
            try:
                module = model.get_submodule(src)
            except AttributeError:
                raise ConversionError(f"FTBC: the model has no submodule {src!r} (from graph.meta)") from None
            hooks.append(module.register_forward_hook(
                lambda _m, _i, out, src=src: got.__setitem__(src, out.detach().double())))
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return got


def _batches(data: torch.Tensor, batches: int, batch_size: int) -> list[torch.Tensor]:
    if len(data) == 0:
        raise ConversionError("FTBC needs calibration data (spikec.compile(..., calibration=x))")
    chunks = list(torch.split(data, batch_size))
    return [chunks[i % len(chunks)] for i in range(batches)]


def calibrate(graph: Graph, model: torch.nn.Module, data, alpha: float = 0.4, batches: int = 3,
              batch_size: int = 200, steps: int = 32) -> Graph:
    """Return a copy of `graph` with an FTBC bias_schedule [steps, C] on every IF layer.

    model: the float ANN the graph was compiled from (its activations are the targets), or the
    compiler's traced GraphModule (then read by the fx node names in meta);
    data: float calibration inputs [N, *input shape] (labels unused); the first `batches` slices
    of `batch_size` samples are used (cycling if there are fewer).

    Cost: ONE run of the integer graph per calibration batch (the torch backend calls back before
    simulating each layer, so the layer's input current comes from upstream layers already updated
    in this pass), instead of one run per layer.
    """
    from spikec.backends.torch.backend import run_with_layer_hook

    if not 0 < alpha or batches < 1 or steps < 1 or batch_size < 1:
        raise ConversionError(f"FTBC needs alpha > 0 and positive batches/steps/batch_size, got "
                              f"alpha={alpha}, batches={batches}, steps={steps}, batch_size={batch_size}")
    for layer in graph.if_layers:
        if layer.bias_schedule is not None:
            raise ConversionError(f"{layer.name}: already has a bias schedule (FTBC applied twice?)")
        if layer.presim:
            raise UnsupportedError(f"{layer.name}: FTBC on an SRP graph (presim > 0) is not supported")
        if layer.reset != "subtract":
            raise UnsupportedError(f"{layer.name}: FTBC assumes reset by subtraction, got {layer.reset!r}")
    data = data[0] if isinstance(data, (tuple, list)) else data
    data = torch.as_tensor(data, dtype=torch.float32)
    sources = layer_sources(graph)
    b = {layer.name: np.zeros((steps, layer.shape[0])) for layer in graph.if_layers}
    for batch in _batches(data, batches, batch_size):
        acts = _activations(model, sources, batch)

        def update(layer: IF, drive, acts=acts) -> IF:
            # `layer` comes without its schedule and `drive` without it: the replay ignores it
            target = (acts[layer.name] * _channel_scale(sources[layer.name]["scale"], layer.shape)).float()
            if tuple(target.shape[1:]) != tuple(layer.shape):
                raise ConversionError(f"{layer.name}: ANN activation {sources[layer.name]['source']!r} has "
                                      f"shape {tuple(target.shape[1:])}, the IF layer {layer.shape}")
            sums = replay_errors(lambda k: drive[k], steps, target, layer)
            b[layer.name] += alpha * (sums / (target.numel() // layer.shape[0])).numpy()
            return _with_schedule(layer, b[layer.name])

        _, replaced = run_with_layer_hook(graph, graph.encode(batch.numpy()), steps, update)
        graph = replace_nodes(graph, replaced)
    meta = {"ftbc": {"alpha": alpha, "batches": batches, "batch_size": batch_size, "steps": steps}}
    return replace_nodes(graph, {}, meta)


def _channel_scale(scale: np.ndarray, shape) -> torch.Tensor:
    """A scalar or per-channel scale as a tensor broadcastable to [B, *shape]."""
    t = torch.as_tensor(scale, dtype=torch.float64)
    return t if t.ndim == 0 else t.reshape((shape[0],) + (1,) * (len(shape) - 1))


def _with_schedule(layer: IF, b: np.ndarray) -> IF:
    import dataclasses

    return dataclasses.replace(layer, bias_schedule=-np.rint(b).astype(np.int64))
