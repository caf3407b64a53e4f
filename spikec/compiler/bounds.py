"""Static bounds: per-step input currents and membrane ranges, and the overflow check pass.

Interval arithmetic over an edge's op chain, per channel (a bound that holds at every position of
a channel; zero padding stays inside any interval that contains 0). Works on the float IR and on
the integer IR alike (both ops expose `weight`, `groups`, `kernel`).

Membrane over T steps of the IF rule (SEMANTICS §3), with per-step total input I in [lo, hi]
(synaptic current + bias + schedule):
    subtract reset: v <= max(v_init, theta - 1) + (T - 1) * max(0, hi - theta) + max(0, hi)
                    v >= min(v_init, 0) + T * min(0, lo)        (unsigned spikes)
    signed, no gate: v >= min(v_init, -(theta_neg - 1)) + (T - 1) * min(0, lo + theta) + min(0, lo)
    (a -1 spike fires at v <= -theta_neg and gives theta back; a gated layer may never send one, so
    it gets the unsigned bound);  readout: |acc| <= T * max(|lo|, |hi|)
"""

from __future__ import annotations

import numpy as np

from spikec.errors import OverflowRiskError
from spikec.ir.graph import Graph
from spikec.ir.nodes import IF, Flatten, Input, Readout, SumPool2d
from spikec.ir.rowblocks import row_blocks


def source_range(pop) -> tuple[float, float]:
    """What one population can emit per step (per element)."""
    if isinstance(pop, Input):
        limit = 2 ** (pop.value_bits - 1) - 1
        return (-limit, limit) if pop.encoding == "current" else (0, 1)
    if isinstance(pop, IF):
        return (-1 if pop.theta_neg is not None else 0, 1)
    raise TypeError(f"{type(pop).__name__} emits nothing")


