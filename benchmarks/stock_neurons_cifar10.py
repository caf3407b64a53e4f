"""Which neuron mapping that Loihi runs without custom microcode is most accurate? (CIFAR-10)

    python benchmarks/stock_neurons_cifar10.py --images 2000          # balanced subset
    python benchmarks/stock_neurons_cifar10.py --replot               # docs from the JSON only

For the trained CIFAR-10 ResNet-20 and VGG (QCFS, spikec/pretrained) every candidate mapping is
compiled to an integer graph and evaluated on the torch backend (bit-exact with the reference
interpreter) at T = 1..32 from one run per row (the readout is cumulative):

  subtract       target "loihi": spikec's own IF process (subtract reset, v_init = theta/2); the
                 accuracy the stock mappings are compared with.
  stock-zero     target "loihi-stock": Lava's stock LIF / netx CUBA as a perfect integrator
                 (du=4095, dv=0): zero reset, v_init 0.
  stock-v_init   the same zero-reset neurons, started at v_init = theta/2 (Lava's stock LIF
                 process takes an initial v; a netx file cannot hold one).
  sigma-delta    target "loihi-sdnn": Lava's stock SigmaDelta (ReLU, graded output) with
                 delta-encoded input, each layer clipped at L levels by a twin layer.
  sigma-delta-relu  the same without the twins (an unclipped ReLU; half the neurons).

Writes out/stock_neurons/results.json and the table + plot in docs (docs/lava.md section
"Which stock neuron", docs/stock_neurons_cifar10.png).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path

import torch
from cifar10_accuracy import add_study_arguments, test_and_calibration

from spikec.analysis.evaluate import evaluate
from spikec.analysis.plots import accuracy_vs_steps
from spikec.compiler.api import compile_model
from spikec.ir import IF, Graph
from spikec.models import pretrained

ROOT = Path(__file__).resolve().parent.parent
MARKS = (1, 2, 4, 8, 16, 32)
MODELS = {"ResNet-20": "cifar10_resnet20_qcfs", "VGG": "cifar10_vgg_small_qcfs"}
# mapping -> (target, how the neuron is built, Lava stock process, netx); compile options apart
OPTIONS = {"sigma-delta-relu": {"sd_clip": "none"}}
MAPPINGS = {
    "subtract": ("loihi", "spikec IF process (subtract reset, v_init theta/2)", "no (SpikecIF)", "no"),
    "stock-zero": ("loihi-stock", "CUBA LIF du=4095 dv=0: zero reset, v_init 0", "yes (LIF)", "yes (CUBA)"),
    "stock-v_init": ("loihi-stock", "CUBA LIF du=4095 dv=0, zero reset, v starts at theta/2",
                     "yes (LIF, initial v)", "no (no initial v)"),
    "sigma-delta": ("loihi-sdnn", "SigmaDelta (ReLU) + clip twin, delta-encoded input",
                    "yes (SigmaDelta, Sparse, RingBuffer)", "no (see below)"),
    "sigma-delta-relu": ("loihi-sdnn", "SigmaDelta (ReLU), delta-encoded input",
                         "yes (SigmaDelta, Sparse, RingBuffer)", "no (see below)"),
}
BEGIN, END = "<!-- stock-neurons:begin -->", "<!-- stock-neurons:end -->"


def build(model_name: str, mapping: str, x, x_calib) -> Graph:
    target = MAPPINGS[mapping][0]
    model = pretrained(model_name)
    if mapping == "stock-v_init":
        # the loihi graph's own v_init (theta/2), with the stock neuron's zero reset
        graph = compile_model(model, x[:1], method="qcfs", calibration=x_calib, target="loihi").graph
        pops = [dataclasses.replace(p, reset="zero") if isinstance(p, IF) else p for p in graph.populations]
        return Graph(tuple(pops), graph.edges, graph.meta).validate()
    return compile_model(model, x[:1], method="qcfs", calibration=x_calib, target=target,
                         **OPTIONS.get(mapping, {})).graph


def run_row(arch: str, mapping: str, x, y, x_calib, steps: int, batch_size: int) -> dict:
    t0 = time.perf_counter()
    graph = build(MODELS[arch], mapping, x, x_calib)
    compile_s = time.perf_counter() - t0
    ev = evaluate(graph, (x, y), steps, model=pretrained(MODELS[arch]), batch_size=batch_size, progress=False)
    accs = [ev.accuracy(t) for t in range(1, steps + 1)]
    row = {"arch": arch, "mapping": mapping, "ann": ev.ann_accuracy, "accuracy": accs,
           "latency": ev.latency, "compile_s": round(compile_s, 1),
           "eval_s": round(time.perf_counter() - t0 - compile_s, 1)}
    shown = " ".join(f"T{t}:{accs[t - 1]:5.1f}" for t in MARKS if t <= steps)
    print(f"{arch:9s} {mapping:13s} ANN {ev.ann_accuracy:5.2f} | {shown} | eval {row['eval_s']:.0f} s", flush=True)
    return row


def markdown(results: dict) -> str:
    marks = [t for t in MARKS if t <= results["steps"]]
    lines = [BEGIN, "",
             f"CIFAR-10, {results['images']} test images (balanced), torch backend (bit-exact with the "
             f"reference), {results['date']}; `benchmarks/stock_neurons_cifar10.py`. Accuracy in %; "
             "gap at T=8 = subtract-reset accuracy minus the row's.", "",
             "| model | mapping | neuron | Lava stock process | netx | ANN | "
             + " | ".join(f"T={t}" for t in marks) + " | gap T=8 |",
             "|---|---|---|---|---|---:|" + "---:|" * len(marks) + "---:|"]
    by_key = {(r["arch"], r["mapping"]): r for r in results["rows"]}
    for arch in MODELS:
        base = by_key.get((arch, "subtract"))
        for mapping, (_, neuron, lava, netx) in MAPPINGS.items():
            row = by_key.get((arch, mapping))
            if row is None:
                continue
            accs = " | ".join(f"{row['accuracy'][t - 1]:.1f}" for t in marks)
            gap = "" if base is None or len(row["accuracy"]) < 8 else \
                f"{base['accuracy'][7] - row['accuracy'][7]:+.1f}"
            lines.append(f"| {arch} | {mapping} | {neuron} | {lava} | {netx} | {row['ann']:.1f} | {accs} | {gap} |")
    return "\n".join(lines + ["", END])


def write_docs(results: dict, docs: Path) -> None:
    page = docs / "lava.md"
    text = page.read_text()
    table = markdown(results)
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: table, text, flags=re.S)
    else:
        text += "\n" + table + "\n"
    page.write_text(text)
    curves = {f"{r['arch']} {r['mapping']}": (list(range(1, len(r["accuracy"]) + 1)), r["accuracy"])
              for r in results["rows"]}
    accuracy_vs_steps(curves, docs / "stock_neurons_cifar10.png",
                      dashed={label for label in curves if label.startswith("VGG")},
                      title=f"CIFAR-10, stock-neuron mappings ({results['images']} images)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_study_arguments(ap, 2000, ROOT / "out" / "stock_neurons" / "results.json")
    ap.add_argument("--mappings", nargs="*", default=list(MAPPINGS), choices=list(MAPPINGS))
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.replot:
        x, y, x_calib = test_and_calibration(args.data, args.images)
        previous = json.loads(args.results.read_text()) if args.results.exists() else {"rows": []}
        todo = {(a, m) for a in args.models for m in args.mappings}
        rows = [r for r in previous["rows"] if previous.get("images") == len(y)
                and previous.get("steps") == args.steps and (r["arch"], r["mapping"]) not in todo]
        results = {"images": len(y), "steps": args.steps, "date": time.strftime("%Y-%m-%d"), "rows": rows}
        for arch in args.models:
            for mapping in args.mappings:
                results["rows"].append(run_row(arch, mapping, x, y, x_calib, args.steps, args.batch_size))
                args.results.parent.mkdir(parents=True, exist_ok=True)
                args.results.write_text(json.dumps(results, indent=1))
    results = json.loads(args.results.read_text())
    write_docs(results, args.docs)
    print(f"wrote {args.docs / 'lava.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
