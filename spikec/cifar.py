"""CIFAR-10 from the files users have, decoded once and cached.

Three sources, detected from `path`:
  * a tar archive (.tar, .tar.gz, .tgz) of JPEG/PNG files laid out `.../{train,test}/<class>/<file>`
    (for example `cifar10-jpeg.tar.gz`: `cifar10/{train,test}/<class name>/NNNN.jpg`);
  * an extracted folder of the same layout (`path/{train,test}/<class>/...` or one level deeper);
  * torchvision's `cifar-10-batches-py` folder (pickled `data_batch_1..5` and `test_batch`), or
    its parent, as written by `torchvision.datasets.CIFAR10(download=True)`.
Images come back as float32 [N, 3, 32, 32] in [0, 1] (pixel / 255: no mean/std shift, so an input
scale of 255 encodes them exactly) and labels as int64 [N], classes in CIFAR-10's order
(`CLASSES`). Image-file sources are ordered by class, then file name; batch files keep their order.

The decoded uint8 arrays are cached under `$SPIKEC_CACHE_DIR` (default `~/.cache/spikec`) in a
file keyed by the source's absolute path, size and modification time, so a second load reads one
.npy file. Missing, empty or corrupt data raise InputDataError saying what was expected.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np
import torch

from spikec.errors import InputDataError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_MEMBER = re.compile(r"(?:^|/)(train|test)/([a-z]+)/([^/]+)$")
_BATCH_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def cifar10(path: str | os.PathLike, split: str = "test", cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one CIFAR-10 split from `path`: (images float32 [N,3,32,32] in [0,1], labels int64 [N])."""
    images, labels = cifar10_uint8(path, split, cache)
    return torch.from_numpy(images).float().div_(255.0), torch.from_numpy(labels)


