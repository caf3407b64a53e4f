"""The IR graph: named populations joined by edges, plus JSON-able compile metadata."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from spikec.errors import GraphError, InputDataError, UnsupportedError
from spikec.ir.nodes import IF, Edge, Input, Population, Readout, Shape, SigmaDelta

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
MAX_DELAY = 62
MAX_WEIGHT_EXP = 8
MIN_WEIGHT_EXP = -8     # negative exponents (floor shifts) only on edges into SigmaDelta layers


@dataclass(frozen=True, eq=False)
class Graph:
    """A DAG of populations (one Input, IF and SigmaDelta layers, one Readout) and synapse edges.

    `meta` holds JSON-serialisable facts from the compiler (method, per-layer report rows, ...);
    it never changes what the graph computes.
    """

    populations: tuple[Population, ...]
    edges: tuple[Edge, ...]
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "populations", tuple(self.populations))
        object.__setattr__(self, "edges", tuple(self.edges))

    # ------------------------------------------------------------------ lookups
    @cached_property
    def nodes(self) -> dict[str, Population]:
        return {p.name: p for p in self.populations}

    def node(self, name: str) -> Population:
        try:
            return self.nodes[name]
        except KeyError:
            raise GraphError(name, None, "no such population in the graph") from None

    @property
    def input(self) -> Input:
        return next(p for p in self.populations if isinstance(p, Input))

    @property
    def readout(self) -> Readout:
        return next(p for p in self.populations if isinstance(p, Readout))

    @property
    def if_layers(self) -> list[IF]:
        """IF layers in topological order."""
        return [self.nodes[n] for n in self.topo_order() if isinstance(self.nodes[n], IF)]

    @property
    def sigma_delta_layers(self) -> list[SigmaDelta]:
        """SigmaDelta layers in topological order."""
        return [self.nodes[n] for n in self.topo_order() if isinstance(self.nodes[n], SigmaDelta)]

    @property
    def neuron_layers(self) -> list[IF | SigmaDelta]:
        """Every layer that emits (IF and SigmaDelta), in topological order."""
        return [self.nodes[n] for n in self.topo_order() if isinstance(self.nodes[n], (IF, SigmaDelta))]

    def in_edges(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.dst == name]

    def out_edges(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.src == name]

    @cached_property
    def _topo(self) -> tuple[str, ...]:
        indeg = {p.name: 0 for p in self.populations}
        for e in self.edges:
            indeg[e.dst] += 1
        ready = [p.name for p in self.populations if indeg[p.name] == 0]
        order: list[str] = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for e in self.out_edges(name):
                indeg[e.dst] -= 1
                if indeg[e.dst] == 0:
                    ready.append(e.dst)
        if len(order) != len(self.populations):
            stuck = sorted(set(indeg) - set(order))
            raise GraphError(stuck[0], None, f"is on a cycle (populations {stuck})")
        return tuple(order)

    def topo_order(self) -> list[str]:
        return list(self._topo)

    # ------------------------------------------------------------------ time
    @cached_property
    def _starts(self) -> dict[str, int]:
        starts: dict[str, int] = {}
        for name in self._topo:
            if isinstance(self.nodes[name], Input):
                starts[name] = 1
            else:
                starts[name] = min(starts[e.src] + 1 + e.delay for e in self.in_edges(name))
        return starts

    def start_steps(self) -> dict[str, int]:
        """Hardware step at which each population runs its local step k = 1."""
        return dict(self._starts)

    @property
    def latency(self) -> int:
        """Hardware steps spent beyond the T evaluated ones (pipeline depth + SRP pre-simulation)."""
        return self._starts[self.readout.name] - 1 + self.readout.skip

    def hardware_steps(self, steps: int) -> int:
        """Hardware steps needed to evaluate `steps` readout steps."""
        return self.latency + steps

    def graded_features(self) -> list[str]:
        """What in this graph goes beyond binary spikes (sigma-delta layers and what they come
        with), as short phrases; empty for a purely spiking graph."""
        found = [f"SigmaDelta layer {p.name}" for p in self.sigma_delta_layers]
        if self.input.encoding == "delta":
            found.append(f"delta-encoded input {self.input.name}")
        if self.readout.bias_steps:
            found.append(f"readout bias on the first {self.readout.bias_steps} step(s) only")
        return found

    def require_spiking(self, who: str) -> None:
        """Raise UnsupportedError when `who` (a backend or format) is handed a graded graph."""
        found = self.graded_features()
        if found:
            raise UnsupportedError(
                f"{who} runs integrate-and-fire graphs only; this graph has " + ", ".join(found[:3])
                + (f" and {len(found) - 3} more" if len(found) > 3 else "")
                + ". Sigma-delta graphs (target 'loihi-sdnn') run on the reference, torch and lava backends")

    # ------------------------------------------------------------------ inputs
    def encode(self, x) -> np.ndarray:
        """Float samples -> the integer input this graph expects (round(x * scale), clipped)."""
        inp = self.input
        arr = np.asarray(x, dtype=np.float64)
        if arr.size and not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0]
            raise InputDataError(f"encode(): input holds NaN or infinite values (first at index {tuple(bad)})")
        if inp.encoding == "spikes":
            raise InputDataError("encode() is for current-encoded inputs; give spike trains as 0/1 ints")
        limit = 2 ** (inp.value_bits - 1) - 1
        return np.clip(np.rint(arr * inp.scale), -limit, limit).astype(np.int64)

    def check_inputs(self, inputs, steps: int) -> np.ndarray:
        """Validate a batch of integer inputs; returns an int64 numpy array."""
        from spikec.ir.validate import check_inputs

        return check_inputs(self, inputs, steps)

    def report(self) -> list[dict]:
        """Per-population compile report rows (spikec.ir.report.report)."""
        from spikec.ir.report import report

        return report(self)

    def validate(self) -> Graph:
        """Raise GraphError naming node and field on anything malformed; returns self."""
        from spikec.ir.validate import validate

        validate(self)
        return self


def broadcast_param(value: np.ndarray, shape: Shape) -> np.ndarray:
    """Expand a scalar / per-channel (C,) / full-shape parameter to `shape`."""
    if value.shape == shape or value.ndim == 0:
        return np.broadcast_to(value, shape)
    return np.broadcast_to(value.reshape((shape[0],) + (1,) * (len(shape) - 1)), shape)


def param_shape_ok(value: np.ndarray, shape: Shape) -> bool:
    return value.ndim == 0 or value.shape == shape or value.shape == (shape[0],)


def name_ok(name: str) -> bool:
    return isinstance(name, str) and bool(_NAME.match(name))


def graphs_equal(a: Graph, b: Graph) -> bool:
    """True when two graphs hold the same populations, edges, parameters and metadata."""
    def same(x, y) -> bool:
        if type(x) is not type(y):
            return False
        if isinstance(x, np.ndarray):
            return x.shape == y.shape and bool((x == y).all())
        if isinstance(x, (tuple, list)):
            return len(x) == len(y) and all(same(i, j) for i, j in zip(x, y))
        if hasattr(x, "__dataclass_fields__"):
            return all(same(getattr(x, f), getattr(y, f)) for f in x.__dataclass_fields__)
        return x == y

    return same(a.populations, b.populations) and same(a.edges, b.edges) and a.meta == b.meta
