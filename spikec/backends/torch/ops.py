"""Exact integer arithmetic on PyTorch for the torch backend: bounds, dtypes, synapse ops, IF scan.

Exactness rule: a value computed in floating point is exact when every partial sum is an integer
of magnitude below 2^mantissa (2^24 for float32, 2^53 for float64). Each computation here carries a
static bound on the magnitude of everything it can produce, and `exact_dtype` picks the cheapest
dtype that the bound proves exact (int64 beyond 2^53).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from spikec.backends.torch import int8 as torch_int8
from spikec.errors import OverflowRiskError, UnsupportedError
from spikec.ir.nodes import IF, Conv2d, Dense, Flatten, SigmaDelta, SumPool2d, SynapseOp

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


def has_precision_api() -> bool:
    """Whether this PyTorch has the per-backend fp32_precision settings exact_math relies on."""
    b = torch.backends
    return all(hasattr(m, "conv") for m in (b.cudnn, b.mkldnn)) and hasattr(b.cuda.matmul, "fp32_precision")


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


class Workspace:
    """Scratch tensors reused across the chunks of one run.

    Chunk after chunk asks for the same shapes; handing back the same memory avoids page-faulting
    freshly mapped allocations, which on CPU cost more than the arithmetic done in them. A tensor
    got under a key is valid until the next `get` of that key.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self._flat: dict = {}

    def get(self, key, shape: tuple[int, ...], dtype: torch.dtype, channels_last: bool = False
            ) -> torch.Tensor:
        """An uninitialised tensor of `shape`; with channels_last, shape [..., C, H, W] is laid out
        in memory as [..., H, W, C] (for 4-D shapes, torch.channels_last)."""
        numel = math.prod(shape)
        flat = self._flat.get(key)
        if flat is None or flat.numel() < numel or flat.dtype != dtype:
            flat = self._flat[key] = torch.empty(numel, dtype=dtype, device=self.device)
        return shaped(flat[:numel], shape, channels_last)


