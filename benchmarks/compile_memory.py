"""Compile time and peak memory of torchvision models (random weights) at their native input size.

Each model runs in a fresh subprocess, so its maximum resident set size is its own:

    nice -n 19 python benchmarks/compile_memory.py --models vgg11_bn,densenet121,resnet50 --size 224

Per model: parameters (millions), graph weights stored (millions) against the model's parameters,
time of spikec.prepare and spikec.compile (method qcfs, steps 2), the memory estimate compile
makes after lowering, and the process's peak RSS in GiB (2^30 bytes; model, traced copy and torch
included). By default the user's model stays referenced while the prepared copy is compiled (the
worst case); --release-original drops it after prepare, as `model = spikec.prepare(model, x)` does.
Prints a Markdown table (--json for one JSON object per model).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(name: str, size: int, release_original: bool) -> dict:
    import torch
    import torchvision

    import spikec
    from spikec.compiler import memory, pipeline

    torch.manual_seed(0)
    torch.set_num_threads(1)
    kwargs = {"num_classes": 10}
    if name == "googlenet":
        kwargs.update(aux_logits=False, init_weights=True)
    model = getattr(torchvision.models, name)(**kwargs).eval()
    x = torch.rand(2, 3, size, size)
    estimates = []
    def recording_check(fir, samples, available=None, **kwargs):
        estimates.append(memory.check_memory(fir, samples, available, **kwargs))
        return estimates[-1]

    pipeline.check_memory = recording_check
    t0 = time.perf_counter()
    prepared = spikec.prepare(model, x)
    params = sum(p.numel() for p in model.parameters())
    if release_original:
        del model
    t1 = time.perf_counter()
    graph = spikec.compile(prepared, x, steps=2)
    t2 = time.perf_counter()
    weights = sum(op.weight.size for e in graph.edges for op in e.ops if hasattr(op, "weight"))
    return {"model": name, "input": f"3x{size}x{size}", "params_M": round(params / 1e6, 2),
            "graph_weights_M": round(weights / 1e6, 2), "if_layers": len(graph.if_layers),
            "prepare_s": round(t1 - t0, 1), "compile_s": round(t2 - t1, 1),
            "estimate_extra_GiB": round(estimates[0] / 2 ** 30, 2) if estimates else None,
            "original_released": release_original,
            "peak_rss_GiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="vgg11_bn,densenet121,resnet50")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--release-original", action="store_true", help="drop the user's model after prepare")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.size, args.release_original)))
        return 0
    rows = []
    for name in args.models.split(","):
        done = subprocess.run([sys.executable, __file__, "--one", name, "--size", str(args.size)]
                              + ["--release-original"] * args.release_original,
                              capture_output=True, text=True)
        if done.returncode:
            rows.append({"model": name, "error": done.stderr.strip().splitlines()[-1][:200]})
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]) if args.json else rows[-1], flush=True)
    if not args.json:
        keys = ["model", "input", "params_M", "graph_weights_M", "if_layers", "prepare_s", "compile_s",
                "estimate_extra_GiB", "original_released", "peak_rss_GiB"]
        print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
        for r in rows:
            print("| " + " | ".join(str(r.get(k, r.get("error", ""))) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
