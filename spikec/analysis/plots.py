"""PNG plots of an Estimate (matplotlib, Agg canvas; no global backend switch)."""

from __future__ import annotations

from pathlib import Path

from spikec.analysis.estimate import Estimate


def _figure(width: float = 7.0, height: float = 3.8):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, folder, name: str) -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_sops(est: Estimate, folder) -> Path:
    """Bar chart: SOPs and input MACs arriving at each layer, per inference."""
    rows = [r for r in est.layers if r.kind != "input"]
    names = [r.name for r in rows]
    fig = _figure()
    ax = fig.add_subplot()
    ax.bar(names, [r.sops / est.batch for r in rows], label="synaptic ops")
    ax.bar(names, [r.input_macs / est.batch for r in rows], bottom=[r.sops / est.batch for r in rows],
           label="input MACs (current input)")
    ax.set_ylabel("operations per inference")
    ax.set_title(f"Synaptic operations per layer ({est.steps} steps)")
    ax.legend()
    ax.tick_params(axis="x", rotation=45)
    return _save(fig, folder, "sops_per_layer.png")


def plot_firing_rates(est: Estimate, folder) -> Path:
    """Bar chart: spikes per neuron per step of each spiking layer."""
    rows = [r for r in est.layers if r.kind in ("if", "sigma_delta") or (r.kind == "input" and r.spikes)]
    fig = _figure()
    ax = fig.add_subplot()
    ax.bar([r.name for r in rows], [r.firing_rate for r in rows], color="tab:orange")
    ax.set_ylabel("spikes / neuron / step")
    ax.set_title("Firing rate per layer (from its start step)")
    ax.tick_params(axis="x", rotation=45)
    return _save(fig, folder, "firing_rates.png")


def plot_energy(est: Estimate, folder) -> Path:
    """Energy per inference: the SNN's band under its energy set vs the ANN baseline sets."""
    labels = [f"SNN\n{est.energy_model.name}"] + [f"ANN\n{n}" for n in est.ann_energy_j]
    bands = [est.energy_band] + list(est.ann_energy_j.values())
    central = [b.central for b in bands]
    err = [[b.central - b.low for b in bands], [b.high - b.central for b in bands]]
    fig = _figure()
    ax = fig.add_subplot()
    colors = ["tab:green"] + ["tab:gray"] * (len(bands) - 1)
    ax.bar(labels, central, yerr=err, capsize=6, color=colors)
    ax.set_yscale("log")
    ax.set_ylabel("J per inference (bars: low–high band)")
    ax.set_title("Energy: SNN vs ANN")
    return _save(fig, folder, "energy_snn_vs_ann.png")


def save_plots(est: Estimate, folder) -> list[Path]:
    """All three plots into `folder`; returns their paths."""
    return [plot_sops(est, folder), plot_firing_rates(est, folder), plot_energy(est, folder)]


def accuracy_vs_steps(curves: dict, path, ann=None, title: str = "", dashed=()) -> Path:
    """Line plot of accuracy (%) against evaluated steps T (log2 axis).

    curves: {label: (T values, accuracies)}; ann: the ANN accuracy (a dashed line), or
    {label: accuracy} for several ANNs; dashed: labels drawn dashed (a second family of curves).
    """
    fig = _figure(8.0, 4.6)
    ax = fig.add_subplot()
    for label, (ts, accs) in curves.items():
        ax.plot(ts, accs, marker="o", markersize=3, label=label, linestyle="--" if label in dashed else "-")
    anns = {"ANN": ann} if isinstance(ann, (int, float)) else dict(ann or {})
    for i, (label, value) in enumerate(anns.items()):
        ax.axhline(value, linestyle="--", linewidth=1, color=f"C{i % 10}" if len(anns) > 1 else "gray",
                   label=f"{label} {value:.1f} %")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("evaluated time steps T")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or "Accuracy against time steps")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
