"""Channel shuffles (view -> transpose -> view, and their reshape / permute / flatten spellings) and
channel selections (chunk, split, narrow, x[:, a:b:s]) add no op: the consumers' weights absorb them,
an IF layer read in parts is split into one layer per part (same neurons, no zero weights), and the
float IR computes the model; torch backend == reference interpreter bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_lowering import float_ir, randomize_bn
from torch import nn

import spikec
from spikec.backends import available
from spikec.compiler import compile_model
from spikec.compiler.floatsim import ann_forward
from spikec.compiler.thresholds import activation_statistics

X, CAL = torch.rand(2, 1, 8, 8), torch.rand(32, 1, 8, 8)


def channel_shuffle(x, groups: int):
    """torchvision's shufflenet_v2 channel shuffle, spelled the same way."""
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, c, h, w)


def bn_relu(c: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(c), nn.ReLU()]


class ShuffleBlock(nn.Module):
    """A shufflenet_v2 block (InvertedResidual) with a ReLU after the depthwise conv (so that the
    float IR can be compared with the model without spikec.prepare's signed clips)."""

    def __init__(self, inp: int, oup: int, stride: int):
        super().__init__()
        half = oup // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(nn.Conv2d(inp, inp, 3, stride, 1, groups=inp), *bn_relu(inp),
                                         nn.Conv2d(inp, half, 1), *bn_relu(half))
        self.branch2 = nn.Sequential(nn.Conv2d(inp if stride > 1 else half, half, 1), *bn_relu(half),
                                     nn.Conv2d(half, half, 3, stride, 1, groups=half), *bn_relu(half),
                                     nn.Conv2d(half, half, 1), *bn_relu(half))

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class TinyShuffleNet(nn.Module):
    """Stem, a stride-2 block, three stride-1 blocks (a block's untouched half travels on, halved
    again by every chunk), a stride-2 block whose depthwise conv reads the shuffled tensor, a 1x1
    head conv, global average pooling, a linear classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), *bn_relu(8))
        self.blocks = nn.Sequential(ShuffleBlock(8, 16, 2), *(ShuffleBlock(16, 16, 1) for _ in range(3)),
                                    ShuffleBlock(16, 32, 2), ShuffleBlock(32, 32, 1))
        self.head = nn.Sequential(nn.Conv2d(32, 24, 1), *bn_relu(24))
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        return self.fc(self.head(self.blocks(self.stem(x))).mean([2, 3]))


def _ann_activations(model, x) -> int:
    """Values the model's activation modules output per sample (what the IF layers must hold)."""
    sizes = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out[0].numel()))
             for m in model.modules() if isinstance(m, (nn.ReLU, spikec.quantize.ClipActivation))]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return sum(sizes)


def _zero_rows_and_columns(fir) -> int:
    """Output channels and (ungrouped) input channels of weighted ops whose weights are all zero."""
    count = 0
    for edge in fir.edges:
        for op in edge.ops:
            if hasattr(op, "weight"):
                w = np.abs(op.weight)
                count += int((w.reshape(w.shape[0], -1).sum(1) == 0).sum())
                if getattr(op, "groups", 1) == 1:
                    count += int((w.swapaxes(0, 1).reshape(w.shape[1], -1).sum(1) == 0).sum())
    return count


def _run_both(graph, x, steps=3):
    xi = graph.encode(x.numpy())
    got = spikec.run(graph, xi, steps, backend="torch", record=True)
    ref = spikec.run(graph, xi, steps, backend="reference", record=True)
    assert np.array_equal(got.output, ref.output)
    for name in ref.spikes:
        assert np.array_equal(got.spikes[name], ref.spikes[name]), name


