"""`spikec.check`: every construct of a model that spikec cannot convert, found in one pass.

The model is traced and lowered as `spikec.compile` would (BN folded, table lowering), but a node
that cannot be lowered does not stop the walk: it is recorded and replaced by a stand-in of its
output's shape, so later problems are found too. Each problem names the module path (from the
tracer's nn_module_stack), the op, the source line and a concrete suggestion. `spikec.compile`
raises the same list as one UnsupportedError.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch.fx as fx

from spikec.compiler.frontend import module_scope, source_line
from spikec.compiler.handlers import function_name, supported_summary
from spikec.errors import UnsupportedError

PREPARE = "spikec.prepare(model, x) replaces it"


@dataclass(frozen=True)
class Problem:
    """One construct spikec cannot convert.

    module: path of the module that holds it ('' = the model's own forward); op: the module class,
    function (F.x, torch.x, operator.x) or Tensor method; source: 'file.py:line' ('' if unknown);
    message: what is wrong; suggestion: what to do; fixable: whether spikec.prepare fixes it.
    """

    module: str
    op: str
    source: str
    message: str
    suggestion: str
    fixable: bool = False

    def to_json(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.message}\n    -> {self.suggestion}" if self.suggestion else self.message


# ----------------------------------------------------------------------------- suggestions

_NOT_CLIP = ("is not a piecewise-linear clip (it is curved or non-zero below 0), so no integrate-and-fire "
             "neuron computes it; replace it by nn.ReLU (or nn.ReLU6 / nn.Hardtanh(0, b)) and fine-tune, then "
             "run spikec.prepare")
_PRODUCT = ("multiplies two activations (squeeze-and-excitation gating, attention); an IF neuron only sums "
            "weighted spikes, so a product of two input-dependent tensors has no spiking equivalent: remove "
            "the gating branch (or replace it by a constant scale) and fine-tune")
_NORM = ("normalises each sample by its own statistics (a data-dependent division); only BatchNorm with "
         "running statistics folds into weights: replace it by BatchNorm and fine-tune")
_ATTENTION = ("attention multiplies activations (queries x keys, softmax); transformers are not IF networks")
_REARRANGE = ("only flattening to [B, N] and channel shuffles (view(B, g, C // g, H, W) -> transpose(1, 2) -> "
              "view(B, C, H, W)) rearrange a tensor into spiking ops; keep (C, H, W) order")

# lower-cased module class / function / method name -> (suggestion, fixable by prepare)
SUGGESTIONS: dict[str, tuple[str, bool]] = {
    "maxpool2d": (f"{PREPARE} by average pooling of the same geometry (fine-tune afterwards)", True),
    "max_pool2d": (f"{PREPARE} by average pooling of the same geometry (fine-tune afterwards)", True),
    "adaptivemaxpool2d": (f"{PREPARE} by adaptive average pooling (fine-tune afterwards)", True),
    "adaptive_max_pool2d": (f"{PREPARE} by adaptive average pooling (fine-tune afterwards)", True),
    "hardswish": (f"Hardswish {_NOT_CLIP}", False),
    "silu": (f"SiLU / swish {_NOT_CLIP}", False),
    "gelu": (f"GELU {_NOT_CLIP}", False),
    "mish": (f"Mish {_NOT_CLIP}", False),
    "elu": (f"ELU {_NOT_CLIP}", False),
    "selu": (f"SELU {_NOT_CLIP}", False),
    "softplus": (f"Softplus {_NOT_CLIP}", False),
    "tanh": (f"Tanh {_NOT_CLIP}", False),
    "sigmoid": (f"Sigmoid {_NOT_CLIP}", False),
    "hardsigmoid": ("Hardsigmoid(x) = ReLU6(x + 3) / 6; write it that way, but it usually gates a product "
                    "(squeeze-and-excitation), which has no spiking equivalent either", False),
    "leakyrelu": ("an IF neuron emits no negative output, so a negative slope has no rate equivalent; "
                  "use nn.ReLU and fine-tune", False),
    "leaky_relu": ("an IF neuron emits no negative output; use F.relu and fine-tune", False),
    "prelu": ("an IF neuron emits no negative output; use nn.ReLU and fine-tune", False),
    "layernorm": (_NORM, False), "layer_norm": (_NORM, False), "layernorm2d": (_NORM, False),
    "groupnorm": (_NORM, False), "group_norm": (_NORM, False),
    "instancenorm2d": (_NORM, False), "localresponsenorm": (_NORM, False),
    "multiheadattention": (_ATTENTION, False), "softmax": (_ATTENTION, False),
    "scaled_dot_product_attention": (_ATTENTION, False), "matmul": (_ATTENTION, False),
    "bmm": (_ATTENTION, False),
    "lstm": ("recurrent layers are not feed-forward CNN layers; spikec converts feed-forward CNNs", False),
    "gru": ("recurrent layers are not feed-forward CNN layers; spikec converts feed-forward CNNs", False),
    "upsample": ("no upsampling op in the IF graph; use a strided transposed design without it", False),
    "interpolate": ("no upsampling op in the IF graph", False),
    "permute": (_REARRANGE, False),
    "transpose": (_REARRANGE, False),
    "stochasticdepth": ("stochastic depth is random in training mode; in eval mode it is the identity but "
                        "spikec does not know the module: replace it by nn.Identity for conversion", False),
    "dropout1d": ("replace by nn.Identity for conversion (dropout is the identity in eval mode)", False),
}

# message fragment -> suggestion (for problems inside supported ops)
_BY_MESSAGE = [
    ("multiplies two input-dependent", (_PRODUCT, False)),
    ("no activation between them; spikec needs", (
        "spikec.prepare(model, x) inserts a signed clip (spikec.quantize.SignedClip, a dual-threshold IF layer) "
        "on the first layer's output (a linear bottleneck, as in MobileNetV2 / MnasNet); fine-tune afterwards",
        True)),
    ("no activation between", ("insert an activation between the two linear layers, or merge them into "
                               "one (spikec needs an activation after every conv / linear)", False)),
    ("only flattening to [B, N]", ("flatten to [B, N] in (C, H, W) order right before a Linear layer; split "
                                   "channels only to shuffle them (view(B, g, C // g, H, W) -> transpose(1, 2) "
                                   "-> view(B, C, H, W)); other reshapes (tokens) have no spiking op", False)),
    ("view of split channels", ("merge the split channel axes back (view(B, C, H, W)) right after permuting "
                                "them: a channel shuffle is the only use of such a view", False)),
    ("can be split or sliced", ("select channels along dim 1 only (chunk, split, narrow, x[:, a:b])", False)),
    ("depthwise convolutions can absorb", ("use groups=1 (or a depthwise conv) where the rearranged channels are "
                                           "read: a grouped conv's channel blocks would need zero weights", False)),
    ("unequal size", ("choose an input size whose feature maps divide by the adaptive pool's output size",
                      False)),
    ("divisor must be uniform", (f"{PREPARE} by a pool with a uniform divisor (divisor_override = k*k)", True)),
    ("max pooling", (f"{PREPARE} by average pooling of the same geometry (fine-tune afterwards)", True)),
    ("concatenates", ("concatenate along channels (dim 1), tensors computed from the input only", False)),
    ("clamps to", ("only clip(x, 0, b) (ReLU, ReLU6, Hardtanh(0, b)) is a spiking rate", False)),
]


def _op_name(node: fx.Node, modules: dict) -> str:
    if node.op == "call_module":
        return type(modules[node.target]).__name__
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    if node.op == "call_function":
        return function_name(node.target)
    return node.op


def suggest(op: str, message: str) -> tuple[str, bool]:
    """(suggestion, fixable by spikec.prepare) for an op name and its error message."""
    key = op.rsplit(".", 1)[-1].lower().rstrip("_")
    if key in SUGGESTIONS:
        return SUGGESTIONS[key]
    for fragment, hint in _BY_MESSAGE:
        if fragment in message:
            return hint
    if "is not supported" in message:
        return ("no lowering for this op: remove or replace it (see the supported list in the error of "
                "spikec.compile)", False)
    return "", False


def problem(node: fx.Node, err: Exception, modules: dict) -> Problem:
    """The Problem row for `node`, which raised `err` while being lowered."""
    if node.op == "call_module":
        path = str(node.target)
    elif node.op == "output":
        path = ""
    else:
        path = module_scope(node)[0]
    op = "output" if node.op == "output" else _op_name(node, modules)
    message = str(err).split("; supported modules:", 1)[0]
    suggestion, fixable = suggest(op, message)
    return Problem(path, op, source_line(node), message, suggestion, fixable)


def combined_error(lowerer, problems: list[tuple[fx.Node, Exception]]) -> UnsupportedError:
    """One UnsupportedError for all problems: the original message when there is one, else a list."""
    rows = [problem(node, err, lowerer.modules) for node, err in problems]
    if len(rows) == 1:
        err = problems[0][1]
        cls = type(err) if isinstance(err, UnsupportedError) else UnsupportedError   # keep a subclass
        return cls(f"{err}\n    -> {rows[0].suggestion}" if rows[0].suggestion else str(err))
    lines = [f"{len(rows)} constructs cannot be converted (spikec.check(model, x) lists them as rows):"]
    lines += [f"  {i}. {row}" for i, row in enumerate(rows, 1)]
    if any("is not supported" in row.message for row in rows):
        lines.append(supported_summary())
    return UnsupportedError("\n".join(lines))


def check(model, example_input) -> list[Problem]:
    """Every construct of `model` that spikec.compile cannot convert, as Problem rows (empty: none).

    One pass over the whole graph. Problems of the model as a whole (torch.fx cannot trace it, it
    does not return logits [B, N]) are one row with module ''. Raises ConversionError if the model
    rejects `example_input` or has non-finite weights (fix those first).
    """
    from spikec.compiler.bnfold import fold_batchnorm
    from spikec.compiler.frontend import as_input_tensor, trace
    from spikec.compiler.lowering import Lowerer

    example = as_input_tensor(example_input)
    try:
        gm = trace(model, example, share_weights=True)
    except UnsupportedError as err:
        op = "torch.fx trace" if "torch.fx" in str(err) else "output"
        hint = ("make forward() free of data-dependent control flow (if/for on tensor values), or wrap "
                "such code with torch.fx.wrap" if op == "torch.fx trace" else
                "return one tensor of logits [B, N] from forward()")
        return [Problem("", op, "", str(err), hint)]
    gm = fold_batchnorm(gm)
    low = Lowerer(gm, example)
    try:
        low.walk()
    except UnsupportedError as err:   # the model as a whole (a second input, an input of odd shape)
        return [problem(node, e, low.modules) for node, e in low.problems] + [Problem("", "model", "", str(err), "")]
    return [problem(node, err, low.modules) for node, err in low.problems]
