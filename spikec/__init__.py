"""spikec: convert PyTorch CNNs to integer IF spiking networks and run them on Lava, Brian2, PyTorch."""

from __future__ import annotations

from spikec.errors import (
    BackendError,
    ConversionError,
    FormatError,
    GraphError,
    InputDataError,
    OverflowRiskError,
    SpikecError,
    UnsupportedError,
)
from spikec.ir import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout, SumPool2d
from spikec.registry import Registry
from spikec.trace import Trace

__version__ = "0.1.0"


def compile(model, example_input, *, method: str = "qcfs", calibration=None, steps: int | None = None,  # noqa: A001
            target: str = "loihi", **options) -> Graph:
    """Convert a trained PyTorch CNN to an integer IF graph (see spikec.compiler.api.compile).

    method: "qcfs" | "opi" | "maxnorm" | "robust" (or a registered one); calibration: a batch of
    training inputs for ReLU thresholds; steps: the T to prove overflow-free for; target: "loihi"
    | "int32". Options: per_channel, percentile, saturate, input_bits, input_scale, ...
    """
    from spikec.compiler import compile as _compile

    return _compile(model, example_input, method=method, calibration=calibration, steps=steps,
                    target=target, **options)


def run(graph: Graph, inputs, steps: int, backend: str = "torch", record: bool = False,
        record_v: bool = False, **options) -> Trace:
    """Run `graph` on a batch of integer `inputs` for `steps` evaluated steps on `backend`.

    inputs: int array [B, *input shape] ("current" encoding) or [B, S, *input shape] (spikes).
    Returns a Trace: `output` [B, n_out] int64, `latency`, saturation counts and, with
    `record=True`, every IF layer's spikes per hardware step.
    """
    from spikec import backends

    return backends.run(graph, inputs, steps, backend=backend, record=record, record_v=record_v, **options)


def verify(graph: Graph, inputs, steps: int, backends=("torch", "brian2", "lava"),
           baseline: str = "reference", layers="all", progress=None):
    """Run `baseline` and each of `backends`; compare every IF layer's spikes and the readout exactly.

    Returns a VerifyReport: `.equal`, per-layer rows, `.first_divergence`, `.to_json()`.
    """
    from spikec.analysis.verify import verify as _verify

    return _verify(graph, inputs, steps, backends=backends, baseline=baseline, layers=layers,
                   progress=progress)


def estimate(graph: Graph, inputs, steps: int, hardware="loihi2", energy_model=None,
             backend: str = "torch", model=None, trace=None):
    """Synaptic operations, energy (low / central / high) and Loihi cores of running `graph`.

    Returns an Estimate: `.sops`, `.energy_j`, `.energy_band_j`, `.layers`, `.cores`, `.chips`,
    `.to_json()`; see docs/estimate.md for definitions, constant sets and sources.
    """
    from spikec.analysis.estimate import estimate as _estimate

    return _estimate(graph, inputs, steps, hardware=hardware, energy_model=energy_model,
                     backend=backend, model=model, trace=trace)


def evaluate(graph: Graph, data, steps: int, backend: str = "torch", **options):
    """Accuracy of `graph` on a labelled data set at every T = 1..steps, from one run to `steps`.

    data: (images, labels), an iterable of such batches (a DataLoader), or a path (CIFAR-10
    archive/folder/cifar-10-batches-py, labelled .npz). Options: model (the ANN, for its accuracy
    beside), batch_size, limit, split, checkpoint (resumable), progress. Runs sharded under
    torch.distributed (torchrun). Returns an Evaluation: `.accuracy(t)`, `.to_json()`, `.plot(path)`.
    """
    from spikec.analysis.evaluate import evaluate as _evaluate

    return _evaluate(graph, data, steps, backend=backend, **options)


def save(graph: Graph, path) -> None:
    """Write `graph` to `path` in spikec's versioned HDF5 format (atomically)."""
    from spikec.ir.hdf5 import save as _save

    _save(graph, path)


def load(path) -> Graph:
    """Read a graph written by `save` (or a NIR file: docs/nir.md); raises FormatError on malformed
    or unknown-version files."""
    from spikec.interop.nir_import import is_nir_file, load_nir
    from spikec.ir.hdf5 import load as _load

    if is_nir_file(path):
        return load_nir(path)

    return _load(path)


def __getattr__(name: str):  # spikec.prepare / spikec.check (need torch): imported on first use
    if name in ("prepare", "check"):
        return getattr(__import__(f"spikec.compiler.{name}", fromlist=[name]), name)
    raise AttributeError(f"module 'spikec' has no attribute {name!r}")


# format -> "module:function" writing `graph` to `path` (imported only when used)
EXPORTERS = Registry("export format", "formats", FormatError, {
    "brian2": "spikec.backends.brian2.export:export_brian2",
    "netx": "spikec.backends.netx.export:export_netx",
    "lava": "spikec.backends.lava.export:export_lava",
    "nir": "spikec.interop.nir_export:export_nir",
})


def export(graph: Graph, path, format: str, **options) -> None:  # noqa: A002
    """Write `graph` to `path` for another tool; `format` is one of the keys of `EXPORTERS`.

    "brian2": a runnable Brian2 script (`python path inputs.npy STEPS`) plus its parameters in
    `path` with suffix .npz.
    "netx": a lava-dl netx HDF5 file (sequential conv/dense graphs with zero-reset neurons only;
    UnsupportedError lists what else the graph uses). See docs/lava.md.
    "lava": a runnable Python module that builds the graph's Lava process network
    (`python path inputs.npy STEPS`); any graph. Options: steps=T (allow Lava's stock LIF where it
    is exact for runs of up to T steps), neurons="custom". See docs/lava.md.
    "nir": a NIR graph (package nir) that norse and SpikingJelly run bit-equal for stock-target
    graphs; UnsupportedError lists what NIR cannot express. See docs/nir.md.
    `options` are passed to the format's exporter.
    """
    import importlib

    module, function = EXPORTERS.entry(format).split(":")
    getattr(importlib.import_module(module), function)(graph, path, **options)


__all__ = ["Graph", "Input", "IF", "Readout", "Edge", "Dense", "Conv2d", "SumPool2d", "Flatten",
           "Trace", "compile", "prepare", "check", "run", "verify", "evaluate", "estimate", "save", "load",
           "export", "SpikecError",
           "GraphError",
           "InputDataError", "FormatError", "UnsupportedError", "ConversionError", "OverflowRiskError", "BackendError"]
