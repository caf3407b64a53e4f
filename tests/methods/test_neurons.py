"""Method neurons on tiny hand-built graphs: theta/2 init, ECL-style signed spikes, SRP latch.

Every graph is run on the reference interpreter and the torch backend (they must agree bit for bit).
"""

import numpy as np
import pytest

from spikec import IF, Dense, Edge, Graph, Input, Readout, run
from spikec.conversion import apply_signed, apply_srp
from spikec.errors import ConversionError

BACKENDS = ["reference", "torch"]


def one_layer(n_in, weight, theta, v_init, encoding="current", **kw):
    weight = np.asarray(weight)
    n = weight.shape[0]
    pops = [Input("x", (n_in,), encoding=encoding, value_bits=12),
            IF("l0", (n,), theta=np.asarray(theta), v_init=np.asarray(v_init), **kw),
            Readout("out", (n,))]
    edges = [Edge("x", "l0", (Dense(weight),)), Edge("l0", "out", (Dense(np.eye(n, dtype=np.int64)),))]
    return Graph(pops, edges).validate()


@pytest.mark.parametrize("backend", BACKENDS)
def test_half_threshold_init_rounds_to_nearest(backend):
    theta = 8
    z = np.arange(0, theta + 1)                        # constant currents 0..theta
    g = one_layer(1, z[:, None], theta, theta // 2)
    for steps in (1, 2, 3, 4, 7, 16):
        counts = run(g, np.ones((1, 1), np.int64), steps, backend=backend).output[0]
        # soft reset, m(0) = theta/2: n = floor((T z + theta/2) / theta) = round-half-up(T z / theta)
        expected = np.clip(np.floor(steps * z / theta + 0.5), 0, steps)
        assert np.array_equal(counts, expected), (steps, counts, expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("gate", ["net", "none"])
def test_signed_neuron_negative_spike_rule(backend, gate):
    g = apply_signed(one_layer(2, [[6, -6]], 4, 2, encoding="spikes"), kappa=1.0, gate=gate)
    assert int(g.node("l0").theta_neg) == 4 and g.meta["ecl"] == {"kappa": 1.0, "gate": gate}
    x = np.array([[[1, 0], [0, 1], [0, 1], [0, 1]]])   # currents +6, -6, -6, -6 at local k = 1..4
    trace = run(g, x, 5, backend=backend, record=True, record_v=True)
    start = g.start_steps()["l0"]
    spikes = trace.spikes["l0"][start - 1: start + 3, 0, 0].tolist()
    volts = trace.voltages["l0"][start - 1: start + 3, 0, 0].tolist()
    # k=1: v = 2 + 6 = 8 >= 4 -> +1, v = 4.   k=2: v = -2 -> nothing (not <= -4).
    # k=3: v = -8 <= -4 and net = 1 > 0 -> -1, v = -8 + 4 = -4, net = 0.
    # k=4: v = -10: gate "net" blocks (net = 0); gate "none" fires -1 again, v = -6.
    if gate == "net":
        assert spikes == [1, 0, -1, 0] and volts == [4, -2, -4, -10]
    else:
        assert spikes == [1, 0, -1, -1] and volts == [4, -2, -4, -6]


def test_signed_kappa_and_errors():
    g = apply_signed(one_layer(1, [[1]], 10, 5), kappa=0.5)
    assert int(g.node("l0").theta_neg) == 5
    with pytest.raises(ConversionError):
        apply_signed(g)                                # already signed
    with pytest.raises(ConversionError):
        apply_signed(one_layer(1, [[1]], 10, 5), gate="ever")


@pytest.mark.parametrize("backend", BACKENDS)
def test_srp_mask_latches_at_tau(backend):
    tau = 3
    g = apply_srp(one_layer(3, [[3, 0, 0], [6, -8, -4]], 4, 2, encoding="spikes"), tau)
    assert g.node("l0").presim == tau and g.readout.skip == tau
    assert g.latency == 2 + tau                        # pipeline depth 2 + tau pre-simulation steps
    x = np.zeros((1, 9, 3), np.int64)
    x[0, :, 0] = 1                                     # input 0 on at every step
    x[0, 1:3, 1] = 1                                   # input 1 on at steps 2, 3
    x[0, 3:, 2] = 1                                    # input 2 on from step 4
    # currents at local k = 1..7: neuron 0: 3 always; neuron 1: 6, -2, -2, then 2, 2, ...
    # neuron 0 (theta 4, v0 2): v 5->1 (+1), 4->0 (+1), 3 -> latch: 3 > 0 keeps it, v = 2;
    #   then 5->1 (+1), 4->0 (+1), 3, 6->2 (+1)
    # neuron 1: v 8->4 (+1), 2, 0 -> latch: 0 is not > 0, masked, v = 2; then 4->0 (spike
    #   masked, membrane still resets), 2, 4->0 (masked), 2
    trace = run(g, x, 4, backend=backend, record=True, record_v=True)
    start = g.start_steps()["l0"]
    window = slice(start - 1, start - 1 + 7)
    assert trace.spikes["l0"][window, 0, 0].tolist() == [1, 1, 0, 1, 1, 0, 1]
    assert trace.spikes["l0"][window, 0, 1].tolist() == [1, 0, 0, 0, 0, 0, 0]
    assert trace.voltages["l0"][window, 0, 0].tolist() == [1, 0, 2, 1, 0, 3, 2]
    assert trace.voltages["l0"][window, 0, 1].tolist() == [4, 2, 2, 0, 2, 0, 2]
    # the readout skips the tau pre-simulation steps: it counts local k = 4..7 only
    assert trace.output[0].tolist() == [3, 0]
    assert trace.hardware_steps == 4 + 2 + tau


def test_srp_errors():
    g = apply_srp(one_layer(1, [[1]], 4, 2), 2)
    with pytest.raises(ConversionError):
        apply_srp(g, 2)
    with pytest.raises(ConversionError):
        apply_srp(one_layer(1, [[1]], 4, 2), 0)
