"""netx export of compiled "loihi-stock" graphs: biases, start steps, initial potentials, graded input.

Every check runs the file through Intel's loader (lava.lib.dl.netx.hdf5.Network) on Lava's fixed-point
CPU models and compares spikes and readout bit for bit with spikec's torch backend; the Lava
process-graph export (format="lava") is checked on the same graph.
"""

from __future__ import annotations

import importlib.util

import h5py
import numpy as np
import pytest
import torch
from tiny_model import randomize_batchnorm

import spikec
from spikec.backends.lava import backend as lava_backend
from spikec.backends.netx import export as netx_export
from spikec.errors import UnsupportedError
from spikec.ir import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout, run_reference
from spikec.models import PRETRAINED

pytestmark = pytest.mark.slow   # Lava processes and netx files: the slow tier
needs_lava = pytest.mark.skipif(not lava_backend.is_available(),
                                reason=f"lava unavailable: {lava_backend.why_unavailable()}")


def bn_cnn_graph():
    """small_cnn (Conv-BN-QCFS-AvgPool x 2, linear head with bias) compiled for target "loihi-stock"."""
    from spikec.models import small_cnn
    from spikec.quantize import replace_relu

    torch.manual_seed(0)
    model = randomize_batchnorm(replace_relu(small_cnn(image_size=8, channels=8, blocks=2), kind="qcfs",
                                              levels=4, threshold=1.0))
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    return spikec.compile(model, x, method="qcfs", target="loihi-stock"), x


