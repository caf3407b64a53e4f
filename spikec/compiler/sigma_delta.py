"""Sigma-delta lowering for targets that run Lava's stock SigmaDelta neurons ("loihi-sdnn").

A converted IF layer (threshold theta, bias b, initial potential v_init = phi * theta) fires at a
rate r that approximates the quantized activation floor(L z / theta + phi) / L of its ANN, where
z = W r_src + b is its per-step input and L the activation's quantization levels (QCFS). A
sigma-delta layer computes that level in one step instead of T: on a delta-encoded input (the
image sent once, spikec.ir.nodes.Input encoding "delta"), every layer receives its whole input at
its first local step and emits

    m = floor(max(L z + v_init, 0) / theta)        (an integer level; the source sends m_src = L r)

once, then nothing. With theta = 2^G (the quantizer picks powers of two for this target) the
division is a shift, split as Lava's hardware splits it: G - s into the floor shift of every
incoming edge (a negative weight exponent, exactly what Lava's synapses do after summation) and
s <= 7 into the neuron's own shift (SigmaDelta state_exp, a 3-bit field). The factor L is carried
by the messages (m = L r); the input's edges take it as a weight exponent log2 L. The readout adds
L times its bias once (Readout.bias_steps = 1): the logits are L times those of the IF graph.

The upper clip. An IF layer emits at most one spike per step, so its rate saturates at 1 (the
clip of QCFS at L levels); a SigmaDelta layer has only a ReLU. Each layer gets a twin
`<name>.sat` that sends max(a - L, 0) for the layer's level a, and the layer's targets subtract it
(a second edge with negated weights): max(a, 0) - max(a - L, 0) = min(max(a, 0), L), exactly the
clipped level. Two ways to feed the twin (`clip`):
  "output" (default): the twin sums what its layer sent (one synapse per neuron) with bias -L and no
      shift: max(max(a, 0) - L, 0) = max(a - L, 0). Twice the neurons and synapses of no clip; the
      twin answers one step later, so retiming delays the layer's own edges by one: one more
      hardware step of latency per layer.
  "input": the twin takes the layer's inputs, bias lowered by L levels. No extra latency, but the
      synapses between two clipped layers exist four times (docs/lava.md compares the cores).
  "none": no twin, an unbounded ReLU (measured in docs/lava.md: far less accurate).
On a delta-encoded input both twins send the same values, so the accuracy is the same.

Remaining differences from the quantized ANN: the edges' floors (below 2^-s of a level each). Layer
features that need IF dynamics (signed spikes, bias schedules, SRP) are refused with one
UnsupportedError listing them.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from spikec.compiler.retime import retime
from spikec.errors import OverflowRiskError, UnsupportedError
from spikec.ir.graded import sigma_delta_bounds
from spikec.ir.graph import MAX_WEIGHT_EXP, MIN_WEIGHT_EXP, Graph
from spikec.ir.nodes import Conv2d, Dense, Edge, Input, Readout, SigmaDelta

STOCK_SHIFT_MAX = 7            # SigmaDelta.state_exp is a 3-bit field
STOCK_BIAS_MAX = 2**15 - 1     # SigmaDelta.bias is 16 bits
PROOF_STEPS = 2**12            # the range proof holds for runs of up to this many hardware steps
DEFAULT_LEVELS = 16            # message resolution for layers without a quantized (QCFS) activation


def levels_of(graph: Graph, levels: int | None) -> int:
    """The quantization levels L: `levels` if given, else the L of the graph's clip activations
    (which must agree), else DEFAULT_LEVELS. Must be a power of two."""
    if levels is None:
        found = {int(m.group(1)) for row in graph.meta.get("layers", [])
                 for m in [re.search(r"L=(\d+)", str(row.get("activation", "")))] if m}
        if len(found) > 1:
            raise UnsupportedError(f"layers quantize to different levels {sorted(found)}; pass sd_levels=L")
        levels = found.pop() if found else DEFAULT_LEVELS
    if not isinstance(levels, (int, np.integer)) or levels < 1 or levels & (levels - 1):
        raise UnsupportedError(f"sigma-delta levels must be a power of two, got {levels!r}")
    return int(levels)


SATURATION_TWIN = ".sat"


CLIPS = ("output", "input", "none")


def to_sigma_delta(graph: Graph, target, levels: int | None = None, clip: str = "output") -> Graph:
    """Return `graph` with every IF layer as a SigmaDelta layer (and, unless clip is "none", its
    saturation twin); a no-op unless the target's neurons are "sigma-delta"."""
    if getattr(target, "neurons", "spikec") != "sigma-delta":
        return graph
    if clip not in CLIPS:
        raise UnsupportedError(f"sd_clip must be one of {CLIPS}, got {clip!r}")
    L = levels_of(graph, levels)
    _refuse_if_features(graph, target)
    log_l = L.bit_length() - 1
    pops, edges, rows, twins, feeds = [], [], {}, {}, []
    for pop in graph.populations:
        if isinstance(pop, Input):
            pops.append(Input(pop.name, pop.shape, "delta", pop.value_bits, pop.scale))
            continue
        ins = graph.in_edges(pop.name)
        if isinstance(pop, Readout):
            pops.append(Readout(pop.name, pop.shape, bias=pop.bias * L, skip=0, state_bits=pop.state_bits,
                                bias_steps=1))
            edges += [_edge(e, log_l if isinstance(graph.nodes[e.src], Input) else 0) for e in ins]
            continue
        g = int(pop.theta.reshape(-1)[0]).bit_length() - 1
        shift = min(g, STOCK_SHIFT_MAX)
        floor = g - shift
        drive = L * pop.bias.astype(np.int64) + pop.v_init
        bias = (drive + (1 << floor >> 1)) >> floor      # rounded to the edges' floored units
        if np.abs(bias).max(initial=0) > STOCK_BIAS_MAX:
            raise OverflowRiskError(f"{pop.name}: sigma-delta bias reaches {int(np.abs(bias).max())}, beyond "
                                    f"the 16-bit bias of Lava's SigmaDelta (+-{STOCK_BIAS_MAX})")
        pops.append(SigmaDelta(pop.name, pop.shape, bias=bias, shift=shift, vth=0, state_bits=pop.state_bits))
        new_ins = [_edge(e, (log_l if isinstance(graph.nodes[e.src], Input) else 0) - floor) for e in ins]
        edges += new_ins
        rows[pop.name] = {"type": "SigmaDelta", "shift": shift, "edge_shift": floor, "levels": L}
        twin = pop.name + SATURATION_TWIN
        if clip == "input":
            pops.append(SigmaDelta(twin, pop.shape, bias=bias - (L << shift), shift=shift, vth=0,
                                   state_bits=pop.state_bits))
            edges += [replace(e, dst=twin) for e in new_ins]
        elif clip == "output":
            pops.append(SigmaDelta(twin, pop.shape, bias=np.array(-L), shift=0, vth=0, state_bits=pop.state_bits))
            feeds.append(Edge(pop.name, twin, (_identity(pop.shape),)))
        if clip != "none":
            twins[pop.name] = twin
    meta = dict(graph.meta)
    meta.update(neurons="sigma-delta", levels=L, sd_clip=clip)
    meta.pop("bounds", None)
    if "layers" in meta:
        meta["layers"] = [{**row, **rows[row["name"]]} if row.get("name") in rows else row
                          for row in meta["layers"]]
    edges += [replace(e, src=twins[e.src], ops=_negated(e.ops)) for e in edges if e.src in twins]
    out = Graph(tuple(pops), tuple(edges + feeds), meta)
    if feeds:   # the twins answer a step after their layers: balance every path again
        out = retime(out, target.max_delay)
        meta = dict(out.meta)
    meta["bounds"] = _range_record(out)
    return Graph(out.populations, out.edges, meta).validate()


