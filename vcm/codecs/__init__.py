"""Registry of codecs for experiments (``vcm ctc``, ``vcm demo``, the report), as CompressAI's
``register_model``: each entry knows how to list its rate points from a config section, how to
encode and decode one point, and which RD curve a point belongs to.

    @register_codec("hevc", order=40)
    class Hevc(Codec): ...

Adding a codec = one module with one decorated class + its name in ``_MODULES``; the CLI, the CTC
runner and the report only ask this registry.
"""

from __future__ import annotations

import importlib
from typing import Callable

from vcm.errors import VcmError

_MODULES = ("vcm.codecs.nerv_family", "vcm.codecs.anchors", "vcm.codecs.sa_icm")
_REGISTRY: dict[str, "Codec"] = {}


class Codec:
    """One codec of an experiment. Subclasses set ``name``/``order`` through :func:`register_codec`."""

    name: str = ""
    order: int = 99
    description: str = ""
    section_keys: tuple[str, ...] = ()  # the keys its config section may hold (others are refused)

    def points(self, section: dict, sequence: dict) -> list[tuple[str, dict]]:
        """(point id, JSON-able point parameters) of one sequence, from the codec's config section."""
        raise NotImplementedError

    def curve(self, point: dict) -> str:
        """The RD curve a point belongs to (one codec may draw several, e.g. two methods)."""
        return self.name

    def encode_decode(self, spec: dict, video, device) -> dict:
        """Encode ``spec['point']`` of ``video`` into ``spec['workdir']`` and decode it back →
        {bitstream, bytes, frames_u8 (uint8 [T,3,H,W]), encode, decode (seconds), qp (or None),
        and optionally fit_seconds}."""
        raise NotImplementedError


def register_codec(name: str, order: int = 99, **kwargs) -> Callable:
    """Class decorator: register ``cls(**kwargs)`` as codec ``name``."""

    def wrap(cls):
        codec = cls(**kwargs)
        codec.name, codec.order = name, order
        _REGISTRY[name] = codec
        return cls

    return wrap


def _load() -> None:
    for module in _MODULES:
        importlib.import_module(module)


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].order, n))


def get(name: str) -> Codec:
    _load()
    if name not in _REGISTRY:
        raise VcmError(f"unknown codec {name!r}; known: {', '.join(names())}")
    return _REGISTRY[name]


def curve_order(curve: str) -> tuple:
    """Sort key of a curve label in tables and plots: its codec's order, then the label."""
    _load()
    base = max((n for n in _REGISTRY if curve == n or curve.startswith(n + "-")), key=len, default=None)
    return (_REGISTRY[base].order if base else 99, curve)
