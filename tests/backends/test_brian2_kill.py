"""A Brian2 cpp_standalone run that is killed leaves no binary running and no folder behind.

The subprocess builds (once, into a cache shared by the tests of this module) and runs a binary
of 5 * 10^6 steps; the signal comes while the binary runs.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
from processes import command_line, kill_group, session_members, wait_until

from spikec.backends.brian2 import backend as brian2_backend
from spikec.backends.brian2 import standalone as brian2_standalone

pytestmark = [
    pytest.mark.slow,   # a C++ build and a long binary run
    pytest.mark.skipif(not brian2_backend.is_available(), reason="brian2 unavailable"),
    pytest.mark.skipif(shutil.which("g++") is None or not os.path.isdir("/proc/self"), reason="needs g++ and /proc"),
]

SCRIPT = """
import sys
import numpy as np
import spikec
from spikec.ir import IF, Dense, Edge, Graph, Input, Readout
rng = np.random.default_rng(0)
g = Graph([Input("x", (6,), value_bits=4), IF("h", (5,), theta=np.int64(6), v_init=np.int64(1)),
           Readout("out", (2,))],
          [Edge("x", "h", (Dense(rng.integers(-3, 4, (5, 6))),)),
           Edge("h", "out", (Dense(rng.integers(-3, 4, (2, 5))),))]).validate()
spikec.run(g, rng.integers(-7, 8, (2, 6)), 5_000_000, backend="brian2", target="cpp_standalone",
           cache_dir=sys.argv[1])
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("brian2-cache")


def start_binary(cache, tmp_path) -> subprocess.Popen:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(cache)], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: any(command_line(p).startswith("./main") for p in session_members(proc.pid)),
                   300, "the build and the binary")
        assert proc.poll() is None, proc.communicate()[0]
    except BaseException:
        kill_group(proc)
        raise
    return proc


def leftovers(cache) -> list[str]:
    """Build folders in the cache and run folders in its projects."""
    found = [p.name for p in cache.iterdir() if p.name.startswith(".")]
    for project in cache.iterdir():
        if project.is_dir():
            found += [f"{project.name}/{p.name}" for p in project.iterdir() if re.match(r"run\.\d+-", p.name)]
    return found


def test_sigterm_stops_the_binary_and_removes_the_run_folder(cache, tmp_path):
    proc = start_binary(cache, tmp_path)
    assert leftovers(cache)   # the run's folder exists while it runs
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGTERM, out
        wait_until(lambda: not session_members(proc.pid), 20, "the binary to end")
    finally:
        kill_group(proc)
    assert leftovers(cache) == []


def test_sigkilled_runs_folder_is_removed_by_the_next_run(cache, tmp_path):
    proc = start_binary(cache, tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    kill_group(proc)   # the orphaned binary would otherwise run to its end
    wait_until(lambda: not session_members(proc.pid), 20, "the binary to end")
    [left] = leftovers(cache)
    assert left.split("/")[1].startswith(f"run.{proc.pid}-")
    assert [p.name for p in brian2_standalone.remove_stale(cache)] == [left.split("/")[1]]
    assert leftovers(cache) == []
