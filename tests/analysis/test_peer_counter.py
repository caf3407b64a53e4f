"""Cross-check against SpikingJelly's SynOpCounter where SpikingJelly is installed (skipped otherwise).

SpikingJelly counts, for binary spikes into conv / linear layers, every (spike, weight) use inside
the input (padding-aware) including zero weights. With all weights nonzero, binary spikes and no
pooling its count must equal ours; docs/estimate.md records the comparison.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import spikec
from spikec.ir import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout

op_counter = pytest.importorskip("spikingjelly.activation_based.op_counter")


def test_sops_match_spikingjelly():
    rng = np.random.default_rng(5)
    w0 = rng.integers(1, 4, (4, 1, 3, 3))            # all nonzero: SpikingJelly counts zero weights too
    conv = Conv2d(w0, stride=(2, 2), padding=(1, 2), groups=2)
    shape = conv.output_shape((2, 5, 4))
    w1 = rng.integers(1, 3, (3, int(np.prod(shape))))
    g = Graph([Input("x", (2, 5, 4), encoding="spikes"), IF("l0", shape, theta=np.array(3)),
               Readout("out", (3,))],
              [Edge("x", "l0", (conv,)), Edge("l0", "out", (Flatten(), Dense(w1)))]).validate()
    x = rng.integers(0, 2, (2, 6, 2, 5, 4))
    est = spikec.estimate(g, x, 6, backend="reference")
    trace = spikec.run(g, x, 6, backend="reference", record=True)

    tconv = torch.nn.Conv2d(2, 4, 3, stride=2, padding=(1, 2), groups=2, bias=False)
    tconv.weight.data = torch.as_tensor(w0, dtype=torch.float32)
    tlin = torch.nn.Linear(w1.shape[1], 3, bias=False)
    tlin.weight.data = torch.as_tensor(w1, dtype=torch.float32)
    counter = op_counter.SynOpCounter()
    with torch.no_grad(), op_counter.DispatchCounterMode([counter]):
        for t in range(min(x.shape[1], trace.hardware_steps)):
            tconv(torch.as_tensor(x[:, t], dtype=torch.float32))
    conv_sops = counter.get_total()
    counter = op_counter.SynOpCounter()
    with torch.no_grad(), op_counter.DispatchCounterMode([counter]):
        for step in trace.spikes["l0"]:
            tlin(torch.as_tensor(step.reshape(step.shape[0], -1), dtype=torch.float32))
    assert (conv_sops, counter.get_total()) == (est.edges[0].sops, est.edges[1].sops)
