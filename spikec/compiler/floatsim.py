"""A float "rate" simulation of the normalized float IR (thresholds 1, unrounded weights).

The same IF rule as the integer graph (v += I + b; spike if v >= 1; subtract 1), run
layer-synchronously in float64 with no rounding and no saturation. Comparing it with the integer
graph isolates what quantization changed: the integer readout divided by the readout's scale
should match this one up to the reported rounding.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from spikec.compiler.floatir import FloatConv, FloatDense, FloatGraph
from spikec.ir.nodes import Flatten, SumPool2d


def _apply(ops, x: torch.Tensor) -> torch.Tensor:
    as_t = lambda w: torch.from_numpy(w).to(x.dtype)  # noqa: E731
    for op in ops:
        if isinstance(op, FloatDense):
            x = x @ as_t(op.weight).T
        elif isinstance(op, FloatConv):
            x = F.conv2d(x, as_t(op.weight), None, op.stride, op.padding, op.dilation, op.groups)
        elif isinstance(op, SumPool2d):
            x = F.avg_pool2d(x, op.kernel, op.stride) * (op.kernel[0] * op.kernel[1])
        elif isinstance(op, Flatten):
            x = x.reshape(x.shape[0], -1)
        else:
            raise TypeError(f"unknown float op {type(op).__name__}")
    return x


def _param(value, shape, dtype) -> torch.Tensor:
    arr = np.zeros(()) if value is None else np.asarray(value, np.float64)
    if arr.ndim == 1 and len(shape) == 3:
        arr = arr.reshape(-1, 1, 1)
    return torch.from_numpy(np.broadcast_to(arr, shape).copy()).to(dtype)


def simulate(fir: FloatGraph, inputs, steps: int, dtype=torch.float64, every_step: bool = False) -> np.ndarray:
    """Readout of the normalized float IR summed over `steps` steps, [B, N] float64 (logit units);
    with every_step=True the readout after each step, [steps, B, N].

    inputs: the integer input of the compiled graph (graph.encode(x)), as float values.
    dtype: torch.float64 (default) or torch.float32 (faster, rounding ~1e-7 relative).
    """
    if not fir.normalized:
        raise ValueError("simulate() needs the normalized float IR (Compiled.float_graph)")
    x = torch.as_tensor(np.asarray(inputs), dtype=dtype)
    batch = x.shape[0]
    inp = next(lay for lay in fir.layers if lay.kind == "input")
    const = {}  # currents from the input are the same every step
    v, bias = {}, {}
    for lay in fir.layers:
        if lay.kind == "input":
            continue
        bias[lay.name] = _param(lay.bias, lay.shape, dtype)
        if lay.kind == "if":
            v[lay.name] = torch.full((batch,) + lay.shape, float(lay.v_init), dtype=dtype)
        const[lay.name] = sum((_apply(e.ops, x) for e in fir.in_edges(lay.name) if e.src == inp.name),
                              torch.zeros((batch,) + lay.shape, dtype=dtype))
    acc = None
    history = []
    for _ in range(steps):
        out = {}
        for lay in fir.layers:
            if lay.kind == "input":
                continue
            cur = const[lay.name] + bias[lay.name]
            for e in fir.in_edges(lay.name):
                if e.src != inp.name:
                    cur = cur + _apply(e.ops, out[e.src])
            if lay.kind == "if":
                v[lay.name] = v[lay.name] + cur
                s = (v[lay.name] >= 1.0).to(dtype)
                v[lay.name] = v[lay.name] - s
                out[lay.name] = s
            else:
                acc = cur if acc is None else acc + cur
        if every_step:
            history.append(acc.double())
    return torch.stack(history).numpy() if every_step else acc.double().numpy()


def ann_forward(fir: FloatGraph, x) -> np.ndarray:
    """The ANN the float IR encodes, before normalization: each IF layer computes
    min(max(z, 0), clip) (ReLU when it has no clip; a signed layer clamp(z, -clip, clip)), the
    readout returns z. float64 [B, N].
    Used to check lowering against the PyTorch model (quantising clips like QCFS are not
    reproduced: they round inside the clip)."""
    if fir.normalized:
        raise ValueError("ann_forward() needs the float IR before normalization")
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    out = {}
    for lay in fir.layers:
        if lay.kind == "input":
            out[lay.name] = xt
            continue
        z = _param(lay.bias, lay.shape, torch.float64)
        z = z + sum(_apply(e.ops, out[e.src]) for e in fir.in_edges(lay.name))
        if lay.kind == "readout":
            return z.numpy()
        clip = None if lay.clip is None else _param(lay.clip, lay.shape, torch.float64)
        a = torch.maximum(z, -clip) if lay.signed else torch.relu(z)
        if clip is not None:
            a = torch.minimum(a, clip)
        out[lay.name] = a
    raise ValueError("float IR has no readout")
