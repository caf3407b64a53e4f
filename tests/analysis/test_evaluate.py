"""spikec.evaluate: every T from one run, batch-size independence, resumable checkpoints, and
torch.distributed (torchrun, gloo) giving exactly the single-process counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import spikec
from spikec.analysis import evaluate as evaluate_mod
from spikec.errors import FormatError, InputDataError

ROOT = Path(__file__).resolve().parents[2]


def _graph_and_data():
    from spikec.datasets import digits
    from spikec.models import small_cnn
    from spikec.quantize import replace_relu

    torch.manual_seed(0)
    model = replace_relu(small_cnn(8, channels=8), "qcfs", 4, threshold=1.0).eval()
    split = digits()
    graph = spikec.compile(model, split.x_train[:1], method="qcfs")
    return graph, model, split.x_test[:90], split.y_test[:90]


@pytest.fixture(scope="module")
def case():
    return _graph_and_data()


def test_every_t_matches_separate_runs(case):
    graph, model, x, y = case
    ev = spikec.evaluate(graph, (x, y), 6, model=model, batch_size=40, progress=False)
    x_int = graph.encode(x.numpy())
    for t in range(1, 7):
        correct = int((spikec.run(graph, x_int, t).predictions() == y.numpy()).sum())
        assert int(ev.correct[t - 1]) == correct, f"T={t}"
    with torch.no_grad():
        assert ev.ann_correct == int((model(x).argmax(1) == y).sum())
    assert ev.total == 90
    rec = spikec.run(graph, x_int, 6, record=True)
    assert ev.spike_counts == {k: int(np.abs(s.astype(np.int64)).sum()) for k, s in rec.spikes.items()}
    assert set(ev.to_json()["accuracy"]) == {str(t) for t in range(1, 7)}


def test_counts_do_not_depend_on_batching_or_loader(case):
    graph, _, x, y = case
    a = spikec.evaluate(graph, (x, y), 4, batch_size=90, progress=False)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=7)
    b = spikec.evaluate(graph, loader, 4, progress=False)
    assert np.array_equal(a.correct, b.correct) and a.spike_counts == b.spike_counts
    assert a.saturations == b.saturations and a.total == b.total


class _Killed(BaseException):
    """Stands for a kill mid-run (BaseException, like KeyboardInterrupt, so nothing swallows it)."""


def test_killed_evaluation_resumes_to_the_same_counts(case, tmp_path, monkeypatch):
    graph, _, x, y = case
    whole = spikec.evaluate(graph, (x, y), 5, batch_size=20, progress=False)
    ckpt = tmp_path / "eval.json"
    calls = []
    real = evaluate_mod._evaluate_batch

    def dies_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3 and dying:
            raise _Killed("killed")
        return real(*args, **kwargs)

    dying = True

    monkeypatch.setattr(evaluate_mod, "_evaluate_batch", dies_on_third)
    with pytest.raises(_Killed):
        spikec.evaluate(graph, (x, y), 5, batch_size=20, checkpoint=ckpt, progress=False)
    assert len(json.loads(ckpt.read_text())["batches"]) == 2
    calls.clear()
    dying = False
    resumed = spikec.evaluate(graph, (x, y), 5, batch_size=20, checkpoint=ckpt, progress=False)
    assert len(calls) == 3   # only the 3 unfinished batches of 5 were computed again
    assert np.array_equal(resumed.correct, whole.correct) and resumed.spike_counts == whole.spike_counts
    with pytest.raises(FormatError, match="different graph"):
        spikec.evaluate(graph, (x, y), 6, batch_size=20, checkpoint=ckpt, progress=False)


def test_bad_arguments_are_typed(case):
    graph, _, x, y = case
    with pytest.raises(InputDataError, match="differ in length"):
        spikec.evaluate(graph, (x, y[:5]), 4, progress=False)
    with pytest.raises(InputDataError, match="steps"):
        spikec.evaluate(graph, (x, y), 0, progress=False)
    ev = spikec.evaluate(graph, (x, y), 2, limit=10, progress=False)
    assert ev.total == 10
    with pytest.raises(InputDataError, match="T=3"):
        ev.accuracy(3)


WORKER = """
import json, sys
sys.path.insert(0, {tests!r})
import torch.distributed as dist
from analysis.test_evaluate import _graph_and_data
import spikec
from spikec import backends
from spikec.analysis.verify_dataset import verify_dataset
backends.register("picky", "picky_backend")
graph, model, x, y = _graph_and_data()
ev = spikec.evaluate(graph, (x, y), 5, model=model, batch_size=16, progress=False)
found = verify_dataset(graph, (x, y), 3, backends=("picky",), batch_size=8, progress=False)
if dist.get_rank() == 0:
    json.dump({{"eval": ev.to_json(), "verify": found.to_dict()}}, open({out!r}, "w"))
