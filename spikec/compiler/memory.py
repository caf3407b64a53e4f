"""Compile memory: estimate the peak of the weight-heavy passes before they run; refuse what cannot fit.

Measured on a Linear-heavy model (docs/benchmarks.md, "Compile memory"): once the float IR exists
(`lower`), the passes after it need at most about two more copies of its weights at a time
(normalisation builds the rescaled copy while the old one is alive; quantisation builds the int64
graph beside the normalised IR; both work in row blocks, so no whole-array temporaries), plus the
calibration pass's captured activations. The estimate is that, plus 10 %.
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


def estimate_extra_bytes(fir: FloatGraph, calibration_samples: int) -> int:
    """Memory the passes after lowering need beyond what the process holds now."""
    return int(1.1 * (2 * float_ir_bytes(fir) + calibration_bytes(fir, calibration_samples)))


def check_memory(fir: FloatGraph, calibration_samples: int, available: int | None = None) -> int:
    """Raise ResourceError if the estimate exceeds the available memory; return the estimate (bytes)."""
    need = estimate_extra_bytes(fir, calibration_samples)
    free = available_bytes() if available is None else available
    if free is not None and need > free:
        raise ResourceError(
            f"compiling this network needs about {need / GB:.1f} GB more memory ({float_ir_bytes(fir) / GB:.1f} GB "
            f"of float weights, held twice while they are rescaled and rounded, plus calibration "
            f"activations), but only {free / GB:.1f} GB is available; compile on a larger machine, use a "
            f"smaller input size, or pass fewer calibration images")
    return need
