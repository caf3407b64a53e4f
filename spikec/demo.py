"""End-to-end demo: train a small CNN on bundled MNIST, compile, run on every backend, verify,
estimate, and write a report folder.

    python -m spikec.demo [--quick] [--out out/demo] [--cache .spikec-cache]

--quick is the configuration CI runs (less training, fewer samples); the full run takes a few
minutes on a 2-core CPU the first time and reuses the cached weights afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from torch import nn

STEPS = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class Config:
    channels: int = 16
    epochs: int = 15
    train_samples: int = 4000
    test_samples: int = 1000
    verify_samples: int = 4
    verify_steps: int = 8
    levels: int = 4
    ftbc_batch_size: int = 200
    ftbc_batches: int = 3

    @staticmethod
    def quick() -> Config:
        return Config(channels=8, epochs=2, train_samples=2000, test_samples=200, verify_samples=2,
                      verify_steps=4, ftbc_batch_size=50, ftbc_batches=1)

    def methods(self) -> dict[str, dict]:
        """Methods compared in the accuracy plot: label -> spikec.compile keyword arguments."""
        ftbc = {"alpha": 0.4, "batches": self.ftbc_batches, "batch_size": self.ftbc_batch_size, "steps": 32}
        return {"qcfs": {}, "qcfs+srp1": {"srp_presim": 1}, "qcfs+srp4": {"srp_presim": 4},
                "qcfs+ftbc": {"ftbc": ftbc}}

    def key(self) -> str:
        fields = (self.channels, self.epochs, self.train_samples, self.levels)
        return hashlib.sha1(repr(("small_cnn", "lam0=1") + fields).encode()).hexdigest()[:10]


def trained_model(cfg: Config, data, cache: Path, console: Console) -> nn.Module:
    """The demo CNN with QCFS activations, trained once and cached by configuration."""
    from spikec.models import small_cnn
    from spikec.quantize import replace_relu, train

    model = replace_relu(small_cnn(28, channels=cfg.channels), kind="qcfs", levels=cfg.levels, threshold=1.0)
    path = cache / f"demo_cnn_{cfg.key()}.pt"
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
        console.print(f"loaded cached weights from {path}")
        return model.eval()
    console.print(f"training the CNN ({cfg.epochs} epochs on {cfg.train_samples} images)...")
    train(model, (data.x_train[:cfg.train_samples], data.y_train[:cfg.train_samples]), epochs=cfg.epochs,
          lr=0.1, batch_size=64)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model.eval()


def accuracy_vs_steps(graph, x_test: torch.Tensor, labels: np.ndarray) -> dict[int, float]:
    """Integer-SNN accuracy at every T in STEPS from one torch-backend run per T."""
    import spikec

    x_int = graph.encode(x_test.numpy())
    return {t: float((spikec.run(graph, x_int, t, backend="torch").predictions() == labels).mean())
            for t in STEPS}


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small configuration (CI)")
    parser.add_argument("--out", default="out/demo", help="report folder")
    parser.add_argument("--cache", default=".spikec-cache", help="cache folder for trained weights")
    args = parser.parse_args(argv)
    cfg = Config.quick() if args.quick else Config()
    console = Console(width=None if sys.stdout.isatty() else 150)
    out, cache = Path(args.out), Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    import spikec
    from spikec.backends import available
    from spikec.datasets import mnist_subset
    from spikec.quantize import evaluate

    data = mnist_subset()
    model = trained_model(cfg, data, cache, console)
    x_test, y_test = data.x_test[:cfg.test_samples], data.y_test[:cfg.test_samples].numpy()
    ann_acc = evaluate(model, (x_test, torch.as_tensor(y_test)))
    console.print(f"ANN (QCFS activations) accuracy: {ann_acc:.2%}")

    calib = data.x_train[:cfg.ftbc_batch_size * cfg.ftbc_batches]
    graphs = {label: spikec.compile(model, x_test[:1], method="qcfs", calibration=calib, **kwargs)
              for label, kwargs in cfg.methods().items()}
    graph = graphs["qcfs"]
    spikec.save(graph, out / "graph.h5")
    from spikec.compiler.report import print_report

    print_report(graph, console=console)
    acc = {label: accuracy_vs_steps(g, x_test, y_test) for label, g in graphs.items()}
    latency = {label: g.latency for label, g in graphs.items()}
    for label, row in acc.items():
        console.print(f"integer SNN {label}: " + ", ".join(
            f"T={t}: {a:.1%} ({t + latency[label]} hw steps)" for t, a in row.items()))
    x_int = graph.encode(x_test.numpy())

    backends = [b for b in ("torch", "brian2", "lava") if b in available()]
    console.print(f"verifying {', '.join(backends)} against the reference interpreter "
                  f"on {cfg.verify_samples} samples, T={cfg.verify_steps}...")
    report = spikec.verify(graph, x_int[:cfg.verify_samples], cfg.verify_steps, backends=backends)
    from spikec.analysis.verify_view import plot_equivalence, print_verify

    print_verify(report, console)
    plot_equivalence(report, out / "equivalence.png")

    est = spikec.estimate(graph, x_int[:cfg.verify_samples * 8], cfg.verify_steps, model=model)
    from spikec.analysis.plots import save_plots
    from spikec.analysis.report import print_estimate

    print_estimate(est, console=console)
    plots = save_plots(est, out)
    _plot_accuracy(acc, latency, ann_acc, out / "accuracy_vs_steps.png")
    summary = {"config": cfg.__dict__, "ann_accuracy": ann_acc,
               "snn_accuracy": {label: {str(t): a for t, a in row.items()} for label, row in acc.items()},
               "latency": latency,
               "equal": report.equal, "backends": backends, "estimate": est.to_dict(),
               "seconds": round(time.perf_counter() - t0, 1)}
    (out / "report.json").write_text(json.dumps(summary, indent=2, default=float))
    _write_markdown(out, summary, report, [Path(p).name for p in plots])
    console.print(f"[bold]report written to {out / 'report.md'}[/] ({summary['seconds']} s)")
    return out / "report.md"


def _plot_accuracy(acc: dict[str, dict[int, float]], latency: dict[str, int], ann_acc: float,
                   path: Path) -> None:
    """Accuracy against evaluated steps T and against the hardware steps actually spent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for label, row in acc.items():
        values = [100 * a for a in row.values()]
        axes[0].plot(list(row), values, "o-", label=label)
        axes[1].plot([t + latency[label] for t in row], values, "o-", label=label)
    for ax, xlabel in zip(axes, ("evaluated time steps T", "hardware steps (T + depth + SRP pre-simulation)")):
        ax.axhline(100 * ann_acc, color="gray", ls="--", label="ANN")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("integer SNN accuracy (%)")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write_markdown(out: Path, summary: dict, report, plots: list[str]) -> None:
    labels = list(summary["snn_accuracy"])
    lines = ["# spikec demo report", "",
             f"ANN accuracy (QCFS activations, {summary['config']['test_samples']} test images): "
             f"{summary['ann_accuracy']:.2%}", "",
             "Integer SNN accuracy on the torch backend (hardware steps in brackets: T + pipeline depth "
             "+ SRP pre-simulation):", "",
             "| T | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for t in STEPS:
        cells = [f"{summary['snn_accuracy'][lb][str(t)]:.2%} ({t + summary['latency'][lb]})" for lb in labels]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    lines += ["", "![accuracy vs steps](accuracy_vs_steps.png)", "",
              "## Equivalence", "",
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
