"""Loihi resource estimates on layers computed by hand."""

from __future__ import annotations

import numpy as np

from spikec.analysis.hardware import LOIHI1, LOIHI2
from spikec.analysis.resources import axon_bits, estimate_resources
from spikec.ir import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout
from spikec.ir.connectivity import edge_matrix


def _resources(graph, spec=LOIHI1):
    matrices = [edge_matrix(e, graph.node(e.src).shape) for e in graph.edges]
    return estimate_resources(graph, matrices, spec)


def _chain(in_shape, layer_shape, ops, n_out=2):
    n = int(np.prod(layer_shape))
    flat = (Flatten(),) if len(layer_shape) == 3 else ()
    return Graph([Input("x", in_shape, encoding="spikes"), IF("l", layer_shape, theta=np.array(1)),
                  Readout("out", (n_out,))],
                 [Edge("x", "l", ops), Edge("l", "out", flat + (Dense(np.ones((n_out, n), np.int64)),))]
                 ).validate()


def test_axon_bits_by_hand():
    # 64 synapses of 18 bits + 10 header bits = 1162 -> 19 words; 2 more synapses: 46 -> 1 word
    assert axon_bits(64, 18) == 1216
    assert axon_bits(66, 18) == 1216 + 64
    assert axon_bits(0, 18) == 0


def test_dense_layer_bound_by_synaptic_memory():
    # 300 inputs, all-to-all into 2500 neurons: compartments alone need 3 cores, but then each of the
    # 300 axons holds a dense row of 834 synapses: 13 blocks of 64 x 8 bits (576 bits each) + 2 left
    # (64 bits) = 7552 bits; x 300 = 2,265,600 > 1,048,576. With 7 cores (358 per core):
    # 5 x 576 + 320 = 3200 bits x 300 = 960,000 fits; 6 cores (417): 3776 x 300 = 1,132,800 does not.
    g = _chain((300,), (2500,), (Dense(np.ones((2500, 300), np.int64)),))
    row = _resources(g).layers["l"]
    assert row.cores == 7
    assert row.binding == "synaptic memory"
    assert row.synapses == 750_000
    assert row.max_core_syn_mem_bits == 960_000
    assert row.in_axons_max == 300
    assert row.feasible


def test_fan_in_beyond_input_axons_is_infeasible():
    # every neuron listens to 5000 sources: no split brings a core under 4096 input axons
    g = _chain((5000,), (4,), (Dense(np.ones((4, 5000), np.int64)),))
    res = _resources(g)
    row = res.layers["l"]
    assert not row.feasible and not res.feasible
    assert row.in_axons_max == 5000 and row.cores == 4
    assert any("input axons" in n for n in row.notes)


def test_conv_padding_synapses_and_shared_kernels():
    # 3x3 conv, padding 1, 8 -> 16 channels on 16x16: per axis 16 x 3 - 2 = 46 valid taps
    g = _chain((8, 16, 16), (16, 16, 16), (Conv2d(np.ones((16, 8, 3, 3), np.int64), 1, 1),))
    row = _resources(g).layers["l"]
    assert row.synapses == 16 * 8 * 46 * 46
    # 4096 compartments need 4 cores. Stored per connection, a core holding 4 output channels gets
    # 2048 input axons of up to 36 synapses (704 bits each): > 14 x 14 x 8 interior axons alone are
    # 1,103,872 bits > 1,048,576, so the discrete estimate grows to ceil(4 x overflow) = 6 cores
    assert row.cores_shared == 4
    assert row.cores == 6 and row.binding == "synaptic memory"
    assert row.max_core_syn_mem_bits <= LOIHI1.syn_mem_bits
    # shared: each core holds 4 output channels; per input channel 4 x 9 kernel entries,
    # 36 x (8 weight + 10 index bits) + 10 = 658 -> 704 bits; x 8 input channels x 4 cores
    assert row.synapses_shared == 36 * 8 * 4
    assert row.syn_mem_bits_shared == 704 * 8 * 4
    assert row.syn_mem_bits > row.syn_mem_bits_shared


def test_output_axons_split_the_source_layer():
    # 1024 neurons, each projecting to one neuron on each of 5 destination cores (5120 neurons):
    # 1024 x 5 = 5120 output axons > 4096 on one core, so the source takes 2 cores (2560 each)
    w = np.zeros((5120, 1024), np.int64)
    for j in range(5):
        w[np.arange(1024) + 1024 * j, np.arange(1024)] = 1
    g = Graph([Input("x", (1024,), encoding="spikes"), IF("a", (1024,), theta=np.array(1)),
               IF("b", (5120,), theta=np.array(1)), Readout("out", (1,))],
              [Edge("x", "a", (Dense(np.eye(1024, dtype=np.int64)),)), Edge("a", "b", (Dense(w),)),
               Edge("b", "out", (Dense(np.ones((1, 5120), np.int64)),))]).validate()
    res = _resources(g)
    assert res.layers["b"].cores == 5
    assert res.layers["a"].cores == 2 and res.layers["a"].binding == "output axons"
    assert res.layers["a"].out_axons_max == 2560
    assert res.cores == 2 + 5 + 1 and res.chips == 1


def test_chips_and_loihi2_limits():
    g = _chain((10,), (3000,), (Dense(np.ones((3000, 10), np.int64)),))
    assert _resources(g, LOIHI1).layers["l"].cores == 3
    assert _resources(g, LOIHI2).layers["l"].cores == 1          # 8192 compartments (assumed)
    assert "compartments_per_core" in LOIHI2.assumed and not LOIHI1.assumed
