"""YOLOv7 (WongKinYiu/yolov7) as vcm's detector, loaded without side effects.

What the loader does about the hub's hazards:
- it never imports the repo's ``hubconf.py``, so its ``check_requirements`` (which calls
  ``pip install`` for unmet pins such as ``numpy<1.24``) never runs: the environment is untouched;
- the repo comes from ``--yolov7-repo DIR`` (offline), else torch.hub's cache / download of
  ``WongKinYiu/yolov7`` (fetched and unpacked only, not imported through the hub);
- the checkpoint is a pickled module: it is read with ``torch.load(weights_only=False)`` (torch ≥
  2.6 defaults to True), with the repo's ``models`` and ``utils`` packages importable only for the
  duration of the load: any ``models``/``utils`` modules the user already had are set aside and
  put back afterwards, and the repo's are removed from ``sys.modules``;
- if ``pkg_resources`` is missing (setuptools ≥ 81), a stand-in is present only during the load.

Evaluation as the repo's test.py: long side resized to 640 (INTER_AREA down, INTER_LINEAR up),
letterboxed to a stride-32 rectangle (+half a stride) with pad value 114, confidence 0.001,
multi-label NMS at IoU 0.65 (torchvision), at most 300 boxes, boxes mapped back to the frame.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
import types
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vcm.errors import VcmError
from vcm.detectors.classes import Detections
from vcm.detectors.registry import apply_options, register_detector
from vcm.detectors.classes import COCO80

HUB_REPO = "WongKinYiu/yolov7"
WEIGHTS_URL = "https://github.com/WongKinYiu/yolov7/releases/download/v0.1/yolov7.pt"
IMG_SIZE, STRIDE, PAD_VALUE = 640, 32, 114
CONF_THRES, IOU_THRES, MAX_DET, MAX_NMS = 0.001, 0.65, 300, 30000
_REPO_PACKAGES = ("models", "utils")
WEIGHTS_ENV, REPO_ENV = "VCM_YOLOV7_WEIGHTS", "VCM_YOLOV7_REPO"


@dataclass(frozen=True)
class YoloV7Settings:
    """test.py's evaluation settings (the defaults); ``img_size`` is the letterboxed long side in pixels."""

    img_size: int = IMG_SIZE
    conf_thres: float = CONF_THRES
    iou_thres: float = IOU_THRES
    max_det: int = MAX_DET


def find_weights(weights: Path | str | None = None) -> Path | None:
    """``weights`` if given, else ``$VCM_YOLOV7_WEIGHTS``, else torch.hub's ``checkpoints/yolov7.pt``,
    else ``./yolov7.pt``; None when none of the defaults exists."""
    if weights is not None:
        return Path(weights)
    candidates = [Path(os.environ[WEIGHTS_ENV])] if os.environ.get(WEIGHTS_ENV) else []
    candidates += [Path(torch.hub.get_dir()) / "checkpoints" / "yolov7.pt", Path("yolov7.pt")]
    return next((c for c in candidates if c.is_file()), None)


def find_repo(repo: Path | str | None = None) -> Path | None:
    """``repo``, ``$VCM_YOLOV7_REPO`` or torch.hub's copy, when present on disk (nothing is fetched)."""
    for c in ([Path(repo)] if repo else []) + ([Path(os.environ[REPO_ENV])] if os.environ.get(REPO_ENV) else []) + \
            [Path(torch.hub.get_dir()) / "WongKinYiu_yolov7_main"]:
        if (c / "models").is_dir():
            return c
    return None


def resolve_repo(repo: Path | None) -> Path:
    """A local clone, else torch.hub's copy of the repo (downloaded if online; hubconf not imported)."""
    if repo is None and os.environ.get(REPO_ENV):
        repo = os.environ[REPO_ENV]
    if repo is not None:
        repo = Path(repo)
        if not (repo / "models").is_dir():
            raise VcmError(f"{repo} is not a YOLOv7 repository (no models/ folder); clone {HUB_REPO} there")
        return repo
    cached = Path(torch.hub.get_dir()) / "WongKinYiu_yolov7_main"
    if (cached / "models").is_dir():
        return cached
    try:
        from torch.hub import _get_cache_or_reload

        return Path(_get_cache_or_reload(HUB_REPO, False, True, "load", verbose=False, skip_validation=True))
    except Exception:
        raise VcmError(f"could not fetch {HUB_REPO} through torch.hub (offline?); clone it and pass --yolov7-repo DIR") from None


def _is_repo_module(name: str) -> bool:
    return name in _REPO_PACKAGES or name.startswith(tuple(p + "." for p in _REPO_PACKAGES))


@contextlib.contextmanager
def isolated_repo_import(repo: Path):
    """Make the repo's ``models``/``utils`` importable, then restore ``sys.modules`` and ``sys.path``."""
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if _is_repo_module(k)}
    stub = None
    if "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
        stub = _pkg_resources_stand_in()
        sys.modules["pkg_resources"] = stub
    sys.path.insert(0, str(repo))
    try:
        yield
    finally:
        if str(repo) in sys.path:
            sys.path.remove(str(repo))
        for k in [k for k in sys.modules if _is_repo_module(k)]:
            del sys.modules[k]
        sys.modules.update(saved)
        if stub is not None and sys.modules.get("pkg_resources") is stub:
            del sys.modules["pkg_resources"]


