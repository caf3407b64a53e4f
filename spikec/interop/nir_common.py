"""What the NIR exporter and importer share: names, the metadata key, exact-float limits.

NIR (the Neuromorphic Intermediate Representation, package `nir`) stores every parameter as a
float array and runs layer-synchronously; spikec's IR is integer and delays each edge by one step.
See docs/nir.md for the mapping and the time shift between the two.
"""

from __future__ import annotations

import re

import numpy as np

from spikec.errors import BackendError

META_KEY = "spikec"            # NIRGraph.metadata[META_KEY]: JSON text, see nir_export.metadata()
META_FORMAT = "spikec-nir"
META_VERSION = 1
FLOAT_EXACT = 2**24            # every integer of magnitude <= 2^24 is exact in float32
THRESHOLD_OFFSET = 0.5         # v_threshold = theta - 0.5: `>` and `>=` simulators agree on integers
INPUT_NODE = "input"
OUTPUT_NODE = "output"


def require_nir():
    """The `nir` package, or BackendError saying how to install it."""
    try:
        import nir
    except ImportError as err:
        raise BackendError("NIR support needs the package 'nir' (pip install 'spikec[nir]' or "
                           "pip install -r requirements.txt)") from err
    return nir


def node_name(name: str, taken: set[str]) -> str:
    """A NIR node name for spikec population `name`: letters, digits and '_' only (importers build
    torch modules named after nodes, and torch rejects '.'), unique within `taken`."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", name) or "node"
    if base[0].isdigit():
        base = "n_" + base
    candidate, i = base, 1
    while candidate in taken or candidate in (INPUT_NODE, OUTPUT_NODE):
        candidate, i = f"{base}_{i}", i + 1
    taken.add(candidate)
    return candidate


def reduce_param(full: np.ndarray, shape: tuple[int, ...], param_shape=None) -> np.ndarray | None:
    """A full-shape integer array as spikec's compact parameter: `param_shape` if given (scalar (),
    per channel (C,) or the full shape), else the smallest of those that holds it exactly.
    Returns None when `full` does not have the requested form."""
    full = np.asarray(full, np.int64).reshape(shape)
    forms = [param_shape] if param_shape is not None else [(), (shape[0],), shape]
    for form in forms:
        form = tuple(form)
        if form == ():
            if (full == full.flat[0]).all():
                return np.asarray(full.flat[0], np.int64)
        elif form == shape:
            return full.copy()
        elif form == (shape[0],):
            per = full.reshape(shape[0], -1)
            if (per == per[:, :1]).all():
                return per[:, 0].copy()
    return None
