"""Reference networks: small MNIST-size CNN, ResNet, DenseNet and MobileNetV2-style net for benchmarks,
examples and tests, and the CIFAR-10 models (ResNet-20, a VGG-style net) whose trained weights ship in
spikec/pretrained."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn


def small_cnn(image_size: int = 28, channels: int = 32, blocks: int = 3, classes: int = 10,
              in_channels: int = 1) -> nn.Sequential:
    """`blocks` x (Conv3x3(pad 1) - BatchNorm - ReLU - AvgPool2d(2)) with `channels` channels and a
    linear head. A block pools only while the map is at least 4 pixels wide, so 8x8 inputs pool
    8 -> 4 -> 2 and keep 2x2 in the last block; 28x28 inputs pool 28 -> 14 -> 7 -> 3.
    Call spikec.quantize.replace_relu on the result to use QCFS / ECL activations.
    """
    layers: list[nn.Module] = []
    size, c_in = image_size, in_channels
    for _ in range(blocks):
        layers += [nn.Conv2d(c_in, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
        if size >= 4:
            layers.append(nn.AvgPool2d(2))
            size //= 2
        c_in = channels
    layers += [nn.Flatten(), nn.Linear(channels * size * size, classes)]
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """BasicBlock: conv-BN-act-conv-BN, plus the input (or a 1x1 conv-BN when the shape changes), act."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                                  nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


def small_resnet(channels: int = 16, classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """A ResNet for 28x28 inputs: conv stem, residual blocks at `channels` (identity shortcut) and
    2 x `channels` (stride 2, 1x1 conv shortcut), global average pooling, linear head."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
        nn.AvgPool2d(2), ResidualBlock(channels, channels, 1), ResidualBlock(channels, 2 * channels, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * channels, classes))


class _DenseLayer(nn.Module):
    """DenseNet layer: x -> cat([x, conv(act(bn(x)))]) (pre-activation, `growth` new channels)."""

    def __init__(self, c_in: int, growth: int):
        super().__init__()
        self.new = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, growth, 3, 1, 1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.new(x)], 1)


def small_densenet(growth: int = 8, layers: int = 3, classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """A DenseNet for 28x28 inputs: conv stem, two dense blocks of `layers` layers (channel
    concatenation) joined by a BN-act-1x1 conv-average pool transition, global average pooling."""
    c = 2 * growth
    mods: list[nn.Module] = [nn.Conv2d(in_channels, c, 3, 1, 1, bias=False), nn.AvgPool2d(2)]
    for block in range(2):
        for _ in range(layers):
            mods.append(_DenseLayer(c, growth))
            c += growth
        if block == 0:
            mods += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
            c //= 2
    mods += [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
    return nn.Sequential(*mods)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand-BN-ReLU6, 3x3 depthwise-BN-ReLU6, 1x1 projection-BN with NO
    activation (a linear bottleneck), plus the input when the shape is kept and `residual`."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, expand: int = 4, residual: bool = True,
                 linear: bool = True):
        super().__init__()
        hidden = c_in * expand
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out), *([] if linear else [nn.ReLU6()]))
        self.residual = residual and stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.residual else y


def tiny_mobilenet(channels: int = 8, classes: int = 10, in_channels: int = 1, expand: int = 4,
                   linear: bool = True) -> nn.Sequential:
    """A MobileNetV2-style net for 8x8 inputs: conv stem (ReLU6), inverted residuals at `channels`
    (one plain, one residual) and 3/2 x `channels` (stride 2, then residual), 1x1 conv-ReLU6 head,
    global average pooling, linear classifier. Its linear bottlenecks need spikec.prepare's signed
    clips (linear_bottlenecks="signed") before it can be compiled; linear=False puts a ReLU6 after
    every projection instead (no longer MobileNetV2: a control that converts with QCFS alone)."""
    wide = channels * 3 // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU6(),
        InvertedResidual(channels, channels, 1, expand, residual=False, linear=linear),
        InvertedResidual(channels, channels, 1, expand, linear=linear),
        InvertedResidual(channels, wide, 2, expand, linear=linear),
        InvertedResidual(wide, wide, 1, expand, linear=linear),
        nn.Conv2d(wide, 4 * channels, 1, bias=False), nn.BatchNorm2d(4 * channels), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * channels, classes))


def resnet20(classes: int = 10, width: int = 16) -> nn.Sequential:
    """The CIFAR ResNet-20 of He et al. (2016): a 3x3 conv stem and three stages of three basic
    blocks at `width`, 2x and 4x `width` channels (16-32-64), stride 2 at the start of stages two
    and three with 1x1 conv-BN shortcuts ("option B"), global average pooling and a linear head.
    0.27 M parameters; 41 M multiply-accumulates per 32x32 image."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    c_in = width
    for stage in range(3):
        c_out = width << stage
        for block in range(3):
            layers.append(ResidualBlock(c_in, c_out, 2 if stage > 0 and block == 0 else 1))
            c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes)]
    return nn.Sequential(*layers)


def vgg_small(classes: int = 10, widths: tuple[int, ...] = (32, 64, 128)) -> nn.Sequential:
    """A VGG-style CIFAR net sized to train on a CPU: for each width two Conv3x3-BN-ReLU layers and
    a 2x2 average pool (32 -> 16 -> 8 -> 4), then a linear head. Average pooling, not max pooling,
    as in the conversion papers' VGG models. 0.29 M parameters; 38 M MACs per 32x32 image."""
    layers: list[nn.Module] = []
    c_in = 3
    for width in widths:
        for _ in range(2):
            layers += [nn.Conv2d(c_in, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            c_in = width
        layers.append(nn.AvgPool2d(2))
    size = 32 >> len(widths)
    layers += [nn.Flatten(), nn.Linear(c_in * size * size, classes)]
    return nn.Sequential(*layers)


PRETRAINED = Path(__file__).resolve().parent / "pretrained"


def pretrained(name: str) -> nn.Module:
    """A trained model shipped in spikec/pretrained (e.g. "cifar10_resnet20_qcfs"), in eval mode.

    Its JSON record says the architecture, activation kind and levels, and how it was trained
    (command, seed, epochs, wall time, ANN test accuracy); see docs/cifar10.md.
    """
    from spikec.errors import InputDataError
    from spikec.quantize import replace_relu

    record_file = PRETRAINED / f"{name}.json"
    if not record_file.exists():
        known = sorted(p.stem for p in PRETRAINED.glob("*.json"))
        raise InputDataError(f"no pretrained model {name!r}; shipped: {', '.join(known) or 'none'}")
    record = json.loads(record_file.read_text())
    model = {"resnet20": resnet20, "vgg_small": vgg_small}[record["model"]]()
    if record["kind"] != "relu":
        model = replace_relu(model, kind=record["kind"], levels=record["levels"])
    model.load_state_dict(torch.load(PRETRAINED / f"{name}.pt", weights_only=True))
    return model.eval()


def pretrained_record(name: str) -> dict:
    """The JSON training record of a shipped model."""
    return json.loads((PRETRAINED / f"{name}.json").read_text())
