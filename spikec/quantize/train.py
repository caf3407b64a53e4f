"""A small, plain training loop for ANNs with spikec activations (no hidden tricks).

Cross-entropy loss, SGD with momentum (or Adam), a cosine learning-rate schedule stepped once
per batch, weight decay on every parameter (the QCFS code applies it to the thresholds too),
no augmentation, no label smoothing. Progress is shown with tqdm.

Level-sampled training (`sample_levels`): every quantising clip activation (QCFS, ECLClip with
levels) gets, per batch, an L drawn from the given list, so the net stays accurate at coarse levels
and therefore as an SNN at few time steps (docs/methods.md); the trained L is restored at the end.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from spikec.errors import InputDataError
from spikec.findings import Finding
from spikec.quantize.activations import ClipActivation


def _loader(data, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (torch.as_tensor(d) for d in data)
        if x.shape[0] != y.shape[0]:
            raise InputDataError(f"inputs and labels differ in length: {x.shape[0]} vs {y.shape[0]}")
        gen = torch.Generator().manual_seed(seed)
        return DataLoader(TensorDataset(x.float(), y.long()), batch_size=batch_size, shuffle=shuffle,
                          generator=gen)
    raise InputDataError("expected a DataLoader or a pair (inputs, labels) of tensors, "
                         f"got {type(data).__name__}")


def quantisers(model: nn.Module) -> list[ClipActivation]:
    """The model's clip activations that quantise (an integer `levels`)."""
    return [m for m in model.modules() if isinstance(m, ClipActivation) and isinstance(m.levels, int)]


def set_levels(model: nn.Module, levels: int) -> None:
    """Set every quantising clip activation of `model` to `levels` levels."""
    for m in quantisers(model):
        m.levels = levels


def _check_levels(model: nn.Module, sample_levels) -> list[int]:
    chosen = [int(v) for v in sample_levels]
    if not chosen or any(v < 1 or v != w for v, w in zip(chosen, sample_levels)):
        raise InputDataError(f"sample_levels must be a non-empty list of positive ints, got {sample_levels!r}")
    if not quantisers(model):
        raise InputDataError("sample_levels needs quantising activations (QCFS, or ECLClip with levels); "
                             "the model has none")
    return chosen


def train(model: nn.Module, data, epochs: int, lr: float, optimizer: str = "sgd",
          batch_size: int = 128, weight_decay: float = 5e-4, momentum: float = 0.9, seed: int = 0,
          progress: bool = True, sample_levels=None) -> nn.Module:
    """Train `model` in place for `epochs` epochs on `data` and return it (in eval mode).

    data: a DataLoader yielding (x, y) or a pair of tensors (x [N, ...] float, y [N] int), which
    is shuffled with a generator seeded by `seed`. optimizer: "sgd" (momentum `momentum`) or
    "adam". The learning rate follows a cosine from `lr` to 0 over all steps. sample_levels: e.g.
    (1, 2, 4, 8): each batch trains with every quantising activation at one L drawn from the list
    (level-sampled training, see the module doc); each activation's own L is restored at the end.
    """
    if epochs < 1 or lr <= 0:
        raise InputDataError(f"need epochs >= 1 and lr > 0, got epochs={epochs}, lr={lr}")
    choices = None if sample_levels is None else _check_levels(model, sample_levels)
    trained = {m: m.levels for m in quantisers(model)}
    level_gen = torch.Generator().manual_seed(seed + 1)
    torch.manual_seed(seed)
    loader = _loader(data, batch_size, shuffle=True, seed=seed)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        raise InputDataError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))
    loss_fn = nn.CrossEntropyLoss()
    bar = tqdm(range(epochs), desc="train", disable=not progress, leave=False)
    for _ in bar:
        model.train()
        total, seen, correct = 0.0, 0, 0
        for x, y in loader:
            if choices:
                set_levels(model, choices[int(torch.randint(len(choices), (1,), generator=level_gen))])
            opt.zero_grad()
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(y)
            seen += len(y)
            correct += int((out.argmax(1) == y).sum())
        bar.set_postfix(loss=f"{total / seen:.4f}", acc=f"{correct / seen:.3f}")
    for m, levels in trained.items():
        m.levels = levels
    for finding in training_stalled(correct / max(seen, 1), int(out.shape[1]) if out.ndim == 2 else 0, epochs, lr):
        warnings.warn(str(finding), RuntimeWarning, stacklevel=2)
    return model.eval()


def training_stalled(accuracy: float, classes: int, epochs: int, lr: float) -> list[Finding]:
    """A warning when training ended with accuracy (fraction) at most 1.5x chance (1 / classes)."""
    if classes < 2 or accuracy > 1.5 / classes:
        return []
    return [Finding("training-stalled", f"epoch {epochs}", f"training accuracy {accuracy:.3f} is at chance level "
                    f"(1/{classes}) with lr {lr:g}", "try a smaller lr (e.g. 0.01), set the clip thresholds from "
                    "data first (spikec.quantize.calibrate_thresholds), start from trained ReLU weights, or train "
                    "longer")]


@torch.no_grad()
def evaluate(model: nn.Module, data, batch_size: int = 500) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of `model` in eval mode on a loader or (x, y) pair."""
    model.eval()
    correct = seen = 0
    for x, y in _loader(data, batch_size, shuffle=False, seed=0):
        correct += int((model(x).argmax(1) == y).sum())
        seen += len(y)
    return correct / max(seen, 1)
