"""IR graph -> a plan of Lava processes and connections (pure numpy/scipy; never imports lava).

The plan is what both the Lava backend (which instantiates it) and the `format="lava"` exporter
(which writes it out as a Python module) work from, so the two cannot drift apart.

Mapping (docs/lava.md has the full table):
  Input     -> lava.proc.io.source.RingBuffer: the current (one column, repeated) or the spike
               train zero-padded to the run length (the RingBuffer cycles, so it spans the run).
  Edge      -> the whole op chain as one sparse matrix (spikec.ir.connectivity.chain_matrix; this
               covers Conv2d, SumPool2d, Flatten and Dense alike), block-diagonal over the batch,
               split into base-256 digits d_j so that each digit is exact on Loihi's 8-bit mixed-sign
               synapse: Sparse(weights=2*d_j, weight_exp=8j-1+e, sign_mode=MIXED) for the edge's
               weight exponent e. Almost every edge has a single digit (|w| <= 128).
               delay > 0 -> DelaySparse with that delay.
               Sources that send graded or signed values get num_message_bits > 0.
  IF        -> lava.proc.lif.process.LIF (du=4095, dv=0, vth=theta-1, bias_exp=6) when the layer's
               semantics allow and no saturation is possible (see `stock_lif_reason`), otherwise
               spikec's SpikecIF (spikec.backends.lava.procs.if_neuron).
  SigmaDelta -> lava.proc.sdn.process.SigmaDelta (ReLU, state_exp = shift, bias 0): the layer's
               bias must act from its start step, but a stock neuron adds it from step 1, so every
               bias comes from ONE shared stock SigmaDelta in UNIT mode (its bias = all the layers'
               biases side by side): it emits them once, at step 1, and a DelaySparse per layer
               (identity weights, delay start - 2) delivers each layer's part at its start step.
               Graded messages need num_message_bits = 24 on the synapses they feed.
  Readout   -> SpikecReadout.
Batches: the B samples of a run are laid side by side (flat index b * n + i), so one Lava run
evaluates the whole batch; nothing has to be reset between samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from spikec.errors import ResourceError, UnsupportedError
from spikec.fileio import available_bytes
from spikec.ir.connectivity import chain_matrix, edge_matrix
from spikec.ir.graded import sigma_delta_bounds
from spikec.ir.graph import Graph, broadcast_param
from spikec.ir.nodes import IF, Conv2d, Dense, Input, Readout, SigmaDelta, SumPool2d

LIF_STATE_LIMIT = 2**17 - 1      # stock LIF: v saturates at +-(2^23-1) raw = 2^17 weight units
LIF_VTH_MAX = 2**17 - 1          # 17-bit threshold mantissa
LIF_BIAS_MAX = 4095              # 13-bit signed bias mantissa
SYNAPSE_LIMIT = 2**31 - 1        # Sparse accumulates and sends int32
GRADED_BITS = 24                 # message bits of sigma-delta outputs (SigmaDelta.s_out is 24-bit)
BIAS_SOURCE = "bias_source"      # the stock SigmaDelta that sends every sigma-delta layer's bias
NEURON_MODES = ("auto", "custom", "stock")


@dataclass
class ProcSpec:
    """One Lava process: `kind` selects the class, `args` are its constructor keywords.

    `records` maps a constructor keyword (a file path argument) to the (shape, dtype) of the .npy
    record file the runner must create and pass in.
    """

    name: str
    kind: str
    args: dict
    records: dict = field(default_factory=dict)


@dataclass
class Link:
    src: str
    src_port: str
    dst: str
    dst_port: str


@dataclass
class LayerPlan:
    """How one IR population was mapped: its process name and neuron model."""

    proc: str
    model: str            # "lif" | "if" | "readout"
    recorder: str | None = None
    reason: str = ""      # why a custom process was needed (empty for stock LIF)


@dataclass
class LavaPlan:
    procs: list[ProcSpec]
    links: list[Link]
    hardware_steps: int
    batch: int
    layers: dict[str, LayerPlan]

    def proc(self, name: str) -> ProcSpec:
        return next(p for p in self.procs if p.name == name)


BYTES_PER_SYNAPSE = 48   # CSR int64 data + int32 index, the 2w copy, delays, Lava's own copy in its process


def synapse_bound(ops, src_shape) -> int:
    """An upper bound on an op chain's synapses for one sample: targets times the product of the
    ops' fan-ins (a padded conv's border positions count as if inside)."""
    shape, fan = tuple(src_shape), 1
    for op in ops:
        fan *= {Conv2d: lambda o: int(np.prod(o.weight.shape[1:])), Dense: lambda o: o.weight.shape[1],
                SumPool2d: lambda o: o.kernel[0] * o.kernel[1]}.get(type(op), lambda o: 1)(op)
        shape = op.output_shape(shape)
    return int(np.prod(shape)) * fan


def check_plan_memory(graph: Graph, batch: int, available: int | None = None) -> int:
    """Raise ResourceError when the Lava network for `batch` samples would not fit in memory (Lava's
    Sparse processes hold every synapse, block-diagonal over the batch); return the estimate (bytes)."""
    need = BYTES_PER_SYNAPSE * batch * sum(synapse_bound(e.ops, graph.nodes[e.src].shape) for e in graph.edges)
    free = available_bytes() if available is None else available
    if free is not None and need > free:
        per_sample = need // batch
        raise ResourceError(
            f"a Lava network of {batch} sample(s) needs about {need / 2**30:.1f} GB ({per_sample / 2**30:.2f} GB "
            f"per sample: every synapse is an entry of a Sparse process), but {free / 2**30:.1f} GB is available; "
            f"use a smaller batch_size (at most {max(free // max(per_sample, 1), 0)}), or the torch backend, "
            "which is bit-exact with Lava's fixed-point models")
    return need


def _ident(name: str) -> str:
    return name.replace(".", "_")


def weight_digits(matrix: sp.csr_matrix) -> list[tuple[sp.csr_matrix, int]]:
    """Split an integer matrix into balanced base-256 digits: M = sum_j D_j * 256^j, D_j in [-128, 127].

    Returns [(2 * D_j, weight_exp_j = 8j - 1)]: Lava's mixed-sign synapse keeps even weights in
    [-256, 254] exactly, and shifts the per-neuron sum by weight_exp after summation.
    """
    rest = matrix.tocsr().astype(np.int64)
    out = []
    j = 0
    while True:
        digit = rest.copy()
        digit.data = (digit.data + 128) % 256 - 128
        digit.eliminate_zeros()
        if digit.nnz or j == 0:
            out.append(((2 * digit).tocsr(), 8 * j - 1))
        rest = (rest - digit).tocsr()
        rest.data //= 256
        rest.eliminate_zeros()
        if rest.nnz == 0:
            return out
        j += 1


def _source_max(graph: Graph, name: str, x: np.ndarray | None, graded: dict | None = None) -> np.ndarray | int:
    """Largest |value| the population can emit per step: per flat neuron of one sample when the
    input data are known, else a static bound. `graded`: per sigma-delta layer, its largest |message|
    in this run (see graded_peaks)."""
    node = graph.nodes[name]
    if isinstance(node, SigmaDelta):
        return graded[name]
    if isinstance(node, Input):
        if node.encoding == "spikes":
            return 1
        if x is not None:
            return np.abs(x.reshape(x.shape[0], -1)).max(axis=0)
        return 2 ** (node.value_bits - 1) - 1
    return 1


def current_bounds(graph: Graph, name: str, x: np.ndarray | None,
                   graded: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron bounds (lo, hi) of the summed synaptic input of `name` in any one step."""
    n = int(np.prod(graph.nodes[name].shape))
    lo = np.zeros(n, np.int64)
    hi = np.zeros(n, np.int64)
    for e in graph.in_edges(name):
        m = edge_matrix(e, graph.nodes[e.src].shape)
        smax = _source_max(graph, e.src, x, graded)
        signed_src = (isinstance(graph.nodes[e.src], Input) and graph.input.encoding != "spikes") or (
            isinstance(graph.nodes[e.src], IF) and graph.nodes[e.src].theta_neg is not None) or (
            isinstance(graph.nodes[e.src], SigmaDelta))
        vec = np.broadcast_to(np.asarray(smax, np.int64), (m.shape[1],))
        pos = m.multiply(m > 0).tocsr() @ vec
        neg = -(m.multiply(m < 0).tocsr() @ vec)
        if signed_src:
            hi += pos + neg
            lo -= pos + neg
        else:
            hi += pos
            lo -= neg
    return lo, hi


