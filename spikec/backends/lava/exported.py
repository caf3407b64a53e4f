"""The runtime every exported Lava module imports (spikec.export(graph, path, format="lava")).

A generated module holds only its network: an `Exported` record (input, layers, shapes, latency,
the SHA-256 of its parameter file) and a `build` function with one line per Lava process and per
connection. Everything else is ordinary code here, linted and tested like the rest of spikec:
loading and checking the parameters, laying a batch's samples side by side, the record files, the
run with clean kills, reading the results back and the command line. Importing this module
installs the lava-nc 0.10 / Python 3.11 shim before any lava import.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from spikec.backends.lava import compat as lava_compat
from spikec.errors import FormatError, SpikecError
from spikec.ir.nodes import Input
from spikec.ir.validate import check_steps, input_array

lava_compat.install()   # in-memory fix of one lava-nc module, before any lava import

from lava.proc.io.source import RingBuffer  # noqa: E402
from lava.proc.lif.process import LIF  # noqa: E402
from lava.proc.sdn.models import ActivationMode  # noqa: E402
from lava.proc.sdn.process import SigmaDelta  # noqa: E402
from lava.proc.sparse.process import DelaySparse, Sparse  # noqa: E402
from lava.utils.weightutils import SignMode  # noqa: E402

from spikec.backends import procguard  # noqa: E402
from spikec.backends.lava.backend import TEMP_PREFIX, run_processes  # noqa: E402
from spikec.backends.lava.procs.if_neuron import SpikecIF  # noqa: E402
from spikec.backends.lava.procs.readout import SpikecReadout  # noqa: E402
from spikec.backends.lava.procs.recorder import SpikeRecorder  # noqa: E402

__all__ = ["Exported", "RingBuffer", "LIF", "SigmaDelta", "ActivationMode", "Sparse", "DelaySparse", "SignMode",
           "SpikecIF", "SpikecReadout",
           "SpikeRecorder", "blocks", "record", "error_path", "source_data", "run_network", "main"]


@dataclass(frozen=True)
class Exported:
    """What a generated module knows about its network."""

    module_file: str            # the generated module (its parameters sit beside it as .npz)
    input: Input
    latency: int                # hardware steps = evaluated steps + latency
    max_steps: int | None       # stock LIF layers are proven exact up to this many steps (None: any)
    layers: dict                # IR population -> (process, model, recorder)
    shapes: dict                # IR population -> per-sample shape
    readout: str
    params_sha256: str          # of the .npz written with the module

    def params(self) -> dict[str, np.ndarray]:
        """The parameter arrays, after checking they belong to this module."""
        path = os.path.splitext(os.path.abspath(self.module_file))[0] + ".npz"
        with open(path, "rb") as fh:
            data = fh.read()
        if hashlib.sha256(data).hexdigest() != self.params_sha256:
            raise FormatError(f"{path} does not belong to this module (SHA-256 mismatch): it was changed, or "
                              "an export was interrupted between its two files; export the graph again")
        with np.load(io.BytesIO(data)) as f:
            return {k: f[k] for k in f.files}

    def checked(self, inputs, steps) -> tuple[np.ndarray, int]:
        steps, inputs = check_steps(steps), input_array(self.input, inputs)
        if self.max_steps is not None and steps > self.max_steps:
            raise ValueError(f"exported for runs of up to {self.max_steps} steps, got {steps}")
        return inputs, steps


def blocks(params: dict, ref: str, batch: int) -> sp.csr_matrix:
    """The sparse weight matrix `ref` for one sample, block-diagonal over the batch."""
    parts = (params[ref + ".data"], params[ref + ".indices"], params[ref + ".indptr"])
    m = sp.csr_matrix(parts, shape=tuple(params[ref + ".shape"]))
    return m if batch == 1 else sp.block_diag([m] * batch, format="csr", dtype=np.int64)


def record(folder: str, name: str, shape: tuple, dtype: str) -> str:
    """A zeroed memory-mapped .npy file a process writes its record into; returns its path."""
    path = os.path.join(folder, name + ".npy")
    np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape).flush()
    return path


def error_path(folder: str, proc: str) -> str:
    """Where spikec's processes write a failure instead of hanging the run."""
    return os.path.join(folder, proc + ".error.txt")


