"""SpikeRecorder: a sink that writes what arrives at its InPort, row t-1 at step t, to a file.

Used for the spikes of stock Lava neurons (LIF, netx blocks), whose state spikec cannot reach from
inside. The row is written in the same step the spike is emitted (neurons add no delay).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from spikec.backends.lava.procs.files import ErrorLog, RecordFile


class SpikeRecorder(AbstractProcess):
    """Sink of any shape; `path` is an .npy file of shape [steps, *shape] made by the caller."""

    def __init__(self, *, shape: tuple[int, ...], path: str, error_path=None, name=None):
        super().__init__(shape=tuple(shape), path=path, error_path=error_path, name=name)
        self.a_in = InPort(shape=tuple(shape))


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "floating_pt")
class PySpikeRecorderModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=32)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.file = RecordFile(self.proc_params["path"])
        self.errors = ErrorLog(self.proc_params["error_path"])

    def run_spk(self):
        received = self.a_in.recv()
        if not self.errors.failed:
            try:
                self.file.write_row(self.time_step - 1, received)
            except Exception:
                self.errors.record()
