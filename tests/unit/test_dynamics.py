"""spikec.ir.dynamics is the one definition of the IF step: hand checks of it, and the torch
backend's fused scan and the Brian2 model's abstract code compared with it on random states."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spikec.ir import IF, dynamics


@st.composite
def layers_and_currents(draw, max_n: int = 5, max_steps: int = 8):
    """A random IF layer (small state_bits, so saturation happens) and input currents
    [steps, batch, n] for it."""
    n = draw(st.integers(1, max_n))
    batch = draw(st.integers(1, 3))
    steps = draw(st.integers(1, max_steps))
    ints = lambda lo, hi, shape: np.array(draw(st.lists(st.integers(lo, hi), min_size=int(np.prod(shape)),  # noqa: E731
                                                        max_size=int(np.prod(shape))))).reshape(shape)
    per = lambda lo, hi: ints(lo, hi, draw(st.sampled_from([(), (n,)])))  # noqa: E731
    signed = draw(st.booleans())
    schedule = None
    if draw(st.booleans()):
        schedule = ints(-6, 6, (draw(st.integers(1, steps + 1)), n))
    layer = IF("l", (n,), theta=per(1, 20), v_init=per(-10, 10), bias=per(-4, 4), bias_schedule=schedule,
               theta_neg=per(1, 20) if signed else None,
               gate=draw(st.sampled_from(["none", "net"])) if signed else "none",
               presim=draw(st.integers(0, 3)), reset=draw(st.sampled_from(["subtract", "zero"])),
               state_bits=draw(st.integers(5, 8)))
    return layer, ints(-25, 25, (steps, batch, n))


def reference_run(layer: IF, currents: np.ndarray):
    """Iterate dynamics.if_step: (spikes [steps, B, n], v [steps, B, n], saturations)."""
    params = dynamics.if_params(layer, currents.shape[1])
    state = dynamics.initial_state(params)
    spikes, volts = [], []
    for k, current in enumerate(currents, start=1):
        state, out = dynamics.if_step(params, state, current, k)
        spikes.append(out)
        volts.append(state.v)
    return np.stack(spikes), np.stack(volts), state.saturations


def test_step_by_hand_subtract_signed_net_gate():
    """theta 5, theta_neg 3, gate net: k=1 v = 6 -> +1, v = 1; k=2 v = -3 -> -1 (net 1 > 0), v = -3 + 5
    = 2 (a -1 spike gives back theta); k=3 v = -4 <= -3 but the gate is shut (net 0): no spike."""
    layer = IF("l", (1,), theta=5, theta_neg=3, gate="net")
    spikes, volts, sat = reference_run(layer, np.array([6, -4, -6])[:, None, None])
    assert spikes[:, 0, 0].tolist() == [1, -1, 0] and volts[:, 0, 0].tolist() == [1, 2, -4] and sat == 0


def test_step_saturates_zero_resets_and_latches():
    """state_bits 4 (|v| <= 7), theta 7, zero reset, presim 2, bias 1: k=1 v = 9 -> 7 (clipped),
    fires, v = 0; k=2 v = 1, latch mask = 1, v = v_init = 2; k=3 v = 2 + 1 + 5 = 8 -> 7 fires."""
    layer = IF("l", (1,), theta=7, v_init=2, bias=1, presim=2, reset="zero", state_bits=4)
    spikes, volts, sat = reference_run(layer, np.array([6, 0, 5])[:, None, None])
    assert spikes[:, 0, 0].tolist() == [1, 0, 1] and volts[:, 0, 0].tolist() == [0, 2, 0] and sat == 2


def test_bias_schedule_counts_in_local_steps():
    layer = IF("l", (1,), theta=100, bias_schedule=[[3], [-1]])
    _, volts, _ = reference_run(layer, np.zeros((4, 1, 1), np.int64))
    assert volts[:, 0, 0].tolist() == [3, 2, 2, 2]


@given(layers_and_currents())
def test_if_step_does_not_modify_its_arguments(case):
    layer, currents = case
    params = dynamics.if_params(layer, currents.shape[1])
    state = dynamics.initial_state(params)
    for k, current in enumerate(currents, start=1):
        before = [a.copy() for a in (state.v, state.mask, state.net, current)]
        new, _ = dynamics.if_step(params, state, current, k)
        assert all((a == b).all() for a, b in zip(before, (state.v, state.mask, state.net, current)))
        state = new


@given(layers_and_currents(), st.sampled_from(["float32", "int64"]))
def test_torch_scan_equals_if_step(case, dtype_name):
    """torch_ops.if_scan (the torch backend's fused, in-place scan) on the drive current + bias +
    bias schedule gives the spikes, membranes and saturation count of dynamics.if_step."""
    torch = pytest.importorskip("torch")
    from spikec.backends.torch import ops as torch_ops

    layer, currents = case
    steps, batch = currents.shape[:2]
    params = dynamics.if_params(layer, batch)
    drive = []
    for k in range(1, steps + 1):
        d = currents[k - 1] + params.bias
        if params.bias_schedule is not None and k <= len(params.bias_schedule):
            d = d + params.bias_schedule[k - 1]
        drive.append(torch.tensor(d, dtype=getattr(torch, dtype_name)))
    got = torch_ops.if_scan(layer, drive, batch, getattr(torch, dtype_name), torch.device("cpu"),
                            clamp=True, record_v=True)
    spikes, volts, saturations = reference_run(layer, currents)
    assert np.array_equal(got.spikes.numpy(), spikes)
    assert np.array_equal(got.voltages.numpy().astype(np.int64), volts)
    assert got.saturations == saturations


def _brian2_neuron(code: str, layer: IF, j: int, currents: np.ndarray):
    """Execute the Brian2 abstract code of one IF step, line by line in Python, for neuron j of a
    layer starting at hardware step 1; returns the neuron's (outs, vs, n_sat)."""
    params = dynamics.if_params(layer)
    sched = params.bias_schedule
    ns = {"clip": lambda x, lo, hi: min(max(x, lo), hi), "start": 1, "n": layer.shape[0], "i": j,
          "v_max": params.limit, "presim": layer.presim, "v": int(params.v_init[j]), "n_sat": 0,
          "theta": int(params.theta[j]), "bias": int(params.bias[j]), "v_init": int(params.v_init[j]),
          "mask": 1, "net": 0, "bias_schedule": lambda t, i: int(sched[t][i]) if t < len(sched) else 0}
    if params.theta_neg is not None:
        ns["theta_neg"] = int(params.theta_neg[j])
    outs, vs = [], []
    for t, current in enumerate(currents):
        ns.update(t_in_timesteps=t, t=t, I=int(current))
        exec(code, {"__builtins__": {"int": int, "min": min, "max": max}}, ns)
        outs.append(ns["out"])
        vs.append(ns["v"])
    return outs, vs, ns["n_sat"]


@given(layers_and_currents(max_n=3))
def test_brian2_abstract_code_equals_if_step(case):
    """brian2_model.if_update's text (what Brian2 compiles), executed per neuron, matches if_step."""
    pytest.importorskip("brian2")
    from spikec.backends.brian2.model import if_update

    layer, currents = case
    spec = {"has_bias": bool(np.any(layer.bias != 0)), "has_schedule": layer.bias_schedule is not None,
            "x_arrivals": [], "signed": layer.theta_neg is not None, "gate": layer.gate,
            "reset": layer.reset, "presim": layer.presim}
    code = if_update(spec)
    spikes, volts, saturations = reference_run(layer, currents)
    total_sat = 0
    for b in range(currents.shape[1]):
        for j in range(layer.shape[0]):
            outs, vs, n_sat = _brian2_neuron(code, layer, j, currents[:, b, j])
            assert outs == spikes[:, b, j].tolist() and vs == volts[:, b, j].tolist()
            total_sat += n_sat
    assert total_sat == saturations
