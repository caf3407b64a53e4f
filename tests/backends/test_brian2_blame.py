"""After a Brian2 run, an uncaught spikec error is printed as itself, not as a Brian 2 internal error."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("brian2")

SCRIPT = """
import numpy as np
import spikec
from spikec.errors import UnsupportedError
g = spikec.Graph([spikec.Input("x", (3,)), spikec.IF("h", (4,), theta=np.array(5), v_init=np.array(2)),
                  spikec.Readout("out", (2,))],
                 [spikec.Edge("x", "h", (spikec.Dense(np.ones((4, 3), np.int64)),)),
                  spikec.Edge("h", "out", (spikec.Dense(np.ones((2, 4), np.int64)),))])
assert spikec.verify(g, np.array([[3, 1, 2]]), 3, backends=("brian2",)).equal
raise UnsupportedError("a spikec error after a Brian 2 run")
"""


@pytest.mark.slow   # a Brian2 process
def test_spikec_error_after_brian2_is_not_blamed_on_brian2(tmp_path):
    res = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1
    assert "spikec.errors.UnsupportedError: a spikec error after a Brian 2 run" in res.stderr
    assert "Brian 2" not in res.stderr.replace("after a Brian 2 run", ""), res.stderr
