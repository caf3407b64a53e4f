"""`spikec.export(graph, path, format="brian2")`: a runnable, readable Brian2 script.

Writes `path` (the script) and `path.with_suffix(".npz")` (weights and parameters, the spec of
brian2_plan.py) with `spikec.fileio.atomic_files`: an error restores the previous pair. The script's
code is the same for every graph and reads the network from whichever spec it is given (`--spec`),
so only its header comment describes one graph. It takes integer inputs only: floats are refused,
not truncated. The script is brian2_model.py verbatim, the very code the
backend runs, preceded by a comment that lists every population's Brian2 equations and update
code for this graph. Run it as `python net.py inputs.npy STEPS [--record] [--out result.npz]`.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from spikec.backends.brian2 import model as brian2_model
from spikec.backends.brian2.plan import make_spec
from spikec.errors import FormatError
from spikec.fileio import atomic_files


def export_brian2(graph, path) -> Path:
    """Write the Brian2 script for `graph` to `path` and its parameters next to it; returns the path."""
    path = Path(path)
    if not path.parent.exists():
        raise FormatError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.suffix == ".npz":
        raise FormatError(f"{path}: the script needs its own name; the parameters go to <name>.npz")
    spec = make_spec(graph)
    with atomic_files(path.with_suffix(".npz"), path) as (tmp_npz, tmp_script):
        brian2_model.write_spec(spec, tmp_npz)
        tmp_script.write_text(header(graph, spec, path) + inspect.getsource(brian2_model))
        tmp_script.chmod(tmp_script.stat().st_mode | 0o111)
    return path


def header(graph, spec: dict, path: Path) -> str:
    meta = spec["meta"]
    inp = meta["input"]
    shape = "x".join(map(str, inp["shape"]))
    dims = ", ".join(map(str, inp["shape"]))
    lines = ["#!/usr/bin/env python3",
             f"# spikec graph exported as a Brian2 network; parameters in {path.with_suffix('.npz').name}.",
             "#",
             f"#     python {path.name} inputs.npy STEPS [--target numpy|cython] [--record] [--out out.npz]",
             "#",
             f"# inputs.npy: integers [B, {dims}]" if inp["encoding"] == "current"
             else f"# inputs.npy: 0/1 spikes [B, S, {dims}]",
             f"# Input {inp['name']!r} ({shape}, {inp['encoding']}); a run of STEPS evaluated steps takes "
             f"STEPS + {meta['latency']} hardware steps.",
             "# Prints the readout of every sample (the logits). Below: this graph's populations as Brian2",
             "# equations and the update code each runs at the start of every step (see build()).",
             "#"]
    for layer in meta["layers"]:
        kind = "IF layer" if layer["kind"] == "if" else "Readout"
        lines.append(f"# {layer['group']}: {kind} {layer['name']!r} {tuple(layer['shape'])}, "
                     f"start step {layer['start']}, |v| <= {layer['v_max']}")
        if layer["kind"] == "if":
            equations, update = brian2_model.if_equations(layer), brian2_model.if_update(layer)
        else:
            equations, update = brian2_model.readout_equations(layer), brian2_model.readout_update(layer)
        lines += [f"#     {line}" for line in equations.splitlines()]
        lines.append("#   every step:")
        lines += [f"#     {line}" for line in update.splitlines()]
    for edge in meta["edges"]:
        how = "constant input current" if edge["current"] else "Synapses I_post += w"
        lines.append(f"# {edge['key']}: {edge['name']} ({edge['nnz']} synapses per sample, delay 1 + "
                     f"{edge['delay']}, {how})")
    return "\n".join(lines) + "\n"
