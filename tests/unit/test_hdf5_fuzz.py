"""Fuzz the graph file reader: ~200 seeded damaged files, each must end in FormatError or load
as exactly the saved network (same content digest). The mutator and the outcome classes are
benchmarks/fuzz_graph_files.py's, which runs the same at scale in a crash-proof subprocess."""

import importlib.util
import signal
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = 200
TIMEOUT_S = 5


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_graph_files", ROOT / "benchmarks" / "fuzz_graph_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so that classify's `except Exception` cannot count it."""


def _alarm(signum, frame):
    raise _Hang()


@pytest.fixture(scope="module")
def fuzz():
    return _fuzz_module()


def test_every_damaged_file_is_a_format_error_or_identical(fuzz, tmp_path):
    cases = fuzz.Case(tmp_path, seed=20240601)
    counts, bad = Counter(), []
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for i in range(CASES):
            path, digest, what = cases.make(i)
            signal.alarm(TIMEOUT_S)  # catches Python-level hangs; a hang inside HDF5's C code cannot be
            try:                     # interrupted here, the benchmark's subprocess worker counts those
                outcome, detail = fuzz.classify(path, digest)
            except _Hang:
                outcome, detail = "hang", f"> {TIMEOUT_S} s"
            finally:
                signal.alarm(0)
            counts[outcome] += 1
            if outcome not in fuzz.GOOD:
                bad.append(f"case {i} {what}: {outcome}: {detail}")
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not bad, "\n".join(bad)
    assert counts["typed_error"] > CASES // 2  # the mutator really damages files


def test_mutator_is_deterministic(fuzz, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = fuzz.Case(tmp_path / "a", seed=3), fuzz.Case(tmp_path / "b", seed=3)
    for i in range(20):
        pa, _, wa = a.make(i)
        pb, _, wb = b.make(i)
        assert wa == wb and pa.read_bytes() == pb.read_bytes()
