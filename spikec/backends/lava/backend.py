"""Lava backend: runs an IR graph as a Lava process graph on Lava's bit-accurate CPU models.

`run(graph, inputs, steps, record=..., record_v=..., neurons="auto", batch_size=64)` plans the
network (spikec.backends.lava.plan), instantiates the Lava processes, runs them for the graph's
hardware steps with `Loihi2SimCfg(select_tag="fixed_pt")` and returns the same Trace as the reference
interpreter. A batch is laid side by side in one network (at most `batch_size` samples per Lava run).

Reading data back never goes through `Var.get` (about 30 us per element): spikec's own processes
(SpikecIF, SpikecReadout, SpikeRecorder) write spikes, voltages, saturation counts and the readout
into memory-mapped .npy files created here in a temporary directory.

A run that is interrupted (an exception, Ctrl-C, SIGTERM) stops every process it started and
removes its folder before the error propagates (see `run_plan` and spikec.backends.procguard).
"""

from __future__ import annotations

import importlib
import os
import time

import numpy as np
from tqdm import tqdm

from spikec.backends import procguard
from spikec.backends.lava import compat as lava_compat
from spikec.backends.lava.plan import LavaPlan, build_plan, check_plan_memory
from spikec.errors import BackendError
from spikec.ir.graph import Graph
from spikec.trace import Trace

NAME = "lava"
TEMP_PREFIX = "spikec-lava-"   # + owner pid + "-": a SIGKILLed run's folder is removed by the next run

# plan kind -> (module, class); the exporter writes the same imports
CLASSES = {
    "source": ("lava.proc.io.source", "RingBuffer"),
    "sparse": ("lava.proc.sparse.process", "Sparse"),
    "delay_sparse": ("lava.proc.sparse.process", "DelaySparse"),
    "lif": ("lava.proc.lif.process", "LIF"),
    "sigma_delta": ("lava.proc.sdn.process", "SigmaDelta"),
    "if": ("spikec.backends.lava.procs.if_neuron", "SpikecIF"),
    "readout": ("spikec.backends.lava.procs.readout", "SpikecReadout"),
    "recorder": ("spikec.backends.lava.procs.recorder", "SpikeRecorder"),
}

_UNAVAILABLE: list[str] = []


def is_available() -> bool:
    return not why_unavailable()


def why_unavailable() -> str:
    """'' when lava-nc can be imported (with spikec's Python 3.11 shim), else the reason."""
    if not _UNAVAILABLE:
        try:
            lava_compat.install()
            importlib.import_module("lava.magma.core.run_configs")
            importlib.import_module("lava.proc.sparse.process")
            _UNAVAILABLE.append("")
        except Exception as err:  # any import failure means: no lava here
            _UNAVAILABLE.append(f"lava-nc cannot be imported: {type(err).__name__}: {err}")
    return _UNAVAILABLE[0]


def _require() -> None:
    reason = why_unavailable()
    if reason:
        raise BackendError(reason)


def lava_class(kind: str):
    module, name = CLASSES[kind]
    return getattr(importlib.import_module(module), name)


SPIKEC_KINDS = ("if", "readout", "recorder")   # spikec's own processes (they take error_path)


def make_records(plan: LavaPlan, folder: str) -> dict[str, dict[str, str]]:
    """Create every record file of `plan` (zeros) in `folder`; {proc: {argument: path}}.

    spikec's own processes also get an `error_path` (see lava_procs.files.ErrorLog)."""
    paths: dict[str, dict[str, str]] = {}
    for spec in plan.procs:
        for arg, (shape, dtype) in spec.records.items():
            path = os.path.join(folder, f"{spec.name}.{arg}.npy")
            np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape).flush()
            paths.setdefault(spec.name, {})[arg] = path
        if spec.kind in SPIKEC_KINDS:
            paths.setdefault(spec.name, {})["error_path"] = os.path.join(folder, f"{spec.name}.error.txt")
    return paths


