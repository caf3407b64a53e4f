"""`spikec.prepare`: rewrite a model's activations and max pools into what spikec converts.

The model is traced with torch.fx (an eval-mode copy; the user's model is not modified) and
rewritten node by node:

  * every ReLU-like activation -- nn.ReLU (also inplace=True), F.relu, torch.relu, torch.relu_,
    x.relu(), x.relu_(), nn.ReLU6, F.relu6, nn.Hardtanh(0, b), F.hardtanh(x, 0, b), F.hardtanh_,
    torch.clamp / torch.clip / x.clamp(_) with min 0 -- becomes a fresh clip activation module
    (QCFS or ECLClip, one per call site, so a module called twice gets two thresholds). Its
    threshold is set from data (spikec.quantize.calibrate_thresholds on `calibration`, default the
    example input) and, for an activation with an upper bound b (ReLU6, Hardtanh), capped at b;
  * nn.MaxPool2d / F.max_pool2d / torch.max_pool2d become nn.AvgPool2d with the same kernel,
    stride, padding and ceil_mode; with ceil_mode the divisor is fixed to k*k (divisor_override),
    the uniform average the compiler can lower. nn.AdaptiveMaxPool2d / F.adaptive_max_pool2d
    become nn.AdaptiveAvgPool2d. Max pooling with dilation or return_indices is left as it is;
  * linear bottlenecks (linear_bottlenecks="signed-zero", the default): a value that goes from one
    linear layer into another with no activation between them (MobileNetV2's projection conv + BN,
    or the residual sum after it) gets a SignedClip, clamp(x, -lam, lam), calibrated on |x|; the
    compiler turns it into dual-threshold (signed) IF neurons.

An activation module replaces the node's module at the same path (its first call) or is added
next to it / inside the module whose forward called the function ("layer1.0.relu_1",
"blocks.0.relu"). Whatever cannot be converted stays in the model; spikec.check reports it.
In-place activations are rewritten so that later uses of their input see the activated value.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from spikec.compiler.frontend import as_input_tensor, module_scope, trace
from spikec.compiler.lowering import Lowerer
from spikec.errors import ConversionError, MissingActivationError, SpikecError
from spikec.quantize.calibrate import calibrate_thresholds
from spikec.quantize.replace import KINDS
from spikec.quantize.signed import SignedClip

BOTTLENECK_MODES = ("signed-zero", "signed", "pair", None)

_RELU_FUNCTIONS = {F.relu: False, torch.relu: False, F.relu_: True, torch.relu_: True}
_RELU_METHODS = {"relu": False, "relu_": True}
_CLAMP_FUNCTIONS = {torch.clamp: False, torch.clip: False}
_CLAMP_METHODS = {"clamp": False, "clip": False, "clamp_": True, "clip_": True}
_MAXPOOL_FUNCTIONS = (F.max_pool2d, torch.max_pool2d)


def _arg(node: fx.Node, index: int, name: str, default=None):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def activation_bound(node: fx.Node, modules: dict) -> tuple[bool, float | None, bool] | None:
    """(is ReLU-like, upper bound b or None, in place) for a ReLU-like node, else None."""
    if node.op == "call_module":
        mod = modules[node.target]
        if type(mod) is nn.ReLU:
            return True, None, False
        if isinstance(mod, nn.Hardtanh) and float(mod.min_val) == 0.0 and float(mod.max_val) > 0:
            return True, float(mod.max_val), False   # nn.ReLU6 is Hardtanh(0, 6)
        return None
    if node.op == "call_function":
        if node.target in _RELU_FUNCTIONS:
            return True, None, _RELU_FUNCTIONS[node.target] or bool(node.kwargs.get("inplace", False))
        if node.target is F.relu6:
            return True, 6.0, bool(_arg(node, 1, "inplace", False))
        if node.target in (F.hardtanh, F.hardtanh_):
            lo, hi = _number(_arg(node, 1, "min_val", -1.0)), _number(_arg(node, 2, "max_val", 1.0))
            inplace = node.target is F.hardtanh_ or bool(_arg(node, 3, "inplace", False))
            return (True, hi, inplace) if lo == 0.0 and hi is not None and hi > 0 else None
        if node.target in _CLAMP_FUNCTIONS:
            return _clamp(node, False)
        return None
    if node.op == "call_method":
        if node.target in _RELU_METHODS:
            return True, None, _RELU_METHODS[node.target]
        if node.target in _CLAMP_METHODS:
            return _clamp(node, _CLAMP_METHODS[node.target])
    return None


def _clamp(node: fx.Node, inplace: bool):
    lo, hi_raw = _arg(node, 1, "min"), _arg(node, 2, "max")
    hi = _number(hi_raw)
    if _number(lo) != 0.0 or (hi_raw is not None and (hi is None or hi <= 0)):
        return None
    return True, hi, inplace


def avg_pool_for(node: fx.Node, modules: dict) -> nn.Module | None:
    """The average pool replacing a max-pool node, or None if the node is none (or not replaceable)."""
    if node.op == "call_module":
        mod = modules[node.target]
        if isinstance(mod, nn.AdaptiveMaxPool2d) and not mod.return_indices:
            return nn.AdaptiveAvgPool2d(mod.output_size)
        if not isinstance(mod, nn.MaxPool2d):
            return None
        kernel, stride, padding = mod.kernel_size, mod.stride, mod.padding
        dilation, ceil, indices = mod.dilation, mod.ceil_mode, mod.return_indices
    elif node.op == "call_function" and node.target in _MAXPOOL_FUNCTIONS:
        kernel, stride = _arg(node, 1, "kernel_size"), _arg(node, 2, "stride")
        padding, dilation = _arg(node, 3, "padding", 0), _arg(node, 4, "dilation", 1)
        ceil, indices = _arg(node, 5, "ceil_mode", False), _arg(node, 6, "return_indices", False)
    elif node.op == "call_function" and node.target is F.adaptive_max_pool2d:
        if _arg(node, 2, "return_indices", False):
            return None
        return nn.AdaptiveAvgPool2d(_arg(node, 1, "output_size"))
    else:
        return None
    if indices or dilation not in (1, (1, 1), [1, 1]):
        return None
    if stride is None or stride == []:
        stride = kernel
    k = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    return nn.AvgPool2d(kernel, stride, padding, ceil_mode=bool(ceil), count_include_pad=True,
                        divisor_override=int(k[0] * k[1]) if ceil else None)


class _Rewriter:
    """Replaces nodes of a GraphModule by calls of new modules with unique paths."""

    def __init__(self, gm: fx.GraphModule):
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.original = dict(self.modules)  # what each call_module node called before any rewrite
        self.reused: set[str] = set()      # module paths whose first call already took the path

    def free_path(self, base: str) -> str:
        path, i = base, 1
        while path in self.modules or self._taken(path):
            path, i = f"{base}_{i}", i + 1
        return path

    def _taken(self, path: str) -> bool:
        parent, _, attr = path.rpartition(".")
        owner = self.modules.get(parent) if parent else self.gm
        return owner is not None and hasattr(owner, attr)

    def install(self, path: str, module: nn.Module) -> None:
        parent, _, attr = path.rpartition(".")
        if parent and parent not in self.modules:
            self.gm.add_submodule(path, module)
            self.modules = dict(self.gm.named_modules())
            return
        setattr(self.gm.get_submodule(parent) if parent else self.gm, attr, module)
        self.modules[path] = module

    def target_path(self, node: fx.Node, base: str) -> str:
        """Where the new module of `node` lives: the replaced module's own path on its first call."""
        if node.op == "call_module" and node.target not in self.reused:
            self.reused.add(node.target)
            return node.target
        if node.op == "call_module":
            return self.free_path(node.target)
        scope = module_scope(node)[0]
        return self.free_path(f"{scope}.{base}" if scope else base)

    def replace(self, node: fx.Node, module: nn.Module, base: str, inplace: bool) -> fx.Node:
        path = self.target_path(node, base)
        self.install(path, module)
        source = node.args[0] if node.args else node.kwargs.get("input")
        with self.gm.graph.inserting_after(node):
            new = self.gm.graph.call_module(path, (source,))
        new.meta = dict(node.meta)
        stack = dict(new.meta.get("nn_module_stack") or {})
        if node.op != "call_module":
            stack[path] = (path, type(module))
        new.meta["nn_module_stack"] = stack
        node.replace_all_uses_with(new)
        if inplace and isinstance(source, fx.Node):
            _redirect_later_uses(self.gm.graph, source, node, new)
        self.gm.graph.erase_node(node)
        return new


