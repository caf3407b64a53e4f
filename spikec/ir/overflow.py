"""The int64 proof: no value any backend forms while running a graph can leave int64.

Every backend computes in int64, or (the torch backend) in a float type only where its own bound
proves the values exact. This module bounds, from the graph alone, every value a run forms:

- a synapse op's partial sums, an edge's current (times 2^weight_exp), and the product matrices
  Brian2 and Lava build from an edge's op chain: at most max(x, 1) * prod(max(gain, 1)) * 2^e,
  where x bounds what the source emits and gain is the op's largest row sum of |weight|
  (kh * kw for a sum pool, 1 for a flatten); a negative exponent (a floor shift) only shrinks;
- what a SigmaDelta layer emits: |delta| <= 2 * (limit + |bias|) + vth (act and act_prev lie in
  [0, limit + |bias|], the residue below vth), before its shift;
- the drive of a population: the sum of its edges' currents plus |bias| plus |bias schedule|;
- the membrane (or readout accumulator) plus that drive, plus the largest threshold. Every state
  saturates at +-(2^(state_bits-1) - 1) each step, so for any T the state is bounded by that
  limit; for a given T also by |v_init| + T * drive (the T-step reach).

Each bound must stay below SAFE = 2^62, so any sum of two such values, a negation and an abs()
still fit int64 (abs(-2^63) does not), and the torch backend's exactness rule (torch_ops,
int64 below 2^62) always finds a dtype. Bounds are Python integers: exact, never wrapping.
"""

from __future__ import annotations

import weakref

import numpy as np

from spikec.errors import OverflowRiskError
from spikec.ir.nodes import IF, Conv2d, Dense, Input, Readout, SigmaDelta, SumPool2d
from spikec.ir.rowblocks import row_blocks

SAFE = 2 ** 62
_GAINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def max_abs(value) -> int:
    """Largest |value| as an exact Python int (0 for None or empty; int64 min is 2^63)."""
    if value is None:
        return 0
    arr = np.asarray(value)
    if arr.size == 0:
        return 0
    return max(abs(int(arr.min())), abs(int(arr.max())))


def op_gain(op) -> int:
    """Largest factor by which `op` can grow the max |value| of its input: exact, cached per op."""
    if isinstance(op, SumPool2d):
        return op.kernel[0] * op.kernel[1]
    if not isinstance(op, (Dense, Conv2d)):
        return 1
    gain = _GAINS.get(op)
    if gain is None:
        w = op.weight.reshape(op.weight.shape[0], -1)
        gain = _GAINS[op] = max((_row_abs_sum_max(w[b]) for b in row_blocks(*w.shape)), default=0)
    return gain


def _row_abs_sum_max(w: np.ndarray) -> int:
    """max over rows of sum |w|, exactly: |w| in uint64 (2^63 included), split into 32-bit halves
    whose row sums cannot wrap (a row has at most 2^28 entries)."""
    if w.size == 0:
        return 0
    neg = w < 0
    mag = np.where(neg, -(w + 1), w).astype(np.uint64) + neg.astype(np.uint64)
    high = (mag >> np.uint64(32)).sum(axis=1, dtype=np.uint64)
    low = (mag & np.uint64(0xFFFFFFFF)).sum(axis=1, dtype=np.uint64)
    if not high.any():
        return int(low.max())
    return max((int(h) << 32) + int(lo) for h, lo in zip(high, low))


def source_bound(node, x: np.ndarray | None = None) -> int:
    """Largest |value| `node` emits in one step (from the data when current inputs `x` are given)."""
    if isinstance(node, Input):
        if node.encoding == "spikes":
            return 1
        return max_abs(x) if x is not None else 2 ** (int(node.value_bits) - 1) - 1
    if isinstance(node, SigmaDelta):
        act = 2 ** (int(node.state_bits) - 1) - 1 + max_abs(node.bias)
        return (2 * act + int(node.vth)) >> int(node.shift)
    return 1


def edge_bounds(edge, src_bound: int) -> tuple[int, int]:
    """(bound on the edge's current, bound on every value formed on the way) for a source within
    `src_bound`."""
    out, peak = src_bound, max(src_bound, 1)
    for op in edge.ops:
        gain = op_gain(op)
        out *= gain
        peak *= max(gain, 1)
    factor = 2 ** max(int(edge.weight_exp), 0)
    return out * factor, peak * factor


def prove(graph, steps: int | None = None, x: np.ndarray | None = None) -> None:
    """Raise OverflowRiskError naming the first population (in topological order) at which a run of
    `steps` evaluated steps (None: any number) on inputs like `x` (None: the declared range) could
    form a value of magnitude 2^62 or more."""
    start = graph.start_steps()
    emit = {}
    for name in graph.topo_order():
        node = graph.nodes[name]
        emit[name] = source_bound(node, x if isinstance(node, Input) else None)
        if isinstance(node, Input):
            continue
        drive = max_abs(node.bias) + (max_abs(node.bias_schedule) if isinstance(node, IF) else 0)
        for edge in graph.in_edges(name):
            out, peak = edge_bounds(edge, emit[edge.src])
            if peak >= SAFE:
                raise OverflowRiskError(
                    f"{name}: edge {edge.name}'s synapse ops can form sums up to {_size(peak)}, beyond "
                    f"the 2^62 every backend computes exactly in int64; use smaller weights")
            drive += out
        limit = 2 ** (int(node.state_bits) - 1) - 1
        if isinstance(node, Readout):
            state, threshold, what = limit if steps is None else min(limit, steps * drive), 0, "accumulator"
        elif isinstance(node, SigmaDelta):
            state, threshold, what = limit, 2 * (limit + max_abs(node.bias)) + int(node.vth), "sigma"
        else:
            horizon = None if steps is None else graph.hardware_steps(steps) - start[name] + 1
            state = limit if horizon is None else min(limit, max_abs(node.v_init) + horizon * drive)
            threshold, what = max(max_abs(node.theta), max_abs(node.theta_neg)), "membrane"
        total = state + drive + threshold
        if total >= SAFE:
            when = "in any run" if steps is None else f"in a run of {steps} steps"
            raise OverflowRiskError(
                f"{name}: {what} ({_size(state)}) + input per step ({_size(drive)}) + threshold "
                f"({_size(threshold)}) can reach {_size(total)} {when}, beyond the 2^62 every backend "
                f"computes exactly in int64; use smaller weights, biases or state_bits")


def _size(value: int) -> str:
    return f"{value}" if value < 2 ** 20 else f"2^{np.log2(float(value)):.2f}"
