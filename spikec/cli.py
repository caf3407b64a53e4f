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

import importlib
import json
import sys
import traceback
from pathlib import Path

import click
import numpy as np
from rich.console import Console

from spikec.errors import SpikecError
from spikec.jsonable import plain

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
REPORT_HINT = ("please report this at the project's issue tracker, rerun with --debug for the traceback")


def _one_line(text: str, limit: int = 1000) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
            click.echo(f"error: {type(err).__name__}: {_one_line(err)}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except Exception as err:
            if ctx.params.get("debug"):
                traceback.print_exc()
            click.echo(f"internal error: {type(err).__name__}: {_one_line(err, 300)}", err=True)
            click.echo(REPORT_HINT, err=True)
            sys.exit(EXIT_INTERNAL)


def _console(as_json: bool) -> Console:
    # With --json, stdout carries only JSON; human output goes to stderr.
    return Console(stderr=True) if as_json else Console()


def _emit(obj) -> None:
    click.echo(json.dumps(plain(obj), indent=2))


def _load_graph(path: str):
    from spikec import load

    return load(path)


def _load_inputs(path: str, graph=None) -> np.ndarray:
    """Samples from a .npy file (the array itself) or a .npz file (its array x); float samples
    are encoded with the graph's input scale."""
    from spikec.errors import FormatError

    p = Path(path)
    if not p.is_file():
        raise FormatError(f"{path}: no such file")
    try:
        data = np.load(p, allow_pickle=False)
        if isinstance(data, np.ndarray):
            x = data
        else:
            with data:
                if not data.files:
                    raise FormatError(f"{path}: empty .npz file (no arrays; expected the samples as x)")
                if "x" not in data.files:
                    raise FormatError(f"{path}: no array named 'x' (found {sorted(data.files)})")
                x = data["x"]
    except (ValueError, OSError, EOFError) as err:
        if isinstance(err, FormatError):
            raise
        raise FormatError(f"{path}: not a readable .npz or .npy file: {_one_line(err, 200)}") from err
    if x.ndim == 0 or x.size == 0:
        raise FormatError(f"{path}: holds no samples (array of shape {x.shape})")
    if x.dtype.kind not in "iuf":
        raise FormatError(f"{path}: samples must be numbers, got dtype {x.dtype}")
    if graph is not None and x.dtype.kind == "f":
        x = graph.encode(x)
    return x


def _make_parent(path: str) -> None:
    """Create the folder an output file goes into."""
    from spikec.errors import FormatError

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FormatError(f"cannot create the folder for {path}: {_one_line(err, 200)}") from err


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated ints like 1,28,28, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise click.BadParameter(f"dimensions must be positive, got {text!r}")
    return shape


@click.group(cls=SpikecGroup)
@click.version_option(package_name="spikec")
@click.option("--debug", is_flag=True, help="show the full traceback of an error")
def main(debug):
    """spikec: convert PyTorch CNNs to integer IF spiking networks and run them bit-exactly."""


@main.command("compile")
@click.option("--model", "model_spec", required=True, help="package.module:factory returning an nn.Module")
@click.option("--weights", type=click.Path(dir_okay=False), help="state dict (.pt), loaded with weights_only=True")
@click.option("--input-shape", required=True, help="one sample's shape, e.g. 1,28,28")
@click.option("--method", default="qcfs", show_default=True)
@click.option("--calibration", type=click.Path(dir_okay=False), help=".npy float array or .npz with float array x")
@click.option("--steps", type=int, default=None, help="time steps the graph is tuned for (FTBC)")
@click.option("--target", default="loihi", show_default=True)
@click.option("--input-scale", type=float, default=None,
              help="integer input units per float unit (default: from the calibration data's range)")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def compile_cmd(model_spec, weights, input_shape, method, calibration, steps, target, input_scale, output, as_json):
    """Compile a trained PyTorch model to an integer IF graph (HDF5)."""
    import torch

    import spikec
    from spikec.compiler.report import print_report, report

    model = _build_model(model_spec, weights)
    example = torch.zeros((1,) + _parse_shape(input_shape))
    calib = None
    if calibration:
        calib = torch.as_tensor(_load_inputs(calibration).astype(np.float32))
    options = {} if input_scale is None else {"input_scale": input_scale}
    graph = spikec.compile(model, example, method=method, calibration=calib, steps=steps, target=target,
                           **options)
    spikec.save(graph, output)
    if as_json:
        _emit({"output": output, "layers": report(graph), "latency": graph.latency})
    else:
        print_report(graph, console=_console(False))
        click.echo(f"wrote {output}")


def _build_model(spec: str, weights: str | None):
    import torch

    from spikec.errors import ConversionError, FormatError

    module_name, _, factory_name = spec.partition(":")
    if not factory_name:
        raise click.BadParameter(f"expected package.module:factory, got {spec!r}", param_hint="--model")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise click.BadParameter(f"cannot import {module_name!r}: {err}", param_hint="--model") from None
    if not hasattr(module, factory_name):
        raise click.BadParameter(f"{module_name} has no attribute {factory_name!r}", param_hint="--model")
    model = getattr(module, factory_name)()
    if weights:
        if not Path(weights).is_file():
            raise FormatError(f"{weights}: no such file")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several unrelated types for bad files
            raise FormatError(f"{weights}: not a loadable state dict: {err}") from None
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as err:
            raise ConversionError(f"{weights} does not fit {spec}: {err}") from None
    return model.eval()


@main.command("run")
@click.argument("graph_path", type=click.Path(dir_okay=False))
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help="samples: .npy array or .npz with array x")
@click.option("--steps", type=int, required=True)
@click.option("--backend", default="torch", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def run_cmd(graph_path, input_path, steps, backend, as_json):
    """Run a compiled graph on inputs (.npy array or .npz array x; floats are encoded with the graph's scale)."""
    import spikec

    graph = _load_graph(graph_path)
    x = _load_inputs(input_path, graph)
    trace = spikec.run(graph, x, steps, backend=backend)
    result = {"backend": backend, "steps": steps, "latency": trace.latency,
              "hardware_steps": trace.hardware_steps, "predictions": trace.predictions().tolist(),
              "output": trace.output.tolist(), "saturations": trace.saturations}
    if as_json:
        _emit(result)
        return
    from rich.table import Table

    table = Table(title=f"{graph_path} on {backend}: T={steps}, {trace.hardware_steps} hardware steps")
    table.add_column("sample")
    table.add_column("prediction")
    table.add_column("readout")
    for i, (pred, out) in enumerate(zip(result["predictions"], result["output"])):
        table.add_row(str(i), str(pred), " ".join(map(str, out)))
    Console().print(table)


@main.command("verify")
@click.argument("graph_path", type=click.Path(dir_okay=False))
@click.option("--input", "input_path", type=click.Path(dir_okay=False),
              help="samples: .npy array or .npz with array x")
@click.option("--data", help="instead of --input: a labelled data set (path, 'digits', 'mnist-subset'), "
              "checked batch by batch; shards under torchrun")
@click.option("--limit", type=int, default=None, help="with --data: check only the first N samples")
@click.option("--batch-size", type=int, default=16, show_default=True, help="with --data: samples per check")
@click.option("--steps", type=int, required=True)
@click.option("--backends", default="torch,brian2,lava", show_default=True)
@click.option("--baseline", default="reference", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False),
              help="write the equivalence map (PNG); missing folders are created")
