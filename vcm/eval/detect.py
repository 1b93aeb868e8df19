"""Detectors as evaluation uses them: every entry of :mod:`vcm.detectors`, plus ``oracle`` (the
ground truth itself, score 1 — a check of the pipeline: its mAP must be 100), which needs the
ground truth that only evaluation has."""

from __future__ import annotations

import numpy as np

from vcm.detectors import factory
from vcm.detectors.classes import Detections
from vcm.detectors.registry import Detector
from vcm.errors import VcmError
from vcm.eval.gt import GroundTruth


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
    return factory.create_detector(name, weights=weights, repo=repo, device=device, batch=batch, half=half,
                                   options=options)