def stock_lif_reason(graph: Graph, layer: IF, hardware_steps: int, x: np.ndarray | None,
                     check_range: bool = True, graded: dict | None = None) -> str:
    """'' if Lava's stock LIF reproduces `layer` exactly, else why not.

    Stock LIF (du=4095, dv=0) fires on v > vth, resets to zero, adds its bias from step 1, keeps v in
    24 bits of 1/64 weight units (saturating at 2^17 weight units, without any count) and wraps its
    current at 2^17. So it needs: reset "zero", no theta_neg / schedule / presim, one threshold for
    the layer, and - with `check_range` - a static proof that the reference never saturates
    and Lava never wraps or saturates either (then both report zero saturations).
    """
    if layer.reset != "zero":
        return "subtract reset"
    if layer.theta_neg is not None:
        return "signed spikes"
    if layer.bias_schedule is not None:
        return "bias schedule"
    if layer.presim:
        return "SRP pre-simulation"
    theta = np.unique(layer.theta)
    if theta.size != 1:
        return "per-neuron thresholds"
    theta = int(theta[0])
    if theta - 1 > LIF_VTH_MAX:
        return "threshold beyond 17 bits"
    bias = broadcast_param(layer.bias, layer.shape).ravel()
    v_init = broadcast_param(layer.v_init, layer.shape).ravel()
    if np.abs(bias).max(initial=0) > LIF_BIAS_MAX:
        return "bias beyond 13 bits"
    start = graph.start_steps()[layer.name]
    v0 = v_init - (start - 1) * bias   # stock bias runs from t = 1: start early enough to arrive at v_init
    if start > 1:  # potentials v0 + j * bias, j = 1 .. start-1, must stay below threshold
        pre_max = np.where(bias > 0, v_init, v0 + bias)
        if np.any(pre_max >= theta):
            return "it would fire before the layer's start step (v_init or bias too large)"
    if not check_range:
        return ""
    lo, hi = current_bounds(graph, layer.name, x, graded)
    limit = min(LIF_STATE_LIMIT, 2 ** (layer.state_bits - 1) - 1)
    if max(-lo.min(initial=0), hi.max(initial=0)) >= 2**17:
        return "per-step input may reach 2^17 (stock LIF current wraps)"
    top = np.maximum(np.maximum(theta - 1, v_init), v0) + hi + np.maximum(bias, 0)
    local = hardware_steps - start + 1
    bottom = np.minimum(np.minimum(v_init, v0), 0) + local * np.minimum(lo + np.minimum(bias, 0), 0)
    if top.max(initial=0) > limit or -bottom.min(initial=0) > limit:
        return "membrane could saturate (stock LIF cannot count saturations)"
    return ""


