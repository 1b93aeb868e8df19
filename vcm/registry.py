"""A name → entry table filled by the modules that define the entries, imported on first use.

The codecs (``vcm.codecs``), the representations (``vcm.nerv.registry``) and the task networks
(``vcm.detectors.registry``) each keep one: adding an entry is one decorated definition in its own
module plus that module's name in the registry's list.
"""

from __future__ import annotations

import importlib
from typing import Generic, Iterator, TypeVar

from vcm.errors import VcmError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, modules: tuple[str, ...]):
        self.kind, self.modules = kind, modules
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> None:
        self._entries[name] = entry

    def load(self) -> dict[str, T]:
        """Every entry (the defining modules imported first). A ``"module:function"`` in the list is
        called on every load: it registers entries derived from another registry (the NeRV-family
        codecs from the representations), including ones registered since the last load."""
        for module in self.modules:
            name, _, function = module.partition(":")
            loaded = importlib.import_module(name)
            if function:
                getattr(loaded, function)()
        return self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.load())

    def __contains__(self, name: str) -> bool:
        return name in self.load()

    def get(self, name: str, known: list[str] | None = None) -> T:
        """The entry ``name``; an unknown name is a one-line error listing ``known`` (default: all names)."""
        entries = self.load()
        if name not in entries:
            raise VcmError(f"unknown {self.kind} {name!r}; known: {', '.join(known or entries)}")
        return entries[name]
