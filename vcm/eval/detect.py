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

Adding one = a module with a function decorated by :func:`register_detector` + its name in ``_REGISTRY``.
Options (``--set key=value``) are checked against the entry's settings dataclass: a typo is an error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from vcm.errors import VcmError
from vcm.eval.coco import Detections
from vcm.eval.gt import GroundTruth
from vcm.registry import Registry



class Detector(Protocol):
    name: str
    classes: tuple[str, ...]

    def settings(self) -> dict:
        """Everything that decides its output, as JSON-able data (name, weights, sizes, thresholds)."""

    def detect(self, frames_u8: np.ndarray, source_frames: list[int]) -> list[Detections]:
        """``uint8 [T,3,H,W]`` RGB frames (and their source indices) → one Detections per frame."""


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable  # (weights, repo, device, batch, half, options: dict) -> Detector
    description: str
    family: str


_REGISTRY: Registry[Entry] = Registry("detector", ("vcm.eval.yolov7", "vcm.eval.tv_detectors", "vcm.eval.opencv_detectors"))


def register_detector(name: str, description: str = "", family: str = "") -> Callable:
    """Function decorator: register ``factory(weights=, repo=, device=, batch=, half=, options=)``."""

    def wrap(factory):
        _REGISTRY.add(name, Entry(name, factory, description, family or name))
        return factory

    return wrap


def names() -> list[str]:
    return ["oracle", *sorted(_REGISTRY)]


def describe() -> str:
    """One line for ``--help``: the registered names and the user-callable form."""
    return ", ".join(names()) + ", or MODULE:ATTR / FILE.py:ATTR for your own"


def apply_options(settings, options: dict | None, what: str):
    """A copy of the dataclass ``settings`` with ``options`` (strings from ``--set`` or YAML values)
    coerced to each field's type; an unknown key is refused with the valid ones."""
    from vcm.schema import check_keys

    options = dict(options or {})
    try:
        check_keys(options, [f.name for f in dataclasses.fields(settings)], f"{what} settings")
    except ValueError as err:
        raise VcmError(str(err)) from None
    values = {}
    for key, raw in options.items():
        kind = type(getattr(settings, key))
        try:
            value = _coerce(kind, raw)
        except (TypeError, ValueError):
            raise VcmError(f"{what} setting {key} must be {kind.__name__}, got {raw!r}") from None
        if kind in (int, float) and value < 0:
            raise VcmError(f"{what} setting {key} must not be negative, got {raw!r}")
        values[key] = value
    return dataclasses.replace(settings, **values)


def _coerce(kind: type, raw):
    if kind is bool:
        if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "0", "false", "no"):
            return raw.lower() in ("1", "true", "yes")
        if isinstance(raw, bool):
            return raw
        raise ValueError(raw)
    if kind is int:
        value = float(raw)
        if not value.is_integer():
            raise ValueError(raw)
        return int(value)
    return kind(raw)


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
    return _REGISTRY.get(name, [describe()]).factory(weights=weights, repo=repo, device=device, batch=batch, half=half, options=options)


# torchvision entries the demo may use when their COCO weights are already in torch.hub's cache, best first.
LOCAL_PREFERENCE = ("fasterrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn_v2", "fasterrcnn_resnet50_fpn",
                    "retinanet_resnet50_fpn", "fcos_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn")


def local_detector() -> dict | None:
    """A detector whose weights are on this machine already (nothing is fetched), as a CTC config
    ``detector`` section: YOLOv7 (weights from ``$VCM_YOLOV7_WEIGHTS`` or torch.hub's cache, and its
    repo), else a torchvision detector whose COCO weights are in torch.hub's cache; None if neither."""
    from vcm.eval.tv_detectors import cached_weights_file
    from vcm.eval.yolov7 import find_repo, find_weights

    weights, repo = find_weights(None), find_repo(None)
    if weights is not None and repo is not None:
        return {"name": "yolov7", "weights": str(weights), "repo": str(repo)}
    for name in LOCAL_PREFERENCE:
        if cached_weights_file(name).is_file():
            return {"name": name, "weights": "default"}
    return None
