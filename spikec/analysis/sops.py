"""Event counts from a recorded run: spikes, synaptic operations, input MACs, neuron updates.

Definitions (docs/estimate.md has the full text):
- a synaptic operation (SOP) is one spike arriving at one synapse: a spike of neuron i drives the
  nonzero entries of column i of every out-edge's `edge_matrix`, so padding borders, strides,
  groups, pooling and zero weights are exact; a -1 spike counts like a +1 spike;
- every spike emitted in hardware steps 1..T+latency is counted (the hardware processes a spike
  when it is sent, even if its delayed arrival falls after the last evaluated step);
- a `current`-encoded input is no spike: each step, every nonzero input value times its fan-out is
  an input MAC (a graded value into a synapse), reported apart from SOPs;
- every placed neuron (IF and Readout) is updated every hardware step; an update is *active* when
  the neuron receives at least one synaptic event or input MAC, has a nonzero bias term in that
  local step, or fires; otherwise *inactive*.
Counts here are integer totals over the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from spikec.analysis.resources import binary
from spikec.errors import InputDataError
from spikec.ir import IF, Graph, Input, Readout, broadcast_param
from spikec.ir.nodes import SigmaDelta
from spikec.trace import Trace


@dataclass
class EdgeActivity:
    src: str
    dst: str
    synapses: int              # nnz of the edge matrix
    sops: int = 0              # spike events x fan-out (0 for a current-encoded source)
    input_macs: int = 0        # nonzero graded values x fan-out, all steps (current source only)
    input_macs_per_step: int = 0


@dataclass
class PopActivity:
    name: str
    kind: str                  # "input", "if", "sigma_delta", "readout"
    neurons: int
    start: int                 # hardware step of local step 1
    spikes: int = 0            # |s| summed (for a current input: 0; sigma-delta: nonzero messages)
    spikes_neg: int = 0
    sops_in: int = 0
    input_macs_in: int = 0
    updates_active: int = 0
    updates_inactive: int = 0
    #: per neuron (flat), events sent over the run: |spikes|, or nonzero graded values x steps
    events: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)


def fanout(matrix: sp.spmatrix) -> np.ndarray:
    """Synapses driven by each source neuron: nonzero entries per column."""
    return np.diff(sp.csc_matrix(matrix).indptr).astype(np.int64)


def _check_trace(graph: Graph, trace: Trace, batch: int, total: int) -> None:
    if trace.spikes is None:
        raise InputDataError("estimate needs a trace recorded with record=True (trace.spikes is None)")
    for layer in graph.neuron_layers:
        arr = trace.spikes.get(layer.name)
        want = (total, batch) + tuple(layer.shape)
        if arr is None or tuple(np.shape(arr)) != want:
            got = None if arr is None else tuple(np.shape(arr))
            raise InputDataError(f"trace.spikes[{layer.name!r}] has shape {got}, expected {want} "
                                 "(hardware_steps, batch, *shape) for these inputs and steps")


class _Emissions:
    """What each population emits at hardware step t, as |value| > 0 flags [B, n]."""

    def __init__(self, graph: Graph, x: np.ndarray, trace: Trace, total: int):
        self.graph, self.x, self.total = graph, x, total
        self.batch = x.shape[0]
        self.spikes = {name: np.asarray(s) for name, s in trace.spikes.items()}
        inp = graph.input
        self.current = inp.encoding == "current"
        self.delta = inp.encoding == "delta"     # graded values once, at step 1
        self.input_flat = x.reshape(self.batch, -1) != 0 if self.current or self.delta else None

    def at(self, name: str, t: int) -> np.ndarray | None:
        b = self.batch
        if name == self.graph.input.name:
            if self.current or self.delta:
                return self.input_flat if self.current or t == 1 else None
            return self.x[:, t - 1].reshape(b, -1) != 0 if t <= self.x.shape[1] else None
        return self.spikes[name][t - 1].reshape(b, -1) != 0

    def events(self, name: str) -> np.ndarray:
        """Per-neuron events over the whole run (flat, int64)."""
        if name == self.graph.input.name:
            if self.current or self.delta:
                return self.input_flat.sum(axis=0).astype(np.int64) * (self.total if self.current else 1)
            shown = self.x[:, : self.total]
            return np.abs(shown).reshape(shown.shape[0] * shown.shape[1], -1).sum(axis=0).astype(np.int64)
        s = self.spikes[name]
        flat = s.reshape(s.shape[0] * s.shape[1], -1)
        if isinstance(self.graph.nodes[name], SigmaDelta):   # a graded message is one event
            return np.count_nonzero(flat, axis=0).astype(np.int64)
        return np.abs(flat.astype(np.int64)).sum(axis=0)


def count_activity(graph: Graph, x: np.ndarray, trace: Trace,
                   matrices: list[sp.csr_matrix]) -> tuple[dict[str, PopActivity], list[EdgeActivity]]:
    """Spikes, SOPs, input MACs and neuron updates of one recorded run (totals over the batch)."""
    total = trace.hardware_steps
    batch = x.shape[0]
    _check_trace(graph, trace, batch, total)
    emit = _Emissions(graph, x, trace, total)
    starts = graph.start_steps()
    pops: dict[str, PopActivity] = {}
    for p in graph.populations:
        kind = ("input" if isinstance(p, Input) else "if" if isinstance(p, IF)
                else "sigma_delta" if isinstance(p, SigmaDelta) else "readout")
        act = PopActivity(p.name, kind, int(np.prod(p.shape)), starts[p.name])
        if kind != "readout":
            act.events = emit.events(p.name)
        if kind == "if":
            s = np.asarray(trace.spikes[p.name])
            act.spikes = int(np.abs(s.astype(np.int64)).sum())
            act.spikes_neg = int(np.count_nonzero(s < 0))
        elif kind == "sigma_delta" or (kind == "input" and not emit.current and not emit.delta):
            act.spikes = int(act.events.sum())
        pops[p.name] = act
    edges = []
    for e, m in zip(graph.edges, matrices):
        row = EdgeActivity(e.src, e.dst, int(m.nnz))
        fan = fanout(m)
        if e.src == graph.input.name and (emit.current or emit.delta):
            row.input_macs_per_step = int(emit.input_flat.sum(axis=0).astype(np.int64) @ fan)
            row.input_macs = row.input_macs_per_step * (total if emit.current else 1)
            pops[e.dst].input_macs_in += row.input_macs
        else:
            row.sops = int(pops[e.src].events @ fan)
            pops[e.dst].sops_in += row.sops
        edges.append(row)
    _count_updates(graph, emit, matrices, pops, trace.steps)
    return pops, edges


def _bias_flags(pop, k: int, steps: int) -> np.ndarray | bool:
    """Per-neuron 'nonzero bias term at local step k' (flat), or a scalar."""
    if isinstance(pop, Readout):
        if not pop.skip < k <= pop.skip + steps:
            return False
        return broadcast_param(pop.bias, pop.shape).reshape(-1) != 0
    bias = broadcast_param(pop.bias, pop.shape).reshape(-1)
    if isinstance(pop, SigmaDelta):     # its bias changes nothing after the first step
        return bias != 0 if k == 1 else False
    if pop.bias_schedule is not None and k <= len(pop.bias_schedule):
        bias = bias + broadcast_param(pop.bias_schedule[k - 1], pop.shape).reshape(-1)
    return bias != 0


def _count_updates(graph: Graph, emit: _Emissions, matrices, pops, steps: int) -> None:
    binaries = [binary(m) for m in matrices]
    batch = emit.batch
    for p in graph.populations:
        if isinstance(p, Input):
            continue
        act = pops[p.name]
        in_edges = [(e, binaries[i]) for i, e in enumerate(graph.edges) if e.dst == p.name]
        active_total = 0
        for t in range(1, emit.total + 1):
            k = t - act.start + 1
            if k < 1:
                continue
            flags = np.zeros((batch, act.neurons), bool)
            for e, mat in in_edges:
                src_t = t - 1 - e.delay
                if src_t < 1:
                    continue
                src = emit.at(e.src, src_t)
                if src is not None and src.any():
                    flags |= (mat @ src.T.astype(np.int32)).T > 0
            flags |= _bias_flags(p, k, steps)
            if isinstance(p, (IF, SigmaDelta)):
                flags |= emit.at(p.name, t)
            active_total += int(flags.sum())
        act.updates_active = active_total
        act.updates_inactive = act.neurons * batch * emit.total - active_total
