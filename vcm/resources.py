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
