"""Compile time of a CIFAR-style ResNet-18 (a script, not a test).

ResNet-18 for 3x32x32 inputs (3x3 stem, BasicBlocks [2, 2, 2, 2] with 64..512 channels and 1x1
stride-2 downsample shortcuts, global average pooling, Linear(512, 10)), random init, every
BatchNorm in eval mode with random running statistics, plain ReLUs converted with method
"robust" from a small calibration batch. The timed call is the whole `spikec.compile`: tracing,
BN folding, lowering, calibration, rescaling, quantization to Loihi widths, retiming, bounds.

    .venv/bin/python benchmarks/compile_time.py [--calibration 16] [--steps 64] [--repeats 3]
        [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import spikec
from spikec.models import ResidualBlock


def resnet18(classes: int = 10) -> nn.Module:
    layers, cin = [], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [ResidualBlock(cin, cout, stride), ResidualBlock(cout, cout, 1)]
        cin = cout
    return nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), *layers,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calibration", type=int, default=16, help="calibration batch size")
    parser.add_argument("--steps", type=int, default=64, help="T for the overflow proof (0: none)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = randomize_bn(resnet18())
    params = sum(p.numel() for p in model.parameters())
    example = torch.randn(1, 3, 32, 32)
    calib = torch.randn(args.calibration, 3, 32, 32)
    steps = args.steps or None
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        graph = spikec.compile(model, example, method="robust", calibration=calib, steps=steps, saturate=True)
        times.append(time.perf_counter() - start)
    rows = graph.report()
    synapses = sum(op.weight.size for e in graph.edges for op in e.ops if hasattr(op, "weight"))
    werr = max(r["weight_error"] for r in rows if r["type"] != "Input")
    print(f"ResNet-18 (CIFAR, {params / 1e6:.1f} M parameters): {len(graph.if_layers)} IF layers, "
          f"{len(graph.edges)} edges, {synapses / 1e6:.1f} M integer weights, latency {graph.latency}")
    print(f"max relative weight error {werr:.4f}; worst-case safe steps {graph.meta['bounds']['safe_steps']}")
    print(f"torch threads {torch.get_num_threads()}, calibration batch {args.calibration}, steps {steps}")
    print("compile time: " + ", ".join(f"{t:.2f} s" for t in times) + f"  (best {min(times):.2f} s)")


if __name__ == "__main__":
    main()