def message_bits(graph: Graph, name: str) -> int:
    """num_message_bits for synapses fed by population `name` (0 = binary spikes)."""
    node = graph.nodes[name]
    if isinstance(node, Input):
        return 0 if node.encoding == "spikes" else min(int(node.value_bits), 31)
    if isinstance(node, SigmaDelta):
        return GRADED_BITS
    return 2 if node.theta_neg is not None else 0


def _tile(value: np.ndarray, shape, batch: int) -> np.ndarray:
    return np.tile(np.asarray(broadcast_param(value, shape), np.int64).ravel(), batch)


def source_data(graph: Graph, x: np.ndarray, hardware_steps: int) -> np.ndarray:
    """RingBuffer data [B * n_in, T]: one column for currents, the zero-padded train for spikes."""
    batch = x.shape[0]
    if graph.input.encoding == "current":
        return x.reshape(batch, -1).reshape(-1, 1).astype(np.int32)
    n = int(np.prod(graph.input.shape))
    if graph.input.encoding == "delta":       # the sample at step 1, then nothing (the buffer spans the run)
        data = np.zeros((batch * n, hardware_steps + 1), np.int32)
        data[:, 0] = x.reshape(-1)
        return data
    data = np.zeros((batch * n, hardware_steps), np.int32)
    train = x.reshape(batch, x.shape[1], n)[:, :hardware_steps]       # [B, S, n]
    data[:, :train.shape[1]] = train.transpose(0, 2, 1).reshape(batch * n, -1)
    return data


