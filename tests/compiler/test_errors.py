"""Every unsupported or broken input fails with a typed error that says what, where and what to do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from zoo import mlp

import spikec
from spikec.compiler import replace_maxpool
from spikec.compiler.bounds import check_bounds
from spikec.compiler.targets import Target
from spikec.errors import ConversionError, OverflowRiskError, UnsupportedError
from spikec.ir import IF, Dense, Edge, Graph, Input, Readout
from spikec.quantize import QCFS

X = torch.rand(2, 1, 8, 8)
CAL = torch.rand(16, 1, 8, 8)


def compile_(model, x=X, **kw):
    kw.setdefault("method", "robust")
    kw.setdefault("calibration", CAL if x is X else None)
    return spikec.compile(model, x, **kw)


def cnn_with(layer: nn.Module, channels: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), layer, nn.Flatten(),
                         nn.LazyLinear(10))


def materialize(model):
    with torch.no_grad():
        model(X)
    return model


def test_maxpool_module_names_path_and_offers_replace_maxpool():
    model = materialize(cnn_with(nn.MaxPool2d(2)))
    with pytest.raises(UnsupportedError, match=r"2 \(MaxPool2d\).*replace_maxpool"):
        compile_(model)
    replace_maxpool(model)
    assert isinstance(model[2], nn.AvgPool2d) and model[2].kernel_size == 2
    graph = compile_(model)
    assert [type(op).__name__ for op in graph.in_edges(graph.readout.name)[0].ops] == ["SumPool2d", "Flatten",
                                                                                       "Dense"]


def test_functional_maxpool_names_the_source_line():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 2, 3, padding=1), nn.Linear(32, 10)

        def forward(self, x):
            return self.fc(F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1))

    with pytest.raises(UnsupportedError, match=r"F\.max_pool2d at test_errors\.py:\d+\).*average pooling"):
        compile_(Net())


def test_lstm_names_its_path_and_lists_what_is_supported():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.LSTM(16, 16))
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            return self.fc(self.features(x)[0])

    with pytest.raises(UnsupportedError, match=r"features\.3 \(LSTM\) is not supported; supported modules: "
                                               r".*AvgPool2d.*Conv2d.*functions: .*F\.relu"):
        compile_(Net())


@pytest.mark.parametrize("layer,where", [(nn.Sigmoid(), r"^1 \(Sigmoid\) is not supported"),
                                         (nn.LeakyReLU(), r"^1 \(LeakyReLU\) is not supported")])
def test_other_unsupported_modules(layer, where):
    with pytest.raises(UnsupportedError, match=where):
        compile_(nn.Sequential(nn.Flatten(), layer, nn.Linear(64, 10)), calibration=None)


def test_unsupported_reshape_and_upsampling():
    with pytest.raises(UnsupportedError, match=r"^0 \(Flatten\): reshapes \[B, 1, 8, 8\] to \[2, 1, 64\]; "
                                               r"only "
                                               r"flattening to \[B, N\]"):
        compile_(nn.Sequential(nn.Flatten(2), nn.Flatten(), nn.Linear(64, 10)))
    model = materialize(cnn_with(nn.Upsample(scale_factor=2)))
    with pytest.raises(UnsupportedError, match=r"^2 \(Upsample\) is not supported"):
        compile_(model)


def test_unsupported_functional_names_function_and_line():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(64, 16), nn.Linear(16, 10)

        def forward(self, x):
            return self.fc2(torch.sigmoid(self.fc1(x.flatten(1))))

    with pytest.raises(UnsupportedError,
                       match=r"sigmoid \(torch\.sigmoid at test_errors\.py:\d+\) is not supported"):
        compile_(Net())


def test_concatenation_only_along_channels():
    class Net(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.dim = dim
            self.fc = nn.Linear(128, 10)

        def forward(self, x):
            return self.fc(torch.cat([F.relu(x), F.relu(-x)], self.dim).flatten(1))

    compile_(Net(1))   # channels: supported
    with pytest.raises(UnsupportedError, match=r"torch\.cat at test_errors\.py:\d+\): concatenates along dim 2"):
        compile_(Net(2))


def test_concatenation_with_a_constant_is_refused():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("extra", torch.ones(2, 1, 8, 8))
            self.fc = nn.Linear(128, 10)

        def forward(self, x):
            return self.fc(F.relu(torch.cat([x, self.extra], 1)).flatten(1))   # the example has batch 2

    with pytest.raises(UnsupportedError, match="concatenates a constant"):
        compile_(Net())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights(bad):
    model = mlp()
    with torch.no_grad():
        model[4].weight[0, 0] = bad
    kind = "NaN" if bad != bad else "Inf"
    with pytest.raises(ConversionError, match=rf"4\.weight: contains {kind}"):
        compile_(model)


def test_non_finite_batchnorm_statistics():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(72, 10))
    model[1].running_var[1] = float("inf")
    with pytest.raises(ConversionError, match=r"1\.running_var: contains Inf"):
        compile_(model)


def test_mismatched_example_input_carries_the_models_message():
    with pytest.raises(ConversionError, match=r"rejects example_input of shape \(2, 1, 10, 10\).*"
                                              r"mat1 and mat2 shapes cannot be multiplied"):
        compile_(mlp(), torch.rand(2, 1, 10, 10), calibration=None)
    with pytest.raises(ConversionError, match=r"batch"):
        compile_(mlp(), torch.rand(64))
    with pytest.raises(ConversionError, match=r"calibration samples have shape \(1, 4, 4\)"):
        compile_(mlp(), X, calibration=torch.rand(4, 1, 4, 4))


def test_qcfs_method_refuses_plain_relu():
    with pytest.raises(ConversionError, match=r"2 \(ReLU\): method 'qcfs' needs trained clip activations.*"
                                              r"plain "
                                              r"ReLU.*replace_relu"):
        compile_(mlp(), method="qcfs")


def test_relu_without_calibration_asks_for_it():
    with pytest.raises(ConversionError, match=r"pass calibration="):
        compile_(mlp(), calibration=None)


def test_clip_models_need_no_calibration():
    model = mlp("qcfs")
    graph = compile_(model, method="qcfs", calibration=None)
    notes = [row["notes"] for row in graph.meta["layers"] if row["type"] == "IF"]
    assert [n["threshold_from"] for n in notes] == ["clip", "clip"]
    assert isinstance(model[2], QCFS)


def test_two_linear_layers_without_activation():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.Linear(16, 10))
    with pytest.raises(UnsupportedError, match=r"4 \(Linear\): follows 3 with no activation between"):
        compile_(model)


def test_pooling_with_padding_and_uneven_adaptive_pooling():
    with pytest.raises(UnsupportedError, match=r"2 \(AvgPool2d\): .*padding=1"):
        compile_(materialize(cnn_with(nn.AvgPool2d(2, padding=1, count_include_pad=False))))
    with pytest.raises(UnsupportedError, match=r"2 \(AdaptiveAvgPool2d\): .*8x8 to 3x3"):
        compile_(materialize(cnn_with(nn.AdaptiveAvgPool2d(3))))


def test_model_output_must_be_logits():
    with pytest.raises(UnsupportedError, match=r"logits \[B, N\]"):
        compile_(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))


def test_unknown_method_target_and_option():
    with pytest.raises(UnsupportedError, match=r"unknown conversion method 'nope'; known methods: .*maxnorm"):
        compile_(mlp(), method="nope")
    with pytest.raises(UnsupportedError, match=r"unknown target 'tpu'; known targets: .*int32.*loihi"):
        compile_(mlp(), target="tpu")
    with pytest.raises(ConversionError, match=r"unknown option\(s\) \['colour'\]"):
        compile_(mlp(), colour="red")


def test_overflow_risk_is_raised_or_accepted_explicitly():
    with pytest.raises(OverflowRiskError, match=r"in a run of 10000000 evaluated steps \(\d+ local steps "
                                                r"here\) the membrane can exceed the 24-bit "
                                                r".* cost \d+\.\d bits .*saturate=True"):
        compile_(mlp(), steps=10**7)
    graph = compile_(mlp(), steps=10**7, saturate=True)
    bounds = graph.meta["bounds"]
    assert bounds["saturation"].startswith("accepted")
    assert any(r["may_saturate"] for r in bounds["layers"].values())


def test_per_step_input_that_would_wrap_is_never_accepted():
    inp = Input("x", (4,), value_bits=8)
    layer = IF("h", (2,), theta=np.array(100))
    edges = [Edge("x", "h", (Dense(np.full((2, 4), 100)),)),
             Edge("h", "out", (Dense(np.ones((3, 2), np.int64)),))]
    graph = Graph((inp, layer, Readout("out", (3,))), edges).validate()
    with pytest.raises(OverflowRiskError, match=r"h: per-step synaptic input can reach 50800 > 1000"):
        check_bounds(graph, input_limit=1000, steps=None, saturate=True)
    rows = check_bounds(graph, input_limit=2**17 - 1, steps=None, saturate=False).meta["bounds"]["layers"]
    assert rows["h"]["input_bound"] == 50800


def test_a_layer_whose_weights_all_round_to_zero_is_an_error():
    tiny = Target("tiny", weight_bits=8, theta_max=2**17 - 1, bias_mant_bits=13, bias_exp_max=7,
                  state_bits=24, input_limit=100)
    with pytest.raises(ConversionError, match=r"every weight rounds to 0 .*limited by accumulator"):
        compile_(mlp(), target=tiny, saturate=True)
