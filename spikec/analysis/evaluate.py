"""Data-set evaluation: stream batches through a graph once, to the largest T, and read the
accuracy at every T <= steps from that one run (the readout is cumulative).

Everything it returns is an integer count summed over batches (correct predictions per T, ANN
correct, saturations, spikes per layer), so results do not depend on the batch size, can be
resumed from a checkpoint of per-batch counts, and can be summed across processes: under
torch.distributed (torchrun) rank r takes batches r, r + W, r + 2W, ... and the counts are
all-reduced, giving exactly the single-process numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikec.analysis.batches import iter_batches, progress_bar, resolve, total_samples
from spikec.errors import BackendError, FormatError, InputDataError

FORMAT = "spikec-eval-checkpoint/1"
EVERY_STEP_BACKENDS = ("torch", "reference")   # backends whose run() takes every_step / count_spikes


@dataclass
class Evaluation:
    """Counts from an evaluation run; accuracies are derived from them.

    correct[t-1]: samples whose readout after t evaluated steps picks the label (t = 1..steps).
    total: samples evaluated; ann_correct: the float model's correct count (None without a model).
    saturations / spike_counts: per population, summed over samples and hardware steps.
    neurons: per IF layer, neurons per sample (for rates).
    """

    steps: int
    latency: int
    correct: np.ndarray
    total: int
    ann_correct: int | None = None
    saturations: dict[str, int] = field(default_factory=dict)
    spike_counts: dict[str, int] = field(default_factory=dict)
    neurons: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    world_size: int = 1

    def accuracy(self, t: int | None = None) -> float:
        """Accuracy in % after `t` evaluated steps (default: all of them)."""
        t = self.steps if t is None else t
        if not 1 <= t <= self.steps:
            raise InputDataError(f"accuracy asked at T={t}; this evaluation ran T = 1..{self.steps}")
        return 100.0 * int(self.correct[t - 1]) / max(self.total, 1)

    @property
    def ann_accuracy(self) -> float | None:
        return None if self.ann_correct is None else 100.0 * self.ann_correct / max(self.total, 1)

    def rates(self) -> dict[str, float]:
        """Mean spikes per neuron per hardware step, per IF layer."""
        steps = self.steps + self.latency
        return {name: count / max(1, self.neurons[name] * self.total * steps)
                for name, count in self.spike_counts.items()}

    def to_json(self, at: Iterable[int] | None = None) -> dict:
        ts = list(range(1, self.steps + 1)) if at is None else list(at)
        return {"steps": self.steps, "latency": self.latency, "total": self.total,
                "accuracy": {str(t): self.accuracy(t) for t in ts},
                "correct": {str(t): int(self.correct[t - 1]) for t in ts},
                "ann_accuracy": self.ann_accuracy, "ann_correct": self.ann_correct,
                "saturations": dict(self.saturations), "spike_rates": self.rates(),
                "spike_counts": dict(self.spike_counts), "wall_s": round(self.wall_s, 3),
                "images_per_s": round(self.total / self.wall_s, 2) if self.wall_s else None,
                "world_size": self.world_size}

    def __str__(self) -> str:
        marks = [t for t in (1, 2, 4, 8, 16, 32, 64, 128) if t <= self.steps]
        if self.steps not in marks:
            marks.append(self.steps)
        ann = "" if self.ann_accuracy is None else f"ANN {self.ann_accuracy:.2f} %, "
        accs = ", ".join(f"T={t}: {self.accuracy(t):.2f}" for t in marks)
        return f"Evaluation of {self.total} samples ({ann}SNN %) {accs}"

    def plot(self, path, title: str = "") -> None:
        """Accuracy against T (PNG), with the ANN's accuracy as a line when known."""
        from spikec.analysis.plots import accuracy_vs_steps

        curves = {"SNN": (list(range(1, self.steps + 1)), [self.accuracy(t) for t in range(1, self.steps + 1)])}
        accuracy_vs_steps(curves, path, ann=self.ann_accuracy, title=title or f"{self.total} samples")


