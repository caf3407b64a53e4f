"""Export an IR graph to a lava-dl netx HDF5 file (`spikec.export(graph, path, format="netx")`).

netx (lava.lib.dl.netx.hdf5.Network) builds a *sequential* network of blocks, each a synapse
(Dense / DelayDense / Conv) plus Lava's stock CUBA LIF neuron. spikec writes only what that loader
reproduces exactly; anything else raises UnsupportedError naming every layer and feature at fault.

What maps (schema: research notes §3, lava/lib/dl/netx/hdf5.py):
  Input                 -> layer 0: type "input", shape (C, H, W) or (N,) (no neuron)
  Edge ending in Dense  -> ("flatten" +) "dense": the edge's whole op chain as one matrix, so pooling
                           before a dense layer is folded in; extra delay -> "delay"
  Conv2d                -> "conv" (weights in PyTorch order, stride/padding/dilation as (y, x))
  SumPool2d             -> "conv" with groups = C and an all-ones kernel
  SumPool2d + Conv2d    -> one "conv" with the pooling folded into a strided kernel (non-overlapping
                           windows; sizes divisible by the window when the conv pads)
  IF                    -> neuron CUBA, iDecay 4096, vDecay 0 (no leak, no current memory),
                           vThMant = theta - 1 (netx fires on v > vth; spikec on v >= theta);
                           bias -> the layer's "bias" (netx: bias_mant with bias_exp 6, i.e. weight
                           units, |bias| <= 4095), per channel or per neuron (netx's W, H, C order)
  Readout               -> a last "dense" layer: without bias no neuron (netx's default non-spiking
                           integrator, iDecay 0, vDecay 4096); with a bias a CUBA IF neuron whose
                           threshold (2^17 - 1) it cannot reach in range. Either way, after running the
                           graph's hardware steps `layers[-1].neuron.v` / 64 is the readout.

Start steps. netx neurons add their bias from hardware step 1, a spikec layer from its start step
(the arrival of its first input). A layer with bias b and start s is exact on netx when its neurons
start at v0 = v_init - (s - 1) * b: they reach v_init at step s - 1, as in spikec, provided none
crosses the threshold on the way (checked per neuron: v0 + j * b < theta for j = 1 .. s - 1; the
layer is refused otherwise). netx's file format has no initial potential, so these v0 are stored
in "/spikec/initial_v/<layer>" and applied by `spikec.backends.netx.run.load_network`, which also
passes the input message bits (netx reads them only from its constructor: lava-dl 0.6 has no file
field for the input's bits; a `messageBits` entry in a neuron group comes back as a NetDict
wrapper, not a number). A graph with spike input and no bias or v_init needs neither:
`netx.hdf5.Network(net_config=path)` alone reproduces it.

A "/spikec" group records the input encoding, the input message bits, the initial potentials, the
IR layer names and the latency; netx ignores it.

Range caveat: stock neurons hold v in 24 bits of 1/64 weight units, so exported layers match
spikec exactly while |v| < 2^17 and per-step input < 2^17 (spikec's own backends saturate at
state_bits instead); the readout integrator wraps at 2^17.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from spikec.errors import UnsupportedError
from spikec.fileio import atomic_path
from spikec.ir.connectivity import edge_matrix
from spikec.ir.graph import Graph, broadcast_param
from spikec.ir.nodes import IF, Conv2d, Edge, Input, Readout, SumPool2d

FORMAT_VERSION = 2          # 2: biases, initial potentials (/spikec/initial_v)
VTH_MAX = 2**17 - 1         # 17-bit vThMant
BIAS_MAX = 4095             # 13-bit signed bias mantissa; netx fixes bias_exp = 6 (weight units)
V_LIMIT = 2**17 - 1         # stock v: 24 bits of 1/64 weight units
LAVA_EXPORT = 'spikec.export(graph, path, format="lava") (a Lava process graph; any graph)'
STOCK_TARGET = "compile with target='loihi-stock'"


# --------------------------------------------------------------------------- expressibility


def netx_problems(graph: Graph) -> list[str]:
    """Everything in `graph` netx cannot express, one line per layer/edge and feature ([] = ok)."""
    graph.validate()
    problems: list[str] = [f"{what}: sigma-delta graphs are not exported to netx (use the Lava module export)"
                           for what in graph.graded_features()]
    order = graph.topo_order()
    for prev, name in zip(order, order[1:]):
        for e in graph.in_edges(name):
            if e.src != prev:
                problems.append(f"edge {e.name}: residual/skip edge (netx layers are strictly sequential; "
                                f"{name} may only receive from {prev}); use {LAVA_EXPORT}")
        if len(graph.in_edges(name)) > 1 and all(e.src == prev for e in graph.in_edges(name)):
            problems.append(f"layer {name}: {len(graph.in_edges(name))} parallel edges from {prev}; "
                            f"use {LAVA_EXPORT}")
        if len(graph.out_edges(prev)) > 1:
            problems.append(f"layer {prev}: feeds {len(graph.out_edges(prev))} populations "
                            f"(netx has no fan-out); use {LAVA_EXPORT}")
        node = graph.nodes[name]
        if isinstance(node, IF):
            problems += [f"layer {name}: {p}" for p in _if_problems(graph, node)]
        elif isinstance(node, Readout):
            problems += [f"readout {name}: {p}" for p in _readout_problems(graph, node)]
        for e in graph.in_edges(name):
            if e.src == prev:
                problems += [f"edge {e.name}: {p}" for p in _edge_problems(graph, e)]
    return problems


def _if_problems(graph: Graph, layer: IF) -> list[str]:
    out = []
    if layer.reset != "zero":
        out.append(f"subtract reset (netx's CUBA neuron resets to zero): {STOCK_TARGET}, or keep the "
                   f"reset and use {LAVA_EXPORT}")
    for feature, used in (("signed spikes (theta_neg)", layer.theta_neg is not None),
                          ("bias schedule", layer.bias_schedule is not None),
                          ("SRP pre-simulation (presim)", bool(layer.presim))):
        if used:
            out.append(f"{feature} (stock CUBA neurons have none): use a method without it and "
                       f"{STOCK_TARGET}, or use {LAVA_EXPORT}")
    if np.unique(layer.theta).size != 1:
        out.append(f"per-channel/per-neuron thresholds (netx has one vThMant per layer); use {LAVA_EXPORT}")
    elif int(layer.theta.max()) - 1 > VTH_MAX:
        out.append(f"theta {int(layer.theta.max())} beyond the 17-bit vThMant; {STOCK_TARGET}")
    if layer.state_bits < 18:
        out.append(f"state_bits {layer.state_bits} (netx neurons saturate at 2^17 weight units); "
                   f"use {LAVA_EXPORT}")
    out += _start_problems(graph, layer, int(layer.theta.max()), layer.v_init)
    return out


def _readout_problems(graph: Graph, readout: Readout) -> list[str]:
    out = []
    if readout.skip:
        out.append(f"skip > 0 (the netx integrator sums every step); use {LAVA_EXPORT}")
    out += _start_problems(graph, readout, VTH_MAX + 1, np.zeros((), np.int64))
    return out


def _start_problems(graph: Graph, pop, theta: int, v_init) -> list[str]:
    """Why `pop`'s bias / v_init cannot be run on netx exactly ([] = it can; see module docstring)."""
    bias = broadcast_param(pop.bias, pop.shape)
    if np.abs(bias).max(initial=0) > BIAS_MAX:
        return [f"bias in [{bias.min()}, {bias.max()}] beyond netx's 13-bit mantissa (|bias| <= {BIAS_MAX}: "
                f"netx fixes bias_exp = 6); {STOCK_TARGET}, or use {LAVA_EXPORT}"]
    v0 = initial_potential(graph, pop)
    out = []
    if np.abs(v0).max(initial=0) > V_LIMIT:
        out.append(f"initial potential v_init - (start - 1) * bias reaches {np.abs(v0).max()} beyond the "
                   f"stock neuron's 2^17 range; use {LAVA_EXPORT}")
    start = graph.start_steps()[pop.name]
    if start > 1:
        # v0 + j * bias for j = 1 .. start-1 is linear in j: its largest value is at an end
        v_init = broadcast_param(v_init, pop.shape)
        first = np.where(bias > 0, v_init, v0 + bias)
        if np.any(first >= theta):
            n = int(np.count_nonzero(first >= theta))
            out.append(f"{n} neuron(s) would fire before the layer's start step {start}: netx neurons add "
                       "their bias from step 1, and starting them at v_init - (start - 1) * bias does not "
                       f"keep them below theta {theta}; use {LAVA_EXPORT}")
    return out


