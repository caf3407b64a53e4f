"""Target "loihi-sdnn": IF layers lowered to Lava's stock SigmaDelta neurons (spikec.compiler.sigma_delta)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_model import randomize_batchnorm
from torch import nn

import spikec
from spikec.compiler import targets
from spikec.compiler.sigma_delta import SATURATION_TWIN
from spikec.errors import UnsupportedError
from spikec.ir import run_reference
from spikec.models import small_resnet
from spikec.quantize import replace_relu


def _resnet():
    torch.manual_seed(0)
    return randomize_batchnorm(replace_relu(small_resnet(channels=4), kind="qcfs", levels=4, threshold=1.0)).eval()


def _qcfs_levels(model, x):
    """The ANN's QCFS activations as integer levels (0..L): what each sigma-delta layer should send."""
    levels = []
    for module in model.modules():
        if hasattr(module, "levels") and hasattr(module, "threshold"):
            module.register_forward_hook(lambda m, i, o: levels.append(
                torch.round(o / m.threshold * m.levels).to(torch.int64)))
    with torch.no_grad():
        model(x)
    return levels


def test_target_is_registered():
    t = targets.get("loihi-sdnn")
    assert t.neurons == "sigma-delta" and t.theta_power_of_two and t.weight_min == -127


def test_graph_shape_twins_and_exponents():
    x = torch.rand(4, 1, 8, 8)
    graph = spikec.compile(_resnet(), x[:1], method="qcfs", target="loihi-sdnn")
    assert not graph.if_layers and graph.input.encoding == "delta" and graph.readout.bias_steps == 1
    names = {p.name for p in graph.sigma_delta_layers}
    mains = {n for n in names if not n.endswith(SATURATION_TWIN)}
    assert names == mains | {n + SATURATION_TWIN for n in mains}
    for layer in graph.sigma_delta_layers:
        assert 0 <= layer.shift <= 7 and layer.vth == 0 and np.abs(layer.bias).max() <= 2**15 - 1
    assert graph.meta["neurons"] == "sigma-delta" and graph.meta["levels"] == 4
    assert min(e.weight_exp for e in graph.edges) < 0
    assert all(w.min() >= -127 for e in graph.edges for w in [op.weight for op in e.ops if hasattr(op, "weight")])


@pytest.mark.parametrize("clip, lag", [("output", 1), ("input", 0)])
def test_layers_send_the_clipped_quantized_activation_once(clip, lag):
    """Each layer sends its QCFS level once (the ANN's own level up to the edges' floors and the
    weights' rounding) and nothing afterwards; its twin's correction comes `lag` steps later; the
    readout is final at T=1, and both ways of clipping give the same readout."""
    model = _resnet()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    graph = spikec.compile(model, x[:1], method="qcfs", target="loihi-sdnn", sd_clip=clip)
    trace = run_reference(graph, graph.encode(x.numpy()), 3, record=True, every_step=True)
    starts = graph.start_steps()
    mains = [p for p in graph.sigma_delta_layers if not p.name.endswith(SATURATION_TWIN)]
    for layer, want in zip(mains, _qcfs_levels(model, x)):
        first = starts[layer.name] - 1
        own, twin = trace.spikes[layer.name], trace.spikes[layer.name + SATURATION_TWIN]
        assert not own[:first].any() and not own[first + 1:].any()
        assert not twin[:first + lag].any() and not twin[first + lag + 1:].any()
        level = own[first] - twin[first + lag]
        assert level.min() >= 0 and level.max() <= 4
        assert np.mean(np.abs(level - want.numpy())) < 0.1, layer.name
    assert all(np.array_equal(trace.outputs[0], out) for out in trace.outputs)
    other = spikec.compile(model, x[:1], method="qcfs", target="loihi-sdnn", sd_clip="input" if lag else "output")
    assert np.array_equal(run_reference(other, graph.encode(x.numpy()), 1).output, trace.output)
    assert (other.latency < graph.latency) == bool(lag)


def test_without_clip_the_relu_is_unbounded():
    x = torch.rand(4, 1, 8, 8)
    graph = spikec.compile(_resnet(), x[:1], method="qcfs", target="loihi-sdnn", sd_clip="none")
    assert not any(p.name.endswith(SATURATION_TWIN) for p in graph.sigma_delta_layers)


def test_refuses_features_of_if_dynamics():
    x = torch.rand(6, 1, 8, 8)
    with pytest.raises(UnsupportedError, match="SRP pre-simulation"):
        spikec.compile(_resnet(), x[:1], method="qcfs", calibration=x, target="loihi-sdnn", srp_presim=2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(UnsupportedError, match="power of two"):
        spikec.compile(model, x[:1], method="maxnorm", calibration=x, target="loihi-sdnn", sd_levels=6)


def test_saved_graph_round_trips(tmp_path):
    x = torch.rand(2, 1, 8, 8)
    graph = spikec.compile(_resnet(), x[:1], method="qcfs", target="loihi-sdnn")
    spikec.save(graph, tmp_path / "g.h5")
    back = spikec.load(tmp_path / "g.h5")
    xi = graph.encode(x.numpy())
    assert np.array_equal(spikec.run(back, xi, 2).output, spikec.run(graph, xi, 2).output)
