"""Save/load: round trips for every node type, and clear errors for bad files."""

import dataclasses
import json
import os
import time

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from strategies import graphs

import spikec
import spikec.ir.hdf5 as hdf5
from spikec import fileio
from spikec.errors import FormatError
from spikec.ir.digest import content_digest
from spikec.ir.graph import graphs_equal


@settings(max_examples=40)
@given(graphs())
def test_round_trip_equals_original(tmp_path_factory, case):
    graph, _, _ = case
    path = tmp_path_factory.mktemp("rt") / "g.h5"
    graph.meta["note"] = {"layers": [1, 2]}
    spikec.save(graph, path)
    loaded = spikec.load(path)
    assert graphs_equal(loaded, graph)
    assert content_digest(loaded) == content_digest(graph)


@pytest.fixture
def small_graph():
    return spikec.Graph(
        [spikec.Input("x", (4,)), spikec.IF("h", (3,), theta=np.array([4, 5, 6]), theta_neg=np.array([4, 5, 6])),
         spikec.Readout("out", (2,))],
        [spikec.Edge("x", "h", (spikec.Dense(np.arange(12).reshape(3, 4) - 6),)),
         spikec.Edge("h", "out", (spikec.Dense(np.ones((2, 3), np.int64)),), delay=2, weight_exp=3)])


@pytest.fixture
def saved(tmp_path, small_graph):
    spikec.save(small_graph, tmp_path / "g.h5")
    return tmp_path / "g.h5"


def rehash(path):
    """Store the content hash of what the file now holds, as a buggy or hostile writer would, so
    that the checks behind the hash can be tested."""
    with h5py.File(path, "r+") as f:
        f.attrs[hdf5.HASH_ATTR] = np.bytes_(content_digest(hdf5._Reader(f, path, None).graph()).encode())


def downgrade(path, version):
    """Turn a version-5 file into what spikec wrote at `version`: same layout (4); no readout bias_steps (3); also
    no hash, no absent markers, variable-length strings, meta as a root attribute (2)."""
    with h5py.File(path, "r+") as f:
        f.attrs["version"] = version
        if version >= 4:
            return
        for g in f["populations"].values():
            if "bias_steps" in g.attrs:
                del g.attrs["bias_steps"]
        if version >= 3:
            return
        del f.attrs[hdf5.HASH_ATTR]
        f.attrs["meta"] = f["meta"][()].tobytes().decode()
        del f["meta"]
        for g in f["populations"].values():
            del g.attrs[hdf5.ABSENT_ATTR]
        objects = [f]
        f.visititems(lambda name, obj: objects.append(obj))
        for obj in objects:
            for key, value in list(obj.attrs.items()):
                if isinstance(value, bytes):
                    obj.attrs[key] = value.decode()
        if version < 2:
            for g in f["edges"].values():
                del g.attrs["weight_exp"]


def load_error(path) -> FormatError:
    with pytest.raises(FormatError) as info:
        spikec.load(path)
    return info.value


def set_meta(path, text: str):
    with h5py.File(path, "r+") as f:
        del f["meta"]
        f["meta"] = np.frombuffer(text.encode(), np.uint8)


def test_file_layout_version_5(saved):
    with h5py.File(saved, "r") as f:
        assert f.attrs["version"] == 5
        assert len(f.attrs[hdf5.HASH_ATTR]) == 64
        assert f["populations/1"].attrs[hdf5.ABSENT_ATTR] == b"bias_schedule"
        assert f["populations/2"].attrs[hdf5.ABSENT_ATTR] == b""
        assert json.loads(f["meta"][()].tobytes()) == {}
        strings = [f.attrs.get_id("format")] + [f["edges/0"].attrs.get_id(k) for k in ("src", "dst")]
        assert all(a.dtype.kind == "S" for a in strings)  # never variable-length (global heap)


def test_version_3_never_reads_variable_length_strings(saved):
    with h5py.File(saved, "r+") as f:
        f["populations/1"].attrs["name"] = "h"  # a variable-length string
    assert "must be a string, got dtype object" in str(load_error(saved))


def test_changed_value_is_a_hash_mismatch(saved):
    with h5py.File(saved, "r+") as f:
        f["populations/1/theta"][...] = 99
    assert "content hash mismatch" in str(load_error(saved))


