"""Record files shared between the parent process and Lava's forked process models.

Reading a Lava Var from the parent costs about 30 us per element (one channel message each), so
spikec's models write what they record into `.npy` files that the parent created beforehand
(`numpy.lib.format.open_memmap`) and opens once more to read them after the run. The model opens
each file lazily, in its own OS process, as a shared memory map: rows written there are visible to
the parent as soon as the run returns.
"""

from __future__ import annotations

import traceback

import numpy as np


class RecordFile:
    """A lazily opened, writable memory map of an `.npy` file made by the parent (or no file)."""

    def __init__(self, path: str | None):
        self.path = path
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray | None:
        if self.path is None:
            return None
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r+")
        return self._array

    def write_row(self, index: int, values: np.ndarray) -> None:
        arr = self.array
        if arr is not None and 0 <= index < arr.shape[0]:
            arr[index] = values

    def write(self, values) -> None:
        arr = self.array
        if arr is not None:
            arr[...] = values


class ErrorLog:
    """Keeps a model stepping after an exception and leaves the traceback for the parent.

    An exception escaping `run_spk` stalls the whole Lava network (every other process waits on
    its channels forever). spikec's models therefore catch it, write the traceback to `path`, stop
    computing and keep sending zeros; the backend raises BackendError with that text after the run.
    """

    def __init__(self, path: str | None):
        self.path = path
        self.failed = False

    def record(self) -> None:
        self.failed = True
        text = traceback.format_exc()
        if self.path:
            with open(self.path, "a") as fh:
                fh.write(text)
