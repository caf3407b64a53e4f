"""Data-set evaluation speed: the exact integer SNN to T (every T read from one pass) against T
forwards of the ANN and against SpikingJelly's converted network, on the same images.

    python benchmarks/evaluate_speed.py                     # CIFAR-10 ResNet-20, T=32, 500 images
    python benchmarks/evaluate_speed.py --procs 1,2         # also under torchrun with 2 processes

Measured in one run so the ratios share the machine's load: (1) the ANN, `steps` forwards of each
batch (what a rate-coded evaluation costs a float framework at least); (2) spikec.evaluate on the
torch backend, one process; (3) the same under `torchrun --nproc_per_node N` (gloo), timed from
inside (the evaluation's own wall time on rank 0, after the all-reduce; process start and imports
excluded) and from outside; (4) SpikingJelly 2.0's ann2snn conversion of the same architecture with
ReLU activations (the ReLU model when shipped), run for `steps` steps, when spikingjelly is
installed (not a spikec dependency: `pip install spikingjelly loguru requests`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import spikec
from spikec import datasets
from spikec.models import PRETRAINED, pretrained


def ann_time(model, x, steps: int, batch_size: int) -> float:
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            for _ in range(steps):
                model(x[i:i + batch_size])
    return time.perf_counter() - t0


def spikingjelly_time(relu_model, x, calib, steps: int, batch_size: int) -> float | None:
    try:
        from spikingjelly.activation_based import ann2snn, functional
    except ImportError:
        return None
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(calib, torch.zeros(len(calib))), batch_size=100)
    try:   # SpikingJelly >= 2.0: a recipe object; older releases: Converter(mode=..., dataloader=...)
        from spikingjelly.activation_based.ann2snn.recipes.rate_coding import RateCodingRecipe

        snn = ann2snn.Converter(RateCodingRecipe(dataloader=loader, mode="max")).convert(relu_model).eval()
    except ImportError:
        snn = ann2snn.Converter(mode="max", dataloader=loader)(relu_model).eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            functional.reset_net(snn)
            out = 0
            for _ in range(steps):
                out = out + snn(x[i:i + batch_size])
    return time.perf_counter() - t0


def torchrun_time(graph_file: Path, data_file: Path, steps: int, procs: int, batch_size: int) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--master_port", "29517",
           "-m", "spikec.cli", "eval", str(graph_file), "--data", str(data_file), "--steps", str(steps),
           "--batch-size", str(batch_size), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, os.cpu_count() // procs))}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    outside = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout[res.stdout.index("{"):])["wall_s"], outside


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="cifar10_resnet20_qcfs")
    ap.add_argument("--relu-model", default="cifar10_resnet20_relu")
    ap.add_argument("--data", default=str(datasets.CIFAR10_SUBSET))
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--procs", default="1", help="comma-separated process counts for torchrun, e.g. 1,2")
    args = ap.parse_args(argv)
    x, y = datasets.cifar10(args.data, "test")
    keep = datasets.balanced_subset(y, args.images // 10)
    x, y = x[keep], y[keep]
    model = pretrained(args.model)
    graph = spikec.compile(model, x[:1], method="qcfs")
    print(f"{args.model}: {len(y)} images, T={args.steps}, torch threads {torch.get_num_threads()}", flush=True)

    t_ann = ann_time(model, x, args.steps, args.batch_size)
    print(f"ANN, {args.steps} forwards per image: {t_ann:.1f} s ({len(y) / t_ann:.1f} images/s)", flush=True)
    t0 = time.perf_counter()
    ev = spikec.evaluate(graph, (x, y), args.steps, batch_size=args.batch_size, progress=False)
    t_snn = time.perf_counter() - t0
    print(f"spikec integer SNN to T={args.steps}, 1 process: {t_snn:.1f} s ({len(y) / t_snn:.1f} images/s), "
          f"{t_snn / t_ann:.2f}x the ANN's {args.steps} forwards; "
          f"accuracy T=8 {ev.accuracy(min(8, args.steps)):.1f} %, "
          f"T={args.steps} {ev.accuracy():.1f} %", flush=True)
    results = {"images": len(y), "steps": args.steps, "ann_s": t_ann, "spikec_s": t_snn,
               "ratio_spikec_over_ann": t_snn / t_ann}
    with tempfile.TemporaryDirectory() as tmp:
        graph_file, data_file = Path(tmp) / "g.h5", Path(tmp) / "d.npz"
        spikec.save(graph, graph_file)
        np.savez(data_file, x=x.numpy(), y=y.numpy())
        for procs in [int(p) for p in args.procs.split(",") if p.strip()]:
            inside, outside = torchrun_time(graph_file, data_file, args.steps, procs, args.batch_size)
            print(f"spikec under torchrun, {procs} process(es): {inside:.1f} s inside "
                  f"({len(y) / inside:.1f} images/s, {inside / t_ann:.2f}x the ANN), {outside:.1f} s with start-up",
                  flush=True)
            results[f"torchrun_{procs}_s"] = inside
    relu_file = PRETRAINED / f"{args.relu_model}.pt"
    relu = pretrained(args.relu_model) if relu_file.exists() else None
    if relu is not None:
        calib = datasets.cifar10(args.data, "test")[0][:200]
        t_sj = spikingjelly_time(relu, x, calib, args.steps, args.batch_size)
        if t_sj is None:
            print("SpikingJelly: not installed (pip install spikingjelly loguru requests)")
        else:
            print(f"SpikingJelly ann2snn ({args.relu_model}), T={args.steps}: {t_sj:.1f} s "
                  f"({len(y) / t_sj:.1f} images/s); spikec / SpikingJelly = {t_snn / t_sj:.2f}", flush=True)
            results["spikingjelly_s"] = t_sj
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
