"""SpikecReadout: the IR's non-spiking readout accumulator as a Lava process (fixed-point model).

At local steps k = skip+1 .. skip+steps (k = t - start + 1) it adds its input current and bias
(with bias_steps > 0: at the first bias_steps of those steps only) to an int64 accumulator
saturated at +-(2^(state_bits-1) - 1), counting saturations (`spikec.ir.dynamics.readout_step`,
as the reference interpreter). The accumulator and the count are written to record files the
caller created (see files.py).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from spikec.backends.lava.procs.files import ErrorLog, RecordFile
from spikec.ir.dynamics import readout_step


class SpikecReadout(AbstractProcess):
    """Readout accumulator, flat shape (n,). acc_path: int64 [n]; sat_path: int64 [1];
    error_path: text file for a traceback (files.ErrorLog)."""

    def __init__(self, *, bias, start: int, skip: int, steps: int, state_bits: int = 24, bias_steps: int = 0,
                 acc_path=None, sat_path=None, error_path=None, name=None):
        bias = np.asarray(bias, np.int64)
        n = bias.shape[0]
        super().__init__(shape=(n,), start=int(start), skip=int(skip), steps=int(steps),
                         state_bits=int(state_bits), bias_steps=int(bias_steps), acc_path=acc_path,
                         sat_path=sat_path, error_path=error_path, name=name)
        self.a_in = InPort(shape=(n,))
        self.bias = Var(shape=(n,), init=bias)
        self.acc = Var(shape=(n,), init=np.zeros(n, np.int64))


@implements(proc=SpikecReadout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikecReadoutModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=32)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)
    acc: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        p = self.proc_params
        self.first = p["start"] + p["skip"]
        self.last = self.first + p["steps"] - 1
        self.last_biased = self.first + p["bias_steps"] - 1 if p["bias_steps"] else self.last
        self.limit = 2 ** (p["state_bits"] - 1) - 1
        self.acc_file = RecordFile(p["acc_path"])
        self.sat_file = RecordFile(p["sat_path"])
        self.errors = ErrorLog(p["error_path"])
        self.saturations = 0

    def run_spk(self):
        current = self.a_in.recv()
        if not self.errors.failed:
            try:
                self._update(current.astype(np.int64))
            except Exception:
                self.errors.record()

    def _update(self, current: np.ndarray) -> None:
        if self.first <= self.time_step <= self.last:
            bias = self.bias if self.time_step <= self.last_biased else 0
            acc, hits = readout_step(self.acc, current, bias, self.limit)
            self.saturations += hits
            self.acc[:] = acc
            self.acc_file.write(self.acc)
            self.sat_file.write(self.saturations)