@click.option("--json", "as_json", is_flag=True)
def verify_cmd(graph_path, input_path, data, limit, batch_size, steps, backends, baseline, plot, as_json):
    """Check that backends agree bit for bit, layer by layer (exit 1 on any mismatch)."""
    from rich.progress import Progress

    import spikec
    from spikec.analysis.verify_view import plot_equivalence, print_verify

    if (input_path is None) == (data is None):
        raise click.UsageError("give exactly one of --input (samples) and --data (a labelled data set)")
    graph = _load_graph(graph_path)
    names = [b.strip() for b in backends.split(",") if b.strip()]
    if data is not None:
        _verify_dataset(graph, data, steps, names, baseline, limit, batch_size, as_json)
        return
    x = _load_inputs(input_path, graph)
    console = _console(as_json)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("running backends", total=len(set(names) | {baseline}))
        report = spikec.verify(graph, x, steps, backends=names, baseline=baseline,
                               progress=lambda name: bar.advance(task))
    if plot:
        _make_parent(plot)
        plot_equivalence(report, plot)
    if as_json:
        _emit(report.to_dict())
    else:
        print_verify(report, console)
    sys.exit(0 if report.equal else 1)


def _verify_dataset(graph, data, steps, names, baseline, limit, batch_size, as_json) -> None:
    from spikec.analysis.distributed import World
    from spikec.analysis.verify_dataset import verify_dataset

    report = verify_dataset(graph, data, steps, backends=names, baseline=baseline, batch_size=batch_size,
                            limit=limit, progress=not as_json)
    if World.from_env().rank == 0:
        if as_json:
            _emit(report.to_dict())
        elif report.equal:
            click.echo(f"EQUAL: {', '.join(report.backends)} match {baseline} bit for bit on "
                       f"{report.samples} samples ({report.world_size} process(es)), T={steps}")
        else:
            d = report.first_divergence
            click.echo(f"MISMATCH: {d['backend']} differs from {baseline} first at data-set sample {d['sample']}, "
                       f"layer {d['layer']}, neuron {d['neuron']}, hardware step {d['step']}: {d['values']}")
    sys.exit(0 if report.equal else 1)


