"""`spikec.compile`: option checking around the pipeline."""

from __future__ import annotations

import dataclasses

from spikec.compiler import methods, targets
from spikec.compiler.pipeline import Compiled, Options, pipeline
from spikec.errors import ConversionError
from spikec.ir.graph import Graph


def compile_model(model, example_input, *, method: str = "qcfs", calibration=None, steps: int | None = None,
                  target: str = "loihi", keep_float_graph: bool = True, **options) -> Compiled:
    """Like `compile` but also returns the normalized float IR (unless keep_float_graph=False, which
    saves one copy of the weights at the peak) and the traced module."""
    policy = methods.get(method)
    tgt = targets.get(target)
    known = {f.name for f in dataclasses.fields(Options)}
    shared = {k: v for k, v in options.items() if k in known}
    extra = {k: v for k, v in options.items() if k not in known}
    unknown = sorted(set(extra) - set(policy.options))
    if unknown:
        raise ConversionError(f"unknown option(s) {unknown} for method {policy.name!r}; options: "
                              f"{sorted(known | set(policy.options))}")
    if steps is not None and (not isinstance(steps, int) or steps < 1):
        raise ConversionError(f"steps must be a positive int or None, got {steps!r}")
    opts = Options(**shared)
    if opts.input_bits is not None and not (isinstance(opts.input_bits, int) and 2 <= opts.input_bits <= 32):
        raise ConversionError(f"input_bits must be an int in 2..32, got {opts.input_bits!r}")
    if opts.percentile is not None and not 0 < opts.percentile <= 100:
        raise ConversionError(f"percentile must lie in (0, 100], got {opts.percentile!r}")
    return pipeline(model, example_input, policy, tgt, calibration, steps, opts, extra, keep_float_graph)


def compile(model, example_input, *, method: str = "qcfs", calibration=None, steps: int | None = None,  # noqa: A001
            target: str = "loihi", **options) -> Graph:
    """Convert a trained PyTorch CNN to an integer IF graph for `target`.

    model:          nn.Module (not modified); traced with torch.fx, ClipActivations kept as leaves.
    example_input:  a batch [B, C, H, W] or [B, N] the model accepts (fixes the input shape).
    method:         "qcfs" (trained clip activations, v_init theta/2), "opi" (ReLU + calibration,
                    v_init theta/2), "maxnorm" / "robust" (ReLU + max / 99.9th percentile, v_init 0),
                    or any method registered in spikec.compiler.methods.
    calibration:    a batch of training inputs; needed for thresholds of plain ReLU layers.
    steps:          the T the graph will be run for; with it the compiler proves that no membrane
                    or readout can saturate within T steps (shrinking scales if needed) or raises.
    target:         "loihi" (int8 weights, 17-bit theta, 13-bit bias mantissa, 24-bit state),
                    "loihi-stock" (Lava's stock LIF, netx), "loihi-sdnn" (Lava's stock SigmaDelta:
                    graded messages, final at T=1) or "int32"; see spikec.compiler.targets.
    options:        per_channel, percentile, saturate, input_bits, input_scale, scale_per_channel,
                    calibration_batch_size, sd_levels, sd_clip (spikec.compiler.pipeline.Options),
                    plus the method's own.

    Returns a validated spikec.Graph; graph.meta["layers"] holds the per-layer record
    (graph.report() / spikec.compiler.print_report(graph) show it).
    """
    return compile_model(model, example_input, method=method, calibration=calibration, steps=steps,
                         target=target, keep_float_graph=False, **options).graph
