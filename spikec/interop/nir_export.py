"""Export an IR graph as a NIR graph (`spikec.export(graph, path, format="nir")`); docs/nir.md.

Mapping (every value an integer stored exactly in float32):
  Input        -> nir.Input (shape); encoding, value bits and scale go to the metadata
  IF           -> nir.IF(r = 1, v_threshold = theta - 0.5, v_reset = 0), full-shape arrays:
                  `v > theta - 0.5` (NIR, norse) and `v >= theta - 0.5` (SpikingJelly) both equal
                  spikec's `v >= theta` on integer potentials
  Readout      -> nir.Output; the readout is the sum of the output over the evaluated steps
  Dense        -> nir.Affine (bias 0, or the target population's bias)
  Conv2d       -> nir.Conv2d (PyTorch weight order, stride/padding/dilation, per-channel bias);
                  grouped convolutions as one ungrouped kernel, zero between groups
  non-square   -> kernels and windows padded to square with zeros on both sides, padding grown to
                  match (nir 1.0.8 sizes a Conv2d's output from the kernel height alone)
  SumPool2d    -> nir.Conv2d with a one-hot [C, C, kh, kw] kernel (exact in every importer; norse
                  reads nir.SumPool2d as an L1 pool through an average, SpikingJelly not at all)
  Flatten      -> nir.Flatten(start_dim=0, end_dim=-1) over the (C, H, W) shape
  bias         -> the bias of the last node of the population's first in-edge (added every step)
  weight_exp   -> folded into the last weighted node of its edge (weights * 2^weight_exp)
Time: NIR simulators are layer-synchronous; spikec delivers each edge at t + 1 + delay. A graph in
which every edge arrives exactly at its target's start step maps exactly, population P's NIR step n
being spikec's hardware step n + start(P) - 1; anything else is refused. What NIR has no field for
(v_init, state bits, the input's encoding/bits/scale, start steps and delays, weight exponents,
which nodes are pooling, the IR names and order, the compile metadata) is written as JSON into
NIRGraph.metadata["spikec"], from which `spikec.load` rebuilds the identical graph.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spikec.errors import UnsupportedError
from spikec.fileio import atomic_path
from spikec.interop.nir_common import (
    FLOAT_EXACT,
    INPUT_NODE,
    META_FORMAT,
    META_KEY,
    META_VERSION,
    OUTPUT_NODE,
    THRESHOLD_OFFSET,
    node_name,
    reduce_param,
    require_nir,
)
from spikec.ir.graph import Graph, broadcast_param
from spikec.ir.nodes import IF, Conv2d, Dense, Flatten, Input, Readout, SumPool2d
from spikec.ir.overflow import max_abs

STOCK = "compile with target='loihi-stock'"
_WEIGHTED = (Dense, Conv2d, SumPool2d)


def _bias_edges(graph: Graph) -> dict[str, int | None]:
    """Population -> index (in graph.edges) of the in-edge whose last node carries its bias,
    None when its bias is zero, -1 when no in-edge can carry it."""
    out: dict[str, int | None] = {}
    for pop in graph.populations:
        if isinstance(pop, Input):
            continue
        if not np.any(pop.bias):
            out[pop.name] = None
            continue
        out[pop.name] = -1
        full = broadcast_param(pop.bias, pop.shape)
        for i, e in enumerate(graph.edges):
            if e.dst != pop.name or not e.ops or not isinstance(e.ops[-1], _WEIGHTED):
                continue
            if isinstance(e.ops[-1], Dense) or reduce_param(full, pop.shape, (pop.shape[0],)) is not None:
                out[pop.name] = i
                break
    return out


def nir_problems(graph: Graph) -> list[str]:
    """Everything in `graph` that NIR (as norse and SpikingJelly run it) cannot express exactly,
    one line per population/edge and feature ([] = exportable)."""
    graph.validate()
    problems: list[str] = [f"{what}: sigma-delta graphs are not exported to NIR (use the Lava module export)"
                           for what in graph.graded_features()]
    starts = graph.start_steps()
    for pop in graph.populations:
        if isinstance(pop, IF):
            where = f"layer {pop.name}"
            if pop.theta_neg is not None:
                problems.append(f"{where}: signed spikes (theta_neg): NIR neurons emit 0/1 spikes only")
            if pop.bias_schedule is not None:
                problems.append(f"{where}: a bias schedule (FTBC): NIR has no time-varying bias")
            if pop.presim:
                problems.append(f"{where}: SRP pre-simulation (presim={pop.presim}): NIR has no latch")
            if pop.reset != "zero":
                problems.append(f"{where}: {pop.reset} reset: NIR's IF resets to v_reset; {STOCK}")
            if np.any(pop.v_init):
                problems.append(f"{where}: initial potential v_init != 0: NIR neurons start at rest; {STOCK}")
            if np.abs(pop.theta).max() >= FLOAT_EXACT // 2:
                problems.append(f"{where}: theta beyond 2^23 (theta - 0.5 is not exact in float32)")
        if isinstance(pop, Readout) and pop.skip:
            problems.append(f"readout {pop.name}: skips {pop.skip} steps (SRP): NIR has no readout window")
        if isinstance(pop, Readout) and len(graph.in_edges(pop.name)) != 1:
            problems.append(f"readout {pop.name}: {len(graph.in_edges(pop.name))} in-edges; NIR importers "
                            "pass one edge into an Output node unsummed")
        if not isinstance(pop, Input) and np.any(np.abs(pop.bias) >= FLOAT_EXACT):
            problems.append(f"{pop.name}: bias beyond 2^24 (not exact in float32)")
    for name, holder in _bias_edges(graph).items():
        if holder == -1:
            problems.append(f"{name}: its bias needs an in-edge ending in Dense, or in Conv2d/SumPool2d "
                            "with a per-channel bias; none has one")
    for e in graph.edges:
        arrival = starts[e.src] + 1 + e.delay
        if arrival != starts[e.dst]:
            problems.append(f"edge {e.name}: arrives at step {arrival}, {arrival - starts[e.dst]} after "
                            f"{e.dst} starts (a time offset layer-synchronous NIR cannot express)")
        if e.weight_exp and not any(isinstance(op, _WEIGHTED) for op in e.ops):
            problems.append(f"edge {e.name}: weight_exp {e.weight_exp} without a weighted op to fold it into")
        for op in e.ops:
            kernel = op.weight.shape[2:] if isinstance(op, Conv2d) else op.kernel if isinstance(op, SumPool2d) else ()
            if kernel and (kernel[0] - kernel[1]) % 2:
                problems.append(f"edge {e.name}: a {kernel[0]}x{kernel[1]} {type(op).__name__} window: nir 1.0.8 "
                                "sizes a Conv2d's output from the kernel height alone, and a kernel whose sides "
                                "differ by an odd number cannot be made square exactly")
            if isinstance(op, (Dense, Conv2d)) and max_abs(op.weight) * 2**e.weight_exp >= FLOAT_EXACT:
                problems.append(f"edge {e.name}: weights * 2^weight_exp beyond 2^24 (not exact in float32)")
    return problems


def build_nir(graph: Graph):
    """The nir.NIRGraph of `graph` (UnsupportedError listing every problem if it has any)."""
    nir = require_nir()
    problems = nir_problems(graph)
    if problems:
        raise UnsupportedError("cannot export this graph to NIR exactly:\n  - " + "\n  - ".join(problems))
    taken: set[str] = set()
    names = {p.name: (INPUT_NODE if isinstance(p, Input) else OUTPUT_NODE if isinstance(p, Readout)
                      else node_name(p.name, taken)) for p in graph.populations}
    nodes, edges = {}, []
    for pop in graph.populations:
        nodes[names[pop.name]] = _population_node(nir, pop)
    bias_edges = _bias_edges(graph)
    edge_meta = []
    for i, e in enumerate(graph.edges):
        dst = graph.node(e.dst)
        bias = broadcast_param(dst.bias, dst.shape) if bias_edges[e.dst] == i else None
        chain, kinds = _edge_nodes(nir, e, graph.node(e.src).shape, bias)
        chain_names = [node_name(f"{names[e.src]}__{names[e.dst]}__{j}_{kind.lower()}", taken)
                       for j, kind in enumerate(kinds)]
        nodes.update(zip(chain_names, chain))
        path = [names[e.src]] + chain_names + [names[e.dst]]
        edges += list(zip(path, path[1:]))
        edge_meta.append({"src": e.src, "dst": e.dst, "delay": e.delay, "weight_exp": e.weight_exp,
                          "nodes": chain_names, "ops": [_op_meta(op) for op in e.ops]})
    meta = metadata(graph, names, edge_meta)
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata={META_KEY: json.dumps(meta)})
    except ValueError as err:  # nir's own type check: the file would not read back
        raise UnsupportedError(f"nir {getattr(nir, '__version__', '?')} rejects the graph: {err}") from err


def _population_node(nir, pop):
    shape = np.asarray(pop.shape)
    if isinstance(pop, Input):
        return nir.Input(input_type={"input": shape})
    if isinstance(pop, Readout):
        return nir.Output(output_type={"output": shape})
    theta = broadcast_param(pop.theta, pop.shape).astype(np.float32)
    return nir.IF(r=np.ones(pop.shape, np.float32), v_threshold=theta - np.float32(THRESHOLD_OFFSET),
                  v_reset=np.zeros(pop.shape, np.float32))


def _edge_nodes(nir, edge, shape, bias):
    """NIR nodes for the op chain of `edge` on input `shape`; `bias` (full dst shape) or None goes
    into the last node. Returns (nodes, op kind names)."""
    weighted = max((j for j, op in enumerate(edge.ops) if isinstance(op, _WEIGHTED)), default=-1)
    out, kinds = [], []
    for j, op in enumerate(edge.ops):
        scale = np.float32(2.0**edge.weight_exp if j == weighted else 1.0)
        last = j == len(edge.ops) - 1
        next_shape = op.output_shape(shape)
        if isinstance(op, Flatten):
            out.append(nir.Flatten(input_type={"input": np.asarray(shape)}, start_dim=0, end_dim=-1))
        elif isinstance(op, Dense):
            b = np.zeros(next_shape, np.float32) if bias is None or not last else bias.astype(np.float32)
            out.append(nir.Affine(weight=op.weight.astype(np.float32) * scale, bias=b))
        else:
            c_out = next_shape[0]
            b = np.zeros(c_out, np.float32)
            if bias is not None and last:
                b = reduce_param(bias, next_shape, (c_out,)).astype(np.float32)
            if isinstance(op, Conv2d):
                w, stride, pad, dil, groups = ungroup(op), op.stride, op.padding, op.dilation, 1
            else:
                w = np.zeros((c_out, c_out) + op.kernel, np.int64)
                w[np.arange(c_out), np.arange(c_out)] = 1
                stride, pad, dil, groups = op.stride, (0, 0), (1, 1), 1
            w, pad = square_kernel(w, pad, dil)
            out.append(nir.Conv2d(input_shape=tuple(shape[1:]), weight=w.astype(np.float32) * scale,
                                  stride=tuple(stride), padding=tuple(pad), dilation=tuple(dil),
                                  groups=groups, bias=b))
        kinds.append(type(op).__name__)
        shape = next_shape
    return out, kinds


def square_kernel(w: np.ndarray, padding, dilation):
    """A kh x kw kernel as a k x k one (k = max), zero rows / columns added equally on both sides and
    the padding grown by as many dilated steps: the same outputs and output size. nir 1.0.8 sizes a
    Conv2d's output from the kernel height alone; (kh - kw) must be even (nir_problems checks)."""
    kh, kw = w.shape[2:]
    k = max(kh, kw)
    rh, rw = (k - kh) // 2, (k - kw) // 2
    w = np.pad(w, ((0, 0), (0, 0), (rh, rh), (rw, rw)))
    return w, (padding[0] + rh * dilation[0], padding[1] + rw * dilation[1])