def _pkg_resources_stand_in() -> types.ModuleType:
    from packaging.version import parse

    mod = types.ModuleType("pkg_resources")
    mod.parse_version = parse

    def refuse(*_a, **_k):
        raise RuntimeError("vcm does not check or install YOLOv7's requirements")

    mod.require = mod.parse_requirements = refuse
    return mod


def load_model(weights: Path | None, repo: Path | None, device) -> torch.nn.Module:
    from vcm.fsutil import require_input

    found = find_weights(weights)
    missing = (f"YOLOv7 weights {found or 'yolov7.pt'} not found; download yolov7.pt from {WEIGHTS_URL} and pass "
               f"--weights PATH (or set {WEIGHTS_ENV})")
    if found is None:
        raise VcmError(missing)
    require_input(found, "YOLOv7 weights", missing=missing)
    weights = found
    repo_dir = resolve_repo(repo)
    with isolated_repo_import(repo_dir):
        try:
            ckpt = torch.load(weights, map_location="cpu", weights_only=False)
        except ModuleNotFoundError as err:
            raise VcmError(f"loading {weights.name} needs the module {err.name!r}: install vcm's yolov7 extra "
                           "(pip install 'vcm[yolov7]') or check --yolov7-repo") from None
        except Exception as err:
            raise VcmError(f"{weights.name} is not a YOLOv7 checkpoint ({type(err).__name__})") from None
        model = ckpt
        if isinstance(ckpt, dict):
            model = ckpt.get("ema") or ckpt.get("model")
        if not isinstance(model, torch.nn.Module):
            raise VcmError(f"{weights.name} holds no YOLOv7 model ('model' or 'ema')")
        model = model.float()
        if hasattr(model, "fuse"):
            # IDetect.fuse adds in place to parameters (refused when they require grad); fuse() prints
            # "Fusing layers..." on stdout, which belongs to --json.
            with torch.no_grad(), contextlib.redirect_stdout(sys.stderr):
                model = model.fuse()
    return model.eval().to(device)


def letterbox_shape(height: int, width: int, img_size: int = IMG_SIZE) -> tuple[tuple[int, int], tuple[int, int]]:
    """((resized h, w), (padded h, w)) as test.py: long side → img_size, rect batch shape with pad 0.5."""
    r = img_size / max(height, width)
    rh, rw = int(height * r), int(width * r)
    aspect = height / width
    ratio = (aspect, 1.0) if aspect < 1 else (1.0, 1.0 / aspect)
    ph, pw = (int(math.ceil(x * img_size / STRIDE + 0.5)) * STRIDE for x in ratio)
    return (rh, rw), (ph, pw)


def preprocess(frames_u8: np.ndarray, img_size: int = IMG_SIZE) -> tuple[torch.Tensor, float, tuple[float, float]]:
    """``uint8 [T,3,H,W]`` → ``float [T,3,ph,pw]`` in [0,1], gain, (pad_w, pad_h)."""
    import cv2

    t, _, h, w = frames_u8.shape
    (rh, rw), (ph, pw) = letterbox_shape(h, w, img_size)
    gain = rh / h  # test.py maps boxes back with ratio_pad[0][0], the height ratio
    top, left = int(round((ph - rh) / 2 - 0.1)), int(round((pw - rw) / 2 - 0.1))
    out = np.full((t, ph, pw, 3), PAD_VALUE, np.uint8)
    interp = cv2.INTER_AREA if rh < h else cv2.INTER_LINEAR
    for i in range(t):
        img = np.ascontiguousarray(frames_u8[i].transpose(1, 2, 0))
        if (rh, rw) != (h, w):
            img = cv2.resize(img, (rw, rh), interpolation=interp)
        out[i, top:top + rh, left:left + rw] = img
    x = torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255)
    return x, gain, ((pw - rw) / 2, (ph - rh) / 2)


def nms_multilabel(pred: torch.Tensor, s: YoloV7Settings = YoloV7Settings()) -> torch.Tensor:
    """YOLO output ``[N, 5+nc]`` (cx, cy, w, h, obj, cls…) → ``[M, 6]`` (x1, y1, x2, y2, score, class)."""
    import torchvision

    x = pred[pred[:, 4] > s.conf_thres]
    if not len(x):
        return pred.new_zeros((0, 6))
    scores = x[:, 5:] * x[:, 4:5]
    cxcy, wh = x[:, :2], x[:, 2:4]
    boxes = torch.cat([cxcy - wh / 2, cxcy + wh / 2], dim=1)
    i, j = (scores > s.conf_thres).nonzero(as_tuple=True)
    det = torch.cat([boxes[i], scores[i, j, None], j[:, None].float()], dim=1)
    if len(det) > MAX_NMS:
        det = det[det[:, 4].argsort(descending=True)[:MAX_NMS]]
    keep = torchvision.ops.batched_nms(det[:, :4], det[:, 4], det[:, 5].long(), s.iou_thres)[:s.max_det]
    return det[keep]