def test_flipped_data_byte_is_a_hash_mismatch(saved):
    with h5py.File(saved, "r") as f:
        offset = f["edges/0/ops/0/weight"].id.get_offset()
    data = bytearray(saved.read_bytes())
    data[offset + 3] ^= 0x10
    saved.write_bytes(bytes(data))
    assert "content hash mismatch" in str(load_error(saved))


def test_missing_file(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        spikec.load(tmp_path / "nope.h5")


def test_not_hdf5(tmp_path):
    (tmp_path / "x.h5").write_text("hello")
    err = load_error(tmp_path / "x.h5")
    assert "not a readable HDF5" in str(err) and isinstance(err.__cause__, OSError)


def test_truncated(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    load_error(saved)


def test_version_4_signed_layer_with_its_own_theta_neg_is_refused(tmp_path, small_graph):
    """Before format 5 a -1 spike gave back theta_neg; a layer with theta_neg != theta would now
    compute something else, so it is refused by name. theta_neg = theta means the same either way."""
    layer = small_graph.nodes["h"]
    other = spikec.Graph([small_graph.nodes["x"], dataclasses.replace(layer, theta_neg=np.array(2)),
                          small_graph.nodes["out"]], small_graph.edges).validate()
    for graph, name in ((small_graph, "same.h5"), (other, "other.h5")):
        spikec.save(graph, tmp_path / name)
        downgrade(tmp_path / name, 4)
    assert graphs_equal(spikec.load(tmp_path / "same.h5"), small_graph)
    err = load_error(tmp_path / "other.h5")
    assert "'h'" in str(err) and "theta_neg != theta" in str(err) and "version 4" in str(err)
    spikec.save(other, tmp_path / "now.h5")
    assert graphs_equal(spikec.load(tmp_path / "now.h5"), other)


def test_future_version(saved):
    with h5py.File(saved, "r+") as f:
        f.attrs["version"] = 99
    with pytest.raises(FormatError, match="version 99 is newer"):
        spikec.load(saved)


def test_version_1_file_reads_with_weight_exp_0(saved, small_graph):
    """Files written before edges had a weight exponent (format version 1) still load."""
    downgrade(saved, 1)
    unscaled = [dataclasses.replace(e, weight_exp=0) for e in small_graph.edges]
    assert graphs_equal(spikec.load(saved), spikec.Graph(small_graph.populations, unscaled))


def test_version_2_file_loads_and_needs_weight_exp(saved, small_graph):
    downgrade(saved, 2)
    assert graphs_equal(spikec.load(saved), small_graph)
    with h5py.File(saved, "r+") as f:
        del f["edges/1"].attrs["weight_exp"]
    with pytest.raises(FormatError, match="weight_exp"):
        spikec.load(saved)


def test_version_2_keeps_its_defaults(saved, small_graph):
    """Version 2 read a missing v_init or bias as 0; version 3 refuses."""
    with h5py.File(saved, "r+") as f:
        del f["populations/1/v_init"]
    assert "missing dataset 'v_init'" in str(load_error(saved))
    downgrade(saved, 2)
    assert graphs_equal(spikec.load(saved), small_graph)


def test_version_3_absent_marker(saved):
    with h5py.File(saved, "r+") as f:
        del f["populations/1/theta_neg"]
    assert "missing dataset 'theta_neg'" in str(load_error(saved))
    with h5py.File(saved, "r+") as f:
        f["populations/1"].attrs[hdf5.ABSENT_ATTR] = np.bytes_(b"bias_schedule,theta_neg")
    assert "content hash mismatch" in str(load_error(saved))  # a different network, not a silent default
    with h5py.File(saved, "r+") as f:
        f["populations/1"].attrs[hdf5.ABSENT_ATTR] = np.bytes_(b"bias")
    assert "may list only" in str(load_error(saved))
    with h5py.File(saved, "r+") as f:
        del f["populations/1"].attrs[hdf5.ABSENT_ATTR]
    assert "missing attribute 'absent'" in str(load_error(saved))


def test_stored_and_absent_conflict(saved):
    with h5py.File(saved, "r+") as f:
        f["populations/1"].attrs[hdf5.ABSENT_ATTR] = np.bytes_(b"bias_schedule,theta_neg")
    assert "both stored and listed as absent" in str(load_error(saved))


def test_other_hdf5_file(tmp_path):
    with h5py.File(tmp_path / "o.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(FormatError, match="missing attribute 'format'"):
        spikec.load(tmp_path / "o.h5")


def test_missing_dataset_and_invalid_values(saved, small_graph):
    with h5py.File(saved, "r+") as f:
        del f["edges/0/ops/0/weight"]
    assert "missing dataset 'weight'" in str(load_error(saved))
    spikec.save(small_graph, saved)
    with h5py.File(saved, "r+") as f:
        f["populations/1/theta"][...] = -1
    rehash(saved)
    with pytest.raises(FormatError, match=r"h\.theta"):
        spikec.load(saved)


def test_unsigned_values_that_would_wrap(saved):
    with h5py.File(saved, "r+") as f:
        del f["populations/1/theta"]
        f["populations/1"].create_dataset("theta", data=np.array([2**63 + 5, 1, 1], np.uint64))
    assert "would wrap" in str(load_error(saved))
    with h5py.File(saved, "r+") as f:
        del f["populations/1/theta"]
        f["populations/1"].create_dataset("theta", data=np.array([4, 5, 6], np.uint64))
        f["edges/1"].attrs["delay"] = np.uint64(2**64 - 1)
    assert "delay" in str(load_error(saved))


@pytest.mark.parametrize("where, name, value, message", [
    ("populations/1", "shape", "3", "1-D integer array"),
    ("populations/1", "shape", np.array([0], np.int64), "outside"),
    ("populations/1", "shape", np.array([2**20, 2**20], np.int64), "larger than"),
    ("populations/1", "shape", np.arange(1000), "more than"),
    ("populations/1", "state_bits", 24.0, "must be an integer"),
    ("populations/1", "state_bits", np.uint64(2**64 - 1), "outside"),
    ("populations/1", "state_bits", True, "must be an integer"),
    ("populations/1", "gate", 3, "must be a string"),
    ("populations/0", "scale", "1.0", "must be a number"),
    ("populations/1", "kind", np.bytes_(b"LIF"), "unknown population kind"),
    ("populations/1", "name", np.bytes_(b"\xff\xfe"), "UnicodeDecodeError"),
    ("edges/1/ops/0", "kind", np.bytes_(b"Conv3d"), "unknown synapse op"),
    ("edges/1", "delay", np.array([1, 2]), "must be an integer"),
    ("", "version", "3", "must be an integer"),
    ("", hdf5.HASH_ATTR, 7, "must be a string"),
])
def test_wrong_types_and_ranges(saved, where, name, value, message):
    with h5py.File(saved, "r+") as f:
        (f[where] if where else f).attrs[name] = value
    err = load_error(saved)
    assert message in str(err)


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "JSON object"),
    ("[" * 100_000 + "]" * 100_000, "nested deeper"),  # no RecursionError
    ('{"a": ' * 100 + "1" + "}" * 100, "nested deeper"),
    ("{bad json", "malformed"),
    ('{"x": 1' + "0" * 5000 + "}", "malformed"),  # int beyond Python's digit limit
])
def test_bad_meta(saved, text, message):
    set_meta(saved, text)
    assert message in str(load_error(saved))


