"""The int64 proof (spikec.ir.overflow): graphs that could leave int64 are refused before any run.

The exact-arithmetic test simulates with Python integers (which never wrap) and shows that a
graph `validate` accepts gives exactly those results on the reference and torch backends, and
that a graph whose values really do leave int64 is refused.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spikec
from spikec.backends import available
from spikec.errors import InputDataError, OverflowRiskError
from spikec.ir import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout, SumPool2d
from spikec.ir.overflow import SAFE, edge_bounds, op_gain, prove

INT64_MIN = np.iinfo(np.int64).min


def readout_graph(weight, encoding="spikes", state_bits=62, bias=0, value_bits=8, n_in=1) -> Graph:
    """Input -> Readout through one Dense row of `weight`s (not validated)."""
    return Graph([Input("x", (n_in,), encoding=encoding, value_bits=value_bits),
                  Readout("out", (1,), bias=np.array(bias), state_bits=state_bits)],
                 [Edge("x", "out", (Dense(np.full((1, n_in), weight, np.int64)),))])


def test_gain_is_exact_at_the_extremes():
    assert op_gain(Dense(np.array([[INT64_MIN]]))) == 2 ** 63          # np.abs would give -2^63
    assert op_gain(Dense(np.array([[INT64_MIN, INT64_MIN, -1]]))) == 2 ** 64 + 1   # int64 sums would wrap
    assert op_gain(Dense(np.array([[3, -4], [-7, 1]]))) == 8
    assert op_gain(Conv2d(np.full((2, 1, 3, 3), -5, np.int64))) == 45
    assert op_gain(SumPool2d(3)) == 9 and op_gain(Flatten()) == 1
    # a zero op ends the current, but the sums before it were still formed
    edge = Edge("a", "b", (Dense(np.full((2, 2), 2 ** 40)), Dense(np.zeros((1, 2), np.int64))), weight_exp=2)
    assert edge_bounds(edge, 3) == (0, 3 * 2 ** 41 * 4)


def test_the_boundary_is_2_to_the_62():
    """Readout with state_bits 62: accumulator (2^61 - 1) + weight must stay below 2^62."""
    readout_graph(2 ** 61).validate()
    with pytest.raises(OverflowRiskError, match=r"^out: accumulator"):
        readout_graph(2 ** 61 + 1).validate()
    with pytest.raises(OverflowRiskError, match="out"):
        readout_graph(2 ** 61, bias=1).validate()
    readout_graph(2 ** 61 - 1, bias=1).validate()


def test_the_issue_case_is_refused_on_every_backend():
    """Dense weights of 2^62 gave -2^63 on torch and 0 on the reference; now every backend refuses
    before running (the backends that are not installed here are skipped)."""
    graph = readout_graph(2 ** 62, encoding="current", n_in=2)
    x = np.array([[1, 1]])
    for backend in available():
        with pytest.raises(OverflowRiskError, match=r"out: edge x->out"):
            spikec.run(graph, x, 2, backend=backend)
    with pytest.raises(OverflowRiskError):
        spikec.save(graph, "/nonexistent/never-written.h5")


def test_membrane_bound_names_the_layer_and_depends_on_steps():
    """A state_bits-62 layer whose 2^61 threshold plus drive fits for 3 steps but not for ever."""
    layer = IF("h", (1,), theta=np.array(2 ** 61 - 1), state_bits=62)
    graph = Graph([Input("x", (1,), encoding="spikes"), layer, Readout("out", (1,))],
                  [Edge("x", "h", (Dense(np.array([[2 ** 40]])),)),
                   Edge("h", "out", (Dense(np.ones((1, 1), np.int64)),))])
    with pytest.raises(OverflowRiskError, match=r"^h: membrane .* in any run"):
        graph.validate()
    prove(graph, steps=3)
    with pytest.raises(OverflowRiskError, match=r"^h: membrane .* in a run of 4000000 steps"):
        prove(graph, steps=4_000_000)


def test_current_input_range_counts():
    """A current input of value_bits 32 multiplies the weights by 2^31 - 1 (here to 1.5 * 2^62);
    the actual data can tighten the bound."""
    graph = readout_graph(3 * 2 ** 30, encoding="current", value_bits=32, state_bits=24)
    with pytest.raises(OverflowRiskError, match="edge x->out"):
        graph.validate()
    prove(readout_graph(3 * 2 ** 30, encoding="current", value_bits=32, state_bits=24), x=np.array([[5]]))


def test_bad_inputs_are_refused():
    graph = readout_graph(1, encoding="current", n_in=2).validate()
    bad = [np.array([[np.nan, 0]]), np.array([[np.inf, 0]]), np.array([[0.5, 0]]), np.array([[1.0, 0]]),
           np.array([[INT64_MIN, 0]]), np.array([[2 ** 63, 0]], np.uint64), np.array([[128, 0]]),
           np.array([[0, -128]]), np.array([[True, False]]), np.array([[1, 2 ** 70]], dtype=object),
           np.array([[1 + 0j, 0]])]
    for x in bad:
        for backend in ("reference", "torch"):
            with pytest.raises(InputDataError):
                spikec.run(graph, x, 2, backend=backend)
    for steps in (0, -1, True, 1.0, 2 ** 0.5):
        with pytest.raises(InputDataError, match="steps"):
            graph.check_inputs(np.array([[1, 1]]), steps)
    spikes = readout_graph(1, n_in=2).validate()
    with pytest.raises(InputDataError, match="0 or 1"):
        spikes.check_inputs(np.array([[[2, 0]]]), 1)


# --------------------------------------------------------------------------- exact arithmetic


def exact_readout(weights, bias, x, steps, state_bits) -> list[int]:
    """acc_t = clip(acc_{t-1} + W x + b) per output, in Python integers."""
    limit = 2 ** (state_bits - 1) - 1
    out = []
    for row, b in zip(weights.tolist(), bias.tolist()):
        drive = sum(w * v for w, v in zip(row, x)) + b
        acc = 0
        for _ in range(steps):
            acc = max(-limit, min(limit, acc + drive))
        out.append(acc)
    return out


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n_in=st.integers(1, 4), n_out=st.integers(1, 3), steps=st.integers(1, 3),
       value_bits=st.sampled_from([2, 8, 16, 32]), state_bits=st.sampled_from([8, 32, 48, 62]))
def test_accepted_graphs_compute_exactly_refused_ones_could_overflow(data, n_in, n_out, steps, value_bits,
                                                                      state_bits):
    exps = data.draw(st.lists(st.integers(0, 62), min_size=n_in * n_out, max_size=n_in * n_out))
    signs = data.draw(st.lists(st.sampled_from([-1, 1]), min_size=n_in * n_out, max_size=n_in * n_out))
    weights = np.array([s * (2 ** e) for s, e in zip(signs, exps)], np.int64).reshape(n_out, n_in)
    limit_in = 2 ** (value_bits - 1) - 1
    x = np.array([data.draw(st.sampled_from([-limit_in, limit_in, 0, 1])) for _ in range(n_in)])
    bias = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=n_out, max_size=n_out)))
    graph = Graph([Input("x", (n_in,), value_bits=value_bits), Readout("out", (n_out,), bias=bias,
                                                                        state_bits=state_bits)],
                  [Edge("x", "out", (Dense(weights),))])
    worst = max(int(np.abs(row.astype(object)).sum()) for row in weights) * limit_in + 3
    try:
        graph.validate()
    except OverflowRiskError:
        assert worst + 2 ** (state_bits - 1) - 1 >= SAFE   # refused only when really at risk
        return
    expected = exact_readout(weights, bias, x, steps, state_bits)
    for backend in ("reference", "torch"):
        got = spikec.run(graph, x[None], steps, backend=backend).output[0].tolist()
        assert got == expected, backend


@settings(max_examples=200, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8", "?"]),
       value_bits=st.integers(1, 32), batch=st.integers(0, 3))
def test_input_array_accepts_exactly_the_in_range_integers(data, dtype, value_bits, batch):
    from hypothesis.extra.numpy import arrays

    from spikec.ir.validate import input_array

    inp = Input("x", (3,), value_bits=value_bits)
    x = data.draw(arrays(np.dtype(dtype), (batch, 3)))
    limit = 2 ** (value_bits - 1) - 1
    fits = (np.dtype(dtype).kind in "iu" and batch > 0
            and all(-limit <= int(v) <= limit for v in x.ravel().tolist()))
    if not fits:
        with pytest.raises(InputDataError):
            input_array(inp, x)
        return
    got = input_array(inp, x)
    assert got.dtype == np.int64 and got.tolist() == x.tolist()