def source_data(net: Exported, inputs: np.ndarray, hw: int) -> np.ndarray:
    """The RingBuffer's data: one current per neuron, a delta input at step 1 only, or the spike
    trains padded to `hw` steps."""
    batch = inputs.shape[0]
    if net.input.encoding == "current":
        return inputs.reshape(-1, 1).astype(np.int32)
    if net.input.encoding == "delta":
        data = np.zeros((inputs.size, hw + 1), np.int32)
        data[:, 0] = inputs.reshape(-1)
        return data
    n = int(np.prod(inputs.shape[2:]))
    train = inputs.reshape(batch, inputs.shape[1], n)[:, :hw]
    data = np.zeros((batch * n, hw), np.int32)
    data[:, :train.shape[1]] = train.transpose(0, 2, 1).reshape(batch * n, -1)
    return data


def _load(folder: str, proc: str, key: str) -> np.ndarray:
    return np.array(np.load(os.path.join(folder, f"{proc}.{key}.npy")))


def run_network(net: Exported, build, inputs, steps) -> dict:
    """Run the module's network; {"output": [B, n_out], "spikes": {layer: [hw, B, ...]}, "saturations"}.

    SIGTERM, Ctrl-C or an error stop every Lava worker and remove the run's folder (as spikec's Lava
    backend does); a SIGKILLed run's folder is removed by the next run."""
    inputs, steps = net.checked(inputs, steps)
    batch, hw = inputs.shape[0], steps + net.latency
    with procguard.sigterm_raises(), procguard.owned_folder(TEMP_PREFIX) as folder, \
            procguard.multiprocessing_tempdir(folder):
        procs = build(inputs, steps, folder)
        run_processes(next(iter(procs.values())), hw)   # Loihi2SimCfg(select_tag="fixed_pt")
        for name in sorted(os.listdir(folder)):
            if name.endswith(".error.txt"):
                with open(os.path.join(folder, name)) as fh:
                    raise RuntimeError(f"{name[:-10]} failed during the run:\n{fh.read()}")
        out_proc = net.layers[net.readout][0]
        result = {"output": _load(folder, out_proc, "acc_path").reshape(batch, -1), "spikes": {},
                  "saturations": {net.readout: int(_load(folder, out_proc, "sat_path")[0])}}
        for name, (proc, model, recorder) in net.layers.items():
            if model in ("lif", "sigma_delta"):   # stock neurons: no saturation count to read
                spikes, result["saturations"][name] = _load(folder, recorder, "path"), 0
            elif model == "if":
                spikes = _load(folder, proc, "spikes_path")
                result["saturations"][name] = int(_load(folder, proc, "sat_path")[0])
            else:
                continue
            dtype = np.int64 if model == "sigma_delta" else np.int8   # graded messages or spikes
            result["spikes"][name] = spikes.astype(dtype).reshape((hw, batch) + tuple(net.shapes[name]))
    return result


def main(net: Exported, build, usage: str, argv: list[str] | None = None) -> None:
    """`python net.py inputs.npy STEPS [--out result.npz]`: prints each sample's class and readout."""
    argv = sys.argv if argv is None else argv
    if len(argv) < 3:
        sys.exit(usage)
    try:
        result = run_network(net, build, np.load(argv[1]), int(argv[2]))
    except SpikecError as err:   # bad inputs or parameters: one line, exit status 2
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(2)
    if "--out" in argv:
        np.savez(argv[argv.index("--out") + 1], output=result["output"],
                 **{"spikes_" + k: v for k, v in result["spikes"].items()})
    for b, row in enumerate(result["output"]):
        print(b, int(np.argmax(row)), " ".join(map(str, row)))
