"""Speed of spikec's Lava backend against the same network loaded through lava-dl netx.

Network (netx-expressible, LeNet size): input 1x28x28 spikes (20 % rate) -> conv 6 5x5 -> IF ->
[sumpool 2 + conv 16 5x5] -> IF -> [sumpool 2 + dense 120] -> IF -> dense 84 -> IF -> readout 10.
Random int8 weights, zero-reset neurons without bias (what netx holds), thresholds set from the
layers' drive so every layer spikes at a moderate rate (printed). netx gets the same graph via
`spikec.export(graph, path, format="netx")` (pooling folded into the next conv / dense).

Both run Lava's fixed_pt CPU models. Each variant is timed at two step counts; the difference gives
the steady rate (hardware steps per second); "fixed" is the rest (building processes, Lava's compile,
process start-up, stop). Readback: spikec writes spikes from inside its processes to memory-mapped
files; the netx baseline reads every layer through Lava's sink RingBuffer and `Var.get()`
(the usual way) - and, for reference, with spikec's SpikeRecorder attached to the netx network.
Every result is checked against the reference interpreter.

    .venv/bin/python benchmarks/lava_backend.py [--steps 30 230] [--batch 16]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from lenet import LAYERS

import spikec
from spikec.backends.lava import backend as lava_backend
from spikec.backends.lava import compat as lava_compat
from spikec.ir import IF, Edge, Graph, Input, Readout, run_reference
from spikec.ir.ops_numpy import apply_ops


def lenet(trains: np.ndarray, seed: int = 0) -> Graph:
    """The graph; each theta = the 90th percentile of its layer's positive per-step drive when fed
    the previous layer's spikes (a zero-reset IF simulation of the sample trains [B, S, ...])."""
    rng = np.random.default_rng(seed)
    pops, edges, prev, spikes = [Input("x", (1, 28, 28), encoding="spikes")], [], "x", trains
    for name, make, shape in LAYERS:
        ops = make(rng)
        edges.append(Edge(prev, name, ops))
        if shape is None:
            pops.append(Readout(name, (10,)))
            break
        drive = np.stack([apply_ops(ops, spikes[:, t]) for t in range(spikes.shape[1])], axis=1)
        theta = max(2, int(np.percentile(drive[drive > 0], 90)))
        pops.append(IF(name, shape, theta=np.int64(theta), reset="zero"))
        v = np.zeros(drive[:, 0].shape, np.int64)
        out = []
        for t in range(drive.shape[1]):
            v += drive[:, t]
            s = v >= theta
            v[s] = 0
            out.append(s.astype(np.int64))
        spikes, prev = np.stack(out, axis=1), name
    return Graph(pops, edges).validate()


def spike_trains(batch: int, steps: int, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((batch, steps, 1, 28, 28)) < 0.2).astype(np.int64)


# --------------------------------------------------------------------------- spikec


def time_spikec(graph, x, steps, **options):
    timings: dict = {}
    t0 = time.perf_counter()
    trace = spikec.run(graph, x, steps, backend="lava", record=True, timings=timings, **options)
    return time.perf_counter() - t0, timings, trace


# --------------------------------------------------------------------------- netx