def build_plan(graph: Graph, x: np.ndarray | None, steps: int, *, batch: int | None = None,
               record: bool = False, record_v: bool = False, neurons: str = "auto") -> LavaPlan:
    """Plan the Lava network for `graph` run for `steps` evaluated steps.

    x: the validated int64 inputs (then batch = len(x) and the input data tighten the range proofs
    for stock LIF), or None for a data-independent plan of `batch` samples (the source's data is
    then left as None for the caller to fill in).
    neurons: "auto" (stock LIF where provably exact), "custom" (SpikecIF everywhere) or "stock"
    (stock LIF wherever the layer's features allow, without the no-saturation proof; such layers
    then report zero saturations unchecked - for benchmarks and stock-Loihi deployment).
    """
    if neurons not in NEURON_MODES:
        raise UnsupportedError(f"neurons must be one of {NEURON_MODES}, got {neurons!r}")
    graph.validate()
    batch = x.shape[0] if x is not None else (batch or 1)
    hw = graph.hardware_steps(steps)
    starts = graph.start_steps()
    procs: list[ProcSpec] = []
    links: list[Link] = []
    layers: dict[str, LayerPlan] = {}
    inp = graph.input
    src_name = "src_" + _ident(inp.name)
    procs.append(ProcSpec(src_name, "source", {"data": None if x is None else source_data(graph, x, hw)}))
    layers[inp.name] = LayerPlan(src_name, "source")
    graded = graded_peaks(graph, x, steps)
    if graph.sigma_delta_layers:
        _plan_bias_source(graph, batch, procs)
    for name in graph.topo_order():
        node = graph.nodes[name]
        if isinstance(node, IF):
            _plan_if(graph, node, x, hw, batch, record, record_v, neurons, procs, links, layers, graded)
        elif isinstance(node, SigmaDelta):
            _plan_sigma_delta(graph, node, hw, batch, record, procs, links, layers)
        elif isinstance(node, Readout):
            proc = "out_" + _ident(name)
            n = int(np.prod(node.shape))
            procs.append(ProcSpec(proc, "readout", {
                "bias": _tile(node.bias, node.shape, batch), "start": starts[name], "skip": node.skip,
                "steps": steps, "state_bits": node.state_bits, "bias_steps": node.bias_steps},
                records={"acc_path": ((batch * n,), "int64"), "sat_path": ((1,), "int64")}))
            layers[name] = LayerPlan(proc, "readout")
        else:
            continue
        for i, edge in enumerate(graph.in_edges(name)):
            _plan_edge(graph, edge, i, x, batch, procs, links, layers, graded)
    return LavaPlan(procs, links, hw, batch, layers)


