"""verify(): equal backends report equal; a broken backend is located exactly."""

import json

import numpy as np
import pytest

import spikec
from spikec import backends
from spikec.analysis.verify_view import plot_equivalence, print_verify


@pytest.fixture(autouse=True)
def extra_backends():
    backends.register("reference_copy", "spikec.backends.reference")
    backends.register("broken", "broken_backend")
    yield


def graph():
    w1 = np.array([[2, -1, 1], [1, 1, 1], [0, 3, -2], [1, 0, 2]])
    return spikec.Graph(
        [spikec.Input("x", (3,)), spikec.IF("h", (4,), theta=np.array(5), v_init=np.array(2)),
         spikec.Readout("out", (2,))],
        [spikec.Edge("x", "h", (spikec.Dense(w1),)),
         spikec.Edge("h", "out", (spikec.Dense(np.array([[1, 0, 1, 0], [0, 1, 0, 1]])),))])


X = np.array([[3, 1, 2], [0, 4, 1]])


def test_identical_backends_are_equal():
    report = spikec.verify(graph(), X, 6, backends=("reference_copy",))
    assert report.equal and report.first_divergence is None
    assert json.loads(report.to_json())["equal"] is True
    assert all(r.mismatches == 0 for r in report.rows)


def test_broken_backend_located(tmp_path, capsys):
    report = spikec.verify(graph(), X, 6, backends=("reference_copy", "broken"))
    assert not report.equal
    d = report.first_divergence
    assert (d.backend, d.layer, d.sample, d.neuron) == ("broken", "h", 0, [0])
    assert d.step == report.hardware_steps - 1
    assert d.values["broken"] == 1 - d.values["reference"]
    assert d.membrane["broken"] == d.membrane["reference"] + 1000
    row = next(r for r in report.rows if r.backend == "broken")
    assert row.mismatches == 1
    assert json.loads(report.to_json())["equal"] is False
    print_verify(report)
    assert "MISMATCH" in capsys.readouterr().out
    assert plot_equivalence(report, tmp_path / "eq.png").stat().st_size > 1000


def test_verify_needs_a_backend():
    with pytest.raises(spikec.BackendError):
        spikec.verify(graph(), X, 3, backends=("reference",))
