"""The Brian2 backend equals the reference interpreter bit for bit (spikes, v, readout, saturations)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from equivalence import assert_traces_equal
from hypothesis import given, settings
from strategies import graphs

import spikec
from spikec.errors import BackendError, FormatError, InputDataError, UnsupportedError
from spikec.ir import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout, SumPool2d, run_reference

pytest.importorskip("brian2")

pytestmark = pytest.mark.slow   # Brian2 code generation and runs: the slow tier


def check(graph, x, steps, **options):
    """Run brian2 and the reference with everything recorded; fail on the first difference."""
    ref = run_reference(graph, x, steps, record=True, record_v=True)
    got = spikec.run(graph, x, steps, backend="brian2", record=True, record_v=True, **options)
    assert_traces_equal(got, ref, check_voltages=True)
    assert got.output.dtype == np.int64 and got.output.shape == ref.output.shape
    for name, spikes in got.spikes.items():
        assert spikes.dtype == np.int8 and spikes.shape == ref.spikes[name].shape
        assert got.voltages[name].shape == ref.voltages[name].shape
    return got, ref


def rng_ints(seed, lo, hi, shape):
    return np.random.default_rng(seed).integers(lo, hi + 1, size=shape)


# --------------------------------------------------------------------------- hand-built graphs


def mlp(encoding="current") -> Graph:
    inp = Input("x", (12,), encoding=encoding, value_bits=5)
    h1 = IF("h1", (16,), theta=np.int64(9), bias=rng_ints(1, -1, 2, (16,)))
    h2 = IF("h2", (8,), theta=rng_ints(2, 3, 9, (8,)), v_init=np.int64(2), reset="zero")
    out = Readout("out", (4,), bias=np.array([1, -1, 0, 2]))
    edges = [Edge("x", "h1", (Dense(rng_ints(3, -3, 4, (16, 12))),)),
             Edge("h1", "h2", (Dense(rng_ints(4, -4, 5, (8, 16))),)),
             Edge("h2", "out", (Dense(rng_ints(5, -4, 4, (4, 8))),))]
    return Graph([inp, h1, h2, out], edges).validate()


def lenet_like() -> Graph:
    inp = Input("x", (1, 12, 12), encoding="current", value_bits=5)
    c1 = IF("c1", (4, 10, 10), theta=np.array([6, 8, 5, 7]), bias=np.array([0, 1, -1, 0]))
    c2 = IF("c2", (6, 3, 3), theta=np.int64(10), theta_neg=np.int64(10), gate="net")
    f1 = IF("f1", (10,), theta=np.int64(5), presim=2, v_init=np.int64(2),
            bias_schedule=rng_ints(6, -2, 2, (3, 10)))
    out = Readout("out", (3,), skip=2)
    edges = [Edge("x", "c1", (Conv2d(rng_ints(7, -3, 3, (4, 1, 3, 3))),)),
             Edge("c1", "c2", (SumPool2d(2), Conv2d(rng_ints(8, -3, 3, (6, 4, 3, 3)), stride=1))),
             Edge("c2", "f1", (Flatten(), Dense(rng_ints(9, -4, 4, (10, 54))))),
             Edge("f1", "out", (Dense(rng_ints(10, -3, 3, (3, 10))),))]
    return Graph([inp, c1, c2, f1, out], edges).validate()


def residual_block(encoding="current") -> Graph:
    """x -> a -> b -> c with a skip a -> c that waits one extra step (delay 1) to meet b's output."""
    inp = Input("x", (2, 6, 6), encoding=encoding, value_bits=4)
    a = IF("a", (4, 6, 6), theta=np.int64(4), v_init=np.int64(1))
    b = IF("b", (4, 6, 6), theta=np.int64(6), theta_neg=np.int64(5), reset="subtract",
           bias_schedule=np.array([[2, 0, 1, 2], [1, 1, -1, 0]]))
    c = IF("c", (4, 6, 6), theta=np.int64(7), presim=3, state_bits=8)
    out = Readout("out", (5,), bias=np.int64(1), skip=3)
    same = lambda seed, c_in: Conv2d(rng_ints(seed, -2, 3, (4, c_in, 3, 3)), padding=1)  # noqa: E731
    edges = [Edge("x", "a", (same(11, 2),)),
             Edge("a", "b", (same(12, 4),)),
             Edge("b", "c", (same(13, 4),)),
             Edge("a", "c", (Conv2d(rng_ints(14, -2, 2, (4, 4, 1, 1))),), delay=1),
             Edge("c", "out", (SumPool2d(2), Flatten(), Dense(rng_ints(15, -3, 3, (5, 36)))))]
    return Graph([inp, a, b, c, out], edges).validate()


