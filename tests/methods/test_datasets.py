"""Dataset helpers: fixed split sizes, determinism, normalisation."""

import pytest
import torch

from spikec.datasets import digits, mnist_subset


@pytest.mark.slow
def test_mnist_subset_split():
    a, b = mnist_subset(), mnist_subset()
    assert a.x_train.shape == (4000, 1, 28, 28) and a.x_test.shape == (1000, 1, 28, 28)
    assert a.y_train.shape == (4000,) and a.y_test.dtype == torch.int64
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert float(a.x_train.min()) == 0.0 and float(a.x_train.max()) == 1.0
    assert len(set(a.y_test.tolist())) == 10           # shuffled: not sorted by label any more
    assert not torch.equal(mnist_subset(seed=1).y_test, a.y_test)


def test_digits_split():
    a, b = digits(), digits()
    assert a.x_train.shape == (1437, 1, 8, 8) and a.x_test.shape == (360, 1, 8, 8)
    assert torch.equal(a.x_test, b.x_test)
    assert float(a.x_train.max()) == 1.0 and a.x_train.dtype == torch.float32
