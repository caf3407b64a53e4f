"""Two-file exports (a module or script plus its .npz) never leave a silently mismatched pair, take
integer inputs only, and killed writers' temporaries do not stay forever (spikec.fileio)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import spikec
from spikec import fileio
from spikec.backends.brian2 import backend as brian2_backend
from spikec.backends.lava import backend as lava_backend
from spikec.errors import FormatError, InputDataError
from spikec.ir import IF, Dense, Edge, Graph, Input, Readout

needs_lava = pytest.mark.skipif(not lava_backend.is_available(),
                                reason=f"lava unavailable: {lava_backend.why_unavailable()}")
needs_brian2 = pytest.mark.skipif(not brian2_backend.is_available(), reason="brian2 unavailable")


def graph(seed: int) -> Graph:
    rng = np.random.default_rng(seed)
    return Graph([Input("x", (4,), value_bits=4), IF("h", (3,), theta=np.int64(5)), Readout("out", (2,))],
                 [Edge("x", "h", (Dense(rng.integers(-3, 4, (3, 4))),)),
                  Edge("h", "out", (Dense(rng.integers(-3, 4, (2, 3))),))]).validate()


def load_module(path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}_{os.urandom(4).hex()}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def fail_on_rename_to(monkeypatch, name: str) -> None:
    """os.replace raises when a temporary is renamed onto `name` (a full disk, an interrupt)."""
    real = os.replace

    def replace(src, dst):
        if str(dst).endswith(name) and str(src).endswith(".tmp") and f".{name}." in str(src):
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("fmt", [pytest.param("lava", marks=needs_lava), pytest.param("brian2", marks=needs_brian2)])
@pytest.mark.parametrize("second", ["net.py", "net.npz"])
def test_failed_export_keeps_the_previous_pair(tmp_path, monkeypatch, fmt, second):
    spikec.export(graph(1), tmp_path / "net.py", format=fmt)
    before = snapshot(tmp_path)
    fail_on_rename_to(monkeypatch, second)
    with pytest.raises(OSError, match="disk full"):
        spikec.export(graph(2), tmp_path / "net.py", format=fmt)
    monkeypatch.undo()
    assert snapshot(tmp_path) == before   # both files as they were, no temporary left
    if fmt == "lava":
        load_module(tmp_path / "net.py").NET.params()   # and they still belong together


@needs_lava
def test_lava_module_refuses_parameters_of_another_export(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    spikec.export(graph(1), tmp_path / "a" / "net.py", format="lava")
    spikec.export(graph(2), tmp_path / "b" / "net.py", format="lava")
    module = load_module(tmp_path / "a" / "net.py")
    module.NET.params()
    (tmp_path / "a" / "net.npz").write_bytes((tmp_path / "b" / "net.npz").read_bytes())
    with pytest.raises(FormatError, match="does not belong to this module"):
        module.NET.params()


@needs_lava
def test_lava_export_killed_between_its_renames(tmp_path):
    """A real kill (os._exit) right after the .npz is renamed: the old module detects the new
    parameters, the kill's temporary is removed by the next export, which is whole again."""
    spikec.export(graph(1), tmp_path / "net.py", format="lava")
    old_module = (tmp_path / "net.py").read_bytes()
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_export_pairs import graph
        import spikec
        real = os.replace
        def replace(src, dst):
            real(src, dst)
            if str(dst).endswith("net.npz"):
                os._exit(9)
        os.replace = replace
        spikec.export(graph(2), {str(tmp_path / "net.py")!r}, format="lava")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 9, err
    assert (tmp_path / "net.py").read_bytes() == old_module
    # the new module's temporary and the old parameters' backup (a hard link), both named with
    # the dead writer's pid
    left = sorted(p.name.split("-")[0] for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
    assert left == [f".net.npz.{proc.pid}", f".net.py.{proc.pid}"]
    with pytest.raises(FormatError, match="does not belong"):
        load_module(tmp_path / "net.py").NET.params()
    spikec.export(graph(2), tmp_path / "net.py", format="lava")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.npz", "net.py"]
    load_module(tmp_path / "net.py").NET.params()


@needs_lava
def test_lava_module_refuses_float_inputs(tmp_path):
    spikec.export(graph(1), tmp_path / "net.py", format="lava")
    module = load_module(tmp_path / "net.py")
    for bad in (np.full((1, 4), 1.0), np.array([[0.7, 0, 0, 0]]), np.array([[np.nan, 0, 0, 0]])):
        with pytest.raises(InputDataError, match="integer array, got dtype float64"):
            module.run(bad, 3)
    with pytest.raises(InputDataError, match=r"\|x\| <= 7"):
        module.run(np.full((1, 4), 8), 3)
    with pytest.raises(InputDataError, match="steps"):
        module.run(np.zeros((1, 4), np.int64), 2.5)
    np.save(tmp_path / "x.npy", np.array([[0.7, 0, 0, 0]]))
    done = subprocess.run([sys.executable, str(tmp_path / "net.py"), str(tmp_path / "x.npy"), "3"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "error: InputDataError: inputs must be an integer array" in done.stderr


@needs_brian2
def test_brian2_script_refuses_float_inputs(tmp_path):
    spikec.export(graph(1), tmp_path / "net.py", format="brian2")
    module = load_module(tmp_path / "net.py")
    spec = module.load_spec(tmp_path / "net.npz")
    with pytest.raises(ValueError, match="integer array, got dtype float64"):
        module.simulate(spec, np.array([[0.7, 0, 0, 0]]), 3)
    np.save(tmp_path / "x.npy", np.array([[0.7, 0, 0, 0]]))
    done = subprocess.run([sys.executable, str(tmp_path / "net.py"), str(tmp_path / "x.npy"), "3"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "integer array" in done.stderr


def test_dead_writers_temporaries_are_removed(tmp_path):
    target = tmp_path / "g.h5"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".g.h5.{int(dead.stdout)}-abcd1234.tmp"
    live = tmp_path / f".g.h5.{os.getpid()}-abcd1234.tmp"
    other = tmp_path / f".h.h5.{int(dead.stdout)}-abcd1234.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"half a file")
    with fileio.atomic_path(target) as tmp:
        assert tmp.name.startswith(f".g.h5.{os.getpid()}-")
        tmp.write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["g.h5", live.name, other.name])
