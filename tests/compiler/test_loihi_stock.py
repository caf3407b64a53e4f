"""Target "loihi-stock": graphs Lava's stock LIF / netx CUBA neurons can run (spikec.compiler.stock)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import spikec
from spikec.compiler import targets
from spikec.errors import UnsupportedError
from spikec.quantize import replace_relu


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 3))
    return replace_relu(model, kind="qcfs", levels=4, threshold=1.0).eval()


def test_target_is_registered_with_stock_formats():
    t = targets.get("loihi-stock")
    assert t.neurons == "stock" and t.state_bits == 18 and t.theta_max == 2**17 and t.weight_bits == 8
    assert targets.get("loihi").neurons == "spikec"


def test_stock_target_gives_zero_reset_rest_start_and_runs():
    x = torch.rand(6, 1, 8, 8)
    loihi = spikec.compile(_model(), x[:1], method="qcfs", calibration=x, target="loihi")
    stock = spikec.compile(_model(), x[:1], method="qcfs", calibration=x, target="loihi-stock")
    assert any(layer.reset == "subtract" for layer in loihi.if_layers)
    for layer in stock.if_layers:
        assert layer.reset == "zero" and not np.any(layer.v_init) and layer.theta_neg is None
        assert layer.presim == 0 and layer.bias_schedule is None and layer.state_bits == 18
        assert layer.theta.max() - 1 <= 2**17 - 1
    assert stock.meta["neurons"] == "stock" and stock.meta["target"] == "loihi-stock"
    assert all(row["v_init"] == 0 for row in stock.meta["layers"] if row["type"] == "IF")
    trace = spikec.run(stock, stock.encode(x.numpy()), 4, backend="reference")
    assert trace.output.shape == (6, 3)


def test_stock_target_refuses_signed_and_srp_methods():
    x = torch.rand(6, 1, 8, 8)
    with pytest.raises(UnsupportedError, match="SRP pre-simulation"):
        spikec.compile(_model(), x[:1], method="qcfs", calibration=x, target="loihi-stock", srp_presim=2)
