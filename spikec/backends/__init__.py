"""Backends: one module each behind a small protocol, registered by name.

A backend module defines `NAME`, `is_available() -> bool` and
`run(graph, inputs, steps, record=False, record_v=False, **options) -> Trace`.
Heavy imports (torch, brian2, lava) happen inside the backend module, never here.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from spikec.errors import BackendError
from spikec.registry import Registry

BACKENDS: Registry[str] = Registry("backend", "backends", BackendError, {   # name -> module path
    "reference": "spikec.backends.reference",
    "torch": "spikec.backends.torch.backend",
    "brian2": "spikec.backends.brian2.backend",
    "lava": "spikec.backends.lava.backend",
})


def register(name: str, module: str, replace: bool = False) -> None:
    """Register a backend module (import path) under `name`; third-party backends use this.

    The environment variable SPIKEC_BACKENDS="name=package.module,..." registers more at import.
    """
    BACKENDS.register(name, module, replace)


def names() -> list[str]:
    return list(BACKENDS)


def get(name: str) -> ModuleType:
    """Import and return the backend module called `name`."""
    path = BACKENDS.entry(name)
    try:
        module = importlib.import_module(path)
    except ImportError as err:
        raise BackendError(f"backend {name!r} cannot be imported: {err}") from err
    if not module.is_available():
        raise BackendError(f"backend {name!r} is not available here: {module.why_unavailable()}")
    return module


def run(graph, inputs, steps: int, backend: str = "torch", record: bool = False, record_v: bool = False,
        **options):
    """Run `graph` on `backend` (see spikec.run, the public face of this)."""
    return get(backend).run(graph, inputs, steps, record=record, record_v=record_v, **options)


def available() -> list[str]:
    out = []
    for name in BACKENDS:
        try:
            get(name)
        except BackendError:
            continue
        out.append(name)
    return out


for _item in filter(None, os.environ.get("SPIKEC_BACKENDS", "").split(",")):
    _name, _, _module = _item.partition("=")
    if not _module:
        raise BackendError(f"SPIKEC_BACKENDS entry {_item!r} is not of the form name=package.module")
    register(_name.strip(), _module.strip())
