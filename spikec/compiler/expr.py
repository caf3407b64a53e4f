"""Affine expressions over spiking populations: the value of a tensor between two activations.

A pre-activation tensor is  sum_i chain_i(population_i) + bias : each Term is a chain of float
ops from one population (at most one weighted op, SumPool2d / Flatten around it) and a pending
per-channel gain used only while the chain has no weighted op yet (identity shortcuts, average
pooling before a conv, BN before a conv). Linear modules, BN, pooling and additions act on
expressions; an activation turns one into an IF layer whose in-edges are the terms.

Concatenation, channel shuffles and channel selections (chunk, split, narrow, x[:, a:b]) only
move channels, so they add no op: they give each term a pending Placement, the channel of the
tensor each of the chain's own channels lands on (or none: dropped), zeros elsewhere. A following
conv / dense absorbs it by reading its input columns in that order; a depthwise conv keeps it
(its kernels follow their channels); an activation splits into one IF layer per part (lowering.py),
or else the placement becomes the term's weighted op writing those output rows (an identity term:
a 1x1 op routing each channel).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from spikec.compiler.floatir import (
    FloatConv,
    FloatDense,
    chain_shapes,
    channel_vector,
    fold_edge_output_gain,
    fold_input_gain,
    gain_through_flatten,
    identity_op,
    is_weighted,
    weighted_index,
)
from spikec.errors import MissingActivationError, UnsupportedError
from spikec.ir.nodes import Flatten, SumPool2d

Shape = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Placement:
    """Where a term's own channels (features, for a vector) sit in a tensor of `total` channels:
    own channel j is channel at[j], or is not part of the tensor when at[j] = -1. No two own
    channels share a channel; channels no own channel lands on are zero."""

    at: np.ndarray    # int64, one entry per own channel
    total: int

    @staticmethod
    def identity(n: int) -> Placement:
        return Placement(np.arange(n), n)

    @property
    def placed(self) -> np.ndarray:
        """The own channels that are part of the tensor."""
        return np.flatnonzero(self.at >= 0)

    def is_identity(self) -> bool:
        return len(self.at) == self.total and bool(np.all(self.at == np.arange(self.total)))

    def same(self, other: Placement) -> bool:
        return self.total == other.total and np.array_equal(self.at, other.at)

    def shifted(self, offset: int, total: int) -> Placement:
        """The placement inside a concatenation of `total` channels that starts this tensor at `offset`."""
        return Placement(np.where(self.at >= 0, self.at + offset, -1), total)

    def select(self, channels: np.ndarray) -> Placement:
        """The placement in the tensor made of `channels` of this one, in that order (no repeats)."""
        new = np.full(self.total, -1)
        new[channels] = np.arange(len(channels))
        return Placement(np.where(self.at >= 0, new[self.at], -1), len(channels))

    def expanded(self, inner: int) -> Placement:
        """Each channel as `inner` consecutive entries: the features of a flattened channel plane, or
        the outputs of a depthwise conv with channel multiplier `inner`."""
        at = self.at[:, None] * inner + np.arange(inner)
        return Placement(np.where(self.at[:, None] >= 0, at, -1).reshape(-1), self.total * inner)

    def collapsed(self, inner: int) -> Placement | None:
        """The inverse of `expanded`: None unless each block of `inner` own entries sits whole and
        in order at a multiple of `inner` (or is dropped whole)."""
        if len(self.at) % inner or self.total % inner:
            return None
        blocks = self.at.reshape(-1, inner)
        first = blocks[:, :1]
        aligned = np.all(blocks == first + np.arange(inner), axis=1) & (first[:, 0] % inner == 0)
        if not np.all(aligned | np.all(blocks < 0, axis=1)):
            return None
        return Placement(np.where(first[:, 0] >= 0, first[:, 0] // inner, -1), self.total // inner)


def _simplified(place: Placement) -> Placement | None:
    """None (the chain's channels as they are) for the identity placement."""
    return None if place.is_identity() else place


def _same_place(a: Placement | None, b: Placement | None) -> bool:
    return a is b or (a is not None and b is not None and a.same(b))


@dataclass(frozen=True, eq=False)
class Term:
    src: str
    src_shape: Shape
    ops: tuple = ()
    gain: np.ndarray = np.float64(1.0)      # per channel of `own_shape`, or scalar
    origin: str = ""                        # module path of the weighted op (for messages)
    place: Placement | None = None          # where the chain's channels sit (None: as they are)

    @property
    def own_shape(self) -> Shape:
        """The shape the chain produces, before any placement."""
        return chain_shapes(self.ops, self.src_shape)[-1]

    @property
    def shape(self) -> Shape:
        own = self.own_shape
        return own if self.place is None else (self.place.total,) + own[1:]

    def own_gain(self, gain):
        """A gain over the tensor's channels as a gain over this term's own channels (0 on dropped ones;
        scalar gains pass through)."""
        g = np.asarray(gain, np.float64)
        if self.place is None or g.ndim == 0:
            return g
        return np.where(self.place.at >= 0, g[self.place.at], 0.0)

    def source_channels(self) -> np.ndarray | None:
        """The source channels that the placed channels are computed from, when the chain keeps
        channels apart (pooling, gains, depthwise convs); None when a conv / dense mixes them."""
        idx = np.arange(self.own_shape[0]) if self.place is None else self.place.placed
        shapes = chain_shapes(self.ops, self.src_shape)
        for op, shape in zip(reversed(self.ops), reversed(shapes[:-1])):
            if isinstance(op, Flatten):
                idx = idx // int(np.prod(shape[1:]))
            elif is_weighted(op):
                if not (isinstance(op, FloatConv) and op.groups == shape[0] and op.weight.shape[1] == 1):
                    return None
                idx = idx // (op.weight.shape[0] // op.groups)
        return np.unique(idx)

    @property
    def weighted(self) -> bool:
        return weighted_index(self.ops) >= 0


@dataclass(frozen=True, eq=False)
class Expr:
    """sum of terms + bias (float64 array of `shape`, or None for zero)."""

    terms: tuple[Term, ...]
    shape: Shape
    bias: np.ndarray | None = None
    origin: str = ""

    @staticmethod
    def of_population(name: str, shape: Shape) -> Expr:
        return Expr((Term(name, tuple(shape)),), tuple(shape))

    # ------------------------------------------------------------------ linear maps
    def weighted(self, op, bias, where: str, origin: str, owned: bool = False) -> Expr:
        """Apply a conv/dense op (float weights) and add its bias (per output channel or None).

        where: the op's description for messages; origin: its module path (names the readout).
        owned: op's weight array is the caller's own new copy, so a single term may scale it in
        place (a large dense layer is then not held twice)."""
        new_bias = None if self.bias is None else _apply_to_bias(op, self.bias)
        in_place = owned and len(self.terms) == 1
        terms = []
        for t in self.terms:
            if t.weighted:
                raise MissingActivationError(
                    f"{where}: follows {t.origin or 'another linear layer'} with no activation between "
                    "them; spikec needs an activation (ReLU or clip) between two linear layers "
                    "(merge them into one, or insert an activation)")
            own, place = (op, None) if t.place is None else _read_placed(op, t.place, where)
            folded = fold_input_gain(own, t.gain, in_place=in_place and own is op)
            terms.append(Term(t.src, t.src_shape, t.ops + (folded,), np.float64(1.0), origin, place))
        out_shape = tuple(op.output_shape(self.shape))
        if bias is not None:
            b = np.asarray(bias, np.float64).reshape((-1,) + (1,) * (len(out_shape) - 1))
            new_bias = np.broadcast_to(b, out_shape) + (0 if new_bias is None else new_bias)
        return Expr(tuple(terms), out_shape, new_bias, origin)

    def scale(self, gain, where: str) -> Expr:
        """Multiply by a scalar or per-channel gain (BN, average pooling's 1/k^2, x * c)."""
        g = np.asarray(gain, np.float64)
        if g.ndim:
            g = channel_vector(g, self.shape[0])
        terms = []
        for t in self.terms:
            gt = t.own_gain(g)
            if t.weighted:
                terms.append(replace(t, ops=fold_edge_output_gain(t.ops, t.src_shape, gt, where)))
            else:
                terms.append(replace(t, gain=t.gain * gt))
        bias = None if self.bias is None else self.bias * _per_channel(g, self.shape)
        return replace(self, terms=tuple(terms), bias=bias)

    def shift(self, value) -> Expr:
        """Add a constant (scalar or per-channel vector, or a full tensor of `shape`)."""
        v = np.asarray(value, np.float64)
        if v.ndim == 1 and v.shape[0] == self.shape[0] and len(self.shape) > 1:
            v = _per_channel(v, self.shape)
        add = np.broadcast_to(v, self.shape)
        return replace(self, bias=add.copy() if self.bias is None else self.bias + add)

    def sum_pool(self, kernel, stride, where: str) -> Expr:
        """k x k sum pooling (no padding); the caller scales by 1/k^2 for an average."""
        op = SumPool2d(kernel, stride)
        terms = tuple(replace(t, ops=t.ops + (op,)) for t in self.terms)
        out_shape = op.output_shape(self.shape)
        bias = None
        if self.bias is not None:
            b = torch.from_numpy(np.ascontiguousarray(self.bias))[None]
            pooled = F.avg_pool2d(b, op.kernel, op.stride) * (op.kernel[0] * op.kernel[1])
            bias = pooled[0].numpy()
        return Expr(terms, out_shape, bias, self.origin)

    def flatten(self) -> Expr:
        if len(self.shape) == 1:
            return self
        terms = tuple(replace(t, ops=t.ops + (Flatten(),), gain=gain_through_flatten(t.gain, t.own_shape),
                              place=None if t.place is None else t.place.expanded(int(np.prod(t.own_shape[1:]))))
                      for t in self.terms)
        out = (int(np.prod(self.shape)),)
        return Expr(terms, out, None if self.bias is None else self.bias.reshape(out), self.origin)

    @staticmethod
    def concat(parts: list[Expr], where: str) -> Expr:
        """Concatenation along the channel (or feature) dimension."""
        rest = {tuple(p.shape[1:]) for p in parts}
        if len(rest) != 1:
            raise UnsupportedError(f"{where}: concatenates tensors of shapes "
                                   f"{', '.join(str(p.shape) for p in parts)}; only the channel dimension "
                                   "may differ")
        total = sum(p.shape[0] for p in parts)
        shape = (total,) + parts[0].shape[1:]
        terms, offset = [], 0
        for p in parts:
            for t in p.terms:
                place = t.place or Placement.identity(t.own_shape[0])
                terms.append(replace(t, place=_simplified(place.shifted(offset, total))))
            offset += p.shape[0]
        bias = None
        if any(p.bias is not None for p in parts):
            bias = np.concatenate([np.zeros(p.shape) if p.bias is None else np.broadcast_to(p.bias, p.shape)
                                   for p in parts])
        return Expr(tuple(terms), shape, bias, next((p.origin for p in parts if p.origin), ""))

    def select(self, channels) -> Expr:
        """The tensor made of its channels (features) `channels`, in that order, no repeats: a channel
        shuffle or selection. Only the placements change; terms left with no channel drop out."""
        idx = np.asarray(channels, np.int64)
        terms = []
        for t in self.terms:
            place = (t.place or Placement.identity(t.own_shape[0])).select(idx)
            if len(place.placed):
                terms.append(replace(t, place=_simplified(place)))
        bias = None if self.bias is None else self.bias[idx].copy()
        return Expr(tuple(terms), (len(idx),) + self.shape[1:], bias, self.origin)

    def add(self, other: Expr, where: str) -> Expr:
        if self.shape != other.shape:
            raise UnsupportedError(f"{where}: adds tensors of shapes {self.shape} and {other.shape}; "
                                   "only same-shape additions (residual connections) are supported")
        terms = list(self.terms)
        for t in other.terms:
            # fold into a term from the same source when one op chain can compute both (same
            # placement first); otherwise the two paths become two edges from that source
            same = sorted((i for i, s in enumerate(terms) if s.src == t.src),
                          key=lambda i: not _same_place(terms[i].place, t.place))
            for i in same:
                merged = _merge(terms[i], t)
                if merged is not None:
                    terms[i] = merged
                    break
            else:
                terms.append(t)
        if self.bias is None or other.bias is None:
            bias = self.bias if other.bias is None else other.bias
        else:
            bias = self.bias + other.bias
        return Expr(tuple(terms), self.shape, bias, self.origin or other.origin)

    def part_ids(self) -> np.ndarray:
        """Per channel, the concatenated part it belongs to (terms placed on the same channels make
        one part). All zeros (one part) unless every term is placed, the terms' channel sets are
        equal or disjoint and they cover the tensor. An activation of a concatenation is the
        concatenation of its parts' activations: one IF layer each, no zero-padded weights."""
        whole = np.zeros(self.shape[0], np.int64)
        ids = np.full(self.shape[0], -1)
        seen: dict[bytes, int] = {}
        for t in self.terms:
            if t.place is None:
                return whole
            chans = np.sort(t.place.at[t.place.placed])
            if chans.tobytes() not in seen:
                if np.any(ids[chans] >= 0):
                    return whole
                seen[chans.tobytes()] = len(seen)
                ids[chans] = len(seen) - 1
        return whole if not self.terms or np.any(ids < 0) else ids

    def order_runs(self) -> list[np.ndarray]:
        """For each placed term whose chain keeps channels apart (identity, pooling, depthwise conv):
        per channel of the tensor, the run of the term's own channels that lands there (-1 where
        none does). A run is own channels in order on evenly spaced, increasing channels: an IF layer
        holding one run takes them in the term's own order, so its edge needs no routing op and no
        reordered depthwise kernels."""
        out = []
        for t in self.terms:
            if t.place is None or t.source_channels() is None:
                continue
            run = np.full(self.shape[0], -1)
            for k, chans in enumerate(arithmetic_runs(t.place.at[t.place.placed].tolist())):
                run[chans] = k
            out.append(run)
        return out

    # ------------------------------------------------------------------ into the IR
    def edge_chains(self) -> list[tuple[str, tuple]]:
        """(source, ops) per term, each with exactly one weighted op (identity ops where needed)."""
        out = []
        for t in self.terms:
            if t.place is not None:
                ops = _placed_chain(t)
            else:
                ops = t.ops if t.weighted else t.ops + (identity_op(t.shape, t.gain),)
            out.append((t.src, ops))
        return out

    def compact_bias(self) -> np.ndarray | None:
        """The bias as a scalar, per-channel vector or full array, whichever is exact."""
        if self.bias is None:
            return None
        b = np.asarray(self.bias, np.float64)
        if np.all(b == b.flat[0]):
            return np.float64(b.flat[0])
        if len(self.shape) == 3:
            per = b.reshape(self.shape[0], -1)
            if np.all(per == per[:, :1]):
                return per[:, 0].copy()
        return b.copy()


def arithmetic_runs(values: list[int]) -> list[np.ndarray]:
    """`values` cut into maximal runs with one constant positive step (each a range(start, stop, step))."""
    runs, i = [], 0
    while i < len(values):
        j = i + 1
        if j < len(values) and values[j] > values[i]:
            while j + 1 < len(values) and values[j + 1] - values[j] == values[i + 1] - values[i]:
                j += 1
            j += 1
        runs.append(np.array(values[i:j]))
        i = j
    return runs


@dataclass(frozen=True, eq=False)
class ChannelSplit:
    """A view of `expr` whose channel dim is split into axes of `sizes` (per-sample shape sizes +
    the rest of expr's shape): index (i_1, .., i_k) along them is channel sum(i * stride). Its axes
    may be permuted, and merged back into one channel dim: together a channel shuffle
    (view(B, g, C // g, H, W) -> transpose(1, 2) -> view(B, C, H, W)), a channel permutation."""

    expr: Expr
    sizes: tuple[int, ...]
    strides: tuple[int, ...]

    @staticmethod
    def of(expr: Expr, sizes: tuple[int, ...]) -> ChannelSplit:
        """expr's channels viewed as axes of `sizes` in row-major order (prod(sizes) = channels)."""
        return ChannelSplit(expr, sizes, tuple(int(np.prod(sizes[i + 1:])) for i in range(len(sizes))))

    @property
    def shape(self) -> Shape:
        return self.sizes + self.expr.shape[1:]

    def permuted(self, order) -> ChannelSplit:
        """The view with split axis order[i] as axis i."""
        return ChannelSplit(self.expr, tuple(self.sizes[i] for i in order), tuple(self.strides[i] for i in order))

    def channel_order(self) -> np.ndarray:
        """The channel of expr at each position of the split axes read in row-major order."""
        grids = np.meshgrid(*(np.arange(n) * s for n, s in zip(self.sizes, self.strides)), indexing="ij")
        return np.sum(grids, axis=0).reshape(-1)


def _merge(a: Term, b: Term) -> Term | None:
    """One term equal to a + b (same source), or None if no single op chain computes it."""
    if not _same_place(a.place, b.place):
        # a weighted term (full output width) plus an identity term whose channels are placed
        w, i = (a, b) if a.weighted else (b, a)
        if not w.weighted or i.weighted or w.place is not None or len(w.ops) != 1 or i.ops:
            return None
        op = _absorb_identity(w.ops[0], i.gain, i.place)
        return None if op is None else replace(w, ops=(op,))
    if not a.weighted and not b.weighted:
        if len(a.ops) == len(b.ops) and all(_same_geometry(x, y) for x, y in zip(a.ops, b.ops)):
            return replace(a, gain=a.gain + b.gain)
        return None
    if a.weighted and b.weighted:
        if len(a.ops) == len(b.ops) == 1 and _same_geometry(a.ops[0], b.ops[0]):
            return replace(a, ops=(a.ops[0].with_weight(a.ops[0].weight + b.ops[0].weight),))
        return None
    w, i = (a, b) if a.weighted else (b, a)
    if len(w.ops) != 1 or i.ops:
        return None
    op = _absorb_identity(w.ops[0], i.gain)
    return None if op is None else replace(w, ops=(op,))


def _same_geometry(x, y) -> bool:
    if type(x) is not type(y):
        return False
    if isinstance(x, SumPool2d):
        return (x.kernel, x.stride) == (y.kernel, y.stride)
    if isinstance(x, FloatConv):
        return (x.weight.shape, x.stride, x.padding, x.dilation, x.groups) == (
            y.weight.shape, y.stride, y.padding, y.dilation, y.groups)
    if isinstance(x, FloatDense):
        return x.weight.shape == y.weight.shape
    return True


def _absorb_identity(op, gain, place: Placement | None = None):
    """op(x) + gain * x as one op: add gain on the tap that maps each output to the same input.
    With a placement, the identity writes input channel c to output channel place.at[c]."""
    w = op.weight.copy()
    if place is not None and (w.shape[0] != place.total or (isinstance(op, FloatConv) and op.groups != 1)):
        return None
    if isinstance(op, FloatDense):
        n = w.shape[1]
        if place is None and w.shape[0] != n:
            return None
        cols = np.arange(n) if place is None else place.placed
        rows = cols if place is None else place.at[cols]
        w[rows, cols] += channel_vector(gain, n)[cols]
        return op.with_weight(w)
    c_out, cg = w.shape[:2]
    if op.stride != (1, 1) or (place is None and (c_out != cg * op.groups or c_out // op.groups != cg)):
        return None
    taps = []
    for p, d, k in zip(op.padding, op.dilation, w.shape[2:]):
        if p % d or not 0 <= p // d < k:
            return None
        taps.append(p // d)
    if place is not None:
        cols = place.placed
        w[place.at[cols], cols, taps[0], taps[1]] += channel_vector(gain, cg)[cols]
        return op.with_weight(w)
    chans = np.arange(c_out)
    w[chans, chans % cg, taps[0], taps[1]] += channel_vector(gain, c_out)
    return op.with_weight(w)


def _read_placed(op, place: Placement, where: str):
    """(the op on a placed term's own channels, where its outputs sit). A conv / dense reads the
    placed channels' input columns (zero for dropped channels) and its output is whole; a depthwise
    conv takes each placed channel's kernels and its outputs keep the placement."""
    w = op.weight
    cols = place.placed
    if isinstance(op, FloatDense) or op.groups == 1:
        own = np.zeros((w.shape[0], len(place.at)) + w.shape[2:])
        own[:, cols] = w[:, place.at[cols]]
        return op.with_weight(own), None
    if op.groups == place.total and w.shape[1] == 1:
        out = place.expanded(w.shape[0] // op.groups)
        own = np.zeros((len(out.at),) + w.shape[1:])
        rows = out.placed
        own[rows] = w[out.at[rows]]
        return replace(op, weight=own, groups=len(place.at)), _simplified(out)
    raise UnsupportedError(f"{where}: a grouped convolution (groups={op.groups}) reads channels that a "
                           "concatenation, channel shuffle or channel selection rearranged; only groups=1 "
                           "and depthwise convolutions can absorb that")


def _placed_chain(t: Term) -> tuple:
    """A placed term's op chain writing each of its channels where the placement puts it, as one
    weighted op: an identity term gets a 1x1 conv / dense routing the channels (zeros elsewhere), a
    conv / dense writes its output rows there."""
    place, own = t.place, t.own_shape
    if not t.weighted:
        cols = place.placed
        w = np.zeros((place.total, own[0]), np.float64)
        w[place.at[cols], cols] = channel_vector(t.gain, own[0])[cols]
        op = FloatDense(w) if len(own) == 1 else FloatConv(w[:, :, None, None])
        return t.ops + (op,)
    idx = weighted_index(t.ops)
    op, after = t.ops[idx], t.ops[idx + 1:]
    shapes = chain_shapes(t.ops, t.src_shape)
    flat = [j for j, a in enumerate(after) if isinstance(a, Flatten)]
    if flat and isinstance(op, FloatConv):   # the features must sit in whole channel planes
        place = place.collapsed(int(np.prod(shapes[idx + 1 + flat[0]][1:])))
    if (place is None or not all(isinstance(a, (SumPool2d, Flatten)) for a in after)
            or (isinstance(op, FloatConv) and op.groups != 1)):
        raise UnsupportedError(f"{t.origin or 'a linear layer'}: its output reaches the next activation "
                               "concatenated, shuffled or sliced in a way no single synapse op can write (a "
                               "grouped or depthwise convolution whose channels are permuted or partly "
                               "dropped there, or a flattened convolution's features not in whole channels); "
                               "put an activation between this layer and the rearrangement")
    rows = place.placed
    w = np.zeros((place.total,) + op.weight.shape[1:], np.float64)
    w[place.at[rows]] = op.weight[rows]
    return t.ops[:idx] + (op.with_weight(w),) + after


def _per_channel(g: np.ndarray, shape: Shape) -> np.ndarray:
    if g.ndim == 0:
        return g
    return g.reshape((-1,) + (1,) * (len(shape) - 1))


def _apply_to_bias(op, bias: np.ndarray) -> np.ndarray:
    """The op applied to a constant map (borders of padded convs make it position dependent)."""
    if isinstance(op, FloatDense):
        return op.weight @ bias
    assert isinstance(op, FloatConv)
    x = torch.from_numpy(np.ascontiguousarray(bias, np.float64))[None]
    w = torch.from_numpy(np.array(op.weight))   # a writable copy (the weight may be read-only)
    return F.conv2d(x, w, None, op.stride, op.padding, op.dilation, op.groups)[0].numpy()