def graded_peaks(graph: Graph, x: np.ndarray | None, steps: int) -> dict[str, int]:
    """{sigma-delta layer: largest |message| it can send}: with data, what it sends in an exact run
    of the torch backend on `x` (the static worst case of a layer without an upper clip lies far
    above any real message); without data, the static bound (spikec.ir.graded)."""
    if not graph.sigma_delta_layers:
        return {}
    if x is None:
        return {k: b.emit for k, b in sigma_delta_bounds(graph, graph.hardware_steps(steps)).items()}
    from spikec.backends.torch.backend import run as torch_run

    trace = torch_run(graph, x, steps, record=True)
    return {layer.name: int(np.abs(trace.spikes[layer.name]).max(initial=0)) for layer in graph.sigma_delta_layers}


def _bias_offsets(graph: Graph, batch: int) -> dict[str, int]:
    """Where each sigma-delta layer's biases start in the shared bias source."""
    offsets, at = {}, 0
    for layer in graph.sigma_delta_layers:
        offsets[layer.name] = at
        at += batch * int(np.prod(layer.shape))
    return offsets


def _plan_bias_source(graph: Graph, batch: int, procs) -> None:
    biases = np.concatenate([_tile(layer.bias, layer.shape, batch) for layer in graph.sigma_delta_layers])
    procs.append(ProcSpec(BIAS_SOURCE, "sigma_delta", {"shape": (biases.size,), "vth": 0, "bias": biases,
                                                       "act_mode": "UNIT"}))


def _plan_sigma_delta(graph, layer: SigmaDelta, hw, batch, record, procs, links, layers) -> None:
    n = batch * int(np.prod(layer.shape))
    start = graph.start_steps()[layer.name]
    proc = "sd_" + _ident(layer.name)
    procs.append(ProcSpec(proc, "sigma_delta", {
        "shape": (n,), "vth": layer.vth / 2 ** layer.shift, "state_exp": layer.shift}))
    if np.any(layer.bias):
        at = _bias_offsets(graph, batch)[layer.name]
        total = sum(batch * int(np.prod(p.shape)) for p in graph.sigma_delta_layers)
        pick = sp.csr_matrix((np.full(n, 2, np.int64), (np.arange(n), np.arange(at, at + n))), shape=(n, total))
        args = {"weights": pick, "weight_exp": -1, "num_weight_bits": 8, "sign_mode": "MIXED",
                "num_message_bits": GRADED_BITS}
        kind, delay = "sparse", start - 2     # sent at step 1, arriving at step 2 + delay = start
        if delay:
            delays = pick.copy()
            delays.data = np.full(delays.nnz, delay, np.int64)
            kind = "delay_sparse"
            args.update(delays=delays, max_delay=delay)
        syn = f"syn_bias__{_ident(layer.name)}"
        procs.append(ProcSpec(syn, kind, args))
        links += [Link(BIAS_SOURCE, "s_out", syn, "s_in"), Link(syn, "a_out", proc, "a_in")]
    rec = None
    if record:
        rec = "rec_" + _ident(layer.name)
        procs.append(ProcSpec(rec, "recorder", {"shape": (n,)}, records={"path": ((hw, n), "int64")}))
        links.append(Link(proc, "s_out", rec, "a_in"))
    layers[layer.name] = LayerPlan(proc, "sigma_delta", rec)