def edge_interval(ops, src_shape, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel (3-D) or neuron (1-D) bounds of the edge's current, for inputs in [lo, hi]."""
    shape = tuple(src_shape)
    lo_v = np.full(shape[0], float(lo))
    hi_v = np.full(shape[0], float(hi))
    for op in ops:
        if isinstance(op, SumPool2d):
            k = op.kernel[0] * op.kernel[1]
            lo_v, hi_v = lo_v * k, hi_v * k
        elif isinstance(op, Flatten):
            rep = int(np.prod(shape[1:])) if len(shape) == 3 else 1
            lo_v, hi_v = np.repeat(lo_v, rep), np.repeat(hi_v, rep)
        elif op.weight.ndim == 2:
            lo_v, hi_v = _dense_interval(op.weight, lo_v, hi_v)
        else:
            w = op.weight
            groups = op.groups
            c_out, cg = w.shape[:2]
            wp = np.maximum(w, 0).sum((2, 3)).astype(np.float64).reshape(groups, c_out // groups, cg)
            wn = np.minimum(w, 0).sum((2, 3)).astype(np.float64).reshape(groups, c_out // groups, cg)
            lg, hg = lo_v.reshape(groups, cg), hi_v.reshape(groups, cg)
            lo_v = (np.einsum("goc,gc->go", wp, lg) + np.einsum("goc,gc->go", wn, hg)).reshape(c_out)
            hi_v = (np.einsum("goc,gc->go", wp, hg) + np.einsum("goc,gc->go", wn, lg)).reshape(c_out)
        shape = tuple(op.output_shape(shape))
    return lo_v, hi_v


def _dense_interval(weight: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of weight @ x for x in [lo, hi], in row blocks (no whole-matrix float copies)."""
    out_lo, out_hi = np.empty(weight.shape[0]), np.empty(weight.shape[0])
    for b in row_blocks(*weight.shape):
        w = weight[b].astype(np.float64)
        wp, wn = np.maximum(w, 0), np.minimum(w, 0)
        out_lo[b] = wp @ lo + wn @ hi
        out_hi[b] = wp @ hi + wn @ lo
    return out_lo, out_hi


def per_channel_extremes(value, shape) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) per channel of a scalar / per-channel / full-shape parameter."""
    arr = np.asarray(value, np.float64)
    if arr.ndim == 0:
        return np.full(shape[0], float(arr)), np.full(shape[0], float(arr))
    per = arr.reshape(shape[0], -1)
    return per.min(1), per.max(1)


def membrane_range(lo, hi, theta, v_init, theta_neg, steps: int, reset: str = "subtract"):
    """(min, max) the membrane can reach within `steps` local steps (arrays per channel)."""
    hi_p, lo_n = np.maximum(hi, 0), np.minimum(lo, 0)
    start_hi = np.maximum(v_init, theta - 1)
    drift_up = np.maximum(0, hi - theta) if reset == "subtract" else 0
    top = start_hi + (steps - 1) * drift_up + hi_p
    if theta_neg is None:
        bottom = np.minimum(v_init, 0) + steps * lo_n
    else:   # a -1 spike fires at v <= -theta_neg and gives theta back
        drift_down = np.minimum(0, lo + theta) if reset == "subtract" else 0
        bottom = np.minimum(v_init, -(theta_neg - 1)) + (steps - 1) * drift_down + lo_n
    return bottom, top


def population_current(graph: Graph, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel bounds of the synaptic current into population `name` (no bias)."""
    node = graph.node(name)
    lo = np.zeros(node.shape[0])
    hi = np.zeros(node.shape[0])
    for e in graph.in_edges(name):
        src = graph.node(e.src)
        elo, ehi = edge_interval(e.ops, src.shape, *source_range(src))
        lo, hi = lo + elo * 2 ** e.weight_exp, hi + ehi * 2 ** e.weight_exp
    return lo, hi


def local_horizon(graph: Graph, name: str, steps: int) -> int:
    """Local steps population `name` runs, at most, in a run of `steps` evaluated steps.

    A run lasts graph.hardware_steps(steps); a layer that starts earlier than the readout runs
    that many more steps. An SRP layer resets to v_init at local step `presim`, so only the
    longer of the two phases counts. The readout accumulates exactly `steps` steps."""
    node = graph.node(name)
    if isinstance(node, Readout):
        return steps
    h = graph.hardware_steps(steps) - graph.start_steps()[name] + 1
    if isinstance(node, IF) and node.presim and h > node.presim:
        h = max(node.presim, h - node.presim)
    return h


def _evaluated_steps(graph: Graph, name: str, local: int | None) -> int | None:
    """The largest evaluated T whose local horizon for `name` is at most `local` (None = any)."""
    if local is None:
        return None
    if local_horizon(graph, name, 1) > local:
        return 0
    lo, hi = 1, 2**31
    if local_horizon(graph, name, hi) <= local:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if local_horizon(graph, name, mid) <= local else (lo, mid)
    return lo


def layer_bounds(graph: Graph, name: str, steps: int | None) -> dict:
    """{'input': max |synaptic current|, 'low'/'high': state range in a run of `steps` evaluated
    steps, 'horizon': that run's local steps, 'safe_steps': largest safe evaluated T}."""
    node = graph.node(name)
    lo, hi = population_current(graph, name)
    b_lo, b_hi = per_channel_extremes(node.bias, node.shape)
    lo_t, hi_t = lo + b_lo, hi + b_hi
    if isinstance(node, IF) and node.bias_schedule is not None:
        s_lo, s_hi = zip(*(per_channel_extremes(s, node.shape) for s in node.bias_schedule))
        lo_t = lo_t + np.minimum(np.min(s_lo, axis=0), 0)
        hi_t = hi_t + np.maximum(np.max(s_hi, axis=0), 0)
    out = {"input": float(max(np.abs(lo).max(), np.abs(hi).max()))}
    limit = 2 ** (node.state_bits - 1) - 1
    if isinstance(node, Readout):
        per_step = float(max(np.abs(lo_t).max(), np.abs(hi_t).max()))
        out["safe_steps"] = _safe(lambda t: t * per_step, limit)
        if steps:
            out["horizon"] = steps
            out["low"], out["high"] = -steps * per_step, steps * per_step
        return out
    theta, _ = per_channel_extremes(node.theta, node.shape)
    v_lo, v_hi = per_channel_extremes(node.v_init, node.shape)
    # a gated signed layer may never send a -1 spike (net <= 0): its membrane falls like an unsigned one's
    signed = node.theta_neg is not None and node.gate == "none"
    tneg = per_channel_extremes(node.theta_neg, node.shape)[1] if signed else None

    def reach(t):
        low, _ = membrane_range(lo_t, hi_t, theta, v_lo, tneg, t, node.reset)
        _, high = membrane_range(lo_t, hi_t, theta, v_hi, tneg, t, node.reset)
        return float(max(-low.min(), high.max()))

    out["safe_steps"] = _evaluated_steps(graph, name, _safe(reach, limit))
    if steps:
        h = out["horizon"] = local_horizon(graph, name, steps)
        low, _ = membrane_range(lo_t, hi_t, theta, v_lo, tneg, h, node.reset)
        _, high = membrane_range(lo_t, hi_t, theta, v_hi, tneg, h, node.reset)
        out["low"], out["high"] = float(low.min()), float(high.max())
    return out


def _state_name(node) -> str:
    return "accumulator" if isinstance(node, Readout) else "membrane"


def _safe(reach, limit: int, cap: int = 2**31) -> int | None:
    """Largest T with reach(T) <= limit (None = unbounded within `cap`); reach is non-decreasing."""
    if reach(cap) <= limit:
        return None
    if reach(1) > limit:
        return 0
    lo, hi = 1, cap
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if reach(mid) <= limit else (lo, mid)
    return lo


def check_bounds(graph: Graph, input_limit: int, steps: int | None, saturate: bool) -> Graph:
    """Prove per-step inputs fit `input_limit` and (for `steps` T) no membrane/readout saturates
    during a run of T evaluated steps (every hardware step of it, see local_horizon).

    Raises OverflowRiskError naming the layer, unless `saturate` accepts membrane saturation (the
    IR clips to +-(2^(state_bits-1) - 1) in every backend and counts it); per-step input overflow
    is never accepted (hardware wraps it). Returns the graph with meta["bounds"] filled in.
    """
    rows = {}
    for name in graph.topo_order():
        node = graph.node(name)
        if isinstance(node, Input):
            continue
        b = layer_bounds(graph, name, steps)
        limit = 2 ** (node.state_bits - 1) - 1
        if b["input"] > input_limit:
            raise OverflowRiskError(
                f"{name}: per-step synaptic input can reach {b['input']:.0f} > {input_limit} allowed by the "
                "target; this wraps on hardware. Lower the layer's weight scale (fewer input bits, "
                "smaller weights) or use a wider target")
        at_risk = steps is not None and max(-b["low"], b["high"]) > limit
        if at_risk and not saturate:
            raise OverflowRiskError(
                f"{name}: in a run of {steps} evaluated steps ({b['horizon']} local steps here) the "
                f"{_state_name(node)} can reach [{b['low']:.0f}, {b['high']:.0f}], beyond the "
                f"{node.state_bits}-bit range "
                f"+-{limit} (worst case, safe for {b['safe_steps']} steps). Pass saturate=True to accept "
                "saturation (every backend clips and counts it identically), or use fewer steps")
        rows[name] = {"input_bound": b["input"], "safe_steps": b["safe_steps"], "may_saturate": bool(at_risk)}
    safe = [r["safe_steps"] for r in rows.values() if r["safe_steps"] is not None]
    meta = dict(graph.meta)
    meta["bounds"] = {
        "steps": steps, "input_limit": input_limit, "layers": rows,
        "safe_steps": min(safe) if safe else None,
        "saturation": "accepted: states clip to their bit width, counted per layer" if saturate
        else "proved impossible within steps" if steps is not None else "not checked (steps not given)",
    }
    return Graph(graph.populations, graph.edges, meta)


def scale_caps(lo: np.ndarray, hi: np.ndarray, b_lo, b_hi, v_frac: float, kind: str, steps: int | None,
               state_max: int, input_limit: int) -> dict[str, np.ndarray]:
    """Per channel, the largest scale sigma (integer units per normalized unit, theta = 1) each bound
    allows: "accumulator" (per-step synaptic input) and, for `steps` T, "membrane".

    lo/hi: per-channel synaptic current bounds in normalized units; b_lo/b_hi: bias bounds.
    """
    with np.errstate(divide="ignore"):
        caps = {"accumulator": input_limit / np.maximum(np.abs(lo), np.abs(hi))}
        if steps:
            lo_t, hi_t = lo + b_lo, hi + b_hi
            if kind == "readout":
                need = steps * np.maximum(np.abs(lo_t), np.abs(hi_t))
            else:
                low, high = membrane_range(lo_t, hi_t, 1.0, v_frac, None, steps)
                need = np.maximum(-low, high)
            caps["membrane"] = state_max / need
    return caps
