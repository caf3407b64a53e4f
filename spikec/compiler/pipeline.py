"""The compile pipeline: every pass, in order, one line each.

Each pass is a pure function (GraphModule -> GraphModule, float IR -> float IR, or Graph -> Graph);
none modifies its input. See docs in each module for the maths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spikec.compiler.bnfold import fold_batchnorm
from spikec.compiler.bounds import check_bounds
from spikec.compiler.floatir import FloatGraph
from spikec.compiler.frontend import as_input_tensor, trace
from spikec.compiler.integer import quantize
from spikec.compiler.lowering import lower
from spikec.compiler.memory import check_memory
from spikec.compiler.methods import CompileContext, Policy
from spikec.compiler.rescale import normalize
from spikec.compiler.retime import retime
from spikec.compiler.sigma_delta import to_sigma_delta
from spikec.compiler.stock import legalize_neurons
from spikec.compiler.targets import Target
from spikec.compiler.thresholds import (
    activation_statistics,
    assign_thresholds,
    choose_input_scale,
    relu_nodes,
    set_input_scale,
)
from spikec.errors import ConversionError
from spikec.ir.graph import Graph
from spikec.ir.nodes import narrowest_int_dtype


@dataclass(frozen=True)
class Options:
    """Options of `spikec.compile` shared by every method (see its docstring)."""

    per_channel: bool = False         # calibrated thresholds per channel instead of per layer
    percentile: float | None = None   # calibration statistic; None = the method's default
    saturate: bool = False            # accept possible membrane saturation instead of raising
    input_bits: int | None = None     # width of the integer input; None = the target's default
    input_scale: float | None = None  # integer input units per float unit; None = from the data range
    scale_per_channel: bool = False   # one integer scale (theta) per output channel, not per layer
    calibration_batch_size: int = 64
    sd_levels: int | None = None      # sigma-delta targets: message levels per threshold (None: the QCFS L)
    sd_clip: str = "output"           # sigma-delta targets: clip twins fed by "output", "input" or "none"


@dataclass(frozen=True)
class Compiled:
    graph: Graph               # the integer graph (what spikec.compile returns)
    float_graph: FloatGraph | None   # the normalized float IR it was quantized from (thresholds = 1);
                                     # None when the pipeline consumed it (keep_float_graph=False)
    traced: Any                # the BN-folded torch.fx GraphModule


def pipeline(model, example_input, policy: Policy, target: Target, calibration, steps: int | None,
             opts: Options, method_options: dict, keep_float_graph: bool = True) -> Compiled:
    """keep_float_graph=False lets normalisation and quantisation reuse the float IR's weight memory
    (the integer weights overwrite the float ones), so the float IR is not returned."""
    consume = not keep_float_graph
    example = as_input_tensor(example_input)
    calib = _calibration_tensor(calibration, example)
    bits = opts.input_bits or target.input_bits
    gm = trace(model, example, share_weights=True)                 # eval copy, example checked, fx graph
    gm = fold_batchnorm(gm)                                        # BN after conv/linear: exact weights
    fir = lower(gm, example)                                       # table lowering: activations -> IF layers
    check_memory(fir, _calibration_samples(fir, calib, policy),    # refuse early what cannot fit
                 keep_float_graph=keep_float_graph,
                 weight_bytes=np.dtype(narrowest_int_dtype(target.weight_min, target.weight_max)).itemsize)
    stats = _statistics(gm, fir, calib, policy, opts)              # ReLU thresholds need statistics
    fir = assign_thresholds(fir, stats, policy)                    # theta, v_init, method fields per layer
    fir = set_input_scale(fir, choose_input_scale(                 # integer input = round(x * scale)
        example if calib is None else calib, bits, opts.input_scale))
    fir = normalize(fir, consume)                                  # W~ = W theta_src / theta_dst: theta = 1
    graph = quantize(fir, target, policy, input_bits=bits, steps=steps,   # integers at the target's
                     saturate=opts.saturate, per_channel=opts.scale_per_channel,  # widths + per-layer
                     consume=consume)                                             # report
    graph = retime(graph, target.max_delay)                        # delays balance residual paths
    ctx = CompileContext(model, gm, calib, steps, target, dict(method_options))
    graph = policy.post(graph, ctx)                                # method-specific pass (FTBC, SRP, ...)
    graph = legalize_neurons(graph, target)                        # stock-neuron targets: zero reset, v_init 0
    graph = check_bounds(graph, target.input_limit, steps, opts.saturate)  # prove no overflow / record policy
    graph = to_sigma_delta(graph, target, opts.sd_levels, opts.sd_clip)  # sigma-delta: graded neurons
    return Compiled(graph.validate(), fir if keep_float_graph else None, gm)


def _calibration_tensor(calibration, example: torch.Tensor) -> torch.Tensor | None:
    if calibration is None:
        return None
    calib = as_input_tensor(calibration, "calibration")
    if calib.shape[1:] != example.shape[1:]:
        raise ConversionError(f"calibration samples have shape {tuple(calib.shape[1:])}, but example_input "
                              f"samples have {tuple(example.shape[1:])}")
    return calib


def _calibration_samples(fir: FloatGraph, calib, policy: Policy) -> int:
    return 0 if calib is None or not relu_nodes(fir) or not policy.accepts_relu else int(calib.shape[0])


def _statistics(gm, fir: FloatGraph, calib, policy: Policy, opts: Options):
    nodes = relu_nodes(fir)
    if not nodes or calib is None or not policy.accepts_relu:
        return None
    pct = policy.percentile if opts.percentile is None else opts.percentile
    return activation_statistics(gm, calib, nodes, pct, opts.per_channel, opts.calibration_batch_size)
