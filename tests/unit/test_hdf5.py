"""Save/load: round trips for every node type, and clear errors for bad files."""

import dataclasses

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from strategies import graphs

import spikec
from spikec.errors import FormatError
from spikec.ir.graph import graphs_equal


@settings(max_examples=40)
@given(graphs())
def test_round_trip_equals_original(tmp_path_factory, case):
    graph, _, _ = case
    path = tmp_path_factory.mktemp("rt") / "g.h5"
    graph.meta["note"] = {"layers": [1, 2]}
    spikec.save(graph, path)
    assert graphs_equal(spikec.load(path), graph)


def test_round_trip_changes_detected(tmp_path, small_graph):
    spikec.save(small_graph, tmp_path / "g.h5")
    with h5py.File(tmp_path / "g.h5", "r+") as f:
        f["populations/1/theta"][...] = 99
    assert not graphs_equal(spikec.load(tmp_path / "g.h5"), small_graph)


@pytest.fixture
def small_graph():
    return spikec.Graph(
        [spikec.Input("x", (4,)), spikec.IF("h", (3,), theta=np.array([4, 5, 6]), theta_neg=np.array(4)),
         spikec.Readout("out", (2,))],
        [spikec.Edge("x", "h", (spikec.Dense(np.arange(12).reshape(3, 4) - 6),)),
         spikec.Edge("h", "out", (spikec.Dense(np.ones((2, 3), np.int64)),), delay=2, weight_exp=3)])


def test_missing_file(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        spikec.load(tmp_path / "nope.h5")


def test_not_hdf5(tmp_path):
    (tmp_path / "x.h5").write_text("hello")
    with pytest.raises(FormatError, match="not a readable HDF5"):
        spikec.load(tmp_path / "x.h5")


def test_truncated(tmp_path, small_graph):
    spikec.save(small_graph, tmp_path / "g.h5")
    data = (tmp_path / "g.h5").read_bytes()
    (tmp_path / "t.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError):
        spikec.load(tmp_path / "t.h5")


def test_future_version(tmp_path, small_graph):
    spikec.save(small_graph, tmp_path / "g.h5")
    with h5py.File(tmp_path / "g.h5", "r+") as f:
        f.attrs["version"] = 99
    with pytest.raises(FormatError, match="version 99 is newer"):
        spikec.load(tmp_path / "g.h5")


def test_version_1_file_reads_with_weight_exp_0(tmp_path, small_graph):
    """Files written before edges had a weight exponent (format version 1) still load."""
    spikec.save(small_graph, tmp_path / "g.h5")
    with h5py.File(tmp_path / "g.h5", "r+") as f:
        f.attrs["version"] = 1
        for k in f["edges"]:
            del f["edges"][k].attrs["weight_exp"]
    unscaled = [dataclasses.replace(e, weight_exp=0) for e in small_graph.edges]
    assert graphs_equal(spikec.load(tmp_path / "g.h5"), spikec.Graph(small_graph.populations, unscaled))


def test_version_2_file_needs_weight_exp(tmp_path, small_graph):
    spikec.save(small_graph, tmp_path / "g.h5")
    with h5py.File(tmp_path / "g.h5", "r+") as f:
        del f["edges/1"].attrs["weight_exp"]
    with pytest.raises(FormatError, match="weight_exp"):
        spikec.load(tmp_path / "g.h5")


def test_other_hdf5_file(tmp_path):
    with h5py.File(tmp_path / "o.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(FormatError, match="missing attribute 'format'"):
        spikec.load(tmp_path / "o.h5")


def test_missing_dataset_and_invalid_values(tmp_path, small_graph):
    spikec.save(small_graph, tmp_path / "g.h5")
    with h5py.File(tmp_path / "g.h5", "r+") as f:
        del f["edges/0/ops/0/weight"]
    with pytest.raises(FormatError, match="malformed"):
        spikec.load(tmp_path / "g.h5")
    spikec.save(small_graph, tmp_path / "g.h5")
    with h5py.File(tmp_path / "g.h5", "r+") as f:
        f["populations/1/theta"][...] = -1
    with pytest.raises(FormatError, match=r"h\.theta"):
        spikec.load(tmp_path / "g.h5")


def test_failed_save_leaves_nothing(tmp_path, small_graph, monkeypatch):
    import spikec.ir.hdf5 as hdf5

    def boom(f, graph):
        f.attrs["format"] = "partial"
        raise RuntimeError("disk full")

    monkeypatch.setattr(hdf5, "_write", boom)
    with pytest.raises(RuntimeError):
        spikec.save(small_graph, tmp_path / "g.h5")
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_folder(tmp_path, small_graph):
    with pytest.raises(FormatError, match="does not exist"):
        spikec.save(small_graph, tmp_path / "no" / "g.h5")
