"""Loihi core and chip estimate: compartments, synaptic memory and axons per core.

Partitioning (simple and documented, not an optimal placer; docs/estimate.md has the full text):
each IF layer and the Readout is cut into k near-equal cores, a (C, H, W) layer in (H, W, C) order
(spatial tiles) for the discrete estimate and in flat order (channel planes) for the shared one.
k starts at ceil(neurons / compartments_per_core) and grows until every core fits its synaptic memory
and input axons; then, from the last layer back to the first, until every core fits its output axons
(the destination layers are final by then). A limit one neuron alone exceeds is reported, not grown
for. The Input is not placed on cores (the host or the embedded CPUs inject it). What a core holds:

- compartments: its neurons;
- input axons: one per (source neuron, edge) with at least one synapse on the core (shared estimate,
  conv-like edges: one per source position);
- synaptic memory: per input axon, Loihi 1's encoding as nengo-loihi models it: blocks of <= 64
  synapses, each block (n * bits_per_synapse + 10) bits rounded up to 64-bit words; sparse synapses
  cost weight + delay + index bits, a dense row (every compartment of the core) weight + delay bits;
  the cheaper of the two is taken per axon ("discrete" estimate, every connection stored);
- "shared" estimate: conv-like edges (only Conv2d / SumPool2d ops) store each kernel once per core
  for the output channels the core holds (Loihi's population/convolution axons), so their cost is
  kernel entries, not connections; other edges cost the same as in the discrete estimate;
- output axons: one per (neuron, destination core) pair over all out-edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from spikec.analysis.hardware import HardwareSpec
from spikec.ir import IF, Conv2d, Graph, Readout, SumPool2d
from spikec.ir.nodes import Edge, SigmaDelta

WORD = 64
BLOCK = 64            # synapses per block (nengo-loihi: n_synapses = 63, +1)
HEADER = 4 + 6        # synapse index + synapse count fields of a block
INDEX_BITS = (0, 6, 7, 8, 9, 10, 11, 12)


@dataclass
class LayerResources:
    """Resource estimate of one population (totals over its cores)."""

    name: str
    neurons: int
    cores: int = 0
    cores_shared: int = 0
    synapses: int = 0
    synapses_shared: int = 0
    syn_mem_bits: int = 0
    syn_mem_bits_shared: int = 0
    max_core_syn_mem_bits: int = 0
    in_axons_max: int = 0
    out_axons_max: int = 0
    binding: str = ""
    feasible: bool = True
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ResourceEstimate:
    layers: dict[str, LayerResources]
    cores: int
    chips: int
    cores_shared: int
    chips_shared: int
    feasible: bool
    #: {population: core index of each neuron (flat)} under the discrete estimate
    core_of: dict[str, np.ndarray] = field(default_factory=dict)


# ----------------------------------------------------------------------------- synapse memory model


def _ceil_word(bits):
    return ((bits + (WORD - 1)) >> 6) << 6


def axon_bits(n, bits_per_synapse):
    """Memory bits of one input axon with n synapses (vectorised over n and bits_per_synapse)."""
    n = np.asarray(n, np.int64)
    bits_per_synapse = np.asarray(bits_per_synapse, np.int64)
    full, rest = n >> 6, n & (BLOCK - 1)
    rest_bits = _ceil_word(rest * bits_per_synapse + HEADER) * (rest > 0)
    return full * _ceil_word(BLOCK * bits_per_synapse + HEADER) + rest_bits


def index_bits(n_core: int, spec: HardwareSpec) -> int:
    need = max(0, math.ceil(math.log2(n_core))) if n_core > 1 else 0
    if spec.index_bits_max is None:
        return 0 if need == 0 else max(6, need)
    return next((b for b in INDEX_BITS if b >= need), need)


def delay_bits(edge: Edge) -> int:
    return 0 if edge.delay == 0 else math.ceil(math.log2(edge.delay + 1))


# ----------------------------------------------------------------------------- per-core statistics


def _split(n: int, k: int, shape=None) -> np.ndarray:
    """Core index of each neuron (flat C, H, W order) when n neurons are cut into k near-equal parts,
    contiguous in (H, W, C) order when a map's `shape` is given (spatial tiles holding every channel:
    the discrete estimate), else in flat order (channel planes: the shared-kernel estimate)."""
    sizes = np.full(k, n // k, np.int64)
    sizes[: n % k] += 1
    by_rank = np.repeat(np.arange(k), sizes)
    if shape is None or len(shape) != 3:
        return by_rank
    c, h, w = shape
    flat = np.arange(n)
    return by_rank[(flat % (h * w)) * c + flat // (h * w)]


def binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """int32 ones where `matrix` (csr, zeros eliminated) has a synapse."""
    return sp.csr_matrix((np.ones(matrix.nnz, np.int32), matrix.indices, matrix.indptr), shape=matrix.shape)


def _assign(core_of: np.ndarray, k: int) -> sp.csr_matrix:
    n = core_of.size
    return sp.csr_matrix((np.ones(n, np.int32), (core_of, np.arange(n))), shape=(k, n))


def kernel_table(edge: Edge, matrix: sp.csr_matrix, src_shape, dst_shape) -> np.ndarray | None:
    """[C_out, C_in] nonzero kernel entries per channel pair, for conv-like edges; else None."""
    if not all(isinstance(op, (Conv2d, SumPool2d)) for op in edge.ops):
        return None
    c_in, plane_in = src_shape[0], src_shape[1] * src_shape[2]
    c_out, plane_out = dst_shape[0], dst_shape[1] * dst_shape[2]
    coo = matrix.tocoo()
    per_row = np.bincount(coo.row * c_in + coo.col // plane_in, minlength=matrix.shape[0] * c_in)
    return per_row.reshape(c_out, plane_out, c_in).max(axis=1)


@dataclass
class _EdgeInfo:
    edge: Edge
    binary: sp.csr_matrix            # [n_dst, n_src] int32 ones where a synapse exists
    kernels: np.ndarray | None       # conv-like edges: [C_out, C_in] kernel entries
    plane_out: int
    positions: sp.csr_matrix | None = None    # conv-like edges: [n_src, H*W] source neuron -> position


def _core_stats(info: list[_EdgeInfo], shape, k: int, spec: HardwareSpec, shared: bool):
    """(per-core memory bits, per-core input axons, per-core stored synapses) for a k-core split."""
    n = int(np.prod(shape))
    core_of = _split(n, k, None if shared else shape)
    assign = _assign(core_of, k)
    sizes = np.bincount(core_of, minlength=k)
    mem = np.zeros(k, np.int64)
    axons = np.zeros(k, np.int64)
    stored = np.zeros(k, np.int64)
    for e in info:
        per_axon = (assign @ e.binary).tocsr()          # [k, n_src] synapses per (core, axon)
        d = delay_bits(e.edge)
        if shared and e.kernels is not None:
            # population axons: one per source position, the channel travels with the spike
            axons += np.diff((per_axon @ e.positions).tocsr().indptr)
            channels = assign @ sp.csr_matrix(
                (np.ones(n, np.int32), (np.arange(n), np.arange(n) // e.plane_out)),
                shape=(n, e.kernels.shape[0]))
            present = (channels.toarray() > 0).astype(np.int64)    # [k, C_out]
            entries = present @ e.kernels                            # [k, C_in]
            idx = np.array([index_bits(int(s), spec) for s in sizes], np.int64)
            mem += axon_bits(entries, (spec.weight_bits + d + idx)[:, None]).sum(axis=1)
            stored += entries.sum(axis=1)
            continue
        axons += np.diff(per_axon.indptr)
        rows = np.repeat(np.arange(k), np.diff(per_axon.indptr))
        counts = per_axon.data.astype(np.int64)
        idx = np.array([index_bits(int(s), spec) for s in sizes], np.int64)
        bits = np.minimum(axon_bits(counts, spec.weight_bits + d + idx[rows]),      # sparse
                          axon_bits(sizes[rows], spec.weight_bits + d))             # dense row
        mem += np.bincount(rows, weights=bits, minlength=k).astype(np.int64)
        stored += np.bincount(rows, weights=counts, minlength=k).astype(np.int64)
    return mem, axons, stored


def _utilisation(n, k, mem, axons, out_axons, spec: HardwareSpec) -> dict[str, float]:
    return {
        "compartments": math.ceil(n / k) / spec.compartments_per_core,
        "synaptic memory": float(mem.max(initial=0)) / spec.syn_mem_bits,
        "input axons": float(axons.max(initial=0)) / spec.in_axons_per_core,
        "output axons": float(out_axons.max(initial=0)) / spec.out_axons_per_core,
    }


@dataclass
class _Part:
    """One population's split under one synapse estimate."""

    k: int
    core_of: np.ndarray
    mem: np.ndarray
    axons: np.ndarray
    stored: np.ndarray
    out_axons: np.ndarray
    fits_inputs: bool = True
    fits_outputs: bool = True