def check_errors(paths: dict[str, dict[str, str]]) -> None:
    """Raise BackendError with the first traceback a spikec process left behind."""
    for proc, files in paths.items():
        path = files.get("error_path")
        if path and os.path.exists(path):
            with open(path) as fh:
                text = fh.read()
            raise BackendError(f"Lava process {proc} failed during the run:\n{text}")


def instantiate(plan: LavaPlan, paths: dict[str, dict[str, str]]) -> dict:
    """Create and connect the Lava processes of `plan`; returns {name: process}."""
    _require()
    from lava.proc.sdn.models import ActivationMode
    from lava.utils.weightutils import SignMode

    procs = {}
    for spec in plan.procs:
        args = dict(spec.args)
        if "sign_mode" in args:
            args["sign_mode"] = SignMode[args["sign_mode"]]
        if "act_mode" in args:
            args["act_mode"] = ActivationMode[args["act_mode"]]
        args.update(paths.get(spec.name, {}))
        procs[spec.name] = lava_class(spec.kind)(**args)
    for link in plan.links:
        getattr(procs[link.src], link.src_port).connect(getattr(procs[link.dst], link.dst_port))
    return procs


def run_plan(plan: LavaPlan, paths: dict[str, dict[str, str]], timings: dict | None = None) -> None:
    """Build, compile and run the processes of `plan` for its hardware steps, then stop them.

    `timings` (optional) gets seconds added under "build" (creating the processes), "run" (Lava's
    compile + all steps) and "stop".
    """
    clock = _Clock(timings)
    procs = instantiate(plan, paths)
    clock.lap("build")
    run_processes(procs[plan.procs[0].name], plan.hardware_steps, clock)


