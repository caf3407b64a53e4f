"""The reference interpreter exposed as a backend (numpy only, always available)."""

from spikec.ir.interpreter import run_reference

NAME = "reference"


def is_available() -> bool:
    return True


def why_unavailable() -> str:
    return ""


def run(graph, inputs, steps, record=False, record_v=False, every_step=False, count_spikes=False, **options):
    if options:
        raise TypeError(f"the reference backend takes no options, got {sorted(options)}")
    return run_reference(graph, inputs, steps, record=record, record_v=record_v, every_step=every_step,
                         count_spikes=count_spikes)
