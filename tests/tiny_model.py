"""A tiny CNN factory for CLI tests (`--model tiny_model:make`)."""

from torch import nn

from spikec.quantize import replace_relu


def make():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 3))
    return replace_relu(model, kind="qcfs", levels=4, threshold=1.0)


def make_relu():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 3))
