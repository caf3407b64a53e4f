"""Loihi resource estimates on layers computed by hand."""

from __future__ import annotations

import numpy as np

from spikec.analysis.hardware import LOIHI1, LOIHI2
from spikec.analysis.resources import _core_stats, _EdgeInfo, axon_bits, binary, estimate_resources
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
    # every neuron listens to 5000 sources: no split brings a core under 4096 input axons, so the
    # layer is reported infeasible and that limit does not spread it over more cores
    g = _chain((5000,), (4,), (Dense(np.ones((4, 5000), np.int64)),))
    res = _resources(g)
    row = res.layers["l"]
    assert not row.feasible and not res.feasible
    assert row.in_axons_max == 5000 and row.cores == 1
    assert any("input axons" in n for n in row.notes)


def test_conv_padding_synapses_and_shared_kernels():
    # 3x3 conv, padding 1, 8 -> 16 channels on 16x16: per axis 16 x 3 - 2 = 46 valid taps
    conv = Conv2d(np.ones((16, 8, 3, 3), np.int64), 1, 1)
    g = _chain((8, 16, 16), (16, 16, 16), (conv,))
    row = _resources(g).layers["l"]
    assert row.synapses == 16 * 8 * 46 * 46
    # 4096 compartments: 4 cores. Shared kernels (cores hold channel planes): per core 4 output
    # channels, so per input channel 4 x 9 entries at 8 weight + 10 index bits: 36 x 18 + 10 = 658
    # -> 704 bits; x 8 input channels x 4 cores
    assert row.cores_shared == 4
    assert row.synapses_shared == 4 * 9 * 8 * 4
    assert row.syn_mem_bits_shared == 704 * 8 * 4
    # discrete (cores hold spatial tiles of 4 rows x 16 columns x 16 channels), at 4 cores: the
    # tile of output rows 4-7 stores, per input pixel (8 channels, 14 inner and 2 border columns),
    # 16 channels x row taps x column taps synapses:
    #   input rows 5, 6 (3 row taps): 112 x bits(144) + 16 x bits(96) = 112 x 2752 + 16 x 1856
    #   input rows 4, 7 (2 row taps): 112 x bits(96) + 16 x bits(64)  = 112 x 1856 + 16 x 1216
    #   input rows 3, 8 (1 row tap):  112 x bits(48) + 16 x bits(32)  = 112 x 896  + 16 x 640
    tile = 2 * (112 * 2752 + 16 * 1856) + 2 * (112 * 1856 + 16 * 1216) + 2 * (112 * 896 + 16 * 640)
    assert tile == 1_351_680 > LOIHI1.syn_mem_bits
    info = [_EdgeInfo(g.edges[0], binary(edge_matrix(g.edges[0], (8, 16, 16))), None, 256)]
    mem, axons, _ = _core_stats(info, (16, 16, 16), 4, LOIHI1, shared=False)
    assert mem.max() == tile and axons.max() == 6 * 16 * 8
    # so the layer grows to ceil(4 x 1,351,680 / 1,048,576) = 6 cores, which fit
    assert row.cores == 6 and row.binding == "synaptic memory"
    assert row.max_core_syn_mem_bits <= LOIHI1.syn_mem_bits


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
