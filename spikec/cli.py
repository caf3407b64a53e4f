"""The `spikec` command line: a thin layer over the public API.

Every command takes --json (machine-readable result on stdout). Exit status:

    0  success
    1  `verify` found backends that disagree
    2  bad arguments, files or inputs: a one-line message on stderr (click's usage errors and
       every SpikecError)
    3  an unexpected error (a bug in spikec or a library): a short message asking for a report;
       `spikec --debug ...` shows the traceback
"""

from __future__ import annotations

import sys
import traceback

import click
from rich.console import Console

from spikec import EXPORTERS
from spikec.backends import BACKENDS
from spikec.cli_io import (
    ANN_HELP,
    DATA_HELP,
    OPTION_HELP,
    backend_options,
    cli_hint,
    console,
    emit,
    load_ann,
    make_parent,
    one_line,
    samples,
    show_findings,
)
from spikec.errors import SpikecError

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
REPORT_HINT = ("please report this at the project's issue tracker, rerun with --debug for the traceback")


class SpikecGroup(click.Group):
    """The one top-level handler: a SpikecError becomes a one-line message and exit status 2; any
    other exception a short message, a request to report it, and exit status 3 (with --debug,
    also the traceback). click's own exceptions and exits pass through unchanged."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except SpikecError as err:
            if ctx.params.get("debug"):
                traceback.print_exc()
            click.echo(f"error: {type(err).__name__}: {one_line(err)}{cli_hint(str(err))}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except Exception as err:
            if ctx.params.get("debug"):
                traceback.print_exc()
            click.echo(f"internal error: {type(err).__name__}: {one_line(err, 300)}", err=True)
            click.echo(REPORT_HINT, err=True)
            sys.exit(EXIT_INTERNAL)


def _load_graph(path: str):
    from spikec import load

    return load(path)


@click.group(cls=SpikecGroup)
@click.version_option(package_name="spikec")
@click.option("--debug", is_flag=True, help="show the full traceback of an error")
def main(debug):
    """spikec: convert PyTorch CNNs to integer IF spiking networks and run them bit-exactly.

    Start with the model and images shipped with spikec:

    \b
      spikec compile --pretrained cifar10_vgg_small_qcfs --input-range 0,1 -o g.h5
      spikec eval g.h5 --data cifar10-subset --limit 100 --steps 32
      spikec verify g.h5 --data cifar10-subset --limit 1 --steps 2 --backends torch

    `spikec COMMAND --help` lists a command's options with their choices and defaults."""


BACKEND = click.Choice(list(BACKENDS))   # the registry, SPIKEC_BACKENDS entries included
BACKENDS_HELP = f"{', '.join(BACKENDS)} (more with SPIKEC_BACKENDS=name=package.module)"
INPUT_HELP = "samples: .npz with array x, or .npy (floats are encoded with the graph's input scale)"
RECORD_LIMIT = 50_000_000   # recorded spikes (neurons x steps x samples) kept for the warnings of `run`


def _record_options(graph, n: int, steps: int, backend: str) -> dict:
    """Record spikes for the warnings when that is cheap; otherwise count them where the backend can."""
    import numpy as np

    from spikec.analysis.evaluate import EVERY_STEP_BACKENDS

    neurons = sum(int(np.prod(layer.shape)) for layer in graph.neuron_layers)
    if neurons * n * graph.hardware_steps(steps) <= RECORD_LIMIT:
        return {"record": True}
    return {"count_spikes": True} if backend in EVERY_STEP_BACKENDS else {}


@main.command("run")
@click.argument("graph_path", type=click.Path(dir_okay=False))
@click.option("--input", "input_path", type=click.Path(dir_okay=False), help=INPUT_HELP)
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False),
              help="with --input: integer labels (.npy, or .npz array y); reports the accuracy")
