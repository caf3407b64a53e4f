"""torchvision families through spikec: check -> prepare -> check -> compile -> torch == reference.

Random weights (eval mode), a small input, T=2, two inputs. A random network whose logits do not
depend on its input at all (googlenet's own init, truncated normal std 0.01 with no renormalisation,
shrinks the signal to about 1e-12 at its classifier) is no test of a converter: such a model gets
its BatchNorm statistics recalibrated on random images first, as training would have set them, and
the row says so. Per model: whether it converts, the
problems spikec.check reports before and after spikec.prepare (with the suggestion), graph size,
compile time and peak memory (tracemalloc peak of Python allocations during prepare + compile,
and the process's maximum resident set size). Writes a Markdown table.

    nice -n 19 python benchmarks/torchvision_zoo.py --models resnet18,squeezenet1_0 --out docs/models.md
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from collections import Counter

import numpy as np
import torch

FAMILIES = ["resnet18", "resnet50", "wide_resnet50_2", "resnext50_32x4d", "vgg11_bn", "densenet121", "googlenet",
            "squeezenet1_0", "alexnet", "shufflenet_v2_x0_5", "regnet_x_400mf", "mobilenet_v2",
            "mobilenet_v3_small", "mnasnet0_5", "efficientnet_b0", "convnext_tiny", "vit_b_16"]
SIZES = {"alexnet": 224, "vgg11_bn": 224, "vit_b_16": 224, "googlenet": 64, "inception_v3": 299}
STEPS = 2


def build(name: str) -> torch.nn.Module:
    import torchvision

    kwargs = {"num_classes": 10}
    if name == "googlenet":
        kwargs.update(aux_logits=False, init_weights=True)
    return getattr(torchvision.models, name)(**kwargs).eval()


def input_independent(model: torch.nn.Module, size: int) -> bool:
    """Whether the model's logits are identical for different random images (a degenerate init)."""
    with torch.no_grad():
        y = model(torch.rand(8, 3, size, size))
    return bool((y - y[:1]).abs().max() <= 1e-6 * y.abs().max())


def recalibrate_batchnorm(model: torch.nn.Module, size: int, batches: int = 8) -> bool:
    """Running BatchNorm statistics from random images (cumulative average), then eval mode;
    False (nothing done) for a model without BatchNorm."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.rand(16, 3, size, size))
    model.eval()
    return True


def summarize(problems) -> str:
    if not problems:
        return "none"
    counts = Counter((p.op, p.suggestion.split(";")[0].split(":")[0][:70]) for p in problems)
    return "; ".join(f"{n}x {op} ({why})" for (op, why), n in counts.most_common(4))


def run_one(name: str, size: int) -> dict:
    import spikec

    torch.manual_seed(0)
    row = {"model": name, "input": f"1x3x{size}x{size}"}
    model = build(name)
    if input_independent(model, size) and recalibrate_batchnorm(model, size):
        row["model"] = f"{name} (BN statistics recalibrated: random init gave input-independent logits)"
    x = torch.rand(2, 3, size, size)
    t0 = time.perf_counter()
    try:
        before = spikec.check(model, x)
    except Exception as err:  # noqa: BLE001 - report whatever stops it
        row.update(converts="no", why=f"check: {type(err).__name__}: {str(err)[:160]}")
        return row
    row["check"] = summarize(before)
    tracemalloc.start()
    try:
        prepared = spikec.prepare(model, x)
        after = spikec.check(prepared, x)
        row["after_prepare"] = summarize(after)
        if after:
            row.update(converts="no", why=after[0].message.split("\n")[0][:160])
            return row
        t1 = time.perf_counter()
        graph = spikec.compile(prepared, x, steps=STEPS)
        row["compile_s"] = round(time.perf_counter() - t1, 2)
        inputs = graph.encode(x.numpy())
        a = spikec.run(graph, inputs, STEPS, backend="torch")
        b = spikec.run(graph, inputs, STEPS, backend="reference")
        equal = bool(np.array_equal(a.output, b.output))
        ifs = sum(isinstance(n, spikec.IF) for n in graph.nodes.values())
        neurons = sum(int(np.prod(n.shape)) for n in graph.nodes.values() if isinstance(n, spikec.IF))
        row.update(converts="yes" if equal else "NO (backends differ)", why="",
                   graph=f"{ifs} IF layers, {len(graph.edges)} edges, {neurons} neurons",
                   torch_eq_reference=equal)
    except Exception as err:  # noqa: BLE001 - report whatever stops it
        row.update(converts="no", why=f"{type(err).__name__}: {str(err).splitlines()[0][:160]}")
    finally:
        row["peak_tracemalloc_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
        row["total_s"] = round(time.perf_counter() - t0, 1)
        row["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    return row


HEADER = ("| model | input | converts | why not | check (before prepare) | check after prepare | graph | "
          "compile s | total s | peak traced MB | max RSS MB |")


def markdown(rows: list[dict]) -> str:
    lines = [HEADER, "|" + "---|" * 11]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(k, "")).replace("|", "/") for k in (
            "model", "input", "converts", "why", "check", "after_prepare", "graph", "compile_s", "total_s",
            "peak_tracemalloc_mb", "max_rss_mb")) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(FAMILIES))
    ap.add_argument("--size", type=int, default=64, help="input side (models listed in SIZES use theirs)")
    ap.add_argument("--out", default=None, help="write the Markdown table here")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models.split(","):
        row = run_one(name, SIZES.get(name, args.size))
        print(row, flush=True)
        rows.append(row)
    table = markdown(rows)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
