"""The CLI reports accuracy against labels, prints per-sample rows only on request, warns about a
silent layer (also when verify says EQUAL), keeps its tables to 80 columns, and its hints survive
rich markup."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import spikec
from spikec.cli import main

W1 = np.array([[2, -1, 1], [1, 1, 1], [0, 3, -2], [1, 0, 2]])
W2 = np.array([[1, 0, 1, 0], [0, 1, 0, 1]])
X = np.array([[3, 1, 2], [0, 4, 1], [2, 2, 0], [1, 0, 3]])


def _graph(theta: int) -> spikec.Graph:
    return spikec.Graph(
        [spikec.Input("x", (3,)), spikec.IF("h", (4,), theta=np.array(theta), v_init=np.array(0)),
         spikec.Readout("out", (2,))],
        [spikec.Edge("x", "h", (spikec.Dense(W1),)), spikec.Edge("h", "out", (spikec.Dense(W2),))])


@pytest.fixture
def files(tmp_path):
    spikec.save(_graph(5), tmp_path / "g.h5")
    spikec.save(_graph(10_000), tmp_path / "silent.h5")
    np.savez(tmp_path / "x.npz", x=X)
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_run_reports_accuracy_against_labels(files):
    preds = spikec.run(_graph(5), X, 6, backend="reference").predictions()
    labels = preds.copy()
    labels[0] = 1 - labels[0]                     # one wrong of four
    np.save(files / "y.npy", labels)
    res = invoke("run", files / "g.h5", "--input", files / "x.npz", "--labels", files / "y.npy", "--steps", 6,
                 "--backend", "reference", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["correct"] == 3 and out["accuracy"] == 75.0
    res = invoke("run", files / "g.h5", "--input", files / "x.npz", "--labels", files / "y.npy", "--steps", 6,
                 "--backend", "reference")
    assert "accuracy 75.00 % (3 of 4)" in res.stdout


def test_labels_must_fit_the_samples(files):
    np.save(files / "y.npy", np.array([0, 1]))
    res = invoke("run", files / "g.h5", "--input", files / "x.npz", "--labels", files / "y.npy", "--steps", 6)
    assert res.exit_code == 2 and "labels must be 4 integers" in res.output


def test_per_sample_rows_only_on_request(files):
    plain = invoke("run", files / "g.h5", "--input", files / "x.npz", "--steps", 6, "--backend", "reference")
    rows = invoke("run", files / "g.h5", "--input", files / "x.npz", "--steps", 6, "--backend", "reference",
                  "--per-sample")
    out = spikec.run(_graph(5), X, 6, backend="reference").output
    row = " ".join(map(str, out[3]))
    assert row not in plain.stdout and "--per-sample" in plain.stdout
    assert row in rows.stdout and "readout" in rows.stdout


def test_silent_layer_warns_in_run_and_equal_verify(files):
    res = invoke("run", files / "silent.h5", "--input", files / "x.npz", "--steps", 4, "--backend", "reference",
                 "--json")
    assert res.exit_code == 0, res.output
    assert [(w["code"], w["where"]) for w in json.loads(res.stdout)["warnings"]] == [("silent-layer", "h")]
    assert "warning (silent-layer) h: emitted no spike" in res.stderr
    res = invoke("verify", files / "silent.h5", "--input", files / "x.npz", "--steps", 4, "--backends", "torch")
    assert res.exit_code == 0 and "EQUAL" in res.stdout
    assert "warning (silent-layer) h" in res.stderr
    quiet = invoke("run", files / "g.h5", "--input", files / "x.npz", "--steps", 4, "--backend", "reference")
    assert "warning" not in quiet.stderr


def test_tables_fit_80_columns_and_wide_shows_more(tmp_path):
    import torch

    from spikec.datasets import digits
    from spikec.models import small_cnn
    from spikec.quantize import replace_relu

    torch.manual_seed(0)
    model = replace_relu(small_cnn(8, channels=8), "qcfs", 4, threshold=1.0).eval()
    x = digits().x_test[:4]
    spikec.save(spikec.compile(model, x[:1]), tmp_path / "g.h5")
    np.savez(tmp_path / "x.npz", x=x.numpy())
    for args in (["inspect", tmp_path / "g.h5"],
                 ["estimate", tmp_path / "g.h5", "--input", tmp_path / "x.npz", "--steps", 4],
                 ["run", tmp_path / "g.h5", "--input", tmp_path / "x.npz", "--steps", 4, "--per-sample"]):
        res = CliRunner(env={"COLUMNS": "80"}).invoke(main, [str(a) for a in args])
        assert res.exit_code == 0, res.output
        assert max(map(len, res.stdout.splitlines())) <= 80, res.stdout
    narrow = CliRunner(env={"COLUMNS": "80"}).invoke(main, ["inspect", str(tmp_path / "g.h5")]).stdout
    wide = CliRunner(env={"COLUMNS": "250"}).invoke(main, ["inspect", str(tmp_path / "g.h5"), "--wide"]).stdout
    assert "fan-in" in wide and "fan-in" not in narrow


def test_unavailable_backend_hint_keeps_its_brackets(files, monkeypatch):
    from spikec.backends.brian2 import backend as brian2_backend

    monkeypatch.setattr(brian2_backend, "is_available", lambda: False)
    res = invoke("verify", files / "g.h5", "--input", files / "x.npz", "--steps", 3, "--backends", "brian2")
    assert res.exit_code == 2
    assert "pip install 'spikec[brian2]'" in res.output


def test_python_advice_comes_with_its_flags(tmp_path):
    res = invoke("compile", "--pretrained", "cifar10_resnet20_relu", "--method", "opi", "--input-range", "0,1",
                 "-o", tmp_path / "g.h5")
    assert res.exit_code == 2 and "calibration=" in res.output
    assert "on the command line: --calibration <data>" in res.output
    assert res.stderr.strip().count("\n") == 0


def test_eval_json_carries_warnings(files):
    np.savez(files / "labelled.npz", x=X, y=np.array([0, 1, 0, 1]))
    res = invoke("eval", files / "silent.h5", "--data", files / "labelled.npz", "--steps", 4, "--backend",
                 "reference", "--json")
    assert res.exit_code == 0, res.output
    assert [(w["code"], w["where"]) for w in json.loads(res.stdout)["warnings"]] == [("silent-layer", "h")]


def test_check_lists_problems_within_80_columns(tmp_path, monkeypatch):
    (tmp_path / "cli_pool.py").write_text(
        "from torch import nn\n\n\ndef make():\n    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), "
        "nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 3))\n\n\ndef clean():\n"
        "    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(18, 3))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    runner = CliRunner(env={"COLUMNS": "80"})
    res = runner.invoke(main, ["check", "--model", "cli_pool:make", "--input-shape", "1,8,8"])
    assert res.exit_code == 1, res.output
    assert "1. 2 (MaxPool2d)" in res.stdout and "[spikec.prepare fixes it]" in res.stdout
    assert max(map(len, res.stdout.splitlines())) <= 80
    wide = runner.invoke(main, ["check", "--model", "cli_pool:make", "--input-shape", "1,8,8", "--wide"])
    assert wide.exit_code == 1 and "prepare" in wide.stdout and "┃" in wide.stdout
    listed = json.loads(runner.invoke(main, ["check", "--model", "cli_pool:make", "--input-shape", "1,8,8",
                                             "--json"]).stdout)
    assert [p["op"] for p in listed] == ["MaxPool2d"]
    res = runner.invoke(main, ["check", "--model", "cli_pool:clean", "--input-shape", "1,8,8"])
    assert res.exit_code == 0 and "no problems" in res.stdout


def test_ann_beside_the_snn_in_eval_and_estimate(tmp_path, monkeypatch):
    from spikec.datasets import digits

    (tmp_path / "cli_ann.py").write_text(
        "import torch\n\nfrom spikec.models import small_cnn\nfrom spikec.quantize import replace_relu\n\n\n"
        "def make():\n    torch.manual_seed(0)\n"
        "    return replace_relu(small_cnn(8, channels=8), 'qcfs', 4, threshold=1.0).eval()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from cli_ann import make

    split = digits()
    x, y = split.x_test[:40], split.y_test[:40]
    graph = spikec.compile(make(), x[:1])
    spikec.save(graph, tmp_path / "g.h5")
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())
    res = invoke("eval", tmp_path / "g.h5", "--data", tmp_path / "d.npz", "--steps", 4, "--ann", "cli_ann:make",
                 "--json")
    assert res.exit_code == 0, res.output
    want = spikec.evaluate(graph, (x, y), 4, model=make(), progress=False)
    assert json.loads(res.stdout)["ann_correct"] == want.ann_correct is not None
    res = invoke("estimate", tmp_path / "g.h5", "--data", tmp_path / "d.npz", "--limit", 2, "--steps", 2, "--ann",
                 "cli_ann:make", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["ann"]["source"] == "model"
    res = invoke("estimate", tmp_path / "g.h5", "--data", tmp_path / "d.npz", "--steps", 2, "--ann-weights", "w.pt")
    assert res.exit_code == 2 and "--ann-weights goes with --ann" in res.output


def test_backend_options_pass_through_and_are_checked(files):
    base = invoke("run", files / "g.h5", "--input", files / "x.npz", "--steps", 6, "--json")
    chunked = invoke("run", files / "g.h5", "--input", files / "x.npz", "--steps", 6, "--option", "chunk=1", "--json")
    assert chunked.exit_code == 0, chunked.output
    assert json.loads(chunked.stdout)["output"] == json.loads(base.stdout)["output"]
    bad = invoke("run", files / "g.h5", "--input", files / "x.npz", "--steps", 6, "--option", "chunks=1")
    assert bad.exit_code == 2 and "has no option(s) ['chunks']; its options: device, chunk" in bad.output
    bad = invoke("eval", files / "g.h5", "--data", "digits", "--option", "chunk")
    assert bad.exit_code == 2 and "expected KEY=VALUE" in bad.output


def test_eval_refuses_t_beyond_steps_before_running(files):
    res = invoke("eval", files / "g.h5", "--data", files / "missing.npz", "--steps", 2, "--at", "1,4")
    assert res.exit_code == 2 and "every T must lie in 1..2" in res.output
