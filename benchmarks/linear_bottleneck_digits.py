"""What a signed clip costs: a MobileNetV2-style net on sklearn's 8x8 digits, through spikec.

For each variant:
1. train the float ANN (ReLU6, linear bottlenecks) from scratch (`--epochs`, SGD, lr 0.05);
2. spikec.prepare: ReLU6 -> QCFS(L), a SignedClip(L) on every linear bottleneck, thresholds
   from data (99.9th percentile); fine-tune (`--finetune` epochs, lr 0.01);
3. compile (method qcfs, Loihi widths) and evaluate the integer SNN on the 360 held-out images at
   T = 1 .. 256 from one run (torch backend); torch == reference on 4 test images (T = 4).
Variants (`--neurons`): "signed" (dual-threshold IF, v_init theta/2), "signed-zero" (the same
neurons from v_init 0), "pair" (two unsigned IF layers, +x and -x), and "control": the same
network with a ReLU6 after every projection (not a linear bottleneck any more), QCFS only.
Also reported: the ANN prepared with linear_bottlenecks=None (QCFS only, bottlenecks left linear,
not compilable) after the same fine-tuning: the ANN-side cost of the signed clips. `--ftbc` also
compiles with FTBC bias schedules (3 x 200 training images) and evaluates T <= 32.

    nice -n 19 python benchmarks/linear_bottleneck_digits.py --neurons signed,signed-zero,pair,control --ftbc
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import spikec
from spikec.datasets import digits
from spikec.models import tiny_mobilenet
from spikec.quantize import evaluate, train

TS = (1, 2, 4, 8, 16, 32, 64, 256)


def run(seed: int, levels: int, epochs: int, finetune: int, channels: int, neurons: str, ftbc: bool) -> dict:
    data = digits()
    xtr, ytr, xte, yte = data.x_train, data.y_train, data.x_test, data.y_test
    control = neurons == "control"
    torch.manual_seed(seed)
    ann = tiny_mobilenet(channels, linear=not control)
    t0 = time.time()
    train(ann, (xtr, ytr), epochs=epochs, lr=0.05, seed=seed, progress=False)
    row = {"seed": seed, "levels": levels, "neurons": neurons, "ann": evaluate(ann, (xte, yte)),
           "train_s": round(time.time() - t0, 1)}
    calib = xtr[:512]
    if not control:
        linear = spikec.prepare(ann, xtr[:1], levels=levels, calibration=calib, linear_bottlenecks=None)
        train(linear, (xtr, ytr), epochs=finetune, lr=0.01, seed=seed, progress=False)
        row["prepared_bottlenecks_linear"] = evaluate(linear, (xte, yte))
    prep = spikec.prepare(ann, xtr[:1], levels=levels, calibration=calib,
                          linear_bottlenecks=None if control else neurons)
    row["signed_clips"] = sum(1 for m in prep.modules() if getattr(m, "signed", False))
    row["prepared_before_finetune"] = evaluate(prep, (xte, yte))
    train(prep, (xtr, ytr), epochs=finetune, lr=0.01, seed=seed, progress=False)
    row["prepared"] = evaluate(prep, (xte, yte))

    graph = spikec.compile(prep, xtr[:1], method="qcfs", steps=max(TS))
    ev = spikec.evaluate(graph, (xte, yte), max(TS), progress=False)
    row["snn"] = {t: ev.accuracy(t) / 100 for t in TS}   # Evaluation.accuracy is in percent
    row["latency"] = int(graph.latency)
    row["if_neurons"] = sum(int(np.prod(p.shape)) for p in graph.if_layers)
    if ftbc:   # FTBC (Wu et al. 2024) bias schedules, calibrated on 3 x 200 training images, T <= 32
        fg = spikec.compile(prep, xtr[:1], method="qcfs", steps=32, calibration=xtr[:600],
                            ftbc=dict(batches=3, batch_size=200))
        fev = spikec.evaluate(fg, (xte, yte), 32, progress=False)
        row["snn_ftbc"] = {t: fev.accuracy(t) / 100 for t in TS if t <= 32}
    x = graph.encode(xte[:4].numpy())
    a = spikec.run(graph, x, 4, backend="torch", record=True)
    b = spikec.run(graph, x, 4, backend="reference", record=True)
    row["torch_equals_reference"] = bool(np.array_equal(a.output, b.output)
                                         and all(np.array_equal(a.spikes[k], b.spikes[k]) for k in b.spikes))
    return row


def line(r: dict) -> str:
    snn = " ".join(f"T{t}={100 * a:.1f}" for t, a in r["snn"].items())
    linear = r.get("prepared_bottlenecks_linear")
    linear = "-" if linear is None else f"{100 * linear:.1f}"
    if "snn_ftbc" in r:
        snn += " | +FTBC " + " ".join(f"T{t}={100 * a:.1f}" for t, a in r["snn_ftbc"].items())
    return (f"{r['neurons']} seed {r['seed']} L={r['levels']}: ANN {100 * r['ann']:.1f} | prepared, bottlenecks "
            f"linear {linear} | prepared ({r['signed_clips']} signed clips) {100 * r['prepared_before_finetune']:.1f}"
            f" -> {100 * r['prepared']:.1f} fine-tuned | SNN {snn} | latency {r['latency']}, "
            f"{r['if_neurons']} IF neurons | torch==reference {r['torch_equals_reference']}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--epochs", type=int, default=30, help="float ANN training epochs")
    ap.add_argument("--finetune", type=int, default=10, help="fine-tuning epochs after prepare")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--neurons", default="signed", help="comma-separated: signed, signed-zero, pair, control")
    ap.add_argument("--ftbc", action="store_true", help="also compile with FTBC and evaluate T <= 32")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for n in args.neurons.split(","):
        for s in args.seeds.split(","):
            rows.append(run(int(s), args.levels, args.epochs, args.finetune, args.channels, n, args.ftbc))
            print(line(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
