"""The lowering table: one function per supported module type, function or Tensor method.

A handler gets (lowerer, fx node, symbolic args, symbolic kwargs, the real output tensor) and
returns the node's value: an affine expression (spikec.compiler.expr.Expr), a ChannelSplit (a view
with the channel dim split into axes, inside a channel shuffle), a tuple of them (chunk, split) or
a Const. Tables:
MODULES (by module type, looked up along the MRO), FUNCTIONS, METHODS (by name) and HINTS (what
to do instead, for well-known unsupported ops such as max pooling).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spikec.compiler.bnfold import bn_affine
from spikec.compiler.expr import ChannelSplit, Expr
from spikec.compiler.floatir import FloatConv, FloatDense
from spikec.errors import UnsupportedError
from spikec.quantize.activations import ClipActivation


@dataclass(frozen=True)
class Const:
    """A value that does not depend on the input (shapes, python numbers, model buffers)."""

    value: Any


def as_float64(t: torch.Tensor) -> np.ndarray:
    """A new float64 numpy copy of `t` (never a view of the model's own tensor) that owns its memory,
    so that later passes may reuse it (floatir.sole_owned_weights)."""
    out = np.empty(tuple(t.shape), np.float64)
    torch.from_numpy(out).copy_(t.detach())
    return out


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _arg(args, kwargs, index: int, name: str, default=None):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


# --------------------------------------------------------------------------- handlers


def lower_conv(low, node, args, kwargs, out):
    mod: nn.Conv2d = low.module(node)
    x = low.expr(node, args[0])
    where = low.where(node)
    if mod.padding_mode != "zeros":
        raise UnsupportedError(f"{where}: padding_mode={mod.padding_mode!r}; only zero padding is supported")
    w = low.weights(mod.weight)
    padding = mod.padding
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        else:  # "same": symmetric only when the total padding is even
            total = [d * (k - 1) for d, k in zip(mod.dilation, w.shape[2:])]
            if any(t % 2 for t in total):
                raise UnsupportedError(f"{where}: padding='same' pads asymmetrically here; "
                                       "use explicit padding")
            padding = tuple(t // 2 for t in total)
    op = FloatConv(w, _pair(mod.stride), _pair(padding), _pair(mod.dilation), int(mod.groups))
    bias = None if mod.bias is None else as_float64(mod.bias)
    return x.weighted(op, bias, low.where(node), node.target, owned=not low.structure_only)


def lower_linear(low, node, args, kwargs, out):
    mod: nn.Linear = low.module(node)
    x = low.expr(node, args[0])
    if len(x.shape) != 1:
        raise UnsupportedError(f"{low.where(node)}: Linear applied to a tensor of shape {x.shape}; "
                               "flatten to [B, N] first (nn.Flatten / torch.flatten(x, 1))")
    bias = None if mod.bias is None else as_float64(mod.bias)
    return x.weighted(FloatDense(low.weights(mod.weight)), bias, low.where(node), node.target,
                      owned=not low.structure_only)


def lower_batchnorm(low, node, args, kwargs, out):
    x = low.expr(node, args[0])
    gain, shift = bn_affine(low.module(node), low.where(node))
    return x.scale(gain.numpy(), low.where(node)).shift(shift.numpy())


def lower_relu(low, node, args, kwargs, out):
    return low.activation(node, low.expr(node, args[0]), None)


def lower_clip(low, node, args, kwargs, out):
    return low.activation(node, low.expr(node, args[0]), low.module(node))


def lower_relu6(low, node, args, kwargs, out):
    """ReLU6 = a clip activation with the fixed threshold 6."""
    return low.activation(node, low.expr(node, args[0]), None, fixed_clip=6.0)


def _fixed_clip(low, node, x, lo, hi):
    """clamp(x, lo, hi) with lo = 0: a ReLU (hi None) or a clip activation with threshold hi."""
    where = low.where(node)
    if isinstance(lo, Const) or isinstance(hi, Const) or isinstance(lo, Expr) or isinstance(hi, Expr):
        raise UnsupportedError(f"{where}: clamps to tensor bounds; only number bounds (0, b) are a clip")
    if lo is None or float(lo) != 0.0 or (hi is not None and not float(hi) > 0):
        raise UnsupportedError(f"{where}: clamps to [{lo}, {hi}]; an IF neuron computes clip(x, 0, b) with "
                               "b > 0 only (a lower bound other than 0 is not a spiking rate)")
    if hi is None:
        return low.activation(node, x, None)
    return low.activation(node, x, None, fixed_clip=float(hi))


def lower_hardtanh_module(low, node, args, kwargs, out):
    """nn.Hardtanh(0, b) = a clip activation with the fixed threshold b."""
    m: nn.Hardtanh = low.module(node)
    return _fixed_clip(low, node, low.expr(node, args[0]), m.min_val, m.max_val)


def lower_hardtanh_fn(low, node, args, kwargs, out):
    return _fixed_clip(low, node, low.expr(node, _arg(args, kwargs, 0, "input")),
                       _arg(args, kwargs, 1, "min_val", -1.0), _arg(args, kwargs, 2, "max_val", 1.0))


def lower_clamp(low, node, args, kwargs, out):
    """torch.clamp / torch.clip / Tensor.clamp(_) with min 0: ReLU or a fixed clip."""
    return _fixed_clip(low, node, low.expr(node, args[0]), _arg(args, kwargs, 1, "min"),
                       _arg(args, kwargs, 2, "max"))


def _pool_geometry(size: int, kernel: int, stride: int, pad: int, out: int, where: str) -> int:
    """The right/bottom zero padding r >= pad that makes windows i*stride - pad .. + kernel give `out`
    outputs (ceil_mode adds partial windows on that side); UnsupportedError if none does."""
    right = max(pad, (out - 1) * stride + kernel - pad - size)
    if (size + pad + right - kernel) // stride + 1 != out:
        raise UnsupportedError(f"{where}: pooling windows ({kernel}, stride {stride}, padding {pad}) over "
                               f"{size} give {out} outputs; spikec cannot reproduce this geometry")
    return right


def _avg_pool(low, node, x: Expr, kernel, stride, padding, ceil_mode, divisor, out, include_pad=True):
    """Average pooling. Without padding or partial windows: sum pooling (a weight-free SumPool2d)
    times 1/k^2. With zero padding or ceil_mode's partial windows: a depthwise all-ones convolution
    (padded; a partial window is a window with more zero padding on the right/bottom) into a relay
    IF layer, since an edge carries one weighted op and the next conv needs its own; the divisor
    must then be the same for every window (count_include_pad=True without partial windows, or
    divisor_override)."""
    where = low.where(node)
    if len(x.shape) != 3:
        raise UnsupportedError(f"{where}: average pooling needs a (C, H, W) tensor, got {x.shape}")
    kernel = _pair(kernel)
    stride = kernel if stride is None or stride == [] else _pair(stride)
    pad = _pair(padding)
    out_hw = tuple(int(v) for v in out.shape[2:])
    right = tuple(_pool_geometry(n, k, s, p, o, where)
                  for n, k, s, p, o in zip(x.shape[1:], kernel, stride, pad, out_hw))
    area = kernel[0] * kernel[1]
    if pad == (0, 0) and right == (0, 0):
        if divisor is not None:
            area = int(divisor)
        return x.sum_pool(kernel, stride, where).scale(1.0 / area, where)
    if divisor is None:
        if not include_pad:
            raise UnsupportedError(f"{where}: average pooling with padding={padding} and "
                                   "count_include_pad=False divides border windows by fewer elements; the "
                                   f"divisor must be uniform: use count_include_pad=True or divisor_override={area}")
        if right != pad:
            raise UnsupportedError(f"{where}: ceil_mode=True gives partial windows that PyTorch divides by "
                                   f"their clipped size; the divisor must be uniform: pass divisor_override={area} "
                                   "(spikec.prepare does), or use ceil_mode=False")
        divisor = area
    if any(t.weighted for t in x.terms):
        raise UnsupportedError(f"{where}: padded or ceil-mode average pooling right after "
                               f"{x.origin or 'a linear layer'} with no activation between them; put the "
                               "activation before the pooling (conv -> BN -> activation -> pool)")
    return low.relay(node, _padded_sum_pool(x, kernel, stride, pad, right, where), 1.0 / float(divisor))


def _padded_sum_pool(x: Expr, kernel, stride, pad, right, where: str) -> Expr:
    """Zero-padded sum pooling as a depthwise conv with a ones kernel: padding `right` on both sides and
    right - pad leading zero taps, so windows start at i * stride - pad and may overhang on the right."""
    channels = x.shape[0]
    extra = (right[0] - pad[0], right[1] - pad[1])
    taps = np.zeros((kernel[0] + extra[0], kernel[1] + extra[1]), np.float64)
    taps[extra[0]:, extra[1]:] = 1.0
    if any(t.place is not None for t in x.terms):   # channels placed (cat, shuffle): a full (diagonal) conv
        w = np.eye(channels)[:, :, None, None] * taps
        return x.weighted(FloatConv(w, stride, right, (1, 1), 1), None, where, x.origin)
    w = np.broadcast_to(taps, (channels, 1) + taps.shape).copy()
    return x.weighted(FloatConv(w, stride, right, (1, 1), channels), None, where, x.origin)


def lower_avgpool_module(low, node, args, kwargs, out):
    m: nn.AvgPool2d = low.module(node)
    return _avg_pool(low, node, low.expr(node, args[0]), m.kernel_size, m.stride, m.padding, m.ceil_mode,
                     m.divisor_override, out, m.count_include_pad)


def lower_avgpool_fn(low, node, args, kwargs, out):
    a = lambda i, n, d=None: _arg(args, kwargs, i, n, d)  # noqa: E731
    return _avg_pool(low, node, low.expr(node, a(0, "input")), a(1, "kernel_size"), a(2, "stride"),
                     a(3, "padding", 0), a(4, "ceil_mode", False), a(6, "divisor_override"), out,
                     a(5, "count_include_pad", True))


def _adaptive(low, node, x: Expr, output_size, out):
    where = low.where(node)
    if len(x.shape) != 3:
        raise UnsupportedError(f"{where}: adaptive average pooling needs a (C, H, W) tensor, got {x.shape}")
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    size = tuple(x.shape[1 + i] if s is None else int(s) for i, s in enumerate(size))
    h, w = x.shape[1:]
    if h % size[0] or w % size[1]:
        raise UnsupportedError(f"{where}: adaptive average pooling from {h}x{w} to {size[0]}x{size[1]} uses "
                               "windows of unequal size; choose sizes that divide evenly")
    kernel = (h // size[0], w // size[1])
    if kernel == (1, 1):
        return x
    return x.sum_pool(kernel, kernel, where).scale(1.0 / (kernel[0] * kernel[1]), where)


def lower_adaptive_module(low, node, args, kwargs, out):
    return _adaptive(low, node, low.expr(node, args[0]), low.module(node).output_size, out)


def lower_adaptive_fn(low, node, args, kwargs, out):
    return _adaptive(low, node, low.expr(node, _arg(args, kwargs, 0, "input")),
                     _arg(args, kwargs, 1, "output_size"), out)


def lower_mean(low, node, args, kwargs, out):
    """x.mean((2, 3)) / torch.mean(x, [-2, -1], keepdim): the spatial mean, global average pooling."""
    x = low.expr(node, _arg(args, kwargs, 0, "input"))
    dim, keepdim = _arg(args, kwargs, 1, "dim"), bool(_arg(args, kwargs, 2, "keepdim", False))
    dims = (dim,) if isinstance(dim, int) else tuple(dim) if isinstance(dim, (list, tuple)) else None
    if len(x.shape) != 3 or dims is None or sorted(d % 4 for d in dims) != [2, 3]:
        raise UnsupportedError(f"{low.where(node)}: mean over dims {dim!r} of a [B, {', '.join(map(str, x.shape))}] "
                               "tensor; only the spatial mean of [B, C, H, W] (dims (2, 3), global average "
                               "pooling) is supported")
    pooled = _adaptive(low, node, x, 1, out)
    return pooled if keepdim else pooled.flatten()


def lower_reshape(low, node, args, kwargs, out):
    """view / reshape / flatten / squeeze: the identity, a flatten to [B, N], a split of the channel
    dim into axes, or the merge of a split back into channels (a channel shuffle: a permutation)."""
    x = args[0] if isinstance(args[0], ChannelSplit) else low.expr(node, args[0])
    shape = tuple(out.shape[1:])
    if out.ndim >= 1 and out.shape[0] == low.batch:
        if isinstance(x, ChannelSplit):
            if shape in (x.expr.shape, (int(np.prod(x.shape)),)):
                merged = low.select(x.expr, x.channel_order())
                return merged if shape == merged.shape else merged.flatten()
        else:
            if shape == x.shape:
                return x
            if shape == (int(np.prod(x.shape)),):
                return x.flatten()
            axes = len(shape) - len(x.shape) + 1   # the axes the channel dim becomes
            if axes >= 2 and shape[axes:] == x.shape[1:] and int(np.prod(shape[:axes])) == x.shape[0]:
                return ChannelSplit.of(x, shape[:axes])
    raise UnsupportedError(f"{low.where(node)}: reshapes [B, {', '.join(map(str, x.shape))}] to "
                           f"{list(out.shape)}; only flattening to [B, N] (C, H, W order) is supported, "
                           "or splitting the channel dim into axes and merging them back (a channel shuffle)")


def lower_transpose(low, node, args, kwargs, out):
    """torch.transpose / Tensor.transpose / swapaxes of two split channel axes (a channel shuffle)."""
    dims = list(range(out.ndim))
    d0, d1 = (int(_arg(args, kwargs, i, n)) % out.ndim for i, n in ((1, "dim0"), (2, "dim1")))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return _permute_split(low, node, args[0], dims)


def lower_permute(low, node, args, kwargs, out):
    """torch.permute / Tensor.permute of split channel axes (a channel shuffle)."""
    dims = args[1:] or (kwargs["dims"],)
    if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
        dims = dims[0]
    return _permute_split(low, node, args[0], [int(d) % out.ndim for d in dims])


def _permute_split(low, node, x, dims: list[int]) -> ChannelSplit:
    where = low.where(node)
    if not isinstance(x, ChannelSplit):
        shape = ", ".join(map(str, low.expr(node, x).shape))
        raise UnsupportedError(f"{where}: permutes the dims of a [B, {shape}] tensor; only the axes of a split "
                               "channel dim can be permuted (a channel shuffle: view(B, g, C // g, H, W) -> "
                               "transpose(1, 2) -> view(B, C, H, W))")
    k = len(x.sizes)
    if dims[0] != 0 or dims[k + 1:] != list(range(k + 1, len(dims))):
        raise UnsupportedError(f"{where}: moves the batch or spatial dims of a view of split channels; only "
                               f"its channel axes (dims 1..{k}) can be permuted")
    return x.permuted([d - 1 for d in dims[1:k + 1]])


def _selection_dim(low, node, x: Expr, dim) -> None:
    if not isinstance(dim, int) or dim % (len(x.shape) + 1) != 1:
        raise UnsupportedError(f"{low.where(node)}: selects along dim {dim} of a [B, {', '.join(map(str, x.shape))}] "
                               "tensor; only the channel dimension (dim 1 of [B, C, H, W] or [B, N]) can be "
                               "split or sliced")


def lower_split(low, node, args, kwargs, out):
    """torch.chunk / torch.split / Tensor.chunk / Tensor.split along channels: consecutive channel
    blocks, as large as the real outputs (a tuple of selections)."""
    x = low.expr(node, args[0])
    _selection_dim(low, node, x, _arg(args, kwargs, 2, "dim", 0))
    parts, start = [], 0
    for part in out:
        size = int(part.shape[1])
        parts.append(low.select(x, np.arange(start, start + size)))
        start += size
    return tuple(parts)


def lower_narrow(low, node, args, kwargs, out):
    """torch.narrow / Tensor.narrow along channels: `length` channels from `start`."""
    x = low.expr(node, args[0])
    _selection_dim(low, node, x, _arg(args, kwargs, 1, "dim"))
    start = _plain(_arg(args, kwargs, 2, "start")) % x.shape[0]
    return low.select(x, np.arange(start, start + int(out.shape[1])))


def lower_getitem(low, node, args, kwargs, out):
    """operator.getitem: one result of a chunk / split, or x[:, a:b] / x[:, a:b:s] (a channel slice)."""
    obj, index = args
    if isinstance(obj, (tuple, list)):
        return obj[_plain(index)]
    x = low.expr(node, obj)
    items = index if isinstance(index, tuple) else (index,)
    items = items[:-1] if items and items[-1] is Ellipsis else items
    full = slice(None)
    if not (2 <= len(items) <= len(x.shape) + 1 and items[0] == full and isinstance(items[1], slice)
            and all(i == full for i in items[2:])):
        raise UnsupportedError(f"{low.where(node)}: indexes a [B, {', '.join(map(str, x.shape))}] tensor with "
                               f"{index!r}; only a channel slice (x[:, a:b] or x[:, a:b:s]) is supported")
    chans = items[1]
    return low.select(x, np.arange(x.shape[0])[slice(*(_plain(v) for v in (chans.start, chans.stop, chans.step)))])


def _plain(value):
    """A python number from a symbolic constant (a size computed from x.shape) or a number."""
    return value.value if isinstance(value, Const) else value


def lower_identity(low, node, args, kwargs, out):
    return args[0] if isinstance(args[0], ChannelSplit) else low.expr(node, args[0])


def lower_shape_query(low, node, args, kwargs, out):
    return Const(out)


def _constant(low, node, value, shape):
    """A python number or tensor broadcastable to `shape` (as a float64 array)."""
    v = value.value if isinstance(value, Const) else value
    arr = as_float64(v) if isinstance(v, torch.Tensor) else np.asarray(v, np.float64)
    try:
        if arr.ndim > len(shape):
            full = np.broadcast_to(arr, (1,) + tuple(shape))[0]
        else:
            full = np.broadcast_to(arr, shape)
    except ValueError:
        raise UnsupportedError(f"{low.where(node)}: constant of shape {arr.shape} does not broadcast to "
                               f"the tensor's per-sample shape {shape}") from None
    return full


def _gain(low, node, value, shape) -> np.ndarray:
    full = _constant(low, node, value, shape)
    if np.all(full == full.flat[0]):
        return np.float64(full.flat[0])
    per = full.reshape(shape[0], -1)
    if len(shape) == 3 and np.all(per == per[:, :1]):
        return per[:, 0].copy()
    if len(shape) == 1:
        return full.copy()
    raise UnsupportedError(f"{low.where(node)}: multiplies by a constant that varies within a channel")


def _add_like(low, node, a, b, sign: float, alpha=1):
    where = low.where(node)
    if isinstance(alpha, Const) or not isinstance(alpha, (int, float)):
        raise UnsupportedError(f"{where}: alpha must be a python number")
    if isinstance(a, Expr) and isinstance(b, Expr):
        return a.add(b.scale(sign * alpha, where), where)
    if isinstance(a, Expr):
        return a.shift(sign * alpha * _constant(low, node, b, a.shape))
    return b.scale(sign * alpha, where).shift(_constant(low, node, a, b.shape))


def lower_add(low, node, args, kwargs, out):
    return _add_like(low, node, args[0], _arg(args, kwargs, 1, "other"), 1.0, kwargs.get("alpha", 1))


def lower_sub(low, node, args, kwargs, out):
    return _add_like(low, node, args[0], _arg(args, kwargs, 1, "other"), -1.0, kwargs.get("alpha", 1))


def lower_mul(low, node, args, kwargs, out):
    a, b = args[0], _arg(args, kwargs, 1, "other")
    if isinstance(a, Expr) and isinstance(b, Expr):
        raise UnsupportedError(f"{low.where(node)}: multiplies two input-dependent tensors; "
                               "only scaling by constants is linear")
    x, c = (a, b) if isinstance(a, Expr) else (b, a)
    return x.scale(_gain(low, node, c, x.shape), low.where(node))


def lower_div(low, node, args, kwargs, out):
    a, b = args[0], _arg(args, kwargs, 1, "other")
    if not isinstance(a, Expr) or isinstance(b, Expr) or kwargs.get("rounding_mode") is not None:
        raise UnsupportedError(f"{low.where(node)}: only division of a tensor by a constant is supported")
    return a.scale(1.0 / _gain(low, node, b, a.shape), low.where(node))


def lower_neg(low, node, args, kwargs, out):
    return low.expr(node, args[0]).scale(-1.0, low.where(node))


def lower_cat(low, node, args, kwargs, out):
    """torch.cat / torch.concat along the channel (or feature) dimension."""
    tensors = _arg(args, kwargs, 0, "tensors")
    dim = _arg(args, kwargs, 1, "dim", 0)
    where = low.where(node)
    if not isinstance(tensors, (list, tuple)) or not all(isinstance(t, Expr) for t in tensors):
        raise UnsupportedError(f"{where}: concatenates a constant with model tensors; only tensors "
                               "computed from the input can be concatenated")
    if not isinstance(dim, int) or dim % out.ndim != 1:
        raise UnsupportedError(f"{where}: concatenates along dim {dim}; only the channel dimension "
                               "(dim 1 of [B, C, H, W] or [B, N]) is supported")
    return Expr.concat(list(tensors), where)


MAXPOOL_HINT = ("max pooling has no integrate-and-fire equivalent; replace it by average pooling "
                "(spikec.prepare(model, x) rewrites modules and F.max_pool2d calls; "
                "spikec.compiler.replace_maxpool(model) swaps nn.MaxPool2d for nn.AvgPool2d) and retrain")

MODULES = {
    nn.Conv2d: lower_conv,
    nn.Linear: lower_linear,
    nn.BatchNorm1d: lower_batchnorm,
    nn.BatchNorm2d: lower_batchnorm,
    nn.ReLU: lower_relu,
    nn.ReLU6: lower_relu6,
    nn.Hardtanh: lower_hardtanh_module,
    ClipActivation: lower_clip,
    nn.AvgPool2d: lower_avgpool_module,
    nn.AdaptiveAvgPool2d: lower_adaptive_module,
    nn.Flatten: lower_reshape,
    nn.Dropout: lower_identity,
    nn.Dropout2d: lower_identity,
    nn.Identity: lower_identity,
}

FUNCTIONS = {
    F.relu: lower_relu,
    torch.relu: lower_relu,
    F.relu_: lower_relu,
    torch.relu_: lower_relu,
    F.relu6: lower_relu6,
    F.hardtanh: lower_hardtanh_fn,
    F.hardtanh_: lower_hardtanh_fn,
    torch.clamp: lower_clamp,
    torch.clip: lower_clamp,
    F.avg_pool2d: lower_avgpool_fn,
    torch._C._nn.avg_pool2d: lower_avgpool_fn,
    F.adaptive_avg_pool2d: lower_adaptive_fn,
    torch.flatten: lower_reshape,
    torch.transpose: lower_transpose,
    torch.swapaxes: lower_transpose,
    torch.permute: lower_permute,
    torch.chunk: lower_split,
    torch.split: lower_split,
    torch.narrow: lower_narrow,
    operator.getitem: lower_getitem,
    torch.mean: lower_mean,
    torch.reshape: lower_reshape,
    torch.squeeze: lower_reshape,
    F.dropout: lower_identity,
    F.dropout2d: lower_identity,
    operator.add: lower_add,
    operator.iadd: lower_add,
    torch.add: lower_add,
    operator.sub: lower_sub,
    operator.isub: lower_sub,
    torch.sub: lower_sub,
    operator.mul: lower_mul,
    operator.imul: lower_mul,
    torch.mul: lower_mul,
    operator.truediv: lower_div,
    operator.itruediv: lower_div,
    torch.div: lower_div,
    operator.neg: lower_neg,
    torch.cat: lower_cat,
    torch.concat: lower_cat,
    torch.concatenate: lower_cat,
    getattr: lower_shape_query,
}

METHODS = {
    "relu": lower_relu, "relu_": lower_relu,
    "clamp": lower_clamp, "clamp_": lower_clamp, "clip": lower_clamp, "clip_": lower_clamp,
    "view": lower_reshape, "reshape": lower_reshape, "flatten": lower_reshape, "squeeze": lower_reshape,
    "transpose": lower_transpose, "swapaxes": lower_transpose, "permute": lower_permute,
    "chunk": lower_split, "split": lower_split, "narrow": lower_narrow,
    "contiguous": lower_identity, "clone": lower_identity, "detach": lower_identity,
    "add": lower_add, "add_": lower_add, "sub": lower_sub, "sub_": lower_sub,
    "mul": lower_mul, "mul_": lower_mul, "div": lower_div, "div_": lower_div,
    "size": lower_shape_query, "dim": lower_shape_query, "mean": lower_mean,
}

HINTS = {
    nn.MaxPool2d: MAXPOOL_HINT, nn.AdaptiveMaxPool2d: MAXPOOL_HINT, F.max_pool2d: MAXPOOL_HINT,
    F.adaptive_max_pool2d: MAXPOOL_HINT, torch.max_pool2d: MAXPOOL_HINT, "max_pool2d": MAXPOOL_HINT,
}


def supported_summary() -> str:
    """One line per table, for error messages."""
    mods = sorted({c.__name__ for c in MODULES} - {"ClipActivation"}) + ["ClipActivation subclasses"]
    fns = sorted({function_name(f) for f in FUNCTIONS if f is not getattr})
    return (f"supported modules: {', '.join(mods)} (inside any nesting of Sequential/ModuleList/custom "
            f"modules); functions: {', '.join(fns)}; Tensor methods: {', '.join(sorted(METHODS))}")


def function_name(fn) -> str:
    mod = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__name__", repr(fn))
    if mod in ("_operator", "operator"):
        return f"operator.{name}"
    if mod.startswith("torch.nn.functional") or fn in (F.relu, F.avg_pool2d, F.dropout):
        return f"F.{name}"
    if mod.startswith("torch"):
        return f"torch.{name}"
    return f"{mod}.{name}" if mod else name