def to_frame(det: torch.Tensor, gain: float, pad: tuple[float, float], height: int, width: int) -> Detections:
    boxes = det[:, :4].clone()
    boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - pad[0]) / gain).clamp(0, width)
    boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - pad[1]) / gain).clamp(0, height)
    return Detections(boxes.cpu().numpy().astype(np.float32), det[:, 4].cpu().numpy().astype(np.float32),
                      det[:, 5].long().cpu().numpy())


def class_names(model: torch.nn.Module, source: str) -> tuple[str, ...]:
    """The classes a YOLOv7 checkpoint was trained on: its ``names`` (a list, or a dict by index,
    as YOLOv7's train.py stores them), COCO-80 when it has none or they are COCO's (spaces and
    underscores alike). A checkpoint trained on a user's classes is scored against ground truth
    in those names."""
    names = getattr(model, "names", None)
    if names is None:
        names = getattr(getattr(model, "module", None), "names", None)
    if names is None:
        return tuple(COCO80)
    if isinstance(names, dict):
        keys = sorted(names) if all(isinstance(k, int) for k in names) else None
        names = [names[k] for k in keys] if keys == list(range(len(names))) else None
    if not (isinstance(names, (list, tuple)) and names and all(isinstance(n, str) and n.strip() for n in names)
            and len(set(names)) == len(names)):
        raise VcmError(f"{source} stores class names that are not a list of distinct names")
    normalised = tuple(n.strip().replace(" ", "_") for n in names)
    return tuple(COCO80) if normalised == tuple(COCO80) else tuple(n.strip() for n in names)


class YoloV7Detector:
    name = "yolov7"

    def __init__(self, weights=None, repo=None, device="cpu", batch: int = 8, half: bool = False,
                 settings: YoloV7Settings = YoloV7Settings()):
        self.device = torch.device(device)
        self.weights = find_weights(weights)
        self.model = load_model(weights, repo, self.device)
        self.classes = class_names(self.model, self.weights.name)
        self.half = half and self.device.type == "cuda"
        if self.half:
            self.model = self.model.half()
        self.batch = batch
        self.s = settings

    def settings(self) -> dict:
        return {"name": self.name, "weights": str(self.weights), "classes": "coco80" if self.classes == tuple(COCO80) else list(self.classes), "half": self.half, "letterbox_stride": STRIDE,
                "pad_value": PAD_VALUE, "nms": "multi-label, torchvision batched_nms", **asdict(self.s)}

    @torch.no_grad()
    def detect(self, frames_u8: np.ndarray, source_frames: list[int]) -> list[Detections]:
        _, _, h, w = frames_u8.shape
        out = []
        for i in range(0, len(frames_u8), self.batch):
            x, gain, pad = preprocess(frames_u8[i:i + self.batch], self.s.img_size)
            x = x.to(self.device, torch.float16 if self.half else torch.float32)
            with warnings.catch_warnings():  # the repo's Detect head calls torch.meshgrid without indexing=
                warnings.filterwarnings("ignore", message=r"torch\.meshgrid", category=UserWarning)
                pred = self.model(x)
            pred = pred[0] if isinstance(pred, (tuple, list)) else pred
            if pred.shape[-1] != 5 + len(self.classes):
                raise VcmError(f"{self.weights.name} predicts {pred.shape[-1] - 5} classes but names {len(self.classes)}")
            out += [to_frame(nms_multilabel(p.float(), self.s), gain, pad, h, w) for p in pred]
        return out


def local_weights() -> dict | None:
    """A ``yolov7`` section when its weights and repo are on this machine (``$VCM_YOLOV7_WEIGHTS`` or
    torch.hub's cache, and a local copy of the repo), else None: the demo's first choice."""
    weights, repo = find_weights(None), find_repo(None)
    return {"name": "yolov7", "weights": str(weights), "repo": str(repo)} if weights and repo else None


def settings_of(options: dict | None) -> YoloV7Settings:
    """``options`` (``--set`` or a CTC config's ``settings``) applied to YOLOv7's settings, checked."""
    settings = apply_options(YoloV7Settings(), options, "yolov7")
    if settings.img_size < STRIDE:
        raise VcmError(f"yolov7 img_size must be at least {STRIDE}")
    return settings


@register_detector("yolov7", "YOLOv7 (WongKinYiu/yolov7), evaluated as its test.py; the checkpoint's classes (COCO-80 "
                   "for the published weights)", local=local_weights, preference=0, settings_of=settings_of, repo=True,
                   half=True)
def create(weights=None, repo=None, device="cpu", batch=8, half=False, options=None) -> YoloV7Detector:
    return YoloV7Detector(weights=weights, repo=repo, device=device, batch=batch, half=half,
                          settings=settings_of(options))
