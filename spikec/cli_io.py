"""What the `spikec` commands share: reading samples, data sets and models, printing warnings."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.markup import escape

from spikec.errors import ConversionError, FormatError, InputDataError
from spikec.jsonable import plain

DATA_HELP = ("a labelled data set: 'cifar10-subset' (the 1,000 CIFAR-10 test images shipped with spikec), "
             "'digits', 'mnist-subset', a labelled .npz (arrays x and y), or a CIFAR-10 archive / folder")


# Python spellings in error messages (left) and the flags that do the same on the command line (right)
CLI_FLAGS = (
    ("calibration=", "--calibration <data> (a .npz with array x, or cifar10-subset)"),
    ("input_scale=", "--input-scale S or --input-range LO,HI"),
    ("saturate=True", "--saturate"),
    ("target='loihi-stock'", "--target loihi-stock"),
    ("method='opi'", "--method opi (or robust, maxnorm) with --calibration"),
    ("ftbc=", "--ftbc"),
    ("srp_presim=", "--srp-tau N"),
    ("fewer steps", "a smaller --steps"),
    ("example_input", "--input-shape C,H,W (one sample's shape, without the batch)"),
    ('format="lava"', "spikec export --format lava"),
    ("replace_relu(", "--activation qcfs --levels L (for weights trained so)"),
)


def cli_hint(message: str) -> str:
    """'; on the command line: ...' naming the flags for the Python keywords a message suggests, or ''."""
    flags = list(dict.fromkeys(flag for python, flag in CLI_FLAGS if python in message))
    return f"; on the command line: {', '.join(flags)}" if flags else ""


def one_line(text, limit: int = 1000) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def console(as_json: bool = False) -> Console:
    """Human output: stdout, or stderr when stdout carries JSON."""
    return Console(stderr=True) if as_json else Console()


def emit(obj) -> None:
    click.echo(json.dumps(plain(obj), indent=2))


def show_findings(findings) -> None:
    """Warnings (spikec.analysis.diagnostics.Finding) to stderr, one line each, markup escaped."""
    err = Console(stderr=True)
    for f in findings:
        err.print(f"[yellow]warning[/] ({f.code}) {escape(str(f))}")


def make_parent(path: str) -> None:
    """Create the folder an output file goes into."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FormatError(f"cannot create the folder for {path}: {one_line(err, 200)}") from err


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated ints like 1,28,28, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise click.BadParameter(f"dimensions must be positive, got {text!r}")
    return shape


def load_array(path: str, name: str = "x") -> np.ndarray:
    """A numeric array from a .npy file (the array itself) or a .npz file (its array `name`)."""
    p = Path(path)
    if not p.is_file():
        raise FormatError(f"{path}: no such file")
    try:
        data = np.load(p, allow_pickle=False)
        if isinstance(data, np.ndarray):
            arr = data
        else:
            with data:
                if not data.files:
                    raise FormatError(f"{path}: empty .npz file (no arrays; expected the samples as {name})")
                if name not in data.files:
                    raise FormatError(f"{path}: no array named '{name}' (found {sorted(data.files)})")
                arr = data[name]
    except (ValueError, OSError, EOFError) as err:
        if isinstance(err, FormatError):
            raise
        raise FormatError(f"{path}: not a readable .npz or .npy file: {one_line(err, 200)}") from err
    if arr.ndim == 0 or arr.size == 0:
        raise FormatError(f"{path}: holds no samples (array of shape {arr.shape})")
    if arr.dtype.kind not in "iuf":
        raise FormatError(f"{path}: samples must be numbers, got dtype {arr.dtype}")
    return arr


def load_inputs(path: str, graph=None) -> np.ndarray:
    """Samples from .npy / .npz (array x); float samples are encoded with the graph's input scale."""
    x = load_array(path)
    if graph is not None and x.dtype.kind == "f":
        x = graph.encode(x)
    return x


def load_data(data: str, limit: int | None):
    """(float images, int labels) of a labelled data set (see DATA_HELP), the first `limit` only."""
    from spikec.datasets import load_labelled

    if limit is not None and limit < 1:
        raise click.BadParameter(f"must be a positive int, got {limit}", param_hint="--limit")
    x, y = load_labelled(data, "test")
    return (x, y) if limit is None else (x[:limit], y[:limit])


