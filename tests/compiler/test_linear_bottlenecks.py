"""Linear bottlenecks (MobileNetV2-style projection conv + BN, no activation): SignedClip on the
ANN side, dual-threshold IF layers in the graph, spikec.prepare inserting them, torch == reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from equivalence import assert_traces_equal
from torch import nn

import spikec
from spikec import IF, Dense, Edge, Graph, Input, Readout, run
from spikec.errors import ConversionError, MissingActivationError, UnsupportedError
from spikec.models import InvertedResidual
from spikec.quantize import QCFS, SignedClip


def signed_clips(model) -> dict[str, SignedClip]:
    return {n: m for n, m in model.named_modules() if isinstance(m, SignedClip)}


# --------------------------------------------------------------------------- the neuron and the ANN clip


def one_signed_layer(weight, theta: int, v_init: int) -> Graph:
    n = len(weight)
    pops = [Input("x", (1,), value_bits=12),
            IF("l0", (n,), theta=np.int64(theta), v_init=np.int64(v_init), theta_neg=np.int64(theta)),
            Readout("out", (n,))]
    edges = [Edge("x", "l0", (Dense(np.asarray(weight, np.int64)[:, None]),)),
             Edge("l0", "out", (Dense(np.eye(n, dtype=np.int64)),))]
    return Graph(pops, edges).validate()


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_signed_neuron_at_t_equals_l_is_the_signed_quantiser(backend):
    theta = 8
    z = np.arange(-3 * theta, 2 * theta + 1)          # constant currents, both signs, beyond the clip
    g = one_signed_layer(z, theta, theta // 2)
    for steps in (1, 2, 3, 4, 7, 16):
        counts = run(g, np.ones((1, 1), np.int64), steps, backend=backend).output[0]
        clip = SignedClip(levels=steps, threshold=float(theta), neurons="signed")
        expected = np.rint(clip(torch.tensor(z, dtype=torch.float64)).detach().numpy() * steps / theta)
        near = 2 * z > -3 * theta                      # exact for z > -1.5 theta (see spikec/quantize/signed.py)
        assert np.array_equal(counts[near], expected[near]), (steps, counts, expected)
        assert np.all(counts[~near] == -steps) and np.all(expected[~near] == -(steps - 1))
        assert counts.max() == steps and expected.max() == steps


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_signed_zero_neuron_is_the_symmetric_truncating_quantiser(backend):
    theta = 8
    z = np.arange(-3 * theta, 3 * theta + 1)
    g = one_signed_layer(z, theta, 0)
    for steps in (1, 2, 3, 4, 7, 16):
        counts = run(g, np.ones((1, 1), np.int64), steps, backend=backend).output[0]
        clip = SignedClip(levels=steps, threshold=float(theta), neurons="signed-zero")
        expected = np.rint(clip(torch.tensor(z, dtype=torch.float64)).detach().numpy() * steps / theta)
        assert np.array_equal(counts, expected), (steps, counts, expected)
        assert np.array_equal(counts, -counts[::-1])        # odd: symmetric in z


def test_pair_clip_is_two_qcfs():
    z = torch.linspace(-3, 3, 121)
    pair = SignedClip(levels=4, threshold=2.0, neurons="pair")
    q = QCFS(levels=4, threshold=2.0)
    assert torch.equal(pair(z), q(z) - q(-z))
    y = pair(z).detach()
    assert float(y.min()) == -2.0 and float(y.max()) == 2.0
    with pytest.raises(ConversionError):
        SignedClip(neurons="ternary")


def test_signed_clip_module():
    z = torch.linspace(-3, 3, 61, requires_grad=True)
    pure = SignedClip(levels=None, threshold=1.5)
    y = pure(z)
    assert torch.equal(y, z.clamp(-1.5, 1.5))
    y.sum().backward()
    assert float(pure.lam.grad) == float((z > 1.5).sum() - (z < -1.5).sum())
    q = SignedClip(levels=4, threshold=2.0)(z).detach()            # default: signed-zero, symmetric
    assert set((q * 2).tolist()) == set(range(-4, 5)) and torch.equal(q, -SignedClip(4, 2.0)(-z).detach())
    q = SignedClip(levels=4, threshold=2.0, neurons="signed")(z).detach()
    assert set((q * 2).tolist()) == set(range(-3, 5)) and float(q.min()) == -1.5 and float(q.max()) == 2.0
    assert SignedClip.signed and not QCFS.signed
    with pytest.raises(ConversionError):
        SignedClip(levels=0)
    with pytest.raises(ConversionError):
        SignedClip(threshold=-1.0)


# --------------------------------------------------------------------------- prepare + compile


class Bottlenecks(nn.Module):
    """stem, then two inverted residuals (the second with its residual add), twice."""

    def __init__(self, residual_first: bool = False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.blocks = nn.Sequential(*[InvertedResidual(4, 4, 1, 2, residual=residual_first or i % 2 == 1)
                                      for i in range(4)])
        self.head = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.head(torch.flatten(self.blocks(self.stem(x)), 1))


def random_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return random_bn(Bottlenecks())


@pytest.fixture(scope="module")
def images():
    return torch.rand(32, 1, 6, 6, generator=torch.Generator().manual_seed(1))


def test_check_reports_bottlenecks_and_suggests_prepare(net, images):
    problems = spikec.check(net, images[:1])
    assert len(problems) == 4   # blocks 1, 2, 3 and the head each follow a projection (+ add)
    assert all(p.fixable and "SignedClip" in p.suggestion for p in problems)
    with pytest.raises(UnsupportedError, match="no activation between"):
        spikec.compile(net, images[:1])
    with pytest.raises(MissingActivationError):
        spikec.compile(nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.Linear(8, 3)), images[:1])


def test_prepare_inserts_calibrated_signed_clips(net, images):
    prepared = spikec.prepare(net, images[:1], calibration=images)
    clips = signed_clips(prepared)
    assert len(clips) == 4 and spikec.check(prepared, images[:1]) == []
    # one clip per value, shared by the next conv and the residual add: block 2's output feeds both
    users = [n for n in prepared.graph.nodes if n.op == "call_module" and n.target == "blocks.2.conv.signed_clip"]
    assert len(users) == 1 and {u.op for u in users[0].users} == {"call_module", "call_function"}
    # threshold = 99.9th percentile of |input| (the first clip sees block 0's projection output)
    seen = []
    hook = prepared.get_submodule("blocks.0.conv.signed_clip").register_forward_hook(
        lambda _m, inp, _o: seen.append(inp[0].detach().abs().flatten()))
    prepared(images)
    hook.remove()
    values = torch.cat(seen)
    values = values[values > 0]
    k = int(round(values.numel() * 0.999))
    assert float(clips["blocks.0.conv.signed_clip"].lam.detach()) == pytest.approx(float(values.kthvalue(k).values))
    assert spikec.check(spikec.prepare(net, images[:1], linear_bottlenecks=None), images[:1])
    with pytest.raises(ConversionError):
        spikec.prepare(net, images[:1], linear_bottlenecks="relu")


@pytest.mark.parametrize("residual_first", [False, True])
def test_signed_layers_compile_and_torch_equals_reference(residual_first, images):
    torch.manual_seed(2)
    prepared = spikec.prepare(random_bn(Bottlenecks(residual_first), 3), images[:1], calibration=images)
    graph = spikec.compile(prepared, images[:1], method="qcfs", steps=8)
    by_source = {r["name"]: r["source"] for r in graph.meta["layers"]}
    signed = [p for p in graph.if_layers if p.theta_neg is not None]
    assert {by_source[p.name] for p in signed} == set(signed_clips(prepared))
    for p in graph.if_layers:
        if p.theta_neg is not None:   # the default neurons, "signed-zero"
            assert np.array_equal(p.theta_neg, p.theta) and p.gate == "none" and not np.any(p.v_init)
    x = graph.encode(images[:2].numpy())
    ref = run(graph, x, 8, backend="reference", record=True)
    got = run(graph, x, 8, backend="torch", record=True)
    assert_traces_equal(got, ref)
    assert any((ref.spikes[p.name] < 0).any() for p in signed)   # the signed path is exercised


def test_signed_layers_with_other_methods(net, images):
    prepared = spikec.prepare(net, images[:1], calibration=images)
    ecl = spikec.compile(prepared, images[:1], method="ecl")
    gates = {p.gate for p in ecl.if_layers if np.array_equal(p.theta_neg, p.theta) and p.gate == "none"}
    assert gates == {"none"} and {p.gate for p in ecl.if_layers} == {"none", "net"}
    with pytest.raises(UnsupportedError, match="SRP"):
        spikec.compile(prepared, images[:1], method="srp")


def test_padded_pool_of_a_signed_value_is_refused(images):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), SignedClip(threshold=1.0),
                          nn.AvgPool2d(3, 2, padding=1), nn.Flatten(), nn.Linear(18, 3))
    with pytest.raises(UnsupportedError, match="signed value"):
        spikec.compile(model.eval(), images[:1])


def test_pair_neurons_are_two_unsigned_layers_with_negated_weights(net, images):
    prepared = spikec.prepare(net, images[:1], calibration=images, linear_bottlenecks="pair")
    assert len(signed_clips(prepared)) == 4 and spikec.check(prepared, images[:1]) == []
    graph = spikec.compile(prepared, images[:1], method="qcfs", steps=8)
    assert all(p.theta_neg is None for p in graph.if_layers)
    negs = [p.name for p in graph.if_layers if p.name.endswith(".neg")]
    assert len(negs) == 4
    for neg in negs:
        pos = neg[:-len(".neg")]
        assert np.array_equal(graph.node(pos).theta, graph.node(neg).theta)
        assert np.array_equal(graph.node(neg).bias, -graph.node(pos).bias)
        ins = {(e.src, e.weight_exp): e for e in graph.in_edges(pos)}
        for e in graph.in_edges(neg):            # -x: every incoming weight negated
            assert negated(e, ins[(e.src, e.weight_exp)])
        outs = {e.dst: e for e in graph.out_edges(pos)}
        for e in graph.out_edges(neg):           # the value is pos - neg: outgoing weights negated
            assert any(np.any(getattr(op, "weight", 0) != 0) for op in e.ops) and negated(e, outs[e.dst])
    x = graph.encode(images[:2].numpy())
    ref = run(graph, x, 8, backend="reference", record=True)
    assert_traces_equal(run(graph, x, 8, backend="torch", record=True), ref)


def negated(edge, twin) -> bool:
    return all(np.array_equal(getattr(a, "weight", 0), -getattr(b, "weight", 0)) for a, b in zip(edge.ops, twin.ops))


def test_signed_neurons_start_at_half_theta(net, images):
    prepared = spikec.prepare(net, images[:1], calibration=images, linear_bottlenecks="signed")
    graph = spikec.compile(prepared, images[:1], method="qcfs", steps=8)
    signed = [p for p in graph.if_layers if p.theta_neg is not None]
    assert len(signed) == 4 and all(p.gate == "none" for p in signed)
    assert all(np.array_equal(p.v_init, p.theta // 2) for p in graph.if_layers)
    x = graph.encode(images[:2].numpy())
    ref = run(graph, x, 8, backend="reference", record=True)
    assert_traces_equal(run(graph, x, 8, backend="torch", record=True), ref)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "mnasnet0_5"])
def test_torchvision_linear_bottleneck_nets_convert(name):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10).eval()
    x = torch.rand(2, 3, 64, 64)
    before = spikec.check(model, x)
    assert len(before) == 17 and all(p.fixable and "SignedClip" in p.suggestion for p in before)
    prepared = spikec.prepare(model, x)
    assert len(signed_clips(prepared)) == 17 and spikec.check(prepared, x) == []
    graph = spikec.compile(prepared, x, steps=2)
    assert sum(p.theta_neg is not None for p in graph.if_layers) == 17
    inputs = graph.encode(x.numpy())
    ref = run(graph, inputs, 2, backend="reference", record=True)
    assert_traces_equal(run(graph, inputs, 2, backend="torch", record=True), ref)
    assert any((ref.spikes[p.name] < 0).any() for p in graph.if_layers if p.theta_neg is not None)


@pytest.mark.slow
@pytest.mark.parametrize("neurons", ["signed-zero", "signed", "pair"])
def test_every_backend_runs_signed_clips_bit_for_bit(neurons, images):
    from spikec.backends.brian2 import backend as brian2_backend
    from spikec.backends.lava import backend as lava_backend

    backends = tuple(name for name, b in (("brian2", brian2_backend), ("lava", lava_backend)) if b.is_available())
    if not backends:
        pytest.skip("neither Brian2 nor Lava is installed")
    torch.manual_seed(2)
    prepared = spikec.prepare(random_bn(Bottlenecks(), 3), images[:1], calibration=images, linear_bottlenecks=neurons)
    graph = spikec.compile(prepared, images[:1], method="qcfs", steps=4)
    report = spikec.verify(graph, graph.encode(images[:1].numpy()), 4, backends=("torch",) + backends)
    assert report.equal, report


class MeanPool(nn.Module):
    def __init__(self, dims, keepdim=False, features=3):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.act = QCFS(levels=4, threshold=1.0)
        self.fc = nn.Linear(features, 2)
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        y = self.act(self.conv(x)).mean(self.dims, keepdim=self.keepdim)
        return self.fc(y.flatten(1))


@pytest.mark.parametrize("dims,keepdim", [((2, 3), False), ([-2, -1], True)])
def test_spatial_mean_lowers_as_global_average_pooling(dims, keepdim, images):
    torch.manual_seed(0)
    model = MeanPool(dims, keepdim).eval()
    pooled = nn.Sequential(model.conv, model.act, nn.AdaptiveAvgPool2d(1), nn.Flatten(), model.fc).eval()
    a = spikec.compile(model, images[:1], steps=4)
    b = spikec.compile(pooled, images[:1], steps=4)
    x = a.encode(images[:3].numpy())
    assert np.array_equal(run(a, x, 4).output, run(b, x, 4).output)


def test_other_means_are_refused(images):
    with pytest.raises(UnsupportedError, match="spatial mean"):
        spikec.compile(MeanPool(1, features=36).eval(), images[:1])          # over channels
    with pytest.raises(UnsupportedError, match="spatial mean"):
        spikec.compile(MeanPool(3, True, features=18).eval(), images[:1])    # over the width only


def test_ann_targets_of_signed_and_pair_layers(net, images):
    """FTBC and layer_errors compare each IF layer with its ANN activation: a pair's halves stand
    for max(y, 0) and max(-y, 0) of the clip's output y; signed layers for y in [-theta, theta]."""
    from spikec.analysis.layer_error import layer_errors
    from spikec.conversion.ftbc import _activations, layer_sources

    prepared = spikec.prepare(net, images[:1], calibration=images, linear_bottlenecks="pair")
    graph = spikec.compile(prepared, images[:1], method="qcfs", steps=8)
    sources = layer_sources(graph)
    acts = _activations(prepared, sources, images[:4])
    y = {}
    hook = prepared.get_submodule("blocks.0.conv.signed_clip").register_forward_hook(
        lambda _m, _i, out: y.update(y=out.detach().double()))
    prepared(images[:4])
    hook.remove()
    pos = next(n for n, s in sources.items() if s["source"] == "blocks.0.conv.signed_clip" and s["part"] == "+")
    assert torch.equal(acts[pos], y["y"].clamp(min=0)) and torch.equal(acts[pos + ".neg"], (-y["y"]).clamp(min=0))
    assert (y["y"] < 0).any() and (y["y"] > 0).any()
    rows = {r["layer"]: r for r in layer_errors(graph, prepared, images[:4], steps=(4, 32))}
    assert set(rows) == {p.name for p in graph.if_layers} and rows[pos + ".neg"]["ann_rate"] > 0

    prepared = spikec.prepare(net, images[:1], calibration=images)
    rows = layer_errors(spikec.compile(prepared, images[:1], steps=8), prepared, images[:4], steps=(4,))
    assert any(r["ann_rate"] < 0 for r in rows)   # signed targets are no longer clipped at 0
