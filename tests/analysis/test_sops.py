"""SOP and input-MAC counts against an independent count (tests/analysis/brute.py), exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from strategies import graphs

from analysis.brute import brute_edge_counts, impulse_fanout
from spikec.analysis.estimate import estimate
from spikec.ir import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout, SumPool2d
from spikec.ir.interpreter import run_reference


def _graph(encoding: str) -> Graph:
    """Padding borders, stride, dilation, groups, pooling chained into a conv, zero weights, a signed
    layer and delayed skip edges."""
    rng = np.random.default_rng(7)
    conv0 = Conv2d(rng.integers(0, 3, (6, 2, 3, 3)), stride=(2, 2), padding=(2, 1), dilation=(1, 2),
                   groups=2)                          # zero weights included
    pool_conv = (SumPool2d((2, 2), (1, 1)),
                 Conv2d(rng.integers(-1, 3, (4, 3, 2, 2)), stride=(2, 1), padding=(1, 0), groups=2))
    s0 = conv0.output_shape((4, 7, 7))
    s1 = pool_conv[1].output_shape(pool_conv[0].output_shape(s0))
    assert s1 == (4, 3, 1)
    n0, n1 = int(np.prod(s0)), int(np.prod(s1))
    return Graph(
        [Input("x", (4, 7, 7), encoding=encoding, value_bits=4),
         IF("l0", s0, theta=np.array(2), bias=np.array(1)),
         IF("l1", s1, theta=np.array(2), theta_neg=np.array(2)),
         Readout("out", (3,))],
        [Edge("x", "l0", (conv0,)),
         Edge("l0", "l1", pool_conv),
         Edge("x", "l1", (Conv2d(rng.integers(-1, 2, (4, 1, 3, 7)), stride=(2, 1), groups=4),), delay=1),
         Edge("l0", "out", (Flatten(), Dense(rng.integers(-2, 3, (3, n0)))), delay=2),
         Edge("l1", "out", (Flatten(), Dense(rng.integers(-2, 3, (3, n1)))))]).validate()


@pytest.mark.parametrize("encoding", ["spikes", "current"])
def test_hand_built_graph_exact(encoding):
    g = _graph(encoding)
    rng = np.random.default_rng(1)
    x = (rng.integers(0, 2, (2, 5, 4, 7, 7)) if encoding == "spikes"
         else rng.integers(-7, 8, (2, 4, 7, 7)))
    trace = run_reference(g, x, 6, record=True)
    assert np.abs(trace.spikes["l1"]).sum() > 0 and (trace.spikes["l1"] < 0).any()
    est = estimate(g, x, 6, backend="reference")
    brute = brute_edge_counts(g, x, trace)
    assert [(e.sops, e.input_macs) for e in est.edges] == brute
    assert (est.layer("l1").sops, est.layer("l1").input_macs) == (brute[1][0] + brute[2][0], brute[2][1])
    assert est.layer("out").sops == brute[3][0] + brute[4][0]
    assert est.layer("l1").spikes_neg == int((trace.spikes["l1"] < 0).sum())
    assert est.sops * est.batch == sum(s for s, _ in brute)
    assert est.input_macs * est.batch == sum(m for _, m in brute)


def test_padding_border_fanout_by_hand():
    # 3x3 conv, padding 1, stride 1 on 4x4: a corner pixel drives 4 outputs per out-channel,
    # an edge pixel 6, an interior pixel 9 (all weights nonzero, 2 out-channels)
    edge = Edge("x", "l", (Conv2d(np.ones((2, 1, 3, 3), np.int64), 1, 1),))
    assert [impulse_fanout(edge, (1, 4, 4), p) for p in [(0, 0, 0), (0, 0, 1), (0, 1, 1)]] == [8, 12, 18]
    g = Graph([Input("x", (1, 4, 4), encoding="spikes"), IF("l", (2, 4, 4), theta=np.array(100)),
               Readout("out", (1,))],
              [edge, Edge("l", "out", (Flatten(), Dense(np.ones((1, 32), np.int64))))]).validate()
    x = np.zeros((1, 1, 1, 4, 4), np.int64)
    x[0, 0, 0, 0, 0] = x[0, 0, 0, 0, 1] = x[0, 0, 0, 1, 1] = 1
    est = estimate(g, x, 1, backend="reference")
    assert est.edges[0].sops == 8 + 12 + 18
    assert est.layer("l").synapses == 2 * (4 * 3 - 2) ** 2   # 2 out-channels x 10 valid taps per axis


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(max_layers=3))
def test_random_graphs_exact(case):
    g, x, steps = case
    trace = run_reference(g, x, steps, record=True)
    est = estimate(g, x, steps, trace=trace)
    assert [(e.sops, e.input_macs) for e in est.edges] == brute_edge_counts(g, x, trace)
    total_updates = sum(r.updates_active + r.updates_inactive for r in est.layers if r.kind != "input")
    placed = sum(r.neurons for r in est.layers if r.kind != "input")
    assert total_updates == placed * x.shape[0] * trace.hardware_steps
    for row in est.layers:
        if row.kind == "if":
            assert row.spikes == int(np.abs(trace.spikes[row.name].astype(np.int64)).sum())
