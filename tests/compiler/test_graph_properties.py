"""Random models built from convs, BN, ReLU, average pooling, additions and channel concatenations:
the float IR the front end builds computes exactly what the PyTorch model computes, and the
compiled integer graph runs bit for bit alike on the torch backend and the reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_lowering import ann_forward, float_ir, randomize_bn
from torch import nn

import spikec


class Program(nn.Module):
    """Runs a list of instructions over a growing list of tensors (index 0: the stem's output).

    ("conv", i, c_out, k)  conv k x k ('same' padding) of tensor i   ("relu", i)   ("bn", i)
    ("pool", i)  2 x 2 average pooling   ("cat", [i, j, ...])   ("add", i, j)   ("scale", i, c)
    """

    def __init__(self, program, channels):
        super().__init__()
        self.program = program
        self.stem = nn.Conv2d(1, channels[0], 3, padding=1)
        mods = []
        for op, *args in program:
            c_in = channels[args[0]] if op in ("conv", "bn") else None
            if op == "conv":
                mods.append(nn.Conv2d(c_in, args[1], args[2], padding=args[2] // 2))
            elif op == "bn":
                mods.append(nn.BatchNorm2d(c_in))
            else:
                mods.append(nn.Identity())
        self.mods = nn.ModuleList(mods)
        self.head = nn.Linear(channels[-1], 10)

    def forward(self, x):
        ts = [torch.relu(self.stem(x))]
        for (op, *args), mod in zip(self.program, self.mods):
            if op in ("conv", "bn"):
                ts.append(mod(ts[args[0]]))
            elif op == "relu":
                ts.append(torch.relu(ts[args[0]]))
            elif op == "pool":
                ts.append(nn.functional.avg_pool2d(ts[args[0]], 2))
            elif op == "cat":
                ts.append(torch.cat([ts[i] for i in args[0]], 1))
            elif op == "add":
                ts.append(ts[args[0]] + ts[args[1]])
            else:
                ts.append(ts[args[0]] * args[1])
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(torch.relu(ts[-1]), 1), 1))


@st.composite
def programs(draw):
    """A random program with its per-tensor (channels, size, linear?) bookkeeping kept valid:
    convs read activated tensors only; cat / add combine tensors of one spatial size."""
    channels, sizes, linear = [draw(st.integers(1, 3))], [8], [False]
    program = []
    for _ in range(draw(st.integers(2, 7))):
        i = draw(st.integers(0, len(channels) - 1))
        op = draw(st.sampled_from(["conv", "conv", "relu", "bn", "pool", "cat", "cat", "add", "scale"]))
        same = [j for j in range(len(channels)) if sizes[j] == sizes[i]]
        if op == "conv" and not linear[i]:
            program.append(("conv", i, draw(st.integers(1, 3)), draw(st.sampled_from([1, 3]))))
            channels.append(program[-1][2]), sizes.append(sizes[i]), linear.append(True)
        elif op == "pool" and sizes[i] >= 4:
            program.append(("pool", i))
            channels.append(channels[i]), sizes.append(sizes[i] // 2), linear.append(linear[i])
        elif op == "cat":
            parts = draw(st.lists(st.sampled_from(same), min_size=2, max_size=3))
            program.append(("cat", parts))
            channels.append(sum(channels[j] for j in parts)), sizes.append(sizes[i])
            linear.append(any(linear[j] for j in parts))
        elif op == "add":
            partners = [j for j in same if channels[j] == channels[i]]
            j = draw(st.sampled_from(partners))
            program.append(("add", i, j))
            channels.append(channels[i]), sizes.append(sizes[i]), linear.append(linear[i] or linear[j])
        elif op == "scale":
            program.append(("scale", i, draw(st.sampled_from([0.5, -1.0, 2.0]))))
            channels.append(channels[i]), sizes.append(sizes[i]), linear.append(linear[i])
        elif op == "bn":
            program.append(("bn", i))
            channels.append(channels[i]), sizes.append(sizes[i]), linear.append(linear[i])
        else:
            program.append(("relu", i))
            channels.append(channels[i]), sizes.append(sizes[i]), linear.append(False)
    return program, channels


def _model(case, seed):
    program, channels = case
    torch.manual_seed(seed)
    return randomize_bn(Program(program, channels), seed)


@settings(max_examples=80, deadline=None)
@given(programs(), st.integers(0, 1000))
def test_float_ir_computes_random_concatenating_models(case, seed):
    model = _model(case, seed)
    x = torch.rand(3, 1, 8, 8)
    fir = float_ir(model, x)
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
    channels = [2, 4, 4]
    model = _model((program, channels), 0)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        want = model(x).double().numpy()
    np.testing.assert_allclose(ann_forward(float_ir(model, x), x.numpy()), want, rtol=1e-4, atol=1e-5)