def time_netx(path, x, hardware_steps, sink: str):
    """One sample through netx; sink "ringbuffer" (Lava's sink + Var.get) or "recorder" (spikec's)."""
    lava_compat.install()
    from lava.lib.dl.netx.hdf5 import Network
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer

    from spikec.backends.lava.procs.recorder import SpikeRecorder

    t0 = time.perf_counter()
    net = Network(net_config=str(path))
    data = np.zeros((28, 28, 1, hardware_steps), np.int32)
    frames = x[:hardware_steps]                                   # [S, C, H, W] -> netx's [W, H, C, S]
    data[..., :frames.shape[0]] = frames.transpose(3, 2, 1, 0)
    source = RingBuffer(data=data)
    source.s_out.connect(net.inp)
    folder = tempfile.mkdtemp(prefix="spikec-bench-")
    sinks = []
    for i, layer in enumerate(net.layers[:-1]):
        if sink == "ringbuffer":
            sinks.append(Sink(shape=layer.out.shape, buffer=hardware_steps))
        else:
            path_i = os.path.join(folder, f"{i}.npy")
            np.lib.format.open_memmap(path_i, mode="w+", dtype=np.int32,
                                      shape=(hardware_steps,) + tuple(layer.out.shape)).flush()
            sinks.append(SpikeRecorder(shape=layer.out.shape, path=path_i))
        layer.out.connect(sinks[-1].a_in)
    t1 = time.perf_counter()
    try:
        net.run(condition=RunSteps(num_steps=hardware_steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        t2 = time.perf_counter()
        if sink == "ringbuffer":
            spikes = [s.data.get() for s in sinks]   # [*shape, T] floats, one message per element
        else:
            spikes = [np.array(np.load(os.path.join(folder, f"{i}.npy"))) for i in range(len(sinks))]
        output = np.rint(net.layers[-1].neuron.v.get()).astype(np.int64) // 64
        t3 = time.perf_counter()
    finally:
        net.stop()
    t4 = time.perf_counter()
    timings = {"build": t1 - t0, "run": t2 - t1, "readback": t3 - t2, "stop": t4 - t3}
    return t4 - t0, timings, spikes, output


def netx_spikes_as_ir(spikes, sink):
    """netx layer outputs (WHC) -> [T, *CHW] int8, for the reference check."""
    out = []
    for s in spikes:
        arr = np.moveaxis(np.asarray(s), -1, 0) if sink == "ringbuffer" else np.asarray(s)
        out.append((arr.transpose(0, 3, 2, 1) if arr.ndim == 4 else arr).astype(np.int8))
    return out


# --------------------------------------------------------------------------- main


def steady(two):
    (h1, w1), (h2, w2) = two
    rate = (h2 - h1) / (w2 - w1)
    return rate, w1 - h1 / rate


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs=2, default=(30, 230))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3, help="runs per point; the fastest counts")
    args = ap.parse_args(argv)
    assert lava_backend.is_available(), lava_backend.why_unavailable()
    graph = lenet(spike_trains(8, 40, seed=2))
    x1 = spike_trains(1, max(args.steps), seed=3)
    print("thetas:", {p.name: int(p.theta) for p in graph.if_layers}, "latency", graph.latency)
    rows = []
    # spikec variants, one sample
    for label, opts in (("spikec auto", {}), ("spikec stock LIF", {"neurons": "stock"}),
                        ("spikec SpikecIF", {"neurons": "custom"})):
        pts, last = [], None
        for steps in args.steps:
            ref = run_reference(graph, x1, steps, record=True)
            best = None
            for _ in range(args.repeats):
                wall, timings, trace = time_spikec(graph, x1, steps, **opts)
                for name in ref.spikes:
                    assert np.array_equal(trace.spikes[name], ref.spikes[name]), (label, name)
                assert np.array_equal(trace.output, ref.output)
                best = (wall, timings) if best is None or timings["run"] < best[1]["run"] else best
            pts.append((graph.hardware_steps(steps), best[1]["run"]))
            last = (best[0], best[1], ref)
        rate, fixed = steady(pts)
        wall, timings, ref = last
        rates = {k: float(np.abs(v).mean()) for k, v in ref.spikes.items()}
        plan_models = lava_backend.build_plan(graph, x1, args.steps[1], neurons=opts.get("neurons", "auto"))
        models = "/".join(plan_models.layers[p.name].model for p in graph.if_layers)
        rows.append((label, 1, rate, fixed, timings["readback"], wall, models))
        print(f"{label:18s} B=1 {rate:7.0f} steps/s, fixed {fixed:5.2f} s, readback "
              f"{timings['readback'] * 1e3:6.1f} ms, total {wall:5.2f} s ({models}); rates {rates}",
              flush=True)
    # netx
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "lenet.net")
        spikec.export(graph, path, format="netx")
        for sink in ("ringbuffer", "recorder"):
            pts, last = [], None
            for steps in args.steps:
                hw = graph.hardware_steps(steps)
                ref = run_reference(graph, x1, steps, record=True)
                best = None
                for _ in range(args.repeats if sink == "recorder" or steps == min(args.steps) else 1):
                    wall, timings, spikes, output = time_netx(path, x1[0], hw, sink)
                    for got, name in zip(netx_spikes_as_ir(spikes, sink), ref.spikes):
                        assert np.array_equal(got, ref.spikes[name][:, 0]), ("netx", sink, name)
                    assert np.array_equal(output, ref.output[0])
                    best = (wall, timings) if best is None or timings["run"] < best[1]["run"] else best
                pts.append((hw, best[1]["run"]))
                last = best
            rate, fixed = steady(pts)
            wall, timings = last
            label = "netx + sink RingBuffer" if sink == "ringbuffer" else "netx + SpikeRecorder"
            rows.append((label, 1, rate, fixed, timings["readback"], wall, "netx"))
            print(f"{label:18s} B=1 {rate:7.0f} steps/s, fixed {fixed:5.2f} s, readback "
                  f"{timings['readback'] * 1e3:6.1f} ms, total {wall:5.2f} s", flush=True)
    # spikec batch throughput
    xb = spike_trains(args.batch, max(args.steps), seed=4)
    wall, timings, trace = time_spikec(graph, xb, args.steps[1])
    ref = run_reference(graph, xb, args.steps[1])
    assert np.array_equal(trace.output, ref.output)
    hw = graph.hardware_steps(args.steps[1])
    print(f"spikec auto B={args.batch}: {wall:.2f} s for {args.batch} samples x {hw} steps "
          f"({args.batch * hw / timings['run']:.0f} sample-steps/s in run, "
          f"readback {timings['readback'] * 1e3:.1f} ms)")
    rows.append(("spikec auto, batch side by side", args.batch, args.batch * hw / timings["run"], None,
                 timings["readback"], wall, ""))
    return rows


if __name__ == "__main__":
    main()
