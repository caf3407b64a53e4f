"""The torch backend's int8 kernels (oneDNN uint8 x int8 -> int32): when they are used, and that
results stay bit for bit equal to the reference interpreter at the edges of their range."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from equivalence import assert_traces_equal
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import graphs

from spikec.backends.torch import backend as torch_backend
from spikec.backends.torch import int8 as torch_int8
from spikec.backends.torch import ops as torch_ops
from spikec.ir import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout, SumPool2d, run_reference

pytestmark = pytest.mark.skipif(not torch_int8.available(), reason="oneDNN int8 kernels unavailable")


def test_usable_only_within_proven_ranges(monkeypatch):
    assert torch_int8.usable((-128, 127), x_max=1, out_bound=1000)
    assert not torch_int8.usable((-129, 0), x_max=1, out_bound=1000)        # weight beyond int8
    assert not torch_int8.usable((0, 128), x_max=1, out_bound=1000)
    assert not torch_int8.usable((-1, 1), x_max=256, out_bound=1000)        # input beyond uint8
    assert torch_int8.usable((-128, 127), x_max=127, out_bound=1000)        # 2*127*128 = 32512
    assert not torch_int8.usable((-128, 127), x_max=128, out_bound=1000)    # 2*128*128 > 2^15 - 1
    assert torch_int8.usable((-8, 8), x_max=255, out_bound=2 ** 24 - 1)
    assert not torch_int8.usable((-8, 8), x_max=255, out_bound=2 ** 24)     # float32 output inexact
    monkeypatch.setenv("SPIKEC_TORCH_INT8", "0")
    assert not torch_int8.usable((-1, 1), x_max=1, out_bound=10)


def _conv_net() -> tuple[Graph, np.ndarray]:
    """Current input 0..255 -> conv -> IF -> pool + conv -> IF -> pool + flatten + dense -> IF -> readout."""
    rng = np.random.default_rng(3)
    w = lambda *shape: rng.integers(-128, 128, shape)  # noqa: E731
    pops = [Input("x", (1, 12, 12), value_bits=9),
            IF("c1", (4, 10, 10), theta=np.array([900, 1200, 700, 1000]), v_init=np.array(300)),
            IF("c2", (6, 3, 3), theta=np.array(200)),
            IF("d", (5,), theta=np.array(150), reset="zero"),
            Readout("out", (3,))]
    edges = [Edge("x", "c1", (Conv2d(rng.integers(-8, 9, (4, 1, 3, 3))),)),
             Edge("c1", "c2", (SumPool2d(2), Conv2d(w(6, 4, 3, 3)))),
             Edge("c2", "d", (SumPool2d(2, 1), Flatten(), Dense(w(5, 24)))),
             Edge("d", "out", (Dense(w(3, 5)),))]
    x = rng.integers(0, 256, (5, 1, 12, 12))
    return Graph(pops, edges).validate(), x


def test_spiking_convolutions_and_dense_run_on_int8_kernels(monkeypatch):
    graph, x = _conv_net()
    calls, flattened = [], []
    original = torch_int8.Int8Op.__call__
    monkeypatch.setattr(torch_int8.Int8Op, "__call__", lambda self, v: calls.append(type(self.op)) or original(self, v))
    original_op = torch_ops.Chain._op
    monkeypatch.setattr(torch_ops.Chain, "_op", lambda self, i, hwc: flattened.append(hwc) or original_op(self, i, hwc))
    ref = run_reference(graph, x, 12, record=True, record_v=True)
    got = torch_backend.run(graph, x, 12, record=True, record_v=True)
    assert_traces_equal(got, ref, check_voltages=True)
    # input conv (0..255 by |w| <= 8), the pooled-spike conv, the pooled dense and the readout's
    # dense on summed spike counts (<= 12) all qualify
    assert calls.count(Conv2d) == 2 and calls.count(Dense) == 2
    # c2's spikes are channels-last (int8 conv drive): the Dense after the flatten reads them in
    # (H, W, C) order with permuted columns
    assert (6, 2, 2) in flattened
    assert any(np.abs(s).sum() > 0 for s in ref.spikes.values())


def test_float_kernels_give_the_same_result(monkeypatch):
    graph, x = _conv_net()
    with_int8 = torch_backend.run(graph, x, 12, record=True)
    monkeypatch.setenv("SPIKEC_TORCH_INT8", "0")
    assert_traces_equal(torch_backend.run(graph, x, 12, record=True), with_int8)


def _scaled(case, factor):
    """Every weight times `factor` (around the int8 limits), inputs made non-negative."""
    graph, x, steps = case

    def scale(op):
        return dataclasses.replace(op, weight=op.weight * factor) if isinstance(op, (Dense, Conv2d)) else op

    edges = [dataclasses.replace(e, ops=tuple(scale(op) for op in e.ops)) for e in graph.edges]
    return Graph(graph.populations, edges).validate(), np.abs(x), steps


@settings(max_examples=80)
@given(graphs(max_layers=3), st.sampled_from([1, 16, 31, 32, 33]))
def test_weights_at_the_int8_limits_match_reference(case, factor):
    """Strategy weights lie in [-4, 4]: times 32 they reach -128 (and 128, which must fall back)."""
    graph, x, steps = _scaled(case, factor)
    ref = run_reference(graph, x, steps, record=True)
    assert_traces_equal(torch_backend.run(graph, x, steps, record=True), ref)


def test_float_dense_after_a_channels_last_flatten():
    """A Dense whose weights leave int8 runs in float32, on the same permuted column order."""
    graph, x = _conv_net()
    edges = [dataclasses.replace(e, ops=e.ops[:-1] + (Dense(e.ops[-1].weight * 2),)) if e.dst == "d" else e
             for e in graph.edges]
    graph = Graph(graph.populations, edges).validate()
    assert np.abs(edges[2].ops[-1].weight).max() > 128
    assert_traces_equal(torch_backend.run(graph, x, 12, record=True), run_reference(graph, x, 12, record=True))


def test_only_validated_conv_geometries_use_the_kernels():
    w = np.ones((2, 2, 3, 3), np.int64)
    assert torch_int8.kernel_ok(Conv2d(w, stride=2, padding=(1, 2))) and torch_int8.kernel_ok(Dense(w[0, 0]))
    assert not torch_int8.kernel_ok(Conv2d(w, groups=2))
    assert not torch_int8.kernel_ok(Conv2d(w, dilation=(1, 2)))
    assert not torch_int8.kernel_ok(Conv2d(w, stride=(1, 2)))


@st.composite
def _allowed_convs(draw):
    """A convolution in the class kernel_ok admits, with a fitting non-negative input."""
    cin, cout = draw(st.sampled_from([1, 2, 3, 6, 16, 33])), draw(st.sampled_from([1, 2, 5, 16, 31]))
    kh, kw, stride = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h, w = draw(st.integers(max(1, kh - 2 * padding[0]), 16)), draw(st.integers(max(1, kw - 2 * padding[1]), 16))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    op = Conv2d(rng.integers(-128, 128, (cout, cin, kh, kw)), stride, padding)
    x_max = draw(st.sampled_from([1, 4, 127]))
    return op, rng.integers(0, x_max + 1, (draw(st.sampled_from([1, 3, 17])), cin, h, w))


@settings(max_examples=60, deadline=None)
@given(_allowed_convs(), st.booleans())
def test_int8_convolution_equals_float64(case, channels_last):
    op, x = case
    want = F.conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(op.weight, dtype=torch.float64), None,
                    op.stride, op.padding)
    xt = torch.tensor(x, dtype=torch.int8)
    xt = xt.contiguous(memory_format=torch.channels_last) if channels_last else xt
    assert torch_int8.kernel_ok(op)
    assume(torch_int8.shape_ok(op, x.shape))
    assert torch.equal(torch_int8.Int8Op(op)(xt).double(), want)


def test_one_pixel_wide_strided_outputs_are_fenced_and_exact():
    """The oneDNN bug hypothesis found on a clean machine: stride 2, output one pixel wide."""
    from spikec.backends.torch.ops import Chain, Workspace

    op = Conv2d(np.array([[[[89, 35]]]]), stride=(2, 2))
    x = np.random.default_rng(0).integers(0, 2, (6, 1, 9, 2))
    assert torch_int8.kernel_ok(op) and not torch_int8.shape_ok(op, x.shape)
    assert torch_int8.shape_ok(op, (6, 1, 9, 4)) and torch_int8.shape_ok(Dense(np.ones((2, 3), np.int64)), (1, 3))
    want = F.conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(op.weight, dtype=torch.float64), None, 2)
    got = Chain((op,), Workspace(torch.device("cpu")))(torch.tensor(x, dtype=torch.int8), torch.float32, 1, True)
    assert torch.equal(got.double(), want)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 200), st.sampled_from([1, 3, 64, 500]), st.integers(0, 2 ** 32 - 1))
def test_int8_dense_equals_float64(n_in, n_out, batch, seed):
    rng = np.random.default_rng(seed)
    op, x = Dense(rng.integers(-128, 128, (n_out, n_in))), rng.integers(0, 128, (batch, n_in))
    want = torch.tensor(x, dtype=torch.float64) @ torch.tensor(op.weight, dtype=torch.float64).T
    assert torch.equal(torch_int8.Int8Op(op)(torch.tensor(x, dtype=torch.int8)).double(), want)
