"""Small architectures for the compiler tests, trained for a few seconds on sklearn digits (8x8).

Every factory returns an untrained nn.Module; `trained(name)` trains it once per test session.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spikec.datasets import digits
from spikec.quantize import QCFS, train


@functools.lru_cache(maxsize=1)
def data():
    return digits()


def act(kind: str, levels: int = 8) -> nn.Module:
    return QCFS(levels=levels, threshold=2.0) if kind == "qcfs" else nn.ReLU()


def mlp(kind="relu"):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 48), act(kind), nn.Dropout(0.1),
                         nn.Linear(48, 32), act(kind), nn.Linear(32, 10))


def lenet(kind="relu"):
    """LeNet-style: 5x5 conv, average pooling, 3x3 conv, average pooling, two Linear layers."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), act(kind), nn.AvgPool2d(2),
        nn.Conv2d(6, 12, 3, padding=1), act(kind), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(12 * 2 * 2, 32), act(kind), nn.Linear(32, 10))


def vgg(kind="qcfs"):
    """VGG-style: conv-BN-act blocks, nested Sequentials, Dropout and Identity."""
    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), act(kind))
    return nn.Sequential(
        nn.Sequential(block(1, 8), block(8, 8), nn.AvgPool2d(2)),
        nn.Sequential(block(8, 16), block(16, 16), nn.AvgPool2d(2), nn.Identity()),
        nn.Flatten(), nn.Linear(16 * 2 * 2, 32), act(kind), nn.Dropout(0.2), nn.Linear(32, 10))


class BasicBlock(nn.Module):
    """torchvision-style BasicBlock: one ReLU module used twice, `out += identity`."""

    def __init__(self, cin, cout, stride, kind):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = act(kind)
        self.relu_out = act(kind)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu_out(out)


class ResNet(nn.Module):
    def __init__(self, kind="qcfs"):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), act(kind))
        self.layers = nn.ModuleList([BasicBlock(8, 8, 1, kind), BasicBlock(8, 12, 2, kind)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.fc(torch.flatten(self.pool(x), 1))


class DenseCat(nn.Module):
    """DenseNet-style: every conv reads the channel concatenation of all earlier feature maps, with
    BN-ReLU on the concatenation (pre-activation), nested concatenations and an average pool and
    flatten of a concatenation into the classifier."""

    def __init__(self, kind="qcfs"):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), act(kind))
        self.c1 = nn.Sequential(nn.Conv2d(6, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), act(kind))
        self.bn = nn.BatchNorm2d(10)
        self.act = act(kind)
        self.c2 = nn.Conv2d(10, 4, 3, padding=1)
        self.act2 = act(kind)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(14 * 4 * 4, 10)

    def forward(self, x):
        x = self.stem(x)
        z = torch.cat([x, self.c1(x)], 1)                   # 10 channels
        w = self.act2(self.c2(self.act(self.bn(z))))
        u = torch.cat((z, w), dim=1)                        # 14 channels: a concat of a concat
        return self.fc(torch.flatten(self.pool(u), 1))


class InceptionCat(nn.Module):
    """Inception-style: parallel 1x1 / 3x3 / 5x5 branches concatenated and average-pooled *before*
    their shared BN and activation (each branch's conv then writes its slice of the joint layer),
    and a vector concatenation feeding the classifier."""

    def __init__(self, kind="relu"):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), act(kind))
        self.b1 = nn.Conv2d(6, 4, 1)
        self.b3 = nn.Conv2d(6, 4, 3, padding=1)
        self.b5 = nn.Conv2d(6, 2, 5, padding=2)
        self.pool1 = nn.AvgPool2d(2)
        self.bn = nn.BatchNorm2d(10)
        self.act = act(kind)
        self.pool = nn.AdaptiveAvgPool2d(2)                # (10, 4, 4) -> (10, 2, 2)
        self.f1 = nn.Linear(40, 12)
        self.f2 = nn.Linear(40, 8)
        self.act_f = act(kind)
        self.fc = nn.Linear(20, 10)

    def forward(self, x):
        x = self.stem(x)
        y = self.act(self.bn(self.pool1(torch.concat([self.b1(x), self.b3(x), self.b5(x)], 1))))
        v = torch.flatten(self.pool(y), 1)
        return self.fc(self.act_f(torch.cat([self.f1(v), self.f2(v)], 1)))


