"""ANN side: QCFS / ECL forward values, straight-through gradients, replace_relu."""

import pytest
import torch
from torch import nn

from spikec.errors import ConversionError
from spikec.quantize import QCFS, ClipActivation, ECLClip, replace_relu


def test_qcfs_forward_values():
    act = QCFS(levels=4, threshold=2.0)
    z = torch.tensor([-1.0, 0.0, 0.24, 0.25, 0.26, 0.74, 0.76, 1.0, 1.9, 2.0, 5.0])
    # lam = 2, L = 4: y = 2 * clip(floor(z * 2 + 0.5) / 4, 0, 1) -> steps of 0.5 at z = 0.25, 0.75, ...
    expected = torch.tensor([0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 1.0, 1.0, 2.0, 2.0, 2.0])
    assert torch.equal(act(z), expected)


def test_qcfs_straight_through_gradient():
    act = QCFS(levels=4, threshold=2.0)
    z = torch.tensor([-1.0, 0.3, 1.1, 3.0], requires_grad=True)
    act(z).sum().backward()
    # inside (0, lam) the floor passes the gradient through: d/dz (z/lam * L / L * lam) = 1;
    # outside the clamp the gradient is 0
    assert torch.equal(z.grad, torch.tensor([0.0, 1.0, 1.0, 0.0]))
    # d/dlam: outside above -> 1 (y = lam); below -> 0; inside (STE) y = (z/lam*L + 1/2 - frac)/L*lam
    # whose lam-derivative is (1/2 - frac)/L with frac treated as constant:
    # z=0.3: u = 0.6 -> floor(0.6 + 0.5) = 1, frac = 0.1 -> 0.4/4 = 0.1
    # z=1.1: u = 2.2 -> floor(2.7) = 2, frac = 0.7 -> -0.2/4 = -0.05
    assert act.lam.grad.item() == pytest.approx(1.0 + 0.1 - 0.05)


def test_ecl_pure_clip_and_gradient():
    act = ECLClip(levels=None, threshold=1.5)
    z = torch.tensor([-2.0, 0.5, 1.0, 2.0, 4.0], requires_grad=True)
    y = act(z)
    assert torch.equal(y.detach(), torch.tensor([0.0, 0.5, 1.0, 1.5, 1.5]))
    y.sum().backward()
    assert torch.equal(z.grad, torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0]))
    assert act.lam.grad.item() == 2.0          # one per clipped element


def test_ecl_quantised_equals_qcfs():
    z = torch.linspace(-1, 10, 200)
    assert torch.equal(ECLClip(levels=8, threshold=8.0)(z), QCFS(levels=8, threshold=8.0)(z))


def test_threshold_interface_and_errors():
    act = QCFS(levels=2)
    assert isinstance(act, ClipActivation) and act.levels == 2
    assert act.threshold.item() == 8.0
    with torch.no_grad():
        act.lam.fill_(-0.1)
    with pytest.raises(ConversionError):
        _ = act.threshold
    with pytest.raises(ConversionError):
        QCFS(levels=0)
    with pytest.raises(ConversionError):
        ECLClip(threshold=0.0)


def test_replace_relu_swaps_only_relus():
    shared = nn.ReLU()
    model = nn.Sequential(nn.Conv2d(1, 2, 3), shared, nn.Sequential(nn.Linear(2, 2), nn.ReLU()),
                          nn.LeakyReLU(), nn.ReLU6(), shared)
    out = replace_relu(model, "qcfs", levels=4, threshold=4.0)
    assert out is model
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "QCFS", "Sequential", "LeakyReLU", "ReLU6", "QCFS"]
    assert type(model[2][1]) is QCFS
    assert model[1] is not model[5]                     # each occurrence gets its own threshold
    assert model[1].levels == 4 and model[1].threshold.item() == 4.0
    ecl = replace_relu(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), "ecl", levels=None)
    assert type(ecl[1]) is ECLClip and ecl[1].levels is None
    with pytest.raises(ConversionError):
        replace_relu(nn.Sequential(nn.Linear(2, 2)), "qcfs")
    with pytest.raises(ConversionError):
        replace_relu(nn.Sequential(nn.ReLU()), "gelu")