@click.option("--data", help=f"instead of --input: {DATA_HELP}; reports the accuracy")
@click.option("--limit", type=click.IntRange(1), help="run only the first N samples")
@click.option("--steps", type=click.IntRange(1), required=True, help="evaluated time steps T")
@click.option("--backend", type=BACKEND, default="torch", show_default=True, help="the simulator to run on")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help=OPTION_HELP)
@click.option("--per-sample", is_flag=True, help="also print each sample's prediction and readout")
@click.option("--json", "as_json", is_flag=True, help="print the result (every sample) and warnings as JSON")
def run_cmd(graph_path, input_path, labels_path, data, limit, steps, backend, options, per_sample, as_json):
    """Run a compiled graph on samples; with labels (--labels or --data) report the accuracy.

    \b
    spikec run g.h5 --data cifar10-subset --limit 16 --steps 8
    spikec run g.h5 --input x.npz --labels y.npy --steps 8 --per-sample"""
    import numpy as np

    import spikec
    from spikec.analysis.diagnostics import trace_findings

    graph = _load_graph(graph_path)
    x, y = samples(graph, input_path, data, limit, labels_path)
    trace = spikec.run(graph, x, steps, backend=backend, **_record_options(graph, len(x), steps, backend),
                       **backend_options(options, backend))
    findings = trace_findings(graph, trace)
    predictions = trace.predictions()
    correct = None if y is None else int((predictions == y).sum())
    result = {"backend": backend, "steps": steps, "latency": trace.latency, "hardware_steps": trace.hardware_steps,
              "samples": len(x), "correct": correct,
              "accuracy": None if y is None else 100.0 * correct / len(x),
              "predictions": predictions.tolist(), "output": trace.output.tolist(),
              "saturations": trace.saturations, "warnings": [f.to_dict() for f in findings]}
    if as_json:
        emit(result)
    else:
        out = Console()
        out.print(f"{graph_path} on {backend}: {len(x)} sample(s), T={steps} "
                  f"({trace.hardware_steps} hardware steps with the latency of {trace.latency})")
        if y is not None:
            out.print(f"accuracy {result['accuracy']:.2f} % ({correct} of {len(x)})")
        classes, counts = np.unique(predictions, return_counts=True)
        out.print("predicted classes (class: samples): " + ", ".join(f"{c}: {n}" for c, n in zip(classes, counts)))
        saturated = {k: v for k, v in trace.saturations.items() if v}
        out.print("saturations: " + (", ".join(f"{k} {v}" for k, v in saturated.items()) if saturated else "none"))
        if per_sample:
            _print_samples(out, predictions, trace.output, y)
        else:
            out.print("per-sample predictions: --per-sample (or --json)", style="dim")
    show_findings(findings)


def _print_samples(out: Console, predictions, output, labels) -> None:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    for col in ("sample", "prediction") + (() if labels is None else ("label",)) + ("readout",):
        table.add_column(col, justify="right" if col != "readout" else "left", overflow="fold")
    for i, (pred, row) in enumerate(zip(predictions, output)):
        label = () if labels is None else (str(labels[i]),)
        table.add_row(str(i), str(pred), *label, " ".join(map(str, row)))
    out.print(table)


@main.command("verify")
@click.argument("graph_path", type=click.Path(dir_okay=False))
@click.option("--input", "input_path", type=click.Path(dir_okay=False), help=INPUT_HELP)
@click.option("--data", help=f"instead of --input: {DATA_HELP}; checked batch by batch, shards under torchrun")
@click.option("--limit", type=click.IntRange(1), default=None, help="with --data: check only the first N samples")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True,
              help="with --data: samples per check")
@click.option("--steps", type=click.IntRange(1), required=True, help="evaluated time steps T")
@click.option("--backends", default="torch,brian2,lava", show_default=True,
              help=f"comma-separated: {BACKENDS_HELP}")
@click.option("--baseline", default="reference", show_default=True, help="the backend the others must match")
@click.option("--plot", type=click.Path(dir_okay=False),
              help="write the equivalence map (PNG); missing folders are created")
@click.option("--json", "as_json", is_flag=True, help="print the report and warnings as JSON")
def verify_cmd(graph_path, input_path, data, limit, batch_size, steps, backends, baseline, plot, as_json):
    """Check that backends agree bit for bit, layer by layer (exit 1 on any mismatch)."""
    from rich.progress import Progress

    import spikec
    from spikec.analysis.diagnostics import silent_layers
    from spikec.analysis.verify_view import plot_equivalence, print_verify

    if (input_path is None) == (data is None):
        raise click.UsageError("give exactly one of --input (samples) and --data (a labelled data set, e.g. "
                               "--data cifar10-subset --limit 4)")
    graph = _load_graph(graph_path)
    names = [b.strip() for b in backends.split(",") if b.strip()]
    if data is not None:
        _verify_dataset(graph, data, steps, names, baseline, limit, batch_size, as_json)
        return
    x, _ = samples(graph, input_path, None, None)
    out = console(as_json)
    with Progress(console=out, transient=True) as bar:
        task = bar.add_task("running backends", total=len(set(names) | {baseline}))
        report = spikec.verify(graph, x, steps, backends=names, baseline=baseline,
                               progress=lambda name: bar.advance(task))
    counts = {r.layer: r.spikes_baseline for r in report.rows if r.backend == report.backends[0]}
    findings = silent_layers(graph, counts, report.hardware_steps)
    if plot:
        make_parent(plot)
        plot_equivalence(report, plot)
    if as_json:
        emit({**report.to_dict(), "warnings": [f.to_dict() for f in findings]})
    else:
        print_verify(report, out)
    show_findings(findings)
    sys.exit(0 if report.equal else 1)


