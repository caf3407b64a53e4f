"""Lowering: a traced torch.fx GraphModule -> the float IR, driven by lookup tables.

Each fx node is run twice side by side: once on the real example tensor (shapes, sizes, the
values of shape arithmetic) and once symbolically on affine expressions (spikec.compiler.expr).
Activations become IF layers, the model output becomes the Readout. A node is looked up in
MODULES (by module type, walking its MRO), FUNCTIONS (by function) or METHODS (by Tensor method
name). A node that cannot be lowered is recorded as a problem (module path, source line) and
replaced by a stand-in population of its real output's shape, so the walk goes on and finds every
problem in one pass; `lower` then raises one UnsupportedError listing them all, `problems`
returns them (spikec.check). Nodes that touch no input-derived tensor are evaluated as constants.

Channel selections (chunk, split, narrow, slices, the second half of a channel shuffle) add no op:
a later conv reads the selected channels by its weight columns. When one reads only some channels
of an IF layer (shufflenet's chunk after a shuffle), the walk notes which channels are read
together and walks again with that activation split into one IF layer per group of channels, so
that every edge reads whole layers: no zero weight columns, no copies, the same neurons.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn
from torch.fx.node import map_aggregate, map_arg

from spikec.compiler.expr import ChannelSplit, Expr, Term, arithmetic_runs
from spikec.compiler.floatir import FloatConv, FloatEdge, FloatGraph, FloatLayer, weighted_index
from spikec.compiler.frontend import module_scope, source_line
from spikec.compiler.handlers import (
    FUNCTIONS,
    HINTS,
    METHODS,
    MODULES,
    Const,
    as_float64,
    function_name,
    supported_summary,
)
from spikec.errors import ConversionError, UnsupportedError
from spikec.ir.nodes import SumPool2d

# --------------------------------------------------------------------------- the lowerer


_BAD = re.compile(r"[^A-Za-z0-9_.]")
SIGNED_FIELDS = {"theta_neg": 1.0, "gate": "none"}   # a signed clip's IF fields (theta units; "v_init":
# a fraction of theta that overrides the method's)


class _Poison:
    """The symbolic value of a failed node whose output is not one batch tensor (nothing to stand in)."""


POISON = _Poison()


class Lowerer:
    """Walks the fx graph once; collects float-IR layers and edges."""

    def __init__(self, gm: fx.GraphModule, example: torch.Tensor, structure_only: bool = False):
        """structure_only: a walk for the problems alone (spikec.prepare): weight matrices are
        read-only zero arrays that take no memory, so the float IR it builds is not the model's."""
        self.gm = gm
        self.structure_only = structure_only
        self.modules = dict(gm.named_modules())
        self.example = example
        self.batch = int(example.shape[0])
        self.cuts: dict[str, set[tuple[int, ...]]] = {}   # fx node -> channel groups read apart (see select)
        self._start()

    def _start(self) -> None:
        """The state of one walk (the cuts found so far stay)."""
        self.layers: list[FloatLayer] = []
        self.by_name: dict[str, FloatLayer] = {}
        self.edges: list[FloatEdge] = []
        self.names: set[str] = set()
        self.problems: list[tuple[fx.Node, UnsupportedError]] = []   # (node, error), graph order
        self.new_cuts: dict[str, set[tuple[int, ...]]] = {}

    # helpers used by handlers
    def weights(self, t: torch.Tensor) -> np.ndarray:
        """A weight tensor as float64 numpy (a zero-strided stand-in in a structure-only walk)."""
        if self.structure_only:
            return np.broadcast_to(np.zeros((), np.float64), tuple(t.shape))
        return as_float64(t)

    def module(self, node: fx.Node) -> nn.Module:
        return self.modules[node.target]

    def where(self, node: fx.Node) -> str:
        """'path (Type)' of a module call; 'scope.name (function at file:line in Type)' otherwise."""
        if node.op == "call_module":
            return f"{node.target} ({type(self.modules[node.target]).__name__})"
        line = source_line(node)
        at = f" at {line}" if line else ""
        scope, cls = module_scope(node)
        name = f"{scope}.{node.name}" if scope else node.name
        inside = f" in {cls}" if cls else ""
        if node.op == "call_method":
            return f"{name} (Tensor.{node.target}{at}{inside})"
        return f"{name} ({function_name(node.target)}{at}{inside})"

    def expr(self, node: fx.Node, value) -> Expr:
        if isinstance(value, ChannelSplit):
            raise UnsupportedError(f"{self.where(node)}: uses a [B, {', '.join(map(str, value.shape))}] view of "
                                   "split channels; only permuting its channel axes and merging them back "
                                   "into one channel dim (a channel shuffle) are supported")
        if not isinstance(value, Expr):
            raise UnsupportedError(f"{self.where(node)}: expected a tensor computed from the model input, "
                                   f"got a constant {type(getattr(value, 'value', value)).__name__}")
        return value

    def unique_name(self, source: str, fallback: str) -> str:
        base = _BAD.sub("_", source) or fallback
        if not (base[0].isalpha() or base[0] == "_"):
            base = "m." + base
        name, i = base, 2
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name

    def select(self, x: Expr, channels) -> Expr:
        """x's channels (features) `channels`, in that order: no op, the terms' placements change.
        An IF layer read only in part is noted (new_cuts), so that the next walk splits it there."""
        y = x.select(channels)
        for t in y.terms:
            if t.place is not None:
                self._note_partial_read(t)
        return y

    def _note_partial_read(self, t: Term) -> None:
        layer = self.by_name.get(t.src)
        read = t.source_channels()
        if layer is None or layer.kind != "if" or read is None or len(read) == layer.shape[0]:
            return
        positions = np.arange(layer.shape[0]) if layer.channels is None else np.arange(*layer.channels)
        group = tuple(int(c) for c in positions[read])
        if group not in self.cuts.get(layer.node, ()):
            self.new_cuts.setdefault(layer.node, set()).add(group)

    def pieces(self, node: fx.Node, x: Expr) -> list[np.ndarray]:
        """The channel groups of an activation's IF layers, ordered by first channel: x's concatenated
        parts, split where a read takes some of their channels only (cuts) and where a term's
        channels leave their own order (order_runs), each an arithmetic progression (a
        FloatLayer.channels range)."""
        chans = np.arange(x.shape[0])
        keys = [x.part_ids(), *x.order_runs()] + [np.isin(chans, group) for group in self.cuts.get(node.name, ())]
        groups: dict[tuple, list[int]] = {}
        for c, key in enumerate(zip(*keys)):
            groups.setdefault(key, []).append(c)
        return sorted((run for g in groups.values() for run in arithmetic_runs(g)), key=lambda r: r[0])

    def activation(self, node: fx.Node, x: Expr, clip_module, fixed_clip: float | None = None,
                   relay_clip=None) -> Expr:
        where = self.where(node)
        if len(x.shape) not in (1, 3):
            raise UnsupportedError(f"{where}: activation on a tensor of per-sample shape {x.shape}; "
                                   "spikec layers are (C, H, W) or (N,)")
        source = node.target if node.op == "call_module" else node.name
        clip, kind = None, "ReLU"
        if fixed_clip is not None:
            clip, kind = np.float64(fixed_clip), f"clip({fixed_clip:g})"
        if relay_clip is not None:
            clip, kind = relay_clip, "relay"
        if clip_module is not None:
            clip = as_float64(clip_module.threshold)
            kind = type(clip_module).__name__
            if clip_module.levels is not None:
                kind += f"(L={clip_module.levels})"
            channels = x.shape[0]
            if clip.ndim > 1 or (clip.ndim == 1 and clip.shape[0] not in (1, channels)):
                raise ConversionError(f"{where}: threshold of shape {clip.shape} is neither a scalar nor "
                                      f"per-channel ({channels},)")
            if not np.all(np.isfinite(clip)) or np.any(clip <= 0):
                raise ConversionError(f"{where}: threshold must be finite and > 0, got {clip.tolist()}")
            clip = clip.reshape(()) if clip.size == 1 else clip
        # a signed clip: dual-threshold neurons, theta_neg = theta, no gate (SNN output in [-theta, theta]),
        # or a pair of unsigned layers for +x and -x whose difference is the value
        signed = getattr(clip_module, "signed", False)
        if signed and getattr(clip_module, "neurons", "signed") == "pair":
            pos = self._activation_parts(node, source, x, clip, kind + "+", {}, "+")
            neg = self._activation_parts(node, source, x.scale(-1.0, where), clip, kind + "-", {}, "-")
            return pos.add(neg.scale(-1.0, where), where)
        fields = dict(SIGNED_FIELDS) if signed else {}
        if signed and getattr(clip_module, "v_init", None) is not None:
            fields["v_init"] = float(clip_module.v_init)
        return self._activation_parts(node, source, x, clip, kind, fields)

    def _activation_parts(self, node: fx.Node, source, x: Expr, clip, kind: str, fields: dict,
                          sign: str | None = None) -> Expr:
        """The IF layer(s) of one activation; `sign` "+" / "-" marks the halves of a pair clip (notes
        "part": the layer carries max(y, 0) / max(-y, 0) of the module's output y)."""
        where = self.where(node)
        pieces = self.pieces(node, x)
        if len(pieces) == 1:
            return self._if_layer(node, str(source), x, clip, kind, fields=fields, sign=sign)
        outs = []
        for chans in pieces:   # one IF layer per part: weights stay unpadded
            part_clip = clip[chans] if clip is not None and clip.ndim == 1 else clip
            outs.append(self._if_layer(node, str(source), self.select(x, chans), part_clip, kind,
                                       _channel_range(chans), fields, sign))
        return Expr.concat(outs, where).select(np.argsort(np.concatenate(pieces)))

    def _if_layer(self, node: fx.Node, source: str, x: Expr, clip, kind: str, channels=None,
                  fields=None, sign: str | None = None) -> Expr:
        suffix = ("" if channels is None else ".c" + "_".join(map(str, channels))) + (".neg" if sign == "-" else "")
        name = self.unique_name(source + suffix, node.name + suffix)
        self._add_layer(FloatLayer(name, "if", x.shape, source=source, node=node.name,
                                   bias=x.compact_bias(), clip=clip, activation=kind, channels=channels,
                                   fields=dict(fields or {}), notes={"part": sign} if sign else {}))
        self.edges += [FloatEdge(src, name, ops) for src, ops in x.edge_chains()]
        return Expr.of_population(name, x.shape)

    def _add_layer(self, layer: FloatLayer) -> None:
        self.layers.append(layer)
        self.by_name[layer.name] = layer

    def relay(self, node: fx.Node, x: Expr, gain: float) -> Expr:
        """`gain * x` (x: a non-negative weighted op on activation outputs, such as a padded pooling)
        as a relay IF layer, so that the next linear layer gets an edge of its own. Exact in the ANN:
        the value is >= 0, so the relay's clip (the sources' clips times the op's gain on a constant
        input, which bounds it) or ReLU (when a source has no clip; threshold from calibration
        statistics of this node) leaves it unchanged."""
        where = self.where(node)
        x = x.scale(gain, where)
        clip, bounded = np.float64(0.0), True
        for t in x.terms:
            src = self.by_name.get(t.src)
            if src is None and t.src.startswith("?"):   # stand-in after an earlier problem
                bounded = False
                continue
            op = t.ops[weighted_index(t.ops)] if t.weighted else None
            if src is None or src.kind != "if" or src.signed or op is None or np.any(op.weight < 0):
                what = "the model input" if src is not None and src.kind == "input" else "a signed value"
                raise UnsupportedError(f"{where}: padded or ceil-mode pooling becomes a relay IF layer, which "
                                       f"needs a non-negative input (activation outputs); here it pools {what}; "
                                       "use padding=0 and ceil_mode=False here")
            before = t.ops[:weighted_index(t.ops)]
            if (src.clip is None or t.place is not None or not isinstance(op, FloatConv) or op is not t.ops[-1]
                    or not all(isinstance(p, SumPool2d) for p in before)):
                bounded = False
                continue
            area = np.prod([p.kernel[0] * p.kernel[1] for p in before]) if before else 1.0   # sum pools
            src_clip = np.broadcast_to(np.asarray(src.clip, np.float64), (src.shape[0],)) * area
            if op.groups == 1:
                clip = clip + op.weight.sum(axis=(2, 3)) @ src_clip   # gain on a constant input, per output
            elif op.groups == op.weight.shape[0] == src.shape[0]:
                clip = clip + op.weight.reshape(op.groups, -1).sum(axis=1) * src_clip
            else:
                bounded = False
        if x.bias is not None:
            if np.any(x.bias < 0):
                raise UnsupportedError(f"{where}: padded or ceil-mode pooling of a value with a negative "
                                       "constant offset cannot be relayed by an IF layer; use padding=0")
            bounded = False
        clip = np.asarray(clip, np.float64)
        if not bounded or np.any(clip <= 0):
            return self.activation(node, x, None)
        return self.activation(node, x, None, relay_clip=np.float64(clip.flat[0]) if np.all(clip == clip.flat[0])
                               else clip)

    # the walk
    def handler(self, node: fx.Node):
        if node.op == "call_module":
            mod = self.modules[node.target]
            for cls in type(mod).__mro__:
                if cls in MODULES:
                    return MODULES[cls]
                if cls in HINTS:
                    raise UnsupportedError(f"{self.where(node)}: {HINTS[cls]}")
            raise UnsupportedError(f"{self.where(node)} is not supported; {supported_summary()}")
        table = FUNCTIONS if node.op == "call_function" else METHODS
        fn = table.get(node.target)
        if fn is None:
            hint = HINTS.get(node.target)
            if hint is None and node.op == "call_function":
                hint = HINTS.get(getattr(node.target, "__name__", ""))
            if hint:
                raise UnsupportedError(f"{self.where(node)}: {hint}")
            raise UnsupportedError(f"{self.where(node)} is not supported; {supported_summary()}")
        return fn

    def execute(self, node: fx.Node, args, kwargs):
        if node.op == "call_module":
            return self.modules[node.target](*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        obj, *rest = args
        return getattr(obj, node.target)(*rest, **kwargs)

    def run(self) -> FloatGraph:
        """The float IR; one UnsupportedError listing every problem if there are any."""
        self.walk()
        if self.problems:
            from spikec.compiler.check import combined_error

            raise combined_error(self, self.problems)
        return FloatGraph(tuple(self.layers), tuple(self.edges))

    def walk(self) -> list[tuple[fx.Node, UnsupportedError]]:
        """Lower every node; collect (node, UnsupportedError) for the nodes that cannot be lowered.
        Walks again while a walk finds IF layers read in channel groups it does not split yet (the
        groups only grow, so this ends; a model without such reads is walked once)."""
        while True:
            self._start()
            self._walk_once()
            if not self.new_cuts:
                return self.problems
            for name, groups in self.new_cuts.items():
                self.cuts.setdefault(name, set()).update(groups)

    def _walk_once(self) -> None:
        real: dict[fx.Node, Any] = {}
        sym: dict[fx.Node, Any] = {}
        seen_input = False
        with torch.no_grad():
            for node in self.gm.graph.nodes:
                if node.op == "output":
                    value = map_arg(node.args[0], lambda n: sym[n])
                    if not isinstance(value, _Poison):
                        self._attempt(node, lambda v=value, n=node: self.readout(n, v))
                    break
                if node.op == "placeholder":
                    if seen_input:
                        if node.args:
                            real[node] = node.args[0]
                            sym[node] = Const(node.args[0])
                            continue
                        raise UnsupportedError(f"forward() takes a second tensor input {node.target!r}; "
                                               "spikec models take one input")
                    seen_input = True
                    real[node] = self.example
                    sym[node] = self.input_layer(node)
                    continue
                if node.op == "get_attr":
                    obj = self.gm
                    for part in node.target.split("."):
                        obj = getattr(obj, part)
                    real[node] = obj
                    sym[node] = Const(obj)
                    continue
                r_args = map_arg(node.args, lambda n: real[n])
                r_kwargs = map_arg(node.kwargs, lambda n: real[n])
                out = self.execute(node, r_args, r_kwargs)
                real[node] = out
                s_args = map_arg(node.args, lambda n: sym[n])
                s_kwargs = map_arg(node.kwargs, lambda n: sym[n])
                if _mentions((s_args, s_kwargs), _Poison):   # downstream of a reported problem
                    sym[node] = self.stand_in(node, out)
                    continue
                if not _mentions((s_args, s_kwargs), (Expr, ChannelSplit)):
                    sym[node] = Const(out)
                    continue
                value = self._attempt(node, lambda n=node, a=s_args, k=s_kwargs, o=out:
                                      self.handler(n)(self, n, a, k, o))
                if value is None:
                    sym[node] = self.stand_in(node, out)
                    continue
                if isinstance(value, (Expr, ChannelSplit)) and (not isinstance(out, torch.Tensor)
                                                                or value.shape != tuple(out.shape[1:])):
                    raise ConversionError(f"{self.where(node)}: internal error: lowered shape {value.shape} "
                                          f"differs from the model's {tuple(getattr(out, 'shape', ()))}")
                sym[node] = value

    def _attempt(self, node: fx.Node, fn):
        """fn(), or None after recording its UnsupportedError against `node`."""
        try:
            return fn()
        except UnsupportedError as err:
            self.problems.append((node, err))
            return None

    def stand_in(self, node: fx.Node, out):
        """A fresh population shaped like the real output (so later nodes are still checked), or POISON."""
        if isinstance(out, torch.Tensor) and out.ndim >= 2 and out.shape[0] == self.batch:
            return Expr.of_population(f"?{node.name}", tuple(int(d) for d in out.shape[1:]))
        return POISON

    def input_layer(self, node: fx.Node) -> Expr:
        shape = tuple(int(s) for s in self.example.shape[1:])
        if len(shape) not in (1, 3):
            raise UnsupportedError(f"the model input has per-sample shape {shape}; spikec supports "
                                   "(C, H, W) images and (N,) vectors")
        name = self.unique_name("input", "input")
        self._add_layer(FloatLayer(name, "input", shape, source=str(node.target), node=node.name))
        return Expr.of_population(name, shape)

    def readout(self, node: fx.Node, value) -> None:
        if not isinstance(value, Expr):
            raise UnsupportedError("the model output must be one tensor computed from the input, got "
                                   f"{type(getattr(value, 'value', value)).__name__}")
        if len(value.shape) != 1:
            raise UnsupportedError(f"the model output has per-sample shape {value.shape}; the readout "
                                   "needs logits [B, N]")
        source = value.origin or "output"
        name = self.unique_name(source, "output")
        src = node.args[0]
        self._add_layer(FloatLayer(name, "readout", value.shape, source=source,
                                   node=src.name if isinstance(src, fx.Node) else "output",
                                   bias=value.compact_bias()))
        self.edges += [FloatEdge(s, name, ops) for s, ops in value.edge_chains()]


def _channel_range(chans: np.ndarray) -> tuple[int, ...]:
    """FloatLayer.channels of a run: (start, stop), or (start, stop, step) for a step other than 1."""
    step = int(chans[1] - chans[0]) if len(chans) > 1 else 1
    return (int(chans[0]), int(chans[-1]) + 1) + (() if step == 1 else (step,))


def _mentions(tree, kind) -> bool:
    found = []
    map_aggregate(tree, lambda v: found.append(v) if isinstance(v, kind) else None)
    return bool(found)


def lower(gm: fx.GraphModule, example: torch.Tensor) -> FloatGraph:
    """Lower a traced model to the float IR (un-normalized: thresholds not yet assigned).

    Raises one UnsupportedError listing every node that cannot be lowered."""
    return Lowerer(gm, example).run()
