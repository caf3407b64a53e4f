"""Structural and range checks of an IR graph and of the inputs handed to it.

`validate` ends with the int64 proof (spikec.ir.overflow): a graph passes only if no value any
backend forms while running it, for any number of steps and any input in the declared range, can
leave int64 (OverflowRiskError names the population otherwise)."""

from __future__ import annotations

import numpy as np

from spikec.errors import GraphError, InputDataError
from spikec.ir.graph import MAX_DELAY, MAX_WEIGHT_EXP, MIN_WEIGHT_EXP, Graph, name_ok, param_shape_ok
from spikec.ir.nodes import IF, Input, Readout, SigmaDelta
from spikec.ir.overflow import prove

ENCODINGS = ("current", "delta", "spikes")
MAX_SHIFT = 30
RESETS = ("subtract", "zero")
GATES = ("none", "net")


def validate(graph: Graph) -> None:
    kinds = [type(p) for p in graph.populations]
    if kinds.count(Input) != 1:
        raise GraphError("graph", "populations", f"needs exactly one Input, has {kinds.count(Input)}")
    if kinds.count(Readout) != 1:
        raise GraphError("graph", "populations", f"needs exactly one Readout, has {kinds.count(Readout)}")
    seen = set()
    for p in graph.populations:
        if not isinstance(p, (Input, IF, SigmaDelta, Readout)):
            raise GraphError(str(getattr(p, "name", p)), None, f"unknown population type {type(p).__name__}")
        if not name_ok(p.name):
            raise GraphError(repr(p.name), "name", "must match [A-Za-z_][A-Za-z0-9_.]*")
        if p.name in seen:
            raise GraphError(p.name, "name", "is used by two populations")
        seen.add(p.name)
        _check_shape(p.name, p.shape)
    for e in graph.edges:
        for end in (e.src, e.dst):
            if end not in seen:
                raise GraphError(e.name, None, f"refers to missing population {end!r} (dangling edge)")
        if isinstance(graph.nodes[e.src], Readout):
            raise GraphError(e.name, "src", "a Readout emits nothing; it cannot be an edge source")
        if isinstance(graph.nodes[e.dst], Input):
            raise GraphError(e.name, "dst", "an Input cannot receive an edge")
        if not isinstance(e.delay, (int, np.integer)) or not 0 <= e.delay <= MAX_DELAY:
            raise GraphError(e.name, "delay", f"must be an int in 0..{MAX_DELAY}, got {e.delay!r}")
        lowest = MIN_WEIGHT_EXP if isinstance(graph.nodes[e.dst], SigmaDelta) else 0
        if not isinstance(e.weight_exp, (int, np.integer)) or not lowest <= e.weight_exp <= MAX_WEIGHT_EXP:
            into = " (negative exponents only into SigmaDelta layers)" if lowest == 0 else ""
            raise GraphError(e.name, "weight_exp",
                             f"must be an int in {lowest}..{MAX_WEIGHT_EXP}{into}, got {e.weight_exp!r}")
        if not e.ops:
            raise GraphError(e.name, "ops", "an edge needs at least one synapse op")
        try:
            out = e.output_shape(graph.nodes[e.src].shape)
        except GraphError as err:
            raise GraphError(e.name, f"ops.{err.where}.{err.field}", str(err).split(": ", 1)[1]) from None
        if out != tuple(graph.nodes[e.dst].shape):
            raise GraphError(e.name, "ops", f"produces shape {out}, but {e.dst} has shape {graph.nodes[e.dst].shape}")
    graph.topo_order()  # raises on cycles
    for p in graph.populations:
        if not isinstance(p, Input) and not graph.in_edges(p.name):
            raise GraphError(p.name, None, "receives no edge (unreachable from the input)")
        if isinstance(p, Input):
            _check_input(p)
        elif isinstance(p, IF):
            _check_if(p)
        elif isinstance(p, SigmaDelta):
            _check_sigma_delta(p)
        else:
            _check_readout(p)
    prove(graph)


def _check_shape(name, shape) -> None:
    if (not isinstance(shape, tuple) or len(shape) not in (1, 3)
            or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape)):
        raise GraphError(name, "shape", f"must be (N,) or (C, H, W) of positive ints, got {shape!r}")


def _check_input(p: Input) -> None:
    if p.encoding not in ENCODINGS:
        raise GraphError(p.name, "encoding", f"must be one of {ENCODINGS}, got {p.encoding!r}")
    if not isinstance(p.value_bits, (int, np.integer)) or not 1 <= p.value_bits <= 32:
        raise GraphError(p.name, "value_bits", f"must be an int in 1..32, got {p.value_bits!r}")
    if not np.isfinite(p.scale) or p.scale <= 0:
        raise GraphError(p.name, "scale", f"must be a finite positive number, got {p.scale!r}")


def _state_limit(p, name_bits="state_bits") -> int:
    bits = p.state_bits
    if not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 62:
        raise GraphError(p.name, name_bits, f"must be an int in 2..62, got {bits!r}")
    return 2 ** (bits - 1) - 1


def _check_range(p, field: str, arr, lo: int, hi: int) -> None:
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise GraphError(p.name, field, f"values must lie in [{lo}, {hi}], found [{arr.min()}, {arr.max()}]")


