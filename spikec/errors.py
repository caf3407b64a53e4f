"""Typed errors. Every error says what went wrong, where, and what was expected."""

from __future__ import annotations


class SpikecError(Exception):
    """Base class of every error spikec raises on purpose."""


class GraphError(SpikecError, ValueError):
    """An IR graph is malformed: names the node (or edge) and the field."""

    def __init__(self, where: str, field: str | None, message: str):
        self.where = where
        self.field = field
        loc = f"{where}.{field}" if field else where
        super().__init__(f"{loc}: {message}")


class InputDataError(SpikecError, ValueError):
    """Input samples handed to run/verify/estimate do not fit the graph."""


class FormatError(SpikecError, ValueError):
    """A file is missing, truncated, malformed, or of an unknown format version."""


class UnsupportedError(SpikecError, NotImplementedError):
    """A model, module, function or graph feature that spikec (or a target) cannot express."""


class MissingActivationError(UnsupportedError):
    """A linear layer (conv / linear) takes a value that passed through another linear layer with no
    activation between them (e.g. a MobileNetV2 linear bottleneck); spikec.prepare inserts signed clips."""


class ConversionError(SpikecError, ValueError):
    """A model cannot be converted as given (NaN weights, wrong example input, ...)."""


class OverflowRiskError(SpikecError, ArithmeticError):
    """A static bound shows that an accumulator or membrane could overflow its bit width."""


class BackendError(SpikecError, RuntimeError):
    """A backend is unknown, unavailable, or failed while running a graph."""


class ResourceError(SpikecError, MemoryError):
    """A job would need more memory (or another resource) than this machine has; says how much."""
