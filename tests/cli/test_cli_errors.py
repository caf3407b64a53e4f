"""The command line under bad input: one-line typed errors (exit 2), unexpected errors with a
report request (exit 3, traceback only with --debug), .npy inputs, empty inputs, --plot folders."""

import json

import h5py
import numpy as np
import pytest

from .test_cli import cli, files  # noqa: F401  (fixture)

CRASH = {"SPIKEC_BACKENDS": "crashing=cli.crashing_backend,copy=spikec.backends.reference"}


def test_typed_error_is_one_line_exit_2(files):  # noqa: F811
    res = cli("run", files / "missing.h5", "--input", files / "x.npz", "--steps", 3)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert res.stderr.startswith("error: FormatError:") and "missing.h5: no such file" in res.stderr


def test_damaged_graph_file_exit_2(files):  # noqa: F811
    with h5py.File(files / "g.h5", "r+") as f:
        f["edges/0/ops/0/weight"][0, 0] += 1
    res = cli("inspect", files / "g.h5")
    assert res.returncode == 2 and "content hash mismatch" in res.stderr
    assert "Traceback" not in res.stderr


def test_unexpected_error_exit_3(files):  # noqa: F811
    res = cli("run", files / "g.h5", "--input", files / "x.npz", "--steps", 3, "--backend", "crashing",
              env_extra=CRASH)
    assert res.returncode == 3, res.stderr
    assert "internal error: KeyError" in res.stderr
    assert "please report this at the project's issue tracker, rerun with --debug for the traceback" in res.stderr
    assert "Traceback" not in res.stderr


def test_debug_shows_the_traceback(files):  # noqa: F811
    res = cli("--debug", "run", files / "g.h5", "--input", files / "x.npz", "--steps", 3, "--backend", "crashing",
              env_extra=CRASH)
    assert res.returncode == 3
    assert "Traceback" in res.stderr and "crashing_backend.py" in res.stderr
    res = cli("--debug", "run", files / "missing.h5", "--input", files / "x.npz", "--steps", 3)
    assert res.returncode == 2 and "Traceback" in res.stderr


def test_usage_error_stays_exit_2(files):  # noqa: F811
    res = cli("run", files / "g.h5", "--steps", 3)
    assert res.returncode == 2 and "give exactly one of --input" in res.stderr


def test_npy_input_equals_npz(files):  # noqa: F811
    np.save(files / "x.npy", np.array([[3, 1, 2], [0, 4, 1]]))
    outputs = []
    for name in ("x.npz", "x.npy"):
        res = cli("run", files / "g.h5", "--input", files / name, "--steps", 6, "--backend", "reference", "--json")
        assert res.returncode == 0, res.stderr
        outputs.append(json.loads(res.stdout)["output"])
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("name, write, message", [
    ("empty.npz", lambda p: np.savez(p), "empty .npz file"),
    ("nox.npz", lambda p: np.savez(p, y=np.zeros(3)), "no array named 'x'"),
    ("zero.npz", lambda p: np.savez(p, x=np.zeros((0, 3), np.int64)), "holds no samples"),
    ("zero.npy", lambda p: np.save(p, np.zeros((0, 3), np.int64)), "holds no samples"),
    ("scalar.npy", lambda p: np.save(p, np.int64(3)), "holds no samples"),
    ("text.npy", lambda p: np.save(p, np.array(["a", "b"])), "must be numbers"),
    ("objects.npy", lambda p: np.save(p, np.array([{}], dtype=object)), "not a readable .npz or .npy"),
    ("cut.npy", lambda p: p.write_bytes(b"\x93NUMPY\x01\x00"), "not a readable .npz or .npy"),
])
def test_bad_inputs_name_the_file(files, name, write, message):  # noqa: F811
    write(files / name)
    res = cli("run", files / "g.h5", "--input", files / name, "--steps", 3, "--backend", "reference")
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and name in res.stderr
    assert res.stderr.strip().count("\n") == 0


def test_plot_into_missing_folder(files):  # noqa: F811
    target = files / "new" / "deeper" / "eq.png"
    res = cli("verify", files / "g.h5", "--input", files / "x.npz", "--steps", 6, "--backends", "copy",
              "--plot", target, env_extra=CRASH)
    assert res.returncode == 0, res.stderr
    assert target.stat().st_size > 1000
