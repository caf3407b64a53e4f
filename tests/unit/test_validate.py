"""validate() rejects malformed graphs with a GraphError naming node and field."""

import numpy as np
import pytest

import spikec
from spikec import IF, Conv2d, Dense, Edge, Flatten, Graph, Input, Readout, SumPool2d
from spikec.errors import GraphError, InputDataError


def chain(layer=None, edge_in=None, edge_out=None, extra_edges=(), extra_pops=()):
    layer = layer or IF("h", (3,), theta=np.array(4))
    edge_in = edge_in or Edge("x", "h", (Dense(np.ones((3, 4), np.int64)),))
    edge_out = edge_out or Edge("h", "out", (Dense(np.ones((2, 3), np.int64)),))
    return Graph([Input("x", (4,)), layer, Readout("out", (2,)), *extra_pops],
                 [edge_in, edge_out, *extra_edges])


def test_valid_chain_passes():
    assert chain().validate().latency == 2


def test_float_weights_rejected():
    with pytest.raises(GraphError, match=r"Dense\.weight: must be an integer array"):
        Dense(np.ones((2, 2)))


def test_float_theta_rejected():
    with pytest.raises(GraphError, match=r"h\.theta: must be an integer array"):
        IF("h", (3,), theta=np.array(1.5))


@pytest.mark.parametrize("kwargs, field", [
    (dict(theta=np.array(0)), "theta"),
    (dict(theta=np.array(2**23)), "theta"),
    (dict(theta=np.array(3), v_init=np.array([1, 2])), "v_init"),
    (dict(theta=np.array(3), theta_neg=np.array(-1)), "theta_neg"),
    (dict(theta=np.array(3), reset="hard"), "reset"),
    (dict(theta=np.array(3), gate="ever"), "gate"),
    (dict(theta=np.array(3), presim=-1), "presim"),
    (dict(theta=np.array(3), state_bits=80), "state_bits"),
    (dict(theta=np.array(3), bias_schedule=np.ones((2, 5), np.int64)), "bias_schedule"),
])
def test_if_fields_checked(kwargs, field):
    with pytest.raises(GraphError, match=rf"h\.{field}:") as err:
        chain(IF("h", (3,), **kwargs)).validate()
    assert err.value.where == "h" and err.value.field == field


def test_dangling_edge():
    bad = Edge("ghost", "h", (Dense(np.ones((3, 4), np.int64)),))
    with pytest.raises(GraphError, match="ghost->h: refers to missing population 'ghost'"):
        chain(extra_edges=[bad]).validate()


def test_cycle():
    g = chain(extra_pops=[IF("a", (3,), theta=np.array(2)), IF("b", (3,), theta=np.array(2))],
              extra_edges=[Edge("a", "b", (Dense(np.eye(3, dtype=np.int64)),)),
                           Edge("b", "a", (Dense(np.eye(3, dtype=np.int64)),))])
    with pytest.raises(GraphError, match="cycle"):
        g.validate()


def test_shape_mismatch_names_edge():
    with pytest.raises(GraphError, match=r"x->h\.ops.*expects input \(5,\)"):
        chain(edge_in=Edge("x", "h", (Dense(np.ones((3, 5), np.int64)),))).validate()


def test_edge_output_must_match_target():
    with pytest.raises(GraphError, match="produces shape"):
        chain(edge_in=Edge("x", "h", (Dense(np.ones((2, 4), np.int64)),))).validate()


def test_delay_range():
    with pytest.raises(GraphError, match=r"delay: must be an int in 0\.\.62"):
        chain(edge_in=Edge("x", "h", (Dense(np.ones((3, 4), np.int64)),), delay=63)).validate()


def test_weight_exp_range():
    for bad in (-1, 9, 1.5):
        with pytest.raises(GraphError, match=r"x->h\.weight_exp: must be an int in 0\.\.8"):
            chain(edge_in=Edge("x", "h", (Dense(np.ones((3, 4), np.int64)),), weight_exp=bad)).validate()


