"""The Lava backend refuses, with a typed error, a network that would not fit in memory."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from strategies import graphs

from spikec.backends.lava.plan import check_plan_memory, synapse_bound
from spikec.errors import ResourceError
from spikec.ir.connectivity import chain_matrix


@settings(max_examples=60, deadline=None)
@given(graphs(max_layers=4))
def test_synapse_bound_is_an_upper_bound(case):
    graph = case[0]
    for e in graph.edges:
        assert chain_matrix(e.ops, graph.nodes[e.src].shape).nnz <= synapse_bound(e.ops, graph.nodes[e.src].shape)


@settings(max_examples=10, deadline=None)
@given(graphs(max_layers=2))
def test_too_large_a_batch_is_refused_naming_the_way_out(case):
    graph = case[0]
    need = check_plan_memory(graph, 4, available=1 << 40)
    assert need > 0
    with pytest.raises(ResourceError, match="smaller batch_size"):
        check_plan_memory(graph, 4, available=need // 8)
