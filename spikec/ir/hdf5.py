"""spikec's one on-disk format: a versioned HDF5 file (h5py).

Layout (version 2; version 1 files, which lack the edges' weight_exp, read with weight_exp 0):
    /                attrs: format="spikec-graph", version=2, meta=<JSON string>
    /populations/<i> attrs: kind (Input | IF | Readout), name, shape, scalar fields;
                     datasets: the integer arrays (theta, v_init, bias, ...)
    /edges/<i>       attrs: src, dst, delay, weight_exp;  /edges/<i>/ops/<j>: attrs kind + geometry,
                     dataset weight
Writes go to a temporary file in the target folder, renamed into place only when complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from spikec.errors import FormatError, GraphError
from spikec.fileio import atomic_path
from spikec.ir.graph import Graph
from spikec.ir.nodes import IF, Conv2d, Dense, Edge, Flatten, Input, Readout, SumPool2d

FORMAT = "spikec-graph"
VERSION = 2

_POP_SCALARS = {
    Input: ("encoding", "value_bits", "scale"),
    IF: ("gate", "presim", "reset", "state_bits"),
    Readout: ("skip", "state_bits"),
}
_POP_ARRAYS = {Input: (), IF: ("theta", "v_init", "bias", "bias_schedule", "theta_neg"), Readout: ("bias",)}
_POP_KINDS = {cls.__name__: cls for cls in _POP_SCALARS}
_OP_FIELDS = {Dense: (), Conv2d: ("stride", "padding", "dilation", "groups"), SumPool2d: ("kernel", "stride"),
              Flatten: ()}
_OP_KINDS = {cls.__name__: cls for cls in _OP_FIELDS}


def save(graph: Graph, path) -> None:
    graph.validate()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _write(f, graph)


def _write(f: h5py.File, graph: Graph) -> None:
    f.attrs["format"] = FORMAT
    f.attrs["version"] = VERSION
    f.attrs["meta"] = json.dumps(graph.meta)
    pops = f.create_group("populations")
    for i, p in enumerate(graph.populations):
        g = pops.create_group(str(i))
        g.attrs["kind"] = type(p).__name__
        g.attrs["name"] = p.name
        g.attrs["shape"] = np.asarray(p.shape, np.int64)
        for field in _POP_SCALARS[type(p)]:
            g.attrs[field] = getattr(p, field)
        for field in _POP_ARRAYS[type(p)]:
            value = getattr(p, field)
            if value is not None:
                g.create_dataset(field, data=value)
    edges = f.create_group("edges")
    for i, e in enumerate(graph.edges):
        g = edges.create_group(str(i))
        g.attrs["src"], g.attrs["dst"], g.attrs["delay"] = e.src, e.dst, e.delay
        g.attrs["weight_exp"] = e.weight_exp
        ops = g.create_group("ops")
        for j, op in enumerate(e.ops):
            o = ops.create_group(str(j))
            o.attrs["kind"] = type(op).__name__
            for field in _OP_FIELDS[type(op)]:
                o.attrs[field] = np.asarray(getattr(op, field), np.int64)
            if hasattr(op, "weight"):
                o.create_dataset("weight", data=op.weight)


def load(path) -> Graph:
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise FormatError(f"{path}: not a readable HDF5 file (truncated or another format?): {err}") from None
    with f:
        fmt = _attr(f, "format", path)
        if fmt != FORMAT:
            raise FormatError(f"{path}: not a spikec graph file (format attribute is {fmt!r})")
        version = int(_attr(f, "version", path))
        if version > VERSION:
            raise FormatError(f"{path}: format version {version} is newer than this spikec reads "
                              f"(up to {VERSION}); upgrade spikec")
        if version < 1:
            raise FormatError(f"{path}: invalid format version {version}")
        try:
            graph = Graph([_read_pop(f["populations"][k], path) for k in _ordered(f["populations"])],
                          [_read_edge(f["edges"][k], path, version) for k in _ordered(f["edges"])],
                          json.loads(_attr(f, "meta", path)))
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, (GraphError, FormatError)):
                raise
            raise FormatError(f"{path}: malformed graph file: {err}") from None
    try:
        return graph.validate()
    except GraphError as err:
        raise FormatError(f"{path}: the stored graph is invalid: {err}") from None


def _ordered(group) -> list[str]:
    return sorted(group.keys(), key=int)


def _attr(obj, name: str, path):
    if name not in obj.attrs:
        raise FormatError(f"{path}: missing attribute {name!r} at {obj.name}")
    value = obj.attrs[name]
    return value.decode() if isinstance(value, bytes) else value


def _py(value):
    if isinstance(value, np.ndarray):
        return tuple(int(v) for v in value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value.decode() if isinstance(value, bytes) else value


def _read_pop(g, path):
    kind = _attr(g, "kind", path)
    if kind not in _POP_KINDS:
        raise FormatError(f"{path}: unknown population kind {kind!r} at {g.name}")
    cls = _POP_KINDS[kind]
    kwargs = {field: _py(_attr(g, field, path)) for field in _POP_SCALARS[cls]}
    for field in _POP_ARRAYS[cls]:
        if field in g:
            kwargs[field] = g[field][()]
    return cls(str(_attr(g, "name", path)), _py(np.asarray(_attr(g, "shape", path))), **kwargs)


def _read_edge(g, path, version: int):
    ops = []
    for k in _ordered(g["ops"]):
        o = g["ops"][k]
        kind = _attr(o, "kind", path)
        if kind not in _OP_KINDS:
            raise FormatError(f"{path}: unknown synapse op {kind!r} at {o.name}")
        cls = _OP_KINDS[kind]
        kwargs = {field: _py(_attr(o, field, path)) for field in _OP_FIELDS[cls]}
        if "weight" in o:
            kwargs["weight"] = o["weight"][()]
        ops.append(cls(**kwargs))
    weight_exp = int(_attr(g, "weight_exp", path)) if version >= 2 else 0
    return Edge(str(_attr(g, "src", path)), str(_attr(g, "dst", path)), tuple(ops),
                int(_attr(g, "delay", path)), weight_exp)
