"""Compile time and peak memory of torchvision models (random weights) at their native input size.

Each model runs in a fresh subprocess, so its maximum resident set size is its own:

    nice -n 19 python benchmarks/compile_memory.py --models vgg11_bn,densenet121,resnet50 --size 224

Per model: parameters (fp32 MB), graph weights stored (millions) against the model's parameters,
time of spikec.prepare and spikec.compile (method qcfs, steps 2), the memory estimate compile
makes after lowering, and the process's peak RSS (model, traced copy and torch included).
Prints a Markdown table (--json for one JSON object per model).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(name: str, size: int) -> dict:
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
    def recording_check(fir, samples, available=None, keep_float_graph=True):
        estimates.append(memory.check_memory(fir, samples, available, keep_float_graph))
        return estimates[-1]

    pipeline.check_memory = recording_check
    t0 = time.perf_counter()
    prepared = spikec.prepare(model, x)
    t1 = time.perf_counter()
    graph = spikec.compile(prepared, x, steps=2)
    t2 = time.perf_counter()
    params = sum(p.numel() for p in model.parameters())
    weights = sum(op.weight.size for e in graph.edges for op in e.ops if hasattr(op, "weight"))
    return {"model": name, "input": f"3x{size}x{size}", "params_M": round(params / 1e6, 2),
            "graph_weights_M": round(weights / 1e6, 2), "if_layers": len(graph.if_layers),
            "prepare_s": round(t1 - t0, 1), "compile_s": round(t2 - t1, 1),
            "estimate_extra_GB": round(estimates[0] / 2 ** 30, 2) if estimates else None,
            "peak_rss_GB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="vgg11_bn,densenet121,resnet50")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.size)))
        return 0
    rows = []
    for name in args.models.split(","):
        done = subprocess.run([sys.executable, __file__, "--one", name, "--size", str(args.size)],
                              capture_output=True, text=True)
        if done.returncode:
            rows.append({"model": name, "error": done.stderr.strip().splitlines()[-1][:200]})
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]) if args.json else rows[-1], flush=True)
    if not args.json:
        keys = ["model", "input", "params_M", "graph_weights_M", "if_layers", "prepare_s", "compile_s",
                "estimate_extra_GB", "peak_rss_GB"]
        print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
        for r in rows:
            print("| " + " | ".join(str(r.get(k, r.get("error", ""))) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
