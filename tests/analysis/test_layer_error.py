"""layer_errors: per-layer SNN rate vs ANN activation; exact on a one-layer case worked by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikec
from spikec.analysis.layer_error import firing_balance, layer_errors
from spikec.errors import InputDataError
from spikec.quantize import QCFS


def test_first_layer_rate_matches_the_quantised_activation_at_t_equal_l():
    torch.manual_seed(0)
    act = QCFS(levels=4, threshold=1.0)
    model = nn.Sequential(nn.Linear(6, 5), act, nn.Linear(5, 3)).eval()
    x = torch.rand(40, 6)
    graph = spikec.compile(model, x[:1], method="qcfs", target="int32")
    rows = layer_errors(graph, model, x, steps=(1, 4, 8))
    assert [r["layer"] for r in rows] == [layer.name for layer in graph.if_layers]
    row = rows[0]
    # constant input, v_init theta/2: after L=4 steps the rate is the L-level quantised clip, as in the
    # ANN, up to the integer rounding of the weights (tiny); at T=1 it can only be 0 or 1
    assert row["error"][4] < 0.02
    assert row["error"][1] > row["error"][4]
    assert 0 <= row["snn_rate"][8] <= 1 and abs(row["ann_rate"] - row["snn_rate"][4]) < 0.02


def _early_then_negative(theta_neg=None):
    """One IF neuron (theta 4, v_init 2) driven +4 at k=1 and -3 at k=2: it spikes at k=1 although the
    summed input (+1) warrants no spike over two steps."""
    layer = spikec.IF("l", (1,), theta=4, v_init=2, theta_neg=theta_neg, gate="net" if theta_neg else "none")
    return spikec.Graph([spikec.Input("x", (2,), encoding="spikes"), layer, spikec.Readout("out", (1,))],
                        [spikec.Edge("x", "l", (spikec.Dense([[4, -3]]),)),
                         spikec.Edge("l", "out", (spikec.Dense([[1]]),))]).validate()


def test_firing_balance_counts_an_early_spike_as_over_firing_and_a_negative_spike_undoes_it():
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])   # [batch, time, channels] spike input
    plain = firing_balance(_early_then_negative(), x, steps=(1, 2))
    # k=1: v = 6 -> spike; the even count of +4 in one step is floor((2 + 4) / 4) = 1: balanced.
    # k=2: v = 2 - 3 = -1, net 1; the even count of +1 in two steps is floor((2 + 1) / 4) = 0: over.
    assert plain == [{"layer": "l", "over": {1: 0.0, 2: 1.0}, "under": {1: 0.0, 2: 0.0}}]
    signed = firing_balance(_early_then_negative(theta_neg=1), x, steps=(1, 2))
    # k=2: v = -1 <= -1 with net 1 > 0 -> a -1 spike, v = 3, net 0 = the even count
    assert signed[0]["over"] == {1: 0.0, 2: 0.0} and signed[0]["under"] == {1: 0.0, 2: 0.0}


@pytest.mark.parametrize("x, kwargs, match", [
    (torch.zeros((0, 2, 2)), {}, "at least one sample"),
    (torch.tensor([[[1.0, 0.0]]]), {"steps": ()}, "steps must be positive ints"),
    (torch.tensor([[[1.0, 0.0]]]), {"steps": (0, 2)}, "steps must be positive ints"),
    (torch.tensor([[[1.0, 0.0]]]), {"steps": (2.5,)}, "steps must be positive ints"),
    (torch.tensor([[[1.0, 0.0]]]), {"chunk": 0}, "chunk must be a positive int"),
])
def test_firing_balance_bad_arguments_are_typed_errors(x, kwargs, match):
    with pytest.raises(InputDataError, match=match):
        firing_balance(_early_then_negative(), x, **kwargs)
