"""PyTorch backend: runs a graph bit-exactly, one population at a time over all time steps.

Plan of a run (hardware steps t = 1..H, H = latency + steps):
1. Static bounds: every population's emitted values are bounded (spikes by 1, current inputs by
   max|x|), so every edge's current and every membrane has a proven bound. The bounds pick exact
   dtypes (float32 below 2^24, see torch_ops) and prove when no state can saturate. Sign and
   bound also decide which convolutions and dense products may run on int8 kernels (torch_int8).
2. Windows: a population emits nothing before its start step. Without recording, a layer is only
   computed up to the last step that can still reach the readout's evaluated steps (unless it may
   saturate: saturation counts cover every hardware step).
3. In topological order, each IF layer's drive over its whole window is built with ONE batched op
   chain per in-edge (time folded into the batch, shifted by 1 + delay); a current-encoded input is
   constant in time, so its chain runs once. Only the neuron scan (torch_ops.if_scan) loops in time;
   it stores spikes as int8, in the memory layout (NCHW or channels-last) its drive arrived in.
4. The readout sums its input over the evaluated steps; when no saturation is possible it sums the
   spikes first and applies the (linear) ops once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from spikec.backends.torch import int8 as torch_int8
from spikec.backends.torch import ops as ops
from spikec.errors import BackendError
from spikec.ir.graded import sigma_delta_bounds
from spikec.ir.nodes import IF, SigmaDelta
from spikec.trace import Trace

NAME = "torch"


def is_available() -> bool:
    return ops.has_precision_api()


def why_unavailable() -> str:
    if is_available():
        return ""
    return f"PyTorch {torch.__version__} lacks the fp32_precision settings (PyTorch >= 2.9 has them)"


# Samples run together by default on CPU: about this many neuron-steps in the largest population,
# so that the per-layer [steps, chunk, *shape] tensors (int8 spikes, float32 currents) stay a few tens
# of MB, reused from chunk to chunk. LeNet, T=32, 1000 samples (benchmarks/torch_backend.py): with
# the int8 kernels, chunks of 200-250 samples (2^25) ran 1.1-1.2x faster than 65 or 130, 1.5x faster
# than 500 and 2x faster than 1000 at once; with float32 kernels only, chunks of 65 (2^23) ran 1.5x
# faster than 250.
CHUNK_NEURON_STEPS = {"int8": 2 ** 25, "float": 2 ** 23}


def run(graph, inputs, steps, record=False, record_v=False, device=None, chunk=None, every_step=False,
        count_spikes=False) -> Trace:
    """Run `graph` on integer `inputs` for `steps` evaluated steps; same result as the reference.

    every_step: also return the readout after each evaluated step (Trace.outputs [T, B, n_out]),
            so one run to T gives the result of every shorter run.
    count_spikes: also return each IF layer's total |spikes| over all hardware steps.
    device: None or "cpu" (default), "cuda", or a torch.device.
    chunk:  samples processed together (default: sized from CHUNK_NEURON_STEPS on CPU, split into
            equal parts; all at once on CUDA). Results do not depend on it.
    """
    graph.validate()
    x = graph.check_inputs(inputs, steps)
    dev = torch.device("cpu" if device is None else device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendError("torch backend: device 'cuda' requested but CUDA is not available")
    if chunk is None:
        largest = max(int(np.prod(p.shape)) for p in graph.populations)
        per_sample = largest * graph.hardware_steps(steps)
        kernels = "int8" if torch_int8.enabled() else "float"
        most = len(x) if dev.type == "cuda" else max(1, CHUNK_NEURON_STEPS[kernels] // per_sample)
        chunk = max(1, -(-len(x) // -(-len(x) // most)))   # equal chunks: one shape for all kernels
    if not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise BackendError(f"torch backend: chunk must be a positive int, got {chunk!r}")
    workspace = ops.Workspace(dev)
    chains = {id(e): ops.Chain(e.ops, workspace, e.weight_exp) for e in graph.edges}
    with ops.exact_math(dev), torch.no_grad():
        parts = [_Run(graph, x[i:i + chunk], steps, record, record_v, chains, workspace,
                      every_step, count_spikes).execute()
                 for i in range(0, len(x), chunk)]
    return parts[0] if len(parts) == 1 else _concat(parts)


def run_with_layer_hook(graph, inputs, steps: int, hook) -> tuple[Trace, dict]:
    """Run all of `inputs` as ONE chunk, letting `hook(layer, drive)` give each IF layer a bias
    schedule just before it is simulated (layers in topological order; upstream layers are final).

    The hook gets the layer without its bias schedule and that layer's drive (current + bias) at
    local steps 1..n (n >= steps; a list of per-step tensors, read-only), and returns the layer to
    simulate: the same layer with a new (or no) bias_schedule, nothing else changed. Its bounds are
    re-derived, so the run stays exact. Used by FTBC's calibration (one pass per calibration batch
    instead of one run per layer). Returns the trace and {layer name: the layer the hook returned}.
    """
    graph.validate()
    x = graph.check_inputs(inputs, steps)
    workspace = ops.Workspace(torch.device("cpu"))
    chains = {id(e): ops.Chain(e.ops, workspace, e.weight_exp) for e in graph.edges}
    with ops.exact_math(workspace.device), torch.no_grad():
        run_ = _Run(graph, x, steps, False, False, chains, workspace, count_spikes=True, layer_hook=hook)
        trace = run_.execute()
    return trace, run_.replaced


def _same_but_schedule(a, b) -> bool:
    """True when IF layers a and b differ at most in their bias_schedule."""
    import dataclasses

    for f in dataclasses.fields(a):
        if f.name == "bias_schedule":
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        same = np.array_equal(x, y) if isinstance(x, np.ndarray) or isinstance(y, np.ndarray) else x == y
        if not same:
            return False
    return True


def _concat(parts: list[Trace]) -> Trace:
    """One Trace from the traces of consecutive slices of a batch."""
    first = parts[0]
    join = lambda get: None if get(first) is None else {  # noqa: E731
        name: np.concatenate([get(p)[name] for p in parts], axis=1) for name in get(first)}
    saturations = {name: sum(p.saturations[name] for p in parts) for name in first.saturations}
    outputs = None if first.outputs is None else np.concatenate([p.outputs for p in parts], axis=1)
    counts = None if first.spike_counts is None else {
        name: sum(p.spike_counts[name] for p in parts) for name in first.spike_counts}
    return Trace(output=np.concatenate([p.output for p in parts]), steps=first.steps,
                 latency=first.latency, spikes=join(lambda p: p.spikes), saturations=saturations,
                 voltages=join(lambda p: p.voltages), backend=NAME, outputs=outputs, spike_counts=counts)


@dataclass
class _Series:
    """What a population emitted at hardware steps t0 .. t0 + len(values) - 1 ([L, B, *shape]);
    zero at every other step. `constant` series (current inputs) hold [B, *shape] for every t >= t0.
    bound: max |value|; nonneg: no value is negative."""

    t0: int
    values: object
    bound: int
    nonneg: bool
    constant: bool = False


class _Run:
    """One chunk of a batch, run population by population."""

    def __init__(self, graph, x: np.ndarray, steps: int, record: bool, record_v: bool, chains: dict,
                 workspace, every_step: bool = False, count_spikes: bool = False, layer_hook=None):
        self.chains = chains   # {id(edge): Chain}, shared by the chunks of a run
        self.workspace = workspace
        self.graph, self.steps, self.device = graph, steps, workspace.device
        self.record, self.record_v = record, record_v
        self.every_step, self.count_spikes = every_step, count_spikes
        self.layer_hook = layer_hook
        self.replaced: dict[str, IF] = {}
        self.outputs: list[torch.Tensor] = []
        self.spike_counts: dict[str, int] = {}
        self.x = x
        self.batch = x.shape[0]
        self.total = graph.hardware_steps(steps)
        self.start = graph.start_steps()
        self.order = graph.topo_order()
        self.series: dict[str, _Series] = {}
        self.spikes: dict[str, np.ndarray] = {}
        self.volts: dict[str, np.ndarray] = {}
        self.saturations: dict[str, int] = {}

    # ------------------------------------------------------------------ planning
    def _drive_bound(self, name: str, emit_bound: dict[str, int]) -> int:
        return sum(self.chains[id(e)].bounds(emit_bound[e.src])[0] for e in self.graph.in_edges(name))

    def _plan(self) -> None:
        """Static bounds (what may saturate, which dtype) and the last step each population needs."""

        g = self.graph
        inp = g.input
        emit_bound = {n: 1 for n in self.order}
        emit_bound[inp.name] = ops.max_abs(self.x) if inp.encoding != "spikes" else 1
        self.may_saturate: dict[str, bool] = {}
        self.v_bound: dict[str, int] = {}
        self.drive_bound: dict[str, int] = {}
        self.emit_bound = emit_bound
        self.graded_bounds = sigma_delta_bounds(g, self.total, self.x) if g.sigma_delta_layers else {}
        for layer in g.neuron_layers:
            self._bound_layer(layer)
        last: dict[str, int] = {}
        keep_all = self.record or self.record_v or self.count_spikes
        for name in reversed(self.order):
            node = g.nodes[name]
            if node is g.readout or (node is not inp and (keep_all or self.may_saturate[name])):
                last[name] = self.total
            else:
                needs = [last[e.dst] - 1 - e.delay for e in g.out_edges(name)]
                last[name] = min(self.total, max(needs + [self.start[name] - 1]))
        self.last = last

    def _bound_layer(self, layer) -> None:
        """Static drive and membrane bounds of `layer`: whether it may saturate, its exact dtype
        (for a SigmaDelta layer: its sigma and the bound on what it emits)."""
        limit = 2 ** (layer.state_bits - 1) - 1
        if isinstance(layer, SigmaDelta):
            drive = self._drive_bound(layer.name, self.emit_bound)
            self.emit_bound[layer.name] = self.graded_bounds[layer.name].emit
            self.may_saturate[layer.name] = (self.total - self.start[layer.name] + 1) * drive > limit
            self.drive_bound[layer.name] = drive
            return
        drive = (self._drive_bound(layer.name, self.emit_bound) + ops.max_abs(layer.bias)
                 + ops.max_abs(layer.bias_schedule))
        reach = ops.max_abs(layer.v_init) + (self.total - self.start[layer.name] + 1) * drive
        self.may_saturate[layer.name] = reach > limit
        self.v_bound[layer.name] = min(reach, limit)
        self.drive_bound[layer.name] = drive

    # ------------------------------------------------------------------ execution
    def execute(self) -> Trace:
        self._plan()
        g = self.graph
        self._emit_input()
        for name in self.order:
            if isinstance(g.nodes[name], IF):
                self._run_if(g.nodes[name])
            elif isinstance(g.nodes[name], SigmaDelta):
                self._run_sigma_delta(g.nodes[name])
        output = self._run_readout()
        return Trace(output=output, steps=self.steps, latency=g.latency,
                     spikes=self.spikes if self.record else None, saturations=self.saturations,
                     voltages=self.volts if self.record_v else None, backend=NAME,
                     outputs=torch.stack(self.outputs).numpy() if self.every_step else None,
                     spike_counts=self.spike_counts if self.count_spikes else None)

    def _emit_input(self) -> None:
        inp = self.graph.input
        x = torch.tensor(self.x, device=self.device)
        bound = self.emit_bound[inp.name]
        nonneg = bool(self.x.min(initial=0) >= 0)
        if inp.encoding == "current":
            self.series[inp.name] = _Series(1, x, bound, nonneg, constant=True)
        elif inp.encoding == "delta":
            self.series[inp.name] = _Series(1, x[None], bound, nonneg)
        else:
            length = min(x.shape[1], self.last[inp.name])
            self.series[inp.name] = _Series(1, x[:, :length].transpose(0, 1), bound, nonneg)

    def _edge_current(self, edge, first: int, last: int):
        """Current delivered by `edge` at hardware steps first..last.

        Returns (offset, tensor [n, B, *dst_shape], False) covering steps first+offset.. (zero
        elsewhere), (offset, tensor [B, *dst_shape], True) for a constant source from step
        first+offset on, or None when all zero.
        """

        src = self.series[edge.src]
        chain = self.chains[id(edge)]
        lag = 1 + edge.delay
        _, peak = chain.bounds(src.bound)
        dtype = ops.exact_dtype(peak, self.device, edge.name)
        if src.constant:
            offset = max(0, src.t0 + lag - first)
            if first + offset > last:
                return None
            return offset, chain(src.values, dtype, src.bound, src.nonneg), True
        u0 = max(src.t0, first - lag)
        u1 = min(src.t0 + len(src.values) - 1, last - lag)
        if u0 > u1:
            return None
        piece = src.values[u0 - src.t0: u1 - src.t0 + 1]
        n = piece.shape[0]
        out = chain(piece.reshape((n * self.batch,) + piece.shape[2:]), dtype, src.bound, src.nonneg)
        return u0 + lag - first, out.reshape((n, self.batch) + out.shape[1:]), False

    def _run_if(self, layer) -> None:

        name = layer.name
        first, last = self.start[name], self.last[name]
        n = max(0, last - first + 1)   # a layer may start after the last hardware step
        shape = (self.batch,) + tuple(layer.shape)
        if self.layer_hook is not None:
            layer, drive, dtype = self._hooked_drive(layer, first, last, n, shape)
        else:
            dtype = self._dtype(layer)
            drive = self._build_drive(layer, first, last, n, dtype, shape)
        # the scan follows the layout its drive arrives in (int8 convolutions give channels-last)
        out = self.workspace.get(("spikes", name), (n,) + shape, torch.int8,
                                 channels_last=bool(drive) and ops.is_channels_last(drive[0]))
        result = ops.if_scan(layer, drive, self.batch, dtype, self.device,
                         clamp=self.may_saturate[name], record_v=self.record_v, out=out)
        self.series[name] = _Series(first, result.spikes, 1, nonneg=layer.theta_neg is None)
        self.saturations[name] = result.saturations
        if self.count_spikes:
            self.spike_counts[name] = int(result.spikes.abs().sum())
        if self.record:
            full = torch.zeros((self.total,) + shape, dtype=torch.int8)
            full[first - 1: first - 1 + n] = result.spikes.to("cpu", torch.int8)
            self.spikes[name] = full.numpy()
        if self.record_v:
            v0 = ops.param(layer.v_init, layer.shape, torch.int64, "cpu").expand(shape)
            full = v0.expand((self.total,) + shape).clone()
            full[first - 1: first - 1 + n] = result.voltages.to("cpu", torch.int64)
            self.volts[name] = full.numpy()

    def _run_sigma_delta(self, layer: SigmaDelta) -> None:
        """A SigmaDelta layer, visiting only the steps where something can change: its first local
        step (the bias alone may send) and the steps its input is nonzero (at any other step sigma
        and act stay put, so the delta is the old residue, already below vth: nothing is sent).
        The emitted series ends at its last nonzero step and carries its true max |value| as
        bound, so the synapse ops downstream pick the narrowest exact dtype for this run."""
        name = layer.name
        first, last = self.start[name], self.last[name]
        n = max(0, last - first + 1)
        shape = (self.batch,) + tuple(layer.shape)
        currents = self._sparse_currents(name, first, last, n)
        steps = sorted({0} | set(currents)) if n else []
        result = ops.sigma_delta_scan(layer, [currents.get(i) for i in steps], self.batch, self.device)
        sent = result.spikes
        nonzero = [i for i, step in zip(steps, sent) if bool(step.any())]
        length = nonzero[-1] + 1 if nonzero else 0
        values = torch.zeros((length,) + shape, dtype=torch.int64, device=self.device)
        for i, step in zip(steps, sent):
            if i < length:
                values[i] = step
        bound = int(values.abs().max()) if length else 0
        self.series[name] = _Series(first, values, bound, nonneg=bool(length == 0 or values.min() >= 0))
        self.saturations[name] = result.saturations
        if self.count_spikes:
            self.spike_counts[name] = int(torch.count_nonzero(values))
        if self.record:
            full = torch.zeros((self.total,) + shape, dtype=torch.int64)
            full[first - 1: first - 1 + length] = values.to("cpu")
            self.spikes[name] = full.numpy()

    def _sparse_currents(self, name: str, first: int, last: int, n: int) -> dict[int, torch.Tensor]:
        """{local step index i (0-based): the summed input current at step first + i}, int64, only
        for steps some edge delivers at."""
        currents: dict[int, torch.Tensor] = {}
        for edge in self.graph.in_edges(name):
            got = self._edge_current(edge, first, last)
            if got is None:
                continue
            offset, values, constant = got
            pieces = ([(i, values) for i in range(offset, n)] if constant
                      else [(offset + j, v) for j, v in enumerate(values)])
            for i, v in pieces:
                v = v.to(torch.int64)
                currents[i] = currents[i] + v if i in currents else v.clone()
        return currents

    def _hooked_drive(self, layer, first: int, last: int, n: int, shape):
        """Drive of the layer the hook returns: the schedule-free drive plus the new schedule."""
        import dataclasses

        base = dataclasses.replace(layer, bias_schedule=None)
        self._bound_layer(base)
        base_drive = self._build_drive(base, first, last, n, self._dtype(base), shape)
        new = self.layer_hook(base, base_drive)
        if not _same_but_schedule(new, base):
            raise BackendError(f"{layer.name}: a layer hook may only change the bias schedule")
        self._bound_layer(new)
        self.replaced[layer.name] = new
        dtype = self._dtype(new)
        rows = [] if new.bias_schedule is None else new.bias_schedule[:n]
        drive = [d.to(dtype) + ops.param(row, new.shape, dtype, self.device) if i < len(rows) else d.to(dtype)
                 for i, (d, row) in enumerate(zip(base_drive, list(rows) + [None] * (n - len(rows))))]
        return new, drive, dtype

    def _dtype(self, layer):
        """The narrowest exact dtype for `layer`'s scan (from its bounds, see _bound_layer)."""
        theta = max(int(layer.theta.max()), 0 if layer.theta_neg is None else int(layer.theta_neg.max()))
        return ops.exact_dtype(self.v_bound[layer.name] + self.drive_bound[layer.name] + theta, self.device,
                               layer.name)

    def _build_drive(self, layer, first: int, last: int, n: int, dtype, shape) -> list:
        """drive[i] = everything added to v at local step i + 1 (current, bias, bias schedule); for a
        SigmaDelta layer the current alone (its bias acts after the sum)."""

        p = lambda a: ops.param(a, layer.shape, dtype, self.device)  # noqa: E731
        varying = None
        is_if = isinstance(layer, IF)
        constants = [(0, p(layer.bias))] if is_if and layer.bias.any() else []
        for edge in self.graph.in_edges(layer.name):
            got = self._edge_current(edge, first, last)
            if got is None:
                continue
            offset, values, constant = got
            values = values.to(dtype)
            if constant:
                constants.append((offset, values))
                continue
            if varying is None and offset == 0 and len(values) == n:
                varying = values
                continue
            if varying is None:
                varying = self._zeros((n,) + shape, dtype, like=values)
            varying[offset: offset + len(values)] += values
        schedule = [] if not is_if or layer.bias_schedule is None else list(layer.bias_schedule[:n])
        if varying is not None:
            for offset, c in constants:
                varying[offset:] += c
            for i, row in enumerate(schedule):
                varying[i] += p(row)
            return list(varying)
        # constant drive (e.g. the first layer after a current input): one tensor per run of
        # identical steps, shared, so nothing is materialised over time
        cuts = sorted({0, n} | {o for o, _ in constants} | set(range(len(schedule) + 1)))
        drive = []
        for a, b in zip(cuts[:-1], cuts[1:]):
            if a >= n:
                break
            step = self._zeros(shape, dtype, like=constants[-1][1] if constants else None)
            for offset, c in constants:
                if offset <= a:
                    step += c
            if a < len(schedule):
                step += p(schedule[a])
            drive += [step] * (b - a)
        return drive

    def _zeros(self, shape: tuple[int, ...], dtype, like=None):
        """Zeros in the memory layout of `like` (channels-last or not)."""
        flat = torch.zeros(math.prod(shape), dtype=dtype, device=self.device)
        return ops.shaped(flat, shape, like is not None and len(shape) >= 4 and ops.is_channels_last(like))

    # ------------------------------------------------------------------ readout
    def _run_readout(self) -> np.ndarray:

        out = self.graph.readout
        first = self.start[out.name] + out.skip
        last = self.total
        limit = 2 ** (out.state_bits - 1) - 1
        bias = torch.as_tensor(np.broadcast_to(out.bias, out.shape).copy())
        per_step = sum(self.chains[id(e)].bounds(self.emit_bound[e.src])[0]
                       for e in self.graph.in_edges(out.name)) + ops.max_abs(out.bias)
        biased = min(self.steps, out.bias_steps or self.steps)   # evaluated steps that add the bias
        if self.steps * per_step <= limit and not self.every_step:
            acc = self._summed_input(first, last) + biased * bias
            self.saturations[out.name] = 0
            return acc.numpy()
        currents = torch.zeros((self.steps, self.batch) + out.shape, dtype=torch.int64)
        for edge in self.graph.in_edges(out.name):
            got = self._edge_current(edge, first, last)
            if got is None:
                continue
            offset, values, constant = got
            stop = None if constant else offset + len(values)
            currents[offset:stop] += values.to("cpu", torch.int64)
        acc = torch.zeros((self.batch,) + out.shape, dtype=torch.int64)
        saturated = 0
        for i, current in enumerate(currents):
            acc += current + bias if i < biased else current
            saturated += int((acc.abs() > limit).sum())
            acc.clamp_(-limit, limit)
            if self.every_step:
                self.outputs.append(acc.clone())
        self.saturations[out.name] = saturated
        return acc.numpy()

    def _summed_input(self, first: int, last: int):
        """sum over steps first..last of the readout's input current (int64 [B, N]), computed by
        summing each source over time first (the ops are linear)."""

        out = self.graph.readout
        acc = torch.zeros((self.batch,) + out.shape, dtype=torch.int64)
        for edge in self.graph.in_edges(out.name):
            src, lag = self.series[edge.src], 1 + edge.delay
            if src.constant:
                count = max(0, last - max(first, src.t0 + lag) + 1)
                summed = src.values * count
            else:
                u0 = max(src.t0, first - lag)
                u1 = min(src.t0 + len(src.values) - 1, last - lag)
                if u0 > u1:
                    continue
                count = u1 - u0 + 1
                summed = src.values[u0 - src.t0: u1 - src.t0 + 1].sum(0)
            _, peak = self.chains[id(edge)].bounds(src.bound * count)
            dtype = ops.exact_dtype(peak, self.device, edge.name)
            acc += self.chains[id(edge)](summed, dtype, src.bound * count, src.nonneg).to("cpu", torch.int64)
        return acc