def test_tiny_shufflenet_lowers_exactly_with_the_anns_neurons_and_no_zero_weights():
    torch.manual_seed(0)
    model = randomize_bn(TinyShuffleNet())
    x = torch.rand(4, 1, 8, 8)
    fir = float_ir(model, x)
    with torch.no_grad():
        want = model(x).double().numpy()
    np.testing.assert_allclose(ann_forward(fir, x.numpy()), want, rtol=1e-6, atol=1e-7)
    ifs = [lay for lay in fir.layers if lay.kind == "if"]
    assert sum(int(np.prod(lay.shape)) for lay in ifs) == _ann_activations(model, x[:1])
    assert _zero_rows_and_columns(fir) == 0
    # each weight of the model once: no copies, no routing ops
    stored = sum(op.weight.size for e in fir.edges for op in e.ops if hasattr(op, "weight"))
    assert stored == sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    # each edge reads whole layers: a chunk after a shuffle splits the layers it cuts
    split = [lay for lay in ifs if lay.channels is not None]
    assert split and all(lay.name.endswith(".c" + "_".join(map(str, lay.channels))) for lay in split)
    assert any(len(lay.channels) == 3 for lay in split)   # a depthwise conv of shuffled channels: strided
    for lay in split:
        assert lay.shape[0] == len(range(*lay.channels))


def test_tiny_shufflenet_runs_bit_exact():
    torch.manual_seed(0)
    graph = spikec.compile(randomize_bn(TinyShuffleNet()), X, method="robust", calibration=CAL)
    _run_both(graph, X)


@pytest.mark.slow
def test_every_backend_runs_a_shuffled_net_bit_for_bit():
    torch.manual_seed(0)
    graph = spikec.compile(randomize_bn(TinyShuffleNet()), X, method="robust", calibration=CAL)
    backends = tuple(b for b in ("torch", "brian2", "lava") if b in available())
    report = spikec.verify(graph, graph.encode(X.numpy()), steps=3, backends=backends)
    assert report.equal, report


