"""Finding a sequence's files in a folder a user names (``--data``, ``--annotations``), kept as datasets are kept:
all in the folder, or one level or two below it (``ClassC/`` and ``ClassD/``, one folder per sequence)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from vcm.errors import VcmError

DEPTH = 2  # levels of folders below the one named that are searched


def find_in(folder: str | os.PathLike, names: Sequence[str], what: str) -> Path | None:
    """The file that the first of ``names`` found names, in ``folder`` or up to :data:`DEPTH` levels below it (in
    the folder itself first: a name there is taken as before, whatever lies below). Hidden folders are skipped.
    Two files of that name below the folder are a VcmError naming both (``what``: the sequence, for the message),
    never one of them picked by the order folders are listed in. None when no name is found."""
    folder = Path(folder)
    for name in names:
        if (folder / name).is_file():
            return folder / name
    below = _files_below(folder, set(names))
    for name in names:
        found = below.get(name, [])
        if len(found) > 1:
            raise VcmError(f"{what}: {name} is in {found[0].parent} and in {found[1].parent}; name the folder that "
                           f"holds the one to use")
        if found:
            return found[0]
    return None


def _files_below(folder: Path, names: set[str]) -> dict[str, list[Path]]:
    """{name: the files of that name in the folders 1 to DEPTH levels below ``folder``, in sorted order}."""
    found: dict[str, list[Path]] = {}
    level = [folder]
    for _ in range(DEPTH):
        below = []
        for parent in level:
            try:
                entries = sorted(os.scandir(parent), key=lambda e: e.name)
            except OSError:  # unreadable, or gone since it was listed
                continue
            for entry in entries:
                if not entry.name.startswith(".") and _is_dir(entry):
                    below.append(Path(entry.path))
        for sub in below:
            for name in names:
                if (sub / name).is_file():
                    found.setdefault(name, []).append(sub / name)
        level = below
    return found


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # a link to a folder too: datasets are often linked in from another disk
    except OSError:
        return False
