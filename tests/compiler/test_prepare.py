"""spikec.prepare: ReLU-like activations -> calibrated clip activations, max pools -> average pools."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spikec
from spikec.errors import ConversionError
from spikec.quantize import QCFS, ECLClip


def clips(model) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, (QCFS, ECLClip))}


def leftover_relus(model) -> list[str]:
    """Nodes of the prepared graph that are still a ReLU-like op or a max pool."""
    bad = {F.relu, torch.relu, torch.relu_, F.relu6, F.hardtanh, F.hardtanh_, F.max_pool2d, torch.max_pool2d}
    mods = dict(model.named_modules())
    out = []
    for n in model.graph.nodes:
        if n.op == "call_function" and n.target in bad or n.op == "call_method" and n.target in ("relu", "relu_"):
            out.append(n.name)
        if n.op == "call_module" and isinstance(mods[n.target], (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.MaxPool2d)):
            out.append(n.name)
    return out


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        y.relu_()                        # in place, result not reassigned: later uses see the ReLU
        return F.relu(y + x, inplace=True)


class Mixed(nn.Module):
    """Every spelling of a ReLU-like activation: module (used twice), functional, method, in place."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.six = nn.ReLU6()
        self.block = Block()
        self.conv3 = nn.Conv2d(4, 4, 3, padding=1)
        self.ht = nn.Hardtanh(0.0, 2.5)
        self.fc1 = nn.Linear(64, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = self.act(self.conv1(x))
        x = self.six(self.conv2(x)) + self.act(x)
        x = self.block(x)
        x = torch.relu(self.conv3(x)).relu()
        x = F.hardtanh(x, 0.0, 3.0) + F.relu6(x) + self.ht(x) + torch.clamp(x, 0, 1.5)
        x = F.avg_pool2d(x, 2).flatten(1)
        return self.fc2(torch.relu_(self.fc1(x)))


X = torch.rand(8, 1, 8, 8)


def test_every_relu_like_call_becomes_its_own_calibrated_clip():
    torch.manual_seed(0)
    model = Mixed().eval()
    pm = spikec.prepare(model, X, kind="qcfs", levels=4)
    acts = clips(pm)
    assert leftover_relus(pm) == []
    # act (twice), six, block: relu_ and relu, relu, .relu(), hardtanh, relu6, ht, clamp, relu_ (fc1)
    assert len(acts) == 12, sorted(acts)
    assert {"act", "act_1", "six", "ht", "block.relu", "block.relu_1"} <= set(acts)
    assert all(isinstance(m, QCFS) and m.levels == 4 for m in acts.values())
    caps = {"six": 6.0, "ht": 2.5}
    for name, cap in caps.items():
        assert 0 < float(acts[name].lam.detach()) <= cap
    assert isinstance(model.act, nn.ReLU)          # the user's model is untouched
    assert torch.isfinite(pm(X)).all()


def test_pure_clip_at_the_maximum_reproduces_the_model():
    """ECLClip without levels, threshold = max of its input: identical where inputs stay below the caps."""
    torch.manual_seed(1)
    model = Mixed().eval()
    pm = spikec.prepare(model, X, kind="ecl", levels=None, percentile=100)
    assert all(isinstance(m, ECLClip) for m in clips(pm).values())
    with torch.no_grad():
        torch.testing.assert_close(pm(X), model(X), rtol=1e-5, atol=1e-5)


def test_caps_bind_when_the_data_exceeds_the_bound():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 2)

        def forward(self, x):
            return self.fc2(F.hardtanh(self.fc1(x) * 100, 0, 0.5))

    x = torch.randn(64, 4)
    pm = spikec.prepare(Net(), x, kind="ecl", levels=None, percentile=100)
    (act,) = clips(pm).values()
    assert float(act.lam.detach()) == pytest.approx(0.5)


def test_calibration_batch_and_bad_arguments():
    torch.manual_seed(2)
    model = Mixed().eval()
    cal = torch.rand(16, 1, 8, 8)
    spikec.prepare(model, X[:1], calibration=cal)
    with pytest.raises(ConversionError, match="calibration samples have shape"):
        spikec.prepare(model, X, calibration=torch.rand(4, 1, 4, 4))
    with pytest.raises(ConversionError, match="unknown activation kind 'tcl'"):
        spikec.prepare(model, X, kind="tcl")


