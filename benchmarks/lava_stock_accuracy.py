"""Accuracy cost of target "loihi-stock" (Lava's stock LIF: zero reset, v_init 0) vs "loihi".

Trains spikec.models.small_cnn on sklearn's 8x8 digits (fixed split, spikec.datasets.digits) as a
ReLU net and as a QCFS (L=4) net, compiles each for target "loihi" (spikec's IF process: subtract
reset, v_init from the method) and "loihi-stock", and evaluates the integer graphs on the torch
backend (bit-exact with the reference). Two ablations on the "loihi" graph separate the causes:
zero reset alone and v_init = 0 alone. Finally a few test images of the loihi-stock graph run on
the Lava backend and are checked bit for bit against the reference.

    .venv/bin/python benchmarks/lava_stock_accuracy.py [--epochs 20] [--steps 4 8 16 32 64]
Prints a markdown table (docs/lava.md holds the last one).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

import spikec
from spikec import datasets
from spikec.backends.lava.plan import build_plan
from spikec.ir import IF, Graph
from spikec.models import small_cnn
from spikec.quantize import evaluate, replace_relu, train

CACHE = Path(__file__).resolve().parent.parent / ".spikec-cache" / "lava-stock"
MODELS = {"relu": (None, "maxnorm"), "qcfs": ("qcfs", "qcfs")}   # name: (activation, method)


def model(kind: str | None, split, epochs: int) -> torch.nn.Module:
    torch.manual_seed(0)
    net = small_cnn(image_size=8)
    if kind:
        replace_relu(net, kind, levels=4, threshold=1.0)
    path = CACHE / f"digits-{kind or 'relu'}-e{epochs}.pt"
    if path.exists():
        net.load_state_dict(torch.load(path, weights_only=True))
    else:
        train(net, (split.x_train, split.y_train), epochs=epochs, lr=0.1, batch_size=128, seed=0)
        CACHE.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
    return net.eval()


def ablate(graph: Graph, **fields) -> Graph:
    pops = [dataclasses.replace(p, **fields) if isinstance(p, IF) else p for p in graph.populations]
    return Graph(pops, graph.edges, graph.meta).validate()


def accuracy(graph: Graph, x: np.ndarray, labels: np.ndarray, steps) -> list[float]:
    return [100.0 * float(np.mean(spikec.run(graph, x, t, backend="torch").predictions() == labels))
            for t in steps]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    ap.add_argument("--lava-images", type=int, default=8)
    args = ap.parse_args(argv)
    split = datasets.digits()
    labels = split.y_test.numpy()
    header = "| model / method | target / variant | ANN | " + " | ".join(f"T={t}" for t in args.steps) + " |"
    lines = [header, "|---|---|---|" + "---|" * len(args.steps)]
    stock_graphs = {}
    for name, (kind, method) in MODELS.items():
        net = model(kind, split, args.epochs)
        ann = 100.0 * evaluate(net, (split.x_test, split.y_test))
        calib = split.x_train[:500]
        loihi = spikec.compile(net, split.x_train[:1], method=method, calibration=calib, target="loihi")
        stock = spikec.compile(net, split.x_train[:1], method=method, calibration=calib, target="loihi-stock")
        stock_graphs[name] = stock
        x = loihi.encode(split.x_test.numpy())
        variants = [("loihi (subtract reset, method's v_init)", loihi),
                    ("loihi, zero reset only", ablate(loihi, reset="zero")),
                    ("loihi, v_init = 0 only", ablate(loihi, v_init=np.zeros((), np.int64))),
                    ("**loihi-stock** (zero reset, v_init 0, 18-bit state)", stock)]
        for label, graph in variants:
            xg = graph.encode(split.x_test.numpy()) if graph is stock else x
            accs = accuracy(graph, xg, labels, args.steps)
            cells = " | ".join(f"{a:.1f}" for a in accs)
            lines.append(f"| {name} / {method} | {label} | {ann:.1f} | {cells} |")
            print(lines[-1], flush=True)
    print("\n".join(lines))
    for name, graph in stock_graphs.items():
        x = graph.encode(split.x_test[: args.lava_images].numpy())
        steps = args.steps[len(args.steps) // 2]
        ref = spikec.run(graph, x, steps, backend="reference", record=True)
        got = spikec.run(graph, x, steps, backend="lava", record=True)
        same = np.array_equal(got.output, ref.output) and all(
            np.array_equal(got.spikes[k], v) for k, v in ref.spikes.items())
        plan = build_plan(graph, graph.check_inputs(x, steps), steps)
        models = {p.name: plan.layers[p.name].model for p in graph.if_layers}
        print(f"lava check {name} loihi-stock, {args.lava_images} images, T={steps}: "
              f"{'bit-exact' if same else 'MISMATCH'}; neuron models {models}")
        try:
            spikec.export(graph, CACHE / f"{name}.net", format="netx")
            print(f"  netx export of {name} loihi-stock: ok")
        except spikec.UnsupportedError as err:
            print(f"  netx export of {name} loihi-stock refused: {str(err).splitlines()[1:3]}")


if __name__ == "__main__":
    main()
