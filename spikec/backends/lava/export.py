"""`spikec.export(graph, path, format="lava")`: the graph's Lava process network as a Python module.

Writes `path` (a readable, runnable module: one line per Lava process and per connection, exactly
the network spikec's Lava backend runs) and `path.with_suffix(".npz")` (weights and parameters for
one sample; the module tiles them over the batch). Any graph can be exported. The pair is written
with `spikec.fileio.atomic_files` (parameters first; an error restores the previous pair) and the
module holds the SHA-256 of its parameters, which it checks before use: an export killed between
the two renames, or a module run with another export's .npz, is an error, never a mixed network.
The module takes integer inputs only (spikec.ir.validate.input_array): floats are refused, not
truncated.

    python net.py inputs.npy STEPS [--out result.npz]      # prints the readout of every sample
    import net; result = net.run(inputs, steps)              # {"output", "spikes", "saturations"}
    procs = net.build(inputs, steps, folder)                 # the connected, unstarted processes

The module needs lava-nc (0.10) and spikec (its SpikecIF / SpikecReadout / SpikeRecorder processes
and the Python 3.11 import shim). Options: `steps=T` lets layers use Lava's stock LIF where that is
exact for runs of up to T steps (the module then refuses longer runs); without it every IF layer
uses SpikecIF, exact for any run length. `neurons="custom"` forces SpikecIF everywhere.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from spikec.backends.lava.plan import LavaPlan, ProcSpec, build_plan
from spikec.errors import FormatError
from spikec.fileio import atomic_files
from spikec.ir.graph import Graph

_CLASSES = {
    "source": "RingBuffer", "sparse": "Sparse", "delay_sparse": "DelaySparse", "lif": "LIF",
    "sigma_delta": "SigmaDelta",
    "if": "SpikecIF", "readout": "SpikecReadout", "recorder": "SpikeRecorder",
}
_PER_NEURON = {"theta", "v_init", "bias", "theta_neg", "v", "bias_mant"}


def export_lava(graph: Graph, path, steps: int | None = None, neurons: str = "auto") -> Path:
    """Write the Lava module for `graph` to `path` and its parameters next to it; returns the path."""
    path = Path(path)
    if not path.parent.exists():
        raise FormatError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.suffix == ".npz":
        raise FormatError(f"{path}: the module needs its own name; the parameters go to <name>.npz")
    graph.validate()
    max_steps = steps
    unknown_length = steps is None and neurons == "auto"
    if unknown_length:
        neurons = "custom"   # stock LIF is only proven exact for a known run length
    plan = build_plan(graph, None, max_steps or 1, batch=1, record=True, neurons=neurons)
    if unknown_length:
        for lp in plan.layers.values():
            lp.reason = lp.reason and "run length unknown: export with steps=T to allow stock LIF"
    arrays: dict[str, np.ndarray] = {}
    lines = [_proc_line(spec, arrays) for spec in plan.procs]
    links = [f"    procs[{lk.src!r}].{lk.src_port}.connect(procs[{lk.dst!r}].{lk.dst_port})"
             for lk in plan.links]
    npz = path.with_suffix(".npz")
    with atomic_files(npz, path) as (tmp_npz, tmp_module):
        with open(tmp_npz, "wb") as f:
            np.savez_compressed(f, **arrays)
        digest = hashlib.sha256(tmp_npz.read_bytes()).hexdigest()
        tmp_module.write_text(_module_text(graph, plan, path, lines, links, max_steps, digest))
        tmp_module.chmod(tmp_module.stat().st_mode | 0o111)
    return path


def _arg(spec: ProcSpec, key: str, value, arrays: dict) -> str:
    """Source text for one constructor argument, tiling per-sample parameters over the batch B."""
    ref = f"{spec.name}.{key}"
    if key == "data":
        return "source_data(NET, inputs, hw)"
    if key == "steps":
        return "steps"
    if key == "shape":
        return f"(B * {int(np.prod(value))},)"
    if key == "sign_mode":
        return f"SignMode.{value}"
    if key == "act_mode":
        return f"ActivationMode.{value}"
    if sp.issparse(value):
        value = value.tocsr()
        for part in ("data", "indices", "indptr"):
            arrays[f"{ref}.{part}"] = getattr(value, part)
        arrays[f"{ref}.shape"] = np.array(value.shape)
        return f"blocks(P, {ref!r}, B)"
    if isinstance(value, np.ndarray):
        arrays[ref] = value
        if key == "schedule":
            return f"np.tile(P[{ref!r}], (1, B))"
        if key in _PER_NEURON:
            return f"np.tile(P[{ref!r}], B)"
        return f"P[{ref!r}]"
    return repr(value)


def _proc_line(spec: ProcSpec, arrays: dict) -> str:
    args = [f"{k}={_arg(spec, k, v, arrays)}" for k, v in spec.args.items()]
    for key, (shape, dtype) in spec.records.items():
        if len(shape) == 2:
            dims = f"(hw, B * {shape[1]})"
        else:
            dims = "(1,)" if shape == (1,) else f"(B * {shape[0]},)"
        args.append(f"{key}=record(folder, {spec.name + '.' + key!r}, {dims}, {dtype!r})")
    if spec.kind in ("if", "readout", "recorder"):   # spikec's processes log a failure instead of hanging
        args.append(f"error_path=error_path(folder, {spec.name!r})")
    return f"    procs[{spec.name!r}] = {_CLASSES[spec.kind]}({', '.join(args)})"


def _module_text(graph: Graph, plan: LavaPlan, path: Path, lines, links, max_steps, digest: str) -> str:
    inp = graph.input
    dims = ", ".join(map(str, inp.shape))
    layers = {name: (lp.proc, lp.model, lp.recorder) for name, lp in plan.layers.items()}
    shapes = {p.name: tuple(p.shape) for p in graph.populations}
    table = "\n".join(f"#   {name:<16} {lp.model:<8} {lp.proc}" + (f"  ({lp.reason})" if lp.reason else "")
                      for name, lp in plan.layers.items())
    return _TEMPLATE.format(
        npz=path.with_suffix(".npz").name, name=path.name, dims=dims,
        inputs_doc=f"0/1 spikes [B, S, {dims}]" if inp.encoding == "spikes" else f"integers [B, {dims}]",
        latency=graph.latency, max_steps=max_steps, table=table,
        layers=layers, shapes=shapes, readout=graph.readout.name, digest=digest,
        input_args=f"{inp.name!r}, {tuple(inp.shape)!r}, encoding={inp.encoding!r}, "
                   f"value_bits={int(inp.value_bits)}, scale={float(inp.scale)!r}",
        procs="\n".join(lines), links="\n".join(links))


_TEMPLATE = '''#!/usr/bin/env python3
"""A spikec graph as a Lava process network (generated by spikec.export(..., format="lava")).

    python {name} inputs.npy STEPS [--out result.npz]

