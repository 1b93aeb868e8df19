"""Detectors behind one small interface: frames in, per-frame boxes/scores/classes out.

- ``yolov7`` (default): YOLOv7 through torch.hub, evaluated as its own test.py does (see yolov7.py);
- ``oracle``: returns the ground truth itself (score 1) — a check of the pipeline, mAP = 100.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from vcm.errors import VcmError
from vcm.eval.coco import Detections
from vcm.eval.gt import GroundTruth

DETECTORS = ("yolov7", "oracle")


class Detector(Protocol):
    name: str

    def detect(self, frames_u8: np.ndarray, source_frames: list[int]) -> list[Detections]:
        """``uint8 [T,3,H,W]`` RGB frames (and their source indices) → one Detections per frame."""


class OracleDetector:
    name = "oracle"

    def __init__(self, gt: GroundTruth):
        self.gt = gt

    def detect(self, frames_u8: np.ndarray, source_frames: list[int]) -> list[Detections]:
        out = []
        for f in source_frames:
            boxes = self.gt.frames.get(f, [])
            out.append(Detections(
                np.array([[b.x, b.y, b.x + b.w, b.y + b.h] for b in boxes], np.float32).reshape(-1, 4),
                np.ones(len(boxes), np.float32), np.array([b.category for b in boxes], np.int64)))
        return out


def create_detector(name: str, gt: GroundTruth | None = None, weights=None, yolov7_repo=None, device="cpu",
                    batch: int = 8, half: bool = False) -> Detector:
    if name == "oracle":
        if gt is None:
            raise VcmError("the oracle detector needs ground truth")
        return OracleDetector(gt)
    if name == "yolov7":
        from vcm.eval.yolov7 import YoloV7Detector

        return YoloV7Detector(weights=weights, repo=yolov7_repo, device=device, batch=batch, half=half)
    raise VcmError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
