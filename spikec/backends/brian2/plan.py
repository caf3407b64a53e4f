"""Lower an IR graph to a Brian2 network *spec*: plain JSON metadata plus numpy integer arrays.

The spec is what `brian2_model` builds Brian2 objects from, what the cpp_standalone cache is keyed
on, and what `spikec.export(..., format="brian2")` stores next to the generated script. It holds
per-sample data (one copy of every group); the model lays the B samples of a batch side by side.

    meta = {"format": 1, "latency": int, "input": {...}, "layers": [...], "edges": [...]}
    arrays = {"<group>.<param>": int64 [n], "<group>.schedule": int64 [rows, n],
              "<edge>.i" / ".j" / ".w": int64 [nnz] (presynaptic, postsynaptic index, weight)}
"""

from __future__ import annotations

import hashlib
import json
import weakref

import numpy as np

from spikec.errors import UnsupportedError
from spikec.ir.connectivity import edge_matrix
from spikec.ir.graph import Graph, broadcast_param
from spikec.ir.nodes import IF, Input

SPEC_FORMAT = 1


_SPECS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def make_spec(graph: Graph) -> dict:
    """The Brian2 spec of `graph` (see the module docstring). Graphs are immutable, so the spec is
    computed once per graph object; callers must not modify it."""
    graph.require_spiking("the Brian2 backend")
    if graph not in _SPECS:
        _SPECS[graph] = _make_spec(graph)
    return _SPECS[graph]


def _make_spec(graph: Graph) -> dict:
    graph.validate()
    starts = graph.start_steps()
    arrays: dict[str, np.ndarray] = {}
    groups = _group_names(graph)
    inp = graph.input
    meta = {
        "format": SPEC_FORMAT,
        "latency": graph.latency,
        "input": {"name": inp.name, "group": groups[inp.name], "n": _size(inp.shape),
                  "shape": list(inp.shape), "encoding": inp.encoding},
        "layers": [],
        "edges": [],
    }
    for name in graph.topo_order():
        node = graph.nodes[name]
        if isinstance(node, Input):
            continue
        layer = _layer_meta(graph, node, groups[name], starts[name], arrays)
        meta["layers"].append(layer)
    for index, edge in enumerate(graph.edges):
        # synapses ordered by presynaptic neuron: a spike then reads contiguous memory
        matrix = edge_matrix(edge, graph.nodes[edge.src].shape).tocsc().tocoo()
        key = f"syn{index}"
        arrays[f"{key}.i"] = matrix.col.astype(np.int64)
        arrays[f"{key}.j"] = matrix.row.astype(np.int64)
        arrays[f"{key}.w"] = matrix.data.astype(np.int64)
        src = graph.nodes[edge.src]
        meta["edges"].append({
            "key": key, "name": edge.name, "src": groups[edge.src], "dst": groups[edge.dst],
            "delay": int(edge.delay), "nnz": int(matrix.nnz),
            "signed": isinstance(src, IF) and src.theta_neg is not None,
            # current-encoded input enters as a constant current (Loihi-style bias injection)
            "current": isinstance(src, Input) and src.encoding == "current",
            # local step of the destination at which this edge's first value arrives
            "arrival": starts[edge.src] + 1 + int(edge.delay) - starts[edge.dst] + 1,
        })
    for layer in meta["layers"]:
        edges = [e for e in meta["edges"] if e["current"] and e["dst"] == layer["group"]]
        layer["x_arrivals"] = sorted({e["arrival"] for e in edges})
    return {"meta": meta, "arrays": arrays}


def spec_digest(spec: dict, *extra) -> str:
    """A hex digest of everything that determines the built network (plus `extra` JSON-able facts)."""
    h = hashlib.sha256()
    h.update(json.dumps([spec["meta"], list(extra)], sort_keys=True).encode())
    for key in sorted(spec["arrays"]):
        arr = np.ascontiguousarray(spec["arrays"][key])
        h.update(f"{key}:{arr.dtype.str}:{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def c_target_limits(spec: dict) -> None:
    """Raise UnsupportedError for values the C code-generation targets cannot carry exactly.

    Brian2's `int()` is 32-bit in Cython/C++ (used for the float-valued bias-schedule TimedArray)
    and `clip()` compares against double bounds (exact up to 2^53).
    """
    for layer in spec["meta"]["layers"]:
        if layer["v_max"] > 2**53:
            raise UnsupportedError(f"{layer['name']}: state_bits above 54 are exact only on the numpy target")
        key = f"{layer['group']}.schedule"
        if key in spec["arrays"] and np.abs(spec["arrays"][key]).max() > 2**31 - 1:
            raise UnsupportedError(f"{layer['name']}: bias_schedule values beyond 32 bits are exact only on "
                                   "the numpy target")


def _layer_meta(graph: Graph, node, group: str, start: int, arrays: dict) -> dict:
    n = _size(node.shape)
    flat = lambda value: np.ascontiguousarray(broadcast_param(value, node.shape).reshape(n), np.int64)  # noqa: E731
    layer = {"name": node.name, "group": group, "n": n, "shape": list(node.shape), "start": start,
             "v_max": 2 ** (node.state_bits - 1) - 1, "has_bias": bool(np.any(node.bias != 0))}
    if layer["has_bias"]:
        arrays[f"{group}.bias"] = flat(node.bias)
    if not isinstance(node, IF):
        layer.update(kind="readout", skip=int(node.skip))
        return layer
    layer.update(kind="if", reset=node.reset, signed=node.theta_neg is not None,
                 gate=node.gate if node.theta_neg is not None else "none", presim=int(node.presim),
                 has_schedule=node.bias_schedule is not None)
    arrays[f"{group}.theta"] = flat(node.theta)
    if layer["signed"]:
        arrays[f"{group}.theta_neg"] = flat(node.theta_neg)
    layer["has_v_init"] = bool(node.presim) or bool(np.any(node.v_init != 0))
    if layer["has_v_init"]:
        arrays[f"{group}.v_init"] = flat(node.v_init)
    if node.bias_schedule is not None:
        # one row per hardware step (row r = step r + 1): zeros before `start`, the schedule in local
        # steps 1..S, then one zero row that the TimedArray repeats for every later step
        sched = node.bias_schedule
        table = np.zeros((start - 1 + len(sched) + 1, n), np.int64)
        for k in range(len(sched)):
            table[start - 1 + k] = flat(sched[k])
        arrays[f"{group}.schedule"] = table
    return layer


def _group_names(graph: Graph) -> dict[str, str]:
    """Brian2 object names: by position, so the same structure yields the same generated code
    (Cython caches compiled code by its text); the IR names stay in the spec's metadata."""
    names = {}
    layer = 0
    for name in graph.topo_order():
        node = graph.nodes[name]
        if isinstance(node, Input):
            names[name] = "input"
        elif isinstance(node, IF):
            names[name] = f"layer{layer}"
            layer += 1
        else:
            names[name] = "readout"
    return names


def _size(shape) -> int:
    return int(np.prod(shape))
