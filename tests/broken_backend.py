"""A deliberately broken backend for verify tests: the reference with one spike flipped."""

import numpy as np

from spikec.ir.interpreter import run_reference

NAME = "broken"


def is_available():
    return True


def why_unavailable():
    return ""


def run(graph, inputs, steps, record=False, record_v=False):
    trace = run_reference(graph, inputs, steps, record=True, record_v=record_v)
    layer = graph.if_layers[-1].name
    spikes = trace.spikes[layer].copy()
    t = spikes.shape[0] - 2                    # flip sample 0, neuron 0 at the last-but-one step
    index = (t, 0) + (0,) * (spikes.ndim - 2)
    spikes[index] = 1 - spikes[index]
    trace.spikes[layer] = spikes
    if record_v:
        trace.voltages[layer] = trace.voltages[layer] + np.int64(1000)
    return trace
