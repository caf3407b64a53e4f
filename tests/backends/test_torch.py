"""The torch backend equals the reference interpreter bit for bit on random integer graphs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from equivalence import assert_traces_equal
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs

import spikec
from spikec.backends.torch import backend as torch_backend
from spikec.backends.torch import ops as torch_ops
from spikec.errors import BackendError, InputDataError
from spikec.ir import IF, Dense, Edge, Graph, Input, Readout, run_reference


def _both(case, **kwargs):
    graph, x, steps = case
    ref = run_reference(graph, x, steps, **kwargs)
    got = torch_backend.run(graph, x, steps, **kwargs)
    return got, ref


@settings(max_examples=150)
@given(graphs(max_layers=4))
def test_recorded_run_matches_reference(case):
    got, ref = _both(case, record=True, record_v=True)
    assert got.backend == "torch"
    assert_traces_equal(got, ref, check_voltages=True)
    for name, v in ref.voltages.items():
        assert got.voltages[name].dtype == np.int64 and got.voltages[name].shape == v.shape
    for name in ref.spikes:
        assert got.spikes[name].dtype == np.int8


@pytest.mark.slow
@settings(max_examples=150)
@given(graphs(max_layers=4))
def test_unrecorded_run_matches_reference(case):
    """Without recording the backend skips steps that cannot reach the readout."""
    got, ref = _both(case)
    assert got.spikes is None and got.voltages is None
    assert_traces_equal(got, ref)


def _small_readout(case, bits):
    """The same case with a narrow readout accumulator, so that it saturates."""
    graph, x, steps = case
    limit = 2 ** (bits - 1) - 1
    pops = [dataclasses.replace(p, state_bits=bits, bias=np.clip(p.bias, -limit, limit))
            if isinstance(p, Readout) else p for p in graph.populations]
    return Graph(pops, graph.edges).validate(), x, steps


@settings(max_examples=60)
@given(graphs(), st.sampled_from([2, 3, 4]), st.booleans())
def test_saturating_readout_matches_reference(case, bits, record):
    got, ref = _both(_small_readout(case, bits), record=record)
    assert_traces_equal(got, ref)


@settings(max_examples=40)
@given(graphs(), st.integers(1, 2))
def test_chunked_batch_matches_reference(case, chunk):
    graph, x, steps = case
    ref = run_reference(graph, x, steps, record=True, record_v=True)
    got = torch_backend.run(graph, x, steps, record=True, record_v=True, chunk=chunk)
    assert_traces_equal(got, ref, check_voltages=True)


@pytest.mark.parametrize("widest", [torch.float64, torch.int64])
def test_wider_dtypes_match_reference(monkeypatch, widest):
    """Force every computation into float64 (or int64), the dtypes chosen for large bounds."""
    limits = {dtype: limit for dtype, limit in torch_ops.EXACT_BELOW.items()
              if dtype in (widest, torch.int64)}
    monkeypatch.setattr(torch_ops, "EXACT_BELOW", limits)

    @settings(max_examples=30)
    @given(graphs())
    def check(case):
        got, ref = _both(case, record=True, record_v=True)
        assert_traces_equal(got, ref, check_voltages=True)

    check()


def test_dtype_follows_bound():
    cpu = torch.device("cpu")
    assert torch_ops.exact_dtype(2 ** 24 - 1, cpu, "e") == torch.float32
    assert torch_ops.exact_dtype(2 ** 24, cpu, "e") == torch.float64
    assert torch_ops.exact_dtype(2 ** 53, cpu, "e") == torch.int64
    with pytest.raises(spikec.OverflowRiskError):
        torch_ops.exact_dtype(2 ** 62, cpu, "e")


def _big_sum_graph(weight: int, fan_in: int) -> Graph:
    """One IF neuron fed by `fan_in` inputs through equal weights: sums reach weight*fan_in*max|x|."""
    inp = Input("x", (fan_in,), value_bits=9)
    layer = IF("l", (1,), theta=np.array(2 ** 40), state_bits=48)
    out = Readout("out", (1,), state_bits=60)
    return Graph([inp, layer, out], [Edge("x", "l", (Dense(np.full((1, fan_in), weight)),)),
                                     Edge("l", "out", (Dense(np.ones((1, 1), np.int64)),))]).validate()


def test_sums_beyond_float32_stay_exact():
    """Currents of ~2^30 need float64; an odd total shows any rounding to float32."""
    graph = _big_sum_graph(weight=2 ** 21 + 1, fan_in=3)
    x = np.array([[255, 255, 1]])
    ref = run_reference(graph, x, 2, record_v=True)   # 4 hardware steps, the IF runs 3 of them
    got = torch_backend.run(graph, x, 2, record_v=True)
    assert_traces_equal(got, ref, check_voltages=True)
    assert got.voltages["l"][-1, 0, 0] % 2 == 1


def _precisions():
    b = torch.backends
    return (b.mkldnn.conv.fp32_precision, b.mkldnn.matmul.fp32_precision, b.cudnn.conv.fp32_precision,
            b.cuda.matmul.fp32_precision, torch.get_float32_matmul_precision())


def test_precision_settings_forced_and_restored(monkeypatch):
    """A user's bf16 / TF32 choices are overridden inside a run and are back afterwards."""
    b = torch.backends
    before = _precisions()
    seen = []
    scan = torch_ops.if_scan
    monkeypatch.setattr(torch_ops, "if_scan", lambda *a, **k: seen.append(_precisions()) or scan(*a, **k))
    try:
        b.mkldnn.conv.fp32_precision = b.mkldnn.matmul.fp32_precision = "bf16"
        b.cudnn.conv.fp32_precision = b.cuda.matmul.fp32_precision = "tf32"
        torch.set_float32_matmul_precision("medium")
        user = _precisions()
        graph = _big_sum_graph(weight=2 ** 12 + 1, fan_in=8)   # float32-exact, not bf16-exact
        x = np.full((2, 8), 255)
        got = torch_backend.run(graph, x, 2, record_v=True)
        assert_traces_equal(got, run_reference(graph, x, 2, record_v=True), check_voltages=True)
        assert seen == [("ieee", "ieee", "ieee", "ieee", "highest")]
        assert _precisions() == user
    finally:
        (b.mkldnn.conv.fp32_precision, b.mkldnn.matmul.fp32_precision, b.cudnn.conv.fp32_precision,
         b.cuda.matmul.fp32_precision) = before[:4]
        torch.set_float32_matmul_precision(before[4])