def stem(pool: nn.Module | None = None, fn=None, size: int = 16) -> nn.Module:
    """conv -> BN -> ReLU -> max pool -> conv -> ReLU -> (+ shortcut) -> head: a ResNet/GoogLeNet stem."""

    class Stem(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.relu = nn.ReLU(inplace=True)
            self.pool = pool
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(4, 5)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.pool(x) if fn is None else fn(x)
            x = self.relu(self.conv2(x)) + x
            return self.fc(torch.flatten(self.gap(x), 1))

    torch.manual_seed(size)
    model = Stem().eval()
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-0.2, 0.2)
        model.bn1.running_var.uniform_(0.5, 1.5)
    return model


STEMS = {
    "resnet": (lambda: stem(nn.MaxPool2d(3, 2, 1)), 16),                        # padded, 16 -> 8
    "resnet-odd": (lambda: stem(nn.MaxPool2d(3, 2, 1), size=15), 15),          # padded, 15 -> 8
    "googlenet": (lambda: stem(nn.MaxPool2d(3, 2, ceil_mode=True), size=14), 14),   # ceil: 14 -> 7
    "ceil+pad": (lambda: stem(nn.MaxPool2d(3, 2, 1, ceil_mode=True), size=12), 12),
    "functional": (lambda: stem(fn=lambda x: F.max_pool2d(x, 3, 2, 1)), 16),
    "plain": (lambda: stem(nn.MaxPool2d(2)), 16),
}


@pytest.mark.parametrize("name", sorted(STEMS))
def test_max_pool_stems_compile_and_backends_agree(name):
    make, size = STEMS[name]
    model = make()
    x = torch.rand(2, 3, size, size)
    pm = spikec.prepare(model, x)
    assert leftover_relus(pm) == []
    pools = [m for m in pm.modules() if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == 1
    with torch.no_grad():
        assert pm(x).shape == model(x).shape
    assert spikec.check(pm, x) == []
    graph = spikec.compile(pm, x, steps=6)
    ops = [type(op).__name__ for e in graph.edges for op in e.ops]
    if name == "plain":
        assert "SumPool2d" in ops
    else:   # padded / partial windows: a depthwise all-ones conv into a relay layer
        assert any(lay.activation == "relay" for lay in _float_layers(pm, x))
    inputs = graph.encode(x.numpy())
    a = spikec.run(graph, inputs, 6, backend="torch")
    b = spikec.run(graph, inputs, 6, backend="reference")
    np.testing.assert_array_equal(a.output, b.output)


def _float_layers(pm, x):
    from spikec.compiler import compile_model

    return compile_model(pm, x).float_graph.layers


def test_relu_networks_keep_working_with_replace_relu():
    from spikec.quantize import replace_relu

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 3))
    replace_relu(model)
    assert isinstance(model[2], QCFS)


def test_padded_pool_after_a_concatenation_keeps_the_clip_bound():
    """GoogLeNet / SqueezeNet: a ceil-mode or padded pool of concatenated branches (a relay with a clip)."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 3, 3, padding=1)
            self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv = nn.Conv2d(5, 4, 1)
            self.fc = nn.Linear(4 * 5 * 5, 3)

        def forward(self, x):
            x = torch.cat([F.relu(self.a(x)), F.relu(self.b(x))], 1)
            return self.fc(torch.flatten(F.relu(self.conv(self.pool(x))), 1))

    torch.manual_seed(3)
    x = torch.rand(2, 3, 10, 10)
    pm = spikec.prepare(Net().eval(), x)
    graph = spikec.compile(pm, x, steps=4)
    relay = [lay for lay in _float_layers(pm, x) if lay.activation == "relay"]
    assert len(relay) == 1 and relay[0].clip is not None
    inputs = graph.encode(x.numpy())
    np.testing.assert_array_equal(spikec.run(graph, inputs, 4, backend="torch").output,
                                  spikec.run(graph, inputs, 4, backend="reference").output)
