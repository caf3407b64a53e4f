"""Make lava-nc 0.10 importable on Python 3.11+, in memory, without touching site-packages.

lava-nc 0.10 declares Python < 3.11. The only thing that breaks on 3.11 is
`lava/magma/compiler/var_model.py`: its dataclasses use an instance of the (unhashable, mutable)
dataclass `ByteEncoder` as a field default (`x: ByteEncoder = ByteEncoder()`), which Python 3.11's
`dataclasses` rejects with "mutable default ... is not allowed: use default_factory". Every
`import lava.magma...` that reaches the compiler fails with that error.

`install()` puts a meta-path finder in front of `sys.meta_path` that claims exactly that one module.
Its loader reads the installed source, rewrites each `= ByteEncoder()` default into
`= dataclasses.field(default_factory=ByteEncoder)` and compiles the patched text itself. It never
reads or writes `__pycache__`: a `.pyc` compiled from the unpatched file (Python may have written
one during an earlier, failed import) would otherwise be loaded without any source step, so the
loader must not go through SourceFileLoader's bytecode cache. Nothing on disk is changed.

If the installed file no longer contains the pattern (a fixed Lava release), the loader compiles it
unchanged; on Python < 3.11 the module is left to the normal loader.

The same finder also claims `lava.magma.runtime.message_infrastructure.multiprocessing` without
changing its text: that module calls `multiprocessing.set_start_method('fork')` without force, which
fails with "context has already been set" once anything has called
`multiprocessing.get_start_method()` (torch's data loading does; measured: training a model with
spikec.quantize.train and then running the lava backend failed this way). If the method in force is
already 'fork', the loader clears it right before the module runs, so Lava sets the same method
again. Any other method in force is reported (see below).

Processes: Lava runs every Process in its own OS process. On Linux and macOS Lava calls
`multiprocessing.set_start_method('fork')` (without force) when it is imported, so its workers are
forked copies of the parent: they inherit `sys.meta_path` (the finder) and the already-imported
patched module, and need nothing else. A process started with the *spawn* or *forkserver* method is
a fresh interpreter without the finder (a bare import of the module fails there, see
tests/backends/test_lava_compat.py) - but Lava cannot run in such a process anyway: its start-method
call raises "context has already been set". For the same reason Lava cannot be imported after a
program chose another start method; `install()` reports that as a BackendError instead, so the
backend shows up as unavailable with the reason.

spikec installs the shim before any import of lava: in `spikec.backends.lava.backend`,
`spikec.backends.lava.procs` and the netx exporter/loader helpers.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import multiprocessing
import re
import sys

from spikec.errors import BackendError

TARGET = "lava.magma.compiler.var_model"
MP_TARGET = "lava.magma.runtime.message_infrastructure.multiprocessing"
_DEFAULT = re.compile(r"=\s*ByteEncoder\(\)")
_FUTURE = "from __future__ import annotations\n"
_IMPORT = "import dataclasses as _spikec_dataclasses  # added in memory by spikec.backends.lava.compat\n"


def patch_source(text: str) -> str:
    """Return `text` with every `= ByteEncoder()` default replaced by a default_factory."""
    if not _DEFAULT.search(text):
        return text
    patched = _DEFAULT.sub("= _spikec_dataclasses.field(default_factory=ByteEncoder)", text)
    if _FUTURE in patched:  # the import must follow the __future__ import
        return patched.replace(_FUTURE, _FUTURE + _IMPORT, 1)
    return _IMPORT + patched


class _PatchingLoader(importlib.abc.SourceLoader):
    """Loads one source file, patched, always compiling from text (never from a cached .pyc)."""

    def __init__(self, fullname: str, path: str):
        self.name = fullname
        self.path = path

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_data(self, path: str) -> bytes:
        with open(path, "rb") as fh:
            return fh.read()

    def get_source(self, fullname: str) -> str:
        return patch_source(self.get_data(self.path).decode("utf-8"))

    def get_code(self, fullname: str):
        return compile(self.get_source(fullname), self.path, "exec", dont_inherit=True)


class _ForkContextLoader(importlib.abc.Loader):
    """Runs Lava's multiprocessing module unchanged, after un-fixing an already *fork* context.

    That module calls `multiprocessing.set_start_method('fork')` without force, which raises
    "context has already been set" whenever anything called `multiprocessing.get_start_method()`
    before (that call fixes the default context; torch and many libraries make it). When the method
    in force is already 'fork', clearing it just lets Lava set the same method again.
    """

    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        if multiprocessing.get_start_method(allow_none=True) == "fork":
            multiprocessing.set_start_method(None, force=True)
        self.inner.exec_module(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Claims only TARGET and MP_TARGET; every other import goes to the normal finders."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in (TARGET, MP_TARGET):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return spec
        if fullname == MP_TARGET:
            spec.loader = _ForkContextLoader(spec.loader)
            return spec
        if not needed():
            return spec
        loader = _PatchingLoader(fullname, spec.origin)
        found = importlib.util.spec_from_file_location(fullname, spec.origin, loader=loader)
        found.cached = None  # no bytecode path: the code is always compiled from the patched text
        return found


_FINDER = _Finder()


def needed() -> bool:
    return sys.version_info >= (3, 11)


def installed() -> bool:
    return _FINDER in sys.meta_path


def install() -> None:
    """Install the finder (idempotent) and check the multiprocessing start method Lava needs."""
    method = multiprocessing.get_start_method(allow_none=True)
    if method not in (None, "fork") and sys.platform != "win32" and "lava" not in sys.modules:
        raise BackendError(
            f"Lava requires the 'fork' multiprocessing start method, but this program already chose "
            f"{method!r}; call multiprocessing.set_start_method('fork', force=True) before using "
            "the lava backend")
    if not installed():
        sys.meta_path.insert(0, _FINDER)