def test_meta_must_be_bytes(saved):
    with h5py.File(saved, "r+") as f:
        del f["meta"]
        f["meta"] = np.arange(3)
    assert "1-D uint8" not in str(load_error(saved))  # refused as the wrong kind first
    with h5py.File(saved, "r+") as f:
        del f["meta"]
        f["meta"] = np.frombuffer(b"{}", np.uint8).astype(np.uint16)
    assert "1-D uint8" in str(load_error(saved))


def test_float_and_huge_datasets(saved):
    with h5py.File(saved, "r+") as f:
        del f["edges/0/ops/0/weight"]
        f["edges/0/ops/0"].create_dataset("weight", data=np.ones((3, 4)))
    assert "must hold integers" in str(load_error(saved))
    with h5py.File(saved, "r+") as f:
        del f["edges/0/ops/0/weight"]
        f["edges/0/ops/0"].create_dataset("weight", shape=(2**30, 4), dtype="i8")  # never written
    assert "more than" in str(load_error(saved))
    with h5py.File(saved, "r+") as f:
        del f["edges/0/ops/0/weight"]
        f["edges/0/ops/0"].create_dataset("weight", shape=(3000, 4000), dtype="i8")
    assert "more than the" in str(load_error(saved))


def test_member_names_and_links(saved, tmp_path):
    with h5py.File(saved, "r+") as f:
        f["edges"].move("1", "7")
    assert "members must be named 0..1" in str(load_error(saved))
    with h5py.File(saved, "r+") as f:
        f["edges"].move("7", "1")
        del f["populations/1/theta"]
        f["populations/1/theta"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "/theta")
    assert "not stored in this file" in str(load_error(saved))
    with h5py.File(saved, "r+") as f:
        del f["populations/1/theta"]
        f["populations/1"].create_group("theta")
    assert "expected a Dataset" in str(load_error(saved))


