"""End-to-end demo on real data: the trained CIFAR-10 ResNet-20 shipped with spikec, compiled for
Loihi, evaluated on the bundled 1,000 CIFAR-10 test images at every T up to 32, checked bit for bit
on every backend, and its energy estimated; a report folder with plots.

    python -m spikec.demo [--quick] [--out out/demo] [--model cifar10_resnet20_qcfs]

--quick (what CI runs) evaluates 200 images and verifies 1 image for fewer steps. Nothing is
trained: the weights come from spikec/pretrained (benchmarks/train_cifar10.py made them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

MARKS = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class Config:
    images: int = 1000          # bundled test images evaluated (balanced over the classes)
    steps: int = 32             # one run to this T gives the accuracy at every T
    verify_images: int = 2
    verify_steps: int = 8
    estimate_images: int = 50
    estimate_steps: int = 8

    @staticmethod
    def quick() -> Config:
        return Config(images=200, steps=32, verify_images=1, verify_steps=4, estimate_images=20)


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small configuration (CI)")
    parser.add_argument("--out", default="out/demo", help="report folder")
    parser.add_argument("--model", default="cifar10_resnet20_qcfs", help="a model in spikec/pretrained")
    parser.add_argument("--data", default=None, help="CIFAR-10 archive/folder (default: the bundled 1,000 images)")
    args = parser.parse_args(argv)
    cfg = Config.quick() if args.quick else Config()
    console = Console(width=None if sys.stdout.isatty() else 120)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    import spikec
    from spikec import datasets
    from spikec.analysis.evaluate import evaluate
    from spikec.backends import available
    from spikec.ir.report import print_report
    from spikec.models import pretrained, pretrained_record

    model = pretrained(args.model)
    record = pretrained_record(args.model)
    x, y = datasets.cifar10(args.data or datasets.CIFAR10_SUBSET, "test")
    if cfg.images < len(y):
        keep = datasets.balanced_subset(y, cfg.images // 10)
        x, y = x[keep], y[keep]
    console.print(f"[bold]{args.model}[/]: {record['model']} with {record['kind']} activations "
                  f"(L={record['levels']}), ANN test accuracy {record['ann_test_accuracy']:.2f} % on all 10,000 "
                  f"CIFAR-10 test images; demo data: {len(y)} test images")

    graph = spikec.compile(model, x[:1], method="qcfs", target="loihi")
    spikec.save(graph, out / "graph.h5")
    print_report(graph, console=console)

    console.print(f"evaluating the integer graph on {len(y)} images to T={cfg.steps} (every T from one run)...")
    ev = evaluate(graph, (x, y), cfg.steps, model=model, batch_size=100)
    _print_accuracy(ev, console)
    console.print("the same with SRP (4 pre-simulation steps, counted in the hardware steps)...")
    srp = evaluate(spikec.compile(model, x[:1], method="qcfs", target="loihi", srp_presim=4), (x, y), cfg.steps,
                   batch_size=100)
    _print_accuracy(srp, console, ann=ev.ann_accuracy, label="QCFS + SRP")
    _plot(ev, srp, out / "accuracy_vs_steps.png", f"{args.model}: CIFAR-10, {len(y)} images, integer Loihi graph")

    backends = [b for b in ("torch", "brian2", "lava") if b in available()]
    x_int = graph.encode(x[:cfg.verify_images].numpy())
    console.print(f"verifying {', '.join(backends)} against the reference interpreter on "
                  f"{cfg.verify_images} image(s), T={cfg.verify_steps}...")
    report = spikec.verify(graph, x_int, cfg.verify_steps, backends=backends)
    from spikec.analysis.verify_view import plot_equivalence, print_verify

    print_verify(report, console)
    plot_equivalence(report, out / "equivalence.png")

    from spikec.analysis.plots import save_plots
    from spikec.analysis.report import print_estimate

    est = spikec.estimate(graph, graph.encode(x[:cfg.estimate_images].numpy()), cfg.estimate_steps, model=model)
    print_estimate(est, console=console)
    plots = save_plots(est, out)
    summary = {"config": asdict(cfg), "model": args.model, "training": record,
               "evaluation": ev.to_json(), "evaluation_srp": srp.to_json(), "equal": report.equal, "backends": backends,
               "estimate": est.to_dict(), "seconds": round(time.perf_counter() - t0, 1)}
    (out / "report.json").write_text(json.dumps(summary, indent=2, default=float))
    _write_markdown(out, summary, ev, srp, report, [Path(p).name for p in plots])
    console.print(f"[bold]report written to {out / 'report.md'}[/] ({summary['seconds']} s)")
    return out / "report.md"


def _marks(steps: int) -> list[int]:
    return [t for t in MARKS if t <= steps]


def _plot(ev, srp, path: Path, title: str) -> None:
    from spikec.analysis.plots import accuracy_vs_steps

    ts = list(range(1, ev.steps + 1))
    accuracy_vs_steps({"QCFS": (ts, [ev.accuracy(t) for t in ts]),
                       "QCFS + SRP (tau=4)": (ts, [srp.accuracy(t) for t in ts])}, path, ann=ev.ann_accuracy,
                      title=title)


def _print_accuracy(ev, console: Console, ann: float | None = None, label: str = "QCFS") -> None:
    ann = ev.ann_accuracy if ann is None else ann
    table = Table(title=f"Integer SNN accuracy, {label}, on {ev.total} images (ANN {ann:.2f} %)")
    table.add_column("T", justify="right")
    table.add_column("hardware steps", justify="right")
    table.add_column("SNN %", justify="right")
    table.add_column("gap to ANN", justify="right")
    for t in _marks(ev.steps):
        table.add_row(str(t), str(t + ev.latency), f"{ev.accuracy(t):.2f}", f"{ann - ev.accuracy(t):+.2f}")
    console.print(table)
    rates = ev.rates()
    console.print("spike rates (spikes / neuron / step): " + ", ".join(
        f"{name} {rate:.3f}" for name, rate in list(rates.items())[:6]) + (" ..." if len(rates) > 6 else ""))


def _write_markdown(out: Path, summary: dict, ev, srp, report, plots: list[str]) -> None:
    rec = summary["training"]
    lines = ["# spikec demo report", "",
             f"Model `{summary['model']}`: {rec['model']}, {rec['kind']} activations (L={rec['levels']}), "
             f"trained with `{rec['command']}` ({rec['epochs']} epochs, seed {rec['seed']}); ANN test accuracy "
             f"{rec['ann_test_accuracy']:.2f} % on all 10,000 CIFAR-10 test images.", "",
             f"Integer `loihi` graph on the torch backend, {ev.total} CIFAR-10 test images (ANN on the same "
             f"images: {ev.ann_accuracy:.2f} %); every T read from one run to T={ev.steps}:", "",
             "| T | hardware steps | SNN accuracy | gap to ANN | with SRP (tau=4): hardware steps | accuracy | gap |",
             "|---|---|---|---|---|---|---|"]
    for t in _marks(ev.steps):
        lines.append(f"| {t} | {t + ev.latency} | {ev.accuracy(t):.2f} % | {ev.ann_accuracy - ev.accuracy(t):+.2f} | "
                     f"{t + srp.latency} | {srp.accuracy(t):.2f} % | {ev.ann_accuracy - srp.accuracy(t):+.2f} |")
    lines += ["", "![accuracy vs steps](accuracy_vs_steps.png)", "", "## Equivalence", "",
              f"Backends {', '.join(summary['backends'])} vs the reference interpreter: "
              f"**{'EQUAL bit for bit' if report.equal else 'MISMATCH'}**", "",
              "| backend | layer | spikes (reference) | spikes (backend) | mismatches |", "|---|---|---|---|---|"]
    lines += [f"| {r.backend} | {r.layer} | {r.spikes_baseline} | {r.spikes_backend} | {r.mismatches} |"
              for r in report.rows]
    lines += [f"| {r['backend']} | readout | | | {r['mismatches']} |" for r in report.readout]
    lines += ["", "![equivalence map](equivalence.png)", "", "## Operations and energy", ""]
    lines += [f"![{p}]({p})" for p in plots]
    est = summary["estimate"]
    lines += ["", "```", json.dumps({k: est[k] for k in est if k != "layers"}, indent=2, default=float), "```", ""]
    (out / "report.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
