"""The Lava backend (fixed_pt) equals the reference interpreter bit for bit.

Lava starts one OS process per Lava process and takes ~0.5-1 s per run, so the property test uses
few, small graphs; the hand-built graphs cover the stock-LIF and SpikecIF paths explicitly.
"""

from __future__ import annotations

import numpy as np
import pytest
from equivalence import assert_traces_equal
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs

import spikec
from spikec.backends.lava import backend as lava_backend
from spikec.backends.lava.plan import build_plan, weight_digits
from spikec.errors import BackendError
from spikec.ir import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout, SumPool2d, run_reference

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not lava_backend.is_available(),
                                                    reason=f"lava unavailable: {lava_backend.why_unavailable()}")]


def check(graph, x, steps, record_v=False, **options):
    ref = run_reference(graph, x, steps, record=True, record_v=record_v)
    got = spikec.run(graph, x, steps, backend="lava", record=True, record_v=record_v, **options)
    assert_traces_equal(got, ref, check_voltages=record_v)
    assert got.backend == "lava" and got.output.dtype == np.int64
    for name, spikes in got.spikes.items():
        assert spikes.dtype == np.int8 and spikes.shape == ref.spikes[name].shape
    return got, ref


def models(graph, x, steps, **options) -> dict[str, str]:
    plan = build_plan(graph, graph.check_inputs(x, steps), steps, **options)
    return {name: plan.layers[name].model for name in (p.name for p in graph.if_layers)}


def ints(seed, lo, hi, shape):
    return np.random.default_rng(seed).integers(lo, hi + 1, size=shape)


# --------------------------------------------------------------------------- property test


@settings(max_examples=18)
@given(case=graphs(max_layers=3), record_v=st.booleans())
def test_random_graphs_match_reference(case, record_v):
    graph, x, steps = case
    check(graph, x, steps, record_v=record_v)


# --------------------------------------------------------------------------- hand-built graphs


def mlp(encoding="current") -> Graph:
    """h1 fits stock LIF (zero reset, one theta, no bias); h2 needs SpikecIF (subtract, v_init)."""
    inp = Input("x", (10,), encoding=encoding, value_bits=4)
    h1 = IF("h1", (12,), theta=np.int64(6), reset="zero")
    h2 = IF("h2", (8,), theta=ints(1, 3, 8, (8,)), v_init=np.int64(2), bias=ints(2, -1, 1, (8,)))
    out = Readout("out", (3,), bias=np.array([1, 0, -1]))
    edges = [Edge("x", "h1", (Dense(ints(3, -3, 4, (12, 10))),)),
             Edge("h1", "h2", (Dense(ints(4, -4, 5, (8, 12))),)),
             Edge("h2", "out", (Dense(ints(5, -4, 4, (3, 8))),))]
    return Graph([inp, h1, h2, out], edges).validate()


def lenet_like(bias=1) -> Graph:
    inp = Input("x", (1, 10, 10), encoding="current", value_bits=4)
    c1 = IF("c1", (3, 8, 8), theta=np.int64(9), reset="zero", bias=np.array([0, bias, 0]))
    c2 = IF("c2", (4, 2, 2), theta=np.array([5, 6, 7, 8]), theta_neg=np.int64(6), gate="net")
    f1 = IF("f1", (6,), theta=np.int64(4), presim=2, bias_schedule=ints(6, -2, 2, (3, 6)))
    out = Readout("out", (3,), skip=2)
    edges = [Edge("x", "c1", (Conv2d(ints(7, -3, 3, (3, 1, 3, 3))),)),
             Edge("c1", "c2", (SumPool2d(2), Conv2d(ints(8, -3, 3, (4, 3, 3, 3)), stride=2, padding=1))),
             Edge("c2", "f1", (Flatten(), Dense(ints(9, -4, 4, (6, 16))))),
             Edge("f1", "out", (Dense(ints(10, -3, 3, (3, 6))),))]
    return Graph([inp, c1, c2, f1, out], edges).validate()