def _load_module(path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_netx_and_lava_exports(graph, x, steps, tmp_path, every_layer_spikes=True):
    """netx file (Intel's loader) and Lava module export == torch backend, spikes and readout."""
    from spikec.backends.netx.run import run_netx

    ref = spikec.run(graph, x, steps, backend="torch", record=True)
    path = tmp_path / "net.net"
    spikec.export(graph, path, format="netx")
    got = run_netx(path, x, graph.hardware_steps(steps))
    assert set(got.spikes) == set(ref.spikes)
    for name, spikes in ref.spikes.items():
        assert np.array_equal(got.spikes[name], spikes), name
        assert spikes.any() or not every_layer_spikes, name
    assert np.array_equal(got.output, ref.output) and ref.output.any()
    spikec.export(graph, tmp_path / "net.py", format="lava", steps=steps)
    result = _load_module(tmp_path / "net.py").run(x, steps)
    assert np.array_equal(result["output"], ref.output)
    for name, spikes in ref.spikes.items():
        assert np.array_equal(result["spikes"][name], spikes), name
    return ref


@needs_lava
def test_bn_folded_cnn_runs_bit_exact_through_intels_loader(tmp_path):
    graph, x = bn_cnn_graph()
    ifs = [p for p in graph.populations if isinstance(p, IF)]
    assert all(np.any(p.bias != 0) for p in ifs) and np.any(graph.readout.bias != 0)
    check_netx_and_lava_exports(graph, graph.encode(x.numpy()), 5, tmp_path)
    with h5py.File(tmp_path / "net.net", "r") as f:
        assert int(f["spikec/input_message_bits"][()]) == graph.input.value_bits
        assert set(f["spikec/initial_v"]) == {p.name for p in ifs} | {graph.readout.name}
        assert "bias" in f["layer/1"] and f["layer/1/bias"].shape == (ifs[0].shape[0],)


CIFAR_VGG = "cifar10_vgg_small_qcfs"


@needs_lava
@pytest.mark.slow
@pytest.mark.skipif(not (PRETRAINED / f"{CIFAR_VGG}.pt").exists(), reason=f"{CIFAR_VGG} not shipped")
def test_cifar10_vgg_exports_exactly_or_is_refused_with_the_lava_route(tmp_path):
    """The trained CIFAR-10 VGG: its folded BatchNorm biases are negative enough that netx's
    bias-from-step-1 would fire deep layers before their start step, so netx export is refused
    (naming the layers and the Lava route) rather than written inexact; the Lava process-graph
    export of the same graph runs bit-exact on real images."""
    from spikec.datasets import CIFAR10_SUBSET, cifar10
    from spikec.models import pretrained

    model = pretrained(CIFAR_VGG)
    images, _ = cifar10(CIFAR10_SUBSET)
    graph = spikec.compile(model, images[:8], method="qcfs", target="loihi-stock")
    x = graph.encode(images[[0, 500]].numpy())
    try:
        spikec.export(graph, tmp_path / "vgg.net", format="netx")
    except UnsupportedError as err:
        assert "would fire before the layer's start step" in str(err) and 'format="lava"' in str(err)
        assert not (tmp_path / "vgg.net").exists()
        ref = spikec.run(graph, x, 4, backend="torch", record=True)
        spikec.export(graph, tmp_path / "vgg.py", format="lava", steps=4)
        result = _load_module(tmp_path / "vgg.py").run(x, 4)
        assert np.array_equal(result["output"], ref.output)
        for name, spikes in ref.spikes.items():
            assert np.array_equal(result["spikes"][name], spikes), name
    else:
        check_netx_and_lava_exports(graph, x, 4, tmp_path, every_layer_spikes=False)


def per_neuron_graph(bias_a, v_init_a=0, encoding="current"):
    """A conv layer with a per-neuron bias (netx's W, H, C order), a dense layer with a per-neuron
    bias and v_init, a biased readout."""
    rng = np.random.default_rng(3)
    inp = Input("x", (2, 4, 5), encoding=encoding, value_bits=4)
    a = IF("a", (3, 4, 5), theta=np.int64(9), bias=bias_a, v_init=np.int64(v_init_a), reset="zero")
    b = IF("b", (6,), theta=np.int64(7), bias=np.array([2, -1, 0, 1, -3, 1]),
           v_init=np.array([1, 0, -2, 3, 0, 0]), reset="zero")
    out = Readout("out", (3,), bias=np.array([3, -2, 1]))
    edges = [Edge("x", "a", (Conv2d(rng.integers(-3, 4, (3, 2, 3, 3)), padding=1),)),
             Edge("a", "b", (Flatten(), Dense(rng.integers(-4, 5, (6, 60)))), delay=1),
             Edge("b", "out", (Dense(rng.integers(-3, 4, (3, 6))),))]
    return Graph([inp, a, b, out], edges).validate()


@needs_lava
def test_per_neuron_biases_and_initial_potentials_are_exact(tmp_path):
    from spikec.backends.netx.run import run_netx

    bias = np.random.default_rng(4).integers(-3, 4, (3, 4, 5))
    graph = per_neuron_graph(bias)
    x = np.random.default_rng(5).integers(-7, 8, (2, 2, 4, 5))
    steps = 8
    ref = run_reference(graph, x, steps, record=True)
    spikec.export(graph, tmp_path / "g.net", format="netx")
    got = run_netx(tmp_path / "g.net", x, graph.hardware_steps(steps))
    for name, spikes in ref.spikes.items():
        assert np.array_equal(got.spikes[name], spikes), name
        assert spikes.any(), name
    assert np.array_equal(got.output, ref.output)
    # what Intel's loader gives without spikec's initial potentials and message bits: not the same
    plain = run_netx(tmp_path / "g.net", x, graph.hardware_steps(steps), plain=True)
    assert not np.array_equal(plain.output, ref.output)


def test_initial_potential_folds_the_early_bias_steps():
    graph = per_neuron_graph(np.int64(2), v_init_a=1)
    assert graph.start_steps() == {"x": 1, "a": 2, "b": 4, "out": 5}
    assert np.all(netx_export.initial_potential(graph, graph.nodes["a"]) == 1 - 1 * 2)
    assert np.array_equal(netx_export.initial_potential(graph, graph.nodes["b"]),
                          np.array([1, 0, -2, 3, 0, 0]) - 3 * np.array([2, -1, 0, 1, -3, 1]))
    assert np.array_equal(netx_export.initial_potential(graph, graph.nodes["out"]), -4 * np.array([3, -2, 1]))


@pytest.mark.parametrize("change, expected", [
    # bias -5, v_init 1, start 4: v0 = 1 + 3 * 5 = 16, after step 1 v = 11 >= theta 7: fires early
    (dict(b_bias=-5), "layer b: 1 neuron(s) would fire before the layer's start step 4"),
    (dict(b_v_init=7), "layer b: 1 neuron(s) would fire before"),
    (dict(a_bias=4096), "layer a: bias in [4096, 4096] beyond netx's 13-bit mantissa"),
])
def test_netx_refuses_biases_it_cannot_start_on_time(tmp_path, change, expected):
    graph = per_neuron_graph(np.int64(change.get("a_bias", 1)))
    b = graph.nodes["b"]
    bias, v_init = np.array(b.bias), np.array(b.v_init)
    bias[0] = change.get("b_bias", bias[0])
    v_init[0] = change.get("b_v_init", v_init[0])
    pops = [IF("b", b.shape, theta=b.theta, bias=bias, v_init=v_init, reset="zero") if p.name == "b" else p
            for p in graph.populations]
    graph = Graph(pops, graph.edges).validate()
    with pytest.raises(UnsupportedError) as err:
        spikec.export(graph, tmp_path / "g.net", format="netx")
    assert expected in str(err.value)
    assert 'format="lava"' in str(err.value)
    assert not list(tmp_path.iterdir())


def test_default_target_graph_is_refused_with_the_target_to_use(tmp_path):
    _, x = bn_cnn_graph()
    from spikec.models import small_cnn
    from spikec.quantize import replace_relu

    model = randomize_batchnorm(replace_relu(small_cnn(image_size=8, channels=8, blocks=2), kind="qcfs",
                                              levels=4, threshold=1.0))
    graph = spikec.compile(model, x, method="qcfs", target="loihi")
    with pytest.raises(UnsupportedError, match="subtract reset .*compile with target='loihi-stock'"):
        spikec.export(graph, tmp_path / "g.net", format="netx")
