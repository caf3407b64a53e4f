"""Lowering: a traced torch.fx GraphModule -> the float IR, driven by lookup tables.

Each fx node is run twice side by side: once on the real example tensor (shapes, sizes, the
values of shape arithmetic) and once symbolically on affine expressions (spikec.compiler.expr).
Activations become IF layers, the model output becomes the Readout. A node is looked up in
MODULES (by module type, walking its MRO), FUNCTIONS (by function) or METHODS (by Tensor method
name); anything else raises UnsupportedError naming the module path / source line and listing
what is supported. Nodes that touch no input-derived tensor are evaluated as constants.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn
from torch.fx.node import map_aggregate, map_arg

from spikec.compiler.expr import Expr
from spikec.compiler.floatir import FloatEdge, FloatGraph, FloatLayer
from spikec.compiler.frontend import source_line
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

# --------------------------------------------------------------------------- the lowerer


_BAD = re.compile(r"[^A-Za-z0-9_.]")


class Lowerer:
    """Walks the fx graph once; collects float-IR layers and edges."""

    def __init__(self, gm: fx.GraphModule, example: torch.Tensor):
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.example = example
        self.batch = int(example.shape[0])
        self.layers: list[FloatLayer] = []
        self.edges: list[FloatEdge] = []
        self.names: set[str] = set()

    # helpers used by handlers
    def module(self, node: fx.Node) -> nn.Module:
        return self.modules[node.target]

    def where(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"{node.target} ({type(self.modules[node.target]).__name__})"
        line = source_line(node)
        at = f" at {line}" if line else ""
        if node.op == "call_method":
            return f"{node.name} (Tensor.{node.target}{at})"
        return f"{node.name} ({function_name(node.target)}{at})"

    def expr(self, node: fx.Node, value) -> Expr:
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

    def activation(self, node: fx.Node, x: Expr, clip_module, fixed_clip: float | None = None) -> Expr:
        where = self.where(node)
        if len(x.shape) not in (1, 3):
            raise UnsupportedError(f"{where}: activation on a tensor of per-sample shape {x.shape}; "
                                   "spikec layers are (C, H, W) or (N,)")
        source = node.target if node.op == "call_module" else node.name
        clip, kind = None, "ReLU"
        if fixed_clip is not None:
            clip, kind = np.float64(fixed_clip), f"clip({fixed_clip:g})"
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
        name = self.unique_name(str(source), node.name)
        self.layers.append(FloatLayer(name, "if", x.shape, source=str(source), node=node.name,
                                      bias=x.compact_bias(), clip=clip, activation=kind))
        self.edges += [FloatEdge(src, name, ops) for src, ops in x.edge_chains()]
        return Expr.of_population(name, x.shape)

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
        real: dict[fx.Node, Any] = {}
        sym: dict[fx.Node, Any] = {}
        seen_input = False
        with torch.no_grad():
            for node in self.gm.graph.nodes:
                if node.op == "output":
                    self.readout(node, map_arg(node.args[0], lambda n: sym[n]))
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
                if not _mentions_expr((s_args, s_kwargs)):
                    sym[node] = Const(out)
                    continue
                value = self.handler(node)(self, node, s_args, s_kwargs, out)
                if isinstance(value, Expr) and (not isinstance(out, torch.Tensor)
                                                or value.shape != tuple(out.shape[1:])):
                    raise ConversionError(f"{self.where(node)}: internal error: lowered shape {value.shape} "
                                          f"differs from the model's {tuple(getattr(out, 'shape', ()))}")
                sym[node] = value
        return FloatGraph(tuple(self.layers), tuple(self.edges))

    def input_layer(self, node: fx.Node) -> Expr:
        shape = tuple(int(s) for s in self.example.shape[1:])
        if len(shape) not in (1, 3):
            raise UnsupportedError(f"the model input has per-sample shape {shape}; spikec supports "
                                   "(C, H, W) images and (N,) vectors")
        name = self.unique_name("input", "input")
        self.layers.append(FloatLayer(name, "input", shape, source=str(node.target), node=node.name))
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
        self.layers.append(FloatLayer(name, "readout", value.shape, source=source,
                                      node=src.name if isinstance(src, fx.Node) else "output",
                                      bias=value.compact_bias()))
        self.edges += [FloatEdge(s, name, ops) for s, ops in value.edge_chains()]


def _mentions_expr(tree) -> bool:
    found = []
    map_aggregate(tree, lambda v: found.append(v) if isinstance(v, Expr) else None)
    return bool(found)


def lower(gm: fx.GraphModule, example: torch.Tensor) -> FloatGraph:
    """Lower a traced model to the float IR (un-normalized: thresholds not yet assigned)."""
    return Lowerer(gm, example).run()