def initial_potential(graph: Graph, pop) -> np.ndarray:
    """v0 = v_init - (start - 1) * bias (full shape, weight units): the potential a netx neuron, which adds
    its bias from step 1, must start at to hold v_init at the layer's start step."""
    start = graph.start_steps()[pop.name]
    v_init = getattr(pop, "v_init", np.zeros((), np.int64))
    return broadcast_param(v_init, pop.shape) - (start - 1) * broadcast_param(pop.bias, pop.shape)


def _edge_problems(graph: Graph, edge: Edge) -> list[str]:
    dst = graph.nodes[edge.dst]
    if len(dst.shape) == 1:
        w = edge_matrix(edge, graph.nodes[edge.src].shape)
        out = []
        if w.nnz == 0:
            out.append("all weights are zero (netx's weight optimiser cannot handle that)")
        elif w.data.min() < -128 or w.data.max() > 127:
            out.append(f"weights in [{w.data.min()}, {w.data.max()}] beyond Loihi's 8-bit [-128, 127]")
        return out
    try:
        conv = conv_layer(edge, graph.nodes[edge.src].shape)
    except UnsupportedError as err:
        return [str(err)]
    out = []
    if edge.delay:
        out.append("delay on a conv layer (netx conv layers have no delay)")
    if conv.weight.min() < -128 or conv.weight.max() > 127:
        out.append(f"weights in [{conv.weight.min()}, {conv.weight.max()}] beyond Loihi's 8-bit [-128, 127]")
    return out


