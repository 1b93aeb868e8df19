"""A name → entry table filled by the modules that define the entries, imported on first use.

The codecs (``vcm.codecs``), the representations (``vcm.nerv.registry``) and the task networks
(``vcm.detectors.registry``) each keep one: adding an entry is one decorated definition in its own
module plus that module's name in the registry's list, or, from another installed package, that module named in
the registry's entry-point group (``vcm.codecs``, ``vcm.representations``, ``vcm.detectors``).
"""

from __future__ import annotations

import importlib
from typing import Generic, Iterator, TypeVar

from vcm.errors import VcmError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, modules: tuple[str, ...], plugins: str | None = None):
        """``plugins``: the entry-point group through which other installed packages add entries (each names a
        module that registers them when imported), loaded with the registry's own modules."""
        self.kind, self.modules, self.plugins = kind, modules, plugins
        self._entries: dict[str, T] = {}
        self._plugins_loaded = False

    def add(self, name: str, entry: T) -> None:
        """Register ``entry`` as ``name``; an entry of another class under a name taken (a plugin's codec named
        as one of vcm's) is refused in one line, where the one imported last silently won."""
        held = self._entries.get(name)
        if held is not None and type(held) is not type(entry):
            def where(e):
                return f"{type(e).__module__}.{type(e).__qualname__}"

            raise VcmError(f"two {self.kind}s are named {name!r}: {where(held)} and {where(entry)}; rename one")
        self._entries[name] = entry

    def load(self) -> dict[str, T]:
        """Every entry (the defining modules imported first). A ``"module:function"`` in the list is
        called on every load: it registers entries derived from another registry (the NeRV-family
        codecs from the representations), including ones registered since the last load."""
        if self.plugins and not self._plugins_loaded:
            self._plugins_loaded = True
            self._load_plugins()
        for module in self.modules:
            name, _, function = module.partition(":")
            loaded = importlib.import_module(name)
            if function:
                getattr(loaded, function)()
        return self._entries

    def _load_plugins(self) -> None:
        """Import what the installed packages name in the entry-point group ``plugins``. One that fails stops every
        command that asks the registry, in one line naming the package and how to get past it, where its traceback
        would say nothing of vcm's plugins."""
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.plugins):
            try:
                ep.load()
            except Exception as err:  # noqa: BLE001 - whatever another package's import raises
                self._plugins_loaded = False  # said again by the next command, not only the first
                owner = f" of {ep.dist.name}" if getattr(ep, "dist", None) else ""
                why = (str(err).strip().splitlines() or [""])[0]
                why = f"{type(err).__name__}{f': {why}' if why else ''}"
                raise VcmError(f"the {self.kind} plugin {ep.name}{owner} ({self.plugins}: {ep.value}) does not load: "
                               f"{why}; fix or uninstall that package") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.load())

    def __contains__(self, name: str) -> bool:
        return name in self.load()

    def known(self, names: list[str] | None = None) -> str:
        """``names`` (default: every entry's) in words for an error about a name that is none of them, saying where
        another package's entries come from."""
        listed = ", ".join(self.load() if names is None else names)
        if not self.plugins:
            return listed
        return f"{listed} (another package's {self.kind} is known once installed with an entry point in {self.plugins})"

    def get(self, name: str, known: list[str] | None = None) -> T:
        """The entry ``name``; an unknown name is a one-line error listing ``known`` (default: all names)."""
        entries = self.load()
        if name not in entries:
            raise VcmError(f"unknown {self.kind} {name!r}; known: {self.known(known)}")
        return entries[name]
