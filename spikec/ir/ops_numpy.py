"""Plain numpy versions of the synapse ops, batched over a leading axis: the executable spec.

Written for clarity, not speed; the fast backends are tested against these.
"""

from __future__ import annotations

import numpy as np

from spikec.ir.nodes import Conv2d, Dense, Flatten, SumPool2d, SynapseOp


def apply_op(op: SynapseOp, x: np.ndarray) -> np.ndarray:
    """Apply one op to x of shape [B, *in_shape] (int64) -> [B, *out_shape] (int64)."""
    if isinstance(op, Dense):
        return x @ op.weight.T
    if isinstance(op, Flatten):
        return x.reshape(x.shape[0], -1)
    if isinstance(op, SumPool2d):
        return _sum_pool(op, x)
    if isinstance(op, Conv2d):
        return _conv(op, x)
    raise TypeError(f"unknown synapse op {type(op).__name__}")


def apply_ops(ops, x: np.ndarray) -> np.ndarray:
    for op in ops:
        x = apply_op(op, x)
    return x


def _sum_pool(op: SumPool2d, x: np.ndarray) -> np.ndarray:
    _, ho, wo = op.output_shape(x.shape[1:])
    (kh, kw), (sh, sw) = op.kernel, op.stride
    out = np.zeros(x.shape[:2] + (ho, wo), np.int64)
    for dy in range(kh):
        for dx in range(kw):
            out += x[:, :, dy: dy + sh * (ho - 1) + 1: sh, dx: dx + sw * (wo - 1) + 1: sw]
    return out


def _conv(op: Conv2d, x: np.ndarray) -> np.ndarray:
    c_out, cg, kh, kw = op.weight.shape
    _, ho, wo = op.output_shape(x.shape[1:])
    (sh, sw), (ph, pw), (dh, dw) = op.stride, op.padding, op.dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((x.shape[0], c_out, ho, wo), np.int64)
    og = c_out // op.groups
    for g in range(op.groups):
        w = op.weight[g * og:(g + 1) * og]                       # [og, cg, kh, kw]
        xg = xp[:, g * cg:(g + 1) * cg]
        for ky in range(kh):
            for kx in range(kw):
                y0, x0 = ky * dh, kx * dw
                patch = xg[:, :, y0: y0 + sh * (ho - 1) + 1: sh, x0: x0 + sw * (wo - 1) + 1: sw]
                out[:, g * og:(g + 1) * og] += np.einsum("oc,bcyx->boyx", w[:, :, ky, kx], patch)
    return out
