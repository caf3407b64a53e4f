"""Affine expressions over spiking populations: the value of a tensor between two activations.

A pre-activation tensor is  sum_i chain_i(population_i) + bias : each Term is a chain of float
ops from one population (at most one weighted op, SumPool2d / Flatten around it) and a pending
per-channel gain used only while the chain has no weighted op yet (identity shortcuts, average
pooling before a conv, BN before a conv). Linear modules, BN, pooling and additions act on
expressions; an activation turns one into an IF layer whose in-edges are the terms.

Channel concatenation (torch.cat along channels) gives each term a pending embedding (offset,
total): its chain's output fills channels offset.. of a tensor with `total` channels, zeros
elsewhere. A following conv / dense absorbs it by reading only its own input-channel slice; an
activation reached first turns it into an identity op that writes the slice (or pads the term's
weighted op with zero output channels).
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
    weighted_index,
)
from spikec.errors import MissingActivationError, UnsupportedError
from spikec.ir.nodes import Flatten, SumPool2d

Shape = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Term:
    src: str
    src_shape: Shape
    ops: tuple = ()
    gain: np.ndarray = np.float64(1.0)      # per channel of `own_shape`, or scalar
    origin: str = ""                        # module path of the weighted op (for messages)
    embed: tuple[int, int] | None = None    # (offset, total) channels after a concatenation

    @property
    def own_shape(self) -> Shape:
        """The shape the chain produces, before any concatenation embedding."""
        return chain_shapes(self.ops, self.src_shape)[-1]

    @property
    def shape(self) -> Shape:
        own = self.own_shape
        return own if self.embed is None else (self.embed[1],) + own[1:]

    def channel_slice(self, gain):
        """This term's part of a gain over the embedded channels (scalar gains pass through)."""
        g = np.asarray(gain, np.float64)
        if self.embed is None or g.ndim == 0:
            return g
        return g[self.embed[0]: self.embed[0] + self.own_shape[0]]

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
    def weighted(self, op, bias, where: str, origin: str) -> Expr:
        """Apply a conv/dense op (float weights) and add its bias (per output channel or None).

        where: the op's description for messages; origin: its module path (names the readout)."""
        terms = []
        for t in self.terms:
            if t.weighted:
                raise MissingActivationError(
                    f"{where}: follows {t.origin or 'another linear layer'} with no activation between "
                    "them; spikec needs an activation (ReLU or clip) between two linear layers "
                    "(merge them into one, or insert an activation)")
            own = op if t.embed is None else _input_slice(op, t.embed[0], t.own_shape[0], where)
            terms.append(Term(t.src, t.src_shape, t.ops + (fold_input_gain(own, t.gain),), np.float64(1.0),
                              origin))
        out_shape = tuple(op.output_shape(self.shape))
        new_bias = None if self.bias is None else _apply_to_bias(op, self.bias)
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
            gt = t.channel_slice(g)
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
                              embed=_flat_embed(t))
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
                inner = 0 if t.embed is None else t.embed[0]
                terms.append(replace(t, embed=(offset + inner, total)))
            offset += p.shape[0]
        bias = None
        if any(p.bias is not None for p in parts):
            bias = np.concatenate([np.zeros(p.shape) if p.bias is None else np.broadcast_to(p.bias, p.shape)
                                   for p in parts])
        return Expr(tuple(terms), shape, bias, next((p.origin for p in parts if p.origin), ""))

    def add(self, other: Expr, where: str) -> Expr:
        if self.shape != other.shape:
            raise UnsupportedError(f"{where}: adds tensors of shapes {self.shape} and {other.shape}; "
                                   "only same-shape additions (residual connections) are supported")
        terms = list(self.terms)
        for t in other.terms:
            # fold into a term from the same source when one op chain can compute both (same
            # embedding first); otherwise the two paths become two edges from that source
            same = sorted((i for i, s in enumerate(terms) if s.src == t.src), key=lambda i: terms[i].embed != t.embed)
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

    def channel_parts(self) -> list[tuple[int, Expr]] | None:
        """The expression as disjoint channel slices, one per concatenated part: [(offset, part)],
        in channel order, or None unless every term sits in a part of its own concatenation slot
        and the parts tile the channels. An activation of a concatenation is the concatenation of
        the parts' activations, so each part can become its own IF layer: no zero-padded weights."""
        embeds = {t.embed for t in self.terms}
        if not self.terms or None in embeds:
            return None
        slots = sorted((off, off + t.own_shape[0]) for off, t in
                       {t.embed[0]: t for t in self.terms}.items())
        if len(slots) < 2 or len({t.embed[1] for t in self.terms}) != 1:
            return None
        if slots[0][0] != 0 or slots[-1][1] != self.shape[0] or any(a[1] != b[0] for a, b in zip(slots, slots[1:])):
            return None
        if any(t.own_shape[0] != hi - lo for t in self.terms for lo, hi in slots if t.embed[0] == lo):
            return None
        parts = []
        for lo, hi in slots:
            terms = tuple(replace(t, embed=None) for t in self.terms if t.embed[0] == lo)
            bias = None if self.bias is None else self.bias[lo:hi].copy()
            parts.append((lo, Expr(terms, (hi - lo,) + self.shape[1:], bias, self.origin)))
        return parts

    # ------------------------------------------------------------------ into the IR
    def edge_chains(self) -> list[tuple[str, tuple]]:
        """(source, ops) per term, each with exactly one weighted op (identity ops where needed)."""
        out = []
        for t in self.terms:
            if t.embed is not None:
                ops = _embedded(t)
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


