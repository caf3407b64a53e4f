"""spikec.estimate: synaptic operations, energy and Loihi resources of one recorded run.

Convention: `Estimate.layers` and `Estimate.edges` hold exact integer totals over the whole batch;
the summary fields of `Estimate` (sops, energy_j, ...) are per inference (per sample, the batch mean).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from spikec.analysis.ann import AnnCounts, ann_from_graph, ann_from_model, ann_input
from spikec.analysis.energy import (
    ANN_PRESETS,
    Band,
    EnergyCounts,
    EnergyModel,
    get_energy_model,
    price,
    price_ann,
)
from spikec.analysis.hardware import HardwareSpec, get_hardware
from spikec.analysis.resources import (
    LayerResources,
    ResourceEstimate,
    binary,
    estimate_resources,
    messages_per_neuron,
)
from spikec.analysis.sops import EdgeActivity, PopActivity, count_activity
from spikec.errors import InputDataError
from spikec.ir import Graph
from spikec.ir.connectivity import edge_matrix
from spikec.jsonable import plain
from spikec.trace import Trace


@dataclass
class LayerRow:
    """One population. Counts are totals over the batch; energy_j is this layer's share per inference
    (SOPs and input MACs arriving at it, its neuron updates, its outgoing spike messages)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    neurons: int
    start: int
    source: str | None = None
    spikes: int = 0
    spikes_neg: int = 0
    firing_rate: float = 0.0
    synapses: int = 0
    sops: int = 0
    input_macs: int = 0
    messages: int = 0
    updates_active: int = 0
    updates_inactive: int = 0
    ann_macs: int = 0
    energy_j: Band = field(default_factory=lambda: Band.point(0.0))
    resources: LayerResources | None = None

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("energy_j", "resources")}
        out["shape"] = list(self.shape)
        out["energy_j"] = list(self.energy_j.as_tuple())
        out["resources"] = None if self.resources is None else self.resources.to_dict()
        return out


@dataclass
class Estimate:
    """Result of `spikec.estimate` (see the module docstring for units)."""

    hardware: HardwareSpec
    energy_model: EnergyModel
    backend: str
    batch: int
    steps: int
    hardware_steps: int
    layers: list[LayerRow]
    edges: list[EdgeActivity]
    sops: float
    input_macs: float
    input_macs_per_step: float
    input_spikes: float
    spikes: float
    neuron_updates_active: float
    neuron_updates_inactive: float
    messages: float
    energy_parts_j: dict[str, Band]
    ann: AnnCounts
    ann_energy_j: dict[str, Band]
    cores: int
    chips: int
    cores_shared: int
    chips_shared: int
    feasible: bool
    notes: list[str] = field(default_factory=list)

    @property
    def energy_band(self) -> Band:
        total = Band.point(0.0)
        for band in self.energy_parts_j.values():
            total = total + band
        return total

    @property
    def energy_j(self) -> float:
        """Central energy per inference (J)."""
        return self.energy_band.central

    @property
    def energy_band_j(self) -> tuple[float, float]:
        """(low, high) energy per inference (J)."""
        return (self.energy_band.low, self.energy_band.high)

    def __str__(self) -> str:
        from spikec.analysis.report import summary

        return summary(self)

    def layer(self, name: str) -> LayerRow:
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)

    def to_dict(self) -> dict:
        out = {
            "hardware": self.hardware.to_dict(),
            "energy_model": self.energy_model.to_dict(),
            "units": "layers/edges: totals over the batch; everything else: per inference; energy in J",
        }
        for key in ("backend", "batch", "steps", "hardware_steps", "sops", "input_macs",
                    "input_macs_per_step", "input_spikes", "spikes", "neuron_updates_active",
                    "neuron_updates_inactive", "messages", "energy_j", "cores", "chips", "cores_shared",
                    "chips_shared", "feasible", "notes"):
            out[key] = getattr(self, key)
        out["energy_band_j"] = list(self.energy_band_j)
        out["energy_parts_j"] = {k: list(v.as_tuple()) for k, v in self.energy_parts_j.items()}
        out["ann"] = self.ann.to_dict()
        out["ann_energy_j"] = {k: list(v.as_tuple()) for k, v in self.ann_energy_j.items()}
        out["layers"] = [row.to_dict() for row in self.layers]
        out["edges"] = [dict(e.__dict__) for e in self.edges]
        return plain(out)

    def to_json(self, path=None, indent: int = 2) -> str:
        """The estimate as JSON text; also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        return text


def _layer_sources(graph: Graph) -> dict[str, str]:
    """{population: ANN module path} from the compiler's graph.meta["layers"], when present."""
    records = graph.meta.get("layers") if isinstance(graph.meta, dict) else None
    items = records.items() if isinstance(records, dict) else enumerate(records or [])
    out = {}
    for key, rec in items:
        if not isinstance(rec, dict) or "source" not in rec:
            continue
        name = rec.get("name", rec.get("layer", key))
        if isinstance(name, str):
            out[name] = str(rec["source"])
    return out


