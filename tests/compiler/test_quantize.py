"""Quantization to target widths, the method registry, thresholds and the input scale."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from zoo import ResNet, data, mlp, trained

import spikec
from spikec.compiler import Policy, compile_model, methods
from spikec.compiler.floatsim import simulate
from spikec.compiler.integer import legalize_bias
from spikec.compiler.targets import get as get_target
from spikec.compiler.thresholds import choose_input_scale
from spikec.ir import Conv2d, Dense

LOIHI = get_target("loihi")


def readout_scale(graph):
    return next(r["scale"] for r in graph.meta["layers"] if r["type"] == "Readout")


def rows(graph, kind="IF"):
    return [r for r in graph.meta["layers"] if r["type"] == kind]


@pytest.mark.parametrize("value,expected,rounded,clipped", [
    (4095, 4095, 0, 0), (-4095, -4095, 0, 0), (4097, 4096, 1, 0), (4099, 4100, 1, 0),
    (-10001, -10000, 1, 0), (4095 << 7, 4095 << 7, 0, 0), (10**7, 4095 << 7, 0, 1), (0, 0, 0, 0)])
def test_bias_is_legalised_to_mantissa_and_exponent(value, expected, rounded, clipped):
    out, n_round, n_clip = legalize_bias(np.array([value]), LOIHI)
    assert out[0] == expected and (n_round, n_clip) == (rounded, clipped)
    exps = [e for e in range(8) if expected % (1 << e) == 0 and abs(expected >> e) <= 4095]
    assert exps, f"{expected} is not mant << exp"


def test_int32_target_rounds_far_less_than_loihi():
    model, d = trained("mlp"), data()
    errors = {}
    for target in ("loihi", "int32"):
        result = compile_model(model, d.x_test[:1], method="robust", calibration=d.x_train[:256],
                               target=target)
        graph = result.graph
        x = graph.encode(d.x_test[:32].numpy())
        ideal = simulate(result.float_graph, x, 64)
        real = spikec.run(graph, x, 64, backend="torch").output / readout_scale(graph)
        errors[target] = (np.linalg.norm(real - ideal) / np.linalg.norm(ideal),
                          max(r["weight_error"] for r in rows(graph)))
        assert graph.meta["target"] == target
    assert errors["int32"][1] < errors["loihi"][1] / 50
    assert errors["int32"][0] < errors["loihi"][0] and errors["int32"][0] < 0.01


def test_per_channel_scales_fill_each_output_channels_weight_range():
    torch.manual_seed(0)
    model = ResNet(kind="relu").eval()
    x, cal = torch.rand(1, 1, 8, 8), torch.rand(16, 1, 8, 8)
    layer = spikec.compile(model, x, method="maxnorm", calibration=cal)
    chan = spikec.compile(model, x, method="maxnorm", calibration=cal, scale_per_channel=True)
    for a, b in zip(rows(layer), rows(chan)):
        assert b["weight_error"] <= a["weight_error"] * 1.05
    stem = chan.node("stem.2")
    assert stem.theta.shape == (8,) and np.array_equal(stem.v_init, 0 * stem.theta)
    conv = chan.in_edges("layers.0.relu")[0].ops[0]
    row_max = np.abs(conv.weight).reshape(conv.weight.shape[0], -1).max(1)
    assert row_max.min() >= 100  # every channel uses (nearly) the whole int8 range


def test_per_channel_thresholds_and_percentiles():
    model, d = trained("lenet"), data()
    kw = dict(calibration=d.x_train[:128])
    mx = spikec.compile(model, d.x_test[:1], method="maxnorm", **kw)
    rb = spikec.compile(model, d.x_test[:1], method="robust", **kw)
    pc = spikec.compile(model, d.x_test[:1], method="maxnorm", per_channel=True, **kw)
    p50 = spikec.compile(model, d.x_test[:1], method="maxnorm", percentile=50.0, **kw)
    for m, r, c, h in zip(rows(mx), rows(rb), rows(pc), rows(p50)):
        assert r["theta_float"] <= m["theta_float"] and h["theta_float"] < r["theta_float"]
        per = np.atleast_1d(c["theta_float"])
        assert len(per) == m["shape"][0] and per.max() == pytest.approx(m["theta_float"])
        assert m["notes"]["threshold_from"] == "calibration"


def test_input_scale_from_data_bits_or_option():
    d = data()  # pixels in [0, 1]
    model = trained("mlp")
    kw = dict(method="robust", calibration=d.x_train[:64])
    assert spikec.compile(model, d.x_test[:1], **kw).input.scale == 127
    g9 = spikec.compile(model, d.x_test[:1], input_bits=9, **kw)
    assert g9.input.scale == 255 and g9.input.value_bits == 9
    g16 = spikec.compile(model, d.x_test[:1], input_scale=16, **kw)
    x = d.x_test[:10].numpy()
    assert np.array_equal(g16.encode(x), (x * 16).astype(np.int64))  # digits are k/16: exact
    # the range is max|x| rounded up to a power of two: a dim example does not cause clipping later
    assert choose_input_scale(torch.full((1, 4), 0.9), 8, None) == 127
    assert choose_input_scale(torch.full((1, 4), -3.0), 8, None) == 31
    assert choose_input_scale(torch.full((1, 4), 1000.0), 8, None) == 127 / 1024
    with pytest.raises(spikec.ConversionError, match="all zeros"):
        spikec.compile(trained("vgg"), torch.zeros(1, 1, 8, 8), method="qcfs")


def test_weights_theta_and_readout_fit_the_target():
    model, d = trained("resnet"), data()
    graph = spikec.compile(model, d.x_test[:1], method="qcfs")
    for e in graph.edges:
        for op in e.ops:
            if isinstance(op, (Conv2d, Dense)):
                assert op.weight.min() >= -128 and op.weight.max() <= 127
    for layer in graph.if_layers:
        assert layer.theta.max() <= 2**17 - 1 and np.all(layer.theta % 2 == 0)
        assert np.array_equal(layer.v_init, layer.theta // 2)
    assert graph.readout.state_bits == 24 and graph.meta["bounds"]["steps"] is None


def test_a_new_method_plugs_in_without_touching_the_pipeline():
    seen = {}

    def post(graph, ctx):
        seen.update(steps=ctx.steps, options=ctx.options, target=ctx.target.name,
                    traced=ctx.traced is not None)
        return graph

    methods.register(Policy("test-signed", "signed neurons with a readout skip", v_init=0.5, signed=True,
                            if_fields=lambda row: {"theta_neg": 1.0, "gate": "net"},
                            readout_fields=lambda: {"skip": 2}, post=post, options=("flavour",)))
    try:
        model, d = trained("mlp"), data()
        graph = spikec.compile(model, d.x_test[:1], method="test-signed", calibration=d.x_train[:64],
                               steps=32, flavour="mint")
    finally:
        methods.METHODS.pop("test-signed")
    assert seen == {"steps": 32, "options": {"flavour": "mint"}, "target": "loihi", "traced": True}
    for layer in graph.if_layers:
        assert np.array_equal(layer.theta_neg, layer.theta) and layer.gate == "net"
    assert graph.readout.skip == 2 and graph.latency == graph.start_steps()[graph.readout.name] - 1 + 2
    assert graph.meta["method"] == "test-signed"
    with pytest.raises(spikec.UnsupportedError, match="unknown conversion method 'test-signed'"):
        spikec.compile(mlp(), d.x_test[:1], method="test-signed")


def test_residual_joins_get_per_edge_weight_exponents():
    """Where a strong identity shortcut meets a weak conv branch, the branch keeps its 8-bit
    mantissas at exponent 0 and the shortcut takes an exponent, instead of one shared scale."""
    torch.manual_seed(0)
    model = ResNet(kind="relu").eval()
    with torch.no_grad():
        for block in model.layers:
            block.bn2.weight.mul_(0.05)   # the conv branch's weights ~20x smaller than the shortcut's
    x, cal = torch.rand(1, 1, 8, 8), torch.rand(16, 1, 8, 8)
    one_scale = dataclasses.replace(LOIHI, name="loihi-one-scale", weight_exp_max=0)
    shared = spikec.compile(model, x, method="maxnorm", calibration=cal, target=one_scale)
    scaled = spikec.compile(model, x, method="maxnorm", calibration=cal)
    for a, b in zip(rows(shared), rows(scaled)):
        if len(b["weight_exp"]) == 1:   # single-edge layers: unchanged
            assert b["weight_exp"] == a["weight_exp"] == {next(iter(b["weight_exp"])): 0}
            assert b["weight_error"] == a["weight_error"]
            continue
        branch, shortcut = sorted(scaled.in_edges(b["name"]), key=lambda e: e.weight_exp)
        assert branch.src == b["name"].replace("relu_out", "relu")   # conv2 reads the block's first ReLU
        assert branch.weight_exp == 0 and 1 <= shortcut.weight_exp <= LOIHI.weight_exp_max
        assert b["weight_exp"] == {branch.src: 0, shortcut.src: shortcut.weight_exp}
        assert b["weight_error"] < a["weight_error"] / 3
        assert b["edge_weight_error"][branch.src] < a["edge_weight_error"][branch.src] / 3
    for e in scaled.edges:
        for op in e.ops:
            if isinstance(op, (Conv2d, Dense)):
                assert -128 <= op.weight.min() and op.weight.max() <= 127
    xi = scaled.encode(cal[:4])
    assert np.array_equal(spikec.run(scaled, xi, 6, backend="torch").output,
                          spikec.run(scaled, xi, 6, backend="reference").output)
