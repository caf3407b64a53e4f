"""One run to T reads out every shorter run: Trace.outputs[t-1] == run(..., steps=t).output, and
the torch backend's every-step readout and spike counts equal the reference interpreter's."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from strategies import graphs

from spikec.backends.torch import backend as torch_backend
from spikec.ir import run_reference


@settings(max_examples=60)
@given(graphs(max_layers=3))
def test_every_step_readout_is_each_shorter_run(case):
    graph, x, steps = case
    ref = run_reference(graph, x, steps, every_step=True, count_spikes=True)
    assert ref.outputs.shape == (steps,) + ref.output.shape
    for t in range(1, steps + 1):
        assert np.array_equal(ref.outputs[t - 1], run_reference(graph, x, t).output), f"T={t}"
    got = torch_backend.run(graph, x, steps, every_step=True, count_spikes=True)
    assert np.array_equal(got.outputs, ref.outputs)
    assert np.array_equal(got.output, ref.output)
    assert got.spike_counts == ref.spike_counts
    recorded = run_reference(graph, x, steps, record=True)
    assert ref.spike_counts == {name: int(np.abs(s.astype(np.int64)).sum()) for name, s in recorded.spikes.items()}


@settings(max_examples=20)
@given(graphs(max_layers=2), )
def test_every_step_survives_chunking(case):
    graph, x, steps = case
    whole = torch_backend.run(graph, x, steps, every_step=True, count_spikes=True)
    parts = torch_backend.run(graph, x, steps, every_step=True, count_spikes=True, chunk=1)
    assert np.array_equal(whole.outputs, parts.outputs)
    assert whole.spike_counts == parts.spike_counts