def shaped(flat: torch.Tensor, shape: tuple[int, ...], channels_last: bool) -> torch.Tensor:
    """A 1-D tensor viewed as `shape`; with channels_last, [..., C, H, W] laid out as [..., H, W, C]."""
    if not channels_last:
        return flat.view(shape)
    lead, (c, h, w) = shape[:-3], shape[-3:]
    return flat.view(lead + (h, w, c)).movedim(-1, -3)


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether x ([..., C, H, W]) is laid out as [..., H, W, C] in memory, with C > 1."""
    return x.ndim >= 4 and x.shape[-3] > 1 and x.stride(-3) == 1 and x.stride(-1) == x.shape[-3]


def floor_shift(x: torch.Tensor, k: int) -> torch.Tensor:
    """floor(x / 2^k) of integer-valued x, exactly in any dtype (dividing by a power of two is
    exact in floating point)."""
    if x.dtype.is_floating_point:
        return torch.floor(x * (0.5 ** k))
    return torch.bitwise_right_shift(x, k)


class Chain:
    """An edge's synapse ops (then the factor 2^weight_exp) as torch calls, with weights converted
    once per dtype."""

    def __init__(self, ops, workspace: Workspace, weight_exp: int = 0):
        self.ops = tuple(ops)
        self.workspace = workspace
        self.factor = 2 ** max(weight_exp, 0)
        self.floor_shift = max(-weight_exp, 0)   # a negative exponent floors the summed current
        self._gains = [op_gain(op) for op in self.ops]
        self._weights: dict[tuple, torch.Tensor] = {}
        self._w_ranges = {i: torch_int8.weight_range(op) for i, op in enumerate(self.ops)
                          if isinstance(op, (Dense, Conv2d))}
        self._int8_kernel_ok = {i: torch_int8.kernel_ok(op) for i, op in enumerate(self.ops)
                                if isinstance(op, (Dense, Conv2d))}
        self._int8_ops: dict[tuple, torch_int8.Int8Op] = {}
        self._permuted: dict[tuple, Dense] = {}

    def bounds(self, bound: int) -> tuple[int, int]:
        """(bound on the output, bound on every intermediate value) for inputs within `bound`."""
        peak = bound
        for gain in self._gains + [self.factor]:
            bound *= gain
            peak = max(peak, bound)
        return bound, peak

    def _op(self, index: int, hwc: tuple[int, int, int] | None):
        """ops[index]; for a Dense reading a channels-last (C, H, W) tensor flattened in (H, W, C)
        order (hwc = (C, H, W)), the same Dense with its columns in that order."""
        if hwc is None:
            return self.ops[index]
        key = (index, hwc)
        if key not in self._permuted:
            weight = self.ops[index].weight
            self._permuted[key] = Dense(weight.reshape((-1,) + hwc).transpose(0, 2, 3, 1).reshape(
                weight.shape[0], -1))
        return self._permuted[key]

    def _weight(self, index: int, dtype: torch.dtype, hwc=None) -> torch.Tensor:
        key = (index, dtype, hwc)
        if key not in self._weights:
            self._weights[key] = torch.tensor(np.array(self._op(index, hwc).weight), dtype=dtype,
                                              device=self.workspace.device)
        return self._weights[key]

    def __call__(self, x: torch.Tensor, dtype: torch.dtype, bound: int, nonneg: bool) -> torch.Tensor:
        """x: integer-valued [N, *in_shape], max |x| <= bound, all >= 0 if nonneg -> the edge's
        current [N, *out_shape] in `dtype`, which the caller chose exact for this chain's bounds
        (see exact_dtype). The result may live in the workspace: use it before this chain is called
        again.

        x may come in a narrower dtype (int8 spikes): sum pooling stays in int8 while its sums fit,
        convolutions and dense products of small non-negative integers run on the int8 kernels
        (torch_int8; a convolution there returns channels-last memory order), everything else in
        `dtype`.
        """
        hwc = None   # set right after a Flatten that kept channels-last order (see _op)
        for i, op in enumerate(self.ops):
            out_bound = bound * self._gains[i]
            if (nonneg and self._int8_kernel_ok.get(i) and x.device.type == "cpu"
                    and torch_int8.usable(self._w_ranges[i], bound, out_bound) and torch_int8.shape_ok(op, x.shape)):
                if (i, hwc) not in self._int8_ops:
                    self._int8_ops[i, hwc] = torch_int8.Int8Op(self._op(i, hwc))
                x = self._int8_ops[i, hwc](x)
            elif isinstance(op, SumPool2d):
                x = self._sum_pool(x if x.dtype == torch.int8 and out_bound <= 127 else x.to(dtype), op, i)
            elif isinstance(op, Flatten):
                # a channels-last tensor feeding a Dense is flattened as it lies (no copy); the
                # Dense then takes its columns in the same order
                if i + 1 < len(self.ops) and isinstance(self.ops[i + 1], Dense) and is_channels_last(x):
                    hwc = tuple(x.shape[1:])
                    x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
                else:
                    x = x.reshape(x.shape[0], -1)
                bound = out_bound
                continue
            elif isinstance(op, Dense):
                x = F.linear(x.to(dtype), self._weight(i, dtype, hwc))
            elif isinstance(op, Conv2d):
                x = F.conv2d(x.to(dtype), self._weight(i, dtype), None, op.stride, op.padding, op.dilation,
                             op.groups)
            else:
                raise UnsupportedError(f"the torch backend has no synapse op {type(op).__name__}")
            if isinstance(op, (Dense, Conv2d)):
                nonneg = nonneg and self._w_ranges[i][0] >= 0
            bound, hwc = out_bound, None
        x = x.to(dtype)
        if self.floor_shift:
            return floor_shift(x, self.floor_shift)
        return x * self.factor if self.factor != 1 else x

    def _sum_pool(self, x: torch.Tensor, op: SumPool2d, index: int) -> torch.Tensor:
        """Window sums over the last two dims, separably: rows first, then columns, each as k - 1
        strided adds (several times faster than avg_pool2d on CPU, and exact in any dtype)."""
        for dim, k, s in ((2, op.kernel[0], op.stride[0]), (3, op.kernel[1], op.stride[1])):
            n_out = (x.shape[dim] - k) // s + 1
            step = (slice(None),) * dim + (slice(None, None, s),)
            parts = [x.narrow(dim, a, s * (n_out - 1) + 1)[step] for a in range(k)]
            if k == 1:
                x = parts[0]
                continue
            scratch = self.workspace.get((id(self), index, dim), parts[0].shape, x.dtype,
                                         channels_last=is_channels_last(x))
            x = torch.add(parts[0], parts[1], out=scratch)
            for part in parts[2:]:
                x.add_(part)
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


@dataclass
class ScanResult:
    spikes: torch.Tensor              # int8 [L, B, *shape], values in {-1, 0, 1}
    saturations: int
    voltages: torch.Tensor | None     # [L, B, *shape] membrane after each step, when asked


def if_scan(layer: IF, drive: list[torch.Tensor], batch: int, dtype: torch.dtype,
            device: torch.device, clamp: bool, record_v: bool, out: torch.Tensor | None = None
            ) -> ScanResult:
    """Run `layer` for local steps k = 1..len(drive); drive[k-1] is everything added to v at step k
    (synaptic current, bias and bias schedule). Vectorised over batch and neurons, sequential in time.

    `clamp=False` is only correct when a bound proves v never leaves the state_bits range.
    `out`, when given, is the int8 [steps, B, *shape] tensor the spikes are written to. The scan
    computes in `dtype` and copies each step's spikes to `out` (int8 spikes are a quarter of the
    memory traffic for the synapse ops that read them).
    """
    shape = (batch,) + tuple(layer.shape)
    steps = len(drive)
    out = torch.empty((steps,) + shape, dtype=torch.int8, device=device) if out is None else out
    # every tensor of the scan in out's memory layout, parameters per neuron: elementwise ops then
    # run over one contiguous stretch (a per-channel broadcast in channels-last order would not)
    one = out[0, :1] if steps else out.new_empty((1,) + tuple(layer.shape))   # layout template
    like = lambda t: torch.empty_like(one, dtype=dtype).copy_(t)  # noqa: E731
    p = lambda a: like(param(a, layer.shape, dtype, device))  # noqa: E731
    theta = p(layer.theta)
    v_init = p(layer.v_init).expand(shape)
    v = torch.empty_like(out[0] if steps else v_init, dtype=dtype).copy_(v_init)
    s = torch.empty_like(v)
    volts = torch.empty_like(out, dtype=dtype) if record_v else None
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
        torch.ge(v, theta, out=s)
        if signed:
            neg = (v <= -theta_neg) & (s == 0)
            if gated:
                neg &= net > 0
            s.sub_(neg.to(dtype))
        if layer.reset == "zero":
            v.masked_fill_(s != 0, 0)
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
        out[i].copy_(s)
        if record_v:
            volts[i] = v
    return ScanResult(out, int(saturated), volts)


def sigma_delta_scan(layer: SigmaDelta, drive: list[torch.Tensor | None], batch: int, device: torch.device
                     ) -> ScanResult:
    """Run SigmaDelta `layer` over the steps of `drive` (each its synaptic current at that step, or
    None for no input), in int64. Steps the caller leaves out must be ones where nothing changes.
    Returns the graded outputs (int64 [len(drive), B, *shape]) in ScanResult.spikes."""
    shape = (batch,) + tuple(layer.shape)
    bias = param(layer.bias, layer.shape, torch.int64, device)
    limit = 2 ** (layer.state_bits - 1) - 1
    sigma = torch.zeros(shape, dtype=torch.int64, device=device)
    act = torch.zeros_like(sigma)
    residue = torch.zeros_like(sigma)
    out = torch.zeros((len(drive),) + shape, dtype=torch.int64, device=device)
    saturated = 0
    for i, current in enumerate(drive):
        if current is not None:
            sigma.add_(current)
            saturated += int((sigma.abs() > limit).sum())
            sigma.clamp_(-limit, limit)
        new_act = (sigma + bias).clamp_(min=0)
        delta = new_act - act + residue
        sent = torch.where(delta.abs() >= layer.vth, delta, 0) if layer.vth else delta
        residue = delta - sent
        act = new_act
        out[i] = torch.bitwise_right_shift(sent, layer.shift)
    return ScanResult(spikes=out, saturations=saturated, voltages=None)
