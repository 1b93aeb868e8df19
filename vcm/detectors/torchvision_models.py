"""torchvision's COCO detectors (the CTC's task network is a Faster R-CNN) as vcm detectors.

Weights come through torchvision's own weights API and cache (``$TORCH_HOME/hub/checkpoints``):
``--weights default`` (the entry's COCO weights; downloaded once by torchvision when online),
``--weights random`` (the architecture randomly initialised with a fixed seed: nothing is read or
fetched; for checks of the pipeline and for timing), or
``--weights FILE`` (a ``state_dict`` saved from the same architecture, e.g. fine-tuned).

Their labels are COCO-91 ids (the weights' ``categories`` meta list, ``N/A`` for the gaps); vcm maps
them to COCO-80 indices by name, so ground truth, YOLOv7 and these detectors share one label space.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vcm.errors import VcmError
from vcm.detectors.classes import Detections
from vcm.detectors.registry import apply_options, register_detector
from vcm.detectors.classes import COCO80


RANDOM_SEED = 0


@dataclass(frozen=True)
class TvSettings:
    """``min_size``/``max_size``: the shorter/longer side torchvision resizes to (pixels);
    detections with a score below ``score_threshold`` are dropped; per-class NMS at ``nms_iou``;
    at most ``max_detections`` per frame."""

    min_size: int = 800
    max_size: int = 1333
    score_threshold: float = 0.05
    nms_iou: float = 0.5
    max_detections: int = 100


# name → (builder keyword names of score threshold, NMS IoU, detections per image; torchvision's defaults)
FAMILIES = {
    "fasterrcnn_resnet50_fpn_v2": (("box_score_thresh", "box_nms_thresh", "box_detections_per_img"), TvSettings()),
    "fasterrcnn_resnet50_fpn": (("box_score_thresh", "box_nms_thresh", "box_detections_per_img"), TvSettings()),
    "fasterrcnn_mobilenet_v3_large_fpn": (("box_score_thresh", "box_nms_thresh", "box_detections_per_img"), TvSettings()),
    "retinanet_resnet50_fpn_v2": (("score_thresh", "nms_thresh", "detections_per_img"), TvSettings(max_detections=300)),
    "retinanet_resnet50_fpn": (("score_thresh", "nms_thresh", "detections_per_img"), TvSettings(max_detections=300)),
    "fcos_resnet50_fpn": (("score_thresh", "nms_thresh", "detections_per_img"), TvSettings(score_threshold=0.2, nms_iou=0.6)),
}


def default_weights(name: str):
    """The entry's COCO weights enum member (metadata only; nothing is fetched)."""
    from torchvision.models import get_model_weights

    return get_model_weights(name).DEFAULT


def cached_weights_file(name: str) -> Path:
    """Where torchvision keeps (or will keep) the entry's default weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(default_weights(name).url)


def label_to_coco80(categories: list[str]) -> np.ndarray:
    """COCO-91 label index → COCO-80 index (−1 for background and the ``N/A`` gaps)."""
    from vcm.detectors.classes import norm

    index = {norm(c): i for i, c in enumerate(COCO80)}
    return np.array([index.get(norm(c), -1) for c in categories], np.int64)


class TorchvisionDetector:
    classes = tuple(COCO80)

    def __init__(self, name: str, weights: str | None, device, batch: int, settings: TvSettings):
        from torchvision.models import get_model

        keys, _ = FAMILIES[name]
        self.name, self.batch, self.s, self.device = name, batch, settings, torch.device(device)
        meta = default_weights(name)
        kwargs = {"min_size": settings.min_size, "max_size": settings.max_size, keys[0]: settings.score_threshold,
                  keys[1]: settings.nms_iou, keys[2]: settings.max_detections}
        choice = "default" if weights in (None, "default") else str(weights)
        if choice == "default":
            if not cached_weights_file(name).is_file():
                from vcm import progress

                progress.log(f"{name}: fetching its COCO weights through torchvision into {cached_weights_file(name).parent}")
            try:
                model = get_model(name, weights=meta, **kwargs)
            except Exception as err:  # noqa: BLE001 - offline, proxy, disk: one line either way
                raise VcmError(f"could not get {name}'s weights ({type(err).__name__}); put "
                               f"{cached_weights_file(name).name} into {cached_weights_file(name).parent} "
                               "or pass --weights FILE / random") from None
            self.weights = f"{meta} ({cached_weights_file(name)})"
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_SEED)  # the same network every time: its detections can be cached
                model = get_model(name, weights=None, weights_backbone=None, num_classes=len(meta.meta["categories"]),
                                  **kwargs)
            if choice == "random":
                self.weights = f"random initialisation (seed {RANDOM_SEED})"
            else:
                path = Path(choice)
                if not path.is_file():
                    raise VcmError(f"{name} weights {path} not found (a state_dict file, 'default' or 'random')")
                try:
                    state = torch.load(path, map_location="cpu", weights_only=True)
                    state = state.get("model", state) if isinstance(state, dict) else state
                    model.load_state_dict(state)
                except Exception as err:  # noqa: BLE001
                    raise VcmError(f"{path.name} is not a {name} state_dict ({type(err).__name__})") from None
                self.weights = str(path)
        self.model = model.eval().to(self.device)
        self.to80 = label_to_coco80(meta.meta["categories"])

    def settings(self) -> dict:
        return {"name": self.name, "weights": self.weights, "labels": "COCO-91 mapped to COCO-80 by name",
                **asdict(self.s)}

    @torch.no_grad()
    def detect(self, frames_u8: np.ndarray, source_frames: list[int]) -> list[Detections]:
        out = []
        for i in range(0, len(frames_u8), self.batch):
            x = torch.from_numpy(np.ascontiguousarray(frames_u8[i:i + self.batch])).to(self.device).float().div_(255)
            for r in self.model(list(x)):
                labels = r["labels"].cpu().numpy()
                cls = self.to80[np.clip(labels, 0, len(self.to80) - 1)]
                keep = cls >= 0
                out.append(Detections(r["boxes"].cpu().numpy().astype(np.float32)[keep],
                                      r["scores"].cpu().numpy().astype(np.float32)[keep], cls[keep]))
        return out


# the entries the demo may use when their COCO weights are already in torch.hub's cache, best first
LOCAL_PREFERENCE = ("fasterrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn_v2", "fasterrcnn_resnet50_fpn",
                    "retinanet_resnet50_fpn", "fcos_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn")


def _local(name: str):
    """The probe of one entry: its section when its default weights are in torch.hub's cache."""
    return lambda: {"name": name, "weights": "default"} if cached_weights_file(name).is_file() else None


def _register(name: str) -> None:
    rank = LOCAL_PREFERENCE.index(name) + 1 if name in LOCAL_PREFERENCE else None

    def settings_of(options):
        settings = apply_options(FAMILIES[name][1], options, name)
        if settings.min_size < 32 or settings.max_size < settings.min_size:
            raise VcmError(f"{name}: min_size must be ≥ 32 and max_size ≥ min_size")
        return settings

    @register_detector(name, f"torchvision {name} (COCO)", family="torchvision",
                       local=_local(name) if rank else None, preference=rank or 1000, settings_of=settings_of)
    def create(weights=None, repo=None, device="cpu", batch=8, half=False, options=None):
        return TorchvisionDetector(name, None if weights is None else str(weights), device, batch, settings_of(options))


for _name in FAMILIES:
    _register(_name)