def cifar10_uint8(path: str | os.PathLike, split: str = "test", cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """As `cifar10`, but the raw uint8 images [N,3,32,32] and int64 labels (what is cached)."""
    if split not in SPLITS:
        raise InputDataError(f"CIFAR-10 split must be one of {SPLITS}, got {split!r}")
    src = Path(path).expanduser()
    if not src.exists():
        raise InputDataError(f"CIFAR-10 data not found at {src}: expected a .tar.gz of "
                             "{train,test}/<class>/*.jpg, such a folder, or torchvision's cifar-10-batches-py")
    cache_file = _cache_file(src, split) if cache else None
    if cache_file is not None and cache_file.exists():
        try:
            with np.load(cache_file) as z:
                return z["images"], z["labels"]
        except (OSError, ValueError, KeyError):
            cache_file.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    images, labels = _decode(src, split)
    if cache_file is not None:
        _write_atomic(cache_file, images, labels)
    return images, labels


def _decode(src: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if src.is_file():
        if not tarfile.is_tarfile(src):
            raise InputDataError(f"{src} is not a tar archive (expected e.g. cifar10-jpeg.tar.gz)")
        return _from_archive(src, split)
    batches = _batch_folder(src)
    if batches is not None:
        return _from_batches(batches, split)
    return _from_folder(src, split)


def _from_archive(src: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    items: list[tuple[int, str, bytes]] = []
    try:
        with tarfile.open(src) as tar:
            for member in tar:
                found = _classify(member.name, split) if member.isfile() else None
                if found is not None:
                    items.append((found, member.name, tar.extractfile(member).read()))
    except (tarfile.TarError, OSError, EOFError) as err:
        raise InputDataError(f"{src}: corrupt or truncated archive ({err})") from err
    return _decode_images(items, f"{src} ({split})")


def _from_folder(src: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    roots = [src / split, *(d / split for d in sorted(src.iterdir()) if d.is_dir())]
    root = next((r for r in roots if r.is_dir()), None)
    if root is None:
        raise InputDataError(f"{src}: no '{split}' folder (expected {src}/{split}/<class>/*.jpg, "
                             "or torchvision's cifar-10-batches-py)")
    items = [(CLASSES.index(f.parent.name), str(f), f.read_bytes())
             for f in sorted(root.glob("*/*")) if _classify(f"{split}/{f.parent.name}/{f.name}", split) is not None]
    return _decode_images(items, str(root))


def _classify(name: str, split: str) -> int | None:
    match = _MEMBER.search(name)
    if match is None or match.group(1) != split or match.group(2) not in CLASSES:
        return None
    if not match.group(3).lower().endswith(_IMAGE_SUFFIXES):
        return None
    return CLASSES.index(match.group(2))


def _decode_images(items: list[tuple[int, str, bytes]], where: str) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    if not items:
        raise InputDataError(f"{where}: no CIFAR-10 images found (expected <split>/<class name>/<file>.jpg "
                             f"with class names {', '.join(CLASSES)})")
    items.sort(key=lambda item: (item[0], item[1]))
    images = np.empty((len(items), 32, 32, 3), np.uint8)
    for i, (_, name, data) in enumerate(items):
        try:
            with Image.open(io.BytesIO(data)) as img:
                pixels = np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise InputDataError(f"{name}: corrupt image ({err})") from err
        if pixels.shape != (32, 32, 3):
            raise InputDataError(f"{name}: image is {pixels.shape[1]}x{pixels.shape[0]}, CIFAR-10 images are 32x32")
        images[i] = pixels
    labels = np.array([item[0] for item in items], np.int64)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels


def _batch_folder(src: Path) -> Path | None:
    for candidate in (src, src / "cifar-10-batches-py"):
        if (candidate / "test_batch").exists() or (candidate / "data_batch_1").exists():
            return candidate
    return None


def _from_batches(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in _BATCH_FILES[split]:
        file = folder / name
        if not file.exists():
            raise InputDataError(f"{folder}: missing {name} (torchvision's cifar-10-batches-py holds "
                                 "data_batch_1..5 and test_batch)")
        try:
            with open(file, "rb") as f:
                batch = pickle.load(f, encoding="latin1")
            data = np.asarray(batch["data"], np.uint8)
            lab = np.asarray(batch.get("labels", batch.get("fine_labels")), np.int64)
        except Exception as err:  # pickle can raise nearly anything on a damaged file
            raise InputDataError(f"{file}: not a CIFAR-10 batch file ({type(err).__name__}: {err})") from err
        if data.ndim != 2 or data.shape[1] != 3072 or lab.shape != (data.shape[0],):
            raise InputDataError(f"{file}: expected 'data' [N, 3072] uint8 and 'labels' [N], "
                                 f"got {data.shape} and {lab.shape}")
        if lab.size and (lab.min() < 0 or lab.max() >= len(CLASSES)):
            raise InputDataError(f"{file}: labels outside 0..9")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab)
    out = np.concatenate(images), np.concatenate(labels)
    if not len(out[1]):
        raise InputDataError(f"{folder}: the {split} batch files hold no images")
    return out


def cache_dir() -> Path:
    """Where decoded data sets are cached: $SPIKEC_CACHE_DIR, else ~/.cache/spikec."""
    return Path(os.environ.get("SPIKEC_CACHE_DIR", Path.home() / ".cache" / "spikec"))


def _cache_file(src: Path, split: str) -> Path:
    src = src.resolve()
    stamp = src / "test_batch" if src.is_dir() and (src / "test_batch").exists() else src
    stat = stamp.stat()
    key = hashlib.sha256(f"{src}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / f"cifar10-{key}-{split}.npz"


def _write_atomic(file: Path, images: np.ndarray, labels: np.ndarray) -> None:
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.savez(f, images=images, labels=labels)
            os.replace(tmp, file)
        finally:
            tmp.unlink(missing_ok=True)   # nothing half-written stays behind
    except OSError:
        pass  # caching is an optimisation; an unwritable cache folder only costs the next decode


def balanced_subset(labels: np.ndarray | torch.Tensor, per_class: int) -> np.ndarray:
    """Indices of the first `per_class` samples of each class, in class order."""
    labels = np.asarray(labels)
    picks = [np.flatnonzero(labels == c)[:per_class] for c in range(len(CLASSES))]
    return np.concatenate(picks)
