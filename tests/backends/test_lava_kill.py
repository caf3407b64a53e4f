"""A Lava run that is killed or interrupted leaves no process and no temporary folder behind.

Each test starts a real Lava run (one OS process per Lava process, plus a shared-memory manager)
of 10^6 steps, which is far from done when the signal comes. The subprocess runs in its own
session with its own TMPDIR, so every process it started (however deep) is found by session id
in /proc, and every folder it made is in that TMPDIR.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from processes import kill_group, session_members, wait_until

import spikec
from spikec.backends import procguard
from spikec.backends.lava import backend as lava_backend
from spikec.ir import IF, Dense, Edge, Graph, Input, Readout

pytestmark = [
    pytest.mark.slow,   # real Lava runs
    pytest.mark.slow,   # real Lava runs: the slow tier
    pytest.mark.skipif(not lava_backend.is_available(), reason=f"lava unavailable: {lava_backend.why_unavailable()}"),
    pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc"),
]

LONG = 1_000_000

SCRIPT = f"""
import numpy as np
import spikec
from spikec.ir import IF, Dense, Edge, Graph, Input, Readout
rng = np.random.default_rng(0)
g = Graph([Input("x", (6,), value_bits=4), IF("h", (5,), theta=np.int64(6), v_init=np.int64(1)),
           Readout("out", (2,))],
          [Edge("x", "h", (Dense(rng.integers(-3, 4, (5, 6))),)),
           Edge("h", "out", (Dense(rng.integers(-3, 4, (2, 5))),))]).validate()
spikec.run(g, rng.integers(-7, 8, (2, 6)), {LONG}, backend="lava")
"""


def graph() -> Graph:
    rng = np.random.default_rng(0)
    return Graph([Input("x", (6,), value_bits=4), IF("h", (5,), theta=np.int64(6), v_init=np.int64(1)),
                  Readout("out", (2,))],
                 [Edge("x", "h", (Dense(rng.integers(-3, 4, (5, 6))),)),
                  Edge("h", "out", (Dense(rng.integers(-3, 4, (2, 5))),))]).validate()


def start_long_run(tmp_path) -> subprocess.Popen:
    """Start the long Lava run; return once its workers run and its folder exists."""
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: len(session_members(proc.pid)) >= 4 and list(tmp_path.glob(f"spikec-lava-{proc.pid}-*")),
                   120, "the Lava workers and the run's folder")
        time.sleep(1.0)   # well inside the run: the runtime is stepping
        assert proc.poll() is None, proc.communicate()[0]
    except BaseException:
        kill_group(proc)
        raise
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_run_leaves_nothing(tmp_path, sig):
    proc = start_long_run(tmp_path)
    workers = session_members(proc.pid)
    proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == -sig, out   # still ends as killed by that signal
        # the resource tracker (Python's, shared by the program) exits once the program has gone
        wait_until(lambda: not session_members(proc.pid), 20, f"the processes {workers} to end")
    finally:
        kill_group(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_sigkill_workers_die_and_the_next_run_removes_the_folder(tmp_path, monkeypatch):
    proc = start_long_run(tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    try:
        wait_until(lambda: not session_members(proc.pid), 20, "the workers to die with their parent")
    finally:
        kill_group(proc)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 1 and left[0].startswith(f"spikec-lava-{proc.pid}-"), left   # no pymp-* either
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    spikec.run(graph(), np.ones((1, 6), np.int64), 3, backend="lava")
    assert list(tmp_path.iterdir()) == []


def test_live_owners_folders_are_kept(tmp_path):
    mine = tmp_path / f"spikec-lava-{os.getpid()}-abc"
    mine.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = tmp_path / f"spikec-lava-{int(dead.stdout)}-abc"
    gone.mkdir()
    (gone / "x.npy").write_bytes(b"1")
    other = tmp_path / "spikec-lava-abc"   # no owner recorded: not ours to judge
    other.mkdir()
    assert procguard.remove_stale("spikec-lava-", tmp_path) == [gone]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name])


IN_PROCESS = f"""
import os, signal, sys, tempfile, threading, time
import numpy as np
sys.path.insert(0, {os.path.dirname(os.path.dirname(__file__))!r})
from processes import wait_until
import spikec
from spikec.backends import procguard
from test_lava_kill import graph

before = procguard.descendants(os.getpid())
main = threading.main_thread().ident

def interrupt():
    wait_until(lambda: len(procguard.descendants(os.getpid()) - before) >= 3, 120, "the Lava workers")
    time.sleep(1.0)
    signal.pthread_kill(main, signal.SIGINT)

timer = threading.Thread(target=interrupt, daemon=True)
timer.start()
try:
    spikec.run(graph(), np.ones((1, 6), np.int64), {LONG}, backend="lava")
    sys.exit("the run was not interrupted")
except KeyboardInterrupt:
    pass
timer.join()
left = [p for p in procguard.descendants(os.getpid()) - before if not procguard._is_resource_tracker(p)]
assert left == [], left
assert os.listdir(tempfile.gettempdir()) == [], os.listdir(tempfile.gettempdir())
# and the backend still works afterwards, in the same process
assert spikec.run(graph(), np.ones((1, 6), np.int64), 3, backend="lava").output.shape == (1, 2)
print("OK")
"""


def test_interrupted_run_in_process_stops_its_workers(tmp_path):
    """KeyboardInterrupt in the middle of a run: the caller survives, nothing of the run does.
    In a fresh interpreter: a SIGINT to a pytest-xdist worker would take the worker down."""
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONUNBUFFERED="1")
    here = os.path.dirname(__file__)
    done = subprocess.run([sys.executable, "-c", IN_PROCESS], env=env, cwd=here, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("OK"), done.stdout + done.stderr


def test_a_long_tmpdir_still_runs_and_leaves_nothing(tmp_path):
    """multiprocessing's sockets would overflow AF_UNIX's 107 bytes under a long TMPDIR (pytest-xdist's
    folders are): they go to an owned folder under /tmp instead, removed with the run."""
    long = tmp_path / ("d" * 70)
    long.mkdir()
    script = SCRIPT.replace(f"{LONG}, backend", "3, backend").replace("spikec.run(", "print(spikec.run(") + ".output)"
    env = dict(os.environ, TMPDIR=str(long))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "[[" in done.stdout
    assert list(long.iterdir()) == []
