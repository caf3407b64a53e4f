"""What a signed clip costs: a MobileNetV2-style net on sklearn's 8x8 digits, through spikec.

1. train the float ANN (ReLU6, linear bottlenecks) from scratch;
2. spikec.prepare: ReLU6 -> QCFS(L), a SignedClip(L) on every linear bottleneck, thresholds from
   data; fine-tune briefly;
3. compile (method qcfs) and evaluate the integer SNN on the held-out set at every T <= 32
   (torch backend), plus torch == reference on a few test images.
As a control, the same ANN is also prepared with linear_bottlenecks=None (QCFS only, bottlenecks
left linear; not compilable) and fine-tuned the same way: the gap between the two prepared ANNs is
what the signed clips cost on the ANN side.

    nice -n 19 python benchmarks/linear_bottleneck_digits.py --levels 4 --seeds 0,1
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

TS = (1, 2, 4, 8, 16, 32)


def run(seed: int, levels: int, epochs: int, finetune: int, channels: int) -> dict:
    data = digits()
    xtr, ytr, xte, yte = data.x_train, data.y_train, data.x_test, data.y_test
    torch.manual_seed(seed)
    ann = tiny_mobilenet(channels)
    t0 = time.time()
    train(ann, (xtr, ytr), epochs=epochs, lr=0.05, seed=seed, progress=False)
    row = {"seed": seed, "levels": levels, "ann": evaluate(ann, (xte, yte)), "train_s": round(time.time() - t0, 1)}

    control = spikec.prepare(ann, xtr[:1], levels=levels, calibration=xtr[:512], linear_bottlenecks=None)
    train(control, (xtr, ytr), epochs=finetune, lr=0.01, seed=seed, progress=False)
    row["prepared_qcfs_only"] = evaluate(control, (xte, yte))

    prep = spikec.prepare(ann, xtr[:1], levels=levels, calibration=xtr[:512])
    row["signed_clips"] = sum(1 for m in prep.modules() if getattr(m, "signed", False))
    row["prepared_before_finetune"] = evaluate(prep, (xte, yte))
    train(prep, (xtr, ytr), epochs=finetune, lr=0.01, seed=seed, progress=False)
    row["prepared"] = evaluate(prep, (xte, yte))

    graph = spikec.compile(prep, xtr[:1], method="qcfs", steps=max(TS))
    ev = spikec.evaluate(graph, (xte, yte), max(TS), progress=False)
    row["snn"] = {t: ev.accuracy(t) / 100 for t in TS}   # Evaluation.accuracy is in percent
    row["latency"] = int(graph.latency)
    x = graph.encode(xte[:4].numpy())
    a = spikec.run(graph, x, 4, backend="torch", record=True)
    b = spikec.run(graph, x, 4, backend="reference", record=True)
    row["torch_equals_reference"] = bool(np.array_equal(a.output, b.output)
                                         and all(np.array_equal(a.spikes[k], b.spikes[k]) for k in b.spikes))
    neg = sum(int((s < 0).sum()) for s in a.spikes.values())
    row["negative_spikes_4_images_T4"] = neg
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--epochs", type=int, default=30, help="float ANN training epochs")
    ap.add_argument("--finetune", type=int, default=10, help="fine-tuning epochs after prepare")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = [run(int(s), args.levels, args.epochs, args.finetune, args.channels) for s in args.seeds.split(",")]
    for r in rows:
        snn = " ".join(f"T{t}={100 * a:.1f}" for t, a in r["snn"].items())
        print(f"seed {r['seed']} L={r['levels']}: ANN {100 * r['ann']:.1f} | prepared QCFS-only "
              f"{100 * r['prepared_qcfs_only']:.1f} | prepared + {r['signed_clips']} signed clips "
              f"{100 * r['prepared_before_finetune']:.1f} -> {100 * r['prepared']:.1f} fine-tuned | SNN {snn} "
              f"| latency {r['latency']} | torch==reference {r['torch_equals_reference']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
