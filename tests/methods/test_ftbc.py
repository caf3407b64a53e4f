"""FTBC on a tiny layer, worked out by hand."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from spikec import IF, Dense, Edge, Graph, Input, Readout, run
from spikec.conversion import apply_srp, ftbc_calibrate
from spikec.conversion.ftbc import replay_errors, replay_step
from spikec.errors import ConversionError, UnsupportedError

# Two samples, two neurons (= channels), theta 4, v_init 2, constant currents X and ANN targets a:
X = torch.tensor([[3.0, 0.0], [1.0, 2.0]], dtype=torch.float64)
A = torch.tensor([[2.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
# Replay (m = v + X; s = 4 [m >= 4]; e = s - a; m' = m - e; s' = 4 [m' >= 4]; v = m' - s'):
#   sample 0, neuron 0 (X 3, a 2): k1 m=5 s=4 e=2 m'=3 v=3 | k2 m=6 s=4 e=2 m'=4 s'=4 v=0
#   sample 1, neuron 0 (X 1, a 0): k1 m=3 s=0 e=0 m'=3 v=3 | k2 m=4 s=4 e=4 m'=0 v=0
#   sample 0, neuron 1 (X 0, a 1): k1 m=2 s=0 e=-1 m'=3 v=3 | k2 m=3 s=0 e=-1 m'=4 s'=4 v=0
#   sample 1, neuron 1 (X 2, a 2): k1 m=4 s=4 e=2 m'=2 v=2 | k2 m=4 s=4 e=2 m'=2 v=2
# Sums of e over the batch, per step and channel: k1 [2+0, -1+2] = [2, 1]; k2 [2+4, -1+2] = [6, 1]
SUMS = [[2.0, 1.0], [6.0, 1.0]]


def tiny_graph():
    pops = [Input("x", (2,), value_bits=8), IF("l0", (2,), theta=np.array(4), v_init=np.array(2)),
            Readout("out", (2,))]
    eye = np.eye(2, dtype=np.int64)
    edges = [Edge("x", "l0", (Dense(eye),)), Edge("l0", "out", (Dense(eye),))]
    meta = {"layers": [{"name": "l0", "source": "act", "scale": 1.0}]}
    return Graph(pops, edges, meta).validate()


class Fixed(nn.Module):
    """Returns the hand-chosen ANN activations whatever the input."""

    def forward(self, x):
        return A.float()


def test_replay_errors_by_hand():
    layer = tiny_graph().node("l0")
    sums = replay_errors(lambda k: X, 2, A, layer)
    assert sums.tolist() == SUMS


@given(st.integers(0, 2 ** 32 - 1), st.sampled_from([torch.float32, torch.float64]), st.booleans())
def test_in_place_replay_equals_the_dynamics_rule(seed, dtype, scalar_theta):
    """The unsigned replay's in-place torch mirror gives the error sums of `replay_step` (the rule
    on spikec.ir.dynamics.fire / reset) on random states; quarter-unit targets keep every float
    operation exact, so the two must agree bit for bit."""
    rng = np.random.default_rng(seed)
    batch, channels, width, steps = rng.integers(1, 4), rng.integers(1, 4), rng.integers(1, 4), rng.integers(1, 7)
    theta = rng.integers(1, 9) if scalar_theta else rng.integers(1, 9, channels)
    layer = IF("l", (int(channels), int(width)), theta=np.asarray(theta), v_init=rng.integers(-4, 5, channels))
    drives = torch.tensor(rng.integers(-6, 10, (steps, batch, channels, width)), dtype=dtype)
    target = torch.tensor(rng.integers(0, 33, (batch, channels, width)) / 4, dtype=dtype)
    fast = replay_errors(lambda k: drives[k], int(steps), target, layer)

    full = lambda a: torch.tensor(np.broadcast_to(np.reshape(a, (-1, 1)), (channels, width)), dtype=dtype)  # noqa: E731
    v = full(layer.v_init).expand(target.shape).clone()
    sums = torch.zeros((steps, channels), dtype=torch.float64)
    for k in range(steps):
        v, _, e = replay_step(v, None, drives[k], target, full(layer.theta))
        sums[k] = e.double().sum(dim=(0, 2))
    assert torch.equal(fast, sums)


def test_calibrate_by_hand():
    model = nn.Sequential(OrderedDict(act=Fixed()))
    # 2 batches of the same 2 samples, alpha 0.3: the replay ignores the layer's own stored bias, so
    # every batch adds alpha * mean(e) again: mean(e) = SUMS / 2 = [[1, 0.5], [3, 0.5]]
    #   after batch 1: b = [[0.3, 0.15], [0.9, 0.15]];  after batch 2: b = [[0.6, 0.3], [1.8, 0.3]]
    # FTBC subtracts b, the IR adds the schedule: schedule = -round(b) = [[-1, 0], [-2, 0]]
    g = ftbc_calibrate(tiny_graph(), model, X.float(), alpha=0.3, batches=2, batch_size=2, steps=2)
    assert g.node("l0").bias_schedule.tolist() == [[-1, 0], [-2, 0]]
    assert g.meta["ftbc"]["alpha"] == 0.3 and g.meta["layers"][0]["source"] == "act"
    # the schedule acts at local steps 1, 2: neuron 0 of sample 0 gets 3 - 1 then 3 - 2 -> v 4 (+1), 1
    trace = run(g, X.numpy().astype(np.int64), 3, backend="reference", record=True)
    start = g.start_steps()["l0"]
    assert trace.spikes["l0"][start - 1: start + 2, 0, 0].tolist() == [1, 0, 1]


def test_calibrate_errors():
    model = nn.Sequential(OrderedDict(act=Fixed()))
    g = ftbc_calibrate(tiny_graph(), model, X.float(), batches=1, batch_size=2, steps=2)
    with pytest.raises(ConversionError):
        ftbc_calibrate(g, model, X.float())
    with pytest.raises(UnsupportedError):
        ftbc_calibrate(apply_srp(tiny_graph(), 2), model, X.float())
    bare = Graph(tiny_graph().populations, tiny_graph().edges)
    with pytest.raises(ConversionError):
        ftbc_calibrate(bare, model, X.float())
