"""Compile targets: the bit widths and ranges the integer graph must respect.

A target is a small frozen record; `register` adds one (and refuses a second of the same name).
The quantizer reads the widths, the bound check reads the state and per-step input limits, the
retiming pass reads `max_delay`.
"""

from __future__ import annotations

from dataclasses import dataclass

from spikec.registry import Registry


@dataclass(frozen=True)
class Target:
    """Integer formats of one deployment target (all limits inclusive, symmetric where signed).

    weight_bits:   signed weight mantissas lie in [-2^(b-1), 2^(b-1) - 1] (one scale per layer).
    weight_exp_max: largest per-edge weight exponent (Edge.weight_exp): at a layer fed by several
                   edges (a residual join) each edge may scale its mantissas by 2^0..2^max, so the
                   edge with the smallest weights keeps full precision. 0 = one scale for all.
    theta_max:     largest integer threshold (Loihi: 17-bit vth mantissa).
    bias_mant_bits, bias_exp_max: a bias must equal mant << exp with |mant| <= 2^(m-1) - 1 and
                   exp in 0..bias_exp_max; None = any integer that fits the state.
    state_bits:    membrane / readout accumulator width (saturating, see SEMANTICS §3).
    input_limit:   largest |per-step synaptic input| a neuron may receive (Loihi: below 2^17).
    max_delay:     largest extra edge delay (Loihi: 62).
    input_bits:    default width of a current-encoded Input's values.
    neurons:       "spikec" (the project's IF process: every IR neuron feature), "stock" (Lava's
                   stock LIF / netx CUBA: zero reset, v_init 0, no signed spikes, SRP or bias
                   schedules; enforced by spikec.compiler.stock.legalize_neurons) or
                   "sigma-delta" (Lava's stock SigmaDelta with graded messages: thresholds are
                   powers of two and every IF layer becomes a SigmaDelta layer,
                   spikec.compiler.sigma_delta).
    """

    name: str
    weight_bits: int
    theta_max: int
    bias_mant_bits: int | None
    bias_exp_max: int | None
    state_bits: int
    input_limit: int
    max_delay: int = 62
    input_bits: int = 8
    description: str = ""
    neurons: str = "spikec"
    weight_exp_max: int = 0

    @property
    def theta_power_of_two(self) -> bool:
        """Whether integer thresholds must be powers of two (a sigma-delta layer divides by shifting)."""
        return self.neurons == "sigma-delta"

    @property
    def weight_max(self) -> int:
        return 2 ** (self.weight_bits - 1) - 1

    @property
    def weight_min(self) -> int:
        """-2^(b-1); -(2^(b-1) - 1) on sigma-delta targets, whose clip twins negate weights."""
        return -(2 ** (self.weight_bits - 1)) + (1 if self.theta_power_of_two else 0)

    @property
    def state_max(self) -> int:
        return 2 ** (self.state_bits - 1) - 1

    @property
    def bias_max(self) -> int:
        """Largest |bias| the format can hold."""
        if self.bias_mant_bits is None:
            return self.state_max
        return (2 ** (self.bias_mant_bits - 1) - 1) << self.bias_exp_max


TARGETS: Registry[Target] = Registry("target", "targets")


def register(target: Target, replace: bool = False) -> Target:
    """Add a target under `target.name` (replacing another of that name only with replace=True)."""
    return TARGETS.register(target.name, target, replace)


def get(name) -> Target:
    """The target called `name` (a Target instance is returned as is)."""
    return name if isinstance(name, Target) else TARGETS.entry(name)


register(Target(
    "loihi", weight_bits=8, theta_max=2**17 - 1, bias_mant_bits=13, bias_exp_max=7, state_bits=24,
    input_limit=2**17 - 1, max_delay=62, input_bits=8, weight_exp_max=8,
    description="Loihi 2 formats with the project's IF neuron process: int8 weights with a per-edge "
                "exponent 0..8 at residual joins, 17-bit theta, 13-bit bias mantissa << 0..7, 24-bit "
                "saturating membrane, per-step input < 2^17"))
register(Target(
    "int32", weight_bits=16, theta_max=2**31 - 1, bias_mant_bits=None, bias_exp_max=None, state_bits=32,
    input_limit=2**31 - 1, max_delay=62, input_bits=8,
    description="generic 32-bit integer target: int16 weights, 32-bit saturating state, no Loihi formats"))
register(Target(
    "loihi-stock", weight_bits=8, theta_max=2**17, bias_mant_bits=13, bias_exp_max=0, state_bits=18,
    input_limit=2**17 - 1, max_delay=62, input_bits=8, neurons="stock", weight_exp_max=8,
    description="Loihi 2 with Lava's stock LIF / netx CUBA neurons: reset to zero, v > vth "
                "(vth = theta - 1 <= 2^17 - 1), v_init 0, no signed spikes / SRP / bias schedules, "
                "int8 weights, bias mantissa << 6 (|bias| <= 4095), v within 2^17 weight units"))
register(Target(
    "loihi-sdnn", weight_bits=8, theta_max=2**17, bias_mant_bits=13, bias_exp_max=7, state_bits=24,
    input_limit=2**17 - 1, max_delay=62, input_bits=8, neurons="sigma-delta", weight_exp_max=8,
    description="Loihi 2 with Lava's stock SigmaDelta neurons (ReLU, graded messages): each layer "
                "sends its quantized activation once, so the readout is final at T=1; int8 weights, "
                "per-edge weight exponent -8..8, neuron shift <= 7, 16-bit bias, 24-bit sigma"))
