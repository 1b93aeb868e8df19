"""Pseudo ground truth: the detector's confident detections on the *uncompressed* frames.

For unannotated video the usual VCM practice is to score decoded frames against what the task
network finds on the original. The detections on the original are computed once per (video
fingerprint and how it was read, detector settings, frames) and cached as JSON under ``$VCM_CACHE/reference/``
(default ``~/.cache/vcm``); every score threshold is applied to the cached detections.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from vcm import progress
from vcm.errors import VcmError
from vcm.eval.coco import Detections
from vcm.eval.kept_detections import detect_frames, from_json, to_json
from vcm.eval.gt import Box, GroundTruth

DEFAULT_SCORE = 0.5
REFERENCES = ("annotations", "original")


def cache_dir() -> Path | None:
    """Where reference detections are cached: ``$VCM_CACHE/reference``, else under ``$XDG_CACHE_HOME`` or
    ``~/.cache``; None where there is none to name (a container's user with no home folder)."""
    if os.environ.get("VCM_CACHE"):
        return Path(os.environ["VCM_CACHE"]) / "reference"
    try:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # "Could not determine home directory"
        return None
    return root / "vcm" / "reference"


def settings_key(settings: dict) -> dict:
    """The detector settings, with a weights *file* named by its content (a retrained file at the same path is new)."""
    from vcm.provenance import file_fingerprint

    out = dict(settings)
    w = out.get("weights")
    if isinstance(w, str) and Path(w).is_file():
        out["weights_fingerprint"] = file_fingerprint(w)
    return out


def cache_path(fingerprint: str, name: str, settings: dict, frames: list[int], reading: dict | None = None
               ) -> Path | None:
    """The cache file of these detections (None: no cache folder, :func:`cache_dir`); ``reading``: how the file's
    bytes were read (:func:`reading_of`), which a raw file's name or options decide."""
    folder = cache_dir()
    if folder is None:
        return None
    key = json.dumps({"video": fingerprint, "reading": reading, "detector": settings_key(settings), "frames": frames},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40]
    return folder / f"{safe}-{digest}.json"


def reading_of(info) -> dict:
    """What turns a file's bytes into frames beside the bytes themselves (a :class:`vcm.video.source.VideoInfo`):
    a raw file's size and bit depth come from its name or --size/--bit-depth, and its first source frame from its
    name, so the same bytes read otherwise are other frames."""
    return {"size": [info.width, info.height], "bit_depth": info.bit_depth,
            "first_source_frame": info.first_source_frame}


def _read_cache(path: Path | None, frames: list[int]) -> list[Detections] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
        if data["frames"] != frames:
            return None
        return from_json(data["detections"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: computed again


def original_detections(original: Path, frames: list[int], detector, batch: int = 8, size=None, fps=None,
                        bit_depth=None, expect_hw: tuple[int, int] | None = None) -> tuple[list[Detections], bool]:
    """Detections on the original's ``frames`` (source indices), from the cache when there; (dets, cached)."""
    from vcm.fsutil import write_json
    from vcm import codecs
    from vcm.provenance import file_fingerprint
    from vcm.video import load, probe

    original = Path(original)
    if codecs.for_stream(original) is not None:
        raise VcmError(f"--original {original} is a bitstream; name the uncompressed video")
    raw = original.suffix.lower() == ".yuv"  # the input's --size and --bit-depth describe a raw original only
    info = probe(original, size=size if raw else None, fps=fps, bit_depth=bit_depth if raw else None, need_fps=False)
    if expect_hw is not None and (info.height, info.width) != tuple(expect_hw):
        raise VcmError(f"the original {original.name} is {info.width}x{info.height}, the decoded frames are "
                       f"{expect_hw[1]}x{expect_hw[0]}: name the video they were coded from")
    fingerprint = file_fingerprint(original)
    path = cache_path(fingerprint, original.stem, detector.settings(), frames, reading_of(info))
    cached = _read_cache(path, frames)
    if cached is not None:
        progress.log(f"reference detections of {original.name} from the cache ({path})")
        return cached, True
    video = load(info, f"{frames[0]}:{frames[-1] + 1}")
    index = [f - video.source_frames.start for f in frames]
    problem = _cache_problem(path.parent) if path is not None else "no home folder to keep it in"
    if problem:  # a cache is worth a line, never the evaluation it serves
        progress.log(f"no cache of reference detections ({problem}): they are not cached, nor kept if stopped "
                     f"(VCM_CACHE names a folder vcm may write)", style="yellow")
    partial, meta = (None, None) if problem else (path.with_name(path.stem + ".partial.pt"), {"cache": path.name})
    dets, _ = detect_frames(video.frames_u8, index, frames, detector, batch,
                            f"detect on the original ({detector.name})", partial, meta)
    if not problem:
        try:
            write_json(path, {"video": str(original.resolve()), "fingerprint": fingerprint,
                              "detector": detector.settings(), "frames": frames, "detections": to_json(dets)})
        except OSError as err:  # a disk that filled up meanwhile
            progress.log(f"the reference detections were not cached ({err.strerror}: {err.filename or path}); "
                         f"they are computed again next time", style="yellow")
    return dets, False


def _cache_problem(folder: Path) -> str | None:
    """Why no file can be written into ``folder`` (made if absent); None when one can."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as err:
        return f"{folder} cannot be written: {err.strerror or type(err).__name__}"


def pseudo_ground_truth(original: Path, name: str, width: int, height: int, frames: list[int], detector,
                        score: float = DEFAULT_SCORE, batch: int = 8, **video_options) -> GroundTruth:
    """The detections on the original with a score ≥ ``score`` as ground truth of ``frames``."""
    if not 0.0 <= score <= 1.0:
        raise VcmError(f"--reference-score must be between 0 and 1, got {score}")
    dets, _ = original_detections(original, frames, detector, batch, expect_hw=(height, width), **video_options)
    gt = GroundTruth(name, width, height, {}, tuple(detector.classes), "pseudo",
                     f"pseudo ground truth: {detector.name} on the original {Path(original).name}, "
                     f"detections with score ≥ {score:g}")
    for f, d in zip(frames, dets):
        keep = d.scores >= score
        gt.frames[f] = [Box(float(x1), float(y1), float(x2 - x1), float(y2 - y1), int(c), 0, float((x2 - x1) * (y2 - y1)))
                        for (x1, y1, x2, y2), c in zip(d.boxes[keep].tolist(), d.classes[keep].tolist())]
    return gt
