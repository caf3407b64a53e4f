"""The IR's dynamics as pure functions: the one definition of the neuron step.

`if_step(params, state, current, k) -> (state, spikes)` is local step k of an IF layer, exactly
as the `spikec.ir.nodes.IF` docstring states it (and docs/semantics.md). It reads its state and
returns a new one; nothing is modified in place. `sigma_delta_step` is the same for a SigmaDelta
layer (graded output), `readout_step` is the readout's accumulator.
The synapse ops (Dense, Conv2d, SumPool2d, Flatten) are defined by `spikec.ir.ops_numpy`;
`edge_current` adds an edge's weight exponent.

Who calls what:
- the reference interpreter (`spikec.ir.interpreter`) and the Lava process model
  (`spikec.backends.lava.procs.if_neuron`) call `if_step`;
- FTBC's replay (`spikec.conversion.ftbc`) calls `fire` and `reset` on float torch tensors (both
  are written with array operators only, so they accept numpy arrays and torch tensors alike);
- the torch backend's fused scan (`spikec.backends.torch.ops.if_scan`) and the Brian2 model's
  abstract code (`spikec.backends.brian2.model.if_update`) are separate transcriptions for speed
  and code generation; tests/unit/test_dynamics.py checks both against `if_step` on random states.

All arrays are integer numpy arrays of the state's shape (parameters may be anything that
broadcasts to it: a scalar, or a full [B, *shape] array from `if_params`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikec.ir.graph import broadcast_param
from spikec.ir.nodes import IF, Edge, SigmaDelta
from spikec.ir.ops_numpy import apply_ops


class IFParams(NamedTuple):
    """An IF layer's parameters, broadcast to the state's shape (see `if_params`)."""

    theta: np.ndarray
    v_init: np.ndarray
    bias: np.ndarray
    theta_neg: np.ndarray | None       # None: unsigned neurons
    bias_schedule: np.ndarray | None   # [S, ...]: added at local steps 1..S
    gate: str = "none"                 # "none" | "net": negative spikes only while net > 0
    presim: int = 0                    # SRP: latch the mask at the end of local step presim
    reset: str = "subtract"            # "subtract" | "zero"
    limit: int = 2 ** 23 - 1           # |v| saturates at 2^(state_bits-1) - 1


class IFState(NamedTuple):
    """What an IF layer carries from one step to the next."""

    v: np.ndarray          # membrane potential
    mask: np.ndarray       # SRP output mask: ones until the latch
    net: np.ndarray        # sum of the spikes emitted so far (the "net" gate)
    saturations: int = 0   # (neuron, step) pairs clipped so far


def if_params(layer: IF, batch: int | None = None) -> IFParams:
    """`layer`'s parameters as int64 arrays of shape [batch, *layer.shape] (layer.shape if batch
    is None), the bias schedule as [S, batch, *layer.shape]."""
    shape = tuple(layer.shape) if batch is None else (batch,) + tuple(layer.shape)

    def full(a):
        return np.broadcast_to(broadcast_param(a, layer.shape), shape).astype(np.int64)

    schedule = None if layer.bias_schedule is None else np.stack([full(b) for b in layer.bias_schedule])
    return IFParams(theta=full(layer.theta), v_init=full(layer.v_init), bias=full(layer.bias),
                    theta_neg=None if layer.theta_neg is None else full(layer.theta_neg),
                    bias_schedule=schedule, gate=layer.gate, presim=int(layer.presim),
                    reset=layer.reset, limit=2 ** (layer.state_bits - 1) - 1)


def initial_state(params: IFParams) -> IFState:
    """The state before local step 1: v = v_init, mask all ones, net zero."""
    v = np.array(params.v_init, dtype=np.int64)
    return IFState(v=v, mask=np.ones_like(v), net=np.zeros_like(v), saturations=0)


def saturate(v: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
    """v clipped to [-limit, limit] and the number of clipped entries."""
    clipped = np.clip(v, -limit, limit)
    return clipped, int(np.count_nonzero(clipped != v))


def fire(v, theta, theta_neg=None, gate_open=None):
    """(pos, neg) boolean spike decisions: pos = v >= theta; neg = v <= -theta_neg where pos is
    not set and the gate is open (neg is None for unsigned neurons; gate_open None = always)."""
    pos = v >= theta
    if theta_neg is None:
        return pos, None
    neg = (v <= -theta_neg) & ~pos
    if gate_open is not None:
        neg = neg & gate_open
    return pos, neg


def reset(v, pos, neg, theta, mode: str = "subtract"):
    """The membrane after firing: subtract the value of the spike it sent (theta for +1, -theta for
    -1: theta_neg is only the negative spike's trigger level), or 0 where it fired."""
    if mode == "zero":
        fired = pos if neg is None else pos | neg
        return v * ~fired
    v = v - pos * theta
    return v if neg is None else v + neg * theta


def if_step(params: IFParams, state: IFState, current: np.ndarray, k: int) -> tuple[IFState, np.ndarray]:
    """Local step k >= 1 of an IF layer: returns the new state and the emitted spikes (int64 in
    {-1, 0, +1}). `current` is the summed synaptic input arriving at this step.

        v += I + bias + bias_schedule[k-1] (k <= S);  v = saturate(v)
        pos, neg = fire(v);  s = pos - neg;  v = reset(v);  out = s * mask;  net += out
        if k == presim > 0: mask = v > 0; v = v_init; net = 0
    """
    v = state.v + current + params.bias
    if params.bias_schedule is not None and k <= len(params.bias_schedule):
        v = v + params.bias_schedule[k - 1]
    v, hits = saturate(v, params.limit)
    gate_open = state.net > 0 if params.gate == "net" else None
    pos, neg = fire(v, params.theta, params.theta_neg, gate_open)
    s = pos.astype(np.int64) - (0 if neg is None else neg.astype(np.int64))
    v = reset(v, pos, neg, params.theta, params.reset)
    out = s * state.mask
    mask, net = state.mask, state.net + out
    if params.presim and k == params.presim:
        mask = (v > 0).astype(np.int64)
        v = np.array(params.v_init, dtype=np.int64)
        net = np.zeros_like(net)
    return IFState(v=v, mask=mask, net=net, saturations=state.saturations + hits), out


class SigmaDeltaParams(NamedTuple):
    """A SigmaDelta layer's parameters (bias broadcast to the state's shape)."""

    bias: np.ndarray
    shift: int
    vth: int
    limit: int


class SigmaDeltaState(NamedTuple):
    sigma: np.ndarray      # sum of every input so far
    act: np.ndarray        # the activation sent so far (act_prev)
    residue: np.ndarray    # the part of the change not yet sent (|residue| < vth)
    saturations: int = 0


def sigma_delta_params(layer: SigmaDelta, batch: int | None = None) -> SigmaDeltaParams:
    shape = tuple(layer.shape) if batch is None else (batch,) + tuple(layer.shape)
    bias = np.broadcast_to(broadcast_param(layer.bias, layer.shape), shape).astype(np.int64)
    return SigmaDeltaParams(bias=bias, shift=int(layer.shift), vth=int(layer.vth),
                            limit=2 ** (layer.state_bits - 1) - 1)


def sigma_delta_initial(params: SigmaDeltaParams) -> SigmaDeltaState:
    zeros = np.zeros_like(params.bias)
    return SigmaDeltaState(sigma=zeros, act=zeros, residue=zeros, saturations=0)


def sigma_delta_step(params: SigmaDeltaParams, state: SigmaDeltaState,
                     current: np.ndarray) -> tuple[SigmaDeltaState, np.ndarray]:
    """One local step of a SigmaDelta layer: returns the new state and the graded output.

        sigma = saturate(sigma + I);  act = max(sigma + bias, 0)
        delta = act - act_prev + residue;  s = delta where |delta| >= vth else 0
        residue = delta - s;  out = s >> shift
    """
    sigma, hits = saturate(state.sigma + current, params.limit)
    act = np.maximum(sigma + params.bias, 0)
    delta = act - state.act + state.residue
    sent = np.where(np.abs(delta) >= params.vth, delta, 0)
    new = SigmaDeltaState(sigma=sigma, act=act, residue=delta - sent, saturations=state.saturations + hits)
    return new, sent >> params.shift


def readout_step(acc: np.ndarray, current: np.ndarray, bias, limit: int) -> tuple[np.ndarray, int]:
    """One evaluated readout step: acc + current + bias, saturated; returns (acc, clipped count)."""
    return saturate(acc + current + bias, limit)


def edge_current(edge: Edge, x: np.ndarray) -> np.ndarray:
    """What `edge` delivers for x = what its source emitted ([B, *src shape]): the ops, times
    2^weight_exp (a negative exponent floors: an arithmetic right shift of the summed current)."""
    current = apply_ops(edge.ops, x)
    return current << edge.weight_exp if edge.weight_exp >= 0 else current >> -edge.weight_exp
