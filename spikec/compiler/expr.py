"""Affine expressions over spiking populations: the value of a tensor between two activations.

A pre-activation tensor is  sum_i chain_i(population_i) + bias : each Term is a chain of float
ops from one population (at most one weighted op, SumPool2d / Flatten around it) and a pending
per-channel gain used only while the chain has no weighted op yet (identity shortcuts, average
pooling before a conv, BN before a conv). Linear modules, BN, pooling and additions act on
expressions; an activation turns one into an IF layer whose in-edges are the terms.
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
from spikec.errors import UnsupportedError
from spikec.ir.nodes import Flatten, SumPool2d

Shape = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Term:
    src: str
    src_shape: Shape
    ops: tuple = ()
    gain: np.ndarray = np.float64(1.0)      # per channel of `shape`, or scalar
    origin: str = ""                        # module path of the weighted op (for messages)

    @property
    def shape(self) -> Shape:
        return chain_shapes(self.ops, self.src_shape)[-1]

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
                raise UnsupportedError(
                    f"{where}: follows {t.origin or 'another linear layer'} with no activation between "
                    "them; spikec needs an activation (ReLU or clip) between two linear layers "
                    "(merge them into one, or insert an activation)")
            terms.append(Term(t.src, t.src_shape, t.ops + (fold_input_gain(op, t.gain),), np.float64(1.0),
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
            if t.weighted:
                terms.append(replace(t, ops=fold_edge_output_gain(t.ops, t.src_shape, g, where)))
            else:
                terms.append(replace(t, gain=t.gain * g))
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
        terms = tuple(replace(t, ops=t.ops + (Flatten(),), gain=gain_through_flatten(t.gain, t.shape))
                      for t in self.terms)
        out = (int(np.prod(self.shape)),)
        return Expr(terms, out, None if self.bias is None else self.bias.reshape(out), self.origin)

    def add(self, other: Expr, where: str) -> Expr:
        if self.shape != other.shape:
            raise UnsupportedError(f"{where}: adds tensors of shapes {self.shape} and {other.shape}; "
                                   "only same-shape additions (residual connections) are supported")
        terms = list(self.terms)
        for t in other.terms:
            same = [i for i, s in enumerate(terms) if s.src == t.src]
            if not same:
                terms.append(t)
                continue
            merged = _merge(terms[same[0]], t)
            if merged is None:
                raise UnsupportedError(f"{where}: two different paths from {t.src} meet at one addition "
                                       "with no activation on either, and they cannot be merged into one "
                                       "synapse op; insert an activation on one path")
            terms[same[0]] = merged
        if self.bias is None or other.bias is None:
            bias = self.bias if other.bias is None else other.bias
        else:
            bias = self.bias + other.bias
        return Expr(tuple(terms), self.shape, bias, self.origin or other.origin)

    # ------------------------------------------------------------------ into the IR
    def edge_chains(self) -> list[tuple[str, tuple]]:
        """(source, ops) per term, each with exactly one weighted op (identity ops where needed)."""
        out = []
        for t in self.terms:
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


def _absorb_identity(op, gain):
    """op(x) + gain * x as one op: add gain on the tap that maps each output to the same input."""
    w = op.weight.copy()
    if isinstance(op, FloatDense):
        if w.shape[0] != w.shape[1]:
            return None
        w[np.arange(w.shape[0]), np.arange(w.shape[0])] += channel_vector(gain, w.shape[0])
        return op.with_weight(w)
    c_out, cg = w.shape[:2]
    if op.stride != (1, 1) or c_out != cg * op.groups or c_out // op.groups != cg:
        return None
    taps = []
    for p, d, k in zip(op.padding, op.dilation, w.shape[2:]):
        if p % d or not 0 <= p // d < k:
            return None
        taps.append(p // d)
    chans = np.arange(c_out)
    w[chans, chans % cg, taps[0], taps[1]] += channel_vector(gain, c_out)
    return op.with_weight(w)


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
