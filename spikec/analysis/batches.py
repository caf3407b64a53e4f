"""Batches of (images, labels) from what users hand to evaluate/verify: arrays, loaders, paths."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from spikec.errors import InputDataError


def resolve(data, split: str = "test", batch_size: int = 256, channels: int = 3):
    """A data-set path loaded as (images, labels), or streamed (an ImageFolder tree); anything else
    returned as it is."""
    if isinstance(data, (str, os.PathLike)):
        from pathlib import Path

        from spikec.datasets import _is_image_folder, image_folder, load_labelled

        p = Path(data)
        if p.is_dir() and _is_image_folder(p, split):
            return image_folder(p, batch_size, channels)
        return load_labelled(data, split)
    return data


def iter_batches(data, batch_size: int, split: str = "test", limit: int | None = None) -> Iterator[tuple]:
    """(images, labels) batches from a pair of arrays, an iterable of batches, or a data-set path."""
    data = resolve(data, split, batch_size)
    if isinstance(data, tuple) and len(data) == 2:
        x, y = data
        n = len(x) if limit is None else min(limit, len(x))
        if len(y) != len(x):
            raise InputDataError(f"images and labels differ in length: {len(x)} vs {len(y)}")
        return ((x[i:min(i + batch_size, n)], y[i:min(i + batch_size, n)]) for i in range(0, n, batch_size))
    if not isinstance(data, Iterable):
        raise InputDataError(f"data must be (images, labels), an iterable of such batches or a path, "
                             f"got {type(data).__name__}")
    return _limited(data, limit)


def _limited(batches: Iterable, limit: int | None) -> Iterator[tuple]:
    seen = 0
    for batch in batches:
        if limit is not None and seen >= limit:
            return
        x, y = batch[0], batch[1]
        if limit is not None and seen + len(y) > limit:
            x, y = x[:limit - seen], y[:limit - seen]
        seen += len(y)
        yield x, y


def total_samples(data, limit: int | None) -> int | None:
    """Samples the progress bar expects, when the data says (pairs, DataLoaders over sized sets)."""
    if isinstance(data, tuple) and len(data) == 2:
        n = len(data[0])
    else:
        n = len(getattr(data, "dataset", ())) or None
    return n if limit is None or n is None else min(n, limit)


def progress_bar(enabled: bool, total: int | None, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)
