"""Channel concatenation: how it lowers (edges per source, no extra neurons) and that every backend
runs the result bit for bit like the reference interpreter."""

from __future__ import annotations

import torch
from zoo import CatMix, DenseCat, InceptionCat

import spikec
from spikec.backends import available

X, CAL = torch.rand(2, 1, 8, 8), torch.rand(32, 1, 8, 8)


def _compile(model):
    torch.manual_seed(0)
    return spikec.compile(model.eval(), X, method="robust", calibration=CAL)


def test_concatenation_adds_edges_not_neurons():
    torch.manual_seed(0)
    graph = _compile(DenseCat("relu"))
    names = [p.name for p in graph.populations]
    assert names == ["input", "stem.2", "c1.2", "act", "act2", "fc"]
    # act = relu(bn(cat[stem, c1])): one edge from each concatenated population
    assert sorted(e.src for e in graph.in_edges("act")) == ["c1.2", "stem.2"]
    assert graph.node("act").shape == (10, 8, 8)
    # fc reads pool(cat[cat[stem, c1], act2]): three sources, each with its own weight columns
    assert sorted(e.src for e in graph.in_edges("fc")) == ["act2", "c1.2", "stem.2"]


def test_branches_concatenated_before_an_activation_write_their_own_channels():
    torch.manual_seed(0)
    graph = _compile(InceptionCat())
    branches = graph.in_edges("act")
    assert [e.src for e in branches] == ["stem.1"] * 3
    written = [set((abs(e.ops[0].weight).sum(axis=(1, 2, 3)) > 0).nonzero()[0].tolist()) for e in branches]
    assert written[0] <= set(range(0, 4)) and written[1] <= set(range(4, 8)) and written[2] <= {8, 9}
    row = next(r for r in graph.meta["layers"] if r["name"] == "act")
    assert list(row["weight_exp"]) == list(row["edge_weight_error"]) == ["stem.1", "stem.1#2", "stem.1#3"]
    assert next(r for r in spikec.compiler.report(graph) if r["name"] == "act")["weight_exp"] == row["weight_exp"]


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
