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
    monkeypatch.setattr(memory, "available_bytes", lambda: 10_000)
    with pytest.raises(ResourceError, match=r"needs about .* GB more memory .* only 0\.0 GB is available"):
        spikec.compile(_mlp(), torch.rand(2, 1, 8, 8), method="robust", calibration=torch.rand(8, 1, 8, 8))


def _lowered_mlp():
    from spikec.compiler.frontend import trace
    from spikec.compiler.lowering import lower

    x = torch.rand(2, 1, 8, 8)
    return lower(trace(_mlp(), x), x)


def test_estimate_counts_weights_twice_and_calibration_activations_when_the_float_ir_is_kept():
    fir = _lowered_mlp()
    weights = (64 * 300 + 300 * 10) * 8
    assert memory.float_ir_bytes(fir) >= weights
    assert memory.calibration_bytes(fir, 10) == 2 * 4 * 300 * 10
    need = memory.estimate_extra_bytes(fir, 10)
    assert need >= 2 * weights + 2 * 4 * 300 * 10
    assert memory.check_memory(fir, 10, available=need) == need
    with pytest.raises(ResourceError):
        memory.check_memory(fir, 10, available=need - 1)


def test_estimate_without_the_float_ir_counts_one_compact_copy_of_the_largest_edge():
    fir = _lowered_mlp()
    need = memory.estimate_extra_bytes(fir, 10, keep_float_graph=False)
    assert need == int(1.1 * (64 * 300 + 2 * 4 * 300 * 10))
    assert need < memory.estimate_extra_bytes(fir, 10)
    with pytest.raises(ResourceError, match="for rescaling and rounding"):
        memory.check_memory(fir, 10, available=need - 1, keep_float_graph=False)
    wide = memory.estimate_extra_bytes(fir, 10, keep_float_graph=False, weight_bytes=2)   # int16 weights
    assert wide == int(1.1 * (2 * 64 * 300 + 2 * 4 * 300 * 10))


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


def test_blockwise_rounding_stores_the_narrowest_dtype_that_holds_the_range():
    weight = np.linspace(-3, 3, 60).reshape(6, 10)
    assert _round_weights(weight, np.float64(40), -128, 127, 0)[0].dtype == np.int8
    assert _round_weights(weight, np.float64(40), -32767, 32767, 0)[0].dtype == np.int16
    assert _round_weights(weight, np.float64(40), -(2 ** 20), 2 ** 20, 0)[0].dtype == np.int32


class _SharedUses(nn.Module):
    """One conv applied twice (shared weights) and one conv output feeding two activations: the
    float IR then holds the same weight array on several edges, which must not be rescaled twice."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(4 * 6 * 6 + 3 * 6 * 6, 5)

    def forward(self, x):
        a = torch.relu(self.conv(x))
        b = torch.relu(self.conv(a))
        h = self.head(b)
        return self.fc(torch.cat([torch.relu(h).flatten(1), torch.relu(b - 0.1).flatten(1)], 1))


@pytest.mark.parametrize("target", ["loihi", "int32"])
def test_consuming_compile_equals_the_kept_float_ir_compile_with_shared_weights(target):
    from spikec.compiler import compile_model
    from spikec.ir.digest import content_digest

    torch.manual_seed(3)
    model, x, cal = _SharedUses().eval(), torch.rand(2, 3, 6, 6), torch.rand(16, 3, 6, 6)
    kept = compile_model(model, x, method="robust", calibration=cal, target=target)
    consumed = compile_model(model, x, method="robust", calibration=cal, target=target, keep_float_graph=False)
    assert consumed.float_graph is None and kept.float_graph is not None
    assert content_digest(consumed.graph) == content_digest(kept.graph)


def test_only_weights_one_edge_alone_owns_may_be_overwritten():
    from spikec.compiler.floatir import FloatConv, FloatDense, FloatEdge, sole_owned_weights

    own, shared, parent = np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 6))
    frozen = np.ones((2, 3))
    frozen.setflags(write=False)
    edges = [FloatEdge("a", "b", (FloatDense(own),)), FloatEdge("a", "c", (FloatDense(shared),)),
             FloatEdge("b", "c", (FloatDense(shared),)), FloatEdge("a", "d", (FloatDense(parent[:, :3]),)),
             FloatEdge("a", "e", (FloatDense(frozen),)),
             FloatEdge("a", "f", (FloatConv(np.ones((2, 3, 1, 1), np.float32)),))]
    assert sole_owned_weights(edges) == {id(own)}
