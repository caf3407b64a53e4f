"""Reference interpreter: a literal, step-by-step implementation of the IR semantics.

This is the executable definition every backend is tested against (bit for bit). It favours
obviousness over speed: one hardware step at a time, every population, every edge.
"""

from __future__ import annotations

import numpy as np

from spikec.ir.graph import Graph, broadcast_param
from spikec.ir.nodes import IF, Input, Readout
from spikec.ir.ops_numpy import apply_ops
from spikec.trace import Trace


class _IFState:
    def __init__(self, layer: IF, batch: int):
        shape = (batch,) + layer.shape
        full = lambda a: np.broadcast_to(broadcast_param(a, layer.shape), shape).astype(np.int64)  # noqa: E731
        self.layer = layer
        self.theta = full(layer.theta)
        self.v_init = full(layer.v_init)
        self.bias = full(layer.bias)
        self.theta_neg = None if layer.theta_neg is None else full(layer.theta_neg)
        self.schedule = None if layer.bias_schedule is None else [
            full(b) for b in layer.bias_schedule]
        self.v = self.v_init.copy()
        self.mask = np.ones(shape, np.int64)
        self.net = np.zeros(shape, np.int64)
        self.limit = 2 ** (layer.state_bits - 1) - 1
        self.saturations = 0

    def step(self, current: np.ndarray, k: int) -> np.ndarray:
        """One local step k >= 1; returns the emitted spikes (int64 in {-1, 0, 1})."""
        layer = self.layer
        v = self.v + current + self.bias
        if self.schedule is not None and k <= len(self.schedule):
            v = v + self.schedule[k - 1]
        clipped = np.clip(v, -self.limit, self.limit)
        self.saturations += int(np.count_nonzero(clipped != v))
        v = clipped
        pos = v >= self.theta
        neg = np.zeros_like(pos)
        if self.theta_neg is not None:
            neg = (v <= -self.theta_neg) & ~pos
            if layer.gate == "net":
                neg &= self.net > 0
        s = pos.astype(np.int64) - neg.astype(np.int64)
        if layer.reset == "subtract":
            v = v - np.where(pos, self.theta, 0)
            if self.theta_neg is not None:
                v = v + np.where(neg, self.theta_neg, 0)
        else:
            v = np.where(s != 0, 0, v)
        out = s * self.mask
        self.net = self.net + out
        if layer.presim and k == layer.presim:
            self.mask = (v > 0).astype(np.int64)
            v = self.v_init.copy()
            self.net = np.zeros_like(self.net)
        self.v = v
        return out


def run_reference(graph: Graph, inputs, steps: int, record: bool = False,
                  record_v: bool = False, every_step: bool = False, count_spikes: bool = False) -> Trace:
    """Run `graph` on a batch of integer inputs for `steps` evaluated readout steps.

    every_step: also return the readout after each evaluated step (Trace.outputs);
    count_spikes: also return each IF layer's total |spikes| (Trace.spike_counts)."""
    graph.validate()
    x = graph.check_inputs(inputs, steps)
    batch = x.shape[0]
    starts = graph.start_steps()
    total = graph.hardware_steps(steps)
    readout: Readout = graph.readout
    inp: Input = graph.input
    # history[name][t] = what population `name` emitted at hardware step t (t = 1..total)
    history: dict[str, list[np.ndarray]] = {
        p.name: [np.zeros((batch,) + p.shape, np.int64)] for p in graph.populations}
    states = {p.name: _IFState(p, batch) for p in graph.populations if isinstance(p, IF)}
    volts: dict[str, list[np.ndarray]] = {name: [] for name in states}
    acc = np.zeros((batch,) + readout.shape, np.int64)
    acc_limit = 2 ** (readout.state_bits - 1) - 1
    acc_sat = 0
    outputs: list[np.ndarray] = []
    counts = {name: 0 for name in states}
    out_bias = broadcast_param(readout.bias, readout.shape)
    zeros = {p.name: np.zeros((batch,) + p.shape, np.int64) for p in graph.populations}

    def current(name: str, t: int) -> np.ndarray:
        total_in = zeros[name].copy()
        for e in graph.in_edges(name):
            src_t = t - 1 - e.delay
            if src_t >= 1:
                total_in += apply_ops(e.ops, history[e.src][src_t]) * 2 ** e.weight_exp
        return total_in

    for t in range(1, total + 1):
        for name in graph.topo_order():
            node = graph.nodes[name]
            if isinstance(node, Input):
                if inp.encoding == "current":
                    emitted = x
                else:
                    emitted = x[:, t - 1] if t <= x.shape[1] else zeros[name]
            elif isinstance(node, IF):
                k = t - starts[name] + 1
                emitted = states[name].step(current(name, t), k) if k >= 1 else zeros[name]
                counts[name] += int(np.abs(emitted).sum())
                if record_v:
                    volts[name].append(states[name].v.copy())
            else:
                k = t - starts[name] + 1
                if readout.skip < k <= readout.skip + steps:
                    summed = acc + current(name, t) + out_bias
                    acc = np.clip(summed, -acc_limit, acc_limit)
                    acc_sat += int(np.count_nonzero(acc != summed))
                    outputs.append(acc.copy())
                emitted = zeros[name]
            history[name].append(emitted)
    saturations = {name: st.saturations for name, st in states.items()}
    saturations[readout.name] = acc_sat
    spikes = None
    if record:
        spikes = {name: np.stack(history[name][1:]).astype(np.int8) for name in states}
    voltages = {name: np.stack(v) for name, v in volts.items()} if record_v else None
    return Trace(output=acc, steps=steps, latency=graph.latency, spikes=spikes,
                 saturations=saturations, voltages=voltages, backend="reference",
                 outputs=np.stack(outputs) if every_step else None,
                 spike_counts=counts if count_spikes else None)
