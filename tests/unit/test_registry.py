"""spikec.registry.Registry: the one shape of the backend, method, target and export registries."""

import pytest

import spikec
from spikec import backends
from spikec.compiler import methods, targets
from spikec.errors import BackendError, FormatError, UnsupportedError
from spikec.registry import Registry


def test_register_once_replace_on_request_typed_unknown():
    reg = Registry("widget", "widgets", FormatError, {"a": 1})
    assert reg.register("b", 2) == 2 and reg.register("b", 2) == 2        # the same entry again: no-op
    with pytest.raises(FormatError, match="widget 'b' is already registered"):
        reg.register("b", 3)
    assert reg.register("b", 3, replace=True) == 3 and dict(reg) == {"a": 1, "b": 3}
    with pytest.raises(FormatError, match=r"unknown widget 'c'; known widgets: a, b"):
        reg.entry("c")
    assert reg.pop("b") == 3 and list(reg) == ["a"] and len(reg) == 1 and "a" in reg


def test_every_registry_is_one():
    for reg, error in ((backends.BACKENDS, BackendError), (methods.METHODS, UnsupportedError),
                       (targets.TARGETS, UnsupportedError), (spikec.EXPORTERS, FormatError)):
        assert isinstance(reg, Registry) and reg.error is error and len(reg) >= 3
        with pytest.raises(error, match="unknown"):
            reg.entry("no-such-name")
    with pytest.raises(BackendError, match="already registered"):
        backends.register("torch", "spikec.backends.reference")
    with pytest.raises(FormatError, match="unknown export format 'nope'"):
        spikec.export(None, "x", format="nope")
