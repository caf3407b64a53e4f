"""Cross-backend verification: every IF layer's spike train and the readout, step by step.

Equality means equal: there is no tolerance. The first divergence is located to the
(layer, sample, neuron, hardware step) and reported with each backend's value and, where the
backend can record it, the membrane potential.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from spikec.backends import run
from spikec.errors import BackendError, UnsupportedError
from spikec.ir.graph import Graph
from spikec.trace import Trace


@dataclass
class LayerRow:
    backend: str
    layer: str
    spikes_baseline: int
    spikes_backend: int
    mismatches: int
    first_mismatch: dict | None = None


@dataclass
class Divergence:
    backend: str
    layer: str
    sample: int
    neuron: list[int]
    step: int
    values: dict[str, int]
    membrane: dict[str, int | None] = field(default_factory=dict)


@dataclass
class VerifyReport:
    baseline: str
    backends: list[str]
    steps: int
    hardware_steps: int
    samples: int
    rows: list[LayerRow]
    readout: list[dict]
    first_divergence: Divergence | None
    mismatch_map: dict[str, dict[str, list[int]]]  # backend -> layer -> mismatches per step
    skipped: dict[str, str] = field(default_factory=dict)   # backend -> why it cannot run this graph

    @property
    def equal(self) -> bool:
        return self.first_divergence is None and all(r["mismatches"] == 0 for r in self.readout)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["equal"] = self.equal
        return out

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        from spikec.analysis.verify_view import summary

        return summary(self)


def verify(graph: Graph, inputs, steps: int, backends=("torch", "brian2", "lava"),
           baseline: str = "reference", layers="all", progress=None) -> VerifyReport:
    """Run `baseline` and every backend in `backends`; compare spikes and readout exactly."""
    graph.validate()
    names = [b for b in backends if b != baseline]
    if not names:
        raise BackendError("verify needs at least one backend other than the baseline")
    wanted = [layer.name for layer in graph.neuron_layers] if layers == "all" else list(layers)
    for name in wanted:
        graph.node(name)
    traces: dict[str, Trace] = {}
    skipped: dict[str, str] = {}
    for name in [baseline] + names:
        try:
            traces[name] = run(graph, inputs, steps, backend=name, record=True)
        except UnsupportedError as err:
            if name == baseline or not graph.graded_features():
                raise
            skipped[name] = str(err).split(";")[0]   # e.g. Brian2 runs integrate-and-fire graphs only
        if progress:
            progress(name)
    names = [name for name in names if name not in skipped]
    if not names:
        raise BackendError("no backend to compare: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    base = traces[baseline]
    rows, readout, divergences, maps = [], [], [], {}
    for name in names:
        got = traces[name]
        maps[name] = {}
        for layer in wanted:
            a, b = base.spikes[layer], got.spikes[layer]
            if a.shape != b.shape:
                raise BackendError(f"{name}: layer {layer} recorded shape {b.shape}, baseline {a.shape}")
            diff = a != b
            maps[name][layer] = diff.reshape(diff.shape[0], -1).sum(axis=1).astype(int).tolist()
            first = None
            if diff.any():
                t, sample, *neuron = (int(i) for i in np.argwhere(diff)[0])
                first = {"step": t + 1, "sample": sample, "neuron": neuron}
                values = {baseline: int(a[(t, sample, *neuron)]), name: int(b[(t, sample, *neuron)])}
                divergences.append(Divergence(name, layer, sample, neuron, t + 1, values))
            rows.append(LayerRow(name, layer, int(np.abs(a).sum()), int(np.abs(b).sum()),
                                 int(diff.sum()), first))
        out_diff = np.asarray(base.output) != np.asarray(got.output)
        readout.append({"backend": name, "mismatches": int(out_diff.sum()),
                        "first_sample": int(np.argwhere(out_diff)[0][0]) if out_diff.any() else None})
    first = None
    if divergences:
        order = {layer: i for i, layer in enumerate(graph.topo_order())}
        first = min(divergences, key=lambda d: (d.step, order[d.layer]))
        first.membrane = _membranes(graph, inputs, steps, first, [baseline, first.backend])
    return VerifyReport(baseline, names, steps, base.hardware_steps, int(np.asarray(base.output).shape[0]),
                        rows, readout, first, maps, skipped)


def _membranes(graph, inputs, steps, d: Divergence, backends) -> dict[str, int | None]:
    """Membrane potential after the diverging step, from each backend that can record it."""
    out: dict[str, int | None] = {}
    for name in backends:
        try:
            trace = run(graph, inputs, steps, backend=name, record=True, record_v=True)
            out[name] = int(trace.voltages[d.layer][(d.step - 1, d.sample, *d.neuron)])
        except (NotImplementedError, TypeError, KeyError, BackendError):
            out[name] = None
    return out
