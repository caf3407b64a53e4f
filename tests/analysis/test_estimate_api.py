"""The estimate API: ANN baseline, typed errors, JSON, table, plots, and other backends' spikes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from rich.console import Console

import spikec
from spikec.analysis.ann import ann_from_graph, ann_from_model
from spikec.analysis.plots import save_plots
from spikec.analysis.report import print_estimate
from spikec.errors import InputDataError, UnsupportedError
from spikec.ir import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout, SumPool2d
from spikec.ir.connectivity import edge_matrix
from spikec.trace import Trace


def _cnn() -> Graph:
    rng = np.random.default_rng(3)
    return Graph(
        [Input("x", (2, 6, 6), encoding="current", value_bits=5),
         IF("c1", (4, 6, 6), theta=np.array(6)), IF("c2", (4, 3, 3), theta=np.array(3)),
         Readout("out", (3,))],
        [Edge("x", "c1", (Conv2d(rng.integers(-2, 4, (4, 2, 3, 3)), 1, 1),)),
         Edge("c1", "c2", (SumPool2d(2), Conv2d(rng.integers(-1, 3, (4, 4, 3, 3)), 1, 1))),
         Edge("c2", "out", (Flatten(), Dense(rng.integers(-2, 3, (3, 36)))))],
        meta={"layers": [{"name": "c1", "source": "features.0"}]}).validate()


def _x():
    return np.random.default_rng(4).integers(-15, 16, (2, 2, 6, 6))


def test_ann_from_model_by_hand():
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
                                torch.nn.Flatten(), torch.nn.Linear(36, 5))
    x = np.zeros((1, 2, 6, 6))
    x[0, 0, 0, 0] = 1.0                       # one nonzero input value, in a corner
    ann = ann_from_model(model, x)
    # conv: 144 outputs x 18 taps; linear: 36 x 5. ACs: 144 conv biases + 36 x 4 pool adds + 5 biases
    assert ann.macs == 144 * 18 + 36 * 5
    assert ann.acs == 144 + 144 + 5
    # the corner value reaches 2 x 2 output positions of each of 4 channels; the linear layer's input is
    # whatever the ReLU/pool let through
    hidden = model[:4](torch.as_tensor(x, dtype=torch.float32))
    assert ann.effective_macs == 4 * 4 + int((hidden != 0).sum()) * 5


def test_estimate_with_model_and_sources():
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU())
    est = spikec.estimate(_cnn(), _x(), 4, backend="reference", model=model)
    assert est.ann.source == "model" and est.ann.macs == 144 * 18
    assert est.layer("c1").source == "features.0"
    graph_est = spikec.estimate(_cnn(), _x(), 4, backend="reference")
    assert graph_est.ann.source == "graph"
    assert graph_est.ann.macs == sum(e.synapses for e in graph_est.edges)


def test_typed_errors():
    g, x = _cnn(), _x()
    with pytest.raises(UnsupportedError, match="unknown hardware"):
        spikec.estimate(g, x, 4, hardware="truenorth", backend="reference")
    with pytest.raises(UnsupportedError, match="unknown energy model"):
        spikec.estimate(g, x, 4, energy_model="gpu", backend="reference")
    with pytest.raises(InputDataError):
        spikec.estimate(g, x[:, :1], 4, backend="reference")
    with pytest.raises(InputDataError):
        spikec.estimate(g, x.astype(float), 4, backend="reference")
    with pytest.raises(InputDataError):
        spikec.estimate(g, x, 0, backend="reference")
    with pytest.raises(InputDataError):
        spikec.estimate("not a graph", x, 4, backend="reference")
    trace = spikec.run(g, x, 4, backend="reference")            # not recorded
    with pytest.raises(InputDataError, match="record=True"):
        spikec.estimate(g, x, 4, trace=trace)
    trace = spikec.run(g, x[:1], 4, backend="reference", record=True)   # other batch
    with pytest.raises(InputDataError, match="expected"):
        spikec.estimate(g, x, 4, trace=trace)


def test_json_table_and_plots(tmp_path):
    est = spikec.estimate(_cnn(), _x(), 4, backend="reference", hardware="loihi1")
    data = json.loads(est.to_json(tmp_path / "est.json"))
    assert data == json.loads((tmp_path / "est.json").read_text())
    assert data["sops"] == est.sops and data["cores"] == est.cores
    assert data["energy_band_j"][0] <= data["energy_j"] <= data["energy_band_j"][1]
    assert [row["name"] for row in data["layers"]] == ["x", "c1", "c2", "out"]
    assert data["energy_model"]["sources"] and data["hardware"]["name"] == "loihi1"
    console = Console(record=True, width=160)
    print_estimate(est, console=console, wide=True)
    text = console.export_text()
    assert "c1 [if] features.0" in text and "SNN energy per inference" in text and "mem KiB" in text
    paths = save_plots(est, tmp_path / "plots")
    assert [p.name for p in paths] == ["sops_per_layer.png", "firing_rates.png", "energy_snn_vs_ann.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def _other_backend(name: str):
    from spikec import backends

    if name not in backends.available():
        pytest.skip(f"backend {name} not available here")


_LAVA_CHILD = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from analysis.test_estimate_api import _cnn, _x
import spikec
trace = spikec.run(_cnn(), _x()[:1], 3, backend="lava", record=True)
np.savez(sys.argv[2], output=trace.output, latency=trace.latency, **trace.spikes)
"""


