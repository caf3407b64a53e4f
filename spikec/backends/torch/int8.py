"""Exact integer convolutions and matrix products on CPU through oneDNN's int8 kernels.

Spikes, and sum-pooled spikes, are small non-negative integers; compiled weights are int8. oneDNN's
quantized convolution and linear kernels (the ones PyTorch's own int8 inference uses, exposed as
`torch.ops.onednn.qconv_pointwise` / `qlinear_pointwise`) multiply uint8 activations by int8 weights
and accumulate in int32. Called with every scale 1 and every zero point 0 and asked for float32
output, they return the integer sums themselves: exact while |sum| < 2^24. On this project's CPU they
ran 3.6x (a LeNet-size conv) and 10x (a 256 -> 120 dense layer) faster than the float32 kernels on
the same operands (docs/benchmarks.md).

When the kernels may be used (`kernel_ok` and `usable`), all of these hold:
* a convolution has groups 1, dilation 1 and equal strides, and with stride > 1 an output at least
  two pixels high and wide (`shape_ok`): with torch 2.14.1 the int8 convolution
  returned wrong sums for some grouped, dilated and (1, 2)-strided cases with one input channel,
  and crashed the process on a dilated 1x1 case; in the allowed class a sweep of ~3000 random
  configurations (kernels to 5x5, strides 1-3, padding 0-2 per side, 1-64 channels, tiny to 20x20
  inputs) matched float64 exactly (tests/backends/test_torch_int8.py keeps sampling it),
* the input is known to be non-negative integers no larger than `x_max` <= 255 (uint8),
* every weight lies in [-128, 127] (int8),
* 2 * x_max * max|w| <= 32767: CPUs without VNNI add pairs of uint8 x int8 products in saturating
  int16 (vpmaddubsw); the bound proves no pair saturates there either,
* the output bound is below 2^24, so float32 holds every result exactly,
* the kernels exist in this PyTorch build and pass a self-test against float64 arithmetic, run
  once per process (`available`).
`SPIKEC_TORCH_INT8=0` in the environment turns the path off (for comparison and debugging).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch
import torch.nn.functional as F

from spikec.ir.nodes import Conv2d, Dense

INT16_MAX = 2 ** 15 - 1
FLOAT32_EXACT = 2 ** 24


def enabled() -> bool:
    return os.environ.get("SPIKEC_TORCH_INT8", "1") != "0" and available()


@functools.cache
def available() -> bool:
    """Whether the oneDNN int8 kernels exist here and reproduce float64 results exactly."""
    try:
        return _self_test()
    except (AttributeError, RuntimeError, TypeError, NotImplementedError):
        return False


def kernel_ok(op: Conv2d | Dense) -> bool:
    """Whether the op's geometry is in the class the int8 kernels compute correctly (module docstring)."""
    if isinstance(op, Dense):
        return True
    return op.groups == 1 and op.dilation == (1, 1) and op.stride[0] == op.stride[1]


def weight_range(op: Conv2d | Dense) -> tuple[int, int]:
    w = op.weight
    return (int(w.min()), int(w.max())) if w.size else (0, 0)


def shape_ok(op: Conv2d | Dense, x_shape) -> bool:
    """False for the input shapes where the int8 convolution is wrong with torch 2.14.1: stride > 1
    with an output one pixel wide (found by the hypothesis test in a clean-machine run; a sweep of
    6,000 configurations failed only there, 44 of 482 such cases, e.g. a 1x2 kernel, stride 2, on
    9x2 inputs). Outputs one pixel high are fenced too, out of caution."""
    if not isinstance(op, Conv2d) or max(op.stride) == 1:
        return True
    h, w = x_shape[-2], x_shape[-1]
    out_h = (h + 2 * op.padding[0] - op.dilation[0] * (op.weight.shape[2] - 1) - 1) // op.stride[0] + 1
    out_w = (w + 2 * op.padding[1] - op.dilation[1] * (op.weight.shape[3] - 1) - 1) // op.stride[1] + 1
    return out_h > 1 and out_w > 1


def usable(w_range: tuple[int, int], x_max: int, out_bound: int) -> bool:
    """Whether an op with weights in `w_range`, on non-negative integer inputs <= x_max, may run on
    the int8 kernels (the conditions in the module docstring)."""
    w_min, w_max = w_range
    return (-128 <= w_min and w_max <= 127 and 0 <= x_max <= 255
            and 2 * x_max * max(-w_min, w_max) <= INT16_MAX and out_bound < FLOAT32_EXACT and enabled())


class Int8Op:
    """One Conv2d or Dense op with its weights packed once for the oneDNN int8 kernels."""

    def __init__(self, op: Conv2d | Dense):
        self.op = op
        weight = torch.tensor(np.asarray(op.weight), dtype=torch.int8)
        out_channels = weight.shape[0]
        self._scales = torch.ones(out_channels, dtype=torch.float32)
        self._zero_points = torch.zeros(out_channels, dtype=torch.int64)
        if isinstance(op, Conv2d):
            self._packed = torch.ops.onednn.qconv_prepack(
                weight, self._scales, 1.0, 0, list(op.stride), list(op.padding), list(op.dilation),
                op.groups, None)
        else:
            self._packed = torch.ops.onednn.qlinear_prepack(weight, None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: integer-valued [N, *in_shape] within the bounds `usable` checked (int8 input must be
        non-negative) -> float32 result.
        A convolution's result is in channels-last memory order."""
        # non-negative int8 has the same bits as uint8
        xu = x.view(torch.uint8) if x.dtype == torch.int8 else x.to(torch.uint8)
        op = self.op
        if isinstance(op, Conv2d):
            return torch.ops.onednn.qconv_pointwise(
                xu, 1.0, 0, self._packed, self._scales, self._zero_points, None, list(op.stride),
                list(op.padding), list(op.dilation), op.groups, 1.0, 0, torch.float32, "none", [], "")
        return torch.ops.onednn.qlinear_pointwise(
            xu, 1.0, 0, self._packed, self._scales, self._zero_points, None, 1.0, 0, torch.float32,
            "none", [], "")


def _self_test() -> bool:
    """Both kernels, with stride, padding and extreme operands, against float64."""
    rng = np.random.default_rng(0)
    weight = rng.integers(-128, 128, (6, 4, 3, 3))
    weight[0, 0, 0, 0] = -128
    conv = Conv2d(weight, stride=(2, 2), padding=(1, 2))
    x = torch.tensor(rng.integers(0, 128, (3, 4, 9, 8)), dtype=torch.float32)
    want = F.conv2d(x.double(), torch.tensor(conv.weight, dtype=torch.float64), None, conv.stride,
                    conv.padding, conv.dilation, conv.groups)
    if not torch.equal(Int8Op(conv)(x).double(), want):
        return False
    dense = Dense(rng.integers(-128, 128, (5, 37)))
    x = torch.tensor(rng.integers(0, 128, (7, 37)), dtype=torch.float32)
    want = x.double() @ torch.tensor(dense.weight, dtype=torch.float64).T
    return torch.equal(Int8Op(dense)(x).double(), want)
