"""Random models built from convs, BN, ReLU, average pooling, additions, channel concatenations,
channel shuffles and channel selections: the float IR the front end builds computes exactly what
the PyTorch model computes, and the compiled integer graph runs bit for bit alike on the torch
backend and the reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_lowering import ann_forward, float_ir, randomize_bn
from torch import nn

import spikec
from spikec.errors import UnsupportedError


class Program(nn.Module):
    """Runs a list of instructions over a growing list of tensors (index 0: the stem's output).

    ("conv", i, c_out, k, stride)  conv k x k ('same' padding)   ("linear", i, n_out)   ("relu", i)
    ("bn", i)   ("pool", i) 2 x 2 average pooling   ("flat", i)   ("cat", [i, j, ...])
    ("add", i, j)   ("scale", i, c)   ("dw", i) depthwise 3 x 3 conv   ("shuffle", i, g) channel
    shuffle in g groups (view -> transpose -> reshape)   ("chunk", i, first) one half of chunk(2, 1)
    ("slice", i, a, b, s) x[:, a:b:s].  Tensors are [B, C, H, W] or, after "flat", [B, N].
    """

    def __init__(self, program, channels, sizes):
        super().__init__()
        self.program = program
        self.channels, self.sizes = channels, sizes
        self.stem = nn.Conv2d(1, channels[0], 3, padding=1)
        mods = []
        for op, *args in program:
            if op == "conv":
                mods.append(nn.Conv2d(channels[args[0]], args[1], args[2], args[3], padding=args[2] // 2))
            elif op == "linear":
                mods.append(nn.Linear(channels[args[0]], args[1]))
            elif op == "dw":
                mods.append(nn.Conv2d(channels[args[0]], channels[args[0]], 3, padding=1, groups=channels[args[0]]))
            elif op == "bn":
                vector = sizes[args[0]] == 0
                mods.append((nn.BatchNorm1d if vector else nn.BatchNorm2d)(channels[args[0]]))
            else:
                mods.append(nn.Identity())
        self.mods = nn.ModuleList(mods)
        self.vector_out = sizes[-1] == 0
        self.head = nn.Linear(channels[-1], 10)

    def forward(self, x):
        ts = [torch.relu(self.stem(x))]
        for (op, *args), mod in zip(self.program, self.mods):
            if op in ("conv", "bn", "linear", "dw"):
                ts.append(mod(ts[args[0]]))
            elif op == "relu":
                ts.append(torch.relu(ts[args[0]]))
            elif op == "pool":
                ts.append(nn.functional.avg_pool2d(ts[args[0]], 2))
            elif op == "flat":
                ts.append(torch.flatten(ts[args[0]], 1))
            elif op == "cat":
                ts.append(torch.cat([ts[i] for i in args[0]], 1))
            elif op == "shuffle":
                ts.append(self.shuffle(ts[args[0]], args[0], args[1]))
            elif op == "chunk":
                ts.append(ts[args[0]].chunk(2, dim=1)[0 if args[1] else 1])
            elif op == "slice":
                ts.append(ts[args[0]][:, args[1]:args[2]:args[3]])
            elif op == "add":
                ts.append(ts[args[0]] + ts[args[1]])
            else:
                ts.append(ts[args[0]] * args[1])
        last = torch.relu(ts[-1])
        if not self.vector_out:
            last = torch.flatten(nn.functional.adaptive_avg_pool2d(last, 1), 1)
        return self.head(last)

    def shuffle(self, t, i: int, groups: int):
        c, rest = self.channels[i], (self.sizes[i],) * 2 if self.sizes[i] else ()
        return t.view(-1, groups, c // groups, *rest).transpose(1, 2).reshape(-1, c, *rest)


@st.composite
def programs(draw):
    """A random program with its per-tensor (channels, spatial size or 0 for vectors, linear?)
    bookkeeping kept valid: convs / linears read activated tensors only; cat / add combine tensors
    of one spatial size (or vectors)."""
    channels, sizes, linear = [draw(st.integers(1, 3))], [8], [False]
    program = []

    def push(instr, c, size, lin):
        program.append(instr)
        channels.append(c), sizes.append(size), linear.append(lin)

    for _ in range(draw(st.integers(2, 8))):
        i = draw(st.integers(0, len(channels) - 1))
        op = draw(st.sampled_from(["conv", "conv", "linear", "relu", "bn", "pool", "flat", "cat", "cat", "add",
                                   "scale", "dw", "shuffle", "shuffle", "chunk", "slice"]))
        same = [j for j in range(len(channels)) if sizes[j] == sizes[i]]
        vector = sizes[i] == 0
        if op == "conv" and not linear[i] and not vector:
            stride = draw(st.sampled_from([1, 2])) if sizes[i] >= 4 else 1
            c, k = draw(st.integers(1, 3)), draw(st.sampled_from([1, 3]))
            push(("conv", i, c, k, stride), c, (sizes[i] - 1) // stride + 1, True)
        elif op == "linear" and not linear[i] and vector:
            n = draw(st.integers(1, 6))
            push(("linear", i, n), n, 0, True)
        elif op == "dw" and not linear[i] and not vector:
            push(("dw", i), channels[i], sizes[i], True)
        elif op == "shuffle" and channels[i] >= 2:
            groups = draw(st.sampled_from([g for g in range(2, channels[i] + 1) if channels[i] % g == 0]))
            push(("shuffle", i, groups), channels[i], sizes[i], linear[i])
        elif op == "chunk" and channels[i] >= 2:
            first, half = draw(st.booleans()), (channels[i] + 1) // 2
            push(("chunk", i, first), half if first else channels[i] - half, sizes[i], linear[i])
        elif op == "slice" and channels[i] >= 2:
            a = draw(st.integers(0, channels[i] - 1))
            b, step = draw(st.integers(a + 1, channels[i])), draw(st.integers(1, 2))
            push(("slice", i, a, b, step), len(range(a, b, step)), sizes[i], linear[i])
        elif op == "pool" and sizes[i] >= 4:
            push(("pool", i), channels[i], sizes[i] // 2, linear[i])
        elif op == "flat" and not vector and channels[i] * sizes[i] ** 2 <= 64:
            push(("flat", i), channels[i] * sizes[i] ** 2, 0, linear[i])
        elif op == "cat":
            parts = draw(st.lists(st.sampled_from(same), min_size=2, max_size=3))
            push(("cat", parts), sum(channels[j] for j in parts), sizes[i], any(linear[j] for j in parts))
        elif op == "add":
            j = draw(st.sampled_from([j for j in same if channels[j] == channels[i]]))
            push(("add", i, j), channels[i], sizes[i], linear[i] or linear[j])
        elif op == "scale":
            push(("scale", i, draw(st.sampled_from([0.5, -1.0, 2.0]))), channels[i], sizes[i], linear[i])
        elif op == "bn":
            push(("bn", i), channels[i], sizes[i], linear[i])
        else:
            push(("relu", i), channels[i], sizes[i], False)
    return program, channels, sizes


REFUSALS = ("cannot fold into the convolution",        # a per-feature scale after flattening a conv
            "no single synapse op can write")           # a concatenation of unaligned flattened features


def _model(case, seed):
    program, channels, sizes = case
    torch.manual_seed(seed)
    return randomize_bn(Program(program, channels, sizes), seed)


@settings(max_examples=80, deadline=None)
@given(programs(), st.integers(0, 1000))
def test_float_ir_computes_random_concatenating_models(case, seed):
    model = _model(case, seed)
    x = torch.rand(3, 1, 8, 8)
    try:
        fir = float_ir(model, x)
    except UnsupportedError as err:   # the documented refusals (docs/compiler.md) only
        assume(not any(known in str(err) for known in REFUSALS))
        raise
    with torch.no_grad():
        want = model(x).double().numpy()
    np.testing.assert_allclose(ann_forward(fir, x.numpy()), want, rtol=1e-4, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(programs(), st.integers(0, 1000))
def test_compiled_random_models_run_exactly(case, seed):
    model = _model(case, seed)
    x = torch.rand(2, 1, 8, 8)
    try:
        graph = spikec.compile(model, x, method="robust", calibration=torch.rand(16, 1, 8, 8))
    except UnsupportedError as err:
        assume(not any(known in str(err) for known in REFUSALS))
        raise
    except spikec.ConversionError as err:   # a layer whose every weight rounds to zero is refused
        assume("the layer would be dead" not in str(err))
        raise
    xi = graph.encode(x.numpy())
    got = spikec.run(graph, xi, 4, backend="torch", record=True)
    ref = spikec.run(graph, xi, 4, backend="reference", record=True)
    assert np.array_equal(got.output, ref.output)
    for name in ref.spikes:
        assert np.array_equal(got.spikes[name], ref.spikes[name]), name


@pytest.mark.parametrize("program", [[("cat", [0, 0]), ("add", 1, 1)]])
def test_a_concatenation_added_to_itself(program):
    model = _model((program, [2, 4, 4], [8, 8, 8]), 0)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        want = model(x).double().numpy()
    np.testing.assert_allclose(ann_forward(float_ir(model, x), x.numpy()), want, rtol=1e-4, atol=1e-5)
