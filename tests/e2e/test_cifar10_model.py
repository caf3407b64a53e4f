"""The shipped CIFAR-10 ResNet-20 on real images: the integer Loihi graph keeps its documented
accuracy on the bundled 1,000 test images (catches compiler regressions on a real network), and the
torch backend equals the reference interpreter bit for bit on CIFAR-10 images."""

from __future__ import annotations

import numpy as np
import pytest

import spikec
from spikec import datasets
from spikec.models import pretrained, pretrained_record

MODEL = "cifar10_resnet20_qcfs"


@pytest.fixture(scope="module")
def compiled():
    model = pretrained(MODEL)
    x, y = datasets.cifar10(datasets.CIFAR10_SUBSET)
    return model, spikec.compile(model, x[:1], method="qcfs", target="loihi"), x, y


@pytest.mark.slow
def test_integer_graph_keeps_documented_subset_accuracy(compiled):
    model, graph, x, y = compiled
    documented = pretrained_record(MODEL)["subset_snn_accuracy"]   # written by the benchmark, see docs/cifar10.md
    ev = spikec.evaluate(graph, (x, y), 8, model=model, batch_size=250, progress=False)
    assert ev.total == 1000
    assert abs(ev.ann_accuracy - documented["ann"]) < 0.05
    for t in (4, 8):
        assert abs(ev.accuracy(t) - documented[str(t)]) <= 1.0, (t, ev.accuracy(t), documented[str(t)])


@pytest.mark.slow
def test_torch_equals_reference_on_cifar_images(compiled):
    _, graph, x, _ = compiled
    x_int = graph.encode(x[[0, 500]].numpy())
    ref = spikec.run(graph, x_int, 3, backend="reference", record=True)
    got = spikec.run(graph, x_int, 3, backend="torch", record=True)
    assert np.array_equal(got.output, ref.output) and got.saturations == ref.saturations
    for name, spikes in ref.spikes.items():
        assert np.array_equal(got.spikes[name], spikes), name
    assert sum(int(np.abs(s).sum()) for s in ref.spikes.values()) > 0   # real activity, not a silent net