def _fit_inputs(info, shape, spec, shared) -> _Part:
    """Smallest k (by the growth rule) whose cores fit compartments, memory and input axons.

    A limit that even one neuron per core cannot meet is reported (fits_inputs False) and does not
    drive the growth, so one impossible neuron does not spread a layer over n cores."""
    n = int(np.prod(shape))
    fan_in = sum((np.diff((e.binary @ e.positions).tocsr().indptr) if shared and e.kernels is not None
                  else np.diff(e.binary.indptr) for e in info), np.zeros(n, np.int64))
    one_bits = sum((np.diff(e.binary.indptr) * int(axon_bits(1, spec.weight_bits + delay_bits(e.edge)))
                    for e in info), np.zeros(n, np.int64))
    mem_ok = one_bits.max(initial=0) <= spec.syn_mem_bits
    axons_ok = fan_in.max(initial=0) <= spec.in_axons_per_core
    k = math.ceil(n / spec.compartments_per_core)
    while True:
        mem, axons, stored = _core_stats(info, shape, k, spec, shared)
        over = max(mem.max(initial=0) / spec.syn_mem_bits if mem_ok else 0.0,
                   axons.max(initial=0) / spec.in_axons_per_core if axons_ok else 0.0)
        if over <= 1 or k >= n:
            core_of = _split(n, k, None if shared else shape)
            return _Part(k, core_of, mem, axons, stored, np.zeros(k, np.int64), mem_ok and axons_ok)
        k = min(n, max(k + 1, math.ceil(k * over)))