def samples(graph, input_path: str | None, data: str | None, limit: int | None, labels_path: str | None = None):
    """(integer inputs, labels or None) from --input [--labels] or --data [--limit]."""
    if (input_path is None) == (data is None):
        raise click.UsageError("give exactly one of --input (samples: .npz with array x, or .npy) and --data "
                               "(a labelled data set, e.g. --data cifar10-subset --limit 16)")
    if data is not None:
        if labels_path is not None:
            raise click.UsageError("--labels goes with --input; a --data set carries its own labels")
        x, y = load_data(data, limit)
        return graph.encode(x.numpy()), y.numpy()
    x = load_inputs(input_path, graph)
    y = None
    if labels_path is not None:
        y = load_array(labels_path, "y")
        if y.dtype.kind not in "iu" or y.ndim != 1 or len(y) != len(x):
            raise InputDataError(f"{labels_path}: labels must be {len(x)} integers (one per sample of "
                                 f"{input_path}), got dtype {y.dtype}, shape {y.shape}")
    if limit is not None:
        x, y = x[:limit], None if y is None else y[:limit]
    return x, y


def import_factory(spec: str):
    """The callable named by 'package.module:factory' (the current folder is importable)."""
    module_name, _, factory_name = spec.partition(":")
    if not factory_name:
        raise click.BadParameter(f"expected package.module:factory, got {spec!r}", param_hint="--model")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise click.BadParameter(f"cannot import {module_name!r}: {err} (run spikec from the folder that holds "
                                 "the module, or add its folder to PYTHONPATH)", param_hint="--model") from None
    if not hasattr(module, factory_name):
        raise click.BadParameter(f"{module_name} has no attribute {factory_name!r}", param_hint="--model")
    return getattr(module, factory_name)


def weights_hint(message: str) -> str:
    """What to do when a state dict does not fit a model, judged from load_state_dict's message."""
    if re.search(r'Unexpected key\(s\) in state_dict:[^\n]*\.lam"', message):
        return ("the weights come from a model with trainable clip activations (replace_relu): let the factory "
                "return replace_relu(model, kind='qcfs', levels=L), or pass --activation qcfs --levels L")
    if re.search(r'Missing key\(s\) in state_dict:[^\n]*\.lam"', message):
        return ("the weights come from a plain ReLU model: drop --activation (or the factory's replace_relu) and "
                "compile with a ReLU method and calibration data, e.g. --method opi --calibration cifar10-subset")
    return "check that --model builds the architecture the weights were trained with"


def build_model(spec: str, weights: str | None, activation: str | None = None, levels: int = 4):
    """The factory's model, wrapped with replace_relu(activation, levels) when asked, weights loaded."""
    import torch

    model = import_factory(spec)()
    if activation is not None:
        from spikec.quantize import replace_relu

        model = replace_relu(model, kind=activation, levels=levels if activation == "qcfs" else None)
    if weights:
        if not Path(weights).is_file():
            raise FormatError(f"{weights}: no such file")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several unrelated types for bad files
            raise FormatError(f"{weights}: not a loadable state dict: {one_line(err, 300)}") from None
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as err:
            raise ConversionError(f"{weights} does not fit {spec}: {one_line(err, 400)}; "
                                  f"{weights_hint(str(err))}") from None
    return model.eval()


ANN_HELP = ("the float model the graph was compiled from: a shipped name (e.g. cifar10_vgg_small_qcfs) or "
            "package.module:factory (with --ann-weights)")


def load_ann(spec: str | None, weights: str | None):
    """The float ANN named by --ann (a shipped pretrained name or a factory), or None."""
    if spec is None:
        if weights is not None:
            raise click.UsageError("--ann-weights goes with --ann package.module:factory")
        return None
    if ":" not in spec:
        from spikec.models import pretrained

        return pretrained(spec)
    return build_model(spec, weights)


OPTION_HELP = ("a backend option KEY=VALUE, repeatable (torch: device=cuda, chunk=N; brian2: target=cython); "
               "numbers are read as numbers")


INTERNAL_RUN_ARGS = ("graph", "inputs", "steps", "record", "record_v", "every_step", "count_spikes")


def backend_options(pairs: tuple[str, ...], backend: str) -> dict:
    """{key: value} from KEY=VALUE strings, checked against the named options of `backend`'s run();
    ints and floats are converted, anything else stays text."""
    import inspect

    from spikec.backends import get

    out: dict = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE such as device=cuda, got {pair!r}", param_hint="--option")
        value: object = text
        for kind in (int, float):
            try:
                value = kind(text)
                break
            except ValueError:
                continue
        out[key.strip()] = value
    if out:
        params = inspect.signature(get(backend).run).parameters
        known = [n for n, p in params.items() if n not in INTERNAL_RUN_ARGS and p.kind is not p.VAR_KEYWORD]
        unknown = sorted(set(out) - set(known))
        if unknown:
            raise click.BadParameter(f"backend {backend!r} has no option(s) {unknown}; its options: "
                                     f"{', '.join(known) or 'none'}", param_hint="--option")
    return out
