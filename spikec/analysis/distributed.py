"""torch.distributed for data-set evaluation: which shard this process takes, and summing counts.

Launch with `torchrun --nproc_per_node N ...` (or any launcher that sets RANK, WORLD_SIZE,
MASTER_ADDR and MASTER_PORT). When those are set and no process group exists yet, one is
initialised with `gloo` on CPU or `nccl` when CUDA is available. A single process (no variables)
is a world of one and never touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikec.errors import BackendError


@dataclass(frozen=True)
class World:
    """This process's rank among `size` processes (size 1: no torch.distributed)."""

    rank: int = 0
    size: int = 1
    device: str = "cpu"

    @classmethod
    def from_env(cls) -> World:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), _device(dist.get_backend()))
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size <= 1:
            return cls()
        if not dist.is_available():
            raise BackendError("WORLD_SIZE > 1 but this PyTorch has no torch.distributed")
        backend = "nccl" if _cuda() else "gloo"
        try:
            dist.init_process_group(backend=backend)
        except (RuntimeError, ValueError) as err:
            raise BackendError(f"torch.distributed could not start ({backend}): {err}; launch with torchrun "
                               "or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT") from err
        return cls(dist.get_rank(), dist.get_world_size(), _device(backend))

    def rank_path(self, path) -> str:
        """Per-rank file name: `path` itself for one process, `<stem>.rank<r>of<W><suffix>` otherwise."""
        p = Path(path)
        return str(p) if self.size == 1 else str(p.with_name(f"{p.stem}.rank{self.rank}of{self.size}{p.suffix}"))

    def all_reduce(self, counts):
        """Sum `counts` (an object with vector()/from_vector()) over all ranks; every rank gets the sum."""
        if self.size == 1:
            return counts
        import torch
        import torch.distributed as dist

        vec = torch.as_tensor(counts.vector(), dtype=torch.int64, device=self.device)
        dist.all_reduce(vec, op=dist.ReduceOp.SUM)
        return counts.from_vector(np.asarray(vec.cpu().numpy(), np.int64))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _device(backend: str) -> str:
    if backend == "nccl":
        import torch

        return f"cuda:{torch.cuda.current_device()}"
    return "cpu"
