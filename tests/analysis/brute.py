"""Independent SOP counting for the tests: per-op geometry written out here, no edge_matrix.

A unit impulse at one source neuron is pushed through an edge's ops with plain Python loops; the
synapses that neuron drives are the nonzero entries of the result. SOPs are then a direct loop over
the recorded spikes.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from spikec.ir import Conv2d, Dense, Flatten, SumPool2d


def _conv(op: Conv2d, shape, state):
    c_out, cg, kh, kw = op.weight.shape
    og = c_out // op.groups
    _, h, w = shape
    _, ho, wo = op.output_shape(shape)
    (sh, sw), (ph, pw), (dh, dw) = op.stride, op.padding, op.dilation
    out = defaultdict(int)
    for (c, y, x), value in state.items():
        g, cl = divmod(c, cg)
        for o in range(g * og, (g + 1) * og):
            for ky in range(kh):
                ny = y + ph - ky * dh          # = oy * sh
                if ny < 0 or ny % sh or ny // sh >= ho:
                    continue
                for kx in range(kw):
                    nx = x + pw - kx * dw
                    if nx < 0 or nx % sw or nx // sw >= wo:
                        continue
                    out[(o, ny // sh, nx // sw)] += value * int(op.weight[o, cl, ky, kx])
    return out


def _pool(op: SumPool2d, shape, state):
    _, ho, wo = op.output_shape(shape)
    (kh, kw), (sh, sw) = op.kernel, op.stride
    out = defaultdict(int)
    for (c, y, x), value in state.items():
        for oy in range(ho):
            if not oy * sh <= y < oy * sh + kh:
                continue
            for ox in range(wo):
                if ox * sw <= x < ox * sw + kw:
                    out[(c, oy, ox)] += value
    return out


def _flatten(shape, state):
    _, h, w = shape
    return {((c * h + y) * w + x,): v for (c, y, x), v in state.items()}


def _dense(op: Dense, state):
    out = defaultdict(int)
    for (i,), value in state.items():
        for o in range(op.weight.shape[0]):
            out[(o,)] += value * int(op.weight[o, i])
    return out


def impulse_fanout(edge, src_shape, index: tuple) -> int:
    """Synapses driven by source neuron `index` (a position in src_shape) through `edge`."""
    state = {tuple(index): 1}
    shape = tuple(src_shape)
    for op in edge.ops:
        if isinstance(op, Conv2d):
            state = _conv(op, shape, state)
        elif isinstance(op, SumPool2d):
            state = _pool(op, shape, state)
        elif isinstance(op, Flatten):
            state = _flatten(shape, state)
        else:
            state = _dense(op, state)
        shape = op.output_shape(shape)
    return sum(1 for v in state.values() if v != 0)


class Fanouts:
    """Cached impulse fan-outs per (edge, source position)."""

    def __init__(self, graph):
        self.graph = graph
        self.cache: dict = {}

    def __call__(self, edge, index) -> int:
        key = (id(edge), tuple(int(i) for i in index))
        if key not in self.cache:
            self.cache[key] = impulse_fanout(edge, self.graph.node(edge.src).shape, key[1])
        return self.cache[key]


def brute_edge_counts(graph, x: np.ndarray, trace) -> list[tuple[int, int]]:
    """[(sops, input_macs)] per edge, by looping over every recorded spike / input value."""
    fan = Fanouts(graph)
    total = trace.hardware_steps
    inp = graph.input
    out = []
    for edge in graph.edges:
        sops = macs = 0
        if edge.src == inp.name and inp.encoding == "current":
            for _b, *pos in np.argwhere(x != 0):
                macs += fan(edge, pos)
            macs *= total
        elif edge.src == inp.name:
            for _b, _t, *pos in np.argwhere(x[:, :total] != 0):
                sops += fan(edge, pos)
        else:
            spikes = np.asarray(trace.spikes[edge.src])
            for _t, _b, *pos in np.argwhere(spikes != 0):
                sops += fan(edge, pos)           # |s| = 1 for +1 and -1 spikes alike
        out.append((sops, macs))
    return out