def _plan_if(graph, layer: IF, x, hw, batch, record, record_v, neurons, procs, links, layers, graded) -> None:
    n = int(np.prod(layer.shape))
    start = graph.start_steps()[layer.name]
    reason = "voltages recorded (record_v)" if record_v else "custom neurons requested"
    if not record_v and neurons != "custom":
        reason = stock_lif_reason(graph, layer, hw, x, check_range=neurons == "auto", graded=graded)
    proc = "n_" + _ident(layer.name)
    if not reason:
        bias = _tile(layer.bias, layer.shape, batch)
        v0 = _tile(layer.v_init, layer.shape, batch) - (start - 1) * bias
        procs.append(ProcSpec(proc, "lif", {
            "shape": (batch * n,), "du": 4095, "dv": 0, "vth": int(layer.theta.max()) - 1,
            "v": v0 * 64, "bias_mant": bias, "bias_exp": 6}))
        rec = None
        if record:
            rec = "rec_" + _ident(layer.name)
            procs.append(ProcSpec(rec, "recorder", {"shape": (batch * n,)},
                                  records={"path": ((hw, batch * n), "int8")}))
            links.append(Link(proc, "s_out", rec, "a_in"))
        layers[layer.name] = LayerPlan(proc, "lif", rec)
        return
    sched = layer.bias_schedule
    records = {"sat_path": ((1,), "int64")}
    if record:
        records["spikes_path"] = ((hw, batch * n), "int8")
    if record_v:
        records["v_path"] = ((hw, batch * n), "int64")
    procs.append(ProcSpec(proc, "if", {
        "theta": _tile(layer.theta, layer.shape, batch),
        "v_init": _tile(layer.v_init, layer.shape, batch),
        "bias": _tile(layer.bias, layer.shape, batch),
        "theta_neg": None if layer.theta_neg is None else _tile(layer.theta_neg, layer.shape, batch),
        "schedule": None if sched is None else np.stack([_tile(row, layer.shape, batch) for row in sched]),
        "start": start, "presim": layer.presim, "reset": layer.reset, "gate": layer.gate,
        "state_bits": layer.state_bits}, records=records))
    layers[layer.name] = LayerPlan(proc, "if", reason=reason)


def _plan_edge(graph, edge, index, x, batch, procs, links, layers, graded) -> None:
    src = graph.nodes[edge.src]
    matrix = chain_matrix(edge.ops, src.shape)   # weight mantissas; the edge's exponent goes to weight_exp
    smax = np.broadcast_to(np.asarray(_source_max(graph, edge.src, x, graded), np.int64), (matrix.shape[1],))
    peak = int((abs(matrix) @ smax).max(initial=0)) * 2 ** max(edge.weight_exp, 0)
    unproven = x is None and isinstance(src, SigmaDelta)   # an export: the static worst case is no guide
    if peak > SYNAPSE_LIMIT // 2 and not unproven:
        raise UnsupportedError(
            f"edge {edge.name}: one step can deliver a current of up to {peak}, beyond the 32-bit "
            "accumulator of Lava's Sparse synapse")
    if batch > 1:
        matrix = sp.block_diag([matrix] * batch, format="csr", dtype=np.int64)
    bits = message_bits(graph, edge.src)
    dst = layers[edge.dst].proc
    base = f"syn_{_ident(edge.src)}__{_ident(edge.dst)}"
    if any(p.name == base for p in procs):   # a second edge between the same two populations
        base += f"_e{index}"
    digits = weight_digits(matrix)
    if edge.weight_exp < 0 and len(digits) > 1:
        raise UnsupportedError(f"edge {edge.name}: weights beyond 8 bits with a floor exponent: Lava would floor "
                               "each 8-bit digit's current separately, not their sum")
    for j, (weights, exp) in enumerate(digits):
        name = base if j == 0 else f"{base}_d{j}"
        args = {"weights": weights, "weight_exp": exp + edge.weight_exp, "num_weight_bits": 8,
                "sign_mode": "MIXED", "num_message_bits": bits}
        kind = "sparse"
        if edge.delay:
            kind = "delay_sparse"
            delays = weights.copy()
            delays.data = np.full(delays.nnz, int(edge.delay), np.int64)
            args.update(delays=delays, max_delay=int(edge.delay))
        procs.append(ProcSpec(name, kind, args))
        links.append(Link(layers[edge.src].proc, "s_out", name, "s_in"))
        links.append(Link(name, "a_out", dst, "a_in"))
