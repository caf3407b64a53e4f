"""The methods through spikec.compile: ecl / ftbc / srp entries and options on a tiny QCFS CNN."""

import dataclasses

import numpy as np
import pytest
import torch

import spikec
from spikec.backends.torch.backend import run_with_layer_hook
from spikec.errors import ConversionError, UnsupportedError
from spikec.models import small_cnn
from spikec.quantize import replace_relu


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = replace_relu(small_cnn(8, channels=4, blocks=2), "qcfs", levels=4, threshold=1.0).eval()
    x = torch.rand(16, 1, 8, 8)
    return model, x


def compile_(tiny, method="qcfs", **kw):
    model, x = tiny
    return spikec.compile(model, x[:1], method=method, calibration=x, **kw)


def test_qcfs_and_ecl_start_at_half_threshold(tiny):
    for method in ("qcfs", "ecl"):
        g = compile_(tiny, method)
        for layer in g.if_layers:
            assert np.array_equal(layer.v_init, np.rint(layer.theta / 2)), method
    ecl = compile_(tiny, "ecl", kappa=0.5, gate="none")
    for layer in ecl.if_layers:
        assert np.array_equal(layer.theta_neg, np.maximum(np.rint(0.5 * layer.theta), 1))
        assert layer.gate == "none"
    assert compile_(tiny, "ecl").if_layers[0].gate == "net"


def test_srp_through_compile(tiny):
    plain = compile_(tiny)
    g = compile_(tiny, srp_presim=3)
    assert all(layer.presim == 3 for layer in g.if_layers) and g.readout.skip == 3
    assert g.latency == plain.latency + 3
    assert compile_(tiny, "srp").readout.skip == 4


def test_ftbc_through_compile(tiny):
    g = compile_(tiny, ftbc=dict(steps=4, batches=2, batch_size=8))
    for layer in g.if_layers:
        assert layer.bias_schedule.shape == (4, layer.shape[0])
    assert g.meta["ftbc"]["steps"] == 4 and g.meta["ftbc"]["alpha"] == 0.4
    assert compile_(tiny, "ftbc", ftbc=dict(steps=2, batches=1)).if_layers[0].bias_schedule.shape[0] == 2
    with pytest.raises(ConversionError):
        compile_(tiny, ftbc=dict(alfa=0.1))
    with pytest.raises(UnsupportedError):
        compile_(tiny, ftbc=dict(steps=2), srp_presim=2)
    with pytest.raises(ConversionError):
        spikec.compile(tiny[0], tiny[1][:1], method="qcfs", ftbc={})      # no calibration data


def test_replay_drive_matches_the_graph(tiny):
    """The drives the torch backend hands FTBC's hook, fed to the plain IF rule, reproduce the
    reference interpreter's spikes; a hook that changes more than the schedule is refused."""
    g = compile_(tiny)
    x_int = g.encode(tiny[1][:4].numpy())
    steps = 5
    trace = spikec.run(g, x_int, steps, backend="reference", record=True)
    starts = g.start_steps()
    drives = {}

    def keep(layer, drive):
        drives[layer.name] = [d.to(torch.float64).contiguous() for d in drive]
        return layer

    hooked, _ = run_with_layer_hook(g, x_int, steps, keep)
    assert np.array_equal(hooked.output, trace.output)
    for layer in g.if_layers:
        v = np.broadcast_to(layer.v_init, layer.shape).astype(np.float64)
        theta = np.broadcast_to(layer.theta.reshape(-1, *([1] * (len(layer.shape) - 1))), layer.shape)
        for k in range(steps):
            v = v + drives[layer.name][k].numpy()
            s = v >= theta
            v = v - theta * s
            assert np.array_equal(s, trace.spikes[layer.name][starts[layer.name] - 1 + k] == 1)
    import dataclasses

    from spikec.errors import BackendError

    with pytest.raises(BackendError, match="only change the bias schedule"):
        run_with_layer_hook(g, x_int, steps, lambda layer, _: dataclasses.replace(layer, presim=1))


def test_hooked_schedules_run_exactly(tiny):
    """A run whose hook adds bias schedules equals the reference run of the graph with them."""
    from spikec.conversion.graphs import replace_nodes

    g = compile_(tiny)
    x_int = g.encode(tiny[1][:4].numpy())
    rng = np.random.default_rng(1)

    def schedule(layer, _drive):
        import dataclasses

        return dataclasses.replace(layer, bias_schedule=rng.integers(-300, 300, (3, layer.shape[0])))

    hooked, replaced = run_with_layer_hook(g, x_int, 6, schedule)
    ref = spikec.run(replace_nodes(g, replaced), x_int, 6, backend="reference")
    assert np.array_equal(hooked.output, ref.output) and hooked.saturations == ref.saturations


def test_a_method_name_is_registered_once():
    """register() refuses to replace a method silently; the shipped ones all take the FTBC / SRP
    options, ecl its own too."""
    from spikec.compiler import methods

    with pytest.raises(UnsupportedError, match="already registered"):
        methods.register(dataclasses.replace(methods.get("qcfs"), v_init=0.0))
    assert methods.register(methods.get("qcfs")) is methods.get("qcfs")     # the same again: no-op
    for name in ("qcfs", "opi", "maxnorm", "robust", "ftbc", "srp", "ecl"):
        assert {"ftbc", "srp_presim"} <= set(methods.get(name).options), name
    assert {"kappa", "gate"} <= set(methods.get("ecl").options) and methods.get("ecl").signed


def test_a_target_name_is_registered_once():
    from spikec.compiler import targets

    loihi = targets.get("loihi")
    with pytest.raises(UnsupportedError, match="already registered"):
        targets.register(dataclasses.replace(loihi, state_bits=32))
    try:
        assert targets.register(dataclasses.replace(loihi, state_bits=32), replace=True).state_bits == 32
    finally:
        targets.register(loihi, replace=True)
