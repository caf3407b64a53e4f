"""Training-step time of the CIFAR ResNet-20 with QCFS activations, eager against torch.compile.

    python benchmarks/train_step_speed.py [--threads 1] [--steps 20]

The recipe of benchmarks/train_cifar10.py (batch 128, bf16 autocast, channels-last, SGD with
Nesterov momentum) on random data; both variants run in this one process, one after the other,
so their ratio is measured under the same load. The compiled variant's first steps (compilation,
about a minute) are timed apart from the steady state.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from spikec import models
from spikec.quantize import replace_relu


def step_time(compiled: bool, steps: int, warmup: int = 3) -> tuple[float, float]:
    """(seconds for the warm-up steps, mean seconds per step after them)."""
    torch.manual_seed(0)
    net = replace_relu(models.resnet20(), kind="qcfs", levels=4).to(memory_format=torch.channels_last)
    forward = torch.compile(net) if compiled else net
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.rand(128, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,))

    def one():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(forward(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(warmup):
        one()
    t1 = time.perf_counter()
    for _ in range(steps):
        one()
    return t1 - t0, (time.perf_counter() - t1) / steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    if args.threads < 1 or args.steps < 1:
        ap.error(f"--threads and --steps must be positive, got {args.threads} and {args.steps}")
    torch.set_num_threads(args.threads)
    eager_warm, eager = step_time(False, args.steps)
    compiled_warm, compiled = step_time(True, args.steps)
    print(f"ResNet-20 QCFS training step, batch 128, {args.threads} thread(s), {args.steps} steps:")
    print(f"  eager     {eager:.3f} s/step  (first 3 steps {eager_warm:.1f} s)")
    print(f"  compiled  {compiled:.3f} s/step  (first 3 steps incl. compilation {compiled_warm:.1f} s)")
    print(f"  speed-up  {eager / compiled:.2f}x; one epoch (390 steps): {390 * eager / 60:.1f} -> "
          f"{390 * compiled / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
