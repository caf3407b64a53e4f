"""Data-driven initial thresholds: the one-pass calibration equals the layer-by-layer loop."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from spikec.errors import ConversionError
from spikec.quantize import calibrate_thresholds, replace_relu


class Shared(nn.Module):
    """One activation module called at two places (as torchvision's BasicBlock does)."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.c2(self.relu(self.c1(x))))


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(6 * 4 * 4, 5), nn.ReLU())


@pytest.mark.parametrize("factory", [_cnn, Shared])
def test_one_pass_equals_layer_by_layer(factory):
    torch.manual_seed(1)
    x = torch.randn(16, 1, 8, 8)
    model = replace_relu(factory().eval(), kind="qcfs", levels=4)
    twin = copy.deepcopy(model)
    one = calibrate_thresholds(model, x, batch_size=64)       # one batch: the one-pass path
    loop = calibrate_thresholds(twin, x, batch_size=3)        # several batches: the layer loop (eval: same values)
    assert one.keys() == loop.keys() and len(one) >= 1
    for name in one:
        assert one[name] == pytest.approx(loop[name], rel=1e-6), name
    # front to back: a later layer's threshold depends on the earlier ones being calibrated
    assert len(set(one.values())) == len(one)


def test_one_pass_runs_the_model_once_per_batch():
    model = replace_relu(_cnn().eval(), kind="qcfs", levels=4)
    calls = []
    model.register_forward_pre_hook(lambda _m, _i: calls.append(1))
    calibrate_thresholds(model, torch.randn(8, 1, 8, 8))
    assert len(calls) == 1


def test_a_layer_that_never_sees_a_positive_input_is_named():
    model = replace_relu(_cnn().eval(), kind="qcfs", levels=4)
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-1.0)
        model[1].bias.zero_()
    with pytest.raises(ConversionError, match=r"activation '2' sees no positive input"):
        calibrate_thresholds(model, torch.randn(4, 1, 8, 8))


def test_callers_pre_hooks_still_act_on_the_calibrated_threshold():
    """prepare caps bounded clips (ReLU6) with a pre-hook: later layers must see the capped outputs."""
    models = [replace_relu(_cnn().eval(), kind="qcfs", levels=4) for _ in range(2)]
    x = torch.randn(16, 1, 8, 8)
    results = []
    for model, batch in zip(models, (64, 3)):
        hook = model[2].register_forward_pre_hook(lambda m, _i: m.lam.data.clamp_(max=0.05) and None)
        calibrate_thresholds(model, x, batch_size=batch)
        hook.remove()
        results.append(float(model[4].lam.detach()))
    assert results[0] == pytest.approx(results[1], rel=1e-6)
