"""Locate the project's data folders (``configs/``, ``sequences/``) in a checkout or a wheel."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """``configs`` or ``sequences``: the checkout's folder, else the copy packed into the wheel."""
    for candidate in (_PKG.parent / name, _PKG / "_data" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"vcm data folder {name!r} is missing from this installation")


def shipped_config(kind: str, name_or_path: str | Path) -> Path | None:
    """The config vcm ships as ``configs/<kind>/<name>.yaml`` that ``name_or_path`` names, in a checkout or an
    installed wheel alike; None where it is a path instead: it has a suffix or a folder in it, or no shipped config
    has that name. A shipped name wins over a file of the same name (no suffix) in the working folder."""
    p = Path(name_or_path)
    if len(p.parts) != 1 or p.suffix:
        return None
    candidate = data_dir("configs") / kind / f"{name_or_path}.yaml"
    return candidate if candidate.is_file() else None


def shipped_configs(kind: str) -> list[str]:
    """The names of the configs vcm ships in ``configs/<kind>/``."""
    return sorted(p.stem for p in (data_dir("configs") / kind).glob("*.yaml"))


# What each kind of shipped config is for, by the command that reads it.
CONFIG_KINDS = {"ctc": "vcm ctc run NAME", "nerv": "vcm fit --preset NAME", "masks": "vcm masks --config FILE"}


def shipped_config_names() -> list[str]:
    """Every config vcm ships, as ``KIND/NAME`` (``ctc/sfu-cd``, ``nerv/hinerv-demo``, ``masks/default``)."""
    return [f"{kind}/{name}" for kind in CONFIG_KINDS for name in shipped_configs(kind)]


def shipped_configs_named(name: str) -> list[str]:
    """The shipped configs ``name`` names, as ``KIND/NAME``: itself when it is one, else each kind's config of
    that name (``demo`` is both ``ctc/demo`` and ``nerv/demo``)."""
    every = shipped_config_names()
    if name in every:
        return [name]
    return [f"{kind}/{name}" for kind in CONFIG_KINDS if f"{kind}/{name}" in every]
