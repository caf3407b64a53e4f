"""Bit-exact verification over a whole data set, batch by batch, optionally under torch.distributed.

Each batch is checked with `verify` (every IF layer's spikes at every step, and the readout). A
process stops at its first diverging batch; under torchrun, rank r takes batches r, r + W, ... and
the ranks' findings are gathered, so the report names the earliest diverging batch found by any
rank (and how many samples were checked before the ranks stopped).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spikec.analysis.batches import iter_batches, progress_bar, resolve, total_samples


@dataclass
class DatasetVerifyReport:
    baseline: str
    backends: list[str]
    steps: int
    samples: int                 # samples checked, over all ranks
    first_divergence: dict | None  # {"batch", "sample" (index in the data set), "layer", "neuron", ...}
    world_size: int = 1

    @property
    def equal(self) -> bool:
        return self.first_divergence is None

    def to_dict(self) -> dict:
        return {**asdict(self), "equal": self.equal}

    def __str__(self) -> str:
        if self.equal:
            return (f"EQUAL: {', '.join(self.backends)} match {self.baseline} bit for bit on {self.samples} samples "
                    f"({self.world_size} process(es)), T={self.steps}")
        d = self.first_divergence
        return (f"MISMATCH: {d['backend']} differs from {self.baseline} first at data-set sample {d['sample']}, "
                f"layer {d['layer']}, neuron {d['neuron']}, hardware step {d['step']}: {d['values']}")


def verify_dataset(graph, data, steps: int, backends=("torch",), baseline: str = "reference", *,
                   batch_size: int = 16, split: str = "test", limit: int | None = None,
                   progress: bool = True) -> DatasetVerifyReport:
    """Verify `backends` against `baseline` on every sample of `data` (see module docstring)."""
    from spikec.analysis.distributed import World
    from spikec.analysis.verify import verify

    world = World.from_env()
    data = resolve(data, split, batch_size, graph.input.shape[0] if len(graph.input.shape) == 3 else 3)
    bar = progress_bar(progress and world.rank == 0, total_samples(data, limit), "verify")
    checked, found, offset = 0, None, 0
    for index, (x, _) in enumerate(iter_batches(data, batch_size, split, limit)):
        n = len(x)
        if index % world.size == world.rank:
            x_arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
            x_int = graph.encode(x_arr) if np.issubdtype(x_arr.dtype, np.floating) else x_arr
            report = verify(graph, x_int, steps, backends=backends, baseline=baseline)
            checked += n
            if not report.equal:
                found = _describe(report, index, offset)
                break
            bar.update(n * world.size)
        offset += n
    bar.close()
    names = [b for b in backends if b != baseline]
    if world.size == 1:
        return DatasetVerifyReport(baseline, names, steps, checked, found)
    import torch.distributed as dist

    gathered: list = [None] * world.size
    dist.all_gather_object(gathered, (checked, found))
    hits = [f for _, f in gathered if f is not None]
    first = min(hits, key=lambda f: f["batch"]) if hits else None
    return DatasetVerifyReport(baseline, names, steps, sum(c for c, _ in gathered), first, world.size)


def _describe(report, batch: int, offset: int) -> dict:
    d = report.first_divergence
    if d is None:   # spikes agree, the readout does not
        row = next(r for r in report.readout if r["mismatches"])
        return {"batch": batch, "sample": offset + row["first_sample"], "layer": "readout",
                "backend": row["backend"], "neuron": None, "step": None, "values": None}
    return {"batch": batch, "sample": offset + d.sample, "layer": d.layer, "backend": d.backend,
            "neuron": d.neuron, "step": d.step, "values": d.values, "membrane": d.membrane}
