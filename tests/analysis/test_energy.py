"""Energy arithmetic on a case small enough to count by hand."""

from __future__ import annotations

import numpy as np
import pytest

import spikec
from spikec.analysis.energy import PRESETS, Band, EnergyModel, EnergyModelError, get_energy_model
from spikec.ir import IF, Dense, Edge, Graph, Input, Readout

PJ = 1e-12


def _tiny():
    """x (2 spike inputs) -> Dense -> IF (3, theta 1) -> Dense -> Readout (2)."""
    g = Graph([Input("x", (2,), encoding="spikes"), IF("h", (3,), theta=np.array(1)), Readout("out", (2,))],
              [Edge("x", "h", (Dense(np.array([[1, 0], [0, 0], [1, 1]])),)),
               Edge("h", "out", (Dense(np.ones((2, 3), np.int64)),))]).validate()
    x = np.array([[[1, 0], [0, 1], [0, 0]]])           # t=1: x0, t=2: x1, t=3: nothing
    return g, x


def test_counts_by_hand():
    g, x = _tiny()
    est = spikec.estimate(g, x, 2, backend="reference", hardware="loihi1")
    # h starts at t=2, out at t=3; latency 2, hardware steps 4
    assert est.hardware_steps == 4
    # x0 drives h0, h2 (2 synapses), x1 drives h2 (1): 3 SOPs; h fires h0, h2 at t=2 and h2 at t=3,
    # each spike drives 2 readout synapses: 6 SOPs
    assert [e.sops for e in est.edges] == [3, 6]
    h, out = est.layer("h"), est.layer("out")
    assert h.spikes == 3
    # h: active {h0, h2} at t=2, {h2} at t=3; 12 updates in all
    assert (h.updates_active, h.updates_inactive) == (3, 9)
    # out: both neurons receive events at t=3 and t=4; 8 updates in all
    assert (out.updates_active, out.updates_inactive) == (4, 4)
    # every population fits one core: each spike is one message
    assert est.messages == 2 + 3
    assert (est.ann.macs, est.ann.acs) == (9, 0)


def test_energy_user_model_by_hand():
    g, x = _tiny()
    model = EnergyModel("hand", sop=1 * PJ, neuron_active=10 * PJ, neuron_inactive=1 * PJ,
                        spike_message=100 * PJ, input_mac=1000 * PJ)
    est = spikec.estimate(g, x, 2, backend="reference", hardware="loihi1", energy_model=model)
    # 9 SOPs x 1 + 7 active x 10 + 13 inactive x 1 + 5 messages x 100
    assert est.energy_j == pytest.approx(592 * PJ)
    assert est.energy_band_j == pytest.approx((592 * PJ, 592 * PJ))
    assert est.energy_parts_j["spike_messages"].central == pytest.approx(500 * PJ)
    assert est.layer("h").energy_j.central == pytest.approx((3 * 1 + 3 * 10 + 9 * 1 + 3 * 100) * PJ)


def test_energy_loihi_band_by_hand():
    g, x = _tiny()
    est = spikec.estimate(g, x, 2, backend="reference", hardware="loihi1")
    low = 9 * 23.6 + 7 * 72.8 + 13 * 51.2 + 5 * 1.7
    central = 9 * 23.6 + 7 * 81 + 13 * 52 + 5 * (1.7 + 2.625 * 3.0 + 1.25 * 4.0)
    high = 9 * 35.5 + 7 * 81 + 13 * 52 + 5 * (76.8 + 2.625 * 3.0 + 1.25 * 4.2)
    assert est.energy_model.name == "loihi1"
    assert est.energy_j == pytest.approx(central * PJ)
    assert est.energy_band_j == pytest.approx((low * PJ, high * PJ))
    # ANN baseline: 9 MACs at 45 nm
    assert est.ann_energy_j["horowitz-fp32"].central == pytest.approx(9 * 4.6 * PJ)
    assert est.ann_energy_j["horowitz-int8"].central == pytest.approx(9 * 0.23 * PJ)
    assert est.ann_energy_j["horowitz-int32"].central == pytest.approx(9 * 3.2 * PJ)


def test_presets_have_sources_and_ordered_bands():
    for name, model in PRESETS.items():
        assert model.sources and model.assumptions, name
        for band in (model.sop, model.input_mac, model.neuron_active, model.neuron_inactive,
                     model.spike_message):
            assert band.low <= band.central <= band.high
    assert PRESETS["horowitz-fp32"].mac.central == pytest.approx(4.6 * PJ)
    assert PRESETS["horowitz-fp32"].sop.central == pytest.approx(0.9 * PJ)
    assert "no published per-operation energy table" in " ".join(PRESETS["loihi2"].assumptions)
    assert get_energy_model("loihi1") is PRESETS["loihi1"]


def test_bad_user_models_are_typed_errors():
    with pytest.raises(EnergyModelError):
        Band(2.0, 1.0, 3.0)
    with pytest.raises(EnergyModelError):
        EnergyModel("neg", sop=-1.0)
    with pytest.raises(EnergyModelError):
        EnergyModel("text", sop="cheap")
    assert EnergyModel("tri", sop=(1e-12, 2e-12, 3e-12)).sop == Band(1e-12, 2e-12, 3e-12)
