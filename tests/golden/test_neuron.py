"""Golden tests of the IF neuron step (nodes.IF docstring), worked out by hand, on every backend
of the registry (spikec.backends.names(); the ones not installed here are skipped, saying why;
all but the reference interpreter and torch run in the slow tier).

Most graphs are  x --Dense(I)--> l (IF) --Dense(I)--> out (Readout). Timing (SEMANTICS.md §2):
the input emits at t >= 1, the edge delivers at t + 1, so l starts at t = 2 and its local step k
is hardware step t = k + 1, i.e. row k of the recorded [hardware_steps, B, ...] arrays. The
readout starts at t = 3; its evaluated step j (1..T, after `skip`) sums what l emitted at local
step k = skip + j.
"""

from __future__ import annotations

import numpy as np
import pytest

import spikec
from spikec import backends
from spikec.errors import BackendError
from spikec.ir import IF, Dense, Edge, Graph, Input, Readout

FAST = ("reference", "torch")
BACKENDS = [pytest.param(name, marks=() if name in FAST else pytest.mark.slow) for name in backends.names()]


def chain(n=1, x_delay=0, encoding="current", readout_weight=1, readout=None, **if_kwargs) -> Graph:
    """x (n,) -> l (n,) IF -> out (n,) through identity weights."""
    eye = np.eye(n, dtype=np.int64)
    return Graph([Input("x", (n,), encoding=encoding, value_bits=6), IF("l", (n,), **if_kwargs),
                  readout or Readout("out", (n,))],
                 [Edge("x", "l", (Dense(eye),), delay=x_delay),
                  Edge("l", "out", (Dense(readout_weight * eye),))]).validate()


def run(graph, x, steps, backend):
    try:
        backends.get(backend)
    except BackendError as err:
        pytest.skip(str(err))
    return spikec.run(graph, np.asarray(x), steps, backend=backend, record=True, record_v=True)


