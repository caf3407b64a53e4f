"""Registers the low-latency methods with the compiler's method registry.

    spikec.compile(model, x, method="qcfs" | "opi" | "maxnorm" | "robust", calibration=data,
                   ftbc=dict(alpha=0.4, batches=3, ...),    # FTBC bias schedules (any of these)
                   srp_presim=4)                             # SRP pre-simulation of tau steps
    spikec.compile(model, x, method="ecl", kappa=1.0, gate="net", ...)   # ECL-style signed neurons
    method="ftbc" = "qcfs" with FTBC (default options); method="srp" = "qcfs" with srp_presim=4.

Where the papers combine them: FTBC on QCFS / ReLU ANNs (FTBC "+QCFS" and "*" rows), SRP on
QCFS. Other combinations (ECL + FTBC, OPI + SRP, ...) run too but are our own; FTBC and SRP
together are refused (the pre-simulation would shift FTBC's time index).
"""

from __future__ import annotations

import dataclasses

from spikec.compiler import methods
from spikec.conversion.ftbc import DEFAULTS as FTBC_DEFAULTS
from spikec.conversion.ftbc import calibrate
from spikec.conversion.signed import apply_signed
from spikec.conversion.srp import apply_srp
from spikec.errors import ConversionError, UnsupportedError

SRP_DEFAULT_TAU = 4
COMBINABLE = ("ftbc", "srp_presim")
ECL_OPTIONS = ("kappa", "gate")


def _ftbc_options(value, ctx) -> dict:
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


def post_pass(graph, ctx):
    """The method-specific pass: signed neurons (ECL), then FTBC, then SRP, as the options ask."""
    opts = dict(ctx.options)
    if ctx.options.get("_signed"):
        graph = apply_signed(graph, kappa=opts.get("kappa", 1.0), gate=opts.get("gate", "net"))
    ftbc, tau = opts.get("ftbc"), opts.get("srp_presim")
    if ftbc not in (None, False) and tau:
        raise UnsupportedError("FTBC and SRP cannot be combined (SRP's pre-simulation shifts FTBC's "
                               "time index); choose one of ftbc=... and srp_presim=...")
    if ftbc not in (None, False):
        if ctx.calibration is None:
            raise ConversionError("FTBC needs calibration data: spikec.compile(..., calibration=x_train[:N])")
        graph = calibrate(graph, ctx.traced, ctx.calibration, **_ftbc_options(ftbc, ctx))
    if tau:
        graph = apply_srp(graph, tau)
    return graph


def _with_defaults(defaults: dict):
    """A post pass that fills method-level default options before `post_pass`."""
    def post(graph, ctx):
        options = {**defaults, **ctx.options}
        return post_pass(graph, dataclasses.replace(ctx, options=options))
    return post


def register_all() -> None:
    for name in ("qcfs", "opi", "maxnorm", "robust"):
        base = methods.get(name)
        methods.register(dataclasses.replace(
            base, post=post_pass, options=tuple(dict.fromkeys(base.options + COMBINABLE))))
    qcfs = methods.get("qcfs")
    methods.register(dataclasses.replace(
        qcfs, name="ftbc", description="FTBC (Wu et al. 2024) on a QCFS ANN: per-step, per-channel bias "
        "schedule calibrated layer by layer on the integer graph (ftbc=dict(alpha, batches, ...))",
        post=_with_defaults({"ftbc": {}})))
    methods.register(dataclasses.replace(
        qcfs, name="srp", description=f"SRP (Hao et al. 2023) on a QCFS ANN: tau = srp_presim (default "
        f"{SRP_DEFAULT_TAU}) pre-simulation steps, residual-potential mask, then T steps",
        post=_with_defaults({"srp_presim": SRP_DEFAULT_TAU})))
    methods.register(dataclasses.replace(
        qcfs, name="ecl", signed=True,
        description="ECL-style (Liu et al. 2025; partly unverified): learnable clip, v_init theta/2, "
        "dual-threshold signed neurons theta_neg = kappa*theta (kappa=1.0), gate 'net'",
        post=_with_defaults({"_signed": True}), options=ECL_OPTIONS + COMBINABLE))


register_all()