def test_duplicate_and_bad_names():
    with pytest.raises(GraphError, match="used by two"):
        chain(extra_pops=[IF("h", (3,), theta=np.array(2))]).validate()
    with pytest.raises(GraphError, match="must match"):
        chain(IF("h/1", (3,), theta=np.array(2)),
              Edge("x", "h/1", (Dense(np.ones((3, 4), np.int64)),)),
              Edge("h/1", "out", (Dense(np.ones((2, 3), np.int64)),))).validate()


def test_unreachable_population():
    with pytest.raises(GraphError, match="z: receives no edge"):
        chain(extra_pops=[IF("z", (3,), theta=np.array(2))]).validate()


def test_conv_geometry_errors():
    with pytest.raises(GraphError, match="groups"):
        Conv2d(np.ones((3, 1, 1, 1), np.int64), groups=2)
    with pytest.raises(GraphError, match="stride"):
        Conv2d(np.ones((2, 1, 1, 1), np.int64), stride=0)
    with pytest.raises(GraphError, match="does not fit"):
        Conv2d(np.ones((2, 1, 5, 5), np.int64)).output_shape((1, 3, 3))
    with pytest.raises(GraphError, match="larger than input"):
        SumPool2d(4).output_shape((1, 3, 3))


def test_shapes_of_op_chain():
    e = Edge("a", "b", (Conv2d(np.ones((4, 1, 3, 3), np.int64), stride=2, padding=1, groups=2),
                        SumPool2d(2), Flatten()))
    assert e.output_shape((2, 9, 9)) == (4 * 2 * 2,)


def test_input_checks():
    g = chain()
    with pytest.raises(InputDataError, match="integer"):
        spikec.run(g, np.zeros((1, 4)), 3, backend="reference")
    with pytest.raises(InputDataError, match=r"shape \[B, 4\]"):
        spikec.run(g, np.zeros((1, 5), np.int64), 3, backend="reference")
    with pytest.raises(InputDataError, match=r"\|x\| <= 255"):
        spikec.run(g, np.full((1, 4), 300), 3, backend="reference")
    with pytest.raises(InputDataError, match="steps"):
        spikec.run(g, np.zeros((1, 4), np.int64), 0, backend="reference")


def test_encode_rounds_and_clips():
    g = Graph([Input("x", (3,), scale=10.0, value_bits=5), IF("h", (3,), theta=np.array(2)),
               Readout("out", (1,))],
              [Edge("x", "h", (Dense(np.eye(3, dtype=np.int64)),)),
               Edge("h", "out", (Dense(np.ones((1, 3), np.int64)),))])
    assert g.encode([[0.26, -0.04, 9.0]]).tolist() == [[3, 0, 15]]


def test_unknown_backend():
    with pytest.raises(spikec.BackendError, match="unknown backend 'nope'"):
        spikec.run(chain(), np.zeros((1, 4), np.int64), 2, backend="nope")


def test_extreme_and_non_finite_inputs_are_refused():
    import numpy as np
    import pytest

    from spikec.errors import InputDataError
    from spikec.ir import Dense, Edge, Graph, Input, Readout

    g = Graph([Input("x", (2,), value_bits=8), Readout("out", (1,))],
              [Edge("x", "out", (Dense(np.ones((1, 2), np.int64)),))]).validate()
    for bad in (np.array([[np.iinfo(np.int64).min, 0]]), np.array([[2 ** 63, 0]], dtype=np.uint64),
                np.array([[0, -128]])):
        with pytest.raises(InputDataError, match="127"):
            g.check_inputs(bad, 2)
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(InputDataError, match="NaN or infinite"):
            g.encode(np.array([[0.5, bad]]))
    assert g.check_inputs(np.array([[127, -127]]), 1).tolist() == [[127, -127]]