dist.destroy_process_group()
"""


def test_dataset_verify_names_the_first_bad_sample(case):
    from picky_backend import bad_samples

    from spikec import backends
    from spikec.analysis.verify_dataset import verify_dataset

    graph, _, x, y = case
    backends.register("picky", "picky_backend")
    first_bad = int(bad_samples(graph.encode(x.numpy()))[0])
    report = verify_dataset(graph, (x, y), 3, backends=("picky",), batch_size=8, progress=False)
    assert not report.equal and report.first_divergence["sample"] == first_bad
    assert report.first_divergence["batch"] == first_bad // 8
    assert verify_dataset(graph, (x, y), 3, backends=("torch",), batch_size=30, progress=False).equal


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(case, tmp_path):
    graph, model, x, y = case
    single = spikec.evaluate(graph, (x, y), 5, model=model, batch_size=16, progress=False).to_json()
    script = tmp_path / "worker.py"
    out = tmp_path / "dist.json"
    script.write_text(WORKER.format(tests=str(ROOT / "tests"), out=str(out)))
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29531", str(script)], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(out.read_text())
    dist = got["eval"]
    assert dist["world_size"] == 2
    for key in ("correct", "total", "ann_correct", "saturations", "spike_counts"):
        assert dist[key] == single[key], key
    from spikec import backends
    from spikec.analysis.verify_dataset import verify_dataset

    backends.register("picky", "picky_backend")
    alone = verify_dataset(graph, (x, y), 3, backends=("picky",), batch_size=8, progress=False)
    assert got["verify"]["world_size"] == 2
    assert got["verify"]["first_divergence"]["sample"] == alone.first_divergence["sample"]


def test_an_image_folder_tree_is_streamed(case, tmp_path):
    """`path/<class>/<image>` (torchvision's ImageFolder layout) evaluates like the same arrays."""
    from PIL import Image

    graph, _, x, y = case
    pixels = np.rint(x[:12, 0].numpy() * 255).astype(np.uint8)
    for i, (img, label) in enumerate(zip(pixels, y[:12].tolist())):
        folder = tmp_path / f"class{label}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(img, mode="L").save(folder / f"{i:03d}.png")
    classes = sorted({f"class{label}" for label in y[:12].tolist()})
    labels = torch.tensor([classes.index(f"class{label}") for label in y[:12].tolist()])
    order = sorted(range(12), key=lambda i: (f"class{int(y[i])}", f"{i:03d}"))
    want = spikec.evaluate(graph, (torch.tensor(pixels[order] / 255.0, dtype=torch.float32)[:, None],
                                   labels[order]), 3, progress=False)
    got = spikec.evaluate(graph, tmp_path, 3, batch_size=5, progress=False)
    assert got.total == 12 and np.array_equal(got.correct, want.correct)


def test_backends_without_every_step_readout_are_refused(case):
    from spikec.errors import BackendError

    graph, _, x, y = case
    with pytest.raises(BackendError, match="every step"):
        spikec.evaluate(graph, (x, y), 2, backend="brian2", progress=False)
