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

Adding a method (e.g. "ecl", "ftbc", "srp") = `register(Policy(...))`; no pipeline change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spikec.errors import UnsupportedError


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


METHODS: dict[str, Policy] = {}


def register(policy: Policy) -> Policy:
    """Add (or replace) a method under `policy.name`; returns it."""
    METHODS[policy.name] = policy
    return policy


def get(name: str) -> Policy:
    if isinstance(name, Policy):
        return name
    try:
        return METHODS[name]
    except KeyError:
        raise UnsupportedError(f"unknown conversion method {name!r}; known methods: "
                               f"{', '.join(sorted(METHODS))}") from None


register(Policy(
    "qcfs", "QCFS (Bu et al. 2022): theta = trained clip threshold, v_init = theta/2",
    accepts_relu=False, v_init=0.5))
register(Policy(
    "maxnorm", "plain IF, theta = max activation on the calibration data (per layer or channel), v_init 0",
    percentile=100.0, v_init=0.0))
register(Policy(
    "robust", "plain IF, theta = 99.9th percentile of positive activations (Rueckauer et al. 2017), v_init 0",
    percentile=99.9, v_init=0.0))
register(Policy(
    "opi", "OPI (Bu et al. 2022): ReLU ANN, theta from calibration (99.9th percentile), v_init = theta/2",
    percentile=99.9, v_init=0.5))

# FTBC / SRP options and the "ecl", "ftbc", "srp" methods live in spikec.conversion (issue 4).
from spikec.conversion import registry as _conversion_registry  # noqa: E402,F401