# --------------------------------------------------------------------------- op folding


def conv_layer(edge: Edge, src_shape) -> Conv2d:
    """The edge's op chain (times 2^weight_exp) as one Conv2d: Conv2d, SumPool2d (depthwise ones)
    or SumPool2d + Conv2d."""
    conv = _chain_conv(edge.ops, src_shape)
    return replace(conv, weight=conv.weight.astype(np.int64) << edge.weight_exp) if edge.weight_exp else conv


def _chain_conv(ops, src_shape) -> Conv2d:
    if len(ops) == 1 and isinstance(ops[0], Conv2d):
        return ops[0]
    if len(ops) == 1 and isinstance(ops[0], SumPool2d):
        return _pool_as_conv(ops[0], src_shape[0])
    if len(ops) == 2 and isinstance(ops[0], SumPool2d) and isinstance(ops[1], Conv2d):
        return _fold_pool_conv(ops[0], ops[1], src_shape)
    names = " + ".join(type(op).__name__ for op in ops)
    raise UnsupportedError(f"op chain {names} has no netx conv equivalent")


def _pool_as_conv(pool: SumPool2d, channels: int) -> Conv2d:
    weight = np.ones((channels, 1) + pool.kernel, np.int64)
    return Conv2d(weight, stride=pool.stride, groups=channels)


def _fold_pool_conv(pool: SumPool2d, conv: Conv2d, shape) -> Conv2d:
    """conv(sumpool_k(x)) as one conv on x: kernel block (ky, kx) spans k x k input pixels."""
    (kh, kw), (sh, sw) = pool.kernel, pool.stride
    if (kh, kw) != (sh, sw):
        raise UnsupportedError("SumPool2d with overlapping windows (stride != kernel) before a conv")
    for size, k, pad in zip(shape[1:], (kh, kw), conv.padding):
        if pad and size % k:
            raise UnsupportedError(f"SumPool2d window {k} does not divide input size {size} "
                                   "before a padded conv")
    c_out, cg, ch, cw = conv.weight.shape
    (dh, dw) = conv.dilation
    weight = np.zeros((c_out, cg, (ch - 1) * dh * kh + kh, (cw - 1) * dw * kw + kw), np.int64)
    for ky in range(ch):
        for kx in range(cw):
            y0, x0 = ky * dh * kh, kx * dw * kw
            weight[:, :, y0:y0 + kh, x0:x0 + kw] = conv.weight[:, :, ky:ky + 1, kx:kx + 1]
    return Conv2d(weight, stride=(conv.stride[0] * kh, conv.stride[1] * kw),
                  padding=(conv.padding[0] * kh, conv.padding[1] * kw), groups=conv.groups)


