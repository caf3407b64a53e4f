"""`spikec eval`: data-set accuracy at every T from one run (single process or under torchrun)."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from spikec.cli_io import ANN_HELP, OPTION_HELP

MARKS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@click.command("eval")
@click.argument("graph_path", type=click.Path(dir_okay=False))
@click.option("--data", required=True, help="'cifar10-subset' (the 1,000 CIFAR-10 test images shipped with spikec), "
              "a CIFAR-10 archive / folder / cifar-10-batches-py, an ImageFolder tree (<class>/<image>, streamed), "
              "a labelled .npz (arrays x and y), or 'digits' / 'mnist-subset'")
@click.option("--split", default="test", show_default=True, type=click.Choice(["test", "train"]))
@click.option("--steps", type=click.IntRange(1), default=32, show_default=True,
              help="run to this T; every T up to it is read")
@click.option("--at", "at", default=None, help="report only these T, e.g. 1,2,4,8 (default: powers of two)")
@click.option("--limit", type=click.IntRange(1), default=None, help="evaluate only the first N samples")
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True)
@click.option("--backend", default="torch", show_default=True, type=click.Choice(["torch", "reference"]))
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help=OPTION_HELP)
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="record finished batches here; rerun to resume")
@click.option("--plot", type=click.Path(dir_okay=False), help="write the accuracy-against-T plot (PNG)")
@click.option("--ann", help=f"{ANN_HELP}; its accuracy is reported beside the SNN's")
@click.option("--ann-weights", type=click.Path(dir_okay=False), help="state dict (.pt) for --ann's factory")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def eval_cmd(graph_path, data, split, steps, at, limit, batch_size, backend, options, checkpoint, plot, ann,
             ann_weights, as_json):
    """Accuracy of a compiled graph on a labelled data set at every T (one run to --steps).

    Under `torchrun --nproc_per_node N spikec eval ...` each process takes every N-th batch and
    rank 0 prints the summed result (identical to one process)."""
    from pathlib import Path

    from spikec import evaluate, load
    from spikec.analysis.diagnostics import accuracy_falls, silent_layers
    from spikec.analysis.distributed import World
    from spikec.cli_io import backend_options, load_ann, show_findings

    marks = _marks(at, steps)
    graph = load(graph_path)
    ev = evaluate(graph, data, steps, backend=backend, split=split, limit=limit, batch_size=batch_size,
                  checkpoint=checkpoint, progress=not as_json, model=load_ann(ann, ann_weights),
                  **backend_options(options, backend))
    if World.from_env().rank != 0:
        return
    if plot:
        Path(plot).parent.mkdir(parents=True, exist_ok=True)
        ev.plot(plot, title=f"{Path(graph_path).name}: {ev.total} samples")
    findings = silent_layers(graph, ev.spike_counts, ev.steps + ev.latency) + accuracy_falls(ev.correct, ev.total)
    if as_json:
        click.echo(json.dumps({**ev.to_json(at=marks), "warnings": [f.to_dict() for f in findings]}, indent=2))
        show_findings(findings)
        return
    table = Table(title=f"{graph_path}: {ev.total} samples, {ev.world_size} process(es), "
                        f"{ev.total / max(ev.wall_s, 1e-9):.1f} images/s")
    for col in ("T", "hardware steps", "accuracy %", "correct"):
        table.add_column(col, justify="right")
    for t in marks:
        table.add_row(str(t), str(t + ev.latency), f"{ev.accuracy(t):.2f}", str(int(ev.correct[t - 1])))
    console = Console()
    console.print(table)
    if ev.ann_accuracy is not None:
        console.print(f"ANN ({escape(ann)}): {ev.ann_accuracy:.2f} % on the same samples")
    saturated = {k: v for k, v in ev.saturations.items() if v}
    console.print("saturations: " + (", ".join(f"{k} {v}" for k, v in saturated.items()) if saturated else "none"))
    sys.stdout.flush()
    show_findings(findings)


def _marks(at: str | None, steps: int) -> list[int]:
    """The T values to report: --at's list (each in 1..steps) or the powers of two up to steps."""
    if not at:
        return [t for t in MARKS if t <= steps]
    try:
        marks = [int(t) for t in at.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated ints such as 1,2,4,8, got {at!r}", param_hint="--at") \
            from None
    if not all(1 <= t <= steps for t in marks):
        raise click.BadParameter(f"every T must lie in 1..{steps} (--steps), got {at!r}; raise --steps to read "
                                 "larger T", param_hint="--at")
    return marks
