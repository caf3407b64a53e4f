"""spikec.analysis.diagnostics: each warning fires on the case it names and stays quiet otherwise."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import spikec
from spikec.analysis.diagnostics import accuracy_falls, collapsed_thresholds, dead_channels, silent_layers
from spikec.datasets import digits
from spikec.models import small_cnn
from spikec.quantize import replace_relu, train


def _conv_graph(theta) -> spikec.Graph:
    """Input [1, 3, 3] -> 1x1 conv with 4 output channels (channel c gets weight c) -> readout."""
    w = np.arange(4).reshape(4, 1, 1, 1)
    return spikec.Graph(
        [spikec.Input("x", (1, 3, 3)), spikec.IF("h", (4, 3, 3), theta=np.array(theta), v_init=np.array(0)),
         spikec.Readout("out", (2,))],
        [spikec.Edge("x", "h", (spikec.Conv2d(w),)),
         spikec.Edge("h", "out", (spikec.Flatten(), spikec.Dense(np.ones((2, 36), np.int64))))])


def test_dead_channels_only_when_most_channels_never_fire():
    x = np.full((2, 1, 3, 3), 2)
    # per step channel c receives 2c; T=4 is 6 hardware steps: with theta 30 only channel 3 (36 in all) fires
    trace = spikec.run(_conv_graph(30), x, 4, backend="reference", record=True)
    found = dead_channels(_conv_graph(30), trace.spikes)
    assert [(f.code, f.where) for f in found] == [("dead-channels", "h")]
    assert "3 of 4 channels" in found[0].message
    lively = spikec.run(_conv_graph(7), x, 4, backend="reference", record=True)   # channel 0 only is dead
    assert dead_channels(_conv_graph(7), lively.spikes) == []


def test_silent_layer_and_a_layer_starting_after_the_run():
    g = _conv_graph(7)
    assert [f.code for f in silent_layers(g, {"h": 0}, 10)] == ["silent-layer"]
    assert silent_layers(g, {"h": 3}, 10) == []
    late = silent_layers(g, {"h": 0}, 1)
    assert "run more steps" in late[0].hint


def test_collapsed_threshold_against_the_other_layers():
    rows = [{"name": f"l{i}", "theta_float": lam, "notes": {"threshold_from": "clip"}}
            for i, lam in enumerate((1.0, 0.9, 0.01, 1.2))]
    g = spikec.Graph(_conv_graph(7).populations, _conv_graph(7).edges, meta={"layers": rows})
    assert [f.where for f in collapsed_thresholds(g)] == ["l2"]
    rows[2]["notes"] = {"threshold_from": "calibration"}
    assert collapsed_thresholds(g) == []


def test_accuracy_falls():
    assert accuracy_falls([50, 80, 90, 85], 100)[0].where == "T=4"
    assert accuracy_falls([50, 80, 90, 89], 100) == []       # one sample: noise
    assert accuracy_falls([50, 80, 90, 95], 100) == []


@pytest.mark.slow   # two training runs
def test_training_at_chance_level_warns():
    split = digits()
    data = (split.x_train[:128], split.y_train[:128])
    torch.manual_seed(0)
    broken = replace_relu(small_cnn(8, channels=4), "qcfs", 4, threshold=8.0)
    with pytest.warns(RuntimeWarning, match="training accuracy .* is at chance level"):
        train(broken, data, epochs=1, lr=1e4, progress=False)
    torch.manual_seed(0)
    healthy = replace_relu(small_cnn(8, channels=4), "qcfs", 4, threshold=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        train(healthy, data, epochs=8, lr=0.05, optimizer="adam", batch_size=32, progress=False)
