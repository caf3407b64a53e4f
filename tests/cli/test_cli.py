"""The command line, run as a user runs it (subprocess), good and bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import spikec

TESTS = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(TESTS), COLUMNS="200", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "spikec", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture
def files(tmp_path):
    g = spikec.Graph(
        [spikec.Input("x", (3,)), spikec.IF("h", (4,), theta=np.array(5), v_init=np.array(2)),
         spikec.Readout("out", (2,))],
        [spikec.Edge("x", "h", (spikec.Dense(np.array([[2, -1, 1], [1, 1, 1], [0, 3, -2], [1, 0, 2]])),)),
         spikec.Edge("h", "out", (spikec.Dense(np.array([[1, 0, 1, 0], [0, 1, 0, 1]])),))])
    spikec.save(g, tmp_path / "g.h5")
    np.savez(tmp_path / "x.npz", x=np.array([[3, 1, 2], [0, 4, 1]]))
    return tmp_path


def test_run_json(files):
    res = cli("run", files / "g.h5", "--input", files / "x.npz", "--steps", 6, "--backend", "reference", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    ref = spikec.run(spikec.load(files / "g.h5"), np.array([[3, 1, 2], [0, 4, 1]]), 6, backend="reference")
    assert out["output"] == ref.output.tolist() and out["latency"] == 2 and out["hardware_steps"] == 8


def test_run_table(files):
    res = cli("run", files / "g.h5", "--input", files / "x.npz", "--steps", 6, "--backend", "reference")
    assert res.returncode == 0 and "prediction" in res.stdout


def test_verify_equal_and_broken(files):
    env = {"SPIKEC_BACKENDS": "copy=spikec.backends.reference,broken=broken_backend"}
    ok = cli("verify", files / "g.h5", "--input", files / "x.npz", "--steps", 6, "--backends", "copy", "--json",
             env_extra=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["equal"] is True
    bad = cli("verify", files / "g.h5", "--input", files / "x.npz", "--steps", 6, "--backends", "copy,broken",
              "--plot", files / "eq.png", env_extra=env)
    assert bad.returncode == 1, bad.stderr
    assert "MISMATCH" in bad.stdout and "layer h" in bad.stdout
    assert (files / "eq.png").stat().st_size > 1000
    bad_json = cli("verify", files / "g.h5", "--input", files / "x.npz", "--steps", 6, "--backends", "broken",
                   "--json", env_extra=env)
    report = json.loads(bad_json.stdout)
    assert bad_json.returncode == 1 and report["equal"] is False
    assert report["first_divergence"]["layer"] == "h"


@pytest.mark.parametrize("args, message", [
    (["run", "missing.h5", "--input", "x.npz", "--steps", "3"], "no such file"),
    (["run", "x.npz", "--input", "x.npz", "--steps", "3"], "not a readable HDF5"),
    (["run", "g.h5", "--input", "g.h5", "--steps", "3"], "not a readable .npz"),
    (["run", "g.h5", "--input", "x.npz", "--steps", "3", "--backend", "nope"], "'nope' is not one of"),
    (["run", "g.h5", "--input", "x.npz", "--steps", "0"], "'--steps': 0 is not in the range"),
    (["verify", "g.h5", "--input", "x.npz", "--steps", "3", "--backends", "nope"], "unknown backend"),
    (["compile", "--model", "nomodule:f", "--input-shape", "1,2", "-o", "o.h5"], "cannot import"),
    (["compile", "--model", "nocolon", "--input-shape", "1,2", "-o", "o.h5"], "package.module:factory"),
    (["export", "g.h5", "--format", "nope", "-o", "o.x"], "nope"),
])
def test_bad_input_exit_2(files, args, message):
    res = cli(*args, cwd=files)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_wrong_input_shape(files):
    np.savez(files / "bad.npz", x=np.zeros((2, 5), np.int64))
    res = cli("run", files / "g.h5", "--input", files / "bad.npz", "--steps", 3)
    assert res.returncode == 2 and "shape [B, 3]" in res.stderr


@pytest.fixture
def model_files(tmp_path):
    import torch
    from tiny_model import make

    torch.manual_seed(0)
    torch.save(make().state_dict(), tmp_path / "w.pt")
    x = torch.rand(6, 1, 8, 8)
    np.savez(tmp_path / "calib.npz", x=x.numpy())
    return tmp_path


@pytest.mark.slow
def test_compile_inspect_run_estimate_export(model_files):
    d = model_files
    res = cli("compile", "--model", "tiny_model:make", "--weights", d / "w.pt", "--input-shape", "1,8,8",
              "--calibration", d / "calib.npz", "-o", d / "g.h5", "--json")
    assert res.returncode == 0, res.stderr
    compiled = json.loads(res.stdout)
    assert [row["type"] for row in compiled["layers"]] == ["Input", "IF", "Readout"]
    graph = spikec.load(d / "g.h5")
    assert compiled["latency"] == graph.latency

    res = cli("inspect", d / "g.h5", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["meta"]["method"] == "qcfs"
    res = cli("inspect", d / "g.h5")
    assert res.returncode == 0 and "IF" in res.stdout

    res = cli("run", d / "g.h5", "--input", d / "calib.npz", "--steps", 4, "--json")
    assert res.returncode == 0, res.stderr
    x = graph.encode(np.load(d / "calib.npz")["x"])
    assert json.loads(res.stdout)["output"] == spikec.run(graph, x, 4, backend="reference").output.tolist()

    res = cli("estimate", d / "g.h5", "--input", d / "calib.npz", "--steps", 4, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["sops"] >= 0
    res = cli("estimate", d / "g.h5", "--input", d / "calib.npz", "--steps", 4)
    assert res.returncode == 0, res.stderr

    res = cli("export", d / "g.h5", "--format", "brian2", "-o", d / "net.py", "--json")
    assert res.returncode == 0, res.stderr
    assert (d / "net.py").is_file()


@pytest.mark.slow   # five CLI processes, each importing torch
def test_compile_errors(model_files):
    d = model_files
    res = cli("compile", "--model", "tiny_model:make", "--weights", d / "calib.npz", "--input-shape", "1,8,8",
              "-o", d / "g.h5")
    assert res.returncode == 2 and "not a loadable state dict" in res.stderr
    res = cli("compile", "--model", "tiny_model:make_relu", "--weights", d / "w.pt", "--input-shape", "1,8,8",
              "-o", d / "g.h5")
    assert res.returncode == 2 and "does not fit" in res.stderr
    res = cli("compile", "--model", "tiny_model:missing", "--input-shape", "1,8,8", "-o", d / "g.h5")
    assert res.returncode == 2 and "no attribute 'missing'" in res.stderr
    res = cli("compile", "--model", "tiny_model:make", "--input-shape", "1,x", "-o", d / "g.h5")
    assert res.returncode == 2 and "comma-separated" in res.stderr
    assert not (d / "g.h5").exists()
