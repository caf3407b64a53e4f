"""spikec.check lists every unsupported construct in one pass; spikec.compile raises them all at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import spikec
from spikec.compiler.check import Problem
from spikec.errors import UnsupportedError


class SqueezeExcite(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.fc = nn.Conv2d(c, c, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.gate(self.fc(x.mean((2, 3), keepdim=True)))


class ThreeProblems(nn.Module):
    """A Hardswish, a squeeze-excite product and a LayerNorm, each in its own module."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Hardswish())
        self.se = SqueezeExcite(8)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 8 * 8, 16), nn.LayerNorm(16), nn.Linear(16, 4))

    def forward(self, x):
        return self.head(torch.relu(self.se(self.stem(x))))


X = torch.rand(2, 3, 8, 8)


def test_check_finds_all_three_problems_in_one_pass():
    problems = spikec.check(ThreeProblems().eval(), X)
    assert all(isinstance(p, Problem) for p in problems)
    modules = [p.module for p in problems]
    assert "stem.1" in modules and "head.2" in modules and any(m == "se" for m in modules)
    by_module = {p.module: p for p in problems}
    assert by_module["stem.1"].op == "Hardswish" and "piecewise-linear" in by_module["stem.1"].suggestion
    assert by_module["head.2"].op == "LayerNorm" and "BatchNorm" in by_module["head.2"].suggestion
    se = [p for p in problems if p.module == "se"]
    assert any("multiplies two" in p.message and "squeeze-and-excitation" in p.suggestion for p in se)
    assert all(p.source.startswith("test_check.py:") or p.source.endswith(".py:" + p.source.split(":")[-1])
               for p in problems if p.source)
    assert any(p.source.startswith("test_check.py:") for p in se)
    assert not any(p.fixable for p in problems)


def test_compile_raises_one_error_naming_every_module():
    with pytest.raises(UnsupportedError) as info:
        spikec.compile(ThreeProblems().eval(), X, method="robust", calibration=X)
    text = str(info.value)
    assert text.startswith(f"{len(spikec.check(ThreeProblems().eval(), X))} constructs cannot be converted")
    for path in ("stem.1 (Hardswish)", "head.2 (LayerNorm)", "se.mul"):
        assert path in text


def test_a_single_problem_keeps_its_message_and_gets_a_suggestion():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 3))
    with pytest.raises(UnsupportedError, match=r"^2 \(MaxPool2d\): max pooling") as info:
        spikec.compile(model, X, method="robust", calibration=X)
    assert "-> spikec.prepare" in str(info.value)
    (row,) = spikec.check(model, X)
    assert row.fixable and row.module == "2" and row.op == "MaxPool2d"


def test_problems_inside_torchvision_name_the_module_path():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.mobilenet_v3_small(num_classes=10).eval()
    problems = spikec.check(model, torch.rand(1, 3, 32, 32))
    assert problems
    se = [p for p in problems if "multiplies two" in p.message]
    assert se and all(p.module.startswith("features.") for p in se)
    assert all(p.source.startswith("misc.py:") or p.source.startswith("mobilenetv3.py:") for p in se)
    assert any(p.op == "Hardswish" for p in problems)


@pytest.mark.slow
def test_torchvision_resnet18_prepare_then_compile():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.rand(2, 3, 32, 32)
    before = spikec.check(model, x)
    assert [(p.module, p.op, p.fixable) for p in before] == [("maxpool", "MaxPool2d", True)]
    prepared = spikec.prepare(model, x)
    assert spikec.check(prepared, x) == []
    graph = spikec.compile(prepared, x, steps=2)
    assert sum(isinstance(n, spikec.IF) for n in graph.nodes.values()) == 17 + 1   # 17 clips + the pool relay
    inputs = graph.encode(x.numpy())
    a = spikec.run(graph, inputs, 2, backend="torch")
    b = spikec.run(graph, inputs, 2, backend="reference")
    np.testing.assert_array_equal(a.output, b.output)
