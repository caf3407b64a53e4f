"""`Finding`: one warning that is not an error (a silent layer, a stalled training run, ...).

The checks that make them live where their subject does (spikec.analysis.diagnostics for graphs
and runs, spikec.quantize.train for training); the CLI prints them and adds them to --json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    """One warning: `code` (kind), `where` (layer or T), what was seen and what to try."""

    code: str
    where: str
    message: str
    hint: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}; {self.hint}"
