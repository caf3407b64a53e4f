"""Load and run a netx HDF5 file with Intel's loader (lava.lib.dl.netx.hdf5.Network).

`load_network(path)` is `Network(net_config=path)` plus the two things a file spikec wrote may need
and lava-dl 0.6 cannot read from a file: the input's message bits (graded "current" input) and
the initial potentials that make biases exact from each layer's start step (see netx_export).

Used by the round-trip tests (a file spikec exported must give the reference's spikes) and by the
Lava benchmark (spikec's own Lava graph against the same network loaded through netx). Spikes are
read with spikec's SpikeRecorder (memory-mapped files, not Var.get); the readout integrator's v is
one Var.get of n_out values. One Lava run per sample (netx networks have a fixed input shape).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from spikec.backends import procguard
from spikec.backends.lava import compat as lava_compat
from spikec.backends.lava.backend import run_processes


@dataclass
class NetxRun:
    output: np.ndarray                          # int64 [B, n_out]: readout integrator v / 64
    spikes: dict[str, np.ndarray]               # IR layer name -> int8 [hardware_steps, B, *shape]
    timings: dict[str, float] = field(default_factory=dict)   # seconds: build, run, readback (summed)


def _meta(path):
    import h5py

    with h5py.File(path, "r") as f:
        meta = f["spikec"]
        names = meta["populations"][0].decode().split(",")
        initial = {name: v[()] for name, v in meta["initial_v"].items()} if "initial_v" in meta else {}
        return names, meta["input_encoding"][0].decode(), int(meta["input_message_bits"][()]), initial


def _netx_order(a: np.ndarray) -> np.ndarray:
    """(C, H, W) -> netx's (W, H, C); 1-D unchanged."""
    return a.transpose(2, 1, 0) if a.ndim == 3 else a


def load_network(path, **kwargs):
    """`lava.lib.dl.netx.hdf5.Network(net_config=path, input_message_bits=<from the file>, **kwargs)` with
    each neuron's v starting at the initial potential spikec stored (v_init - (start - 1) * bias)."""
    lava_compat.install()
    from lava.lib.dl.netx.hdf5 import Network

    names, _, message_bits, initial = _meta(path)
    kwargs.setdefault("input_message_bits", message_bits)
    net = Network(net_config=os.fspath(path), **kwargs)
    for name, layer in zip(names[1:], net.layers):
        if name in initial:
            layer.neuron.v.init = (_netx_order(initial[name]) * 64).astype(np.int32)
    return net


def _source_data(x: np.ndarray, encoding: str, shape, hardware_steps: int) -> np.ndarray:
    """One sample (C,H,W)/(N,) or its spike train [S, ...] -> RingBuffer data in netx's WHC order."""
    to_netx = (lambda a: a.transpose(2, 1, 0)) if len(shape) == 3 else (lambda a: a.reshape(shape))
    if encoding == "current":
        return to_netx(x)[..., None].astype(np.int32)
    data = np.zeros(tuple(shape) + (hardware_steps,), np.int32)
    for t, frame in enumerate(x[:hardware_steps]):
        data[..., t] = to_netx(frame)
    return data


def run_netx(path, inputs, hardware_steps: int, record: bool = True, plain: bool = False) -> NetxRun:
    """Run the netx file at `path` on each sample of `inputs` for `hardware_steps` steps.

    plain: load with `netx.hdf5.Network(net_config=path)` alone, as a user of Intel's loader would
    (exact only for graphs with spike input and no bias or v_init); default `load_network(path)`.
    """
    lava_compat.install()
    from lava.proc.io.source import RingBuffer

    from spikec.backends.lava.procs.recorder import SpikeRecorder

    names, encoding, _, _ = _meta(path)
    inputs = np.asarray(inputs)
    outputs, spikes = [], {name: [] for name in names[1:-1]}
    timings = {"build": 0.0, "run": 0.0, "readback": 0.0}
    # SIGTERM, Ctrl-C or an error stop every Lava worker and remove the folder (see lava_backend)
    with procguard.sigterm_raises(), procguard.owned_folder("spikec-netx-") as folder, \
            procguard.multiprocessing_tempdir(folder):
        for b, x in enumerate(inputs):
            t0 = time.perf_counter()
            if plain:
                from lava.lib.dl.netx.hdf5 import Network

                net = Network(net_config=os.fspath(path))
            else:
                net = load_network(path)
            source = RingBuffer(data=_source_data(x, encoding, net.inp.shape, hardware_steps))
            source.s_out.connect(net.inp)
            files = {}
            if record:
                for name, layer in zip(names[1:-1], net.layers[:-1]):
                    files[name] = os.path.join(folder, f"{b}.{name}.npy")
                    np.lib.format.open_memmap(files[name], mode="w+", dtype=np.int32,
                                              shape=(hardware_steps,) + tuple(layer.out.shape)).flush()
                    layer.out.connect(SpikeRecorder(shape=layer.out.shape, path=files[name]).a_in)
            t1 = time.perf_counter()
            v = run_processes(net, hardware_steps, before_stop=net.layers[-1].neuron.v.get)
            t2 = time.perf_counter()
            outputs.append(np.rint(v).astype(np.int64) // 64)
            for name, file in files.items():
                arr = np.load(file).astype(np.int8)
                spikes[name].append(arr.transpose(0, 3, 2, 1) if arr.ndim == 4 else arr)
            t3 = time.perf_counter()
            timings["build"] += t1 - t0
            timings["run"] += t2 - t1
            timings["readback"] += t3 - t2
    stacked = {name: np.stack(v, axis=1) for name, v in spikes.items() if v}
    return NetxRun(np.stack(outputs), stacked, timings)
