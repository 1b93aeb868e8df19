"""One guard for every path a command writes: never over its inputs, a run's own files or a folder.

``check_output(path, inputs=..., protected=..., kind=...)`` is called by every command before any
heavy work, so a wrong ``--out`` costs a second and destroys nothing. Paths are compared after
resolving symlinks, so ``ln -s clip.yuv out.yuv`` is caught as well as ``--out clip.yuv``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from vcm.errors import VcmError


# what a file's name ends in, never a folder's that vcm makes: `vcm fit --out run.nerv` made a run folder of that name
FILE_SUFFIXES = (".nerv", ".icm", ".yuv", ".y4m", ".mp4", ".mkv", ".avi", ".mov", ".webm", ".png", ".jpg", ".jpeg",
                 ".json", ".npz", ".pt", ".pth", ".yaml", ".yml", ".csv", ".html", ".md", ".txt")


def _resolve(path: Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def _inside(path: Path, folder: Path) -> bool:
    return path != folder and folder in path.parents


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (where a new output would be created)."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    protected: Iterable[str | os.PathLike | None] = (),
    kind: str = "file",
    option: str = "--out",
) -> Path:
    """Refuse (one-line VcmError) an output that would destroy something; returns ``path``.

    ``kind``: ``file`` (must not be an existing directory), ``dir`` (must not be an existing file)
    or ``any`` (a video output: a file by suffix, a folder of PNG frames without one, which must
    not hold an input either).
    ``inputs``: what the command reads (files or folders); the output may be none of them, nor lie
    inside an input folder. ``protected``: further files the output must not replace (a run's
    checkpoint, config, metrics).
    """
    path = Path(path)
    real = _resolve(path)
    frames_folder = kind == "any" and not path.suffix  # PNG frames written into it: frame_00000.png, ...
    if kind == "any":
        kind = "file" if path.suffix else "dir"
    if kind == "file" and real.is_dir():
        raise VcmError(f"{option} {path} is a directory; name a file")
    if kind == "dir" and real.exists() and not real.is_dir():
        raise VcmError(f"{option} {path} is a file; name a folder")
    if kind == "dir" and not real.exists() and path.suffix.lower() in FILE_SUFFIXES:
        raise VcmError(f"{option} {path} names a {path.suffix} file, but a folder is written there; name a folder "
                       f"(without {path.suffix})")
    for item in inputs:
        if item is None:
            continue
        src = _resolve(Path(item))
        if real == src:
            raise VcmError(f"{option} {path} is this command's input; refusing to write over it")
        if src.is_dir() and _inside(real, src):
            raise VcmError(f"{option} {path} lies inside the input folder {item}; name a path outside it")
        if frames_folder and _inside(src, real):
            raise VcmError(f"{option} {path} holds this command's input {item}; name another folder")
    for item in protected:
        if item is not None and real == _resolve(Path(item)):
            raise VcmError(f"{option} {path} would replace {item}; name another file")
    base = existing_ancestor(real.parent if kind == "file" else real)
    if not base.is_dir():
        raise VcmError(f"cannot write {option} {path}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise VcmError(f"cannot write {option} {path}: folder {base} is not writable")
    return path


def check_replaceable(path: str | os.PathLike, overwrite: bool, option: str = "--out") -> None:
    """Refuse to replace an existing output that carries no mark of who wrote it (a raw ``.yuv``, a video,
    a folder of PNG frames, a COCO JSON in the official layout) unless ``overwrite`` (``--overwrite``): it may
    be the user's original, as ``--out BQMall_832x480_60.yuv`` beside the source is."""
    path = Path(path)
    if overwrite:
        return
    if path.is_file():
        raise VcmError(f"{option} {path} exists; pass --overwrite to replace it, or name another file")
    if path.is_dir() and any(path.glob("frame_*.png")):
        raise VcmError(f"{option} {path} already holds PNG frames; pass --overwrite to replace them, or name another folder")


def check_own(path: str | os.PathLike, is_own, what: str, option: str = "--out") -> None:
    """Refuse to write over an existing file that ``is_own(path)`` does not recognise as ``what`` (this command's
    kind of output, which it may replace: the same command again); anything else there was the user's."""
    path = Path(path)
    if path.is_file() and not is_own(path):
        raise VcmError(f"{option} {path} exists and is not {what}; writing would replace it: name another file")


def json_has_keys(path: str | os.PathLike, keys: set[str]) -> bool:
    """Whether ``path`` holds a JSON object with every one of ``keys`` (how a command tells its own record,
    a stream's report or a run's config, from a user's JSON of the same name)."""
    import json

    from vcm.fsutil import open_regular

    try:
        with open_regular(path, "rb") as f:  # a named pipe of that name is no record of vcm's (it was waited on)
            said = json.loads(f.read())
    except (OSError, ValueError, VcmError):
        return False
    return isinstance(said, dict) and keys <= said.keys()