def _identity(shape) -> Conv2d | Dense:
    """A synapse op that passes each neuron's value to the same neuron of a same-shaped layer."""
    if len(shape) == 3:
        return Conv2d(np.ones((shape[0], 1, 1, 1), np.int64), groups=shape[0])
    return Dense(np.eye(shape[0], dtype=np.int64))


def _negated(ops: tuple) -> tuple:
    """The op chain with its (first) weighted op's weights negated: minus the same current."""
    i = next(i for i, op in enumerate(ops) if isinstance(op, (Dense, Conv2d)))
    return ops[:i] + (replace(ops[i], weight=-ops[i].weight.astype(np.int64)),) + ops[i + 1:]


def _edge(edge: Edge, extra: int) -> Edge:
    exp = edge.weight_exp + extra
    if not MIN_WEIGHT_EXP <= exp <= MAX_WEIGHT_EXP:
        raise UnsupportedError(f"edge {edge.name}: sigma-delta needs weight exponent {exp}, outside Loihi's "
                               f"{MIN_WEIGHT_EXP}..{MAX_WEIGHT_EXP}")
    return Edge(edge.src, edge.dst, edge.ops, edge.delay, exp)


def _refuse_if_features(graph: Graph, target) -> None:
    problems = []
    for pop in graph.if_layers:
        needs = [what for what, used in (("signed spikes", pop.theta_neg is not None),
                                         ("SRP pre-simulation", bool(pop.presim)),
                                         ("a bias schedule", pop.bias_schedule is not None),
                                         ("per-channel thresholds", np.unique(pop.theta).size > 1))
                 if used]
        theta = int(pop.theta.reshape(-1)[0])
        if theta & (theta - 1):
            needs.append(f"threshold {theta} (not a power of two)")
        problems += [f"layer {pop.name}: {what}" for what in needs]
    if problems:
        raise UnsupportedError(
            f"target {target.name!r} runs sigma-delta neurons, which cannot express what method "
            f"{graph.meta.get('method', '?')!r} needs:\n  - " + "\n  - ".join(problems)
            + "\nuse target='loihi' (spikec's IF process)")


def _range_record(graph: Graph) -> dict:
    """meta["bounds"] of a sigma-delta graph: each layer's worst-case sigma for inputs in the declared
    range. Without an upper clip that worst case can pass the state limit even where real data stay
    far below it; the IR then saturates sigma and counts it (reference and torch backends), while
    Lava's SigmaDelta would not, so a run is exact on Lava when the reference counts no saturation."""
    bounds = sigma_delta_bounds(graph, PROOF_STEPS)
    rows = {}
    for layer in graph.sigma_delta_layers:
        limit = 2 ** (layer.state_bits - 1) - 1
        rows[layer.name] = {"sigma_bound": bounds[layer.name].sigma,
                            "may_saturate": bounds[layer.name].sigma > limit}
    risky = [name for name, row in rows.items() if row["may_saturate"]]
    return {"steps": None, "layers": rows, "proof_steps": PROOF_STEPS,
            "saturation": "proved impossible" if not risky else
            f"possible for worst-case inputs in {len(risky)} layer(s): counted by the reference and torch "
            "backends; Lava's SigmaDelta does not saturate, so Lava is exact where none is counted"}