@main.command("estimate")
@click.argument("graph_path", type=click.Path(dir_okay=False))
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help="samples: .npy array or .npz with array x")
@click.option("--steps", type=int, required=True)
@click.option("--hardware", default="loihi2", show_default=True)
@click.option("--energy-model", default=None)
@click.option("--backend", default="torch", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def estimate_cmd(graph_path, input_path, steps, hardware, energy_model, backend, as_json):
    """Synaptic operations, energy and Loihi cores of a graph on given inputs."""
    import spikec

    graph = _load_graph(graph_path)
    x = _load_inputs(input_path, graph)
    kwargs = {} if energy_model is None else {"energy_model": energy_model}
    est = spikec.estimate(graph, x, steps, hardware=hardware, backend=backend, **kwargs)
    if as_json:
        click.echo(est.to_json())
    else:
        from spikec.analysis.report import print_estimate

        print_estimate(est, console=Console())


@main.command("export")
@click.argument("graph_path", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", required=True, help="netx, lava or brian2")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def export_cmd(graph_path, fmt, output, as_json):
    """Export a graph for another toolchain (netx HDF5, Lava or Brian2 script)."""
    import spikec

    graph = _load_graph(graph_path)
    spikec.export(graph, output, format=fmt)
    if as_json:
        _emit({"output": output, "format": fmt})
    else:
        click.echo(f"wrote {output} ({fmt})")


@main.command("inspect")
@click.argument("graph_path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def inspect_cmd(graph_path, as_json):
    """Show a graph's compile report (layers, thresholds, scales, start steps)."""
    from spikec.compiler.report import print_report, report

    graph = _load_graph(graph_path)
    if as_json:
        _emit({"latency": graph.latency, "layers": report(graph), "meta": graph.meta})
    else:
        print_report(graph, console=Console())


from spikec.cli_eval import eval_cmd  # noqa: E402  (registered here; defined in its own module)

main.add_command(eval_cmd)
main.add_command(__import__("spikec.cli_check", fromlist=["check_cmd"]).check_cmd)

if __name__ == "__main__":  # pragma: no cover
    main()
