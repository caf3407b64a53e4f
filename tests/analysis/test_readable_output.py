"""print() of the report, an estimate, a verify report and a trace: a short human summary within
80 columns (no raw dataclass dump), while the data stays available for JSON."""

from __future__ import annotations

import json

import pytest
import torch

import spikec
from spikec.datasets import digits
from spikec.models import small_cnn
from spikec.quantize import replace_relu


@pytest.fixture(scope="module")
def compiled():
    torch.manual_seed(0)
    model = replace_relu(small_cnn(8, channels=8), "qcfs", 4, threshold=1.0).eval()
    x = digits().x_test[:4]
    graph = spikec.compile(model, x[:1])
    return graph, graph.encode(x.numpy())


def _short(text: str, lines: int) -> None:
    assert 0 < len(text.splitlines()) <= lines, text
    assert max(map(len, text.splitlines())) <= 80, text
    assert "=" not in text.splitlines()[0] or "T=" in text.splitlines()[0]   # no field=value dump


def test_report(compiled):
    graph, _ = compiled
    rows = graph.report()
    text = str(rows)
    assert max(map(len, text.splitlines())) <= 80 and "theta" in text
    assert all(row["name"] in text for row in rows)
    assert json.loads(json.dumps(rows)) == list(rows)            # still plain JSON rows


def test_trace(compiled):
    graph, x = compiled
    trace = spikec.run(graph, x, 4, backend="reference", record=True)
    text = str(trace)
    _short(text, 6)
    assert "4 sample(s), T=4" in text and " ".join(map(str, trace.predictions())) in text


def test_estimate(compiled):
    graph, x = compiled
    est = spikec.estimate(graph, x, 4)
    text = str(est)
    _short(text, 6)
    assert not text.startswith("Estimate(") and "SOPs" in text and "energy" in text
    assert json.loads(est.to_json())["sops"] == est.sops


def test_verify(compiled):
    graph, x = compiled
    report = spikec.verify(graph, x[:1], 2, backends=("torch",))
    text = str(report)
    _short(text, 2)
    assert text.startswith("EQUAL: torch vs reference: 1 sample(s), T=2")
    broken = spikec.analysis.verify.VerifyReport(
        "reference", ["torch"], 2, 4, 1, [], [{"backend": "torch", "mismatches": 1, "first_sample": 0}], None, {})
    assert str(broken).startswith("MISMATCH") and "readout differs" in str(broken)


def test_dataset_verify_report():
    from spikec.analysis.verify_dataset import DatasetVerifyReport

    ok = DatasetVerifyReport("reference", ["torch"], 8, 100, None, 2)
    assert str(ok) == "EQUAL: torch match reference bit for bit on 100 samples (2 process(es)), T=8"
    bad = DatasetVerifyReport("reference", ["torch"], 8, 40, {"batch": 2, "sample": 37, "layer": "h",
                                                             "backend": "torch", "neuron": [3], "step": 5,
                                                             "values": {"reference": 1, "torch": 0}})
    assert str(bad).startswith("MISMATCH: torch differs from reference first at data-set sample 37, layer h")