inputs.npy: {inputs_doc}. A run of STEPS evaluated steps takes STEPS + {latency} hardware steps
(Loihi2SimCfg(select_tag="fixed_pt")). Parameters for one sample are in {npz}; build() lays the
B samples of a batch side by side. Synapses are Sparse/DelaySparse with weights 2*w and
weight_exp = -1 (exact on Loihi's 8-bit mixed-sign format; larger weights are split into base-256
digits with weight_exp 8j-1). The code that runs it is spikec.backends.lava.exported.
Populations (IR name, neuron model, process):
{table}
"""

import numpy as np

from spikec.backends.lava.exported import (  # noqa: F401  (the process classes build() uses)
    LIF,
    ActivationMode,
    DelaySparse,
    Exported,
    RingBuffer,
    SigmaDelta,
    SignMode,
    Sparse,
    SpikecIF,
    SpikecReadout,
    SpikeRecorder,
    blocks,
    error_path,
    main,
    record,
    run_network,
    source_data,
)
from spikec.ir.nodes import Input

NET = Exported(
    module_file=__file__,
    input=Input({input_args}),
    latency={latency},
    max_steps={max_steps!r},
    layers={layers!r},
    shapes={shapes!r},
    readout={readout!r},
    params_sha256={digest!r},
)


def build(inputs, steps, folder):
    """The connected Lava processes for `inputs` and `steps`, with record files in `folder`."""
    inputs, steps = NET.checked(inputs, steps)
    P, B, hw = NET.params(), inputs.shape[0], steps + NET.latency
    procs = {{}}
{procs}
{links}
    return procs


def run(inputs, steps):
    """Run the network; returns {{"output": [B, n_out], "spikes": {{layer: [hw, B, ...]}}, "saturations"}}."""
    return run_network(NET, build, inputs, steps)


if __name__ == "__main__":
    main(NET, build, __doc__)
'''
