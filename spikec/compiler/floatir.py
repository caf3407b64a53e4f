"""The float IR: the graph the front end builds before integer quantization.

Same structure as spikec.ir (populations joined by edges of synapse-op chains) but with float64
weights, float thresholds and biases. Every edge holds exactly ONE weighted op (FloatConv or
FloatDense) plus any SumPool2d / Flatten ops (the weight-free IR ops, reused as they are), so
every scale (BN, average pooling's 1/k^2, thresholds) folds into that one weight.

Units. Before `normalize` an IF layer's `theta` is in float activation units and a weight maps
source *activation values* to target pre-activations. After `normalize` (graph.normalized) a
weight maps source *emitted units* (one spike, or one integer input step) to target membrane
units where theta = 1; biases are in the same units.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from spikec.errors import UnsupportedError
from spikec.ir.nodes import Flatten, SumPool2d

Shape = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class FloatDense:
    """y[o] = sum_i weight[o, i] x[i]; weight float64 [out, in]."""

    weight: np.ndarray

    def output_shape(self, shape: Shape) -> Shape:
        return (self.weight.shape[0],)

    def with_weight(self, weight: np.ndarray) -> FloatDense:
        return FloatDense(weight)


@dataclass(frozen=True, eq=False)
class FloatConv:
    """PyTorch cross-correlation; weight float64 [C_out, C_in/groups, kh, kw]."""

    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def output_shape(self, shape: Shape) -> Shape:
        dims = []
        for size, k, s, p, d in zip(shape[1:], self.weight.shape[2:], self.stride, self.padding,
                                    self.dilation):
            dims.append((size + 2 * p - d * (k - 1) - 1) // s + 1)
        return (self.weight.shape[0], dims[0], dims[1])

    def with_weight(self, weight: np.ndarray) -> FloatConv:
        return replace(self, weight=weight)


Weighted = FloatDense | FloatConv
FloatOp = FloatDense | FloatConv | SumPool2d | Flatten


def is_weighted(op) -> bool:
    return isinstance(op, (FloatDense, FloatConv))


def chain_shapes(ops, shape: Shape) -> list[Shape]:
    """Shapes before each op and after the last: len(ops) + 1 entries."""
    shapes = [tuple(shape)]
    for op in ops:
        shapes.append(tuple(op.output_shape(shapes[-1])))
    return shapes


def weighted_index(ops) -> int:
    found = [i for i, op in enumerate(ops) if is_weighted(op)]
    return found[0] if found else -1


def channel_vector(gain, channels: int) -> np.ndarray:
    """A scalar or per-channel gain as a float64 vector of length `channels`."""
    g = np.asarray(gain, dtype=np.float64)
    return np.full(channels, float(g)) if g.ndim == 0 else g.reshape(channels)


def is_stand_in(w: np.ndarray) -> bool:
    """Whether `w` is the weight-free zero stand-in of a structure-only walk (every stride 0)."""
    return w.size > 1 and not any(w.strides)


def fold_input_gain(op: Weighted, gain: np.ndarray, in_place: bool = False) -> Weighted:
    """Scale the op's input channels: op(x * gain) with gain per input channel/feature.
    in_place: scale op.weight itself (the caller owns that array) instead of a new one."""
    w = op.weight
    if is_stand_in(w) or np.all(np.asarray(gain) == 1):   # nothing to scale: no copy (large dense layers)
        return op
    if isinstance(op, FloatDense):
        g = channel_vector(gain, w.shape[1])[None, :]
    else:
        cg = w.shape[1]
        g = channel_vector(gain, cg * op.groups).reshape(op.groups, 1, cg, 1, 1)
        w = w.reshape(op.groups, w.shape[0] // op.groups, cg, *w.shape[2:])   # a view: w is contiguous
    if in_place:
        np.multiply(w, g, out=w)
        return op
    return op.with_weight((w * g).reshape(op.weight.shape))


def fold_output_gain(op: Weighted, gain: np.ndarray, in_place: bool = False) -> Weighted:
    """Scale the op's output channels: gain * op(x) with gain per output channel/feature.
    in_place: scale op.weight itself (the caller owns that array) instead of a new one."""
    if is_stand_in(op.weight) or np.all(np.asarray(gain) == 1):
        return op
    g = channel_vector(gain, op.weight.shape[0]).reshape((-1,) + (1,) * (op.weight.ndim - 1))
    if in_place:
        np.multiply(op.weight, g, out=op.weight)
        return op
    return op.with_weight(op.weight * g)


def gain_through_flatten(gain, shape: Shape) -> np.ndarray:
    """A per-channel gain on (C, H, W) as a per-feature gain on the flattened vector."""
    g = np.asarray(gain, dtype=np.float64)
    if g.ndim == 0:
        return g
    return np.repeat(channel_vector(g, shape[0]), int(np.prod(shape[1:])))


def gain_before_flatten(gain, shape: Shape, where: str) -> np.ndarray:
    """A per-feature gain on flatten(C, H, W) as a per-channel gain, if it is constant per channel."""
    g = np.asarray(gain, dtype=np.float64)
    if g.ndim == 0:
        return g
    blocks = g.reshape(shape[0], -1)
    if not np.allclose(blocks, blocks[:, :1], rtol=1e-12, atol=0):
        raise UnsupportedError(f"{where}: a per-feature scale after flattening a convolution's output "
                               "differs within a channel and cannot fold into the convolution; "
                               "put a Linear layer between the flatten and the activation")
    return blocks[:, 0]


def fold_edge_output_gain(ops: tuple, src_shape: Shape, gain, where: str, in_place: bool = False) -> tuple:
    """Fold a gain on the chain's output into its weighted op (ops after it must be pool/flatten);
    in_place: into the op's own weight array (which the caller owns)."""
    idx = weighted_index(ops)
    shapes = chain_shapes(ops, src_shape)
    g = np.asarray(gain, dtype=np.float64)
    for j in range(len(ops) - 1, idx, -1):
        if isinstance(ops[j], Flatten):
            g = gain_before_flatten(g, shapes[j], where)
    new = list(ops)
    new[idx] = fold_output_gain(ops[idx], g, in_place)
    return tuple(new)


