"""Registry of codecs for experiments (``vcm ctc``, ``vcm demo``, the report), as CompressAI's
``register_model``: each entry knows how to list its rate points from a config section, how to
encode and decode one point, and which RD curve a point belongs to.

    @register_codec("hevc", order=40)
    class Hevc(Codec): ...

Adding a codec = one module with one decorated class + its module in ``_REGISTRY``'s list (or, from another
package, its module in the entry-point group :data:`PLUGINS`); the CLI, the CTC runner and the report only ask
this registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from vcm.registry import Registry

# Another package's codec: its pyproject.toml names its module in this entry-point group
# ([project.entry-points."vcm.codecs"] mine = "mylab.vcm_codec"), and the module registers the codec as these do.
PLUGINS = "vcm.codecs"

_REGISTRY: Registry["Codec"] = Registry("codec", ("vcm.codecs.nerv_family:register_representations", "vcm.codecs.anchors",
                                                 "vcm.codecs.sa_icm"), plugins=PLUGINS)


FITTED = "fitted"  # marker in a point's folder: the network its point trains (or shares) is on disk


def network_ready(spec: dict) -> None:
    """Called by a codec once the network its point trains (or shares) is on disk: it leaves the
    ``FITTED`` marker in its workdir, from which the CTC runner lets the network's other points start
    while this one goes on; a point that trained it on several slots' threads goes on with
    ``threads_after_fit``."""
    if spec.get("threads_after_fit"):
        import torch

        torch.set_num_threads(int(spec["threads_after_fit"]))
    if spec.get("workdir"):
        Path(spec["workdir"]).mkdir(parents=True, exist_ok=True)
        (Path(spec["workdir"]) / FITTED).touch()


class Codec:
    """One codec of an experiment. Subclasses set ``name``/``order`` through :func:`register_codec`."""

    name: str = ""
    order: int = 99
    description: str = ""
    section_keys: tuple[str, ...] = ()  # the keys its config section may hold (others are refused)
    suffix: str | None = None  # its stream files' suffix, when evaluation may be given one to decode
    reads_checkpoint: bool = False  # whether decoding its streams takes a decoder's weights (vcm eval --checkpoint)

    def points(self, section: dict, sequence: dict) -> list[tuple[str, dict]]:
        """(point id, JSON-able point parameters) of one sequence, from the codec's config section."""
        raise NotImplementedError

    def with_defaults(self, section: dict | None) -> dict:
        """Its config section with what the codec's defaults fill in where the section leaves it out (a
        NeRV-family section without ``fits`` runs its default preset's curve), so that what runs is written
        out in every config that records it; a codec without defaults returns the section as it is."""
        return section or {}

    def with_compute(self, section: dict, factor: float) -> dict:
        """Its config section with ``factor`` times the training its points do, where a part of the section
        does not set its own (``vcm ctc run --compute``); a codec that trains nothing (an anchor, whose effort
        is its preset) returns the section as it is."""
        return section

    def training_steps(self, spec: dict, num_frames: int) -> dict | None:
        """The optimiser steps the encoding of a planned point (``spec``: its ``point``, results folder ``out``
        and ``sequence``) would train on a clip of ``num_frames`` frames: ``{fit: the steps left of the network
        it trains or shares (0 where that network is on disk), fit_done: its steps already on disk, stage:
        those of its own stage, or None where rate control decides them}``; None for a codec that trains
        nothing (an anchor, a pretrained codec)."""
        return None

    def point_inputs(self, point: dict) -> dict:
        """What decides a point beyond its own values in the config, JSON-able: what the presets and files it
        names by name or path hold (a preset edited in place or changed by an upgrade, a checkpoint or mask
        file replaced under the same name). A finished point whose inputs differ runs again. A file it names
        that does not exist is a VcmError, so that the config is refused before any point runs."""
        return {}

    def check_programs(self, point: dict) -> None:
        """Refuse (VcmError) a point whose programs this machine lacks (an encoder missing from the ffmpeg vcm
        runs), called before any point runs where the points run on this machine: found by the point itself,
        it failed once the networks of the points beside it had trained. Nothing to check by default."""

    def curve(self, point: dict) -> str:
        """The RD curve a point belongs to (one codec may draw several, e.g. two methods)."""
        return self.name

    def label(self, point: dict, coded: dict) -> str | None:
        """A short name of a coded point for tables and plots (``QP37``, ``λ1.0``), from its parameters
        and what ``encode_decode`` returned; None: the point's id. Stored in the result row, so the
        report renders it and never parses ids."""
        return None

    def describe(self, settings: dict) -> str:
        """The settings its points ran with (``encode_decode``'s ``settings``), in words, for the report's
        experiment table; stored in the result row when the point runs."""
        return ", ".join(f"{k} {v}" for k, v in settings.items())

    def read_stream(self, path, device, wanted: Callable[[range, str], range] | None = None, checkpoint=None):
        """Decode one of its stream files → (``uint8 [T,3,H,W]`` frames, their source frame range, the
        sequence name). ``wanted(source range, sequence name) → range`` narrows the frames to decode where the
        format decodes frames on their own; ``checkpoint``: a decoder's weights, for formats that need them."""
        raise NotImplementedError

    def stream_sequence(self, path) -> str:
        """The sequence one of its stream files stands for, from the header alone."""
        raise NotImplementedError

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
        _REGISTRY.add(name, codec)
        return cls

    return wrap


def names() -> list[str]:
    codecs = _REGISTRY.load()
    return sorted(codecs, key=lambda n: (codecs[n].order, n))


def get(name: str) -> Codec:
    return _REGISTRY.get(name, names())


def for_stream(path) -> Codec | None:
    """The codec whose stream files carry ``path``'s suffix (the first in order: the NeRV-family codecs
    share ``.nerv``, whose header names the representation), or None for anything else."""
    from pathlib import Path

    suffix = Path(path).suffix
    return next((get(n) for n in names() if get(n).suffix == suffix), None)


def curve_order(curve: str) -> tuple:
    """Sort key of a curve label in tables and plots: its codec's order, then the label."""
    codecs = _REGISTRY.load()
    base = max((n for n in codecs if curve == n or curve.startswith(n + "-")), key=len, default=None)
    return (codecs[base].order if base else 99, curve)
