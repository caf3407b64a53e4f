"""Hypothesis strategies: random small integer IF (and sigma-delta) graphs using every IR feature,
with inputs.

Used by the backend suite (every backend == reference interpreter) and the save/load tests.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from spikec.ir import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout, SumPool2d
from spikec.ir.nodes import SigmaDelta

# an edge's weight exponent: mostly 0 (as compiled, except at residual joins), sometimes scaled
WEIGHT_EXPS = st.sampled_from([0, 0, 0, 1, 3])


def _weights(draw, shape, lo=-4, hi=4):
    seed = draw(st.integers(0, 2**31 - 1))
    return np.random.default_rng(seed).integers(lo, hi + 1, size=shape)


def _param(draw, shape, lo, hi):
    """A scalar, per-channel or per-neuron integer parameter in [lo, hi]."""
    kind = draw(st.sampled_from(["scalar", "channel", "neuron"]))
    size = () if kind == "scalar" else (shape[0],) if kind == "channel" else shape
    return _weights(draw, size, lo, hi)


@st.composite
def conv_op(draw, shape):
    c = shape[0]
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0]))
    c_out = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 1)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    op = Conv2d(_weights(draw, (c_out, c // groups, kh, kw)), stride, padding, dilation, groups)
    try:
        op.output_shape(shape)
    except Exception:
        return Conv2d(_weights(draw, (c_out, c // groups, 1, 1)), 1, 0, 1, groups)
    return op


@st.composite
def op_chain(draw, shape):
    """A chain of synapse ops starting from `shape`; returns (ops, out_shape)."""
    ops = []
    if len(shape) == 3:
        kind = draw(st.sampled_from(["conv", "conv", "same", "pool_conv", "pool_dense", "dense"]))
        if kind == "same":
            c = shape[0]
            ops.append(Conv2d(_weights(draw, (draw(st.integers(1, 3)), c, 3, 3)), 1, 1, 1, 1))
        elif kind == "conv":
            ops.append(draw(conv_op(shape)))
        elif kind.startswith("pool") and min(shape[1:]) >= 2:
            k = draw(st.integers(1, 2))
            ops.append(SumPool2d((k, k), draw(st.sampled_from([None, (1, 1)]))))
            pooled = ops[-1].output_shape(shape)
            if kind == "pool_conv":
                ops.append(draw(conv_op(pooled)))
        out = shape
        for op in ops:
            out = op.output_shape(out)
        if kind in ("pool_dense", "dense") or not ops:
            n_out = draw(st.integers(1, 6))
            ops += [Flatten(), Dense(_weights(draw, (n_out, int(np.prod(out)))))]
            out = (n_out,)
        return tuple(ops), out
    n_out = draw(st.integers(1, 8))
    return (Dense(_weights(draw, (n_out, shape[0]))),), (n_out,)


@st.composite
def if_layer(draw, name, shape):
    state_bits = draw(st.sampled_from([6, 8, 24]))
    limit = 2 ** (state_bits - 1) - 1
    theta = _param(draw, shape, 1, min(12, limit))
    kwargs = dict(
        theta=theta,
        v_init=_param(draw, shape, -6, 6),
        bias=_param(draw, shape, -2, 2),
        reset=draw(st.sampled_from(["subtract", "subtract", "zero"])),
        presim=draw(st.sampled_from([0, 0, 1, 2, 3])),
        state_bits=state_bits,
    )
    if draw(st.booleans()):
        steps = draw(st.integers(1, 4))
        kwargs["bias_schedule"] = _weights(draw, (steps,) + _param(draw, shape, 0, 0).shape, -3, 3)
    if draw(st.booleans()):
        kwargs["theta_neg"] = _param(draw, shape, 1, min(12, limit))
        kwargs["gate"] = draw(st.sampled_from(["none", "net"]))
    return IF(name, shape, **kwargs)


@st.composite
def sigma_delta_layer(draw, name, shape):
    state_bits = draw(st.sampled_from([8, 12, 24]))
    return SigmaDelta(name, shape, bias=_param(draw, shape, -6, 6), shift=draw(st.integers(0, 3)),
                      vth=draw(st.sampled_from([0, 0, 1, 3])), state_bits=state_bits)


@st.composite
def graphs(draw, max_layers: int = 3, encodings=("current", "spikes"), sigma_delta: bool = False):
    """(graph, inputs, steps): a random valid graph with a batch of matching integer inputs.

    sigma_delta: layers are IF or SigmaDelta at random, the input may be delta-encoded, edges into
    SigmaDelta layers may floor (negative weight exponents), the readout may add its bias once."""
    if sigma_delta:
        encodings = tuple(encodings) + ("delta", "delta")
    if draw(st.booleans()):
        in_shape = (draw(st.integers(1, 3)), draw(st.integers(3, 6)), draw(st.integers(3, 6)))
    else:
        in_shape = (draw(st.integers(2, 10)),)
    encoding = draw(st.sampled_from(list(encodings)))
    value_bits = draw(st.sampled_from([3, 5]))
    inp = Input("x", in_shape, encoding=encoding, value_bits=value_bits)
    pops, edges = [inp], []
    prev = inp
    for i in range(draw(st.integers(1, max_layers))):
        ops, shape = draw(op_chain(prev.shape))
        graded = sigma_delta and draw(st.booleans())
        layer = draw(sigma_delta_layer(f"l{i}", shape) if graded else if_layer(f"l{i}", shape))
        exps = st.sampled_from([0, 0, -1, -2, 2]) if graded else WEIGHT_EXPS
        edges.append(Edge(prev.name, layer.name, ops, delay=draw(st.sampled_from([0, 0, 1, 2])),
                          weight_exp=draw(exps)))
        # residual / skip edge from an earlier population, when one can be shaped to fit
        earlier = [p for p in pops[:-1]]
        if earlier and draw(st.booleans()):
            src = draw(st.sampled_from(earlier))
            skip_ops = _skip_ops(draw, src.shape, shape)
            if skip_ops:
                edges.append(Edge(src.name, layer.name, skip_ops, delay=draw(st.integers(0, 3)),
                                  weight_exp=draw(exps)))
        pops.append(layer)
        prev = layer
    n_out = draw(st.integers(1, 4))
    flat = () if len(prev.shape) == 1 else (Flatten(),)
    readout = Readout("out", (n_out,), bias=_param(draw, (n_out,), -3, 3),
                      skip=draw(st.integers(0, 2)), state_bits=draw(st.sampled_from([8, 24])),
                      bias_steps=draw(st.sampled_from([0, 1, 2])) if sigma_delta else 0)
    edges.append(Edge(prev.name, "out", flat + (Dense(_weights(draw, (n_out, int(np.prod(prev.shape))))),)))
    graph = Graph(pops + [readout], edges).validate()
    batch = draw(st.integers(1, 3))
    steps = draw(st.integers(1, 6))
    if encoding in ("current", "delta"):
        limit = 2 ** (value_bits - 1) - 1
        x = _weights(draw, (batch,) + in_shape, -limit, limit)
    else:
        x = _weights(draw, (batch, draw(st.integers(1, 5))) + in_shape, 0, 1)
    return graph, x, steps


def _skip_ops(draw, src_shape, dst_shape):
    if len(dst_shape) == 1:
        flat = (Flatten(),) if len(src_shape) == 3 else ()
        return flat + (Dense(_weights(draw, (dst_shape[0], int(np.prod(src_shape))))),)
    if len(src_shape) == 3 and src_shape[1:] == dst_shape[1:]:
        return (Conv2d(_weights(draw, (dst_shape[0], src_shape[0], 1, 1))),)
    return None
