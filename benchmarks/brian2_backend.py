"""Speed of the Brian2 backend per code-generation target on a LeNet-size integer IF graph.

Graph: input 1x28x28 (current) -> conv 6 5x5 -> IF -> sumpool 2 -> conv 16 5x5 -> IF -> sumpool 2
-> dense 120 -> IF -> dense 84 -> IF -> readout 10; random integer weights in [-8, 8], per-layer
thresholds set from a rate model so every layer spikes at a moderate rate (printed).

For each target and batch size the script times the first call (which includes Cython's compile
into a fresh cache folder, or cpp_standalone's build) and the mean of warm calls, checks every
output against the reference interpreter, and prints a Markdown table: hardware steps per second
of one warm call (network construction, run and readback included) and the one-off build cost.

    .venv/bin/python benchmarks/brian2_backend.py [--steps 32] [--batches 1 16] [--targets ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import spikec
from spikec.ir import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout, SumPool2d, run_reference
from spikec.ir.ops_numpy import apply_ops

LAYERS = [  # (name, ops from the previous population, IF shape or None for the readout)
    ("c1", lambda r: (Conv2d(r.integers(-8, 9, (6, 1, 5, 5))),), (6, 24, 24)),
    ("c2", lambda r: (SumPool2d(2), Conv2d(r.integers(-8, 9, (16, 6, 5, 5)))), (16, 8, 8)),
    ("f1", lambda r: (SumPool2d(2), Flatten(), Dense(r.integers(-8, 9, (120, 256)))), (120,)),
    ("f2", lambda r: (Dense(r.integers(-8, 9, (84, 120))),), (84,)),
    ("out", lambda r: (Dense(r.integers(-8, 9, (10, 84))),), None),
]


def lenet(x_calib: np.ndarray, seed: int = 0) -> Graph:
    """The LeNet-size graph; theta = the 80th percentile of each layer's positive drive under a
    rate model (rates scaled to integers by 1000), so that activity stays moderate in every layer."""
    rng = np.random.default_rng(seed)
    pops, edges = [Input("x", (1, 28, 28), encoding="current", value_bits=9)], []
    act = x_calib.astype(np.int64)
    scale = 1
    for name, make_ops, shape in LAYERS:
        ops = make_ops(rng)
        edges.append(Edge(pops[-1].name, name, ops))
        if shape is None:
            pops.append(Readout(name, (10,)))
            break
        drive = apply_ops(ops, act)
        positive = drive[drive > 0]
        theta = max(1, int(np.percentile(positive, 80) / scale)) if positive.size else 1
        pops.append(IF(name, shape, theta=np.int64(theta)))
        act = np.clip(drive * 1000 // (theta * scale), 0, 1000)
        scale = 1000
    return Graph(pops, edges).validate()


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench(graph, x, steps, target, warm_runs, cache_dir):
    options = {"cache_dir": cache_dir} if target == "cpp_standalone" else {}
    run = lambda: spikec.run(graph, x, steps, backend="brian2", target=target, **options)  # noqa: E731
    first, t_first = timed(run)
    warm = []
    for _ in range(warm_runs):
        trace, seconds = timed(run)
        warm.append(seconds)
    return first, trace, t_first, float(np.mean(warm))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32, help="evaluated steps T")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--targets", nargs="+", default=["numpy", "cython", "cpp_standalone"])
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args()

    from brian2 import prefs

    rng = np.random.default_rng(1)
    x_all = rng.integers(0, 256, size=(max(args.batches), 1, 28, 28))
    graph = lenet(x_all[:4])
    total = graph.hardware_steps(args.steps)
    ref = run_reference(graph, x_all, args.steps, record=True)
    rates = {name: float(np.abs(s).mean()) for name, s in ref.spikes.items()}
    print("spike rate per neuron and step:", {k: round(v, 3) for k, v in rates.items()})
    print(f"T = {args.steps} evaluated steps = {total} hardware steps\n")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        prefs.codegen.runtime.cython.cache_dir = f"{tmp}/cython"  # measure a cold Cython compile
        for target in args.targets:
            for batch in args.batches:
                x = x_all[:batch]
                first, trace, t_first, t_warm = bench(graph, x, args.steps, target, args.warm_runs,
                                                      f"{tmp}/cpp")
                for got in (first, trace):
                    assert np.array_equal(got.output, ref.output[:batch]), f"{target}: output differs"
                rows.append((target, batch, t_first, t_warm, total / t_warm, batch * total / t_warm))
                print(f"{target:15s} B={batch:3d} first {t_first:7.2f} s  warm {t_warm:6.3f} s  "
                      f"{total / t_warm:8.1f} steps/s", flush=True)
    print("\n| target | batch B | first call (s) | warm call (s) | hardware steps/s | sample-steps/s |")
    print("|---|---|---|---|---|---|")
    for target, batch, t_first, t_warm, sps, ssps in rows:
        print(f"| {target} | {batch} | {t_first:.2f} | {t_warm:.3f} | {sps:,.0f} | {ssps:,.0f} |")


if __name__ == "__main__":
    main()