def evaluate(graph, data, steps: int, backend: str = "torch", *, model=None, batch_size: int = 256,
             split: str = "test", limit: int | None = None, checkpoint=None, progress: bool = True,
             count_spikes: bool = True, **backend_options) -> Evaluation:
    """Evaluate `graph` on a labelled data set to T = `steps`, reading every T from one run.

    data: an iterable of (images, labels) batches (a DataLoader), a pair of arrays (x, y), or a
      path the loaders know (CIFAR-10 archive/folder/cifar-10-batches-py, .npz with x and y).
      Float images are encoded with the graph's input scale; integer images are used as given.
    model: the float ANN, evaluated on the same float images (its accuracy is reported beside).
    checkpoint: a file recording the counts of every finished batch; an interrupted evaluation
      started again with the same file resumes after the last recorded batch.
    Under torch.distributed (initialised, or the torchrun environment variables set), each rank
    takes every W-th batch and rank-summed counts are returned on every rank.
    """
    from spikec import backends
    from spikec.analysis import distributed

    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InputDataError(f"steps must be a positive int, got {steps!r}")
    if backend not in EVERY_STEP_BACKENDS:
        raise BackendError(f"backend {backend!r} cannot report the readout at every step; evaluate with one of "
                           f"{', '.join(EVERY_STEP_BACKENDS)} (Brian2 and Lava are for `spikec verify`)")
    runner = backends.get(backend)
    world = distributed.World.from_env()
    graph.validate()
    data = resolve(data, split, batch_size, graph.input.shape[0] if len(graph.input.shape) == 3 else 3)
    batches = iter_batches(data, batch_size, split, limit)
    state = _Counts.empty(graph, steps)
    done = _load_checkpoint(checkpoint, graph, steps, world, batch_size) if checkpoint else {}
    t0 = time.perf_counter()
    bar = progress_bar(progress and world.rank == 0, total_samples(data, limit), "evaluate")
    for index, (x, y) in enumerate(batches):
        if index % world.size != world.rank:
            continue
        if index in done:
            state.add(done[index])
            bar.update(len(y) * world.size)
            continue
        counts = _evaluate_batch(graph, runner, x, y, steps, model, count_spikes, backend_options)
        state.add(counts)
        done[index] = counts
        if checkpoint:
            _save_checkpoint(checkpoint, graph, steps, world, batch_size, done)
        bar.update(len(y) * world.size)
    bar.close()
    state = world.all_reduce(state)
    wall = time.perf_counter() - t0
    neurons = {layer.name: int(np.prod(layer.shape)) for layer in graph.neuron_layers}
    return Evaluation(steps=steps, latency=graph.latency, correct=state.correct, total=state.total,
                      ann_correct=state.ann_correct if model is not None else None,
                      saturations=state.saturations, spike_counts=state.spike_counts if count_spikes else {},
                      neurons=neurons, wall_s=wall, world_size=world.size)


