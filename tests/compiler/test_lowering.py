"""Lowering: the float IR computes exactly what the PyTorch model computes (before rounding), and
the graph has the structure the IR contract asks for (residual edges, folded pooling, names)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from zoo import BasicBlock, CatMix, DenseCat, Functional, GroupedDilated, InceptionCat, InputBN, ResNet, lenet, mlp, vgg

import spikec
from spikec.compiler.bnfold import fold_batchnorm
from spikec.compiler.floatir import FloatConv
from spikec.compiler.floatsim import ann_forward
from spikec.compiler.frontend import trace
from spikec.compiler.lowering import lower
from spikec.ir import Conv2d, Dense, Flatten, SumPool2d
from spikec.quantize import ClipActivation, ECLClip


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random statistics and affine parameters (eval-mode BN is then non-trivial)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.2)
    return model.eval()


def compile_relu(model, method="maxnorm", calibration_size=8):
    return spikec.compile(model, torch.rand(1, 1, 8, 8), method=method,
                          calibration=torch.rand(calibration_size, 1, 8, 8))


def float_ir(model, x):
    return lower(fold_batchnorm(trace(model, x)), x)


class PreScaled(nn.Module):
    """Constant arithmetic around a residual: (x - 0.5) * 2, 0.5 * (a + b), x / 4, reused ReLU."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding="same")
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        x = (x - 0.5) * 2
        a = self.relu(self.c1(x))
        b = self.relu(0.5 * (self.c2(a) + a))
        y = F.adaptive_avg_pool2d(b, 1).reshape(x.shape[0], -1) / 4
        return self.fc(y)


class ClipNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 6, 3), ECLClip(levels=None, threshold=0.7), nn.AvgPool2d(2),
                                  nn.Flatten(), nn.Linear(54, 16), ECLClip(levels=None, threshold=1.3),
                                  nn.Linear(16, 10))

    def forward(self, x):
        return self.body(x)


class ChannelClip(ClipActivation):
    """A clip activation with a per-channel threshold [C]."""

    def __init__(self, channels: int):
        super().__init__()
        self.lam = nn.Parameter(torch.linspace(0.3, 1.5, channels))

    @property
    def threshold(self):
        return self.lam

    def forward(self, z):
        return torch.minimum(F.relu(z), self.lam.view(1, -1, 1, 1))


def channel_clip_net():
    return nn.Sequential(nn.Conv2d(1, 5, 3, padding=1), ChannelClip(5), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(20, 10))


