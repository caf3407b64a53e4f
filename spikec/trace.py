"""What a run returns, the same for every backend."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Trace:
    """Result of running a graph.

    output:      int64 [B, n_out], the readout summed over the `steps` evaluated steps.
    steps:       T, the evaluated steps.
    latency:     hardware steps beyond T (pipeline depth + SRP pre-simulation).
    spikes:      when recorded, {IF layer name: int8 [hardware_steps, B, *shape]}; row t-1 holds
                 the spikes emitted at hardware step t.
    saturations: {population name: number of (neuron, step) pairs whose state was clipped}.
    voltages:    when recorded, {IF layer name: int64 [hardware_steps, B, *shape]} membrane after
                 each step (before-start steps hold v_init).
    """

    output: np.ndarray
    steps: int
    latency: int
    spikes: dict[str, np.ndarray] | None = None
    saturations: dict[str, int] = field(default_factory=dict)
    voltages: dict[str, np.ndarray] | None = None
    backend: str = ""
    outputs: np.ndarray | None = None
    spike_counts: dict[str, int] | None = None

    @property
    def hardware_steps(self) -> int:
        return self.steps + self.latency

    def predictions(self) -> np.ndarray:
        return np.asarray(self.output).argmax(axis=1)

    def __str__(self) -> str:
        out = np.asarray(self.output)
        preds = self.predictions()
        shown = " ".join(map(str, preds[:16])) + (" ..." if len(preds) > 16 else "")
        saturated = {k: v for k, v in self.saturations.items() if v}
        lines = [f"Trace{f' from {self.backend}' if self.backend else ''}: {out.shape[0]} sample(s), T={self.steps} "
                 f"(+{self.latency} latency = {self.hardware_steps} hardware steps)",
                 f"  predictions: {shown}",
                 f"  readout range: {out.min() if out.size else '-'} .. {out.max() if out.size else '-'}; "
                 "saturations: " + (", ".join(f"{k} {v}" for k, v in saturated.items()) or "none")]
        counts = self.spike_counts or ({k: int(np.abs(v).sum()) for k, v in self.spikes.items()}
                                       if self.spikes else None)
        if counts:
            silent = [k for k, v in counts.items() if v == 0]
            lines.append(f"  spikes: {sum(counts.values())} in {len(counts)} layer(s)"
                         + (f"; silent: {', '.join(silent)}" if silent else ""))
        lines.append("  data: .output, .predictions(), .spikes (record=True), .saturations")
        return "\n".join(lines)
