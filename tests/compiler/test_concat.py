"""Channel concatenation: how it lowers (edges per source, no extra neurons) and that every backend
runs the result bit for bit like the reference interpreter."""

from __future__ import annotations

import pytest
import torch
from zoo import CatMix, DenseCat, InceptionCat

import spikec
from spikec.backends import available

X, CAL = torch.rand(2, 1, 8, 8), torch.rand(32, 1, 8, 8)


def _compile(model):
    torch.manual_seed(0)
    return spikec.compile(model.eval(), X, method="robust", calibration=CAL)


def _padded_rows(edges) -> int:
    """Output channels / features of weighted ops whose weights are all zero (zero padding)."""
    count = 0
    for e in edges:
        for op in e.ops:
            if hasattr(op, "weight"):
                count += int((abs(op.weight).reshape(op.weight.shape[0], -1).sum(1) == 0).sum())
    return count


def test_activation_of_a_concatenation_is_one_layer_per_part():
    torch.manual_seed(0)
    graph = _compile(DenseCat("relu"))
    names = [p.name for p in graph.populations]
    # act = relu(bn(cat[stem, c1])) is relu(bn(stem)) next to relu(bn(c1)): one layer per part
    assert names == ["input", "stem.2", "c1.2", "act.c0_6", "act.c6_10", "act2", "fc"]
    assert [e.src for e in graph.in_edges("act.c0_6")] == ["stem.2"]
    assert [e.src for e in graph.in_edges("act.c6_10")] == ["c1.2"]
    assert sum(graph.node(n).shape[0] for n in ("act.c0_6", "act.c6_10")) == 10
    # c2 reads the two parts with its kernel's two input-channel slices
    assert sorted(e.src for e in graph.in_edges("act2")) == ["act.c0_6", "act.c6_10"]
    assert sorted(e.src for e in graph.in_edges("fc")) == ["act2", "c1.2", "stem.2"]
    rows = {r["name"]: r for r in graph.meta["layers"]}
    assert rows["act.c0_6"]["channels"] == [0, 6] and rows["act.c6_10"]["channels"] == [6, 10]
    assert rows["act2"]["channels"] is None


def test_concatenated_branches_store_no_zero_padding():
    for model in (DenseCat("relu"), InceptionCat(), CatMix()):
        graph = _compile(model)
        assert _padded_rows(graph.edges) == 0, type(model).__name__
    # a concatenation added to a full-width conv from another source: the activation splits where
    # the concatenated parts are, each part's identity is a depthwise op, the conv's rows are split
    mix = _compile(CatMix())
    assert [e.src for e in mix.in_edges("acts.3.c0_3")] == ["acts.2", "acts.0"]
    assert [e.src for e in mix.in_edges("acts.3.c3_6")] == ["acts.2", "acts.1"]
    assert all(e.ops[0].groups == 3 for e in mix.edges if e.dst.startswith("acts.3.") and e.src != "acts.2")
    graph = _compile(InceptionCat())
    parts = ["act.c0_4", "act.c4_8", "act.c8_10"]
    assert [p.name for p in graph.if_layers][1:4] == parts
    for name, rows in zip(parts, (4, 4, 2)):
        (edge,) = graph.in_edges(name)
        assert edge.src == "stem.1" and edge.ops[0].weight.shape[0] == rows
    report = {r["name"]: r for r in spikec.compiler.report(graph)}
    meta = {r["name"]: r for r in graph.meta["layers"]}
    assert all(report[n]["weight_exp"] == meta[n]["weight_exp"] for n in parts)


@pytest.mark.slow
def test_every_backend_runs_concatenated_nets_bit_for_bit():
    backends = tuple(b for b in ("torch", "brian2", "lava") if b in available())
    for model in (DenseCat("relu"), InceptionCat(), CatMix()):
        torch.manual_seed(0)
        graph = _compile(model)
        report = spikec.verify(graph, graph.encode(X.numpy()), steps=4, backends=backends)
        assert report.equal, report


def test_reference_resnet_and_densenet_compile_and_run_exactly():
    from spikec.models import small_densenet, small_resnet

    x = torch.rand(2, 1, 28, 28)
    for factory in (small_resnet, small_densenet):
        torch.manual_seed(0)
        graph = spikec.compile(factory().eval(), x, method="robust", calibration=torch.rand(16, 1, 28, 28))
        assert any(len(graph.in_edges(p.name)) > 1 for p in graph.if_layers)   # joins / concatenations
        xi = graph.encode(x.numpy())
        torch_out = spikec.run(graph, xi, 3, backend="torch", record=True)
        ref = spikec.run(graph, xi, 3, backend="reference", record=True)
        assert all((torch_out.spikes[k] == ref.spikes[k]).all() for k in ref.spikes)
        assert (torch_out.output == ref.output).all()
