"""Per-core and per-chip limits of Loihi 1 and Loihi 2, with sources and what is assumed."""

from __future__ import annotations

from dataclasses import dataclass

from spikec.errors import UnsupportedError

NENGO_LOIHI = ("nengo-loihi nengo_loihi/block.py (github.com/nengo/nengo-loihi): MAX_COMPARTMENTS 1024, "
               "MAX_IN_AXONS 4096, MAX_OUT_AXONS 4096, MAX_SYNAPSE_BITS 16384*64; "
               "SynapseConfig.bits_per_axon (synapse memory format)")
DAVIES2018_CHIP = ("M. Davies et al., IEEE Micro 38(1), 2018: 128 neuromorphic cores per chip, "
                   "1-9-bit weights, synaptic delays")
LOIHI2_BRIEF = ("Intel Labs, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', technology "
                "brief, 2021: 128 neuromorphic cores, up to 1 M neurons and 120 M synapses per chip, "
                "~192 KB flexible memory per core")


@dataclass(frozen=True)
class HardwareSpec:
    """Limits the resource estimate checks each core against.

    syn_mem_bits: synaptic memory per core; index_bits_max: widest compartment index a synapse can
    hold (None: no published cap); assumed: names of fields that are assumptions, not published.
    """

    name: str
    compartments_per_core: int
    syn_mem_bits: int
    in_axons_per_core: int
    out_axons_per_core: int
    cores_per_chip: int
    weight_bits: int = 8
    index_bits_max: int | None = 12
    assumed: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


LOIHI1 = HardwareSpec(
    name="loihi1",
    compartments_per_core=1024,
    syn_mem_bits=16384 * 64,            # 128 KiB
    in_axons_per_core=4096,
    out_axons_per_core=4096,
    cores_per_chip=128,
    sources=(NENGO_LOIHI, DAVIES2018_CHIP),
    notes=("Synapse memory cost follows nengo-loihi's encoding of Loihi 1 synapses: 64-bit words, "
           "blocks of <= 64 synapses per input axon with a 10-bit header, 8-bit weights, a 6..12-bit "
           "compartment index (sparse) or none (dense row).",),
)

LOIHI2 = HardwareSpec(
    name="loihi2",
    compartments_per_core=8192,          # 1 M neurons / 128 cores
    syn_mem_bits=192 * 1024 * 8,         # ~192 KB per core
    in_axons_per_core=4096,
    out_axons_per_core=4096,
    cores_per_chip=128,
    index_bits_max=None,
    assumed=("compartments_per_core", "syn_mem_bits", "in_axons_per_core", "out_axons_per_core"),
    sources=(LOIHI2_BRIEF,),
    notes=("Loihi 2 memory is shared between neuron state and synapses and its neurons per core vary "
           "with state size: 8192 compartments (1 M / 128) and all 192 KB for synapses are optimistic "
           "upper bounds. Axon limits are not published; Loihi 1's 4096 is used as a placeholder. "
           "The synapse format is assumed to be Loihi 1's. The brief's per-core figures were quoted "
           "from memory in the project's research notes (loihi-semantics section 7): re-check them.",),
)

HARDWARE: dict[str, HardwareSpec] = {"loihi1": LOIHI1, "loihi2": LOIHI2}


def get_hardware(hardware: str | HardwareSpec) -> HardwareSpec:
    """A named target ("loihi1", "loihi2") or a user-built HardwareSpec unchanged."""
    if isinstance(hardware, HardwareSpec):
        return hardware
    if isinstance(hardware, str) and hardware in HARDWARE:
        return HARDWARE[hardware]
    raise UnsupportedError(f"unknown hardware {hardware!r}; known: {', '.join(HARDWARE)}, "
                           "or pass a spikec.analysis.hardware.HardwareSpec")
