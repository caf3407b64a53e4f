"""One registry shape for everything spikec looks up by name: backends, conversion methods,
targets and export formats (one Registry each, with distinct names).

A name is registered once: registering the same entry again is a no-op, a different entry
under a taken name is refused unless `replace=True`. An unknown name raises the registry's
typed error, listing the known ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from spikec.errors import SpikecError, UnsupportedError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Read like a dict {name: entry}; written with `register`; `entry(name)` raises `error`
    ("unknown <kind> 'x'; known <plural>: ...") for an unknown name."""

    def __init__(self, kind: str, plural: str, error: type[SpikecError] = UnsupportedError,
                 entries: Mapping[str, T] | None = None):
        self.kind, self.plural, self.error = kind, plural, error
        self._entries: dict[str, T] = dict(entries or {})

    def register(self, name: str, entry: T, replace: bool = False) -> T:
        """Add `entry` under `name`; returns it."""
        old = self._entries.get(name)
        if old is not None and old is not entry and old != entry and not replace:
            raise self.error(f"a {self.kind} {name!r} is already registered (register(..., replace=True) "
                             f"to replace it)")
        self._entries[name] = entry
        return entry

    def pop(self, name: str) -> T:
        """Remove and return the entry under `name` (KeyError if there is none)."""
        return self._entries.pop(name)

    def entry(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.error(f"unknown {self.kind} {name!r}; known {self.plural}: "
                             f"{', '.join(sorted(self._entries))}") from None

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
