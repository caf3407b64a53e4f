"""Conversion methods: a registry mapping a name to a Policy (how the IF layers are parameterised).

The pipeline never branches on a method's name; it asks the policy:

  * which ANN activations it accepts (trained ClipActivations, plain ReLUs or both) and, for
    plain ReLUs, which calibration statistic gives the threshold (`percentile`: 100 = max);
  * the initial membrane as a fraction of theta (`v_init`);
  * whether its neurons emit signed spikes (`signed`, so bounds assume spikes in {-1, 0, 1});
  * `if_fields(layer_record) -> dict`: extra IF fields set at quantization, in theta units where
    they are potentials: {"theta_neg": fraction of theta, "gate": "net", "presim": int,
    "reset": "zero"}; `readout_fields() -> dict` likewise ({"skip": int});
  * `post(graph, ctx) -> graph`: a pure pass on the quantized, retimed integer graph (FTBC bias
    schedules, SRP pre-simulation, ...), run before the static bound check;
  * `options`: names of extra keyword options `spikec.compile` accepts for this method; they
    reach `post` as ctx.options.

Adding a method = `register(Policy(...))`; no pipeline change. The methods spikec ships are all
defined at the bottom of this module, each once: "qcfs", "opi", "maxnorm", "robust" (every one
taking the `ftbc=dict(...)` and `srp_presim=tau` options) and "ftbc", "srp", "ecl" (QCFS with
those passes on by default, or with signed neurons: `kappa`, `gate`):

    spikec.compile(model, x, method="qcfs", calibration=data, ftbc=dict(alpha=0.4, batches=3))
    spikec.compile(model, x, method="ecl", kappa=0.1, gate="net")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spikec.conversion.ftbc import DEFAULTS as FTBC_DEFAULTS
from spikec.conversion.ftbc import calibrate as ftbc_calibrate
from spikec.conversion.signed import DEFAULT_KAPPA, apply_signed
from spikec.conversion.srp import apply_srp
from spikec.errors import ConversionError, UnsupportedError
from spikec.registry import Registry


@dataclass(frozen=True)
class CompileContext:
    """What a method's `post` pass may look at (read only)."""

    model: Any                 # the user's model (eval mode, not modified)
    traced: Any                # torch.fx GraphModule the graph was lowered from (BN folded)
    calibration: Any           # the calibration batch (torch.Tensor) or None
    steps: int | None          # the T the user compiles for (None: not given)
    target: Any                # spikec.compiler.targets.Target
    options: dict = field(default_factory=dict)   # method-specific options


def _none(*_args) -> dict:
    return {}


def _identity(graph, _ctx):
    return graph


@dataclass(frozen=True)
class Policy:
    """How a conversion method turns ANN activations into IF layers (see module docstring)."""

    name: str
    description: str
    accepts_clip: bool = True            # trained ClipActivation layers: theta = their threshold
    accepts_relu: bool = True            # plain ReLU layers: theta from calibration
    percentile: float = 100.0            # calibration statistic for ReLU layers (100 = max)
    v_init: float = 0.0                  # initial membrane, fraction of theta
    signed: bool = False                 # neurons may emit -1 spikes
    if_fields: Callable[[dict], dict] = _none
    readout_fields: Callable[[], dict] = _none
    post: Callable[[Any, CompileContext], Any] = _identity
    options: tuple[str, ...] = ()


METHODS: Registry[Policy] = Registry("conversion method", "methods")


def register(policy: Policy, replace: bool = False) -> Policy:
    """Add a method under `policy.name` (replacing another of that name only with replace=True)."""
    return METHODS.register(policy.name, policy, replace)


def get(name: str | Policy) -> Policy:
    """The method called `name` (a Policy is returned as is)."""
    return name if isinstance(name, Policy) else METHODS.entry(name)


# --------------------------------------------------------------------------- the methods
# The post passes are spikec.conversion's Graph -> Graph functions: FTBC bias schedules, SRP
# pre-simulation and ECL-style signed neurons. Where the papers combine them: FTBC on QCFS / ReLU
# ANNs (FTBC "+QCFS" and "*" rows), SRP on QCFS. Other combinations (ECL + FTBC, OPI + SRP, ...)
# run too but are our own; FTBC and SRP together are refused (the pre-simulation would shift
# FTBC's time index).

