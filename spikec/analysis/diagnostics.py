"""Warnings about a graph and its runs that are not errors but usually mean a wrong setting:

  * silent-layer:        an IF layer emitted no spike at all (everything after it sees nothing);
  * dead-channels:       most channels of an IF layer never reached their threshold;
  * collapsed-threshold: a trained clip threshold shrank to (almost) zero during training;
  * accuracy-falls:      accuracy at the largest T is clearly below the best accuracy at a smaller T;
  * training-stalled:    a training run ended at chance-level accuracy (spikec.quantize.train's check).

Each check returns a list of `Finding` records (spikec.findings: code, where, message, hint); the CLI prints them
to stderr and adds them to its --json output. Nothing here raises on a healthy graph.
"""

from __future__ import annotations

import numpy as np

from spikec.findings import Finding
from spikec.ir.graph import Graph

DEAD_CHANNEL_SHARE = 0.5     # warn when more than this share of a layer's channels never fired
COLLAPSE_RATIO = 0.02        # a trained threshold below this share of the layers' median
COLLAPSE_ABS = 1e-3          # ... or below this absolute value has collapsed
ACCURACY_DROP_PP = 2.0       # percentage points below the best earlier accuracy
ACCURACY_DROP_SAMPLES = 2    # ... and at least this many samples


def silent_layers(graph: Graph, spike_counts: dict[str, int], hardware_steps: int) -> list[Finding]:
    """IF layers with no spike in `spike_counts` ({layer: total spikes over samples and steps})."""
    starts = graph.start_steps()
    out = []
    for layer in graph.if_layers:
        if layer.name not in spike_counts or int(spike_counts[layer.name]) != 0:
            continue
        if starts[layer.name] > hardware_steps:
            out.append(Finding("silent-layer", layer.name, f"starts at hardware step {starts[layer.name]}, after "
                               f"the run's {hardware_steps} steps", "run more steps (--steps)"))
        else:
            out.append(Finding("silent-layer", layer.name, "emitted no spike on these inputs",
                               "check the input range or scale (--input-range, --calibration), the layer's "
                               "threshold (spikec inspect) and, for a trained model, its training accuracy"))
    return out


def dead_channels(graph: Graph, spikes: dict[str, np.ndarray]) -> list[Finding]:
    """IF layers (with a channel axis) where most channels never fired; `spikes` as in Trace.spikes
    ({layer: [hardware_steps, B, C, ...]}). Silent layers are left to `silent_layers`."""
    out = []
    for layer in graph.if_layers:
        rec = spikes.get(layer.name)
        if rec is None or rec.ndim < 4:
            continue
        fired = np.abs(rec).reshape(rec.shape[0] * rec.shape[1], rec.shape[2], -1).any(axis=(0, 2))
        dead = int((~fired).sum())
        if fired.any() and dead > DEAD_CHANNEL_SHARE * fired.size:
            out.append(Finding("dead-channels", layer.name, f"{dead} of {fired.size} channels never reached "
                               "their threshold", "thresholds may be too high for these inputs: check the "
                               "input range and the trained thresholds (spikec inspect)"))
    return out


def collapsed_thresholds(graph: Graph) -> list[Finding]:
    """Layers whose threshold came from a trained clip activation and shrank to about zero."""
    rows = [r for r in graph.meta.get("layers", []) if isinstance(r, dict)
            and r.get("notes", {}).get("threshold_from") == "clip" and isinstance(r.get("theta_float"), (int, float))]
    if not rows:
        return []
    median = float(np.median([r["theta_float"] for r in rows]))
    out = []
    for r in rows:
        lam = float(r["theta_float"])
        if lam < COLLAPSE_ABS or lam < COLLAPSE_RATIO * median:
            out.append(Finding("collapsed-threshold", str(r["name"]), f"trained threshold {lam:.3g} (median of the "
                               f"layers {median:.3g}): the activation outputs almost nothing",
                               "retrain with a smaller learning rate or weight decay on the thresholds, or "
                               "recalibrate them (spikec.quantize.calibrate_thresholds)"))
    return out


def accuracy_falls(correct, total: int) -> list[Finding]:
    """A warning when accuracy after the last step is clearly below the best after fewer steps;
    `correct[t-1]` = samples right after t steps."""
    counts = np.asarray(correct, dtype=np.int64)
    if total <= 0 or counts.size < 2:
        return []
    best = int(counts[:-1].argmax())
    drop = int(counts[best] - counts[-1])
    if drop < ACCURACY_DROP_SAMPLES or 100.0 * drop / total < ACCURACY_DROP_PP:
        return []
    return [Finding("accuracy-falls", f"T={counts.size}",
                    f"accuracy {100.0 * counts[-1] / total:.2f} % is below {100.0 * counts[best] / total:.2f} % "
                    f"at T={best + 1}", "errors accumulate in the membranes: try SRP (--srp-tau) or FTBC "
                    "(--ftbc), or check for saturations")]


def trace_findings(graph: Graph, trace) -> list[Finding]:
    """Spike-based checks on a run: from recorded spikes when present, else from spike counts."""
    if trace.spikes:
        counts = {name: int(np.abs(s).sum()) for name, s in trace.spikes.items()}
        return silent_layers(graph, counts, trace.hardware_steps) + dead_channels(graph, trace.spikes)
    if trace.spike_counts:
        return silent_layers(graph, trace.spike_counts, trace.hardware_steps)
    return []
