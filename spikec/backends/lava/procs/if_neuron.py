"""SpikecIF: the IR's IF layer as a Lava process with a fixed-point CPU model.

The model's step is `spikec.ir.dynamics.if_step`, the function the reference interpreter calls
(see the `spikec.ir.nodes.IF` docstring): integer state in int64, `>=` threshold, subtract or
zero reset, initial potential, signed spikes with the "net" gate, a bias schedule and SRP
pre-simulation in local time k = t - start + 1, saturation to `state_bits` with a count. Before
its start step the layer holds v_init, ignores nothing (no input can arrive yet) and emits zeros.
All arrays are flat: the backend lays the B samples of a batch side by side, so
n = B * prod(layer shape).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from spikec.backends.lava.procs.files import ErrorLog, RecordFile
from spikec.ir.dynamics import IFParams, if_step, initial_state


class SpikecIF(AbstractProcess):
    """Integrate-and-fire neurons with spikec's IR semantics (flat shape (n,)).

    Arrays (int, shape (n,) unless noted): theta, v_init, bias, theta_neg (ignored unless
    `signed`), schedule [S, n] (the bias schedule; S = 0 rows means none).
    Options: start (hardware step of local step 1), presim, reset ("subtract" | "zero"),
    gate ("none" | "net"), signed, state_bits, and the record files made by the caller:
    spikes_path (int8 [steps, n]), v_path (int64 [steps, n]), sat_path (int64 [1]), and
    error_path (a text file that receives the traceback if the model fails; see files.ErrorLog).
    """

    def __init__(self, *, theta, v_init, bias, theta_neg=None, schedule=None, start: int = 1,
                 presim: int = 0, reset: str = "subtract", gate: str = "none",
                 state_bits: int = 24, spikes_path=None, v_path=None, sat_path=None, error_path=None,
                 name=None):
        theta = np.asarray(theta, np.int64)
        n = theta.shape[0]
        signed = theta_neg is not None
        theta_neg = np.ones(n, np.int64) if theta_neg is None else np.asarray(theta_neg, np.int64)
        schedule = np.zeros((0, n), np.int64) if schedule is None else np.asarray(schedule, np.int64)
        super().__init__(shape=(n,), start=int(start), presim=int(presim), reset=reset, gate=gate,
                         signed=signed, state_bits=int(state_bits), n_schedule=schedule.shape[0],
                         spikes_path=spikes_path, v_path=v_path, sat_path=sat_path,
                         error_path=error_path, name=name)
        self.a_in = InPort(shape=(n,))
        self.s_out = OutPort(shape=(n,))
        self.v = Var(shape=(n,), init=np.asarray(v_init, np.int64))
        self.v_init = Var(shape=(n,), init=np.asarray(v_init, np.int64))
        self.theta = Var(shape=(n,), init=theta)
        self.theta_neg = Var(shape=(n,), init=theta_neg)
        self.bias = Var(shape=(n,), init=np.asarray(bias, np.int64))
        # Lava Vars need a non-empty shape: keep one spare row, n_schedule says how many count
        self.schedule = Var(shape=(schedule.shape[0] + 1, n),
                            init=np.concatenate([schedule, np.zeros((1, n), np.int64)]))


@implements(proc=SpikecIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikecIFModel(PyLoihiProcessModel):
    """Fixed-point model of SpikecIF (int64 state; saturation at +-(2^(state_bits-1) - 1))."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=32)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=2)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)
    v_init: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)
    theta: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)
    theta_neg: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)
    schedule: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        p = self.proc_params
        self.start_step = p["start"]
        self.presim = p["presim"]
        self.reset = p["reset"]
        self.gate = p["gate"]
        self.signed = p["signed"]
        self.n_schedule = p["n_schedule"]
        self.limit = 2 ** (p["state_bits"] - 1) - 1
        self.spike_file = RecordFile(p["spikes_path"])
        self.v_file = RecordFile(p["v_path"])
        self.sat_file = RecordFile(p["sat_path"])
        self.errors = ErrorLog(p["error_path"])
        self.params = None   # IFParams and IFState (spikec.ir.dynamics), made at local step 1
        self.state = None

    def run_spk(self):
        current = self.a_in.recv()
        spikes = np.zeros(self.v.shape, np.int64)
        if not self.errors.failed:
            try:
                spikes = self._update(current.astype(np.int64))
            except Exception:
                self.errors.record()
                spikes = np.zeros(self.v.shape, np.int64)
        self.s_out.send(spikes.astype(np.int32))

    def _update(self, current: np.ndarray) -> np.ndarray:
        k = self.time_step - self.start_step + 1
        spikes = self._step(current, k) if k >= 1 else np.zeros(self.v.shape, np.int64)
        row = self.time_step - 1
        self.spike_file.write_row(row, spikes)
        self.v_file.write_row(row, self.v)
        return spikes

    def _step(self, current: np.ndarray, k: int) -> np.ndarray:
        if self.state is None:
            self.params = IFParams(
                theta=self.theta, v_init=self.v_init, bias=self.bias,
                theta_neg=self.theta_neg if self.signed else None,
                bias_schedule=self.schedule[:self.n_schedule] if self.n_schedule else None,
                gate=self.gate, presim=self.presim, reset=self.reset, limit=self.limit)
            self.state = initial_state(self.params)
        before = self.state.saturations
        # the Lava Var `v` is the membrane of record (it may be read or set between steps)
        self.state, spikes = if_step(self.params, self.state._replace(v=np.array(self.v)), current, k)
        if self.state.saturations != before:
            self.sat_file.write(self.state.saturations)
        self.v[:] = self.state.v
        return spikes