def messages_per_neuron(graph: Graph, name: str, binaries, core_of) -> np.ndarray:
    """Destination cores reached by each neuron of `name`, summed over its out-edges."""
    n = int(np.prod(graph.node(name).shape))
    out = np.zeros(n, np.int64)
    for i, e in enumerate(graph.edges):
        if e.src != name:
            continue
        dst_core = core_of[e.dst]
        reach = (_assign(dst_core, int(dst_core.max()) + 1) @ binaries[i]).tocsc()
        out += np.diff(reach.indptr)
    return out


def _partition(graph, placed, infos, binaries, spec, shared) -> dict[str, _Part]:
    parts = {p.name: _fit_inputs(infos[p.name], p.shape, spec, shared) for p in placed}
    # output axons: last layer first, so every destination's split is final when its sources are fitted
    for pop in reversed([p for p in placed if graph.out_edges(p.name)]):
        n, part = int(np.prod(pop.shape)), parts[pop.name]
        msgs = messages_per_neuron(graph, pop.name, binaries, {q: v.core_of for q, v in parts.items()})
        part.fits_outputs = msgs.max(initial=0) <= spec.out_axons_per_core
        while True:
            part.out_axons = np.bincount(part.core_of, weights=msgs, minlength=part.k).astype(np.int64)
            over = part.out_axons.max(initial=0) / spec.out_axons_per_core
            if over <= 1 or part.k >= n or not part.fits_outputs:
                break
            k = min(n, max(part.k + 1, math.ceil(part.k * over)))
            mem, axons, stored = _core_stats(infos[pop.name], pop.shape, k, spec, shared)
            core_of = _split(n, k, None if shared else pop.shape)
            part = parts[pop.name] = _Part(k, core_of, mem, axons, stored, np.zeros(k, np.int64),
                                           part.fits_inputs, part.fits_outputs)
    return parts


