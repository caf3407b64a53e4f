"""layer_errors: per-layer SNN rate vs ANN activation; exact on a one-layer case worked by hand."""

from __future__ import annotations

import torch
from torch import nn

import spikec
from spikec.analysis.layer_error import layer_errors
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
