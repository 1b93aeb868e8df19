"""Registry of task networks (detectors), as the codec registry: one place, one entry each.

A detector turns frames into boxes::

    detect(frames_u8: uint8 [T,3,H,W] RGB, source_frames: list[int]) -> list[Detections]  # one per frame

and says what it is: ``name``, ``classes`` (the names its class indices stand for; COCO-80 for the
COCO-trained ones) and ``settings()`` (input size, thresholds, NMS, weights: data, written into
every score file and report). Entries:

- ``yolov7`` (default): YOLOv7 from a local repo or torch.hub's copy (``vcm.eval.yolov7``);
- ``fasterrcnn_resnet50_fpn_v2``, ``retinanet_resnet50_fpn_v2``, …: torchvision's detectors
  through its weights API and cache (``vcm.eval.tv_detectors``);
- ``oracle``: the ground truth itself (score 1) — a check of the pipeline, mAP = 100;
- ``MODULE:ATTR`` or ``FILE.py:ATTR``: a user's own detector (``vcm.eval.user_detector``).

Adding one = a module with a function decorated by :func:`register_detector` (``vcm.eval.detector_registry``,
a leaf) + its module in that registry's list.
Options (``--set key=value``) are checked against the entry's settings dataclass: a typo is an error.
"""

from __future__ import annotations

import numpy as np

from vcm.errors import VcmError
from vcm.eval.coco import Detections
from vcm.eval.detector_registry import (Detector, Entry, apply_options, describe, entry, local_detector,  # noqa: F401
                                        names, register_detector)
from vcm.eval.gt import GroundTruth


def parse_set(pairs: list[str] | None) -> dict:
    """``["min_size=320", "score_threshold=0.1"]`` → ``{"min_size": "320", …}``."""
    out = {}
    for pair in pairs or []:
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise VcmError(f"--set takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


class OracleDetector:
    name = "oracle"

    def __init__(self, gt: GroundTruth):
        self.gt = gt
        self.classes = gt.classes

    def settings(self) -> dict:
        return {"name": "oracle", "returns": "the ground truth boxes with score 1"}

    def detect(self, frames_u8: np.ndarray, source_frames: list[int]) -> list[Detections]:
        out = []
        for f in source_frames:
            boxes = self.gt.frames.get(f, [])
            out.append(Detections(
                np.array([[b.x, b.y, b.x + b.w, b.y + b.h] for b in boxes], np.float32).reshape(-1, 4),
                np.ones(len(boxes), np.float32), np.array([b.category for b in boxes], np.int64)))
        return out


def create_detector(name: str, gt: GroundTruth | None = None, weights=None, repo=None, device="cpu",
                    batch: int = 8, half: bool = False, options: dict | None = None) -> Detector:
    """Build a registered detector (or a user's ``MODULE:ATTR``); ``options`` are its settings."""
    if name == "oracle":
        if gt is None:
            raise VcmError("the oracle detector needs ground truth (annotations); it has nothing to copy from "
                           "with --reference original")
        if options:
            raise VcmError("the oracle detector has no settings")
        return OracleDetector(gt)
    if ":" in name:
        from vcm.eval.user_detector import load_user_detector

        return load_user_detector(name, device=device, options=options)
    return entry(name).factory(weights=weights, repo=repo, device=device, batch=batch, half=half, options=options)
