"""Sigma-delta graphs on Lava's stock SigmaDelta processes equal the reference bit for bit.

Random graphs mixing IF and SigmaDelta layers (delta, current and spike inputs, floor exponents,
vth, delays, readout bias once), a residual net compiled for target "loihi-sdnn", and the Lava
module export of that graph.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from equivalence import assert_traces_equal
from hypothesis import assume, given, settings
from strategies import graphs

import spikec
from spikec.backends.lava import backend as lava_backend
from spikec.backends.lava.plan import build_plan
from spikec.ir import run_reference

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not lava_backend.is_available(),
                                                    reason=f"lava unavailable: {lava_backend.why_unavailable()}")]


@settings(max_examples=14, deadline=None)
@given(case=graphs(max_layers=3, sigma_delta=True))
def test_random_mixed_graphs_match_reference(case):
    """Where no sigma saturates: Lava's SigmaDelta has no saturation (it is exact only then, and
    the reference's count says when)."""
    graph, x, steps = case
    ref = run_reference(graph, x, steps, record=True)
    assume(not any(ref.saturations[layer.name] for layer in graph.sigma_delta_layers))
    got = spikec.run(graph, x, steps, backend="lava", record=True)
    assert_traces_equal(got, ref)


@pytest.fixture(scope="module")
def resnet_sdnn():
    """A BN-folded residual net with QCFS activations, compiled for "loihi-sdnn" (clip twins at
    the joins), and three 8x8 images. (The CIFAR VGG has 26-50 M synapses per edge once its
    convolutions are laid out for Lava's Sparse: too large for a Lava run in a test.)"""
    import torch
    from tiny_model import randomize_batchnorm

    from spikec.models import small_resnet
    from spikec.quantize import replace_relu

    torch.manual_seed(0)
    model = randomize_batchnorm(replace_relu(small_resnet(channels=4), kind="qcfs", levels=4, threshold=1.0))
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    graph = spikec.compile(model, x, method="qcfs", target="loihi-sdnn")
    return graph, graph.encode(x.numpy())


def test_residual_net_on_stock_sigma_delta_processes(resnet_sdnn):
    graph, x = resnet_sdnn
    plan = build_plan(graph, x, 2)
    names = {p.name for p in graph.sigma_delta_layers}
    assert {lp.model for name, lp in plan.layers.items() if name in names} == {"sigma_delta"}
    assert {spec.kind for spec in plan.procs} <= {"source", "sparse", "delay_sparse", "sigma_delta", "readout",
                                                   "recorder"}
    ref = spikec.run(graph, x, 2, backend="torch", record=True)
    got = spikec.run(graph, x, 2, backend="lava", record=True)
    assert_traces_equal(got, ref)
    assert any(np.abs(s).max() > 1 for s in ref.spikes.values())   # graded messages, not spikes


def test_lava_module_export_of_a_sigma_delta_graph(resnet_sdnn, tmp_path):
    graph, x = resnet_sdnn
    path = tmp_path / "resnet_sdnn.py"
    spikec.export(graph, path, format="lava")
    spec = importlib.util.spec_from_file_location("resnet_sdnn", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    got = module.run(x, 2)
    ref = spikec.run(graph, x, 2, backend="torch", record=True)
    assert np.array_equal(got["output"], ref.output)
    for name, sent in ref.spikes.items():
        assert np.array_equal(got["spikes"][name], sent), name
