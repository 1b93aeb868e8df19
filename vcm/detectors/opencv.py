"""Detectors that ship inside OpenCV's wheel: a machine task on any machine, nothing downloaded.

``opencv-face`` and ``opencv-upperbody``: Viola–Jones Haar cascades from ``cv2.data.haarcascades``
(frontal face, upper body), run by ``detectMultiScale3`` on the luma; a box's confidence is the
logistic of its cascade level weight (the final stage's sum), so that COCO mAP can rank boxes.

They are weak next to YOLOv7 or torchvision's detectors (which stay the first choice when their
weights are on the machine) but real, trained detectors that run in milliseconds on a CPU. Every
object they find counts as COCO-80 ``person`` (a face or an upper body is part of one);
``settings()`` names what was actually detected, so that no score is mistaken for a CTC number.
Each entry is checked on a real frame that shows its object (carphone's face, the cyclist of
``bikes``). Other cascades that ship with OpenCV (profile face, full body) and its HOG people
detector found only background on the dev clips' people and are not registered; another cascade
is one line in ``CASCADES``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from vcm.errors import VcmError
from vcm.detectors.classes import Detections
from vcm.detectors.registry import apply_options, register_detector
from vcm.detectors.classes import COCO80
from vcm.video.color import rgb_to_gray

PERSON = COCO80.index("person")


@dataclass(frozen=True)
class CascadeSettings:
    scale_factor: float = 1.1  # image pyramid step
    min_neighbors: int = 3  # overlapping raw detections a box needs
    min_size: int = 20  # smallest box side, pixels
    max_size: int = 0  # largest box side, pixels (0: no limit)


CASCADES = {  # registry name → (cascade file in cv2.data.haarcascades, what it finds)
    "opencv-face": ("haarcascade_frontalface_default.xml", "frontal face"),
    "opencv-upperbody": ("haarcascade_upperbody.xml", "upper body"),
}
SHIPPED = tuple(CASCADES)


def _logistic(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))).astype(np.float32)


def _boxes(rects, scores: np.ndarray) -> Detections:
    rects = np.asarray(rects, np.float32).reshape(-1, 4)
    xyxy = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
    return Detections(xyxy, scores.reshape(-1).astype(np.float32), np.full(len(xyxy), PERSON, np.int64))


class CascadeDetector:
    classes = tuple(COCO80)

    def __init__(self, name: str, settings: CascadeSettings):
        import cv2

        self.name, self.s = name, settings
        self.file, self.finds = CASCADES[name]
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + self.file)
        if self.cascade.empty():
            raise VcmError(f"OpenCV's {self.file} did not load (is opencv-python complete?)")

    def settings(self) -> dict:
        return {"name": self.name, "weights": f"opencv {self.file} (ships with OpenCV)", "detects": self.finds,
                "counts_as": "person", "score": "logistic of the cascade level weight", **asdict(self.s)}

    def detect(self, frames_u8: np.ndarray, source_frames: list[int]) -> list[Detections]:
        s = self.s
        out = []
        for frame in frames_u8:
            extra = {"maxSize": (s.max_size, s.max_size)} if s.max_size else {}
            rects, _, weights = self.cascade.detectMultiScale3(
                rgb_to_gray(frame), scaleFactor=s.scale_factor, minNeighbors=s.min_neighbors,
                minSize=(s.min_size, s.min_size), outputRejectLevels=True, **extra)
            out.append(_boxes(rects, _logistic(np.asarray(weights, np.float64).reshape(-1))))
        return out


def _check(settings: CascadeSettings, name: str) -> None:
    for key, value in asdict(settings).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise VcmError(f"{name} setting {key} must be finite")
    if settings.scale_factor <= 1.0:
        raise VcmError(f"{name} setting scale_factor must be above 1 (the pyramid's step)")
    if settings.min_size < 1 or settings.min_neighbors < 0:
        raise VcmError(f"{name} settings: min_size must be at least 1 and min_neighbors not negative")


def _register_cascade(name: str) -> None:
    def settings_of(options):
        settings = apply_options(CascadeSettings(), options, name)
        _check(settings, name)
        return settings

    @register_detector(name, f"OpenCV's shipped Haar cascade ({CASCADES[name][1]}; counts as person)", family="opencv",
                       settings_of=settings_of, weights=False)
    def create(weights=None, repo=None, device="cpu", batch=8, half=False, options=None):
        return CascadeDetector(name, settings_of(options))


for _name in CASCADES:
    _register_cascade(_name)


def pick_for(frames_u8: np.ndarray, every: int = 10) -> str:
    """The shipped detector that finds something in the most of every ``every``-th frame of a clip
    (ties: the order of ``SHIPPED``, faces first) — the demo's choice when no other weights are here."""
    from vcm.detectors.factory import create_detector

    sample = frames_u8[::every]
    found = {name: sum(len(d.boxes) > 0 for d in create_detector(name).detect(sample, list(range(len(sample)))))
             for name in SHIPPED}
    return max(SHIPPED, key=lambda name: (found[name], -SHIPPED.index(name)))
