"""The compile report, meta round trips, and compiled graphs on the reference interpreter."""

from __future__ import annotations

import json

import numpy as np
from rich.console import Console
from zoo import data, trained

import spikec
from spikec.compiler import print_report, report


def compiled_resnet():
    return spikec.compile(trained("resnet"), data().x_test[:1], method="qcfs", steps=16)


def test_report_rows_and_graph_method_agree():
    graph = compiled_resnet()
    rows = report(graph)
    assert rows == graph.report()
    assert [r["name"] for r in rows] == graph.topo_order()
    json.dumps(rows)
    starts = graph.start_steps()
    for r in rows:
        assert r["start"] == starts[r["name"]]
        if r["type"] == "IF":
            assert r["theta"] == int(graph.node(r["name"]).theta)
            assert r["scale"] == r["theta"] / r["theta_float"]
            assert r["safe_steps"] is None or r["safe_steps"] >= 16


def test_print_report_shows_every_layer():
    graph = compiled_resnet()
    console = Console(record=True, width=250)
    print_report(graph, console=console)
    text = console.export_text()
    for name in graph.topo_order():
        assert name in text
    assert "method qcfs" in text and "latency 6" in text and "proved impossible within steps" in text


def test_report_of_a_hand_built_graph_has_structural_rows():
    graph = compiled_resnet()
    bare = spikec.Graph(graph.populations, graph.edges)
    rows = report(bare)
    assert rows[0] == {"name": "input", "type": "Input", "shape": [1, 8, 8], "start": 1}
    join = next(r for r in rows if len(r.get("weight_exp", {})) == 2)
    assert set(join) == {"name", "type", "shape", "start", "weight_exp"}
    assert join["weight_exp"] == {e.src: e.weight_exp for e in graph.in_edges(join["name"])}


def test_meta_survives_save_and_load(tmp_path):
    graph = compiled_resnet()
    spikec.save(graph, tmp_path / "g.h5")
    back = spikec.load(tmp_path / "g.h5")
    assert back.meta == json.loads(json.dumps(graph.meta))
    assert report(back) == report(graph)


def test_compiled_graph_is_bit_exact_on_reference_and_torch():
    graph = compiled_resnet()
    x = graph.encode(data().x_test[:2].numpy())
    ref = spikec.run(graph, x, 6, backend="reference", record=True)
    fast = spikec.run(graph, x, 6, backend="torch", record=True)
    assert np.array_equal(ref.output, fast.output)
    for name in ref.spikes:
        assert np.array_equal(ref.spikes[name], fast.spikes[name]), name