def _verify_dataset(graph, data, steps, names, baseline, limit, batch_size, as_json) -> None:
    from spikec.analysis.distributed import World
    from spikec.analysis.verify_dataset import verify_dataset

    report = verify_dataset(graph, data, steps, backends=names, baseline=baseline, batch_size=batch_size,
                            limit=limit, progress=not as_json)
    if World.from_env().rank == 0:
        if as_json:
            emit(report.to_dict())
        else:
            click.echo(str(report))
    sys.exit(0 if report.equal else 1)


@main.command("estimate")
@click.argument("graph_path", type=click.Path(dir_okay=False))
@click.option("--input", "input_path", type=click.Path(dir_okay=False), help=INPUT_HELP)
@click.option("--data", help=f"instead of --input: {DATA_HELP}")
@click.option("--limit", type=click.IntRange(1), help="use only the first N samples")
@click.option("--steps", type=click.IntRange(1), required=True, help="evaluated time steps T")
@click.option("--hardware", type=click.Choice(["loihi1", "loihi2"]), default="loihi2", show_default=True)
@click.option("--energy-model", type=click.Choice(["loihi1", "loihi2", "horowitz-fp32", "horowitz-int32",
                                                   "horowitz-int8"]),
              help="energy constant set [default: the hardware's own]")
@click.option("--backend", type=BACKEND, default="torch", show_default=True, help="the simulator to run on")
@click.option("--ann", help=f"{ANN_HELP}; its MACs are the baseline [default: counted from the graph]")
@click.option("--ann-weights", type=click.Path(dir_okay=False), help="state dict (.pt) for --ann's factory")
@click.option("--wide", is_flag=True, help="show every column of the per-layer table")
@click.option("--json", "as_json", is_flag=True, help="print the estimate and warnings as JSON")
def estimate_cmd(graph_path, input_path, data, limit, steps, hardware, energy_model, backend, ann, ann_weights, wide,
                 as_json):
    """Synaptic operations, energy and Loihi cores of a graph on given samples."""
    import spikec
    from spikec.analysis.diagnostics import silent_layers

    graph = _load_graph(graph_path)
    x, _ = samples(graph, input_path, data, limit)
    kwargs = {} if energy_model is None else {"energy_model": energy_model}
    est = spikec.estimate(graph, x, steps, hardware=hardware, backend=backend, model=load_ann(ann, ann_weights),
                          **kwargs)
    counts = {r.name: r.spikes for r in est.layers if r.kind == "if"}
    findings = silent_layers(graph, counts, est.hardware_steps)
    if as_json:
        emit({**est.to_dict(), "warnings": [f.to_dict() for f in findings]})
    else:
        from spikec.analysis.report import print_estimate

        print_estimate(est, console=Console(), wide=wide)
    show_findings(findings)


@main.command("export")
@click.argument("graph_path", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", required=True, type=click.Choice(list(EXPORTERS)),
              help="netx: lava-dl HDF5, nir: NIR graph (both: graphs compiled with --target loihi-stock); "
                   "lava / brian2: runnable script")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def export_cmd(graph_path, fmt, output, as_json):
    """Export a graph for another toolchain (netx HDF5, Lava or Brian2 script)."""
    import spikec

    graph = _load_graph(graph_path)
    spikec.export(graph, output, format=fmt)
    if as_json:
        emit({"output": output, "format": fmt})
    else:
        click.echo(f"wrote {output} ({fmt})")


@main.command("inspect")
@click.argument("graph_path", type=click.Path(dir_okay=False))
@click.option("--wide", is_flag=True, help="show every column of the report")
@click.option("--json", "as_json", is_flag=True)
def inspect_cmd(graph_path, wide, as_json):
    """Show a graph's compile report (layers, thresholds, scales, start steps) and its warnings."""
    from spikec.analysis.diagnostics import collapsed_thresholds
    from spikec.compiler.report import print_report, report

    graph = _load_graph(graph_path)
    findings = collapsed_thresholds(graph)
    if as_json:
        emit({"latency": graph.latency, "layers": report(graph), "meta": graph.meta,
              "warnings": [f.to_dict() for f in findings]})
    else:
        print_report(graph, console=Console(), wide=wide)
    show_findings(findings)


from spikec.cli_check import check_cmd  # noqa: E402  (commands defined in their own modules)
from spikec.cli_compile import compile_cmd  # noqa: E402
from spikec.cli_eval import eval_cmd  # noqa: E402

for _command in (compile_cmd, eval_cmd, check_cmd):
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
