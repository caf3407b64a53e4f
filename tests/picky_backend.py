"""A backend that is wrong only on some inputs: the reference, with one spike flipped in every
sample whose integer input sums to a multiple of 5 (so a data-set check must find the first one)."""

import numpy as np

from spikec.ir.interpreter import run_reference

NAME = "picky"


def is_available():
    return True


def why_unavailable():
    return ""


def bad_samples(inputs) -> np.ndarray:
    x = np.asarray(inputs)
    return np.flatnonzero(x.reshape(len(x), -1).sum(axis=1) % 5 == 0)


def run(graph, inputs, steps, record=False, record_v=False):
    trace = run_reference(graph, inputs, steps, record=True, record_v=record_v)
    layer = graph.if_layers[-1].name
    spikes = trace.spikes[layer].copy()
    for sample in bad_samples(inputs):
        index = (spikes.shape[0] - 2, sample) + (0,) * (spikes.ndim - 2)
        spikes[index] = 1 - spikes[index]
    trace.spikes[layer] = spikes
    return trace