def fold_edge_input_gain(ops: tuple, src_shape: Shape, gain, in_place: bool = False) -> tuple:
    """Fold a per-channel gain on the chain's source into its weighted op; in_place: into the op's
    own weight array (which the caller owns)."""
    idx = weighted_index(ops)
    shapes = chain_shapes(ops, src_shape)
    g = np.asarray(gain, dtype=np.float64)
    for j in range(idx):
        if isinstance(ops[j], Flatten):
            g = gain_through_flatten(g, shapes[j])
    new = list(ops)
    new[idx] = fold_input_gain(ops[idx], g, in_place)
    return tuple(new)


def sole_owned_weights(fir_edges) -> set[int]:
    """ids of the weight arrays that a pass may overwrite once the graph is no longer needed: float64,
    C-contiguous, writeable, owning their memory and used by exactly one edge. Anything shared (an
    fx node feeding several layers through the same op, a view into a larger array) is excluded."""
    uses: dict[int, int] = {}
    arrays = {}
    for e in fir_edges:
        for op in e.ops:
            if is_weighted(op):
                uses[id(op.weight)] = uses.get(id(op.weight), 0) + 1
                arrays[id(op.weight)] = op.weight
    return {key for key, w in arrays.items()
            if uses[key] == 1 and w.base is None and w.dtype == np.float64 and w.flags.c_contiguous
            and w.flags.writeable}


def identity_op(shape: Shape, gain) -> Weighted:
    """A weighted op that multiplies by a per-channel gain: depthwise 1x1 conv or diagonal dense."""
    g = channel_vector(gain, shape[0])
    if len(shape) == 3:
        return FloatConv(g.reshape(-1, 1, 1, 1).copy(), groups=shape[0])
    return FloatDense(np.diag(g))


@dataclass(frozen=True, eq=False)
class FloatLayer:
    """A population of the float IR.

    kind: "input", "if" or "readout". source: module path (or function) in the model; node: the
    torch.fx node name it came from. bias: float, scalar / per-channel / full shape (None = 0).
    theta: float activation units, scalar or per-channel (None until thresholds are assigned).
    clip: the ClipActivation threshold if the activation was one (None for ReLU, input, readout).
    v_init: initial membrane as a fraction of theta. fields: extra IF fields (the method policy's;
    a signed clip's own {"theta_neg": 1.0, "gate": "none"}, set at lowering, in theta units).
    scale: for the input, integer input units per float input unit.
    channels: (start, stop) or (start, stop, step) when the layer holds channels range(*channels) of
    its fx node's output (an activation of a concatenation or channel shuffle, split per part, or
    split where a later channel selection reads only some channels); None for the whole output.
    """

    name: str
    kind: Literal["input", "if", "readout"]
    shape: Shape
    source: str = ""
    node: str = ""
    bias: np.ndarray | None = None
    theta: np.ndarray | None = None
    clip: np.ndarray | None = None
    activation: str = ""
    v_init: float = 0.0
    fields: dict = field(default_factory=dict)
    scale: float = 1.0
    notes: dict = field(default_factory=dict)
    channels: tuple[int, ...] | None = None

    @property
    def signed(self) -> bool:
        """Whether the layer emits -1 spikes too (a signed clip: fields hold theta_neg)."""
        return self.fields.get("theta_neg") is not None


@dataclass(frozen=True, eq=False)
class FloatEdge:
    src: str
    dst: str
    ops: tuple


@dataclass(frozen=True, eq=False)
class FloatGraph:
    layers: tuple[FloatLayer, ...]
    edges: tuple[FloatEdge, ...]
    normalized: bool = False

    def layer(self, name: str) -> FloatLayer:
        return next(lay for lay in self.layers if lay.name == name)

    def in_edges(self, name: str) -> list[FloatEdge]:
        return [e for e in self.edges if e.dst == name]

    def replace_layers(self, new: dict[str, FloatLayer], **changes) -> FloatGraph:
        layers = tuple(new.get(lay.name, lay) for lay in self.layers)
        return replace(self, layers=layers, **changes)
