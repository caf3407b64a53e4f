"""`spikec eval`: accuracy at every T of a saved graph on a labelled data set, as JSON and tables."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import spikec
from spikec.cli import main


def _saved_graph(tmp_path):
    from spikec.datasets import digits
    from spikec.models import small_cnn
    from spikec.quantize import replace_relu

    torch.manual_seed(0)
    model = replace_relu(small_cnn(8, channels=8), "qcfs", 4, threshold=1.0).eval()
    split = digits()
    graph = spikec.compile(model, split.x_train[:1], method="qcfs")
    spikec.save(graph, tmp_path / "g.h5")
    np.savez(tmp_path / "test.npz", x=split.x_test[:60].numpy(), y=split.y_test[:60].numpy())
    return graph, split.x_test[:60], split.y_test[:60]


@pytest.mark.slow
def test_eval_json_equals_the_python_api(tmp_path):
    graph, x, y = _saved_graph(tmp_path)
    res = CliRunner().invoke(main, ["eval", str(tmp_path / "g.h5"), "--data", str(tmp_path / "test.npz"),
                                    "--steps", "6", "--at", "1,3,6", "--batch-size", "25", "--json",
                                    "--plot", str(tmp_path / "new" / "acc.png")])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    want = spikec.evaluate(graph, (x, y), 6, progress=False)
    assert got["correct"] == {str(t): int(want.correct[t - 1]) for t in (1, 3, 6)}
    assert got["total"] == 60 and (tmp_path / "new" / "acc.png").stat().st_size > 1000


def test_eval_table_and_bad_data(tmp_path):
    _saved_graph(tmp_path)
    res = CliRunner().invoke(main, ["eval", str(tmp_path / "g.h5"), "--data", str(tmp_path / "test.npz"),
                                    "--steps", "4"])
    assert res.exit_code == 0, res.output
    assert "accuracy %" in res.output
    np.savez(tmp_path / "nolabels.npz", x=np.zeros((2, 1, 8, 8)))
    res = CliRunner().invoke(main, ["eval", str(tmp_path / "g.h5"), "--data", str(tmp_path / "nolabels.npz")])
    assert res.exit_code == 2 and "'y'" in res.output