def _transposed(x):
    b, c, h, w = x.size()
    return x.reshape(b, 2, c // 2, h, w).permute(0, 2, 1, 3, 4).flatten(1, 2)


def _swapped(x):
    b, c, h, w = x.size()
    return torch.swapaxes(x.view(b, 3, c // 3, h, w), 1, 2).reshape(b, c, h, w)


def _three_axes(x):
    b, c, h, w = x.size()
    return x.view(b, 2, 3, c // 6, h, w).permute(0, 3, 1, 2, 4, 5).reshape(b, c, h, w)


REARRANGE = {
    "shuffle": lambda x: channel_shuffle(x, 2),
    "reshape-permute-flatten": _transposed,
    "swapaxes, 3 groups": _swapped,
    "three axes": _three_axes,
    "chunk": lambda x: x.chunk(4, dim=1)[1],
    "split": lambda x: torch.split(x, [1, 3, 2], dim=1)[1],
    "narrow": lambda x: x.narrow(1, 1, 4),
    "strided slice": lambda x: x[:, 1::2],
    "shuffle, then slice": lambda x: channel_shuffle(x, 3)[:, 2:5],
}


class Rearranged(nn.Module):
    """A population rearranged by `rearrange`, read by a conv, a depthwise conv and an activation."""

    def __init__(self, rearrange):
        super().__init__()
        self.rearrange = rearrange
        c = rearrange(torch.zeros(1, 6, 4, 4)).shape[1]
        self.stem = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU())
        self.conv = nn.Conv2d(c, 4, 3, padding=1)
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.relu = nn.ReLU()
        self.fc = nn.Linear((4 + 2 * c) * 16, 10)

    def forward(self, x):
        y = self.rearrange(self.stem(x))
        parts = [self.relu(self.conv(y)), self.relu(self.dw(y)), self.relu(y * 0.5)]
        return self.fc(torch.flatten(F.avg_pool2d(torch.cat(parts, 1), 2), 1))


class VectorShuffle(nn.Module):
    """A shuffle and a chunk of a [B, N] vector: view(B, 3, N // 3) -> transpose -> reshape."""

    def __init__(self):
        super().__init__()
        self.f1 = nn.Linear(64, 12)
        self.f2 = nn.Linear(6, 5)
        self.fc = nn.Linear(11, 10)
        self.relu = nn.ReLU()

    def forward(self, x):
        v = self.relu(self.f1(torch.flatten(x, 1)))
        v = v.view(-1, 3, 4).transpose(1, 2).reshape(-1, 12)
        a, b = v.chunk(2, 1)
        return self.fc(torch.cat([self.relu(self.f2(a)), self.relu(b)], 1))


MODELS = {**{name: (lambda f=f: Rearranged(f)) for name, f in REARRANGE.items()}, "vector": VectorShuffle}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_rearrangements_lower_exactly_and_run_bit_exact(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    fir = float_ir(model, X)
    with torch.no_grad():
        want = model(X).double().numpy()
    np.testing.assert_allclose(ann_forward(fir, X.numpy()), want, rtol=1e-6, atol=1e-7)
    assert _zero_rows_and_columns(fir) == 0
    assert sum(int(np.prod(lay.shape)) for lay in fir.layers if lay.kind == "if") == _ann_activations(model, X[:1])
    _run_both(spikec.compile(model, X, method="robust", calibration=CAL), X)


def test_split_layers_take_their_channels_of_the_node_statistics():
    """per_channel calibration: a layer holding channels range(start, stop, step) of its node gets
    exactly those channels' thresholds (and the report names them)."""
    torch.manual_seed(0)
    result = compile_model(Rearranged(REARRANGE["strided slice"]).eval(), X, method="robust",
                           calibration=CAL, per_channel=True)
    rows = [r for r in result.graph.meta["layers"] if r.get("channels") is not None]
    assert {tuple(r["channels"]) for r in rows} == {(0, 5, 2), (1, 6, 2)}   # the stem: x[:, 1::2] and the rest
    stats = activation_statistics(result.traced, CAL, {rows[0]["node"]}, 99.9, True)
    for row in rows:
        np.testing.assert_allclose(row["theta_float"], stats[row["node"]][slice(*row["channels"])])


def test_ftbc_calibrates_split_layers():
    """FTBC compares each layer with its channels range(*channels) of its node's ANN activation."""
    torch.manual_seed(0)
    model = spikec.prepare(TinyShuffleNet(), CAL)
    graph = spikec.compile(model, X, method="ftbc", calibration=CAL, ftbc=dict(steps=2, batches=1, batch_size=16))
    assert any(len(r.get("channels") or ()) == 3 for r in graph.meta["layers"])
    _run_both(graph, X, steps=2)


class Refused(nn.Module):
    def __init__(self, after):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.grouped = nn.Conv2d(4, 4, 1, groups=2)
        self.after = after
        self.fc = nn.Linear(4 * 64, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.after(self, self.stem(x))), 1))


@pytest.mark.parametrize("after, module, message", [
    (lambda m, x: m.grouped(channel_shuffle(x, 2)), "grouped", "a grouped convolution (groups=2) reads channels"),
    (lambda m, x: torch.transpose(x, 2, 3), "", "only the axes of a split channel dim can be permuted"),
    (lambda m, x: x.view(-1, 2, 2, 8, 8).transpose(1, 3).reshape(-1, 4, 8, 8), "",
     "moves the batch or spatial dims of a view of split channels"),
    (lambda m, x: torch.cat(x.chunk(2, dim=2), 2), "", "selects along dim 2"),
    (lambda m, x: x.view(-1, 2, 2, 8, 8).relu().view(-1, 4, 8, 8), "", "view of split channels"),
])
def test_what_cannot_fold_is_refused_naming_module_and_reason(after, module, message):
    problems = spikec.check(Refused(after).eval(), X)
    assert message in problems[0].message, problems   # (a failed view stands in for a 5-D tensor after it)
    assert problems[0].module == module and problems[0].suggestion


def test_torchvision_shufflenet_v2_converts_and_runs_bit_exact():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.shufflenet_v2_x0_5(num_classes=10).eval()
    x = torch.rand(2, 3, 32, 32)
    before = spikec.check(model, x)
    assert {p.op for p in before} == {"MaxPool2d", "Conv2d"} and all(p.fixable for p in before)
    # exact clips (no quantisation): the float IR must compute the prepared ANN
    exact = spikec.prepare(model, x, kind="ecl", levels=None)
    with torch.no_grad():
        want = exact(x).double().numpy()
    fir = float_ir(exact, x)
    np.testing.assert_allclose(ann_forward(fir, x.numpy()), want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    assert _zero_rows_and_columns(fir) == 0
    prepared = spikec.prepare(model, x)
    assert spikec.check(prepared, x) == []
    _run_both(spikec.compile(prepared, x, steps=3), x)
