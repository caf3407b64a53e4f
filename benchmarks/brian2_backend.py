"""Speed of the Brian2 backend per code-generation target on a LeNet-size integer IF graph.

Graph: input 1x28x28 (current) -> conv 6 5x5 -> IF -> sumpool 2 -> conv 16 5x5 -> IF -> sumpool 2
-> dense 120 -> IF -> dense 84 -> IF -> readout 10; random integer weights in [-8, 8], per-layer
thresholds set from a rate model so every layer spikes at a moderate rate (printed).

For each target and batch size the script times warm calls at two step counts: their difference
gives the steady rate (hardware steps per second), the rest is the per-call overhead (building the
Brian2 objects or launching the binary, loading synapses, reading results back). The first call's
extra time is the one-off build: Cython's compile into a fresh cache folder, cpp_standalone's
build (once per graph, batch size and step count). Every output is checked against the reference.

    .venv/bin/python benchmarks/brian2_backend.py [--steps 32 232] [--batches 1 16] [--targets ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import spikec
from spikec.ir import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout, SumPool2d, run_reference
from spikec.ir.connectivity import edge_matrix
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


def measure(graph, x, target, steps, warm_runs, cache_dir):
    """(first-call seconds, fastest warm-call seconds, last trace) for one step count."""
    options = {"cache_dir": cache_dir} if target == "cpp_standalone" else {}
    run = lambda: spikec.run(graph, x, steps, backend="brian2", target=target, **options)  # noqa: E731
    trace, first = timed(run)
    warm = [timed(run)[1] for _ in range(warm_runs)]
    return first, min(warm), trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs=2, default=[32, 232],
                        help="two evaluated step counts; their difference gives the per-step rate")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--targets", nargs="+", default=["numpy", "cython", "cpp_standalone"])
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args()

    from brian2 import prefs

    rng = np.random.default_rng(1)
    x_all = rng.integers(0, 256, size=(max(args.batches), 1, 28, 28))
    graph = lenet(x_all[:4])
    short, long = args.steps
    hw_short, hw_long = graph.hardware_steps(short), graph.hardware_steps(long)
    refs = {steps: run_reference(graph, x_all, steps, record=True) for steps in args.steps}
    rates = {name: round(float(np.abs(s).mean()), 3) for name, s in refs[short].spikes.items()}
    synapses = sum(edge_matrix(e, graph.nodes[e.src].shape).nnz for e in graph.edges)
    print(f"synapses per sample: {synapses:,}; spike rate per neuron and step: {rates}")
    print(f"T = {short} / {long} evaluated steps = {hw_short} / {hw_long} hardware steps\n")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        prefs.codegen.runtime.cython.cache_dir = f"{tmp}/cython"  # measure a cold Cython compile
        for target in args.targets:
            for batch in args.batches:
                x = x_all[:batch]
                timings = {}
                for steps in args.steps:
                    first, warm, trace = measure(graph, x, target, steps, args.warm_runs, f"{tmp}/cpp")
                    same = np.array_equal(trace.output, refs[steps].output[:batch])
                    assert same, f"{target}: output differs from the reference"
                    timings[steps] = (first, warm)
                per_step = (timings[long][1] - timings[short][1]) / (hw_long - hw_short)
                overhead = timings[short][1] - hw_short * per_step
                build = timings[short][0] - timings[short][1]
                rows.append((target, batch, build, overhead, 1 / per_step, batch / per_step))
                print(f"{target:15s} B={batch:3d} build {build:7.2f} s  per call {overhead:6.3f} s  "
                      f"{1 / per_step:8.1f} steps/s  ({timings})", flush=True)
    print("\n| target | batch B | one-off build (s) | per-call overhead (s) | hardware steps/s "
          "| sample-steps/s |")
    print("|---|---|---|---|---|---|")
    for target, batch, build, overhead, sps, ssps in rows:
        print(f"| {target} | {batch} | {build:.1f} | {overhead:.2f} | {sps:,.0f} | {ssps:,.0f} |")


if __name__ == "__main__":
    main()