def inputs_for(graph, batch, seed, frames=6):
    inp = graph.input
    if inp.encoding == "spikes":
        return rng_ints(seed, 0, 1, (batch, frames) + inp.shape)
    limit = 2 ** (inp.value_bits - 1) - 1
    return rng_ints(seed, -limit // 2, limit, (batch,) + inp.shape)


# --------------------------------------------------------------------------- numpy target


@settings(max_examples=30)
@given(graphs())
def test_random_graphs_match_reference(case):
    graph, x, steps = case
    check(graph, x, steps)


@pytest.mark.parametrize("make, encoding", [(mlp, "current"), (mlp, "spikes"), (lenet_like, "current"),
                                             (residual_block, "current"), (residual_block, "spikes")])
def test_hand_built_graphs_match_reference(make, encoding):
    graph = make(encoding) if make is not lenet_like else make()
    got, ref = check(graph, inputs_for(graph, batch=3, seed=20), steps=12)
    assert any(np.any(s != 0) for s in ref.spikes.values()), "test graph should spike"


def test_signed_spikes_and_saturation_are_exercised():
    graph = residual_block()
    got, ref = check(graph, inputs_for(graph, batch=2, seed=21), steps=10)
    assert np.any(ref.spikes["b"] < 0), "layer b should emit negative spikes"
    assert ref.saturations["c"] > 0, "layer c (8-bit state) should saturate"


def test_readout_saturation_is_counted():
    inp = Input("x", (3,), value_bits=6)
    out = Readout("out", (2,), bias=np.array([5, -5]), state_bits=6)
    graph = Graph([inp, out], [Edge("x", "out", (Dense(np.array([[4, 4, 4], [-4, -4, -4]])),))]).validate()
    got, ref = check(graph, np.array([[31, 31, 31], [1, 0, -1]]), steps=5)
    assert ref.saturations["out"] > 0


def test_layer_is_silent_before_its_start_even_above_threshold():
    inp = Input("x", (2,), value_bits=4)
    a = IF("a", (2,), theta=np.int64(1), v_init=np.int64(5), bias=np.int64(1))
    out = Readout("out", (2,))
    graph = Graph([inp, a, out], [Edge("x", "a", (Dense(np.eye(2, dtype=np.int64)),), delay=3),
                                  Edge("a", "out", (Dense(np.eye(2, dtype=np.int64)),))]).validate()
    got, ref = check(graph, np.array([[1, 0]]), steps=4)
    assert graph.start_steps()["a"] == 5 and not np.any(ref.spikes["a"][:4])


def test_without_recording_the_trace_has_no_spikes():
    graph = mlp()
    x = inputs_for(graph, batch=2, seed=22)
    got = spikec.run(graph, x, 5, backend="brian2")
    ref = run_reference(graph, x, 5)
    assert got.spikes is None and got.voltages is None
    assert_traces_equal(got, ref)
    assert got.backend == "brian2:numpy" and got.latency == graph.latency


def test_bad_options_and_inputs_raise_typed_errors():
    graph = mlp()
    x = inputs_for(graph, batch=1, seed=23)
    with pytest.raises(BackendError, match="target"):
        spikec.run(graph, x, 3, backend="brian2", target="gpu")
    with pytest.raises(BackendError, match="cpp_standalone target only"):
        spikec.run(graph, x, 3, backend="brian2", cache_dir="/tmp")
    with pytest.raises(InputDataError):
        spikec.run(graph, x.astype(float), 3, backend="brian2")


def test_values_beyond_c_precision_are_refused_on_c_targets():
    inp = Input("x", (2,), value_bits=4)
    wide = IF("a", (2,), theta=np.int64(3), state_bits=60)
    graph = Graph([inp, wide, Readout("out", (2,))],
                  [Edge("x", "a", (Dense(np.eye(2, dtype=np.int64)),)),
                   Edge("a", "out", (Dense(np.eye(2, dtype=np.int64)),))]).validate()
    with pytest.raises(UnsupportedError, match="state_bits"):
        spikec.run(graph, np.array([[1, 2]]), 3, backend="brian2", target="cython")
    check(graph, np.array([[1, 2]]), 3)  # the numpy target is exact


def test_brian2_global_state_is_left_alone():
    from brian2 import prefs
    from brian2.devices.device import get_device, runtime_device

    prefs.codegen.target = "auto"
    spikec.run(mlp(), inputs_for(mlp(), 1, 24), 3, backend="brian2")
    assert prefs.codegen.target == "auto" and get_device() is runtime_device


# --------------------------------------------------------------------------- export


def test_export_script_runs_and_matches(tmp_path):
    graph = residual_block("spikes")
    x = inputs_for(graph, batch=2, seed=25)
    script = tmp_path / "net.py"
    spikec.export(graph, script, format="brian2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.npz", "net.py"]  # no temp files left
    text = script.read_text()
    assert "NeuronGroup" in text and "I_post += w" in text and "v = clip(v_in, -v_max, v_max)" in text
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "x.npy"), "7", "--record",
                           "--out", str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ref = run_reference(graph, x, 7, record=True)
    result = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(result["output"], ref.output)
    for name, spikes in ref.spikes.items():
        np.testing.assert_array_equal(result[f"spikes/{name}"], spikes)
    for name, count in ref.saturations.items():
        assert int(result[f"saturations/{name}"]) == count
    printed = [line.split(": ")[1] for line in done.stdout.splitlines()]
    assert printed == [" ".join(map(str, row)) for row in ref.output]