def _lava_trace(tmp_path) -> Trace:
    """The Lava run in a child process, so that a stuck Lava runtime fails this test instead of hanging."""
    out = tmp_path / "lava.npz"
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        subprocess.run([sys.executable, "-c", _LAVA_CHILD, tests_dir, str(out)], check=True, timeout=300,
                       capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        pytest.fail("the lava backend did not finish a 1-sample, 3-step run within 300 s")
    except subprocess.CalledProcessError as err:
        pytest.fail(f"the lava run failed:\n{err.stderr[-3000:]}")
    data = np.load(out)
    spikes = {k: data[k] for k in data.files if k not in ("output", "latency")}
    return Trace(output=data["output"], steps=3, latency=int(data["latency"]), spikes=spikes, backend="lava")


@pytest.mark.parametrize("name", ["torch", pytest.param("lava", marks=pytest.mark.slow)])
def test_counts_from_other_backends_spikes(name, tmp_path):
    _other_backend(name)
    g, x = _cnn(), _x()[:1]
    ref = spikec.estimate(g, x, 3, backend="reference")
    if name == "lava":
        other = spikec.estimate(g, x, 3, trace=_lava_trace(tmp_path))
    else:
        other = spikec.estimate(g, x, 3, backend=name)
    assert other.backend == name
    assert [(e.sops, e.input_macs) for e in other.edges] == [(e.sops, e.input_macs) for e in ref.edges]
    assert [(r.updates_active, r.spikes) for r in other.layers] == [(r.updates_active, r.spikes)
                                                                     for r in ref.layers]


def test_ann_from_graph_counts_adds_only_where_edges_overlap():
    """A residual join adds two currents per neuron; concatenated sources reach disjoint neurons."""
    graph = Graph(
        [Input("x", (4,)), IF("a", (3,), theta=np.array(2)), IF("b", (4,), theta=np.array(2), bias=np.array(1)),
         Readout("out", (2,))],
        [Edge("x", "a", (Dense(np.ones((3, 4), np.int64)),)),
         Edge("x", "b", (Dense(np.diag([1, 1, 1, 0])),)),                          # reaches b[0..2]
         Edge("a", "b", (Dense(np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 2, 0]])),)),  # b[2..3]
         Edge("b", "out", (Dense(np.ones((2, 4), np.int64)),))]).validate()
    ann = ann_from_graph(graph, [edge_matrix(e, graph.node(e.src).shape) for e in graph.edges])
    assert ann.macs == 12 + 3 + 2 + 8
    assert ann.acs == 4 + 1    # b's four biases + one neuron (b[2]) where two edges meet