def _redirect_later_uses(graph: fx.Graph, source: fx.Node, old: fx.Node, new: fx.Node) -> None:
    """After an in-place op, uses of its input later in the graph read the activated value."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    for user in list(source.users):
        if user is not new and user is not old and order[user] > order[old]:
            user.replace_input_with(source, new)


def prepare(model: nn.Module, example_input, kind: str = "qcfs", levels: int | None = 4, calibration=None,
            percentile: float = 99.9, linear_bottlenecks: str | None = "signed-zero") -> fx.GraphModule:
    """A rewritten copy of `model` (a torch.fx GraphModule, eval mode) that spikec can convert.

    Every ReLU-like activation becomes a `kind` clip activation ("qcfs": QCFS with `levels` steps;
    "ecl": ECLClip, `levels=None` = pure clip) whose threshold is the `percentile` of its input on
    `calibration` (default: `example_input`), capped at b for ReLU6 / Hardtanh(0, b); max pooling
    becomes average pooling (see the module docstring). Fine-tune the result (spikec.quantize.train)
    before compiling: the activations and pools compute a different function. What cannot be
    converted stays; spikec.check(prepared, x) lists it. The user's model is not modified.

    linear_bottlenecks: where a linear layer's output reaches another linear layer with no
    activation between them (MobileNetV2 / MnasNet projection convs, with or without the residual
    addition after them), a SignedClip (same `levels`; threshold = the `percentile` of |input|)
    goes on that value, shared by all its users. Its value is the clip's `neurons`:
    "signed-zero" (default: dual-threshold IF layer from v_init 0), "signed" (the same from
    theta/2) or "pair" (two ordinary IF layers, +x and -x); docs/models.md "Linear bottlenecks"
    measures them.
    None leaves such chains alone (spikec.check reports them).
    """
    if kind not in KINDS:
        raise ConversionError(f"unknown activation kind {kind!r}; expected one of {sorted(KINDS)}")
    if linear_bottlenecks not in BOTTLENECK_MODES:
        raise ConversionError(f"linear_bottlenecks must be one of {BOTTLENECK_MODES}, got {linear_bottlenecks!r}")
    example = as_input_tensor(example_input)
    calib = example if calibration is None else as_input_tensor(calibration, "calibration")
    if calib.shape[1:] != example.shape[1:]:
        raise ConversionError(f"calibration samples have shape {tuple(calib.shape[1:])}, but example_input "
                              f"samples have {tuple(example.shape[1:])}")
    gm = trace(model, example)
    rw = _Rewriter(gm)
    bounds: dict[str, float] = {}
    for node in list(gm.graph.nodes):
        pool = avg_pool_for(node, rw.original)
        if pool is not None:
            rw.replace(node, pool, "pool", False)
            continue
        found = activation_bound(node, rw.original)
        if found is None or not (node.args or "input" in node.kwargs):
            continue
        _, bound, inplace = found
        act = KINDS[kind](levels=levels, threshold=bound if bound is not None else 8.0)
        new = rw.replace(node, act, "relu" if bound is None else "clip", inplace)
        if bound is not None:
            bounds[new.target] = bound
    gm.graph.lint()
    gm.recompile()
    if linear_bottlenecks is not None:
        insert_signed_clips(gm, rw, example, levels, linear_bottlenecks)
    # rebuild: submodules registered in the order the graph calls them, so calibration goes front to back
    gm = fx.GraphModule(gm, gm.graph, class_name=type(model).__name__).eval()
    if any(isinstance(m, (*KINDS.values(), SignedClip)) for m in gm.modules()):
        _calibrate(gm, calib, percentile, bounds)
    return gm


def insert_signed_clips(gm: fx.GraphModule, rw: _Rewriter, example: torch.Tensor, levels: int | None,
                        neurons: str = "signed-zero") -> list[str]:
    """Put a SignedClip on every value that reaches a linear layer straight from another linear layer
    (found by the compiler's own lowering walk: its MissingActivationError problems); return their
    module paths. The clip replaces the value for all of its users (the residual addition too)."""
    sources: list[fx.Node] = []
    try:
        problems = Lowerer(gm, example, structure_only=True).walk()
    except SpikecError:   # the model cannot be lowered at all: nothing to place; spikec.check says why
        return []
    for node, err in problems:
        arg = node.args[0] if node.args else node.kwargs.get("input")
        if isinstance(err, MissingActivationError) and isinstance(arg, fx.Node) and arg not in sources:
            sources.append(arg)
    paths = []
    for src in sources:
        if src.op == "call_module":
            scope = str(src.target).rpartition(".")[0]
        else:
            scope = module_scope(src)[0]
        path = rw.free_path(f"{scope}.signed_clip" if scope else "signed_clip")
        rw.install(path, SignedClip(levels=levels, threshold=1.0, neurons=neurons))
        with gm.graph.inserting_after(src):
            new = gm.graph.call_module(path, (src,))
        new.meta = {k: v for k, v in src.meta.items() if k in ("nn_module_stack", "stack_trace")}
        src.replace_all_uses_with(new, delete_user_cb=lambda user, new=new: user is not new)
        paths.append(path)
    if paths:
        gm.graph.lint()
        gm.recompile()
    return paths


def _calibrate(gm: fx.GraphModule, calib: torch.Tensor, percentile: float, bounds: dict[str, float]) -> None:
    """calibrate_thresholds, with each bounded activation's threshold capped at its bound before any
    later layer is calibrated (a pre-forward hook), so later layers see the capped outputs."""
    def cap(bound: float):
        def hook(module, _inputs):
            module.lam.data.clamp_(max=bound)
        return hook

    hooks = [gm.get_submodule(path).register_forward_pre_hook(cap(bound)) for path, bound in bounds.items()]
    try:
        with torch.no_grad():
            calibrate_thresholds(gm, calib, percentile)
    finally:
        for h in hooks:
            h.remove()
    for path, bound in bounds.items():
        gm.get_submodule(path).lam.data.clamp_(max=bound)


__all__ = ["prepare", "activation_bound", "avg_pool_for", "insert_signed_clips"]
