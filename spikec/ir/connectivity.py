"""Edges as explicit synapse lists: a sparse integer matrix [n_dst, n_src] per edge.

Backends that need explicit connectivity (Brian2 synapses, Lava Sparse) and the SOP counter use
this; flat indices follow PyTorch's row-major (C, H, W) order.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from spikec.ir.nodes import Conv2d, Dense, Edge, Flatten, Shape, SumPool2d, SynapseOp


def op_matrix(op: SynapseOp, shape: Shape) -> sp.csr_matrix:
    """Sparse int64 matrix M with out.flat = M @ in.flat for one op on input `shape`."""
    n_in = int(np.prod(shape))
    if isinstance(op, Flatten):
        return sp.identity(n_in, dtype=np.int64, format="csr")
    if isinstance(op, Dense):
        return sp.csr_matrix(op.weight)
    if isinstance(op, SumPool2d):
        c, _, _ = shape
        _, ho, wo = op.output_shape(shape)
        (kh, kw), (sh, sw) = op.kernel, op.stride
        ch, y, x, dy, dx = np.meshgrid(np.arange(c), np.arange(ho), np.arange(wo), np.arange(kh),
                                       np.arange(kw), indexing="ij")
        rows = (ch * ho + y) * wo + x
        cols = (ch * shape[1] + y * sh + dy) * shape[2] + x * sw + dx
        data = np.ones(rows.size, np.int64)
        return sp.csr_matrix((data, (rows.ravel(), cols.ravel())), shape=(c * ho * wo, n_in))
    if isinstance(op, Conv2d):
        return _conv_matrix(op, shape)
    raise TypeError(f"unknown synapse op {type(op).__name__}")


def _conv_matrix(op: Conv2d, shape: Shape) -> sp.csr_matrix:
    c_out, cg, kh, kw = op.weight.shape
    _, h, w = shape
    _, ho, wo = op.output_shape(shape)
    (sh, sw), (ph, pw), (dh, dw) = op.stride, op.padding, op.dilation
    og = c_out // op.groups
    o, c, ky, kx, y, x = np.meshgrid(np.arange(c_out), np.arange(cg), np.arange(kh), np.arange(kw),
                                     np.arange(ho), np.arange(wo), indexing="ij")
    yi = y * sh - ph + ky * dh
    xi = x * sw - pw + kx * dw
    ci = (o // og) * cg + c
    keep = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
    weights = op.weight[o, c, ky, kx]
    keep &= weights != 0
    rows = ((o * ho + y) * wo + x)[keep]
    cols = ((ci * h + yi) * w + xi)[keep]
    return sp.csr_matrix((weights[keep], (rows, cols)), shape=(c_out * ho * wo, int(np.prod(shape))))


def edge_matrix(edge: Edge, src_shape: Shape) -> sp.csr_matrix:
    """The effective weights of `edge` (its op chain times 2^weight_exp) as one sparse int64 matrix
    [n_dst, n_src]."""
    matrix = chain_matrix(edge.ops, src_shape)
    return matrix * 2 ** edge.weight_exp if edge.weight_exp else matrix


def chain_matrix(ops, src_shape: Shape) -> sp.csr_matrix:
    """An op chain as one sparse int64 matrix [n_dst, n_src] (an edge's weight mantissas)."""
    shape = tuple(src_shape)
    matrix = None
    for op in ops:
        m = op_matrix(op, shape)
        matrix = m if matrix is None else (m @ matrix)
        shape = op.output_shape(shape)
    matrix = matrix.tocsr()
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix
