"""Run a NIR file in another simulator (norse or SpikingJelly) step by step; docs/nir.md.

Used by the tests that check spikec's NIR export bit for bit, and usable as an example of driving
those importers. Results are in NIR time: step n = 1, 2, ... for every layer at once. Population P
of the spikec graph runs the same step at hardware step n + start(P) - 1 (`result["start_steps"]`).
"""

from __future__ import annotations

import json

import numpy as np

from spikec.errors import BackendError, InputDataError
from spikec.interop.nir_common import META_KEY, require_nir

SIMULATORS = ("norse", "spikingjelly")


def _module(nir_graph, simulator: str):
    """The importer's torch module and whether it must be fed one sample at a time."""
    import torch

    if simulator == "norse":
        import norse.torch as norse

        # norse builds torch.nn.Flatten(start_dim, end_dim) from NIR's batch-free dims, so a
        # batched input would be flattened across the batch: feed unbatched samples instead.
        return norse.from_nir(nir_graph, dt=1.0), True
    if simulator == "spikingjelly":
        from spikingjelly.activation_based.nir_exchange import import_from_nir

        # SpikingJelly requires IF's r = 1 / dt: spikec writes r = 1, so dt = 1.
        return import_from_nir(nir_graph, dt=1.0, dtype=torch.float32), False
    raise BackendError(f"unknown NIR simulator {simulator!r}; known: {', '.join(SIMULATORS)}")


def run_nir(path, inputs, steps: int, simulator: str = "norse", encoding: str | None = None) -> dict:
    """Import the NIR file `path` into `simulator` and run it for `steps` steps on integer `inputs`
    ([B, *shape] current, fed every step; or [B, S, *shape] spike trains, fed at steps 1..S).

    Returns {"output": [B, n_out] int64 sum of the Output over the steps (spikec's readout),
    "outputs": int64 [steps, B, n_out] the Output at each step,
    "spikes": {layer: int8 [steps, B, *shape]} for every IF node (spikec names where the file has
    spikec's metadata), "start_steps": {layer: spikec start step} (empty for foreign files)}."""
    import torch

    nir = require_nir()
    nir_graph = nir.read(path)
    meta = json.loads(nir_graph.metadata[META_KEY]) if META_KEY in (nir_graph.metadata or {}) else None
    names = {row["node"]: row["name"] for row in meta["populations"]} if meta else {}
    if meta:
        encoding = next(row["encoding"] for row in meta["populations"] if row["kind"] == "Input")
    encoding = encoding or "current"
    x = np.asarray(inputs)
    if x.dtype.kind not in "iu":
        raise InputDataError(f"run_nir: inputs must be integers, got {x.dtype}")
    module, unbatched = _module(nir_graph, simulator)
    if_nodes = [n for n, node in nir_graph.nodes.items() if isinstance(node, nir.IF)]
    recorded: dict[str, torch.Tensor] = {}
    hooks = []
    for mod_name, mod in module.named_modules():
        leaf = mod_name.rsplit(".", 1)[-1]
        if leaf in if_nodes and mod_name not in ("",):
            hooks.append(mod.register_forward_hook(
                lambda _m, _i, out, leaf=leaf: recorded.__setitem__(leaf, out[0] if isinstance(out, tuple) else out)))
    samples = [x[b:b + 1] for b in range(x.shape[0])] if unbatched else [x]
    outputs, spikes = [], {n: [] for n in if_nodes}
    with torch.no_grad():
        for sample in samples:
            state, per_step, trains = None, [], {n: [] for n in if_nodes}
            for n in range(1, steps + 1):
                if encoding == "current":
                    frame = sample
                else:
                    frame = sample[:, n - 1] if n <= sample.shape[1] else np.zeros_like(sample[:, 0])
                feed = torch.from_numpy(np.ascontiguousarray(frame, np.float32))
                out, state = module(feed[0] if unbatched else feed, state)
                per_step.append(out.double().reshape(len(sample), -1))
                for node in if_nodes:
                    train = recorded[node]
                    trains[node].append(train.unsqueeze(0) if unbatched else train)
            outputs.append(torch.stack(per_step))
            for node in if_nodes:
                spikes[node].append(torch.stack(trains[node]))
    for h in hooks:
        h.remove()
    per_step = torch.cat(outputs, dim=1).numpy()
    if not np.array_equal(per_step, np.round(per_step)):
        raise BackendError(f"{simulator} produced a non-integer output (the file is not an integer network)")
    return {"output": per_step.sum(0).astype(np.int64), "outputs": per_step.astype(np.int64),
            "spikes": {names.get(n, n): torch.cat(spikes[n], dim=1).numpy().astype(np.int8) for n in if_nodes},
            "start_steps": meta["start_steps"] if meta else {}}
