"""Compile memory: estimate the peak of the weight-heavy passes before they run; refuse what cannot fit.

Measured on torchvision's vgg11_bn (docs/benchmarks.md, "Compile memory"): once the float IR exists
(`lower`), `spikec.compile` (which does not return the float IR) needs almost nothing more for its
weights: normalisation rescales them in place and quantisation writes the int64 weights over the
float64 ones, keeping one compact (int8 for Loihi) copy of the edge in progress. `compile_model`
with keep_float_graph=True keeps the float IR, so it needs two more copies of the weights at a time
(the rescaled copy beside the old one, then the int64 graph beside the normalised IR). Either way the
calibration pass adds its captured activations. The estimate is that, plus 10 %.
"""

from __future__ import annotations

import numpy as np

from spikec.compiler.floatir import FloatGraph
from spikec.errors import ResourceError
from spikec.fileio import available_bytes

GB = 1 << 30


def float_ir_bytes(fir: FloatGraph) -> int:
    """Bytes of every weight and per-neuron array of the float IR."""
    total = sum(op.weight.nbytes for e in fir.edges for op in e.ops if hasattr(op, "weight"))
    for lay in fir.layers:
        total += sum(np.asarray(a).nbytes for a in (lay.bias, lay.clip) if a is not None)
    return int(total)


def calibration_bytes(fir: FloatGraph, samples: int) -> int:
    """Captured float32 activations of every IF layer for `samples` calibration images (kept for
    the whole pass, then concatenated: twice)."""
    neurons = sum(int(np.prod(lay.shape)) for lay in fir.layers if lay.kind == "if")
    return 2 * 4 * neurons * samples


def weight_bytes_held(fir: FloatGraph, keep_float_graph: bool, weight_bytes: int = 1) -> int:
    """Weight memory the passes after lowering add: two copies of the float IR's weights when it is
    kept, else a compact copy (`weight_bytes` per weight: 1 for Loihi's int8) of the largest edge."""
    if keep_float_graph:
        return 2 * float_ir_bytes(fir)
    return weight_bytes * max((op.weight.size for e in fir.edges for op in e.ops if hasattr(op, "weight")),
                              default=0)


def estimate_extra_bytes(fir: FloatGraph, calibration_samples: int, keep_float_graph: bool = True,
                         weight_bytes: int = 1) -> int:
    """Memory the passes after lowering need beyond what the process holds now."""
    held = weight_bytes_held(fir, keep_float_graph, weight_bytes)
    return int(1.1 * (held + calibration_bytes(fir, calibration_samples)))


def check_memory(fir: FloatGraph, calibration_samples: int, available: int | None = None,
                 keep_float_graph: bool = True, weight_bytes: int = 1) -> int:
    """Raise ResourceError if the estimate exceeds the available memory; return the estimate (bytes).
    weight_bytes: bytes per rounded weight at the target's width."""
    need = estimate_extra_bytes(fir, calibration_samples, keep_float_graph, weight_bytes)
    free = available_bytes() if available is None else available
    if free is not None and need > free:
        raise ResourceError(
            f"compiling this network needs about {need / GB:.1f} GB more memory "
            f"({weight_bytes_held(fir, keep_float_graph, weight_bytes) / GB:.1f} GB for rescaling and rounding "
            f"{float_ir_bytes(fir) / GB:.1f} GB of float weights, plus calibration activations), but "
            f"only {free / GB:.1f} GB is available; compile on a larger machine, use a "
            f"smaller input size, or pass fewer calibration images")
    return need