def local(trace, steps=None, start=2):
    """Spikes and v of layer l at local steps 1..steps, sample-major: ([B, steps, n], [B, steps, n])."""
    s, v = trace.spikes["l"][start - 1:], trace.voltages["l"][start - 1:]
    if steps is not None:
        s, v = s[:steps], v[:steps]
    return s.transpose(1, 0, 2), v.transpose(1, 0, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_half_theta_init_rounds_rate_to_nearest(backend):
    """theta = 10, v_init = 5, constant current a <= theta, subtract reset: after k steps
    v = 5 + k*a - 10*n_k stays in [0, 10) and at most one spike fits per step, so
    n_k = floor((5 + k*a) / 10) = round_half_up(k*a / 10). For T = 8:
    a:  0  1    2    3    4    5    7    10
    8a/10: 0 0.8 1.6  2.4  3.2  4.0  5.6  8.0   ->  n = 0 1 2 2 3 4 6 8."""
    a = np.array([0, 1, 2, 3, 4, 5, 7, 10])
    steps = 8
    trace = run(chain(theta=10, v_init=5), a[:, None], steps, backend)
    expected = np.floor(steps * a / 10 + 0.5).astype(np.int64)
    assert expected.tolist() == [0, 1, 2, 2, 3, 4, 6, 8]
    assert trace.output[:, 0].tolist() == expected.tolist()
    # a = 3 by hand: v = 8, 11->1 (spike), 4, 7, 10->0 (spike: v == theta fires), 3, 6, 9
    spikes, volts = local(trace, steps)
    assert spikes[3, :, 0].tolist() == [0, 1, 0, 0, 1, 0, 0, 0]
    assert volts[3, :, 0].tolist() == [8, 1, 4, 7, 0, 3, 6, 9]


@pytest.mark.parametrize("backend", BACKENDS)
def test_threshold_is_greater_or_equal(backend):
    """theta = 4, a = 2: v = 2, 4 -> fires at equality -> 0, 2, 4 -> fires -> 0."""
    trace = run(chain(theta=4), [[2]], 4, backend)
    spikes, volts = local(trace, 4)
    assert spikes[0, :, 0].tolist() == [0, 1, 0, 1]
    assert volts[0, :, 0].tolist() == [2, 0, 2, 0]
    assert trace.voltages["l"][0, 0, 0] == 0          # t = 1, before start: v_init
    assert trace.spikes["l"][0, 0, 0] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_spikes_without_gate(backend):
    """theta = theta_neg = 5, a = -3: v = -3, -6 -> -1 spike, v = -1; -4; -7 -> spike, -2;
    -5 -> spike at equality, 0; -3. Readout over T = 6: -3."""
    trace = run(chain(theta=5, theta_neg=5), [[-3]], 6, backend)
    spikes, volts = local(trace, 6)
    assert spikes[0, :, 0].tolist() == [0, -1, 0, -1, -1, 0]
    assert volts[0, :, 0].tolist() == [-3, -1, -4, -2, 0, -3]
    assert trace.output.tolist() == [[-3]]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("gate, expected, readout", [
    # k=1: v = 6 -> +1, v = 1, net = 1.  k=2: v = -3 <= -3 and net > 0 -> -1, v = -3 + theta = 2,
    # net = 0 (a -1 spike gives back theta, the value it sent; theta_neg is only its trigger).
    # k=3: v = -2 > -3: no spike.  k=4: v = -6: "net" blocks (net = 0); "none" fires -> v = -1.
    # k=5: no input.
    ("net", [1, -1, 0, 0, 0], 0),
    ("none", [1, -1, 0, -1, 0], -1),
])
def test_negative_spike_gate(backend, gate, expected, readout):
    """Spike input on two channels through weights [6, -4]; theta = 5, theta_neg = 3.
    Input spikes: ch0 at t = 1, ch1 at t = 2, 3, 4 -> currents +6, -4, -4, -4 at k = 1..4."""
    graph = Graph([Input("x", (2,), encoding="spikes"),
                   IF("l", (1,), theta=5, theta_neg=3, gate=gate), Readout("out", (1,))],
                  [Edge("x", "l", (Dense([[6, -4]]),)), Edge("l", "out", (Dense([[1]]),))]).validate()
    x = np.array([[[1, 0], [0, 1], [0, 1], [0, 1]]])
    trace = run(graph, x, 5, backend)
    assert local(trace, 5)[0][0, :, 0].tolist() == expected
    assert trace.output.tolist() == [[readout]]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset, spikes, volts", [
    # subtract: 3, 6->2, 5->1, 4->0, 3, 6->2   zero: 3, 6->0, 3, 6->0, 3, 6->0
    ("subtract", [0, 1, 1, 1, 0, 1], [3, 2, 1, 0, 3, 2]),
    ("zero", [0, 1, 0, 1, 0, 1], [3, 0, 3, 0, 3, 0]),
])
def test_reset_subtract_vs_zero(backend, reset, spikes, volts):
    trace = run(chain(theta=4, reset=reset), [[3]], 6, backend)
    got_s, got_v = local(trace, 6)
    assert got_s[0, :, 0].tolist() == spikes
    assert got_v[0, :, 0].tolist() == volts
    assert trace.output.tolist() == [[sum(spikes)]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_bias_schedule_runs_in_local_time(backend):
    """theta = 10, bias = 1, bias_schedule = [8, -3], no current. The input edge has an extra
    delay of 2, so l starts at t = 4 (1 + 1 + 2) and its k = 1 is row 3.
    k=1: 0+1+8 = 9; k=2: 9+1-3 = 7; k=3: 8; k=4: 9; k=5: 10 -> spike, 0; k=6: 1."""
    graph = chain(theta=10, bias=1, bias_schedule=[8, -3], x_delay=2)
    trace = run(graph, [[0]], 6, backend)
    assert trace.latency == 4
    spikes, volts = local(trace, 6, start=4)
    assert volts[0, :, 0].tolist() == [9, 7, 8, 9, 0, 1]
    assert spikes[0, :, 0].tolist() == [0, 0, 0, 0, 1, 0]
    assert trace.voltages["l"][:3, 0, 0].tolist() == [0, 0, 0]     # before start: v_init, no bias


@pytest.mark.parametrize("backend", BACKENDS)
def test_srp_mask_latches_at_presim(backend):
    """theta = 4, v_init = 0, presim = 2, constant currents a = [3, 2, 1] (three neurons).
    a=3: v 3, 6->2 (spike); latch mask = (2 > 0) = 1, v = 0; 3, 6->2 (spike), 5->1 (spike), 4->0 (spike)
    a=2: v 2, 4->0 (spike, still emitted: the mask is all ones during presim); latch mask =
         (0 > 0) = 0, v = 0; 2, 4->0 (spike masked), 2, 4->0 (masked)
    a=1: v 1, 2; latch mask = 1, v = 0; 1, 2, 3, 4->0 (spike)
    Readout skip = 2, T = 4 sums k = 3..6: [3, 0, 1]."""
    readout = Readout("out", (3,), skip=2)
    trace = run(chain(3, theta=4, presim=2, readout=readout), [[3, 2, 1]], 4, backend)
    assert trace.latency == 4
    spikes, volts = local(trace, 6)
    assert spikes[0].T.tolist() == [[0, 1, 0, 1, 1, 1], [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]]
    assert volts[0].T.tolist() == [[3, 0, 3, 2, 1, 0], [2, 0, 2, 0, 2, 0], [1, 0, 1, 2, 3, 0]]
    assert trace.output.tolist() == [[3, 0, 1]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_saturation_clips_and_counts(backend):
    """state_bits = 4 -> |v| <= 7; theta = 7; T = 5 -> 7 hardware steps, l runs k = 1..6.
    a = +5: 5, 10 -> 7 (clipped) -> spike, 0; 5; 10 -> 7 -> spike, 0; 5; 10 -> 7 -> spike, 0
            -> 3 clips
    a = -5: -5, -10 -> -7, -12 -> -7, ... (clipped at k = 2..6)                     -> 5 clips
    Readout state_bits = 3 (|acc| <= 3), weight 2, sums l's k = 1..5: currents 0, 2, 0, 2, 0
    -> acc 0, 2, 2, 4 -> 3 (1 clip), 3 (exactly at the limit: not a clip)."""
    readout = Readout("out", (1,), state_bits=3)
    graph = chain(theta=7, state_bits=4, readout=readout, readout_weight=2)
    trace = run(graph, [[5], [-5]], 5, backend)
    spikes, volts = local(trace)
    assert volts[:, :, 0].tolist() == [[5, 0, 5, 0, 5, 0], [-5, -7, -7, -7, -7, -7]]
    assert spikes[:, :, 0].tolist() == [[0, 1, 0, 1, 0, 1], [0, 0, 0, 0, 0, 0]]
    assert trace.saturations == {"l": 3 + 5, "out": 1}
    assert trace.output.tolist() == [[3], [0]]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spike_at, steps, output", [(1, 1, 1), (3, 1, 0), (3, 3, 1)])
def test_one_step_per_edge_plus_extra_delay(backend, spike_at, steps, output):
    """x (spikes) -> a -> b -> out, theta = 1, delay 2 on a -> b. An input spike at t = s reaches a
    at s + 1 (a fires then), b at s + 1 + 1 + 2 = s + 4, and the readout at s + 5. b starts at
    t = 5, the readout at 6: latency 5, T + 5 hardware steps, evaluated t = 6 .. T + 5."""
    graph = Graph([Input("x", (1,), encoding="spikes"), IF("a", (1,), theta=1), IF("b", (1,), theta=1),
                   Readout("out", (1,))],
                  [Edge("x", "a", (Dense([[1]]),)), Edge("a", "b", (Dense([[1]]),), delay=2),
                   Edge("b", "out", (Dense([[1]]),))]).validate()
    x = np.zeros((1, spike_at, 1), np.int64)
    x[0, spike_at - 1, 0] = 1
    trace = run(graph, x, steps, backend)
    assert trace.latency == 5 and trace.hardware_steps == steps + 5
    fired = {name: np.flatnonzero(s[:, 0, 0]) + 1 for name, s in trace.spikes.items()}
    assert fired["a"].tolist() == [spike_at + 1]
    assert fired["b"].tolist() == ([spike_at + 4] if spike_at + 4 <= steps + 5 else [])
    assert trace.output.tolist() == [[output]]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("skip, expected", [
    # theta = 4, a = 1: l fires at k = 4, 8. T = 2 evaluated steps sum k = skip+1, skip+2,
    # plus the readout bias 5 on each evaluated step.
    (0, 0 + 2 * 5),      # k = 1, 2
    (3, 1 + 2 * 5),      # k = 4, 5
    (6, 1 + 2 * 5),      # k = 7, 8
    (4, 0 + 2 * 5),      # k = 5, 6
])
def test_readout_skip(backend, skip, expected):
    readout = Readout("out", (1,), bias=5, skip=skip)
    trace = run(chain(theta=4, readout=readout), [[1]], 2, backend)
    assert trace.latency == 2 + skip
    assert trace.output.tolist() == [[expected]]
