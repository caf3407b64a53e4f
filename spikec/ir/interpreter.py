"""Reference interpreter: a literal, step-by-step implementation of the IR semantics.

This is the executable definition every backend is tested against (bit for bit). It favours
obviousness over speed: one hardware step at a time, every population, every edge. The neuron
step, the readout and the edges' synapse ops are the pure functions of `spikec.ir.dynamics`;
this module adds time (start steps, delays) and bookkeeping.
"""

from __future__ import annotations

import numpy as np

from spikec.ir import dynamics
from spikec.ir.graph import Graph, broadcast_param
from spikec.ir.nodes import IF, Input, Readout, SigmaDelta
from spikec.trace import Trace


def run_reference(graph: Graph, inputs, steps: int, record: bool = False,
                  record_v: bool = False, every_step: bool = False, count_spikes: bool = False) -> Trace:
    """Run `graph` on a batch of integer inputs for `steps` evaluated readout steps.

    every_step: also return the readout after each evaluated step (Trace.outputs);
    count_spikes: also return each layer's total events (Trace.spike_counts): |spikes| of an IF
    layer, nonzero graded messages of a SigmaDelta layer.
    record: Trace.spikes holds what each layer emitted at every hardware step (int8 spikes, int64
    graded messages)."""
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
    params = {p.name: dynamics.if_params(p, batch) for p in graph.populations if isinstance(p, IF)}
    states = {name: dynamics.initial_state(prm) for name, prm in params.items()}
    sd_params = {p.name: dynamics.sigma_delta_params(p, batch) for p in graph.sigma_delta_layers}
    states.update({name: dynamics.sigma_delta_initial(prm) for name, prm in sd_params.items()})
    volts: dict[str, list[np.ndarray]] = {name: [] for name in params}
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
                total_in += dynamics.edge_current(e, history[e.src][src_t])
        return total_in

    for t in range(1, total + 1):
        for name in graph.topo_order():
            node = graph.nodes[name]
            if isinstance(node, Input):
                if inp.encoding == "current":
                    emitted = x
                elif inp.encoding == "delta":
                    emitted = x if t == 1 else zeros[name]
                else:
                    emitted = x[:, t - 1] if t <= x.shape[1] else zeros[name]
            elif isinstance(node, IF):
                k = t - starts[name] + 1
                emitted = zeros[name]
                if k >= 1:
                    states[name], emitted = dynamics.if_step(params[name], states[name], current(name, t), k)
                counts[name] += int(np.abs(emitted).sum())
                if record_v:
                    volts[name].append(states[name].v.copy())
            elif isinstance(node, SigmaDelta):
                emitted = zeros[name]
                if t >= starts[name]:
                    states[name], emitted = dynamics.sigma_delta_step(sd_params[name], states[name], current(name, t))
                counts[name] += int(np.count_nonzero(emitted))
            else:
                k = t - starts[name] + 1
                if readout.skip < k <= readout.skip + steps:
                    evaluated = k - readout.skip
                    bias = out_bias if not readout.bias_steps or evaluated <= readout.bias_steps else 0
                    acc, hits = dynamics.readout_step(acc, current(name, t), bias, acc_limit)
                    acc_sat += hits
                    outputs.append(acc.copy())
                emitted = zeros[name]
            history[name].append(emitted)
    saturations = {name: st.saturations for name, st in states.items()}
    saturations[readout.name] = acc_sat
    spikes = None
    if record:
        spikes = {name: np.stack(history[name][1:]).astype(np.int8 if name in params else np.int64)
                  for name in states}
    voltages = {name: np.stack(v) for name, v in volts.items()} if record_v else None
    return Trace(output=acc, steps=steps, latency=graph.latency, spikes=spikes,
                 saturations=saturations, voltages=voltages, backend="reference",
                 outputs=np.stack(outputs) if every_step else None,
                 spike_counts=counts if count_spikes else None)