# --------------------------------------------------------------------------- writing


def export_netx(graph: Graph, path) -> None:
    """Write `graph` as a netx HDF5 file at `path` (atomically), or raise UnsupportedError."""
    problems = netx_problems(graph)
    if problems:
        raise UnsupportedError("netx cannot express this graph:\n  - " + "\n  - ".join(problems))
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _write(graph, f)


def _text(group, name: str, value: str) -> None:
    group.create_dataset(name, data=np.array([value.encode("ascii")]))


def _write(graph: Graph, f) -> None:
    order = graph.topo_order()
    inp: Input = graph.input
    layers = f.create_group("layer")
    first = layers.create_group("0")
    _text(first, "type", "input")
    first.create_dataset("shape", data=np.array(inp.shape, np.int64))
    index = 1
    initial: dict[str, np.ndarray] = {}
    for prev, name in zip(order, order[1:]):
        edge = graph.in_edges(name)[0]
        node = graph.nodes[name]
        src_shape = graph.nodes[prev].shape
        if len(node.shape) == 1:
            if len(src_shape) == 3:
                _text(layers.create_group(str(index)), "type", "flatten")
                index += 1
            group = layers.create_group(str(index))
            _text(group, "type", "dense")
            group.create_dataset("shape", data=np.array(node.shape, np.int64))
            group.create_dataset("weight", data=edge_matrix(edge, src_shape).toarray().astype(np.int64))
            if edge.delay:
                group.create_dataset("delay", data=np.int64(edge.delay))
        else:
            conv = conv_layer(edge, src_shape)
            group = layers.create_group(str(index))
            _text(group, "type", "conv")
            group.create_dataset("shape", data=np.array(node.shape, np.int64))
            group.create_dataset("weight", data=conv.weight)
            group.create_dataset("stride", data=np.array(conv.stride, np.int64))
            group.create_dataset("padding", data=np.array(conv.padding, np.int64))
            group.create_dataset("dilation", data=np.array(conv.dilation, np.int64))
            group.create_dataset("groups", data=np.int64(conv.groups))
        if isinstance(node, IF):
            _write_neuron(group, node, int(node.theta.max()))
        elif np.any(node.bias != 0):      # readout with bias: an IF integrator that never reaches vth
            _write_neuron(group, node, VTH_MAX + 1)
        v0 = initial_potential(graph, node)
        if np.any(v0 != 0):
            initial[name] = v0
        index += 1
    sim = f.create_group("simulation")
    sim.create_dataset("Ts", data=np.int64(1))
    meta = f.create_group("spikec")
    meta.create_dataset("format_version", data=np.int64(FORMAT_VERSION))
    _text(meta, "input_encoding", inp.encoding)
    bits = 0 if inp.encoding == "spikes" else inp.value_bits
    meta.create_dataset("input_message_bits", data=np.int64(bits))
    group = meta.create_group("initial_v")        # IR layer name -> v0 in (C, H, W) / (N,), weight units
    for name, v0 in initial.items():
        group.create_dataset(name, data=v0.astype(np.int64))
    meta.create_dataset("latency", data=np.int64(graph.latency))
    _text(meta, "populations", ",".join(order))


def _write_neuron(group, pop, theta: int) -> None:
    """CUBA IF neuron (no leak, no current memory, v > theta - 1) and the population's bias."""
    neuron = group.create_group("neuron")
    _text(neuron, "type", "CUBA")
    for key, value in (("iDecay", 4096), ("vDecay", 0), ("vThMant", theta - 1), ("refDelay", 1)):
        neuron.create_dataset(key, data=np.int64(value))
    neuron.create_dataset("gradedSpike", data=False)
    if np.any(pop.bias != 0):
        bias = broadcast_param(pop.bias, pop.shape)
        if len(pop.shape) == 3:   # netx broadcasts a (C,) bias per channel, else wants its (W, H, C) order
            per_channel = bool(np.all(bias == bias[:, :1, :1]))
            bias = bias[:, 0, 0] if per_channel else bias.transpose(2, 1, 0)
        group.create_dataset("bias", data=bias.astype(np.int64))
