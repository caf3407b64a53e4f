"""Small reference CNNs used by the benchmarks and examples."""

from __future__ import annotations

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