def run_processes(anchor, hardware_steps: int, clock: _Clock | None = None, before_stop=None):
    """Run the connected Lava processes of `anchor` for `hardware_steps` (fixed_pt), then stop them;
    returns what `before_stop()` (called after the run, while the processes still hold their state)
    returns.

    However the run ends (an error, KeyboardInterrupt, SIGTERM under `procguard.sigterm_raises`),
    no process it started is left running: an unfinished run is aborted (`_abort`) and any other
    new child process is killed. Lava's workers also die with this process if it is SIGKILLed.
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    clock = clock or _Clock(None)
    with procguard.reaped_children(), procguard.die_with_parent():
        try:
            anchor.run(condition=RunSteps(num_steps=hardware_steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        except BaseException as err:
            _abort(anchor)
            if isinstance(err, Exception):
                raise BackendError(f"Lava failed while running the graph: {type(err).__name__}: {err}") from err
            raise
        clock.lap("run")
        try:
            result = before_stop() if before_stop else None
        except BaseException:
            _abort(anchor)
            raise
        try:
            anchor.stop()
        except Exception:  # a runtime that never started has nothing to stop
            pass
        clock.lap("stop")
    return result


def _abort(anchor) -> None:
    """End an unfinished Lava run: kill its worker processes, shut its shared-memory manager down
    (which unlinks the segments) and mark the runtime stopped, so that Lava's own cleanup
    (`Process.__del__` -> `stop`) does not wait for answers from workers that are gone."""
    runtime = getattr(anchor, "runtime", None)
    if runtime is None:
        return
    runtime._is_started = runtime._is_running = False
    infra = getattr(runtime, "_messaging_infrastructure", None)
    for actor in getattr(infra, "actors", None) or []:
        try:
            if actor.is_alive():
                actor.kill()
            actor.join()
        except (OSError, ValueError, AssertionError):   # already closed, or not ours
            continue
    smm = getattr(infra, "smm", None)
    if smm is not None:
        try:
            smm.shutdown()
        except Exception:  # a manager that died with the run has nothing left to shut down
            pass


class _Clock:
    """Adds the seconds since the previous lap to timings[name] (no-op without a dict)."""

    def __init__(self, timings: dict | None):
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = self.timings.get(name, 0.0) + now - self.last
        self.last = now

    def skip(self) -> None:
        self.last = time.perf_counter()


def _load(path: str) -> np.ndarray:
    return np.array(np.load(path))


def run(graph: Graph, inputs, steps: int, record: bool = False, record_v: bool = False, *,
        neurons: str = "auto", batch_size: int = 64, timings: dict | None = None) -> Trace:
    """Run `graph` in Lava (fixed_pt) and return the reference interpreter's Trace, bit for bit.

    neurons: "auto" uses Lava's stock LIF for layers it reproduces exactly and spikec's SpikecIF
    elsewhere; "custom" uses SpikecIF everywhere; "stock" forces stock LIF wherever the layer's
    features allow, skipping the no-saturation proof (see lava_plan.build_plan).
    batch_size: samples laid side by side in one Lava run.
    timings: a dict that gets seconds per phase added: plan, build, run (Lava compile + steps),
    stop, readback.
    """
    _require()
    graph.validate()
    x = graph.check_inputs(inputs, steps)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise BackendError(f"batch_size must be a positive int, got {batch_size!r}")
    starts = range(0, x.shape[0], batch_size)
    bar = tqdm(starts, desc="lava", unit="batch", disable=len(starts) < 2, leave=False)
    with procguard.sigterm_raises():
        parts = [_run_chunk(graph, x[i:i + batch_size], steps, record, record_v, neurons, timings) for i in bar]
    return _merge(parts, graph, steps)


def _run_chunk(graph: Graph, x: np.ndarray, steps: int, record: bool, record_v: bool,
               neurons: str, timings: dict | None) -> Trace:
    clock = _Clock(timings)
    check_plan_memory(graph, x.shape[0])
    plan = build_plan(graph, x, steps, record=record, record_v=record_v, neurons=neurons)
    batch, hw = x.shape[0], plan.hardware_steps
    with procguard.owned_folder(TEMP_PREFIX) as folder:
        paths = make_records(plan, folder)
        clock.lap("plan")
        with procguard.multiprocessing_tempdir(folder):
            run_plan(plan, paths, timings)
        check_errors(paths)
        clock.skip()   # run_plan timed its own phases
        readout = graph.readout
        out_paths = paths[plan.layers[readout.name].proc]
        output = _load(out_paths["acc_path"]).reshape((batch,) + readout.shape)
        saturations = {readout.name: int(_load(out_paths["sat_path"])[0])}
        spikes = {} if record else None
        voltages = {} if record_v else None
        for layer in graph.neuron_layers:
            lp = plan.layers[layer.name]
            shape = (hw, batch) + layer.shape
            if lp.model == "sigma_delta":
                saturations[layer.name] = 0   # stock SigmaDelta cannot saturate; exact where the reference counts none
                if record:
                    spikes[layer.name] = _load(paths[lp.recorder]["path"]).reshape(shape)
                continue
            if lp.model == "lif":
                saturations[layer.name] = 0   # proven impossible by lava_plan.stock_lif_reason
                if record:
                    spikes[layer.name] = _load(paths[lp.recorder]["path"]).astype(np.int8).reshape(shape)
                continue
            files = paths[lp.proc]
            saturations[layer.name] = int(_load(files["sat_path"])[0])
            if record:
                spikes[layer.name] = _load(files["spikes_path"]).reshape(shape)
            if record_v:
                voltages[layer.name] = _load(files["v_path"]).reshape(shape)
    saturations = {p.name: saturations[p.name] for p in graph.populations if p.name in saturations}
    clock.lap("readback")
    return Trace(output=output, steps=steps, latency=graph.latency, spikes=spikes,
                 saturations=saturations, voltages=voltages, backend=NAME)


def _merge(parts: list[Trace], graph: Graph, steps: int) -> Trace:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]

    def cat(field):
        if getattr(first, field) is None:
            return None
        return {k: np.concatenate([getattr(p, field)[k] for p in parts], axis=1)
                for k in getattr(first, field)}

    saturations = {k: sum(p.saturations[k] for p in parts) for k in first.saturations}
    return Trace(output=np.concatenate([p.output for p in parts]), steps=steps, latency=graph.latency,
                 spikes=cat("spikes"), saturations=saturations, voltages=cat("voltages"), backend=NAME)