@dataclass
class _Counts:
    """Integer counts of some batches; `vector` packs them in a fixed order for all_reduce."""

    correct: np.ndarray
    total: int
    ann_correct: int
    saturations: dict[str, int]
    spike_counts: dict[str, int]

    @classmethod
    def empty(cls, graph, steps: int) -> _Counts:
        pops = [p.name for p in graph.neuron_layers] + [graph.readout.name]
        return cls(np.zeros(steps, np.int64), 0, 0, dict.fromkeys(pops, 0),
                   dict.fromkeys([p.name for p in graph.neuron_layers], 0))

    def add(self, other: _Counts) -> None:
        self.correct = self.correct + other.correct
        self.total += other.total
        self.ann_correct += other.ann_correct
        for name in self.saturations:
            self.saturations[name] += other.saturations.get(name, 0)
        for name in self.spike_counts:
            self.spike_counts[name] += other.spike_counts.get(name, 0)

    def vector(self) -> np.ndarray:
        return np.concatenate([self.correct, [self.total, self.ann_correct],
                               list(self.saturations.values()), list(self.spike_counts.values())]).astype(np.int64)

    def from_vector(self, vec: np.ndarray) -> _Counts:
        n = len(self.correct)
        k = len(self.saturations)
        sats = dict(zip(self.saturations, (int(v) for v in vec[n + 2:n + 2 + k])))
        spikes = dict(zip(self.spike_counts, (int(v) for v in vec[n + 2 + k:])))
        return _Counts(vec[:n].copy(), int(vec[n]), int(vec[n + 1]), sats, spikes)

    def to_json(self) -> dict:
        return {"correct": self.correct.tolist(), "total": self.total, "ann_correct": self.ann_correct,
                "saturations": self.saturations, "spike_counts": self.spike_counts}

    @classmethod
    def from_json(cls, obj: dict) -> _Counts:
        return cls(np.asarray(obj["correct"], np.int64), int(obj["total"]), int(obj["ann_correct"]),
                   {k: int(v) for k, v in obj["saturations"].items()},
                   {k: int(v) for k, v in obj["spike_counts"].items()})


def _evaluate_batch(graph, runner, x, y, steps, model, count_spikes, options) -> _Counts:
    import torch

    x_arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    labels = (y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)).astype(np.int64)
    if labels.shape != (len(x_arr),):
        raise InputDataError(f"labels have shape {labels.shape}, expected ({len(x_arr)},)")
    is_float = np.issubdtype(x_arr.dtype, np.floating)
    x_int = graph.encode(x_arr) if is_float else x_arr
    trace = runner.run(graph, x_int, steps, every_step=True, count_spikes=count_spikes, **options)
    correct = (trace.outputs.argmax(axis=2) == labels[None, :]).sum(axis=1).astype(np.int64)
    ann = 0
    if model is not None:
        if not is_float:
            raise InputDataError("the ANN needs float images; give float data to compare with the model")
        with torch.no_grad():
            ann = int((model(torch.as_tensor(x_arr, dtype=torch.float32)).argmax(1).numpy() == labels).sum())
    sats = dict(trace.saturations)
    return _Counts(correct, len(labels), ann, sats, dict(trace.spike_counts or {}))


def _fingerprint(graph, steps: int, world, batch_size: int) -> str:
    from spikec.ir.digest import content_digest

    return hashlib.sha256(f"{content_digest(graph)}|{steps}|{world.size}|{batch_size}".encode()).hexdigest()


def _load_checkpoint(path, graph, steps: int, world, batch_size: int) -> dict[int, _Counts]:
    file = Path(world.rank_path(path))
    if not file.exists():
        return {}
    try:
        obj = json.loads(file.read_text())
        if obj.get("format") != FORMAT:
            raise FormatError(f"{file}: not a spikec evaluation checkpoint (format {obj.get('format')!r})")
        if obj["fingerprint"] != _fingerprint(graph, steps, world, batch_size):
            raise FormatError(f"{file}: checkpoint of a different graph, T, batch size or process count; "
                              "delete it or choose another --checkpoint")
        return {int(k): _Counts.from_json(v) for k, v in obj["batches"].items()}
    except (ValueError, KeyError, TypeError) as err:
        raise FormatError(f"{file}: malformed evaluation checkpoint ({err})") from err


def _save_checkpoint(path, graph, steps: int, world, batch_size: int, done: dict[int, _Counts]) -> None:
    file = Path(world.rank_path(path))
    file.parent.mkdir(parents=True, exist_ok=True)
    obj = {"format": FORMAT, "fingerprint": _fingerprint(graph, steps, world, batch_size),
           "batches": {str(k): v.to_json() for k, v in sorted(done.items())}}
    tmp = file.with_name(f"{file.name}.tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, file)
