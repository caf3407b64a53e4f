"""Integer quantization: the normalized float IR -> an integer spikec.Graph at a target's widths.

Per population (theta = 1 after `normalize`) one integer scale sigma is chosen, the largest that
every constraint allows (recorded as "limited_by"):
  weights      max |W~| * sigma <= 2^(weight_bits-1) - 1   (keep the most weight precision); at a
               join of several edges, when the target has weight exponents, only the edge with the
               smallest weights must fit at exponent 0: every other edge e gets the smallest
               weight_exp with max |W~_e| * sigma / 2^weight_exp in range (sigma is capped so that
               weight_exp <= target.weight_exp_max)
  accumulator  per-step synaptic input <= target.input_limit
  membrane     (only with `steps` and saturate=False) no state can saturate within T steps
  theta        sigma <= target.theta_max;  bias: |b~| * sigma fits the bias format
Then theta = sigma (an integer; even when v_init = theta/2 so that it is exact), W = round(W~ sigma)
clipped to the weight range, bias = round(b~ sigma) legalised to mant << exp. If rounding pushes a
bound over, sigma shrinks by 2 % and the layer is redone (limited_by keeps the first cause). The
readout keeps a float sigma.

The membrane bound may cost at most MAX_MEMBRANE_BITS bits of weight precision; beyond that the
user must choose (OverflowRiskError): fewer steps, or saturate=True.
"""

from __future__ import annotations

import math

import numpy as np

from spikec.compiler.bounds import edge_interval, membrane_range, per_channel_extremes, scale_caps
from spikec.compiler.floatir import (
    FloatConv,
    FloatDense,
    FloatGraph,
    FloatLayer,
    is_weighted,
    sole_owned_weights,
    weighted_index,
)
from spikec.compiler.methods import Policy
from spikec.compiler.targets import Target
from spikec.errors import ConversionError, OverflowRiskError
from spikec.ir.graph import Graph
from spikec.ir.nodes import IF, Conv2d, Dense, Edge, Flatten, Input, Readout, SumPool2d, narrowest_int_dtype
from spikec.ir.report import edge_keys
from spikec.ir.rowblocks import row_blocks

MAX_MEMBRANE_BITS = 3


def jsonable(x):
    """numpy scalars/arrays -> python floats/ints/lists (scalars stay scalars)."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.item()) if x.ndim == 0 else x.tolist()
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


def legalize_bias(b: np.ndarray, target: Target) -> tuple[np.ndarray, int, int]:
    """Round integer biases to the target's mant << exp format; (bias, n_rounded, n_clipped)."""
    b = np.asarray(b, np.int64)
    limit = target.bias_max
    clipped = int(np.count_nonzero(np.abs(b) > limit))
    b = np.asarray(np.clip(b, -limit, limit), np.int64)
    if target.bias_mant_bits is None:
        return b, 0, clipped
    mmax = 2 ** (target.bias_mant_bits - 1) - 1
    out = np.array(b, copy=True)
    todo = np.asarray(np.abs(b) > mmax)
    for e in range(1, target.bias_exp_max + 1):
        if not todo.any():
            break
        mant = np.rint(b / 2.0**e).astype(np.int64)
        ok = todo & (np.abs(mant) <= mmax)
        out[ok] = mant[ok] << e
        todo &= ~ok
    out[todo] = np.sign(b[todo]) * (mmax << target.bias_exp_max)
    return out, int(np.count_nonzero(out != b)), clipped


def _to_ir(op, weight=None):
    if isinstance(op, FloatConv):
        return Conv2d(weight, op.stride, op.padding, op.dilation, op.groups)
    if isinstance(op, FloatDense):
        return Dense(weight)
    return op


def _row_gain(op, sigma: np.ndarray) -> np.ndarray:
    s = np.asarray(sigma, np.float64)
    return s if s.ndim == 0 else s.reshape((-1,) + (1,) * (op.weight.ndim - 1))


def _weights(ops) -> np.ndarray:
    return next(op.weight for op in ops if hasattr(op, "weight"))


def _fan_in(ops) -> int:
    n = 1
    for op in ops:
        if isinstance(op, SumPool2d):
            n *= op.kernel[0] * op.kernel[1]
        elif is_weighted(op):
            n *= int(np.prod(op.weight.shape[1:]))
    return n


