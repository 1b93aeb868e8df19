"""A folder matplotlib can write, chosen before it is first imported (by the report's plots, or by the
``bjontegaard`` package behind every BD figure)."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path


@functools.cache  # once per process: a report computes dozens of BD figures
def matplotlib_config_dir() -> None:
    """Give matplotlib a folder it can write (``MPLCONFIGDIR``) where the user has not named one and its default
    (``~/.config/matplotlib``) cannot be made: a container's user with a read-only or no home folder. Matplotlib
    then printed two lines of warnings in every report, and built its font cache again each time, in a new
    temporary folder. The folder it gets is kept, under the system's temporary folder, per user."""
    if os.environ.get("MPLCONFIGDIR") or all(_writable(d) for d in _defaults()):
        return
    uid = os.getuid() if hasattr(os, "getuid") else None
    kept = Path(tempfile.gettempdir()) / f"vcm-matplotlib-{uid if uid is not None else 'user'}"
    try:
        kept.mkdir(mode=0o700, exist_ok=True)
        mine = not kept.is_symlink() and (uid is None or kept.stat().st_uid == uid)
    except OSError:
        return  # matplotlib's own fallback, with its warning
    if mine:  # another user's folder of that name is not used
        os.environ["MPLCONFIGDIR"] = str(kept)


def _defaults() -> list[Path]:
    """Matplotlib's own config and cache folders, as it finds them without ``MPLCONFIGDIR``; none without a home."""
    try:
        home = Path.home()
    except RuntimeError:  # "Could not determine home directory"
        return [Path("/nonexistent")]
    return [Path(os.environ.get(var) or home / sub) / "matplotlib"
            for var, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"))]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)