def test_export_rejects_unknown_format_and_missing_folder(tmp_path):
    with pytest.raises(FormatError, match="unknown export format"):
        spikec.export(mlp(), tmp_path / "net.py", format="nest")
    with pytest.raises(FormatError, match="does not exist"):
        spikec.export(mlp(), tmp_path / "missing" / "net.py", format="brian2")


# --------------------------------------------------------------------------- compiled targets


@pytest.mark.slow
def test_cython_target_matches_reference():
    graph = residual_block()
    check(graph, inputs_for(graph, batch=2, seed=26), steps=8, target="cython")


@pytest.mark.slow
def test_cpp_standalone_builds_once_and_reruns_with_new_inputs(tmp_path):
    from brian2 import prefs
    from brian2.devices.device import get_device, runtime_device

    graph = residual_block("current")
    cache = tmp_path / "cache"
    first = inputs_for(graph, batch=3, seed=27)  # two runs of the binary: 2 samples, then 1 + padding
    check(graph, first, steps=8, target="cpp_standalone", cache_dir=cache, chunk=2)
    [project] = list(cache.iterdir())
    binary = project / "main"
    built = binary.stat().st_mtime_ns
    second = inputs_for(graph, batch=2, seed=28)
    got, ref = check(graph, second, steps=8, target="cpp_standalone", cache_dir=cache, chunk=2)
    assert binary.stat().st_mtime_ns == built and list(cache.iterdir()) == [project], "rebuilt"
    assert not np.array_equal(run_reference(graph, first[:2], 8).output, ref.output)
    assert get_device() is runtime_device and prefs.codegen.target in ("auto", "numpy")
    check(graph, second, steps=8)  # the runtime device still works after a standalone build


@pytest.mark.slow
def test_cpp_standalone_with_spike_input(tmp_path):
    graph = residual_block("spikes")
    check(graph, inputs_for(graph, batch=2, seed=29), steps=6, target="cpp_standalone", cache_dir=tmp_path)
