"""End to end on trained models: the integer SNN reproduces the ANN, and agrees with a float rate
simulation of the same (unrounded) network up to the reported rounding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from zoo import FACTORIES, ann_predictions, data, trained

import spikec
from spikec.compiler import compile_model
from spikec.compiler.floatsim import simulate
from spikec.ir import IF, Conv2d, Dense

T = 256
N_TEST = 120
LAYER_KEYS = {"name", "type", "source", "node", "shape", "fan_in", "theta_float", "theta", "scale",
              "weight_scale", "weight_error", "clipped", "rounded", "limited_by", "start"}


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def compiled(request):
    name = request.param
    model = trained(name)
    d = data()
    method = FACTORIES[name][2]
    result = compile_model(model, d.x_test[:1], method=method, calibration=d.x_train[:256], steps=T)
    return name, model, result


def readout_scale(graph) -> float:
    return next(r["scale"] for r in graph.meta["layers"] if r["type"] == "Readout")


def test_snn_reproduces_the_ann(compiled):
    name, model, result = compiled
    x = data().x_test[:N_TEST]
    graph = result.graph
    trace = spikec.run(graph, graph.encode(x.numpy()), T, backend="torch")
    agree = float((trace.predictions() == ann_predictions(model, x)).mean())
    assert agree >= 0.9, f"{name}: SNN agrees with the ANN on only {agree:.0%} of samples"
    # compiled with steps=T and saturate=False: the bounds proved no state can saturate
    assert sum(trace.saturations.values()) == 0
    assert trace.latency == graph.latency == graph.meta["latency"]


def test_float_rate_simulation_agrees_up_to_rounding(compiled):
    name, _, result = compiled
    graph = result.graph
    x = graph.encode(data().x_test[:32].numpy())
    steps = 128
    ideal = simulate(result.float_graph, x, steps, dtype=torch.float32)
    real = spikec.run(graph, x, steps, backend="torch").output / readout_scale(graph)
    rel = np.linalg.norm(real - ideal) / np.linalg.norm(ideal)
    werr = max(r["weight_error"] for r in graph.meta["layers"] if r["type"] != "Input")
    assert werr < 0.1
    assert rel <= werr + 0.03, f"{name}: integer and float readouts differ by {rel:.3f} (weights {werr:.3f})"
    assert (real.argmax(1) == ideal.argmax(1)).mean() >= 0.9


def test_graph_respects_loihi_widths_and_meta_layout(compiled):
    name, _, result = compiled
    graph = result.graph
    json.dumps(graph.meta)  # JSON-able
    assert graph.meta["target"] == "loihi" and graph.meta["method"] == FACTORIES[name][2]
    rows = {r["name"]: r for r in graph.meta["layers"]}
    starts = graph.start_steps()
    for layer in graph.if_layers:
        row = rows[layer.name]
        assert LAYER_KEYS <= set(row), f"missing {LAYER_KEYS - set(row)}"
        assert row["start"] == starts[layer.name]
        assert 1 <= layer.theta.min() and layer.theta.max() <= 2**17 - 1
        assert layer.state_bits == 24
        b = np.abs(layer.bias)
        assert all(_bias_ok(int(v)) for v in b.ravel())
        expected_v0 = FACTORIES[name][2] in ("qcfs", "opi")
        assert np.array_equal(layer.v_init, layer.theta // 2 if expected_v0 else 0 * layer.theta)
    for edge in graph.edges:
        for op in edge.ops:
            if isinstance(op, (Conv2d, Dense)):
                assert -128 <= op.weight.min() and op.weight.max() <= 127
    assert isinstance(graph.nodes[graph.input.name], type(graph.input))
    assert graph.input.value_bits == 8 and float(graph.input.scale).is_integer()
    assert all(isinstance(p, IF) for p in graph.if_layers)


def _bias_ok(b: int) -> bool:
    return any(b % (1 << e) == 0 and b >> e <= 4095 for e in range(8))


def test_compile_without_the_float_ir_gives_the_identical_graph_and_leaves_the_model_alone(compiled):
    """spikec.compile reuses the float IR's weight memory (rescaled in place, int64 written over
    float64); the result must be the graph compile_model builds with the float IR kept."""
    from spikec.ir.digest import content_digest

    name, model, result = compiled
    d = data()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph = spikec.compile(model, d.x_test[:1], method=FACTORIES[name][2], calibration=d.x_train[:256], steps=T)
    assert content_digest(graph) == content_digest(result.graph)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    for e in graph.edges:
        for op in e.ops:
            if hasattr(op, "weight"):
                assert op.weight.dtype == np.int64 and not op.weight.flags.writeable
                assert op.weight.base is None or not op.weight.base.flags.writeable
