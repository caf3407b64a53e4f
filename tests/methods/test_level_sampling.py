"""Level-sampled training: each batch runs at an L drawn from the list, the trained L comes back."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikec.errors import InputDataError
from spikec.quantize import QCFS, ECLClip, train

# random labels: the loop's "training stalled at chance" warning is expected here
pytestmark = pytest.mark.filterwarnings("ignore:.*training accuracy:RuntimeWarning")


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), QCFS(levels=4, threshold=1.0), nn.Linear(8, 8),
                         ECLClip(levels=4, threshold=1.0), nn.Linear(8, 3))


def _data(n=64):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_every_batch_uses_one_sampled_level_for_all_quantisers_and_the_trained_level_returns():
    model = _net()
    seen = []
    model[1].register_forward_hook(lambda m, i, o: seen.append((m.levels, model[3].levels)))
    train(model, _data(), epochs=3, lr=0.01, batch_size=8, progress=False, sample_levels=(1, 2, 8))
    assert len(seen) == 3 * 8
    assert all(a == b for a, b in seen)                       # one L per batch, shared by every layer
    assert {a for a, _ in seen} == {1, 2, 8}                 # drawn from the list, all of it used
    assert model[1].levels == 4 and model[3].levels == 4      # the trained L is restored


def test_without_sample_levels_the_trained_level_is_used_throughout():
    model = _net()
    seen = []
    model[1].register_forward_hook(lambda m, i, o: seen.append(m.levels))
    train(model, _data(16), epochs=1, lr=0.01, batch_size=8, progress=False)
    assert seen == [4, 4]


@pytest.mark.parametrize("bad", [[], [0, 2], [2.5]])
def test_bad_level_lists_are_refused(bad):
    with pytest.raises(InputDataError, match="sample_levels"):
        train(_net(), _data(), epochs=1, lr=0.01, progress=False, sample_levels=bad)


def test_a_model_without_quantising_activations_is_refused():
    model = nn.Sequential(nn.Linear(6, 3), nn.ReLU())
    with pytest.raises(InputDataError, match="quantising activations"):
        train(model, _data(), epochs=1, lr=0.01, progress=False, sample_levels=[2])
