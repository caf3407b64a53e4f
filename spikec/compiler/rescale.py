"""Threshold / weight rescaling: every IF threshold becomes 1 (research/algorithms.md §1.3).

A spike of layer l-1 carries the value theta_{l-1}; in units of the target's threshold a weight
becomes  W~ = W * theta_{l-1} / theta_l  and a bias  b~ = b / theta_l. An integer input step is
worth 1/scale float units, so weights from the Input get W / scale. The readout keeps float
logit units (its "theta" is 1).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from spikec.compiler.floatir import (
    FloatGraph,
    chain_shapes,
    fold_edge_input_gain,
    fold_edge_output_gain,
    sole_owned_weights,
    weighted_index,
)


def weighted_op(ops: tuple):
    return ops[weighted_index(ops)]


def emitted_unit(layer) -> np.ndarray:
    """Float value of one emitted unit of `layer` (scalar or per channel)."""
    if layer.kind == "input":
        return np.float64(1.0 / layer.scale)
    return np.asarray(layer.theta, np.float64)


def normalize(fir: FloatGraph, consume: bool = False) -> FloatGraph:
    """W~ = W * unit(src) / theta(dst), b~ = b / theta(dst); thresholds become 1.
    consume: the caller gives `fir` up; weight arrays only it holds are rescaled in place (no copy)."""
    layers = {lay.name: lay for lay in fir.layers}
    owned = sole_owned_weights(fir.edges) if consume else set()
    edges = []
    for e in fir.edges:
        src, dst = layers[e.src], layers[e.dst]
        mine = id(weighted_op(e.ops).weight) in owned
        ops = fold_edge_input_gain(e.ops, src.shape, emitted_unit(src), in_place=mine)
        if dst.kind == "if":   # one new weight array per edge, not two: scale in place what is already new
            fresh = mine or weighted_op(ops).weight is not weighted_op(e.ops).weight
            ops = fold_edge_output_gain(ops, src.shape, 1.0 / np.asarray(dst.theta, np.float64),
                                        f"edge {e.src}->{e.dst}", in_place=fresh)
        assert chain_shapes(ops, src.shape)[-1] == tuple(dst.shape)
        edges.append(replace(e, ops=ops))
    new = {}
    for lay in fir.layers:
        if lay.kind == "if" and lay.bias is not None:
            theta = np.asarray(lay.theta, np.float64)
            bias = np.asarray(lay.bias, np.float64)
            if theta.ndim and bias.ndim == len(lay.shape) and len(lay.shape) > 1:
                theta = theta.reshape((-1,) + (1,) * (len(lay.shape) - 1))
            new[lay.name] = replace(lay, bias=bias / theta)
    return replace(fir.replace_layers(new), edges=tuple(edges), normalized=True)
