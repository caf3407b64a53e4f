"""Tiny CNN factories for CLI tests (`--model tiny_model:make`) and test-model helpers."""

import torch
from torch import nn

from spikec.quantize import replace_relu


def make():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 3))
    return replace_relu(model, kind="qcfs", levels=4, threshold=1.0)


def make_relu():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 3))


def randomize_batchnorm(model, seed=0):
    """Give every BatchNorm non-trivial statistics and shifts, so the folded graph has biases."""
    gen = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(torch.rand(n, generator=gen) * 0.6 - 0.3)
            mod.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
            mod.bias.data.copy_(torch.rand(n, generator=gen) * 0.6 - 0.3)
    return model.eval()