class CatMix(nn.Module):
    """Concatenation corner cases: one population concatenated with itself and scaled, a residual
    addition of a concatenation onto a conv (the identity folds into the conv's taps, per slice),
    and feature concatenation of a population with a linear branch, then of two populations."""

    def __init__(self, kind="relu"):
        super().__init__()
        self.c = nn.Conv2d(1, 3, 3, padding=1)
        self.e = nn.Conv2d(1, 3, 1)
        self.d = nn.Conv2d(6, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.d2 = nn.Conv2d(6, 6, 3, padding=1)
        self.f1 = nn.Linear(6 * 16, 8)
        self.f2 = nn.Linear(6 * 16, 5)
        self.fc = nn.Linear(21, 10)
        self.acts = nn.ModuleList([act(kind) for _ in range(6)])

    def forward(self, x):
        h, g = self.acts[0](self.c(x)), self.acts[1](self.e(x))
        z = torch.cat([h, h], 1) * 0.5
        y = self.acts[2](self.bn(self.d(z)) + z)
        y = self.acts[3](self.d2(y) + torch.cat([h, g], 1))
        v = torch.flatten(F.avg_pool2d(y, 2), 1)
        p = self.f1(v)
        u = self.acts[4](torch.cat([p, self.f2(v)], 1))
        return self.fc(torch.cat([u, self.acts[5](p)], 1))


class GroupedDilated(nn.Module):
    """Grouped, dilated, strided convs with odd (asymmetric per axis) paddings and kernels."""

    def __init__(self, kind="relu"):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=(1, 2))                       # 8x8 -> 8x10
        self.c2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4)       # 8x10 -> 8x10
        self.c3 = nn.Conv2d(8, 12, (3, 1), stride=(2, 1), padding=(1, 0), groups=2)  # -> 4x10
        self.c4 = nn.Conv2d(12, 12, 3, padding=1, groups=12, bias=False)    # depthwise
        self.a1, self.a2, self.a3, self.a4 = act(kind), act(kind), act(kind), act(kind)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d((2, 5)), nn.Flatten(), nn.Linear(120, 10))

    def forward(self, x):
        x = self.a1(self.c1(x))
        x = self.a2(self.c2(x))
        x = self.a3(self.c3(x))
        return self.head(self.a4(self.c4(x)))


class Functional(nn.Module):
    """Written with functional calls: F.relu, F.avg_pool2d, x.view(x.size(0), -1), torch.add, x.relu()."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc1 = nn.Linear(8 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.c1(x))
        y = torch.add(self.c2(x), x)          # residual with torch.add
        y = F.avg_pool2d(y.relu(), 2)
        y = y.view(y.size(0), -1)
        return self.fc2(torch.relu(self.fc1(y)))


class InputBN(nn.Module):
    """BatchNorm on the input (not after a conv): lowered as a per-channel scale and shift."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(1)
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(4),
                                  nn.Flatten(), nn.Linear(32, 10))

    def forward(self, x):
        return self.body(self.bn(x))


# name: (factory, epochs, conversion method)
FACTORIES = {
    "mlp": (mlp, 8, "robust"), "lenet": (lenet, 10, "maxnorm"), "vgg": (vgg, 5, "qcfs"),
    "resnet": (ResNet, 5, "qcfs"), "grouped": (GroupedDilated, 6, "opi"),
    "functional": (Functional, 5, "robust"), "inputbn": (InputBN, 8, "robust"),
    "densecat": (DenseCat, 6, "qcfs"), "inceptioncat": (InceptionCat, 6, "robust"), "catmix": (CatMix, 6, "robust"),
}


@functools.lru_cache(maxsize=None)
def trained(name: str) -> nn.Module:
    """The architecture `name` trained on digits (Adam, a few seconds), in eval mode."""
    torch.manual_seed(0)
    factory, epochs, _ = FACTORIES[name]
    model = factory()
    d = data()
    train(model, (d.x_train, d.y_train), epochs=epochs, lr=0.01, optimizer="adam", batch_size=64,
          weight_decay=0.0, progress=False)
    return model.eval()


def ann_predictions(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).argmax(1).numpy()