def ungroup(op: Conv2d) -> np.ndarray:
    """The weights of a grouped convolution as one ungrouped [C_out, C_in, kh, kw] kernel (zero
    outside each output channel's group): nir 1.0.8's type inference misreads grouped kernels and
    SpikingJelly refuses them, while the dense kernel is exact everywhere."""
    c_out, cg = op.weight.shape[:2]
    if op.groups == 1:
        return op.weight
    w = np.zeros((c_out, cg * op.groups) + op.weight.shape[2:], np.int64)
    per_group = c_out // op.groups
    for o in range(c_out):
        g = o // per_group
        w[o, g * cg:(g + 1) * cg] = op.weight[o]
    return w


def _op_meta(op) -> dict:
    if isinstance(op, SumPool2d):
        return {"kind": "SumPool2d", "kernel": list(op.kernel), "stride": list(op.stride)}
    if isinstance(op, Conv2d):
        return {"kind": "Conv2d", "groups": op.groups, "kernel": list(op.weight.shape[2:])}
    return {"kind": type(op).__name__}


def _array(value: np.ndarray) -> dict:
    return {"shape": list(value.shape), "values": value.reshape(-1).tolist()}


def metadata(graph: Graph, names: dict[str, str], edge_meta: list[dict]) -> dict:
    """What NIR has no field for (JSON-able); `spikec.load` reads it back."""
    pops = []
    for p in graph.populations:
        row = {"name": p.name, "kind": type(p).__name__, "node": names[p.name]}
        if isinstance(p, Input):
            row.update(encoding=p.encoding, value_bits=p.value_bits, scale=p.scale)
        elif isinstance(p, IF):
            row.update(theta_shape=list(p.theta.shape), bias_shape=list(p.bias.shape),
                       v_init=_array(p.v_init), state_bits=p.state_bits, reset=p.reset, gate=p.gate)
        else:
            row.update(bias_shape=list(p.bias.shape), skip=p.skip, state_bits=p.state_bits)
        pops.append(row)
    return {"format": META_FORMAT, "version": META_VERSION, "populations": pops, "edges": edge_meta,
            "start_steps": graph.start_steps(), "latency": graph.latency, "meta": graph.meta}


def export_nir(graph: Graph, path) -> Path:
    """Write `graph` as a NIR HDF5 file at `path` (atomically: a temporary file renamed into place)."""
    nir = require_nir()
    nir_graph = build_nir(graph)
    path = Path(path)
    with atomic_path(path) as tmp:
        nir.write(tmp, nir_graph)
    return path