def _check_if(p: IF) -> None:
    limit = _state_limit(p)
    for field in ("theta", "v_init", "bias", "theta_neg"):
        arr = getattr(p, field)
        if arr is None:
            continue
        if not param_shape_ok(arr, p.shape):
            raise GraphError(p.name, field, f"shape {arr.shape} is neither (), ({p.shape[0]},) nor {p.shape}")
    _check_range(p, "theta", p.theta, 1, limit)
    _check_range(p, "v_init", p.v_init, -limit, limit)
    _check_range(p, "bias", p.bias, -limit, limit)
    if p.theta_neg is not None:
        _check_range(p, "theta_neg", p.theta_neg, 1, limit)
    if p.bias_schedule is not None:
        sched = p.bias_schedule
        if sched.ndim < 1 or sched.shape[0] < 1 or not param_shape_ok(sched[0], p.shape):
            raise GraphError(p.name, "bias_schedule",
                             f"must be [S] + (), ({p.shape[0]},) or {p.shape}; got {sched.shape}")
        _check_range(p, "bias_schedule", sched, -limit, limit)
    if p.reset not in RESETS:
        raise GraphError(p.name, "reset", f"must be one of {RESETS}, got {p.reset!r}")
    if p.gate not in GATES:
        raise GraphError(p.name, "gate", f"must be one of {GATES}, got {p.gate!r}")
    if not isinstance(p.presim, (int, np.integer)) or p.presim < 0:
        raise GraphError(p.name, "presim", f"must be an int >= 0, got {p.presim!r}")


def _check_sigma_delta(p: SigmaDelta) -> None:
    limit = _state_limit(p)
    if not param_shape_ok(p.bias, p.shape):
        raise GraphError(p.name, "bias", f"shape {p.bias.shape} is neither (), ({p.shape[0]},) nor {p.shape}")
    _check_range(p, "bias", p.bias, -limit, limit)
    if not isinstance(p.shift, (int, np.integer)) or not 0 <= p.shift <= MAX_SHIFT:
        raise GraphError(p.name, "shift", f"must be an int in 0..{MAX_SHIFT}, got {p.shift!r}")
    if not isinstance(p.vth, (int, np.integer)) or not 0 <= p.vth <= limit:
        raise GraphError(p.name, "vth", f"must be an int in 0..{limit}, got {p.vth!r}")


def _check_readout(p: Readout) -> None:
    limit = _state_limit(p)
    if len(p.shape) != 1:
        raise GraphError(p.name, "shape", f"a Readout is 1-D (N,), got {p.shape}")
    if not param_shape_ok(p.bias, p.shape):
        raise GraphError(p.name, "bias", f"shape {p.bias.shape} is neither () nor {p.shape}")
    _check_range(p, "bias", p.bias, -limit, limit)
    if not isinstance(p.skip, (int, np.integer)) or p.skip < 0:
        raise GraphError(p.name, "skip", f"must be an int >= 0, got {p.skip!r}")
    if not isinstance(p.bias_steps, (int, np.integer)) or p.bias_steps < 0:
        raise GraphError(p.name, "bias_steps", f"must be an int >= 0, got {p.bias_steps!r}")


def check_inputs(graph: Graph, inputs, steps: int) -> np.ndarray:
    """Return `inputs` as int64 numpy, or raise InputDataError saying what does not fit."""
    check_steps(steps)
    return input_array(graph.input, inputs)


def check_steps(steps) -> int:
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise InputDataError(f"steps must be a positive int, got {steps!r}")
    return int(steps)


def input_array(inp: Input, inputs) -> np.ndarray:
    """`inputs` for the Input population `inp` as int64 numpy, or InputDataError: integers only
    (floats are never truncated: NaN, infinities and fractions cannot slip through), the shape,
    and the declared range (|x| < 2^(value_bits-1), or 0/1 spikes)."""
    if hasattr(inputs, "detach"):  # torch tensor
        inputs = inputs.detach().cpu().numpy()
    arr = np.asarray(inputs)
    if arr.dtype.kind not in "iu":
        raise InputDataError(
            f"inputs must be an integer array, got dtype {arr.dtype}; floats are not truncated: encode them "
            "with graph.encode(x) (round(x * input scale))")
    if inp.encoding in ("current", "delta"):
        if arr.shape[1:] != inp.shape or arr.ndim != len(inp.shape) + 1:
            dims = ", ".join(map(str, inp.shape))
            raise InputDataError(f"inputs for {inp.name} must have shape [B, {dims}], got {arr.shape}")
        limit = 2 ** (inp.value_bits - 1) - 1
        # compare min and max, not abs: abs(int64 min) is negative, and uint64 must not wrap
        if arr.size and (arr.max() > limit or arr.min() < -limit):
            worst = arr.max() if arr.max() > limit else arr.min()
            raise InputDataError(f"input values must satisfy |x| <= {limit} ({inp.value_bits} bits), "
                                 f"found {worst}")
    else:
        if arr.ndim != len(inp.shape) + 2 or arr.shape[2:] != inp.shape:
            dims = ", ".join(map(str, inp.shape))
            raise InputDataError(f"spike inputs for {inp.name} must have shape [B, S, {dims}], got {arr.shape}")
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise InputDataError("spike inputs must be 0 or 1")
    if arr.shape[0] < 1:
        raise InputDataError("inputs hold no sample (batch size 0)")
    return arr.astype(np.int64)