class LayerQuantizer:
    """Quantizes one IF layer or the readout (see module docstring)."""

    def __init__(self, fir: FloatGraph, target: Target, policy: Policy, input_bits: int,
                 steps: int | None, saturate: bool, per_channel: bool):
        self.layers = {lay.name: lay for lay in fir.layers}
        self.fir, self.target, self.policy = fir, target, policy
        self.input_limit = 2 ** (input_bits - 1) - 1
        self.steps = None if saturate else steps
        self.per_channel = per_channel
        self.horizon = _horizons(fir, self.steps)

    def src_range(self, name: str) -> tuple[float, float]:
        if self.layers[name].kind == "input":
            return -self.input_limit, self.input_limit
        return (-1 if self.policy.signed or self.layers[name].signed else 0), 1

    def current(self, edges, weights=None, exps=None):
        lo = hi = 0.0
        for i, e in enumerate(edges):
            ops = e.ops if weights is None else weights[i]
            factor = 1 if exps is None else 2 ** exps[i]
            elo, ehi = edge_interval(ops, self.layers[e.src].shape, *self.src_range(e.src))
            lo, hi = lo + elo * factor, hi + ehi * factor
        return lo, hi

    def quantize(self, lay: FloatLayer):
        edges = self.fir.in_edges(lay.name)
        is_if = lay.kind == "if"
        rows_map = self.per_channel and is_if and all(
            not any(isinstance(op, Flatten) for op in e.ops[weighted_index(e.ops):]) for e in edges)
        bias = np.zeros(()) if lay.bias is None else np.asarray(lay.bias, np.float64)
        b_lo, b_hi = per_channel_extremes(bias, lay.shape)
        lo, hi = self.current(edges)
        caps = scale_caps(lo, hi, b_lo, b_hi, lay.v_init, lay.kind, self.horizon.get(lay.name),
                          self.target.state_max, self.target.input_limit)
        per_edge = [_abs_max(e.ops[weighted_index(e.ops)].weight, rows_map) for e in edges]
        amax = np.max(np.stack(per_edge), axis=0)
        with np.errstate(divide="ignore"):
            caps["weights"] = self.target.weight_max / amax
            if self._exponents(edges):
                # the finest nonzero edge keeps exponent 0; the coarsest may take up to weight_exp_max
                finest = np.min(np.stack([np.where(a > 0, a, np.inf) for a in per_edge]), axis=0)
                caps["weights"] = np.minimum(self.target.weight_max / finest,
                                             self.target.weight_max * 2 ** self.target.weight_exp_max / amax)
            caps["bias"] = self.target.bias_max / np.maximum(np.abs(b_lo), np.abs(b_hi))
        if is_if:
            caps["theta"] = np.float64(self.target.theta_max)
        if not rows_map:
            caps = {k: np.float64(np.min(v)) for k, v in caps.items()}
        self._check_membrane_cost(lay, caps)
        stacked = np.stack(np.broadcast_arrays(*caps.values()))
        sigma = np.min(stacked, axis=0)
        limited = [list(caps)[i] for i in np.atleast_1d(np.argmin(stacked, axis=0))]
        if not np.all(np.isfinite(sigma)):  # a layer with no weights and no bias
            sigma = np.where(np.isfinite(sigma), sigma, self.target.weight_max)
        for _ in range(60):
            theta = self._theta(sigma, lay) if is_if else np.float64(sigma)
            result = self._apply(lay, edges, theta, bias)
            if self._fits(lay, edges, result, theta) or (is_if and np.all(theta <= 1)):
                break
            sigma = np.maximum(np.floor(np.asarray(sigma) * 0.98), 1.0) if is_if else sigma * 0.98
        return result, theta, sorted(set(limited))

    def _exponents(self, edges) -> bool:
        """Whether the edges into one layer get their own weight exponents (a join, on a target that
        has them, each edge with exactly one weighted op)."""
        return (len(edges) > 1 and self.target.weight_exp_max > 0
                and all(sum(is_weighted(op) for op in e.ops) == 1 for e in edges))

    def _check_membrane_cost(self, lay: FloatLayer, caps: dict) -> None:
        if "membrane" not in caps:
            return
        rest = [v for k, v in caps.items() if k != "membrane"]
        others = np.min(np.stack(np.broadcast_arrays(*rest)), axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            bits = float(np.max(np.log2(others / caps["membrane"])))
        if bits > MAX_MEMBRANE_BITS:
            what = "accumulator" if lay.kind == "readout" else "membrane"
            raise OverflowRiskError(
                f"{lay.name}: in a run of {self.steps} evaluated steps ({self.horizon[lay.name]} local steps "
                f"here) the {what} can exceed the "
                f"{self.target.state_bits}-bit "
                f"range in the worst case; proving it cannot would cost {bits:.1f} bits of weight precision "
                f"(more than {MAX_MEMBRANE_BITS}). Pass saturate=True to accept saturation (every backend "
                "clips and counts it identically), or compile for fewer steps")

    def _theta(self, sigma, lay: FloatLayer) -> np.ndarray:
        theta = np.maximum(np.floor(np.asarray(sigma, np.float64)), 1).astype(np.int64)
        if self.target.theta_power_of_two:   # the largest power of two <= the allowed scale
            theta = (2 ** np.floor(np.log2(theta))).astype(np.int64)
        frac = lay.v_init
        if frac:
            exact = np.isclose(frac * theta, np.rint(frac * theta))
            theta = np.where(~exact & (theta > 1), theta - 1, theta)
        return theta

    def _apply(self, lay, edges, theta, bias):
        ops_out, exps, per_edge, w_err, w_ref, zeroed, clipped = [], [], [], 0.0, 0.0, 0, 0
        tmax, tmin = self.target.weight_max, self.target.weight_min
        scaled = self._exponents(edges)
        for e in edges:
            new, exp, e_err, e_ref = [], 0, 0.0, 0.0
            for op in e.ops:
                if not is_weighted(op):
                    new.append(op)
                    continue
                w, exp, stats = _round_weights(op.weight, _row_gain(op, theta), tmin, tmax,
                                               self.target.weight_exp_max if scaled else 0)
                clipped += stats["clipped"]
                zeroed += stats["zeroed"]
                e_err += stats["error"]
                e_ref += stats["reference"]
                new.append(op.with_weight(w))   # integer weights, compact; IR nodes once they fit
            ops_out.append(tuple(new))
            exps.append(exp)
            per_edge.append(math.sqrt(e_err / e_ref) if e_ref else 0.0)
            w_err, w_ref = w_err + e_err, w_ref + e_ref
        b_int = np.rint(bias * _bias_gain(theta, bias, lay.shape)).astype(np.int64)
        b_leg, b_round, b_clip = legalize_bias(b_int, self.target)
        return {"ops": ops_out, "exps": exps, "bias": b_leg,
                "weight_error": math.sqrt(w_err / w_ref) if w_ref else 0.0, "edge_errors": per_edge,
                "clipped": {"weights": clipped, "bias": b_clip},
                "rounded": {"weights_to_zero": zeroed, "bias_format": b_round}}

    def _fits(self, lay, edges, result, theta) -> bool:
        lo, hi = self.current(edges, result["ops"], result["exps"])
        if max(np.abs(lo).max(), np.abs(hi).max()) > self.target.input_limit:
            return False
        if not self.steps:
            return True
        h = self.horizon[lay.name]
        b_lo, b_hi = per_channel_extremes(result["bias"], lay.shape)
        lo_t, hi_t = lo + b_lo, hi + b_hi
        if lay.kind == "readout":
            need = h * np.maximum(np.abs(lo_t), np.abs(hi_t)).max()
        else:
            v0 = np.rint(lay.v_init * theta)
            low, high = membrane_range(lo_t, hi_t, theta, v0, None, h)
            need = max(-low.min(), high.max())
        return need <= self.target.state_max


def _abs_max(weight: np.ndarray, per_row: bool):
    """max |weight| per output row (per_row) or overall, in row blocks."""
    flat = weight.reshape(weight.shape[0], -1)
    rows = np.concatenate([np.abs(flat[b]).max(1) for b in row_blocks(flat.shape[0], flat.shape[1])]) \
        if flat.size else np.zeros(flat.shape[0])
    return rows if per_row else (rows.max() if rows.size else np.float64(0))


def _round_weights(weight: np.ndarray, gain: np.ndarray, tmin: int, tmax: int, max_exp: int):
    """round(weight * gain / 2^exp) clipped to [tmin, tmax] in the narrowest integer dtype that holds
    that range (int8 for Loihi: a scale that does not fit is retried without a full int64 copy),
    with the smallest exp <= max_exp that keeps every value in range (0 if none), and the rounding
    statistics. Row blocks bound the temporaries; rint is monotonic, so the range check needs only
    the extremes of weight * gain."""
    rows = weight.shape[0]
    gain = np.asarray(gain, np.float64)
    per_row = gain.ndim > 0
    blocks = row_blocks(rows, int(np.prod(weight.shape[1:])))
    lo = hi = 0.0
    for b in blocks:
        exact = weight[b] * (gain[b] if per_row else gain)
        if exact.size:
            lo, hi = min(lo, float(exact.min())), max(hi, float(exact.max()))
    exp = 0
    while exp < max_exp and not (np.rint(lo / 2 ** exp) >= tmin and np.rint(hi / 2 ** exp) <= tmax):
        exp += 1
    out = np.empty(weight.shape, narrowest_int_dtype(tmin, tmax))
    stats = {"clipped": 0, "zeroed": 0, "error": 0.0, "reference": 0.0}
    for b in blocks:
        g = gain[b] if per_row else gain
        exact = weight[b] * g
        w = np.rint(exact / 2 ** exp)
        stats["clipped"] += int(np.count_nonzero((w > tmax) | (w < tmin)))
        np.clip(w, tmin, tmax, out=w)
        out[b] = w
        stats["zeroed"] += int(np.count_nonzero((w == 0) & (weight[b] != 0)))
        w *= 2 ** exp
        w -= exact
        stats["error"] += float((w ** 2 / g ** 2).sum())
        stats["reference"] += float((weight[b] ** 2).sum())
    return out, exp, stats


def _as_int64(compact: np.ndarray, float_weight: np.ndarray, reuse: bool) -> np.ndarray:
    """The rounded weights as the IR's read-only int64 array. reuse: write them into the memory of
    the float64 weights they were rounded from (same size; the caller gave that array up), so the
    integer graph costs no memory beyond the float IR; the float array is frozen as their base."""
    if not reuse:
        out = compact.astype(np.int64)
        out.setflags(write=False)   # frozen and owning its data: the IR node shares it instead of copying
        return out
    out = float_weight.view(np.int64)
    for b in row_blocks(out.shape[0], int(np.prod(out.shape[1:]))):
        out[b] = compact[b]
    float_weight.setflags(write=False)
    out.setflags(write=False)
    return out


def _horizons(fir: FloatGraph, steps: int | None) -> dict[str, int]:
    """Local steps each population runs in a run of `steps` evaluated steps once retimed: a layer
    of depth d runs (readout depth - d) steps more than the readout (see bounds.local_horizon)."""
    if not steps:
        return {}
    depth: dict[str, int] = {}
    for lay in fir.layers:  # topological order
        ins = fir.in_edges(lay.name)
        depth[lay.name] = 1 + max(depth[e.src] for e in ins) if ins else 0
    out_depth = next(depth[lay.name] for lay in fir.layers if lay.kind == "readout")
    return {name: steps + (out_depth - d) for name, d in depth.items()}


def _bias_gain(theta, bias, shape):
    t = np.asarray(theta, np.float64)
    if t.ndim and np.ndim(bias) == len(shape) and len(shape) > 1:
        return t.reshape((-1,) + (1,) * (len(shape) - 1))
    return t


def quantize(fir: FloatGraph, target: Target, policy: Policy, *, input_bits: int, steps: int | None,
             saturate: bool, per_channel: bool = False, consume: bool = False) -> Graph:
    """The integer graph plus meta["layers"], one JSON-able record per population.
    consume: the caller gives `fir` up; the integer weights of each edge are written over the float
    weights it alone holds (the float IR is unusable afterwards), which halves the peak memory."""
    q = LayerQuantizer(fir, target, policy, input_bits, steps, saturate, per_channel)
    owned = sole_owned_weights(fir.edges) if consume else set()
    pops, edges, rows = [], [], []
    for lay in fir.layers:
        if lay.kind == "input":
            pops.append(Input(lay.name, lay.shape, "current", value_bits=input_bits, scale=lay.scale))
            rows.append({"name": lay.name, "type": "Input", "source": lay.source, "node": lay.node,
                         "shape": list(lay.shape), "scale": lay.scale, "value_bits": input_bits, "start": 1})
            continue
        result, theta, limited = q.quantize(lay)
        in_edges = fir.in_edges(lay.name)
        if all(not np.any(_weights(ops)) for ops in result["ops"]) and any(
                np.any(_weights(e.ops)) for e in in_edges):
            raise ConversionError(f"{lay.name} ({lay.source}): every weight rounds to 0 at the scale the "
                                  f"target allows (limited by {', '.join(limited)}); the layer would be dead")
        for e, ops, exp in zip(in_edges, result["ops"], result["exps"]):
            ir_ops = tuple(_to_ir(op, _as_int64(op.weight, f.weight, id(f.weight) in owned)) if is_weighted(op)
                           else op for op, f in zip(ops, e.ops))
            edges.append(Edge(e.src, lay.name, ir_ops, weight_exp=exp))
        row = {"name": lay.name, "type": "IF" if lay.kind == "if" else "Readout", "source": lay.source,
               "node": lay.node, "channels": None if lay.channels is None else list(lay.channels),
               "activation": lay.activation, "shape": list(lay.shape),
               "fan_in": sum(_fan_in(e.ops) for e in in_edges)}
        if lay.kind == "if":
            fields = _if_fields(lay, theta, target)
            v_init = np.int64(np.rint(lay.v_init * theta)) if np.ndim(theta) == 0 else np.rint(
                lay.v_init * theta).astype(np.int64)
            pops.append(IF(lay.name, lay.shape, theta=theta, v_init=v_init, bias=result["bias"],
                           state_bits=target.state_bits, **fields))
            theta_f = np.asarray(lay.theta, np.float64)
            row.update(theta_float=theta_f, theta=theta, scale=theta / theta_f, v_init=v_init)
            dst_unit = theta_f
        else:
            pops.append(Readout(lay.name, lay.shape, bias=result["bias"], state_bits=target.state_bits,
                                **policy.readout_fields()))
            row.update(theta_float=None, theta=None, scale=theta, v_init=None)
            dst_unit = np.float64(1.0)
        keys = edge_keys(in_edges)
        row["weight_scale"] = {k: _weight_scale(q.layers[e.src], theta, dst_unit) for k, e in zip(keys, in_edges)}
        row["weight_exp"] = dict(zip(keys, result["exps"]))
        row["edge_weight_error"] = dict(zip(keys, result["edge_errors"]))
        row.update(weight_error=result["weight_error"], clipped=result["clipped"], rounded=result["rounded"],
                   limited_by=limited, start=None, notes=lay.notes)
        rows.append(jsonable(row))
    meta = {"layers": rows, "method": policy.name, "target": target.name}
    return Graph(tuple(pops), tuple(edges), meta)


def _weight_scale(src: FloatLayer, theta, dst_unit):
    """Integer weight units per float (BN-folded) weight unit on an edge from `src`:
    scale(dst) * unit(src). A scalar when both factors are; else {"out": per output channel,
    "in": per input channel} factors whose product is the scale."""
    unit = np.float64(1.0 / src.scale) if src.kind == "input" else np.asarray(src.theta, np.float64)
    out = np.asarray(theta, np.float64) / np.asarray(dst_unit, np.float64)
    if out.ndim == 0 and unit.ndim == 0:
        return out * unit
    return {"out": out, "in": unit}


def _if_fields(lay: FloatLayer, theta, target: Target) -> dict:
    """The policy's extra IF fields in integer units (theta_neg as a fraction of theta)."""
    out = {}
    for key, value in lay.fields.items():
        if key == "theta_neg":
            out[key] = np.maximum(np.rint(np.asarray(value, np.float64) * theta), 1).astype(np.int64)
        elif key == "bias_schedule":
            sched = np.rint(np.asarray(value, np.float64) * np.asarray(theta, np.float64)
                            / np.asarray(lay.theta, np.float64)).astype(np.int64)
            out[key] = legalize_bias(sched, target)[0]
        else:
            out[key] = value
    return out