def estimate_resources(graph: Graph, matrices: list[sp.csr_matrix], spec: HardwareSpec) -> ResourceEstimate:
    """Cores per layer and in total, for the discrete and the shared-weight synapse estimates."""
    binaries = [binary(m) for m in matrices]
    placed = [p for p in graph.populations if isinstance(p, (IF, SigmaDelta, Readout))]
    infos: dict[str, list[_EdgeInfo]] = {}
    for pop in placed:
        info = []
        for i, e in enumerate(graph.edges):
            if e.dst != pop.name:
                continue
            src_shape = graph.node(e.src).shape
            kernels = kernel_table(e, matrices[i], src_shape, pop.shape) if len(pop.shape) == 3 else None
            plane = pop.shape[1] * pop.shape[2] if len(pop.shape) == 3 else 1
            positions = None
            if kernels is not None:
                n_src, plane_in = int(np.prod(src_shape)), src_shape[1] * src_shape[2]
                positions = sp.csr_matrix((np.ones(n_src, np.int32), (np.arange(n_src),
                                           np.arange(n_src) % plane_in)), shape=(n_src, plane_in))
            info.append(_EdgeInfo(e, binaries[i], kernels, plane, positions))
        infos[pop.name] = info
    discrete = _partition(graph, placed, infos, binaries, spec, shared=False)
    shared = _partition(graph, placed, infos, binaries, spec, shared=True)
    layers: dict[str, LayerResources] = {}
    for pop in placed:
        d, s = discrete[pop.name], shared[pop.name]
        row = LayerResources(
            pop.name, int(np.prod(pop.shape)), cores=d.k, cores_shared=s.k,
            synapses=sum(int(x.binary.nnz) for x in infos[pop.name]), synapses_shared=int(s.stored.sum()),
            syn_mem_bits=int(d.mem.sum()), syn_mem_bits_shared=int(s.mem.sum()),
            max_core_syn_mem_bits=int(d.mem.max(initial=0)), in_axons_max=int(d.axons.max(initial=0)),
            out_axons_max=int(d.out_axons.max(initial=0)))
        util = _utilisation(row.neurons, d.k, d.mem, d.axons, d.out_axons, spec)
        row.binding = max(util, key=util.get)
        if not d.fits_inputs:
            row.notes.append("one neuron's inputs exceed a core's synaptic memory or input axons "
                             "(would need multi-compartment / dendritic splitting, not modelled)")
        if not d.fits_outputs:
            row.notes.append("one neuron reaches more destination cores than a core has output axons")
        if d.fits_inputs and not s.fits_inputs:
            row.notes.append("the shared-weight estimate does not fit even one neuron per core")
        row.feasible = d.fits_inputs and d.fits_outputs
        layers[pop.name] = row
    cores = sum(r.cores for r in layers.values())
    cores_shared = sum(r.cores_shared for r in layers.values())
    return ResourceEstimate(
        layers=layers, cores=cores, chips=math.ceil(cores / spec.cores_per_chip),
        cores_shared=cores_shared, chips_shared=math.ceil(cores_shared / spec.cores_per_chip),
        feasible=all(r.feasible for r in layers.values()),
        core_of={name: part.core_of for name, part in discrete.items()})