# --------------------------------------------------------------------------- bad inputs


@pytest.fixture
def conv_graph():
    from spikec.ir import Conv2d, Flatten
    inp = Input("x", (1, 4, 4), value_bits=5)
    layer = IF("l", (2, 3, 3), theta=np.array(3))
    out = Readout("out", (2,))
    edges = [Edge("x", "l", (Conv2d(np.ones((2, 1, 2, 2), np.int64)),)),
             Edge("l", "out", (Flatten(), Dense(np.ones((2, 18), np.int64))))]
    return Graph([inp, layer, out], edges).validate()


def test_float_inputs_rejected(conv_graph):
    with pytest.raises(InputDataError, match="integer"):
        spikec.run(conv_graph, np.zeros((2, 1, 4, 4), np.float32), 4, backend="torch")


def test_float_tensor_inputs_rejected(conv_graph):
    with pytest.raises(InputDataError, match="integer"):
        spikec.run(conv_graph, torch.zeros(2, 1, 4, 4), 4, backend="torch")


@pytest.mark.parametrize("shape", [(2, 4, 4), (2, 1, 4, 5), (2, 1, 1, 4, 4), (0, 1, 4, 4)])
def test_wrong_shape_rejected(conv_graph, shape):
    with pytest.raises(InputDataError):
        spikec.run(conv_graph, np.zeros(shape, np.int64), 4, backend="torch")


def test_out_of_range_inputs_rejected(conv_graph):
    x = np.zeros((1, 1, 4, 4), np.int64)
    x[0, 0, 1, 1] = 16          # value_bits=5 allows |x| <= 15
    with pytest.raises(InputDataError, match="15"):
        spikec.run(conv_graph, x, 4, backend="torch")


@pytest.mark.parametrize("steps", [0, -1, 2.0])
def test_bad_steps_rejected(conv_graph, steps):
    with pytest.raises(InputDataError, match="steps"):
        spikec.run(conv_graph, np.zeros((1, 1, 4, 4), np.int64), steps, backend="torch")


def test_bad_chunk_rejected(conv_graph):
    with pytest.raises(BackendError, match="chunk"):
        spikec.run(conv_graph, np.zeros((1, 1, 4, 4), np.int64), 4, backend="torch", chunk=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_gpu_rejected(conv_graph):
    with pytest.raises(BackendError, match="CUDA"):
        spikec.run(conv_graph, np.zeros((1, 1, 4, 4), np.int64), 4, backend="torch", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@settings(max_examples=40)
@given(graphs(max_layers=4))
def test_cuda_matches_reference(case):
    graph, x, steps = case
    ref = run_reference(graph, x, steps, record=True, record_v=True)
    got = torch_backend.run(graph, x, steps, record=True, record_v=True, device="cuda")
    assert_traces_equal(got, ref, check_voltages=True)


def test_layer_starting_after_the_last_step():
    """A side branch whose edge delay puts its start beyond the run records no activity."""
    inp = Input("x", (2,), value_bits=3)
    pops = [inp, IF("l", (2,), theta=2), IF("late", (2,), theta=1), Readout("out", (1,))]
    edges = [Edge("x", "l", (Dense(np.eye(2, dtype=np.int64)),)),
             Edge("x", "late", (Dense(np.eye(2, dtype=np.int64)),), delay=20),
             Edge("l", "out", (Dense(np.ones((1, 2), np.int64)),))]
    graph = Graph(pops, edges).validate()
    x = np.array([[3, 1], [-1, 2]])
    got, ref = _both((graph, x, 3), record=True, record_v=True)
    assert_traces_equal(got, ref, check_voltages=True)
    assert got.spikes["late"].shape == (5, 2, 2) and not got.spikes["late"].any()
