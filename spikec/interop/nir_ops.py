"""NIR synapse nodes <-> spikec ops for the importer (nir_import): integer checks, geometry, and
the inverses of what the exporter does to fit NIR and its importers (grouped kernels written
ungrouped, non-square kernels padded square, sum pooling as a one-hot convolution)."""

from __future__ import annotations

import numpy as np

from spikec.errors import FormatError, UnsupportedError
from spikec.ir.nodes import Conv2d, Dense, Flatten, SumPool2d


def _int(value, where: str, field: str) -> np.ndarray:
    arr = np.asarray(value, np.float64)
    if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
        bad = arr[~np.isfinite(arr) | (arr != np.round(arr))].flat[0]
        raise UnsupportedError(f"NIR node {where!r}: {field} holds non-integer values (e.g. {bad!r}); "
                               "spikec's graph is integer (quantize the network first)")
    return arr.astype(np.int64)


def _pair(value, where: str, field: str) -> tuple[int, int]:
    arr = _int(np.atleast_1d(np.asarray(value)), where, field).reshape(-1)
    if arr.size == 1:
        return int(arr[0]), int(arr[0])
    if arr.size != 2:
        raise UnsupportedError(f"NIR node {where!r}: {field} {value!r} is not one or two numbers")
    return int(arr[0]), int(arr[1])


def identity_op(src, dst, shape, into_readout: bool):
    """A NIR edge straight from one population to another (an identity) as a spikec op."""
    if len(shape) == 1:
        return Dense(np.eye(shape[0], dtype=np.int64))
    if len(shape) == 3 and into_readout:
        return Flatten()  # the readout is a vector
    if len(shape) == 3:
        return Conv2d(np.eye(shape[0], dtype=np.int64)[:, :, None, None])
    raise UnsupportedError(f"NIR edge ({src!r}, {dst!r}): an identity on shape {shape}; spikec takes "
                           "(C, H, W) maps and vectors")


def convert_op(node, n: str, kind, shape, scale: int, row):
    """The spikec op of NIR synapse node `node` (named `n`) on input `shape`, and its bias (or
    None). `kind`/`row`: the op kind and metadata spikec recorded (None for other tools' files);
    `scale`: the 2^weight_exp folded into this node's weights."""
    nir_kind = type(node).__name__
    if nir_kind == "Flatten":
        ndim = len(shape)
        if int(node.start_dim) % ndim != 0 or int(node.end_dim) % ndim != ndim - 1:
            raise UnsupportedError(f"NIR node {n!r}: Flatten over dims {node.start_dim}..{node.end_dim}; "
                                   "spikec flattens the whole (C, H, W) map")
        return Flatten(), None
    if nir_kind in ("Affine", "Linear"):
        weight = integer_weight(node.weight, n, scale)
        bias = _int(node.bias, n, "bias") if nir_kind == "Affine" and node.bias is not None else None
        return Dense(weight), bias
    if nir_kind == "SumPool2d":
        if any(_pair(node.padding, n, "padding")):
            raise UnsupportedError(f"NIR node {n!r}: SumPool2d with padding (spikec pools without padding)")
        return SumPool2d(_pair(node.kernel_size, n, "kernel_size"), _pair(node.stride, n, "stride")), None
    weight = integer_weight(node.weight, n, scale)
    bias = _int(node.bias, n, "bias") if getattr(node, "bias", None) is not None else None
    padding = node.padding
    if isinstance(padding, (str, bytes)):
        padding = padding.decode() if isinstance(padding, bytes) else padding
        if padding != "valid":
            raise UnsupportedError(f"NIR node {n!r}: padding {padding!r}; give explicit padding")
        padding = 0
    padding, dilation = _pair(padding, n, "padding"), _pair(node.dilation, n, "dilation")
    if row and "kernel" in row:
        weight, padding = unsquare(weight, padding, dilation, tuple(row["kernel"]), n)
    if kind == "SumPool2d":
        c = weight.shape[0]
        expected = np.zeros((c, c) + tuple(row["kernel"]), np.int64)
        expected[np.arange(c), np.arange(c)] = 1
        if weight.shape != expected.shape or not np.array_equal(weight, expected) or any(padding):
            raise FormatError(f"NIR node {n!r}: metadata says sum pooling but the kernel is not one-hot")
        return SumPool2d(tuple(row["kernel"]), tuple(row["stride"])), bias
    groups = int(_int(node.groups, n, "groups").reshape(-1)[0])
    if row and row.get("groups", 1) != 1 and groups == 1:
        weight, groups = regroup(weight, int(row["groups"]), n), int(row["groups"])
    return Conv2d(weight, _pair(node.stride, n, "stride"), padding, dilation, groups), bias


def unsquare(weight, padding, dilation, kernel, n):
    """Inverse of nir_export.square_kernel: the recorded kh x kw kernel and its padding."""
    (kh, kw), (k1, k2) = kernel, weight.shape[2:]
    rh, rw = (k1 - kh) // 2, (k2 - kw) // 2
    inner = weight[:, :, rh:rh + kh, rw:rw + kw]
    outer = weight.copy()
    outer[:, :, rh:rh + kh, rw:rw + kw] = 0
    pad = (padding[0] - rh * dilation[0], padding[1] - rw * dilation[1])
    if min(rh, rw) < 0 or inner.shape[2:] != (kh, kw) or outer.any() or min(pad) < 0:
        raise FormatError(f"NIR node {n!r}: kernel {weight.shape[2:]} does not hold the recorded {kh}x{kw} one")
    return inner, pad


def regroup(weight: np.ndarray, groups: int, n: str) -> np.ndarray:
    """Inverse of nir_export.ungroup: the grouped kernel, checking the zeros between groups."""
    c_out, c_in = weight.shape[:2]
    if groups < 1 or c_out % groups or c_in % groups:
        raise FormatError(f"NIR node {n!r}: metadata groups={groups} does not divide the kernel {weight.shape}")
    cg, per_group = c_in // groups, c_out // groups
    out = np.stack([weight[o, (o // per_group) * cg:(o // per_group + 1) * cg] for o in range(c_out)])
    rebuilt = np.zeros_like(weight)
    for o in range(c_out):
        rebuilt[o, (o // per_group) * cg:(o // per_group + 1) * cg] = out[o]
    if not np.array_equal(rebuilt, weight):
        raise FormatError(f"NIR node {n!r}: metadata says groups={groups} but the kernel mixes groups")
    return out


def integer_weight(value, n, scale) -> np.ndarray:
    weight = _int(value, n, "weight")
    if scale != 1:
        if np.any(weight % scale):
            raise FormatError(f"NIR node {n!r}: weights are not multiples of the stored 2^weight_exp")
        weight = weight // scale
    return weight
