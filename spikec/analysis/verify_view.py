"""Terminal table and equivalence-map plot of a VerifyReport."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from spikec.analysis.verify import VerifyReport


def print_verify(report: VerifyReport, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"Equivalence vs {report.baseline}: {report.samples} samples, T={report.steps} "
                        f"({report.hardware_steps} hardware steps)", box=box.SIMPLE_HEAD)
    for col in ("backend", "layer", f"spikes {report.baseline}", "spikes backend", "mismatches",
                "first (step, sample, neuron)"):
        table.add_column(col, overflow="fold", justify="right" if col.startswith(("spikes", "mis")) else "left")
    for r in report.rows:
        first = "-" if r.first_mismatch is None else (
            f"{r.first_mismatch['step']}, {r.first_mismatch['sample']}, {tuple(r.first_mismatch['neuron'])}")
        style = "bold red" if r.mismatches else "green"
        table.add_row(escape(r.backend), escape(r.layer), str(r.spikes_baseline), str(r.spikes_backend),
                      f"[{style}]{r.mismatches}[/]", first)
    for r in report.readout:
        style = "bold red" if r["mismatches"] else "green"
        table.add_row(r["backend"], "readout", "", "", f"[{style}]{r['mismatches']}[/]",
                      "-" if r["first_sample"] is None else f"sample {r['first_sample']}")
    console.print(table)
    for name, why in report.skipped.items():
        console.print(f"skipped {escape(name)}: {escape(why)}")
    if report.equal:
        console.print(f"[bold green]EQUAL[/]: {', '.join(report.backends)} match {report.baseline} "
                      "bit for bit in every layer at every step.")
        return
    d = report.first_divergence
    if d is not None:
        console.print(f"[bold red]MISMATCH[/]: first divergence in layer [bold]{escape(d.layer)}[/] on "
                      f"{escape(d.backend)}, sample {d.sample}, neuron {tuple(d.neuron)}, hardware step {d.step}: "
                      f"spikes {escape(str(d.values))}, membrane after the step {escape(str(d.membrane))}")
    else:
        console.print("[bold red]MISMATCH[/]: spike trains agree but the readout differs.")


def summary(report: VerifyReport) -> str:
    """Two or three lines within 80 columns: EQUAL, or where the first divergence is (str(report))."""
    layers = len({r.layer for r in report.rows})
    head = (f"{', '.join(report.backends)} vs {report.baseline}: {report.samples} sample(s), T={report.steps}\n"
            f"  {layers} layer(s) and the readout compared at {report.hardware_steps} hardware steps")
    skipped = "".join(f"\n  skipped {k}: {v}" for k, v in report.skipped.items())
    if report.equal:
        return f"EQUAL: {head}: bit for bit{skipped}"
    d = report.first_divergence
    where = ("spike trains agree but the readout differs" if d is None else
             f"first divergence: {d.backend}, layer {d.layer}, sample {d.sample}, neuron {tuple(d.neuron)}, "
             f"hardware step {d.step}, spikes {d.values}")
    return f"MISMATCH: {head}\n  {where}\n  per layer: spikec.analysis.verify_view.print_verify(report){skipped}"


def plot_equivalence(report: VerifyReport, path) -> Path:
    """Heat map of mismatching neurons per (layer, hardware step), one panel per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    backends = list(report.mismatch_map)
    fig, axes = plt.subplots(len(backends), 1, figsize=(8, 1.2 + 0.5 * max(1, len(report.rows) // max(1, len(backends)))
                                                          * len(backends)), squeeze=False)
    for ax, backend in zip(axes[:, 0], backends):
        layers = list(report.mismatch_map[backend])
        grid = np.array([report.mismatch_map[backend][layer] for layer in layers])
        im = ax.imshow(grid, aspect="auto", cmap="Reds", vmin=0, vmax=max(1, grid.max()),
                       extent=(0.5, grid.shape[1] + 0.5, len(layers) - 0.5, -0.5))
        ax.set_yticks(range(len(layers)), layers)
        ax.set_xlabel("hardware step")
        ax.set_title(f"{backend} vs {report.baseline}: mismatching neurons "
                     f"({'none' if grid.sum() == 0 else int(grid.sum())})")
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
