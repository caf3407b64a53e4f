"""CIFAR-10 loader: the three source formats, the cache, and typed errors on bad data."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from spikec import datasets
from spikec.errors import InputDataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEC_CACHE_DIR", str(tmp_path / "cache"))


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")   # lossless, so pixels round-trip exactly
    return buf.getvalue()


def _images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def _write_folder(root: Path, split: str, pixels, labels) -> None:
    for i, (img, lab) in enumerate(zip(pixels, labels)):
        folder = root / split / datasets.CIFAR10_CLASSES[lab]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:04d}.png").write_bytes(_png(img))


def _expected(pixels, labels):
    order = sorted(range(len(labels)), key=lambda i: (labels[i], f"{i:04d}"))
    return pixels[order].transpose(0, 3, 1, 2), labels[order]


def test_bundled_subset_is_balanced_real_data():
    x, y = datasets.cifar10(datasets.CIFAR10_SUBSET, "test")
    assert x.shape == (1000, 3, 32, 32) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and torch.equal(y.bincount(), torch.full((10,), 100))
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert 0.3 < float(x.mean()) < 0.6          # natural images, not noise or zeros


def test_folder_and_archive_give_the_same_images(tmp_path):
    pixels, labels = _images(12)
    _write_folder(tmp_path / "cifar10", "test", pixels, labels)
    want_x, want_y = _expected(pixels, labels)
    x, y = datasets.cifar10(tmp_path, "test")
    assert np.array_equal((x * 255).round().byte().numpy(), want_x) and np.array_equal(y.numpy(), want_y)
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "cifar10", arcname="cifar10")
    xa, ya = datasets.cifar10(archive, "test")
    assert torch.equal(xa, x) and torch.equal(ya, y)


def test_torchvision_batches_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    pixels, labels = _images(7, seed=1)
    data = pixels.transpose(0, 3, 1, 2).reshape(7, -1)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": data, "labels": labels.tolist(), "batch_label": "testing batch 1 of 1"}, f)
    for parent in (folder, tmp_path):   # the batches folder itself, or the folder torchvision was given
        x, y = datasets.cifar10(parent, "test")
        assert np.array_equal((x * 255).round().byte().numpy(), pixels.transpose(0, 3, 1, 2))
        assert y.tolist() == labels.tolist()
    with pytest.raises(InputDataError, match="missing data_batch_1"):
        datasets.cifar10(folder, "train")


def test_second_load_comes_from_the_cache(tmp_path):
    pixels, labels = _images(20)
    _write_folder(tmp_path / "c", "train", pixels, labels)
    first = datasets.cifar10(tmp_path / "c", "train")
    cached = list((tmp_path / "cache").glob("cifar10-*-train.npz"))
    assert len(cached) == 1
    for f in (tmp_path / "c" / "train").rglob("*.png"):
        f.write_bytes(b"not an image any more")   # the cache, not the files, must be read now
    second = datasets.cifar10(tmp_path / "c", "train")
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    with pytest.raises(InputDataError, match="corrupt image"):
        datasets.cifar10(tmp_path / "c", "train", cache=False)


@pytest.mark.parametrize("case", ["missing", "empty_folder", "no_split", "not_tar", "truncated", "bad_pickle"])
def test_bad_data_raises_typed_errors(tmp_path, case):
    target = tmp_path / "data"
    if case == "empty_folder":
        (target / "test").mkdir(parents=True)
    elif case == "no_split":
        target.mkdir()
    elif case == "not_tar":
        target = tmp_path / "data.tar.gz"
        target.write_bytes(b"hello")
    elif case == "truncated":
        target = tmp_path / "data.tar.gz"
        target.write_bytes(datasets.CIFAR10_SUBSET.read_bytes()[:50_000])
    elif case == "bad_pickle":
        (target / "cifar-10-batches-py").mkdir(parents=True)
        (target / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(InputDataError) as err:
        datasets.cifar10(target, "test")
    assert str(target) in str(err.value)


def test_bad_split_named():
    with pytest.raises(InputDataError, match="split"):
        datasets.cifar10(datasets.CIFAR10_SUBSET, "validation")


@pytest.mark.skipif(not SHARED.exists(), reason=f"the full CIFAR-10 archive is not at {SHARED} "
                    "(only this project's machines have ../shared)")
def test_full_archive_loads_and_caches(tmp_path):
    x, y = datasets.cifar10(SHARED, "test")
    assert x.shape == (10000, 3, 32, 32) and torch.equal(y.bincount(), torch.full((10,), 1000))
    assert len(list((tmp_path / "cache").glob("cifar10-*-test.npz"))) == 1
    subset_x, subset_y = datasets.cifar10(datasets.CIFAR10_SUBSET)
    keep = datasets.balanced_subset(y, 100)
    assert torch.equal(x[keep], subset_x) and torch.equal(y[keep], subset_y)
