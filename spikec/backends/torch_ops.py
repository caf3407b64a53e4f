"""Exact integer arithmetic on PyTorch for the torch backend: bounds, dtypes, synapse ops, IF scan.

Exactness rule: a value computed in floating point is exact when every partial sum is an integer
of magnitude below 2^mantissa (2^24 for float32, 2^53 for float64). Each computation here carries a
static bound on the magnitude of everything it can produce, and `exact_dtype` picks the cheapest
dtype that the bound proves exact (int64 beyond 2^53).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from spikec.errors import OverflowRiskError, UnsupportedError
from spikec.ir.nodes import IF, Conv2d, Dense, Flatten, SumPool2d, SynapseOp

# largest magnitude below which every integer (and every sum of two) is exact in the dtype
EXACT_BELOW = {torch.float32: 2 ** 24, torch.float64: 2 ** 53, torch.int64: 2 ** 62}


def exact_dtype(bound: int, device: torch.device, where: str) -> torch.dtype:
    """The cheapest dtype in which integers up to `bound` (and their partial sums) are exact."""
    for dtype, limit in EXACT_BELOW.items():
        if bound < limit:
            if dtype == torch.int64 and device.type != "cpu":
                raise UnsupportedError(
                    f"{where}: values up to {bound} need int64 convolutions, which PyTorch only "
                    f"has on CPU; run with device='cpu'")
            return dtype
    raise OverflowRiskError(f"{where}: values may reach {bound}, beyond what int64 holds exactly")


@contextlib.contextmanager
def exact_math(device: torch.device):
    """Forbid reduced-precision float32 math (TF32 on CUDA, bf16 in oneDNN) and inexact conv algorithms.

    Uses the fp32_precision API (torch >= 2.9); reading the legacy `allow_tf32` flags raises once
    a user has set the new API, so both are handled by saving and restoring the new settings.
    NNPACK (Winograd/FFT convolutions) is disabled; on CUDA so is cuDNN, whose heuristics may pick
    FFT or Winograd kernels: convolutions then run as im2col + GEMM, exact below 2^24.
    """
    b = torch.backends
    leaves = [b.cudnn.conv, b.cuda.matmul, b.mkldnn.conv, b.mkldnn.matmul]
    saved = [leaf.fp32_precision for leaf in leaves]
    matmul_precision = torch.get_float32_matmul_precision()
    cudnn_enabled = b.cudnn.enabled
    try:
        for leaf in leaves:
            leaf.fp32_precision = "ieee"
        torch.set_float32_matmul_precision("highest")
        b.cudnn.enabled = cudnn_enabled and device.type == "cpu"
        with b.nnpack.flags(enabled=False):
            yield
    finally:
        b.cudnn.enabled = cudnn_enabled
        for leaf, value in zip(leaves, saved):
            leaf.fp32_precision = value
        torch.set_float32_matmul_precision(matmul_precision)


# --------------------------------------------------------------------------- synapse ops


def op_gain(op: SynapseOp) -> int:
    """Largest factor by which `op` can grow the max |value| of its input (a static bound)."""
    if isinstance(op, (Dense, Conv2d)):
        rows = np.abs(op.weight).reshape(op.weight.shape[0], -1).sum(axis=1)
        return int(rows.max()) if rows.size else 0
    if isinstance(op, SumPool2d):
        return op.kernel[0] * op.kernel[1]
    return 1


def chain_bounds(ops, bound: int) -> tuple[int, int]:
    """(bound on the chain's output, bound on every intermediate value) for inputs within `bound`."""
    peak = bound
    for op in ops:
        bound *= op_gain(op)
        peak = max(peak, bound)
    return bound, peak


class Chain:
    """An edge's synapse ops as torch calls, with weights converted once per dtype."""

    def __init__(self, ops, device: torch.device):
        self.ops = tuple(ops)
        self.device = device
        self._weights: dict[tuple[int, torch.dtype], torch.Tensor] = {}

    def _weight(self, index: int, dtype: torch.dtype) -> torch.Tensor:
        key = (index, dtype)
        if key not in self._weights:
            self._weights[key] = torch.tensor(np.array(self.ops[index].weight), dtype=dtype,
                                              device=self.device)
        return self._weights[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, *in_shape] -> [N, *out_shape], computed in x's dtype."""
        for i, op in enumerate(self.ops):
            if isinstance(op, Dense):
                x = F.linear(x, self._weight(i, x.dtype))
            elif isinstance(op, Conv2d):
                x = F.conv2d(x, self._weight(i, x.dtype), None, op.stride, op.padding, op.dilation,
                             op.groups)
            elif isinstance(op, SumPool2d):
                x = F.avg_pool2d(x, op.kernel, op.stride, divisor_override=1)
            elif isinstance(op, Flatten):
                x = x.reshape(x.shape[0], -1)
            else:
                raise UnsupportedError(f"the torch backend has no synapse op {type(op).__name__}")
        return x


# --------------------------------------------------------------------------- neurons


def param(value: np.ndarray, shape: tuple[int, ...], dtype, device) -> torch.Tensor:
    """A scalar / per-channel / per-neuron IR parameter as a tensor broadcastable to [B, *shape]."""
    t = torch.tensor(np.array(value), dtype=dtype, device=device)
    if t.ndim == 1 and tuple(t.shape) != tuple(shape):
        t = t.reshape((shape[0],) + (1,) * (len(shape) - 1))
    return t


def max_abs(value: np.ndarray | None) -> int:
    return 0 if value is None or value.size == 0 else int(np.abs(value).max())


def steps_tensor(steps: int, shape: tuple[int, ...], dtype, device) -> torch.Tensor:
    """Uninitialised [steps, B, *neurons]; for maps each step [B, C, H, W] is channels-last, the
    layout oneDNN convolves fastest, and reshaping to [steps * B, C, H, W] stays a view."""
    if len(shape) != 4:
        return torch.empty((steps,) + shape, dtype=dtype, device=device)
    b, c, h, w = shape
    return torch.empty((steps, b, h, w, c), dtype=dtype, device=device).permute(0, 1, 4, 2, 3)


def state_tensor(shape: tuple[int, ...], dtype, device) -> torch.Tensor:
    """Zeros of `shape` ([B, *neurons]) in the layout of one step of `steps_tensor`."""
    return steps_tensor(1, shape, dtype, device)[0].zero_()


@dataclass
class ScanResult:
    spikes: torch.Tensor              # [L, B, *shape], values in {-1, 0, 1}
    saturations: int
    voltages: torch.Tensor | None     # [L, B, *shape] membrane after each step, when asked


def if_scan(layer: IF, drive: list[torch.Tensor], batch: int, dtype: torch.dtype,
            device: torch.device, clamp: bool, record_v: bool) -> ScanResult:
    """Run `layer` for local steps k = 1..len(drive); drive[k-1] is everything added to v at step k
    (synaptic current, bias and bias schedule). Vectorised over batch and neurons, sequential in time.

    `clamp=False` is only correct when a bound proves v never leaves the state_bits range.
    """
    shape = (batch,) + tuple(layer.shape)
    steps = len(drive)
    p = lambda a: param(a, layer.shape, dtype, device)  # noqa: E731
    theta = p(layer.theta)
    v_init = p(layer.v_init).expand(shape)
    v = state_tensor(shape, dtype, device).copy_(v_init)
    out = steps_tensor(steps, shape, dtype, device)
    volts = torch.empty_like(out) if record_v else None
    limit = 2 ** (layer.state_bits - 1) - 1
    saturated = torch.zeros((), dtype=torch.int64, device=device)
    signed = layer.theta_neg is not None
    theta_neg = p(layer.theta_neg) if signed else None
    gated = signed and layer.gate == "net"
    net = torch.zeros_like(v) if gated else None
    mask = None
    for i in range(steps):
        v.add_(drive[i])
        if clamp:
            saturated += (v.abs() > limit).sum()
            v.clamp_(-limit, limit)
        s = out[i]
        torch.ge(v, theta, out=s)
        if signed:
            neg = (v <= -theta_neg) & (s == 0)
            if gated:
                neg &= net > 0
            s.sub_(neg.to(dtype))
        if layer.reset == "zero":
            v.masked_fill_(s != 0, 0)
        elif signed:
            v.sub_(torch.where(s > 0, theta, torch.where(s < 0, -theta_neg, 0)))
        else:
            v.addcmul_(s, theta, value=-1)
        if mask is not None:
            s.mul_(mask)
        if gated:
            net.add_(s)
        if i + 1 == layer.presim:
            mask = (v > 0).to(dtype)
            v.copy_(v_init)
            if gated:
                net.zero_()
        if record_v:
            volts[i] = v
    return ScanResult(out, int(saturated), volts)
