"""Brian2's cpp_standalone target: build once per network, then rerun the binary with new inputs.

A project is built (g++) into `<cache_dir>/<digest>/`, where the digest covers the spec, the
batch size, the step count, what is recorded and the Brian2 version. Next to the binary a
`spikec.json` manifest names, for every input array, the command-line argument Brian2's binary
accepts (`<group>.<variable>=<file>`, `<timedarray>.values=<file>`, Brian2's `run_args`) and, for
every probed array, the result file it writes. Later runs, in this process or another, only write
the input files, run `./main --results_dir <tmp>` and read the results: no Brian2 device state is
touched, so nothing leaks between calls. Builds happen in a temporary folder renamed into place,
so concurrent builds of the same network do not see half-written projects.

Build and run folders carry their owner's pid (`.<digest>.<pid>-*`, `<project>/run.<pid>-*`), so a
build or run killed by SIGKILL leaves folders that the next build or run removes. An error, Ctrl-C
or SIGTERM (see brian2_backend) kills the binaries still running before the folders are removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from spikec.backends import procguard
from spikec.backends.brian2 import model as brian2_model
from spikec.backends.brian2.plan import spec_digest
from spikec.errors import BackendError

MANIFEST = "spikec.json"
RUN_PREFIX = "run."   # + pid + "-": a run's input and result files, inside its project
_BUILD = re.compile(r"\.[0-9a-f]{32}\.(\d+)-\w+")   # a project being built, by process pid
CACHE_VERSION = 2   # 2: a -1 spike gives back theta (was theta_neg)
SYNAPSE_BUDGET = 2_000_000  # simulated synapses per binary run (see default_chunk)


def default_cache_dir() -> Path:
    env = os.environ.get("SPIKEC_CACHE_DIR")
    return Path(env) / "brian2" if env else Path.home() / ".cache" / "spikec" / "brian2"


def default_chunk(spec: dict, batch: int) -> int:
    """Samples per binary run: as many as keep the synapses of one run within SYNAPSE_BUDGET (a
    large batch as one run thrashes the CPU caches; smaller runs also go in parallel)."""
    per_sample = sum(edge["nnz"] for edge in spec["meta"]["edges"] if not edge["current"])
    return max(1, min(batch, SYNAPSE_BUDGET // max(per_sample, 1)))


def simulate_standalone(spec: dict, x: np.ndarray, steps: int, record: bool, record_v: bool,
                        cache_dir=None, chunk: int | None = None) -> dict:
    """Run the spec with cpp_standalone (building it first if it is not cached); `collect`'s dict.

    The batch runs in chunks of `chunk` samples (default `default_chunk`), the last one padded
    with zero inputs; one binary serves every chunk and up to os.cpu_count() chunks run at once.
    """
    import brian2

    batch = x.shape[0]
    chunk = default_chunk(spec, batch) if chunk is None else int(chunk)
    if chunk < 1:
        raise BackendError(f"chunk must be a positive number of samples, got {chunk}")
    n_chunks = -(-batch // chunk)
    padded = np.zeros((n_chunks * chunk,) + x.shape[1:], np.int64)
    padded[:batch] = x
    pieces = [brian2_model.input_values(spec, padded[c * chunk:(c + 1) * chunk], steps)
              for c in range(n_chunks)]
    digest = spec_digest(spec, chunk, int(steps), bool(record), bool(record_v), brian2.__version__,
                         CACHE_VERSION)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    remove_stale(root)
    project = root / digest[:32]
    if not (project / MANIFEST).exists():
        build_project(spec, chunk, steps, pieces[0], record, record_v, project)
    valid = [min(chunk, batch - c * chunk) for c in range(n_chunks)]
    with procguard.reaped_children() as kill_now, \
            ThreadPoolExecutor(max_workers=min(n_chunks, os.cpu_count() or 1)) as pool:
        futures = [pool.submit(run_project, project, spec, chunk, steps, pieces[c], valid[c])
                   for c in range(n_chunks)]
        try:
            results = [f.result() for f in futures]
        except BaseException:   # an error, Ctrl-C or SIGTERM: stop the other binaries before waiting
            for f in futures:
                f.cancel()
            kill_now()
            raise
    return _merge(results)


def remove_stale(root: Path) -> list[Path]:
    """Remove the build folders (`.<digest>.<pid>-*`) and run folders (`<project>/run.<pid>-*`) in the
    cache `root` whose process no longer runs (killed by SIGKILL); returns them."""
    removed = []
    try:
        entries = list(root.iterdir()) if root.is_dir() else []
    except OSError:
        return removed
    for entry in entries:
        build = _BUILD.fullmatch(entry.name)
        if build and not procguard.pid_alive(int(build.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        elif not build and entry.is_dir() and not entry.is_symlink():
            removed += procguard.remove_stale(RUN_PREFIX, entry)
    return removed


def _merge(results: list[dict]) -> dict:
    """Concatenate per-chunk results along the batch axis; add saturation counts."""
    if len(results) == 1:
        return results[0]
    first = results[0]
    merged = {"output": np.concatenate([r["output"] for r in results]),
              "saturations": {k: sum(r["saturations"][k] for r in results) for k in first["saturations"]}}
    for field in ("spikes", "voltages"):
        merged[field] = None if first[field] is None else {
            name: np.concatenate([r[field][name] for r in results], axis=1) for name in first[field]}
    return merged


def build_project(spec: dict, batch: int, steps: int, inputs: dict, record: bool, record_v: bool,
                  project: Path) -> None:
    """Generate and compile the C++ project for this network into `project`."""
    project.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{project.name}.{os.getpid()}-", dir=project.parent))
    try:
        with _standalone_device() as device:
            net, handles = brian2_model.build(spec, batch, inputs, record, record_v)
            net.run(brian2_model.hardware_steps(spec, steps) * brian2_model.DT)
            device.build(directory=str(tmp), compile=True, run=False, with_output=False)
            probes = {key: {"file": device.get_array_filename(var), "dtype": np.dtype(var.dtype).str}
                      for key, var in handles["probes"].items()}
            arguments = {key: _input_arg(obj, name) for key, (obj, name) in handles["inputs"].items()}
        manifest = {"probes": probes, "inputs": arguments}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        try:
            os.rename(tmp, project)
        except OSError:
            if not (project / MANIFEST).exists():  # not a concurrent build of the same project
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def run_project(project: Path, spec: dict, batch: int, steps: int, inputs: dict, valid: int) -> dict:
    """Run a built project on `inputs` (from `brian2_model.input_values`); keep `valid` samples."""
    manifest = json.loads((project / MANIFEST).read_text())
    with procguard.owned_folder(RUN_PREFIX, project) as tmp:
        args = []
        for key, value in inputs.items():
            entry = manifest["inputs"][key]
            arr = np.ascontiguousarray(value, dtype=np.dtype(entry["dtype"]))
            if arr.size != entry["size"]:
                raise BackendError(f"cpp_standalone input {key}: {arr.size} values, the project expects "
                                   f"{entry['size']}")
            path = os.path.join(tmp, f"{key}.dat")
            arr.tofile(path)
            args.append(f"{entry['arg']}={path}")
        done = subprocess.run(["./main", "--results_dir", tmp + os.sep, *args], cwd=project,
                              capture_output=True, text=True)
        if done.returncode != 0 or "Error" in done.stderr:
            raise BackendError(f"cpp_standalone binary in {project} failed ({done.returncode}): "
                               f"{(done.stderr or done.stdout)[-2000:]}")

        def get(key, *default):
            entry = manifest["probes"].get(key)
            if entry is None:
                return default[0]
            return np.fromfile(os.path.join(tmp, entry["file"]), dtype=np.dtype(entry["dtype"]))

        result = brian2_model.collect(spec, batch, steps, _reshaping(get, spec, batch), valid)
    return result


def _reshaping(get, spec: dict, batch: int):
    """Result files are flat; StateMonitor `v` is [steps, neurons]."""
    sizes = {layer["group"]: layer["n"] * batch for layer in spec["meta"]["layers"]}

    def wrapped(key, *default):
        value = get(key, *default)
        if key.endswith(".v") and value is not None:
            value = value.reshape(-1, sizes[key[:-2]])
        return value

    return wrapped


def _input_arg(obj, name) -> dict:
    if name is None:  # a TimedArray
        values = obj.values
        return {"arg": f"{obj.name}.values", "dtype": np.dtype(values.dtype).str, "size": int(values.size)}
    var = obj.variables[name]
    return {"arg": f"{obj.name}.{name}", "dtype": np.dtype(var.dtype).str, "size": int(var.size)}


@contextmanager
def _standalone_device():
    """Activate a fresh cpp_standalone device; afterwards reinit it and restore the previous device."""
    from brian2.devices.device import all_devices, get_device, reset_device, set_device

    if get_device() is all_devices["cpp_standalone"]:
        raise BackendError("Brian2's cpp_standalone device is already active in this process (set_device); "
                           "spikec would reset it. Build your own network after spikec's run, or use "
                           "set_device('runtime') first")
    set_device("cpp_standalone", build_on_run=False)
    device = get_device()
    try:
        device.reinit()
        device.activate(build_on_run=False)
        yield device
    finally:
        device.reinit()
        reset_device()
