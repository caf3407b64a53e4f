"""Brian2 backend: integer IF graphs as Brian2 NeuronGroups and Synapses, bit-exact.

    spikec.run(graph, x, steps, backend="brian2", target="numpy" | "cython" | "cpp_standalone")

Targets (Brian2's code generation): "numpy" (default, no compiler), "cython" (compiled once per
distinct generated code, cached by Brian2 in ~/.cython/brian_extensions), "cpp_standalone"
(built once per graph, batch size and step count into a cache folder keyed by a hash of the
network, then rerun with new inputs without rebuilding; option `cache_dir`, default
$SPIKEC_CACHE_DIR or ~/.cache/spikec/brian2). See docs/brian2.md.
"""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager

from spikec.backends import procguard
from spikec.errors import BackendError
from spikec.trace import Trace

NAME = "brian2"
TARGETS = ("numpy", "cython", "cpp_standalone")
DEFAULT_TARGET = "numpy"


def is_available() -> bool:
    return importlib.util.find_spec("brian2") is not None


def why_unavailable() -> str:
    return "" if is_available() else "brian2 is not installed (pip install 'spikec[brian2]')"


def run(graph, inputs, steps, record=False, record_v=False, target: str = DEFAULT_TARGET,
        cache_dir=None, chunk: int | None = None) -> Trace:
    """Run `graph` on a batch of integer inputs; the same Trace as the reference, bit for bit.

    target: "numpy", "cython" or "cpp_standalone". cpp_standalone only: `cache_dir` (where built
    projects live) and `chunk` (samples per binary run; default: by synapse count).
    """
    from spikec.backends.brian2.plan import c_target_limits, make_spec

    if target not in TARGETS:
        raise BackendError(f"brian2 target must be one of {TARGETS}, got {target!r}")
    if (cache_dir is not None or chunk is not None) and target != "cpp_standalone":
        raise BackendError("cache_dir and chunk apply to the cpp_standalone target only")
    x = graph.check_inputs(inputs, steps)
    spec = make_spec(graph)
    if target != "numpy":
        c_target_limits(spec)
    try:
        # SIGTERM or Ctrl-C stop the compiler and binary processes the run started, and remove its folders
        with procguard.sigterm_raises(), procguard.reaped_children():
            if target == "cpp_standalone":
                from spikec.backends.brian2.standalone import simulate_standalone

                result = simulate_standalone(spec, x, steps, record, record_v, cache_dir, chunk)
            else:
                from spikec.backends.brian2 import model as brian2_model

                with runtime_device():
                    result = brian2_model.simulate(spec, x, steps, record, record_v, target)
    except Exception as err:
        if isinstance(err, BackendError):
            raise
        raise BackendError(f"brian2 ({target}) failed on this graph: {type(err).__name__}: {err}") from err
    return Trace(output=result["output"], steps=int(steps), latency=graph.latency,
                 spikes=(result["spikes"] or {}) if record else None, saturations=result["saturations"],
                 voltages=(result["voltages"] or {}) if record_v else None, backend=f"{NAME}:{target}")


@contextmanager
def runtime_device():
    """Make Brian2's runtime device active for the block and restore whatever was active before."""
    from brian2.devices.device import get_device, reset_device, set_device
    from brian2.devices.device import runtime_device as runtime

    if get_device() is runtime:
        yield
        return
    set_device(runtime)
    try:
        yield
    finally:
        reset_device()
