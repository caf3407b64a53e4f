"""Sigma-delta layers: the IR step, torch == reference on random graphs, save/load, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
from equivalence import assert_traces_equal
from hypothesis import given, settings
from strategies import graphs

import spikec
from spikec.backends.torch import backend as torch_backend
from spikec.errors import FormatError, GraphError, UnsupportedError
from spikec.ir import Dense, Edge, Graph, Input, Readout, run_reference
from spikec.ir.dynamics import sigma_delta_initial, sigma_delta_params, sigma_delta_step
from spikec.ir.graded import sigma_delta_bounds
from spikec.ir.graph import graphs_equal
from spikec.ir.nodes import SigmaDelta


def _chain(bias=(1, -2, 3, 0), shift=2, vth=0, exp=-1, encoding="delta", bias_steps=1):
    return Graph((Input("x", (3,), encoding), SigmaDelta("h", (4,), bias=np.array(bias), shift=shift, vth=vth),
                  Readout("out", (4,), bias=np.array(5), bias_steps=bias_steps)),
                 (Edge("x", "h", (Dense(np.arange(12).reshape(4, 3) - 5),), weight_exp=exp),
                  Edge("h", "out", (Dense(np.eye(4, dtype=np.int64)),)))).validate()


def test_step_by_hand():
    """One delta-encoded input: the layer sends floor(max(floor(Wx / 2) + bias, 0) / 4) once."""
    x = np.array([[10, -20, 30]])           # W x = [-60, 0, 60, 120]; floor(/2) = [-30, 0, 30, 60]
    trace = run_reference(_chain(), x, 3, record=True, every_step=True, count_spikes=True)
    sent = trace.spikes["h"][:, 0]
    assert sent[1].tolist() == [0, 0, 8, 15] and not sent[2:].any() and not sent[0].any()
    assert trace.outputs[:, 0].tolist() == [[5, 5, 13, 20]] * 3   # bias added at the first step only
    assert trace.spike_counts == {"h": 2}                          # nonzero messages, not their sum


def test_threshold_keeps_a_residue():
    """Changes below vth wait in the residue until they add up."""
    prm = sigma_delta_params(SigmaDelta("h", (1,), vth=5))
    state = sigma_delta_initial(prm)
    sent = []
    for current in (3, 1, 2, -9):
        state, out = sigma_delta_step(prm, state, np.array([current]))
        sent.append(int(out[0]))
    assert sent == [0, 0, 6, -6] and int(state.residue[0]) == 0


def test_readout_bias_every_step_without_bias_steps():
    x = np.array([[0, 0, 0]])
    once = run_reference(_chain(bias_steps=1), x, 3).output
    every = run_reference(_chain(bias_steps=0), x, 3).output
    assert (every - once == 10).all()


@settings(max_examples=120, deadline=None)
@given(graphs(max_layers=4, sigma_delta=True))
def test_torch_matches_reference_on_mixed_graphs(case):
    graph, x, steps = case
    ref = run_reference(graph, x, steps, record=True, count_spikes=True, every_step=True)
    got = torch_backend.run(graph, x, steps, record=True, count_spikes=True, every_step=True)
    assert_traces_equal(got, ref)
    assert got.spike_counts == ref.spike_counts
    assert np.array_equal(got.outputs, ref.outputs)


@settings(max_examples=60, deadline=None)
@given(graphs(max_layers=4, sigma_delta=True))
def test_emit_bounds_hold(case):
    graph, x, steps = case
    trace = run_reference(graph, x, steps, record=True)
    bounds = sigma_delta_bounds(graph, graph.hardware_steps(steps), x)
    for layer in graph.sigma_delta_layers:
        assert np.abs(trace.spikes[layer.name]).max(initial=0) <= bounds[layer.name].emit


@settings(max_examples=40, deadline=None)
@given(graphs(max_layers=3, sigma_delta=True))
def test_save_load_round_trip(tmp_path_factory, case):
    graph = case[0]
    path = tmp_path_factory.mktemp("sd") / "g.h5"
    spikec.save(graph, path)
    assert graphs_equal(spikec.load(path), graph)


def test_version_3_file_cannot_hold_sigma_delta(tmp_path):
    import h5py

    path = tmp_path / "g.h5"
    spikec.save(_chain(), path)
    with h5py.File(path, "r+") as f:
        f.attrs["version"] = 3
    with pytest.raises(FormatError, match="needs format version 4"):
        spikec.load(path)


@pytest.mark.parametrize("field, value, message", [
    ("shift", -1, "shift"), ("shift", 31, "shift"), ("vth", -1, "vth")])
def test_bad_parameters_are_named(field, value, message):
    kwargs = {"shift": 2, "vth": 0, field: value}
    with pytest.raises(GraphError, match=message):
        _chain(shift=kwargs["shift"], vth=kwargs["vth"])


def test_negative_exponent_only_into_sigma_delta():
    from spikec.ir import IF

    g = Graph((Input("x", (3,)), IF("h", (4,), theta=np.array(2)), Readout("out", (4,))),
              (Edge("x", "h", (Dense(np.ones((4, 3), np.int64)),), weight_exp=-1),
               Edge("h", "out", (Dense(np.eye(4, dtype=np.int64)),))))
    with pytest.raises(GraphError, match="negative exponents only into SigmaDelta"):
        g.validate()


def test_spiking_only_backends_refuse_graded_graphs(tmp_path):
    graph = _chain()
    with pytest.raises(UnsupportedError, match="Brian2 backend runs integrate-and-fire graphs only"):
        spikec.run(graph, np.zeros((1, 3), np.int64), 2, backend="brian2")
    for fmt in ("netx", "nir"):
        with pytest.raises(UnsupportedError, match="SigmaDelta layer h"):
            spikec.export(graph, tmp_path / f"g.{fmt}", format=fmt)
    assert not list(tmp_path.iterdir())


def test_verify_skips_backends_that_run_spikes_only():
    graph = _chain()
    report = spikec.verify(graph, np.array([[3, -2, 5]]), 3, backends=("torch", "brian2"))
    assert report.equal and report.backends == ["torch"]
    assert "integrate-and-fire graphs only" in report.skipped["brian2"]
    assert "skipped brian2" in str(report)
