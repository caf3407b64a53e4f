"""Compile memory: the estimate before the heavy passes, the typed refusal, and big weights in row blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import spikec
from spikec.compiler import memory
from spikec.compiler.integer import _round_weights
from spikec.errors import ResourceError
from spikec.ir.rowblocks import row_blocks


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 300), nn.ReLU(), nn.Linear(300, 10)).eval()


def test_compile_refuses_with_a_typed_error_when_memory_is_short(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 100_000)
    with pytest.raises(ResourceError, match=r"needs about .* GB more memory .* only 0\.0 GB is available"):
        spikec.compile(_mlp(), torch.rand(2, 1, 8, 8), method="robust", calibration=torch.rand(8, 1, 8, 8))


def test_estimate_counts_weights_twice_and_calibration_activations():
    from spikec.compiler.frontend import trace
    from spikec.compiler.lowering import lower

    x = torch.rand(2, 1, 8, 8)
    fir = lower(trace(_mlp(), x), x)
    weights = (64 * 300 + 300 * 10) * 8
    assert memory.float_ir_bytes(fir) >= weights
    assert memory.calibration_bytes(fir, 10) == 2 * 4 * 300 * 10
    need = memory.estimate_extra_bytes(fir, 10)
    assert need >= 2 * weights + 2 * 4 * 300 * 10
    assert memory.check_memory(fir, 10, available=need) == need
    with pytest.raises(ResourceError):
        memory.check_memory(fir, 10, available=need - 1)


def test_row_blocks_cover_every_row_once(monkeypatch):
    monkeypatch.setattr("spikec.ir.rowblocks.ROW_BLOCK", 10)
    blocks = row_blocks(23, 4)
    assert [b.start for b in blocks] == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22]
    assert sum(b.stop - b.start for b in blocks) == 23


@pytest.mark.parametrize("max_exp", [0, 3])
def test_blockwise_rounding_equals_whole_array_rounding(monkeypatch, max_exp):
    rng = np.random.default_rng(1)
    weight = rng.normal(size=(37, 5, 3, 3)) * 40
    gain = rng.uniform(0.5, 4, size=(37, 1, 1, 1))
    whole = _round_weights(weight, gain, -255, 255, max_exp)
    monkeypatch.setattr("spikec.ir.rowblocks.ROW_BLOCK", 7)
    blocked = _round_weights(weight, gain, -255, 255, max_exp)
    assert np.array_equal(whole[0], blocked[0]) and whole[1] == blocked[1]
    assert whole[2]["clipped"] == blocked[2]["clipped"] and whole[2]["zeroed"] == blocked[2]["zeroed"]
    assert blocked[2]["error"] == pytest.approx(whole[2]["error"])
    # the reference formula, on the whole array at once
    exact = weight * gain
    exp = whole[1]
    expect = np.clip(np.rint(exact / 2 ** exp), -255, 255).astype(np.int64)
    assert np.array_equal(whole[0], expect)
    if max_exp:
        assert exp > 0 and np.abs(np.rint(exact / 2 ** (exp - 1))).max() > 255