def _merge(a: Term, b: Term) -> Term | None:
    """One term equal to a + b (same source), or None if no single op chain computes it."""
    if a.embed != b.embed:
        # a weighted term (full output width) plus an identity term written into a channel slice
        w, i = (a, b) if a.weighted else (b, a)
        if not w.weighted or i.weighted or w.embed is not None or len(w.ops) != 1 or i.ops:
            return None
        op = _absorb_identity(w.ops[0], i.gain, i.embed)
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


def _absorb_identity(op, gain, embed=None):
    """op(x) + gain * x as one op: add gain on the tap that maps each output to the same input.
    With embed = (offset, total), the identity writes input channel c to output channel offset + c."""
    w = op.weight.copy()
    if embed is not None:
        offset, total = embed
        if w.shape[0] != total or (isinstance(op, FloatConv) and op.groups != 1):
            return None
    if isinstance(op, FloatDense):
        n = w.shape[1]
        if embed is None and w.shape[0] != n:
            return None
        rows = np.arange(n) + (0 if embed is None else embed[0])
        w[rows, np.arange(n)] += channel_vector(gain, n)
        return op.with_weight(w)
    c_out, cg = w.shape[:2]
    if embed is not None:
        if op.stride != (1, 1):
            return None
    elif op.stride != (1, 1) or c_out != cg * op.groups or c_out // op.groups != cg:
        return None
    taps = []
    for p, d, k in zip(op.padding, op.dilation, w.shape[2:]):
        if p % d or not 0 <= p // d < k:
            return None
        taps.append(p // d)
    if embed is not None:
        chans = np.arange(cg)
        w[embed[0] + chans, chans, taps[0], taps[1]] += channel_vector(gain, cg)
        return op.with_weight(w)
    chans = np.arange(c_out)
    w[chans, chans % cg, taps[0], taps[1]] += channel_vector(gain, c_out)
    return op.with_weight(w)


def _input_slice(op, offset: int, channels: int, where: str):
    """The part of a conv / dense that reads input channels offset .. offset + channels."""
    if isinstance(op, FloatConv) and op.groups != 1:
        raise UnsupportedError(f"{where}: a grouped convolution after a concatenation is not supported")
    return op.with_weight(op.weight[:, offset: offset + channels].copy())


def _flat_embed(t: Term) -> tuple[int, int] | None:
    """A channel embedding of a (C, H, W) term as a feature embedding of its flattened vector."""
    own = t.own_shape
    if t.embed is None or len(own) == 1:
        return t.embed
    plane = int(np.prod(own[1:]))
    return t.embed[0] * plane, t.embed[1] * plane


def _embedded(t: Term) -> tuple:
    """A term's op chain writing into its slice of the concatenated channels (one weighted op)."""
    offset, total = t.embed
    own = t.own_shape
    if not t.weighted:
        g = channel_vector(t.gain, own[0])
        w = np.zeros((total, own[0]), np.float64)
        w[offset + np.arange(own[0]), np.arange(own[0])] = g
        op = FloatDense(w) if len(own) == 1 else FloatConv(w[:, :, None, None])
        return t.ops + (op,)
    idx = weighted_index(t.ops)
    op, after = t.ops[idx], t.ops[idx + 1:]
    shapes = chain_shapes(t.ops, t.src_shape)
    flat = [j for j, a in enumerate(after) if isinstance(a, Flatten)]
    if flat and isinstance(op, FloatConv):   # the feature slice must be whole channel planes
        plane = int(np.prod(shapes[idx + 1 + flat[0]][1:]))
        offset, total = (offset // plane, total // plane) if offset % plane == total % plane == 0 else (-1, -1)
    if (offset < 0 or not all(isinstance(a, (SumPool2d, Flatten)) for a in after)
            or (isinstance(op, FloatConv) and op.groups != 1)):
        raise UnsupportedError(f"{t.origin or 'a linear layer'}: its output is concatenated in a way no "
                               "single synapse op can write (a grouped convolution, or a flattened "
                               "convolution's features not aligned to whole channels) before the next "
                               "activation; insert an activation before the concatenation")
    w = np.zeros((total,) + op.weight.shape[1:], np.float64)
    w[offset: offset + op.weight.shape[0]] = op.weight
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
    w = torch.from_numpy(op.weight)
    return F.conv2d(x, w, None, op.stride, op.padding, op.dilation, op.groups)[0].numpy()
