"""Speed of the Brian2 backend per code-generation target on a LeNet-size integer IF graph.

Graph: input 1x28x28 (current) -> conv 6 5x5 -> IF -> sumpool 2 -> conv 16 5x5 -> IF -> sumpool 2
-> dense 120 -> IF -> dense 84 -> IF -> readout 10; random integer weights in [-8, 8], per-layer
thresholds set from a rate model so every layer spikes at a moderate rate (printed).

For each target and batch size the script times warm calls at two step counts: their difference
gives the steady rate (hardware steps per second), the rest is the per-call overhead (building the
Brian2 objects or launching the binary, loading synapses, reading results back). The first call's
extra time is the one-off build: Cython's compile into a fresh cache folder, cpp_standalone's
build (once per graph, batch size and step count). Every output is checked against the reference.

    .venv/bin/python benchmarks/brian2_backend.py [--steps 32 432] [--batches 1 16] [--targets ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from lenet import LAYERS

import spikec
from spikec.ir import IF, Edge, Graph, Input, Readout, run_reference
from spikec.ir.connectivity import edge_matrix
from spikec.ir.ops_numpy import apply_ops


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
    """(result, wall seconds, CPU seconds of this process and its finished children)."""
    def cpu():
        children = os.times()  # 10 ms ticks: fine for the cpp binaries' long runs
        return time.process_time() + children.children_user + children.children_system

    wall, used = time.perf_counter(), cpu()
    out = fn()
    return out, time.perf_counter() - wall, cpu() - used


def measure(graph, x, target, steps, warm_runs, cache_dir):
    """First call (wall s), fastest warm call (wall s, CPU s) and the last trace, for one step count."""
    options = {"cache_dir": cache_dir} if target == "cpp_standalone" else {}
    run = lambda: spikec.run(graph, x, steps, backend="brian2", target=target, **options)  # noqa: E731
    trace, first, _ = timed(run)
    warm = [timed(run)[1:] for _ in range(warm_runs)]
    return first, min(w for w, _ in warm), min(c for _, c in warm), trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs=2, default=[32, 432],
                        help="two evaluated step counts; their difference gives the per-step rate")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--targets", nargs="+", default=["numpy", "cython", "cpp_standalone"])
    parser.add_argument("--warm-runs", type=int, default=5)
    args = parser.parse_args()

    from brian2 import prefs

    rng = np.random.default_rng(1)
    x_all = rng.integers(0, 256, size=(max(args.batches), 1, 28, 28))
    graph = lenet(x_all[:4])
    short, long = args.steps
    hw_short, hw_long = graph.hardware_steps(short), graph.hardware_steps(long)
    refs = {}
    for steps in args.steps:
        refs[steps], seconds, _ = timed(lambda: run_reference(graph, x_all, steps, record=True))  # noqa: B023
        hw = graph.hardware_steps(steps)
        print(f"reference interpreter, B={len(x_all)}, {hw} hardware steps: {seconds:.2f} s "
              f"({len(x_all) * hw / seconds:,.0f} sample-steps/s)")
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
                first, wall, cpu = {}, {}, {}
                for steps in args.steps:
                    first[steps], wall[steps], cpu[steps], trace = measure(graph, x, target, steps,
                                                                           args.warm_runs, f"{tmp}/cpp")
                    same = np.array_equal(trace.output, refs[steps].output[:batch])
                    assert same, f"{target}: output differs from the reference"
                span = hw_long - hw_short
                per_step, cpu_step = (wall[long] - wall[short]) / span, (cpu[long] - cpu[short]) / span
                row = (target, batch, first[short] - wall[short], wall[short] - hw_short * per_step,
                       1 / per_step, batch / per_step, batch / cpu_step if cpu_step > 0 else float("nan"))
                rows.append(row)
                print(f"{target:15s} B={batch:3d} build {row[2]:7.2f} s  per call {row[3]:6.3f} s  "
                      f"{row[4]:8.1f} steps/s  wall {wall} cpu {cpu}", flush=True)
    print("\n| target | batch B | one-off build (s) | per-call overhead (s) | hardware steps/s "
          "| sample-steps/s | sample-steps per CPU s |")
    print("|---|---|---|---|---|---|---|")
    for target, batch, build, overhead, sps, ssps, cpu_ssps in rows:
        print(f"| {target} | {batch} | {build:.1f} | {overhead:.2f} | {sps:,.0f} | {ssps:,.0f} "
              f"| {cpu_ssps:,.0f} |")


if __name__ == "__main__":
    main()
