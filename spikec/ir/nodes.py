"""IR nodes: populations (Input, IF, SigmaDelta, Readout) and the synapse ops that live on edges.

All numeric parameters are integers (numpy int64 arrays, read-only). Shapes follow PyTorch:
(C, H, W) for maps, (N,) for vectors. A per-neuron parameter of an IF layer may be given as a
scalar (shape ()), per channel (shape (C,), where C = shape[0]) or per neuron (the full shape).

Time is hardware time t = 1, 2, ... (one clock for every backend). Each edge delivers what its
source emitted at step t to its target at step t + 1 + delay. A population's *start* step is the
earliest arrival of any input; it runs in local time k = t - start + 1 (see Graph.start_steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from spikec.errors import GraphError

Shape = tuple[int, ...]


def narrowest_int_dtype(lo: int, hi: int) -> type:
    """The narrowest signed numpy integer type that holds every value in [lo, hi]."""
    return next(t for t in (np.int8, np.int16, np.int32, np.int64)
                if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max)


def _frozen_reuse(arr: np.ndarray) -> bool:
    """Whether `arr` reinterprets the whole of a frozen array that owns its memory (the compiler
    writes integer weights over the float weights they were rounded from)."""
    base = arr.base
    return (isinstance(base, np.ndarray) and base.base is None and not base.flags.writeable
            and base.nbytes == arr.nbytes and arr.flags.c_contiguous)


def int_array(value, where: str, name: str) -> np.ndarray:
    """Return `value` as a read-only int64 array; reject floats, bools and objects."""
    arr = np.asarray(value)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iu":
        raise GraphError(where, name, f"must be an integer array, got dtype {arr.dtype}")
    if arr.dtype == np.int64 and not arr.flags.writeable and (arr.base is None or _frozen_reuse(arr)):
        return arr          # already frozen and owning its data (e.g. from the compiler): share it
    arr = arr.astype(np.int64, copy=True)
    arr.setflags(write=False)
    return arr


def _pair(value, where: str, name: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise GraphError(where, name, f"must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise GraphError(where, name, f"must be >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


# --------------------------------------------------------------------------- synapse ops


@dataclass(frozen=True, eq=False)
class Dense:
    """I[o] = sum_i weight[o, i] * x[i].  weight: int [out, in]. Input must be 1-D."""

    weight: np.ndarray

    def __post_init__(self):
        w = int_array(self.weight, "Dense", "weight")
        if w.ndim != 2:
            raise GraphError("Dense", "weight", f"must be 2-D [out, in], got shape {w.shape}")
        object.__setattr__(self, "weight", w)

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 1 or shape[0] != self.weight.shape[1]:
            raise GraphError("Dense", "weight", f"expects input ({self.weight.shape[1]},), got {shape}")
        return (self.weight.shape[0],)


@dataclass(frozen=True, eq=False)
class Conv2d:
    """PyTorch cross-correlation: I[o,y,x] = sum_{c,ky,kx} w[o,c,ky,kx] * xpad[g(o)*Cg+c, y*s+ky*d, x*s+kx*d].

    weight: int [C_out, C_in/groups, kh, kw]; stride, padding (zeros, symmetric), dilation are
    (h, w) pairs; groups divides C_in and C_out.
    """

    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self):
        w = int_array(self.weight, "Conv2d", "weight")
        if w.ndim != 4:
            raise GraphError("Conv2d", "weight", f"must be 4-D [out, in/groups, kh, kw], got {w.shape}")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "stride", _pair(self.stride, "Conv2d", "stride", 1))
        object.__setattr__(self, "padding", _pair(self.padding, "Conv2d", "padding", 0))
        object.__setattr__(self, "dilation", _pair(self.dilation, "Conv2d", "dilation", 1))
        if not isinstance(self.groups, (int, np.integer)) or self.groups < 1:
            raise GraphError("Conv2d", "groups", f"must be a positive int, got {self.groups!r}")
        if w.shape[0] % self.groups:
            raise GraphError("Conv2d", "groups", f"{self.groups} does not divide C_out={w.shape[0]}")
        object.__setattr__(self, "groups", int(self.groups))

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 3 or shape[0] != self.weight.shape[1] * self.groups:
            raise GraphError("Conv2d", "weight",
                             f"expects input ({self.weight.shape[1] * self.groups}, H, W), got {shape}")
        dims = []
        for size, k, s, p, d in zip(shape[1:], self.weight.shape[2:], self.stride, self.padding,
                                    self.dilation):
            out = (size + 2 * p - d * (k - 1) - 1) // s + 1
            if out < 1:
                raise GraphError("Conv2d", "weight", f"kernel does not fit input {shape}")
            dims.append(out)
        return (self.weight.shape[0], dims[0], dims[1])


@dataclass(frozen=True, eq=False)
class SumPool2d:
    """I[c,y,x] = sum over the k x k window at (y*s, x*s) of x[c]. No padding, floor output size.

    Average pooling is sum pooling with 1/k^2 folded into whatever consumes it.
    """

    kernel: tuple[int, int]
    stride: tuple[int, int] | None = None

    def __post_init__(self):
        object.__setattr__(self, "kernel", _pair(self.kernel, "SumPool2d", "kernel", 1))
        stride = self.kernel if self.stride is None else self.stride
        object.__setattr__(self, "stride", _pair(stride, "SumPool2d", "stride", 1))

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 3:
            raise GraphError("SumPool2d", "kernel", f"expects (C, H, W) input, got {shape}")
        dims = [(n - k) // s + 1 for n, k, s in zip(shape[1:], self.kernel, self.stride)]
        if min(dims) < 1:
            raise GraphError("SumPool2d", "kernel", f"window {self.kernel} larger than input {shape}")
        return (shape[0], dims[0], dims[1])


@dataclass(frozen=True, eq=False)
class Flatten:
    """(C, H, W) -> (C*H*W,) in C, H, W (row-major, PyTorch) order."""

    def output_shape(self, shape: Shape) -> Shape:
        return (int(np.prod(shape)),)


SynapseOp = Dense | Conv2d | SumPool2d | Flatten


# --------------------------------------------------------------------------- populations


@dataclass(frozen=True, eq=False)
class Input:
    """The sample entering the network.

    encoding "current": an integer array of `shape`, emitted unchanged at every step t >= 1
    (graded values, like a bias injected on Loihi). encoding "delta": the same array emitted once,
    at step 1, and zero afterwards (the change of a static input: what sigma-delta layers take).
    encoding "spikes": a 0/1 train [S, *shape], emitted at steps 1..S and silent afterwards.
    `value_bits` bounds current and delta values to |x| <= 2^(value_bits-1) - 1. `scale` is
    metadata for `Graph.encode`: integer input = round(float input * scale).
    """

    name: str
    shape: Shape
    encoding: Literal["current", "delta", "spikes"] = "current"
    value_bits: int = 9
    scale: float = 1.0


@dataclass(frozen=True, eq=False)
class IF:
    """A layer of integrate-and-fire neurons with integer state.

    Local step k = t - start + 1 >= 1 (before `start` the layer holds v_init and is silent):

        v += I(t) + bias + (bias_schedule[k-1] if k <= len(bias_schedule) else 0)
        v  = clip(v, -(2^(state_bits-1) - 1), 2^(state_bits-1) - 1)   # counted as a saturation
        pos = v >= theta
        neg = theta_neg is set and v <= -theta_neg and gate           # pos wins; never both
        s   = pos - neg                                               # in {-1, 0, +1}
        reset "subtract": v -= theta where pos; v += theta where neg     # the value each spike sent
        reset "zero":     v = 0 where s != 0
        out = s * mask                                                # mask starts all ones
        net += out
        if k == presim > 0:  mask = (v > 0); v = v_init; net = 0      # SRP latch

    gate: "none" -> always true; "net" -> net > 0 (the neuron's emitted spikes so far sum to more
    than zero, SNM/ECL style). Per-neuron arrays: scalar, per channel (C,) or full shape;
    bias_schedule: [S] + one of those.
    """

    name: str
    shape: Shape
    theta: np.ndarray
    v_init: np.ndarray = field(default_factory=lambda: np.zeros((), np.int64))
    bias: np.ndarray = field(default_factory=lambda: np.zeros((), np.int64))
    bias_schedule: np.ndarray | None = None
    theta_neg: np.ndarray | None = None
    gate: Literal["none", "net"] = "none"
    presim: int = 0
    reset: Literal["subtract", "zero"] = "subtract"
    state_bits: int = 24

    def __post_init__(self):
        for name in ("theta", "v_init", "bias", "bias_schedule", "theta_neg"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, int_array(value, self.name, name))


@dataclass(frozen=True, eq=False)
class SigmaDelta:
    """A layer of sigma-delta neurons with a ReLU and graded output (Lava's stock SigmaDelta, fixed
    point, cum_error off). Silent before `start`; at local step k >= 1:

        sigma += I(t)                                    # saturated to state_bits (counted)
        act    = max(sigma + bias, 0)
        delta  = act - act_prev + residue
        s      = delta where |delta| >= vth, else 0;  residue = delta - s;  act_prev = act
        out    = s >> shift                              # arithmetic shift: floor(s / 2^shift)

    `out` is a graded integer (not a spike): what the layer's edges carry. On a delta-encoded
    input every layer receives its whole input at its local step 1, so with vth = 0 the layer
    emits floor(max(I + bias, 0) / 2^shift) once and zero afterwards. bias: scalar, per channel
    or per neuron; shift 0..30; vth >= 0.
    """

    name: str
    shape: Shape
    bias: np.ndarray = field(default_factory=lambda: np.zeros((), np.int64))
    shift: int = 0
    vth: int = 0
    state_bits: int = 24

    def __post_init__(self):
        object.__setattr__(self, "bias", int_array(self.bias, self.name, "bias"))


@dataclass(frozen=True, eq=False)
class Readout:
    """Non-spiking accumulator (the classifier logits), shape (N,).

    At local steps k = skip+1 .. skip+T (the T evaluated steps): acc += I(t) + bias, saturated to
    state_bits like an IF membrane. The first `skip` local steps (SRP pre-simulation) are ignored.
    bias_steps > 0 adds the bias only at the first bias_steps evaluated steps (sigma-delta graphs,
    whose currents arrive once); 0 adds it at every evaluated step.
    """

    name: str
    shape: Shape
    bias: np.ndarray = field(default_factory=lambda: np.zeros((), np.int64))
    skip: int = 0
    state_bits: int = 24
    bias_steps: int = 0

    def __post_init__(self):
        object.__setattr__(self, "bias", int_array(self.bias, self.name, "bias"))


Population = Input | IF | SigmaDelta | Readout


@dataclass(frozen=True, eq=False)
class Edge:
    """Synapses from population `src` to population `dst`: the ops applied in order to what `src`
    emitted at step t, times 2^weight_exp, arriving at `dst` at step t + 1 + delay.

    delay 0..62 (Loihi's range). weight_exp -8..8 is Loihi's weight exponent, applied to the summed
    current: it lets the edges into one layer (a residual join) keep 8-bit weight mantissas at
    different scales. A negative exponent floors: current = floor(sum / 2^-weight_exp), as Lava's
    synapses shift after summation; it is allowed only on edges into a SigmaDelta layer."""

    src: str
    dst: str
    ops: tuple[SynapseOp, ...]
    delay: int = 0
    weight_exp: int = 0

    @property
    def name(self) -> str:
        return f"{self.src}->{self.dst}"

    def output_shape(self, shape: Shape) -> Shape:
        for op in self.ops:
            shape = op.output_shape(shape)
        return shape