def test_errors_chain_their_cause(saved):
    set_meta(saved, "{bad json")
    assert isinstance(load_error(saved).__cause__, json.JSONDecodeError)


def test_save_refuses_what_load_would_refuse(tmp_path, small_graph):
    deep = cur = {}
    for _ in range(hdf5.MAX_JSON_DEPTH + 1):
        cur["a"] = {}
        cur = cur["a"]
    graph = spikec.Graph(small_graph.populations, small_graph.edges, {"deep": deep})
    with pytest.raises(FormatError, match="nested deeper"):
        spikec.save(graph, tmp_path / "g.h5")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_leaves_nothing(tmp_path, small_graph, monkeypatch):
    def boom(f, graph):
        f.attrs["format"] = "partial"
        raise RuntimeError("disk full")

    monkeypatch.setattr(hdf5, "_write", boom)
    with pytest.raises(RuntimeError):
        spikec.save(small_graph, tmp_path / "g.h5")
    assert list(tmp_path.iterdir()) == []


def test_save_removes_stale_temporaries(tmp_path, small_graph):
    old, fresh, other = (tmp_path / ".g.h5.abcd1234.tmp", tmp_path / ".g.h5.zyxw9876.tmp",
                         tmp_path / ".other.h5.abcd1234.tmp")
    for p in (old, fresh, other):
        p.write_bytes(b"half a file")
    stale = time.time() - fileio.STALE_TEMP_SECONDS - 10
    os.utime(old, (stale, stale))
    os.utime(other, (stale, stale))
    spikec.save(small_graph, tmp_path / "g.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["g.h5", fresh.name, other.name])


def test_locked_temporary_is_kept(tmp_path):
    import fcntl

    tmp = tmp_path / ".g.h5.abcd1234.tmp"
    tmp.write_bytes(b"being written")
    stale = time.time() - fileio.STALE_TEMP_SECONDS - 10
    os.utime(tmp, (stale, stale))
    with open(tmp, "rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        assert fileio.remove_stale_temporaries(tmp_path / "g.h5") == []
    assert fileio.remove_stale_temporaries(tmp_path / "g.h5") == [tmp]


def test_save_into_missing_folder(tmp_path, small_graph):
    with pytest.raises(FormatError, match="does not exist"):
        spikec.save(small_graph, tmp_path / "no" / "g.h5")


def test_weights_are_stored_in_the_narrowest_integer_dtype_and_load_as_int64(tmp_path):
    import spikec
    from spikec.ir import Dense, Edge, Graph, Input, Readout

    big = np.array([[1, -40000], [3, 4]])
    graph = Graph((Input("x", (2,)), Readout("y", (2,))),
                  (Edge("x", "y", (Dense(np.array([[1, -128], [127, 0]])),)),), {})
    wide = Graph(graph.populations, (Edge("x", "y", (Dense(big),)),), {})
    for g, dtype in ((graph, np.int8), (wide, np.int32)):
        path = tmp_path / f"{dtype.__name__}.h5"
        spikec.save(g, path)
        with h5py.File(path, "r") as f:
            assert f["edges/0/ops/0/weight"].dtype == dtype
        back = spikec.load(path)
        assert back.edges[0].ops[0].weight.dtype == np.int64
        assert np.array_equal(back.edges[0].ops[0].weight, g.edges[0].ops[0].weight)
