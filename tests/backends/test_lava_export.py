"""Exports for Lava: netx HDF5 (round trip through Intel's loader) and the runnable Lava module."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

import spikec
from spikec.backends.lava import backend as lava_backend
from spikec.backends.netx import export as netx_export
from spikec.errors import GraphError, UnsupportedError
from spikec.ir import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout, SumPool2d, run_reference
from spikec.ir.ops_numpy import apply_ops

pytestmark = pytest.mark.slow   # Lava processes and netx files: the slow tier
needs_lava = pytest.mark.skipif(not lava_backend.is_available(),
                                reason=f"lava unavailable: {lava_backend.why_unavailable()}")


def ints(seed, lo, hi, shape):
    return np.random.default_rng(seed).integers(lo, hi + 1, size=shape)


def netx_lenet(encoding="current") -> Graph:
    """Everything netx can hold: conv, pool folded into a strided conv, pool alone (depthwise conv),
    flatten + dense with a delay, a dense readout."""
    inp = Input("x", (2, 10, 10), encoding=encoding, value_bits=4)
    c1 = IF("c1", (3, 8, 8), theta=np.int64(6), reset="zero")
    c2 = IF("c2", (4, 4, 4), theta=np.int64(5), reset="zero")
    c3 = IF("c3", (4, 2, 2), theta=np.int64(4), reset="zero")
    f1 = IF("f1", (7,), theta=np.int64(3), reset="zero")
    out = Readout("out", (3,))
    edges = [Edge("x", "c1", (Conv2d(ints(1, -3, 3, (3, 2, 3, 3))),)),
             Edge("c1", "c2", (SumPool2d(2), Conv2d(ints(2, -3, 4, (4, 3, 3, 3)), padding=1))),
             Edge("c2", "c3", (SumPool2d(2),)),
             Edge("c3", "f1", (Flatten(), Dense(ints(3, -4, 5, (7, 16)))), delay=2),
             Edge("f1", "out", (Dense(ints(4, -3, 3, (3, 7))),))]
    return Graph([inp, c1, c2, c3, f1, out], edges).validate()


# --------------------------------------------------------------------------- netx


@needs_lava
@pytest.mark.parametrize("encoding", ["current", "spikes"])
def test_netx_round_trip_through_intels_loader(tmp_path, encoding):
    from spikec.backends.netx.run import run_netx

    graph = netx_lenet(encoding)
    x = ints(5, -7, 7, (2, 2, 10, 10)) if encoding == "current" else ints(5, 0, 1, (2, 5, 2, 10, 10))
    steps = 8
    ref = run_reference(graph, x, steps, record=True)
    path = tmp_path / "lenet.net"
    spikec.export(graph, path, format="netx")
    got = run_netx(path, x, graph.hardware_steps(steps), plain=encoding == "spikes")
    assert set(got.spikes) == set(ref.spikes)
    for name, spikes in ref.spikes.items():
        assert np.array_equal(got.spikes[name], spikes), name
        assert spikes.any(), name
    assert np.array_equal(got.output, ref.output)


@needs_lava
def test_netx_export_folds_weight_exponents_into_the_weights(tmp_path):
    """netx layers have no exponent of their own: 2^weight_exp multiplies the exported weights, and
    an exponent that would push them beyond 8 bits is refused."""
    from spikec.backends.netx.run import run_netx

    base = netx_lenet()
    edges = [dataclasses.replace(e, weight_exp=1) if e.dst in ("c2", "f1") else e for e in base.edges]
    graph = Graph(base.populations, edges).validate()
    x, steps = ints(5, -7, 7, (2, 2, 10, 10)), 8
    ref = run_reference(graph, x, steps, record=True)
    assert not np.array_equal(ref.output, run_reference(base, x, steps).output)
    spikec.export(graph, tmp_path / "scaled.net", format="netx")
    got = run_netx(tmp_path / "scaled.net", x, graph.hardware_steps(steps))
    for name, spikes in ref.spikes.items():
        assert np.array_equal(got.spikes[name], spikes), name
    assert np.array_equal(got.output, ref.output)
    too_far = Graph(base.populations, [dataclasses.replace(e, weight_exp=6) if e.dst == "c2" else e
                                       for e in base.edges]).validate()
    assert any("edge c1->c2: weights in" in p for p in netx_export.netx_problems(too_far))


@pytest.mark.parametrize("case, expected", [
    ("residual", ["edge x->b: residual/skip edge", 'format="lava"']),
    ("neurons", ["layer a: subtract reset", "target='loihi-stock'", "layer a: signed spikes",
                 "layer a: bias schedule", "layer a: SRP pre-simulation", "layer b: bias in [5000, 5000]",
                 "layer b: per-channel/per-neuron thresholds", "readout out: skip"]),
    ("ranges", ["edge a->b: weights in [-300, 2]", "layer b: state_bits 8"]),
])
def test_netx_refuses_what_it_cannot_express(tmp_path, case, expected):
    inp = Input("x", (2, 4, 4))
    zero = dict(reset="zero")
    a = IF("a", (3, 4, 4), theta=np.int64(4), **zero)
    b = IF("b", (5,), theta=np.int64(4), **zero)
    out = Readout("out", (2,))
    e_xa = Edge("x", "a", (Conv2d(ints(1, -2, 2, (3, 2, 3, 3)), padding=1),))
    e_ab = Edge("a", "b", (Flatten(), Dense(ints(2, -2, 2, (5, 48)))))
    e_out = Edge("b", "out", (Dense(ints(3, -2, 2, (2, 5))),))
    edges = [e_xa, e_ab, e_out]
    if case == "residual":
        edges.append(Edge("x", "b", (Flatten(), Dense(ints(4, -2, 2, (5, 32)))), delay=1))
    elif case == "neurons":
        a = IF("a", (3, 4, 4), theta=np.int64(4), theta_neg=np.int64(4), v_init=np.int64(1),
               bias_schedule=np.ones((2, 3), np.int64), presim=2)
        b = IF("b", (5,), theta=np.arange(1, 6), bias=np.int64(5000), **zero)
        out = Readout("out", (2,), skip=1, bias=np.int64(2))
    else:
        w = ints(2, -2, 2, (5, 48))
        w[0, 0] = -300
        b = IF("b", (5,), theta=np.int64(4), state_bits=8, **zero)
        edges[1] = Edge("a", "b", (Flatten(), Dense(w)))
    graph = Graph([inp, a, b, out], edges).validate()
    path = tmp_path / "g.net"
    with pytest.raises(UnsupportedError) as err:
        spikec.export(graph, path, format="netx")
    for text in expected:
        assert text in str(err.value)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_netx_export_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "g.net"
    path.write_bytes(b"previous contents")

    def fail(graph, f):
        f.create_group("layer")
        raise OSError("disk full")

    monkeypatch.setattr(netx_export, "_write", fail)
    with pytest.raises(OSError, match="disk full"):
        spikec.export(netx_lenet(), path, format="netx")
    assert path.read_bytes() == b"previous contents"
    assert [p.name for p in tmp_path.iterdir()] == ["g.net"]   # no temporary file left behind


def _pool_conv_case(seed):
    """A random SumPool2d -> Conv2d edge and input shape; None when the kernel does not fit."""
    rng = np.random.default_rng(seed)
    k, size, pad = int(rng.integers(1, 3)), int(rng.integers(4, 9)), int(rng.integers(0, 2))
    size -= size % k if pad else 0
    c_in, c_out = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    conv = Conv2d(rng.integers(-3, 4, (c_out, c_in, 2, 2)), stride=int(rng.integers(1, 3)), padding=pad,
                  dilation=int(rng.integers(1, 3)))
    edge = Edge("a", "b", (SumPool2d(k), conv))
    shape = (c_in, size, size)
    try:
        return edge, shape, edge.output_shape(shape), rng
    except GraphError:
        return None


_FITTING_SEEDS = [s for s in range(40) if _pool_conv_case(s) is not None][:6]


@pytest.mark.parametrize("seed", _FITTING_SEEDS)
def test_pool_conv_folding_is_exact(seed):
    edge, shape, expected_shape, rng = _pool_conv_case(seed)
    folded = netx_export.conv_layer(edge, shape)
    assert folded.output_shape(shape) == expected_shape
    x = rng.integers(-3, 4, (2,) + shape)
    assert np.array_equal(apply_ops((folded,), x), apply_ops(edge.ops, x))


# --------------------------------------------------------------------------- lava module


def residual_graph() -> Graph:
    """a fits stock LIF for a known run length; b, c need SpikecIF; a skip edge with a delay and a
    weight exponent."""
    inp = Input("x", (2, 5, 5), encoding="spikes")
    a = IF("a", (3, 5, 5), theta=np.int64(2), reset="zero")
    b = IF("b", (3, 5, 5), theta=np.int64(3), theta_neg=np.int64(3), bias_schedule=ints(1, -1, 2, (2, 3)))
    c = IF("c", (3, 5, 5), theta=np.int64(4), v_init=np.int64(1), state_bits=8)
    out = Readout("out", (4,), bias=np.int64(1))
    conv = lambda seed, c_in: Conv2d(ints(seed, -2, 3, (3, c_in, 3, 3)), padding=1)  # noqa: E731
    edges = [Edge("x", "a", (conv(2, 2),)), Edge("a", "b", (conv(3, 3),)), Edge("b", "c", (conv(4, 3),)),
             Edge("a", "c", (Conv2d(ints(5, -2, 2, (3, 3, 1, 1))),), delay=1, weight_exp=2),
             Edge("c", "out", (SumPool2d(2), Flatten(), Dense(ints(6, -3, 3, (4, 12)))))]
    return Graph([inp, a, b, c, out], edges).validate()


def _load_module(path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_lava
@pytest.mark.parametrize("steps_option", [None, 8])
def test_lava_module_export_runs_and_matches(tmp_path, steps_option):
    graph = residual_graph()
    x = ints(22, 0, 1, (3, 6, 2, 5, 5))
    ref = run_reference(graph, x, 8, record=True)
    path = tmp_path / "net.py"
    options = {} if steps_option is None else {"steps": steps_option}
    spikec.export(graph, path, format="lava", **options)
    assert path.with_suffix(".npz").exists()
    module = _load_module(path)
    models = {name: layer[1] for name, layer in module.NET.layers.items()}
    assert models["a"] == ("lif" if steps_option else "if")
    result = module.run(x, 8)
    assert np.array_equal(result["output"], ref.output)
    for name, spikes in ref.spikes.items():
        assert np.array_equal(result["spikes"][name], spikes), name
    assert result["saturations"] == ref.saturations
    if steps_option:
        with pytest.raises(ValueError, match="up to 8 steps"):
            module.build(x, 9, str(tmp_path))
        return
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run([sys.executable, str(path), str(tmp_path / "x.npy"), "8"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [list(map(int, line.split()[2:])) for line in done.stdout.strip().splitlines()]
    assert np.array_equal(np.array(rows), ref.output)
