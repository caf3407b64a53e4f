"""Read a NIR file into an IR graph (`spikec.load(path)` of a NIR HDF5 file); docs/nir.md.

Files spikec wrote carry NIRGraph.metadata["spikec"] (nir_export.metadata) and come back as the
identical graph. Any other NIR graph is taken when it is an integer integrate-and-fire network:
  nir.Input -> Input (encoding "current" unless told otherwise), nir.IF (r = 1, v_reset = 0) -> IF
  with theta = floor(v_threshold) + 1 (NIR fires on v > v_threshold; potentials are integers),
  nir.Affine / nir.Linear -> Dense, nir.Conv2d -> Conv2d, nir.SumPool2d -> SumPool2d,
  nir.Flatten (all dims) -> Flatten, nir.Output -> Readout, a bias on the last node of a chain ->
  the target population's bias. Edge delays are set so that every layer starts one step after its
  deepest input (NIR's layer-synchronous time, shifted per layer).
Everything else raises UnsupportedError naming the node (LIF and other leaky or non-spiking
neurons, average pooling, non-integer weights, ...); unreadable files raise FormatError.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np

from spikec.errors import FormatError, GraphError, UnsupportedError
from spikec.interop.nir_common import META_FORMAT, META_KEY, META_VERSION, reduce_param, require_nir
from spikec.interop.nir_ops import convert_op, identity_op
from spikec.ir.graph import MAX_DELAY, Graph
from spikec.ir.nodes import IF, Edge, Input, Readout

_REFUSED = {
    "LIF": "a leaky neuron (tau): spikec's IF neurons do not leak",
    "CubaLIF": "a leaky current-based neuron (tau_syn, tau_mem): spikec's IF neurons do not leak",
    "LI": "a leaky non-spiking integrator inside the graph",
    "CubaLI": "a leaky non-spiking integrator inside the graph",
    "I": "a non-spiking integrator inside the graph (spikec's only non-spiking node is the readout)",
    "AvgPool2d": "average pooling divides by k^2; spikec's integer graph has sum pooling only",
    "Conv1d": "1-d convolution (spikec has 2-d convolutions only)",
    "Delay": "a delay node (spikec's delays are whole steps on edges)",
    "Scale": "a scale node (fold it into the weights)",
    "Threshold": "a threshold node without state",
    "NIRGraph": "a nested subgraph",
}
_OPS = ("Affine", "Linear", "Conv2d", "SumPool2d", "Flatten")


def is_nir_file(path) -> bool:
    """Whether `path` is an HDF5 file laid out as NIR writes it (a `node` group and a `version`)."""
    try:
        with h5py.File(path, "r") as f:
            return "format" not in f.attrs and isinstance(f.get("node"), h5py.Group) and "version" in f
    except Exception:  # noqa: BLE001 - anything unreadable is not NIR; spikec's own loader reports it
        return False


def load_nir(path, encoding: str = "current", value_bits: int = 9) -> Graph:
    """Read the NIR file `path`. `encoding`/`value_bits` describe the input of graphs that spikec
    did not write (its own files say). FormatError: unreadable; UnsupportedError: a node spikec
    cannot take."""
    nir = require_nir()
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    try:
        nir_graph = nir.read(path, type_check=False)
    except Exception as err:  # noqa: BLE001 - nir raises ValueError/KeyError/OSError/... for bad files
        raise FormatError(f"{path}: not a NIR graph spikec can read ({type(err).__name__}: {err})") from err
    try:
        return from_nir(nir_graph, encoding=encoding, value_bits=value_bits)
    except FormatError as err:
        raise FormatError(f"{path}: {err}") from err


def from_nir(nir_graph, encoding: str = "current", value_bits: int = 9) -> Graph:
    """An IR graph from a nir.NIRGraph (see the module doc). FormatError: a malformed graph or
    metadata; UnsupportedError: a node spikec cannot take (named)."""
    try:
        return _from_nir(nir_graph, encoding, value_bits)
    except (FormatError, UnsupportedError):
        raise
    except GraphError as err:
        raise FormatError(f"the NIR graph gives an invalid spikec graph: {err}") from err
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        raise FormatError(f"malformed NIR graph or spikec metadata ({type(err).__name__}: {err})") from err


def _from_nir(nir_graph, encoding: str, value_bits: int) -> Graph:
    meta = _metadata(nir_graph)
    nodes = nir_graph.nodes
    for name, node in nodes.items():
        kind = type(node).__name__
        if kind in _REFUSED:
            raise UnsupportedError(f"NIR node {name!r} ({kind}): {_REFUSED[kind]}")
        if kind not in _OPS + ("Input", "Output", "IF"):
            raise UnsupportedError(f"NIR node {name!r}: node type {kind} is not supported")
    inputs = [n for n, node in nodes.items() if type(node).__name__ == "Input"]
    outputs = [n for n, node in nodes.items() if type(node).__name__ == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise UnsupportedError(f"NIR graph has {len(inputs)} Input and {len(outputs)} Output nodes; "
                               "spikec takes exactly one of each")
    chains = _chains(nir_graph)
    return _Builder(nir_graph, chains, meta, encoding, value_bits).graph()


def _metadata(nir_graph) -> dict | None:
    text = (getattr(nir_graph, "metadata", None) or {}).get(META_KEY)
    if text is None:
        return None
    try:
        meta = json.loads(text.decode() if isinstance(text, bytes) else text)
    except (ValueError, AttributeError) as err:
        raise FormatError(f"NIR metadata {META_KEY!r} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise FormatError(f"NIR metadata {META_KEY!r} is not spikec's ({META_FORMAT})")
    if not isinstance(meta.get("version"), int) or not 1 <= meta["version"] <= META_VERSION:
        raise FormatError(f"NIR metadata version {meta.get('version')!r}: this spikec reads up to {META_VERSION}")
    return meta


def _chains(nir_graph) -> list[tuple[str, list[str], str]]:
    """(source population node, op nodes in order, target population node) for every path through
    op nodes; each op node must lie on exactly one such chain."""
    nodes = nir_graph.nodes
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in nir_graph.edges:
        if a not in nodes or b not in nodes:
            raise FormatError(f"NIR edge ({a!r}, {b!r}) names a node the graph does not have")
        succ[a].append(b)
        pred[b].append(a)
    is_op = {n: type(node).__name__ in _OPS for n, node in nodes.items()}
    for n in nodes:
        if is_op[n] and (len(pred[n]) != 1 or len(succ[n]) != 1):
            raise UnsupportedError(f"NIR node {n!r}: {len(pred[n])} inputs and {len(succ[n])} outputs; spikec "
                                   "takes synapse nodes in chains (one in, one out) between neuron layers")
    chains = []
    for start in nodes:
        if is_op[start] or type(nodes[start]).__name__ == "Output":
            continue
        for nxt in succ[start]:
            chain, seen = [], set()
            while is_op[nxt]:
                if nxt in seen:
                    raise UnsupportedError(f"NIR node {nxt!r}: on a cycle of synapse nodes")
                seen.add(nxt)
                chain.append(nxt)
                nxt = succ[nxt][0]
            if type(nodes[nxt]).__name__ == "Input":
                raise UnsupportedError(f"NIR node {nxt!r}: the Input receives an edge")
            chains.append((start, chain, nxt))
    return chains


class _Builder:
    """Turns classified NIR nodes and chains into IR populations and edges."""

    def __init__(self, nir_graph, chains, meta, encoding, value_bits):
        self.nodes, self.chains, self.meta = nir_graph.nodes, chains, meta
        self.encoding, self.value_bits = encoding, value_bits
        self.pop_meta = {row["node"]: row for row in meta["populations"]} if meta else {}
        self.edge_meta = {}
        if meta:
            for i, row in enumerate(meta["edges"]):
                key = (self.pop_meta_node(row["src"]), tuple(row["nodes"]), self.pop_meta_node(row["dst"]))
                self.edge_meta[key] = (i, row)
            found = {(a, tuple(c), b) for a, c, b in chains}
            if found != set(self.edge_meta):
                raise FormatError("NIR metadata 'spikec' does not describe this graph's nodes and edges "
                                  "(was the file changed by another tool?)")

    def pop_meta_node(self, spikec_name: str) -> str:
        for row in self.meta["populations"]:
            if row["name"] == spikec_name:
                return row["node"]
        raise FormatError(f"NIR metadata names population {spikec_name!r} twice or not at all")

    # ------------------------------------------------------------------ graph
    def graph(self) -> Graph:
        names = self._names()
        shapes = {n: self._shape(n) for n in names}
        edges, biases = [], {n: [] for n in names}
        for src, chain, dst in self._topological(names):
            ops, bias, weight_exp, delay, order = self._edge(src, chain, dst, shapes[src])
            shape = Edge("a", "b", tuple(ops)).output_shape(shapes[src])
            if shapes[dst] is None or (not self.meta and shapes[dst] == ()):
                shapes[dst] = shape  # a readout, or a neuron node with scalar parameters
            if shapes[dst] != shape:
                raise UnsupportedError(f"NIR node {dst!r}: receives shape {shape} but has shape {shapes[dst]}")
            if bias is not None:
                biases[dst].append(bias)
            edges.append((order, Edge(names[src], names[dst], tuple(ops), delay, weight_exp)))
        if not self.meta:
            edges = self._balance([e for _, e in edges])
        else:
            edges = [e for _, e in sorted(edges, key=lambda item: item[0])]
        pops = [self._population(n, names[n], shapes[n], biases[n]) for n in self._order(names)]
        meta = self.meta["meta"] if self.meta else {"source": "nir"}
        graph = Graph(tuple(pops), tuple(edges), meta).validate()
        if self.meta and graph.start_steps() != self.meta["start_steps"]:
            raise FormatError("NIR metadata 'spikec': the stored delays do not give the stored start steps")
        return graph

    def _topological(self, names) -> list[tuple[str, list[str], str]]:
        """The chains ordered so that every population's in-chains follow all of its sources'."""
        done, out, pending = set(), [], list(self.chains)
        done.update(n for n in names if type(self.nodes[n]).__name__ == "Input")
        while pending:
            ready = [c for c in pending if c[0] in done]
            if not ready:
                raise UnsupportedError("NIR graph is recurrent (or has a neuron no input reaches); spikec "
                                       "takes feed-forward graphs")
            out += ready
            pending = [c for c in pending if c[0] not in done]
            waiting = {c[2] for c in pending}
            done.update(c[2] for c in ready if c[2] not in waiting)
        return out

    def _names(self) -> dict[str, str]:
        pops = [n for n, node in self.nodes.items() if type(node).__name__ in ("Input", "Output", "IF")]
        if self.meta:
            if set(self.pop_meta) != set(pops):
                raise FormatError("NIR metadata 'spikec' lists other populations than the graph holds")
            return {n: self.pop_meta[n]["name"] for n in pops}
        names, taken = {}, set()
        for n in pops:
            base = re.sub(r"[^A-Za-z0-9_.]", "_", n)
            base = base if re.match(r"^[A-Za-z_]", base) else "n_" + base
            name, i = base, 1
            while name in taken:
                name, i = f"{base}_{i}", i + 1
            taken.add(name)
            names[n] = name
        return names

    def _order(self, names) -> list[str]:
        if self.meta:
            return [row["node"] for row in self.meta["populations"]]
        return list(names)

    def _shape(self, n: str):
        node = self.nodes[n]
        kind = type(node).__name__
        if kind == "Input":
            shape = node.input_type.get("input")
            if shape is not None and not self.meta:
                shape = self._unbatched_input(n, tuple(int(s) for s in np.asarray(shape).reshape(-1)))
        elif kind == "IF":
            return tuple(np.asarray(node.v_threshold).shape)  # () = scalar: the shape of what arrives
        else:
            return None  # the readout takes the shape of what arrives
        if shape is None or len(tuple(np.asarray(shape).reshape(-1))) == 0:
            raise UnsupportedError(f"NIR node {n!r}: no shape")
        return tuple(int(s) for s in np.asarray(shape).reshape(-1))

    def _unbatched_input(self, n, shape):
        """Some exporters (norse's) record the input with its batch dimension (1, ...): drop it
        when the first synapse nodes only fit the shape without it."""
        if len(shape) < 2 or shape[0] != 1:
            return shape
        for candidate in (shape, shape[1:]):
            try:
                for src, chain, dst in self.chains:
                    if src == n:
                        self._edge(src, chain, dst, candidate)
                return candidate
            except (GraphError, UnsupportedError):
                continue
        return shape

    # ------------------------------------------------------------------ edges
    def _edge(self, src, chain, dst, shape):
        order, row = self.edge_meta.get((src, tuple(chain), dst), (None, None))
        weight_exp = int(row["weight_exp"]) if row else 0
        delay = int(row["delay"]) if row else 0
        kinds = [op["kind"] for op in row["ops"]] if row else [None] * len(chain)
        weighted = max((j for j, n in enumerate(chain) if type(self.nodes[n]).__name__ != "Flatten"), default=-1)
        ops, bias = [], None
        for j, n in enumerate(chain):
            scale = 2**weight_exp if j == weighted else 1
            op, b = convert_op(self.nodes[n], n, kinds[j], shape, scale, row["ops"][j] if row else None)
            if b is not None and np.any(b):
                if j != len(chain) - 1:
                    raise UnsupportedError(f"NIR node {n!r}: a bias before the end of a synapse chain (spikec "
                                           "adds biases in the neurons); move it to the last node")
                bias = b
            ops.append(op)
            shape = op.output_shape(shape)
        if not ops:
            ops = [identity_op(src, dst, shape, type(self.nodes[dst]).__name__ == "Output")]
            shape = ops[0].output_shape(shape)
        if bias is not None:
            bias = np.broadcast_to(bias.reshape(bias.shape + (1,) * (len(shape) - bias.ndim)), shape)
        return ops, bias, weight_exp, delay, order

    def _balance(self, edges: list[Edge]) -> list[Edge]:
        """Delays for a graph without spikec metadata: each population starts one step after its
        deepest source, shallower inputs wait (NIR runs all layers in the same step)."""
        start: dict[str, int] = {}
        pending = list(edges)
        srcs = {e.src for e in edges} - {e.dst for e in edges}
        start.update({s: 1 for s in srcs})
        while pending:
            ready = {e.dst for e in pending} - {e.dst for e in pending if e.src not in start}
            if not ready:
                raise UnsupportedError("NIR graph is recurrent; spikec takes feed-forward graphs")
            for dst in ready:
                start[dst] = max(start[e.src] + 1 for e in edges if e.dst == dst)
            pending = [e for e in pending if e.dst not in ready]
        out = []
        for e in edges:
            delay = start[e.dst] - start[e.src] - 1
            if delay > MAX_DELAY:
                raise UnsupportedError(f"edge {e.name}: needs a delay of {delay} steps (at most {MAX_DELAY})")
            out.append(Edge(e.src, e.dst, e.ops, delay, e.weight_exp))
        return out

    # ------------------------------------------------------------------ populations
    def _population(self, n, name, shape, biases):
        node, row = self.nodes[n], self.pop_meta.get(n)
        kind = type(node).__name__
        full_bias = sum(biases) if biases else np.zeros(shape, np.int64)
        if kind == "Input":
            if row:
                return Input(name, shape, row["encoding"], row["value_bits"], row["scale"])
            return Input(name, shape, self.encoding, self.value_bits)
        if kind == "Output":
            if shape is None:
                raise UnsupportedError(f"NIR node {n!r}: the Output receives nothing")
            bias = self._compact(full_bias, shape, row and row["bias_shape"], n, "bias")
            if row:
                return Readout(name, shape, bias, row["skip"], row["state_bits"])
            return Readout(name, shape, bias)
        r = np.asarray(node.r, np.float64)
        if not np.all(r == 1):
            raise UnsupportedError(f"NIR node {n!r} (IF): r = {r.reshape(-1)[0]!r}; spikec takes r = 1 "
                                   "(fold the resistance into the weights)")
        v_reset = np.zeros(1) if node.v_reset is None else np.asarray(node.v_reset, np.float64)
        if not np.all(v_reset == 0):
            raise UnsupportedError(f"NIR node {n!r} (IF): v_reset = {v_reset.reshape(-1)[0]!r}; spikec's "
                                   "zero-reset neurons reset to 0")
        v_th = np.asarray(node.v_threshold, np.float64)
        if not np.isfinite(v_th).all():
            raise UnsupportedError(f"NIR node {n!r} (IF): non-finite v_threshold")
        theta_full = (np.floor(v_th) + 1).astype(np.int64)  # integer v > v_th  <=>  v >= floor(v_th) + 1
        theta = self._compact(theta_full, shape, row and row["theta_shape"], n, "v_threshold")
        bias = self._compact(full_bias, shape, row and row["bias_shape"], n, "bias")
        if not row:
            return IF(name, shape, theta, bias=bias, reset="zero")
        v_init = np.asarray(row["v_init"]["values"], np.int64).reshape(row["v_init"]["shape"])
        return IF(name, shape, theta, v_init=v_init, bias=bias, reset=row["reset"], gate=row["gate"],
                  state_bits=row["state_bits"])

    def _compact(self, full, shape, form, n, field) -> np.ndarray:
        value = reduce_param(np.broadcast_to(full, shape), shape, None if form is None else tuple(form))
        if value is None:
            raise FormatError(f"NIR node {n!r}: {field} does not have the per-layer/per-channel form the "
                              "metadata records")
        return value