SRP_DEFAULT_TAU = 4
COMBINABLE = ("ftbc", "srp_presim")   # options every method takes
ECL_OPTIONS = ("kappa", "gate")


def _ftbc_options(value, ctx: CompileContext) -> dict:
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise ConversionError(f"ftbc must be a dict of options (or True), got {value!r}")
    unknown = sorted(set(value) - set(FTBC_DEFAULTS))
    if unknown:
        raise ConversionError(f"unknown ftbc option(s) {unknown}; known: {sorted(FTBC_DEFAULTS)}")
    opts = dict(FTBC_DEFAULTS)
    if ctx.steps is not None:
        opts["steps"] = ctx.steps
    opts.update(value)
    return opts


def post_pass(signed: bool = False, **defaults) -> Callable[[Any, CompileContext], Any]:
    """A method's post pass: signed neurons (ECL) when `signed`, then FTBC, then SRP, as the
    options ask; `defaults` are the method's own option defaults (the user's options win)."""

    def post(graph, ctx: CompileContext):
        opts = {**defaults, **ctx.options}
        if signed:
            graph = apply_signed(graph, kappa=opts.get("kappa", DEFAULT_KAPPA), gate=opts.get("gate", "net"))
        ftbc, tau = opts.get("ftbc"), opts.get("srp_presim")
        if ftbc not in (None, False) and tau:
            raise UnsupportedError("FTBC and SRP cannot be combined (SRP's pre-simulation shifts FTBC's "
                                   "time index); choose one of ftbc=... and srp_presim=...")
        if ftbc not in (None, False):
            if ctx.calibration is None:
                raise ConversionError("FTBC needs calibration data: spikec.compile(..., calibration=x_train[:N])")
            graph = ftbc_calibrate(graph, ctx.traced, ctx.calibration,
                                   **_ftbc_options(ftbc, ctx))
        if tau:
            graph = apply_srp(graph, tau)
        return graph

    return post


_QCFS = dict(accepts_relu=False, v_init=0.5, post=post_pass(), options=COMBINABLE)
register(Policy("qcfs", "QCFS (Bu et al. 2022): theta = trained clip threshold, v_init = theta/2", **_QCFS))
register(Policy(
    "maxnorm", "plain IF, theta = max activation on the calibration data (per layer or channel), v_init 0",
    percentile=100.0, v_init=0.0, post=post_pass(), options=COMBINABLE))
register(Policy(
    "robust", "plain IF, theta = 99.9th percentile of positive activations (Rueckauer et al. 2017), v_init 0",
    percentile=99.9, v_init=0.0, post=post_pass(), options=COMBINABLE))
register(Policy(
    "opi", "OPI (Bu et al. 2022): ReLU ANN, theta from calibration (99.9th percentile), v_init = theta/2",
    percentile=99.9, v_init=0.5, post=post_pass(), options=COMBINABLE))
register(Policy(
    "ftbc", "FTBC (Wu et al. 2024) on a QCFS ANN: per-step, per-channel bias schedule calibrated layer by "
    "layer on the integer graph (ftbc=dict(alpha, batches, ...))", **{**_QCFS, "post": post_pass(ftbc={})}))
register(Policy(
    "srp", f"SRP (Hao et al. 2023) on a QCFS ANN: tau = srp_presim (default {SRP_DEFAULT_TAU}) "
    "pre-simulation steps, residual-potential mask, then T steps",
    **{**_QCFS, "post": post_pass(srp_presim=SRP_DEFAULT_TAU)}))
register(Policy(
    "ecl", "ECL-style (Liu et al. 2025; partly unverified): learnable clip, v_init theta/2, "
    f"dual-threshold signed neurons theta_neg = kappa*theta (kappa={DEFAULT_KAPPA}), gate 'net'",
    **{**_QCFS, "signed": True, "post": post_pass(signed=True), "options": ECL_OPTIONS + COMBINABLE}))
