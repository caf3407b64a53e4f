"""Energy constant sets (per event, in joules) with their sources, and the arithmetic on them.

Every figure is a `Band` (low, central, high): where published sources disagree the band spans
them, and the central value is the one named in `EnergyModel.assumptions`. Nothing here is
measured by spikec; see docs/estimate.md for the definitions and the full source list.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from spikec.errors import SpikecError, UnsupportedError

PJ = 1e-12


class EnergyModelError(SpikecError, ValueError):
    """A user-built energy figure is malformed (negative, or low > central > high)."""


DAVIES2018 = ("M. Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', "
              "IEEE Micro 38(1):82-99, 2018, Table 2 (pre-silicon SDF/SPICE figures at 0.75 V), "
              "doi:10.1109/MM.2018.112130359")
SANAFE = ("SANA-FE architecture file for Loihi, github.com/SLAM-Lab/SANA-FE arch/loihi.yaml "
          "(commit 0d49da8): synapse 35.5 pJ/spike (dense), neuron 72.8 pJ active / 51.2 pJ inactive, "
          "axon-out message 76.8 pJ, hops 3.0 pJ E-W / 4.2 pJ N-S on an 8 x 4 tile mesh")
KERAS_SPIKING = ("KerasSpiking ModelEnergy, github.com/nengo/keras-spiking keras_spiking/model_energy.py: "
                 "loihi energy_per_synop = (23.6 + 3.5) pJ, energy_per_neuron = 81 pJ, citing Davies 2018")
HOROWITZ2014 = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, "
                "45 nm, 0.9 V: add INT8 0.03 / INT32 0.1 / FP32 0.9 pJ; mult INT8 0.2 / INT32 3.1 / "
                "FP32 3.7 pJ")

# Loihi 1 mesh as laid out in SANA-FE's loihi.yaml: 32 tiles (4 cores each), 8 wide (E-W) x 4 high.
# Mean Manhattan distance between two uniformly random positions on a line of n: (n^2 - 1) / (3 n).
_MEAN_HOPS_EW = (8 ** 2 - 1) / (3 * 8)     # 2.625
_MEAN_HOPS_NS = (4 ** 2 - 1) / (3 * 4)     # 1.25


@dataclass(frozen=True)
class Band:
    """An energy (or any quantity) as low <= central <= high."""

    low: float
    central: float
    high: float

    def __post_init__(self):
        if not self.low <= self.central <= self.high:
            raise EnergyModelError(f"Band needs low <= central <= high, got "
                                   f"{self.low}, {self.central}, {self.high}")

    @classmethod
    def point(cls, value: float) -> Band:
        """A single-source figure: no disagreement to report."""
        return cls(float(value), float(value), float(value))

    def scale(self, count: float) -> Band:
        return Band(self.low * count, self.central * count, self.high * count)

    def __add__(self, other: Band) -> Band:
        return Band(self.low + other.low, self.central + other.central, self.high + other.high)

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.low, self.central, self.high)


ZERO = Band.point(0.0)


def _band(value) -> Band:
    if isinstance(value, Band):
        return value
    try:
        if isinstance(value, (tuple, list)) and len(value) == 3:
            return Band(*(float(v) for v in value))
        return Band.point(float(value))
    except (TypeError, ValueError):
        raise EnergyModelError(f"an energy figure must be a number (J), a (low, central, high) triple "
                               f"or a Band, got {value!r}") from None


@dataclass(frozen=True)
class EnergyModel:
    """Energy per event, in joules. Build your own: EnergyModel("mine", sop=1e-12, ...).

    sop:             one synaptic operation (a spike arriving at one synapse; signed spikes count once)
    input_mac:       one multiply-accumulate of a graded (`current`) input value into one synapse
    neuron_active:   one neuron update in a step where the neuron received an event, had a nonzero
                     bias term, or fired
    neuron_inactive: one neuron update in any other hardware step
    spike_message:   one spike packet sent from a core to one destination core (routing)
    mac, ac:         one multiply-accumulate / one accumulate of the conventional ANN baseline;
                     None where the set does not describe conventional hardware
    A float is a point figure; a (low, central, high) triple or a Band gives a range.
    """

    name: str
    sop: Band = ZERO
    input_mac: Band = ZERO
    neuron_active: Band = ZERO
    neuron_inactive: Band = ZERO
    spike_message: Band = ZERO
    mac: Band | None = None
    ac: Band | None = None
    sources: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()

    def __post_init__(self):
        for f in fields(self):
            if f.name in ("name", "sources", "assumptions"):
                continue
            value = getattr(self, f.name)
            if value is None and f.name in ("mac", "ac"):
                continue
            band = _band(value)
            if band.low < 0:
                raise EnergyModelError(f"EnergyModel {self.name}: {f.name} must be >= 0 J, got {band}")
            object.__setattr__(self, f.name, band)
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "assumptions", tuple(self.assumptions))

    def to_dict(self) -> dict:
        out: dict = {"name": self.name}
        for f in fields(self):
            if f.name in ("name", "sources", "assumptions"):
                continue
            value = getattr(self, f.name)
            out[f.name + "_j"] = None if value is None else list(value.as_tuple())
        out["sources"] = list(self.sources)
        out["assumptions"] = list(self.assumptions)
        return out


def _loihi_model(name: str, extra: tuple[str, ...] = ()) -> EnergyModel:
    hops_davies = _MEAN_HOPS_EW * 3.0 + _MEAN_HOPS_NS * 4.0      # 12.875 pJ
    hops_sanafe = _MEAN_HOPS_EW * 3.0 + _MEAN_HOPS_NS * 4.2      # 13.125 pJ
    synop = Band(23.6 * PJ, 23.6 * PJ, 35.5 * PJ)
    return EnergyModel(
        name=name,
        sop=synop,
        input_mac=synop,
        neuron_active=Band(72.8 * PJ, 81.0 * PJ, 81.0 * PJ),
        neuron_inactive=Band(51.2 * PJ, 52.0 * PJ, 52.0 * PJ),
        spike_message=Band(1.7 * PJ, (1.7 + hops_davies) * PJ, (76.8 + hops_sanafe) * PJ),
        sources=(DAVIES2018, SANAFE, KERAS_SPIKING),
        assumptions=extra + (
            "central = Davies 2018 Table 2; band = Davies 2018 vs SANA-FE's Loihi file (KerasSpiking's "
            "27.1 pJ/synop lies inside the synop band). Davies gives the synaptic op as a minimum "
            "(>=23.6 pJ).",
            "Davies' Table 2 was not readable from this project's sources; its figures are as transcribed "
            "in the project's research notes and agree with KerasSpiking (23.6, 81 pJ) and SANA-FE "
            "(3.0 pJ E-W hop). Davies N-S hop 4.0 pJ vs SANA-FE 4.2 pJ.",
            "input_mac: a graded input value into one synapse is charged as one synaptic op (no "
            "published figure for graded input on Loihi).",
            "spike_message: low = one within-tile spike (1.7 pJ, no hops); central = 1.7 pJ + mean hops "
            "of a random placement on the 8 x 4 tile mesh (2.625 E-W x 3.0 + 1.25 N-S x 4.0 pJ); high = "
            "SANA-FE's 76.8 pJ axon-out message + the same mean hops at its 3.0 / 4.2 pJ.",
            "Static/leakage power, barrier synchronisation and host I/O are not included.",
        ),
    )


def _horowitz(name: str, add: float, mult: float, width: str) -> EnergyModel:
    return EnergyModel(
        name=name,
        sop=Band.point(add * PJ),
        input_mac=Band.point((add + mult) * PJ),
        mac=Band.point((add + mult) * PJ),
        ac=Band.point(add * PJ),
        sources=(HOROWITZ2014,),
        assumptions=(
            f"{width} arithmetic at 45 nm: a synaptic op is one add, a MAC is one mult + one add.",
            "Single source, so the band has zero width; process node, memory access and data movement "
            "are not modelled (Horowitz: an SRAM read costs more than the arithmetic).",
            "Neuron updates and spike routing cost 0 in this set (not in Horowitz's table).",
        ),
    )


PRESETS: dict[str, EnergyModel] = {
    "loihi1": _loihi_model("loihi1"),
    "loihi2": _loihi_model("loihi2", (
        "Loihi 2 has no published per-operation energy table: the Loihi 1 figures (14 nm) are used "
        "as its band. Loihi 2 (Intel 4) is likely lower per op; treat this as an upper-side guess.",)),
    "horowitz-fp32": _horowitz("horowitz-fp32", 0.9, 3.7, "FP32"),
    "horowitz-int32": _horowitz("horowitz-int32", 0.1, 3.1, "INT32"),
    "horowitz-int8": _horowitz("horowitz-int8", 0.03, 0.2, "INT8"),
}

#: the conventional-hardware sets the ANN baseline is always reported under
ANN_PRESETS = ("horowitz-fp32", "horowitz-int32", "horowitz-int8")


def get_energy_model(model: str | EnergyModel) -> EnergyModel:
    """A preset by name, or a user-built EnergyModel unchanged."""
    if isinstance(model, EnergyModel):
        return model
    if isinstance(model, str) and model in PRESETS:
        return PRESETS[model]
    raise UnsupportedError(f"unknown energy model {model!r}; known: {', '.join(PRESETS)}, "
                           "or pass a spikec.analysis.energy.EnergyModel")


@dataclass
class EnergyCounts:
    """The event counts an EnergyModel prices (any unit of aggregation: per inference, per layer)."""

    sops: float = 0.0
    input_macs: float = 0.0
    updates_active: float = 0.0
    updates_inactive: float = 0.0
    messages: float = 0.0


@dataclass
class EnergyBreakdown:
    parts: dict[str, Band] = field(default_factory=dict)

    @property
    def total(self) -> Band:
        total = ZERO
        for band in self.parts.values():
            total = total + band
        return total


def price(counts: EnergyCounts, model: EnergyModel) -> EnergyBreakdown:
    """Energy of `counts` under `model`, split by component."""
    return EnergyBreakdown({
        "synaptic_ops": model.sop.scale(counts.sops),
        "input_macs": model.input_mac.scale(counts.input_macs),
        "neuron_updates": (model.neuron_active.scale(counts.updates_active)
                           + model.neuron_inactive.scale(counts.updates_inactive)),
        "spike_messages": model.spike_message.scale(counts.messages),
    })


def price_ann(macs: float, acs: float, model: EnergyModel) -> Band:
    """Energy of a conventional ANN inference with `macs` MACs and `acs` accumulates."""
    if model.mac is None or model.ac is None:
        raise UnsupportedError(f"energy model {model.name!r} has no MAC/AC figures for an ANN baseline")
    return model.mac.scale(macs) + model.ac.scale(acs)