def estimate(graph: Graph, inputs, steps: int, hardware: str | HardwareSpec = "loihi2",
             energy_model: str | EnergyModel | None = None, backend: str = "torch", model=None,
             trace: Trace | None = None) -> Estimate:
    """Count the work of running `graph` on `inputs` for `steps` evaluated steps and price it.

    Runs the graph on `backend` with record=True (or uses `trace`, a run of these inputs recorded
    with record=True on any backend). `energy_model` defaults to the hardware's own set ("loihi1" /
    "loihi2"); also "horowitz-fp32", "horowitz-int32", "horowitz-int8" or an EnergyModel. `model`:
    the source torch ANN, for its MACs/ACs on the same input; without it the graph's equivalent ANN
    is counted. Raises UnsupportedError for unknown hardware / energy models, InputDataError for
    inputs or traces that do not fit the graph.
    """
    if not isinstance(graph, Graph):
        raise InputDataError(f"estimate needs a spikec Graph, got {type(graph).__name__}")
    spec = get_hardware(hardware)
    if energy_model is None:  # the hardware's own set; a user-built spec falls back to Loihi 1's
        energy_model = spec.name if spec.name in ("loihi1", "loihi2") else "loihi1"
    emodel = get_energy_model(energy_model)
    graph.validate()
    x = graph.check_inputs(inputs, steps)
    if trace is None:
        from spikec.backends import get

        trace = get(backend).run(graph, x, steps, record=True)
    elif trace.steps != steps:
        raise InputDataError(f"trace was recorded for {trace.steps} steps, estimate asked for {steps}")
    matrices = [edge_matrix(e, graph.node(e.src).shape) for e in graph.edges]
    pops, edges = count_activity(graph, x, trace, matrices)
    res = estimate_resources(graph, matrices, spec)
    messages = _messages(graph, pops, matrices, res)
    ann = ann_from_model(model, ann_input(graph, x)) if model is not None else \
        ann_from_graph(graph, matrices)
    return _assemble(graph, spec, emodel, trace, x.shape[0], pops, edges, res, messages, ann)


def _messages(graph: Graph, pops: dict[str, PopActivity], matrices, res: ResourceEstimate) -> dict[str, int]:
    """Spike packets sent per population: events x destination cores reached."""
    binaries = [binary(m) for m in matrices]
    return {p.name: 0 if pops[p.name].kind == "readout" else
            int(pops[p.name].events @ messages_per_neuron(graph, p.name, binaries, res.core_of))
            for p in graph.populations}


def _assemble(graph, spec, emodel, trace, batch, pops, edges, res, messages, ann) -> Estimate:
    sources = _layer_sources(graph)
    total = trace.hardware_steps
    rows = []
    for p in graph.populations:
        act = pops[p.name]
        running = total - act.start + 1
        spikes = act.spikes
        row = LayerRow(
            name=p.name, kind=act.kind, shape=tuple(p.shape), neurons=act.neurons, start=act.start,
            source=sources.get(p.name), spikes=spikes, spikes_neg=act.spikes_neg,
            firing_rate=spikes / (act.neurons * batch * running) if running > 0 else 0.0,
            synapses=sum(e.synapses for e in edges if e.dst == p.name),
            sops=act.sops_in, input_macs=act.input_macs_in, messages=messages[p.name],
            updates_active=act.updates_active, updates_inactive=act.updates_inactive,
            ann_macs=sum(e.synapses for e in edges if e.dst == p.name),
            resources=res.layers.get(p.name))
        row.energy_j = price(EnergyCounts(row.sops / batch, row.input_macs / batch,
                                          row.updates_active / batch, row.updates_inactive / batch,
                                          row.messages / batch), emodel).total
        rows.append(row)
    counts = EnergyCounts(
        sops=sum(e.sops for e in edges) / batch,
        input_macs=sum(e.input_macs for e in edges) / batch,
        updates_active=sum(r.updates_active for r in rows) / batch,
        updates_inactive=sum(r.updates_inactive for r in rows) / batch,
        messages=sum(r.messages for r in rows) / batch)
    ann_sets = [get_energy_model(n) for n in ANN_PRESETS]
    if emodel.mac is not None and emodel.name not in ANN_PRESETS:
        ann_sets.append(emodel)
    notes = [f"{r.name}: {n}" for r in rows if r.resources for n in r.resources.notes]
    if graph.input.encoding == "current":
        notes.append("current-encoded input: its work is reported as input MACs (every nonzero value x "
                     "fan-out, every step), not as SOPs; if the first layer's current is computed once and "
                     "injected as a bias instead, only input_macs_per_step of it is done")
    return Estimate(
        hardware=spec, energy_model=emodel, backend=trace.backend, batch=batch, steps=trace.steps,
        hardware_steps=total, layers=rows, edges=edges,
        sops=counts.sops, input_macs=counts.input_macs,
        input_macs_per_step=sum(e.input_macs_per_step for e in edges) / batch,
        input_spikes=pops[graph.input.name].spikes / batch,
        spikes=sum(r.spikes for r in rows if r.kind in ("if", "sigma_delta")) / batch,
        neuron_updates_active=counts.updates_active, neuron_updates_inactive=counts.updates_inactive,
        messages=counts.messages, energy_parts_j=price(counts, emodel).parts, ann=ann,
        ann_energy_j={m.name: price_ann(ann.macs, ann.acs, m) for m in ann_sets},
        cores=res.cores, chips=res.chips, cores_shared=res.cores_shared, chips_shared=res.chips_shared,
        feasible=res.feasible, notes=notes)
