"""Bit-for-bit comparison of two Traces, with a message naming the first difference."""

from __future__ import annotations

import numpy as np


def first_difference(a: np.ndarray, b: np.ndarray):
    """Index tuple of the first element (in row-major order) where a and b differ, or None."""
    diff = np.argwhere(np.asarray(a) != np.asarray(b))
    return None if diff.size == 0 else tuple(int(i) for i in diff[0])


def assert_traces_equal(got, ref, check_voltages: bool = False) -> None:
    """Fail unless `got` equals `ref` exactly: readout, latency, saturations and recorded spikes."""
    assert got.latency == ref.latency, f"latency {got.latency} != {ref.latency}"
    assert got.output.shape == ref.output.shape, f"output shape {got.output.shape} != {ref.output.shape}"
    where = first_difference(got.output, ref.output)
    assert where is None, f"readout differs at {where}: {got.output[where]} != {ref.output[where]}"
    if ref.spikes is not None:
        assert got.spikes is not None and set(got.spikes) == set(ref.spikes)
        for name, spikes in ref.spikes.items():
            assert got.spikes[name].shape == spikes.shape, f"{name}: shape {got.spikes[name].shape} != {spikes.shape}"
            where = first_difference(got.spikes[name], spikes)
            assert where is None, (f"{name}: spikes differ first at step {where[0] + 1}, sample {where[1]}, "
                                   f"neuron {where[2:]}: {got.spikes[name][where]} != {spikes[where]}")
    assert got.saturations == ref.saturations, f"saturations {got.saturations} != {ref.saturations}"
    if check_voltages and ref.voltages is not None:
        for name, v in ref.voltages.items():
            where = first_difference(got.voltages[name], v)
            assert where is None, f"{name}: v differs at {where}: {got.voltages[name][where]} != {v[where]}"