def bn1d_net():
    """BN1d after a Linear (folded) and after an activation (lowered as a scale), ReLU6."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU6(), nn.BatchNorm1d(32),
                         nn.Linear(32, 10))


def relu_resnet():
    return ResNet(kind="relu")


MODELS = {"mlp": mlp, "lenet": lenet, "vgg": lambda: vgg("relu"), "resnet": relu_resnet,
          "grouped": GroupedDilated, "functional": Functional, "inputbn": InputBN, "prescaled": PreScaled,
          "clip": ClipNet, "channelclip": channel_clip_net, "bn1d": bn1d_net,
          "densecat": lambda: DenseCat("relu"), "inceptioncat": InceptionCat, "catmix": CatMix,
          "linear": lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10))}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_float_ir_computes_the_model(name):
    torch.manual_seed(1)
    model = randomize_bn(MODELS[name]())
    x = torch.rand(5, 1, 8, 8) * (8 if name == "bn1d" else 1)  # make ReLU6 clip
    with torch.no_grad():
        want = model(x).double().numpy()
    got = ann_forward(float_ir(model, x), x.numpy())
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_bn_folding_is_exact_and_pure():
    torch.manual_seed(0)
    model = randomize_bn(vgg("relu"))
    x = torch.rand(4, 1, 8, 8)
    gm = trace(model, x)
    before = {k: v.clone() for k, v in gm.state_dict().items()}
    folded = fold_batchnorm(gm)
    assert all(torch.equal(before[k], v) for k, v in gm.state_dict().items())
    kinds = [type(m).__name__ for m in gm.modules()]
    assert "BatchNorm2d" in kinds
    assert not any(n.op == "call_module" and isinstance(folded.get_submodule(n.target), nn.BatchNorm2d)
                   for n in folded.graph.nodes)
    assert any(n.op == "call_module" and isinstance(gm.get_submodule(n.target), nn.BatchNorm2d)
               for n in gm.graph.nodes), "fold_batchnorm modified its input"
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)


def test_two_batchnorms_in_a_row_fold_into_the_conv():
    """Regression: the second BN was folded into the original conv, dropping the first."""
    model = randomize_bn(nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.BatchNorm2d(2), nn.Flatten()), 1)
    x = torch.rand(3, 1, 8, 8)
    folded = fold_batchnorm(trace(model, x))
    assert not any(n.op == "call_module" and isinstance(folded.get_submodule(n.target), nn.BatchNorm2d)
                   for n in folded.graph.nodes)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)


def test_compile_does_not_modify_the_model():
    torch.manual_seed(0)
    model = randomize_bn(ResNet(kind="relu")).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spikec.compile(model, torch.rand(1, 1, 8, 8), method="maxnorm", calibration=torch.rand(8, 1, 8, 8))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_residual_block_is_edges_into_one_layer_with_balanced_delays():
    torch.manual_seed(0)
    model = randomize_bn(ResNet(kind="relu"))
    graph = compile_relu(model, calibration_size=16)
    starts = graph.start_steps()
    for e in graph.edges:
        assert starts[e.src] + 1 + e.delay == starts[e.dst], f"{e.name} arrives out of step"
    identity = graph.in_edges("layers.0.relu_out")
    assert sorted(e.src for e in identity) == ["layers.0.relu", "stem.2"]
    short = next(e for e in identity if e.src == "stem.2")
    # identity shortcut: a depthwise 1x1 conv carrying theta_src/theta_dst, delayed by one step
    assert short.delay == 1 and isinstance(short.ops[0], Conv2d) and short.ops[0].groups == 8
    down = next(e for e in graph.in_edges("layers.1.relu_out") if e.src == "layers.0.relu_out")
    conv = down.ops[0]
    assert down.delay == 1 and conv.weight.shape[2:] == (1, 1) and conv.stride == (2, 2)
    assert graph.latency == graph.start_steps()[graph.readout.name] - 1 == 6


def test_average_pooling_folds_one_over_k_squared_into_the_consumer():
    torch.manual_seed(0)
    model = lenet()
    fir = float_ir(model, torch.rand(1, 1, 8, 8))
    edge = next(e for e in fir.edges if isinstance(e.ops[0], SumPool2d) and isinstance(e.ops[1], FloatConv))
    np.testing.assert_allclose(edge.ops[1].weight, model[3].weight.detach().double().numpy() / 4, rtol=1e-12)
    head = next(e for e in fir.edges if isinstance(e.ops[0], SumPool2d) and isinstance(e.ops[1], Flatten))
    np.testing.assert_allclose(head.ops[2].weight, model[7].weight.detach().double().numpy() / 4, rtol=1e-12)


@pytest.mark.parametrize("flatten", [
    lambda x: x.view(x.size(0), -1), lambda x: x.reshape(x.shape[0], -1), lambda x: torch.flatten(x, 1),
    lambda x: x.flatten(1), lambda x: x.view(-1, 32), nn.Flatten()])
def test_flatten_spellings(flatten):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 2, 3, padding=1), nn.Linear(32, 10)
            self.flat = flatten

        def forward(self, x):
            return self.fc(self.flat(F.avg_pool2d(F.relu(self.conv(x)), 2)))

    graph = spikec.compile(Net(), torch.rand(2, 1, 8, 8), method="robust", calibration=torch.rand(8, 1, 8, 8))
    ops = graph.in_edges(graph.readout.name)[0].ops
    assert [type(op) for op in ops] == [SumPool2d, Flatten, Dense]


def test_dropout_identity_and_containers_leave_no_trace():
    model = vgg("relu")
    graph = compile_relu(model)
    relus = [n for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    assert [p.name for p in graph.if_layers] == ["m." + n for n in relus]  # names start with a letter
    assert [r["source"] for r in graph.meta["layers"] if r["type"] == "IF"] == relus


def test_reused_module_gets_unique_names_and_same_source():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
            self.relu, self.fc = nn.ReLU(), nn.Linear(4 * 64, 10)

        def forward(self, x):
            return self.fc(self.relu(self.conv2(self.relu(self.conv1(x)))).flatten(1))

    graph = compile_relu(Block(), calibration_size=4)
    rows = [r for r in graph.meta["layers"] if r["type"] == "IF"]
    assert [r["name"] for r in rows] == ["relu", "relu_2"]
    assert [r["source"] for r in rows] == ["relu", "relu"]
    assert len({r["node"] for r in rows}) == 2
    assert graph.readout.name == "fc"


def test_conv_plus_its_own_input_merges_into_one_edge():
    graph = compile_relu(Functional(), method="robust")
    into = [e.src for e in graph.in_edges(graph.if_layers[1].name)]
    assert into == [graph.if_layers[0].name]


def test_basic_block_with_downsample_alone():
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), BasicBlock(4, 6, 2, "relu"),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    randomize_bn(block)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(ann_forward(float_ir(block, x), x.numpy()), block(x).double().numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_per_channel_clip_thresholds_and_relu6_become_thetas():
    torch.manual_seed(0)
    graph = spikec.compile(channel_clip_net(), torch.rand(1, 1, 8, 8), method="qcfs")
    row = next(r for r in graph.meta["layers"] if r["type"] == "IF")
    assert row["theta_float"] == pytest.approx(np.linspace(0.3, 1.5, 5).tolist())
    assert row["activation"] == "ChannelClip" and graph.if_layers[0].theta.shape == ()
    graph = spikec.compile(randomize_bn(bn1d_net()), torch.rand(1, 1, 8, 8), method="qcfs")
    row = next(r for r in graph.meta["layers"] if r["type"] == "IF")
    assert row["theta_float"] == 6.0 and row["activation"] == "clip(6)"


def test_a_network_without_hidden_layers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x = torch.rand(20, 1, 8, 8)
    graph = spikec.compile(model, x, method="maxnorm")
    assert graph.if_layers == [] and graph.latency == 1
    out = spikec.run(graph, graph.encode(x.numpy()), 4, backend="torch").output
    with torch.no_grad():
        assert (out.argmax(1) == model(x).argmax(1).numpy()).mean() >= 0.9
