"""A user's own detector, named ``MODULE:ATTR`` (importable) or ``path/to/file.py:ATTR``.

``ATTR`` is a factory called as ``ATTR(device=torch.device, **options)`` (options from ``--set``);
it returns a callable ``f(frames_u8)`` taking ``uint8 [T,3,H,W]`` RGB frames and returning one
``(boxes, scores, labels)`` per frame: ``boxes`` float [N,4] as x1, y1, x2, y2 pixels, ``scores``
[N], ``labels`` int [N] indexing ``f.classes`` (a list of class names; COCO-80 when absent).
``f.settings`` (a dict), when present, is stated in the outputs.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np

from vcm.errors import VcmError
from vcm.fsutil import require_input
from vcm.detectors.classes import Detections
from vcm.detectors.classes import COCO80


def _resolve(spec: str):
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise VcmError(f"a detector of your own is named MODULE:ATTR or FILE.py:ATTR, got {spec!r}")
    try:
        if target.endswith(".py"):
            path = Path(target)
            require_input(path, "detector file")
            module_spec = importlib.util.spec_from_file_location(f"vcm_user_detector_{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except VcmError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's code: say what failed in one line
        raise VcmError(f"could not import {target} for detector {spec} ({type(err).__name__}: {err})") from None
    if not hasattr(module, attr):
        raise VcmError(f"{target} has no {attr!r} (detector {spec})")
    return getattr(module, attr)


class UserDetector:
    def __init__(self, spec: str, fn):
        self.name, self.fn = spec, fn
        self.classes = tuple(getattr(fn, "classes", None) or COCO80)
        if not self.classes or not all(isinstance(c, str) for c in self.classes):
            raise VcmError(f"detector {spec}: classes must be a list of names")

    def settings(self) -> dict:
        extra = getattr(self.fn, "settings", None)
        return {"name": self.name, "classes": len(self.classes), **(extra if isinstance(extra, dict) else {})}

    def detect(self, frames_u8: np.ndarray, source_frames: list[int]) -> list[Detections]:
        rows = list(self.fn(frames_u8))
        if len(rows) != len(frames_u8):
            raise VcmError(f"detector {self.name} returned {len(rows)} results for {len(frames_u8)} frames")
        out = []
        for row in rows:
            try:
                boxes, scores, labels = (np.asarray(v) for v in row)
                boxes = boxes.astype(np.float32).reshape(-1, 4)
                scores, labels = scores.astype(np.float32).reshape(-1), labels.astype(np.int64).reshape(-1)
            except (TypeError, ValueError):
                raise VcmError(f"detector {self.name} must return (boxes [N,4], scores [N], labels [N]) per frame") from None
            if not len(boxes) == len(scores) == len(labels):
                raise VcmError(f"detector {self.name} returned {len(boxes)} boxes, {len(scores)} scores, {len(labels)} labels")
            if len(labels) and (labels.min() < 0 or labels.max() >= len(self.classes)):
                raise VcmError(f"detector {self.name} returned label {int(labels.max())}, it has {len(self.classes)} classes")
            out.append(Detections(boxes, scores, labels))
        return out


def load_user_detector(spec: str, device="cpu", options: dict | None = None) -> UserDetector:
    import torch

    factory = _resolve(spec)
    try:
        fn = factory(device=torch.device(device), **(options or {}))
    except TypeError as err:
        raise VcmError(f"detector {spec}: {err}") from None
    if not callable(fn):
        raise VcmError(f"detector {spec}: the factory must return a callable f(frames_u8)")
    return UserDetector(spec, fn)