def residual_block(encoding="current") -> Graph:
    """x -> a -> b -> c plus a skip a -> c delayed by one step so that both paths meet."""
    inp = Input("x", (2, 5, 5), encoding=encoding, value_bits=4)
    a = IF("a", (3, 5, 5), theta=np.int64(5), reset="zero")
    b = IF("b", (3, 5, 5), theta=np.int64(6), theta_neg=np.int64(4), bias_schedule=ints(11, -1, 2, (2, 3)))
    c = IF("c", (3, 5, 5), theta=np.int64(7), state_bits=8, v_init=np.int64(3))
    out = Readout("out", (4,), bias=np.int64(1))
    conv = lambda seed, c_in: Conv2d(ints(seed, -2, 3, (3, c_in, 3, 3)), padding=1)  # noqa: E731
    edges = [Edge("x", "a", (conv(12, 2),)),
             Edge("a", "b", (conv(13, 3),)),
             Edge("b", "c", (conv(14, 3),)),
             Edge("a", "c", (Conv2d(ints(15, -2, 2, (3, 3, 1, 1))),), delay=1),
             Edge("c", "out", (SumPool2d(2), Flatten(), Dense(ints(16, -3, 3, (4, 12)))))]
    return Graph([inp, a, b, c, out], edges).validate()


@pytest.mark.parametrize("encoding", ["current", "spikes"])
def test_mlp_uses_stock_lif_where_exact(encoding):
    graph = mlp(encoding)
    x = ints(20, -7, 7, (3, 10)) if encoding == "current" else ints(20, 0, 1, (3, 4, 10))
    assert models(graph, x, 12) == {"h1": "lif", "h2": "if"}
    got, ref = check(graph, x, 12)
    assert sum(int(np.abs(s).sum()) for s in ref.spikes.values()) > 20   # not a silent network


def test_lenet_like_every_neuron_feature():
    graph = lenet_like()
    x = ints(21, -7, 7, (2, 1, 10, 10))
    # c1 has a bias: the stock LIF starts early with v_init - (start-1) * bias
    assert models(graph, x, 10) == {"c1": "lif", "c2": "if", "f1": "if"}
    check(graph, x, 10)
    check(graph, x, 10, record_v=True)   # voltages need SpikecIF everywhere


@pytest.mark.parametrize("encoding", ["current", "spikes"])
def test_residual_block_with_delay(encoding):
    graph = residual_block(encoding)
    x = ints(22, -7, 7, (2, 2, 5, 5)) if encoding == "current" else ints(22, 0, 1, (2, 6, 2, 5, 5))
    got, ref = check(graph, x, 8)
    assert ref.spikes["c"].any()


def test_custom_neurons_everywhere_and_batch_chunks():
    graph = mlp()
    x = ints(23, -7, 7, (5, 10))
    assert set(models(graph, x, 6, neurons="custom").values()) == {"if"}
    check(graph, x, 6, neurons="custom", batch_size=2)


def test_weights_beyond_eight_bits_are_exact():
    inp = Input("x", (6,), encoding="current", value_bits=5)
    h = IF("h", (4,), theta=np.int64(700))
    out = Readout("out", (2,))
    w = np.array([[300, -1000, 129, -129, 5, 0], [70000, -3, 256, -256, 127, -128],
                  [1, 2, 3, 4, 5, 6], [-200, 200, -77, 77, 0, 0]])
    edges = [Edge("x", "h", (Dense(w),)), Edge("h", "out", (Dense(np.eye(2, 4, dtype=int)),))]
    graph = Graph([inp, h, out], edges)
    check(graph.validate(), ints(24, -15, 15, (2, 6)), 5)


def test_weight_digits_reassemble():
    import scipy.sparse as sp

    m = sp.csr_matrix(ints(25, -70000, 70000, (5, 7)))
    total = sum(d.toarray().astype(np.int64) * 2.0 ** e for d, e in weight_digits(m))
    assert np.array_equal(total, m.toarray())
    for d, _ in weight_digits(m):
        assert d.data.min(initial=0) >= -256 and d.data.max(initial=0) <= 254 and not (d.data % 2).any()


def test_bad_options_are_typed_errors():
    graph = mlp()
    with pytest.raises(BackendError):
        spikec.run(graph, ints(1, -3, 3, (1, 10)), 3, backend="lava", batch_size=0)
    with pytest.raises(spikec.UnsupportedError):
        spikec.run(graph, ints(1, -3, 3, (1, 10)), 3, backend="lava", neurons="magic")


def test_a_failing_process_raises_instead_of_hanging(monkeypatch):
    """An exception inside a Lava process would stall every other process; spikec's models log it
    and keep stepping, and the backend raises BackendError with the traceback."""
    from spikec.backends.lava.procs import if_neuron

    original = if_neuron.PySpikecIFModel._step

    def broken(self, current, k):
        if k == 3:
            raise ZeroDivisionError("injected failure")
        return original(self, current, k)

    monkeypatch.setattr(if_neuron.PySpikecIFModel, "_step", broken)   # forked workers inherit it
    with pytest.raises(BackendError, match="injected failure"):
        spikec.run(mlp(), ints(1, -3, 3, (2, 10)), 5, backend="lava")
