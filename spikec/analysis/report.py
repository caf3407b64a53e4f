"""Terminal table of an Estimate (rich)."""

from __future__ import annotations

from spikec.analysis.energy import Band
from spikec.analysis.estimate import Estimate


def _si(value: float, unit: str = "") -> str:
    if value == 0:
        return f"0 {unit}".strip()
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "µ"),
                           (1e-9, "n"), (1e-12, "p")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}".strip()
    return f"{value:.3g} {unit}".strip()


def _band(b: Band) -> str:
    return f"{_si(b.central, 'J')} [{_si(b.low, 'J')} – {_si(b.high, 'J')}]"


NARROW = ("layer", "neurons", "rate", "SOPs", "energy", "cores d/s")   # fits 80 columns


def print_estimate(est: Estimate, console=None, wide: bool = False) -> None:
    """Print per-layer rows (per inference), totals, energy band vs the ANN, cores and assumptions.
    The per-layer table keeps to NARROW's columns unless `wide`."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    if console is None:
        console = Console()
        if wide and not console.is_terminal:
            console = Console(width=150)
    b = est.batch
    table = Table(title=f"spikec estimate — {est.hardware.name}, energy set {est.energy_model.name}, "
                        f"{est.steps} steps (+{est.hardware_steps - est.steps} latency), per inference "
                        f"(mean of {b})", box=box.SIMPLE_HEAD,
                  caption=None if wide else "more columns: --wide / print_estimate(est, wide=True)")
    columns = ("layer", "neurons", "rate", "spikes", "synapses", "SOPs", "input MACs", "energy",
               "cores d/s", "mem KiB d/s", "axons in/out", "limit")
    shown = [c in NARROW or wide for c in columns]
    for col, show in zip(columns, shown):
        if show:
            table.add_column(col, justify="left" if col in ("layer", "limit") else "right", no_wrap=wide,
                             overflow="fold")
    for r in est.layers:
        res = r.resources
        cells = (
            escape(f"{r.name} [{r.kind}]" + (f" {r.source}" if r.source and wide else "")), f"{r.neurons:,}",
            f"{r.firing_rate:.3f}" if r.kind != "readout" else "–", _si(r.spikes / b), _si(r.synapses),
            _si(r.sops / b), _si(r.input_macs / b), _si(r.energy_j.central, "J"),
            f"{res.cores}/{res.cores_shared}" if res else "host",
            f"{res.syn_mem_bits / 8192:.1f}/{res.syn_mem_bits_shared / 8192:.1f}" if res else "–",
            f"{res.in_axons_max}/{res.out_axons_max}" if res else "–",
            (res.binding + ("" if res.feasible else " (!)")) if res else "")
        table.add_row(*(c for c, show in zip(cells, shown) if show))
    console.print(table)
    console.print(f"SOPs {_si(est.sops)}   input MACs {_si(est.input_macs)} "
                  f"({_si(est.input_macs_per_step)} per step)   spikes {_si(est.spikes)}   "
                  f"neuron updates {_si(est.neuron_updates_active)} active / "
                  f"{_si(est.neuron_updates_inactive)} inactive   spike messages {_si(est.messages)}")
    console.print(f"[bold]SNN energy per inference[/bold] ({est.energy_model.name}): "
                  f"{_band(est.energy_band)}")
    for name, band in est.energy_parts_j.items():
        console.print(f"  {name:15s} {_band(band)}")
    eff = "" if est.ann.effective_macs is None else f", {_si(est.ann.effective_macs)} effective"
    console.print(f"[bold]ANN baseline[/bold] ({est.ann.source}): {_si(est.ann.macs)} MACs{eff}, "
                  f"{_si(est.ann.acs)} ACs")
    for name, band in est.ann_energy_j.items():
        console.print(f"  {name:15s} {_band(band)}   SNN/ANN (central) "
                      f"{est.energy_j / band.central if band.central else float('nan'):.3g}")
    console.print(f"[bold]Cores[/bold] {est.cores} discrete / {est.cores_shared} shared-weight, "
                  f"[bold]chips[/bold] {est.chips} / {est.chips_shared} "
                  f"({est.hardware.cores_per_chip} cores per chip)"
                  + ("" if est.feasible else "  [red]some layer does not fit (see notes)[/red]"))
    if est.hardware.assumed:
        console.print(f"[yellow]assumed hardware limits[/yellow]: {', '.join(est.hardware.assumed)}")
    notes = (est.energy_model.assumptions + est.hardware.notes if wide else ()) + tuple(est.notes)
    for text in notes:
        console.print(f"  - {escape(text)}", style="dim")
    if not wide:
        console.print("  energy and hardware assumptions: --wide / print_estimate(est, wide=True)", style="dim")


def summary(est: Estimate) -> str:
    """A few lines within 80 columns: per-inference totals, energy against the ANN, cores (str(estimate))."""
    fp32 = est.ann_energy_j.get("horowitz-fp32")
    return "\n".join((
        f"Estimate: {est.hardware.name}, energy set {est.energy_model.name}, T={est.steps} "
        f"(+{est.hardware_steps - est.steps} latency); per inference, mean of {est.batch}",
        f"  SOPs {_si(est.sops)}, spikes {_si(est.spikes)}, input MACs {_si(est.input_macs)}",
        f"  SNN energy {_band(est.energy_band)}",
        f"  ANN {_si(est.ann.macs)} MACs" + (f": {_si(fp32.central, 'J')} (horowitz-fp32)" if fp32 else ""),
        f"  cores {est.cores} discrete / {est.cores_shared} shared-weight, chips {est.chips} / {est.chips_shared}"
        + ("" if est.feasible else " (too big: see .notes)"),
        "  per layer: spikec.analysis.report.print_estimate(est)"))
