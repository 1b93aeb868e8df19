"""Edge masks without SAM's weights, for the SA-NeRV loss on any machine.

Two sources beside SAM's (``vcm.masks.make``), stored and cached exactly as SAM masks are
(``vcm.masks.store``; the file's ``source`` field names which made them):

- ``canny``: the paper's Canny step run on the frame's own luma instead of on SAM's label map —
  every intensity edge rather than object boundaries. Thresholds follow the frame: (0.66·m, 1.33·m)
  of its median luma m, clipped to [10, 250] (a common automatic choice), after a 3×3 Gaussian
  blur so that sensor noise does not become edges;
- ``boxes:DETECTOR``: the outlines (``fill: false``, 1-pixel rectangles) or interiors of a
  detector's boxes on each frame (any registered detector: e.g. ``boxes:opencv-face``, which ships
  with OpenCV) — the regions a machine task looks at.

Masks are ``bool [H,W]`` per frame; ``dilation`` widens edges by that many pixels as for SAM's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vcm import progress
from vcm.errors import VcmError
from vcm.masks.edges import dilate
from vcm.masks.store import save_masks
from vcm.video.color import rgb_to_gray
from vcm.video import Video

SOURCES = ("sam", "canny", "boxes:DETECTOR")


@dataclass(frozen=True)
class SourceSettings:
    dilation: int = 0
    fill: bool = False  # boxes: interiors instead of outlines
    score: float = 0.5  # boxes: detections with at least this score


def parse_source(source: str) -> tuple[str, str | None]:
    """``sam`` | ``canny`` | ``boxes:NAME`` → (kind, detector name or None)."""
    kind, _, detector = str(source).partition(":")
    if kind in ("sam", "canny") and not detector:
        return kind, None
    if kind == "boxes" and detector:
        return kind, detector
    raise VcmError(f"mask source {source!r} is unknown; valid: {', '.join(SOURCES)} (e.g. boxes:opencv-face)")


def canny_edges(frame_rgb: np.ndarray, dilation: int = 0) -> np.ndarray:
    """``uint8 [3,H,W]`` RGB → ``bool [H,W]``: Canny on the blurred luma, thresholds from its median."""
    import cv2

    luma = cv2.GaussianBlur(rgb_to_gray(frame_rgb), (3, 3), 0)
    m = float(np.median(luma))
    low, high = int(np.clip(0.66 * m, 10, 250)), int(np.clip(1.33 * m, 10, 250))
    return dilate(cv2.Canny(luma, low, max(high, low + 1)) > 0, dilation)


def box_mask(boxes_xyxy: np.ndarray, shape: tuple[int, int], fill: bool = False, dilation: int = 0) -> np.ndarray:
    """Boxes ``float [N,4]`` (x1, y1, x2, y2, pixels) → ``bool [H,W]`` outlines (or interiors)."""
    import cv2

    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    for x1, y1, x2, y2 in np.asarray(boxes_xyxy, np.float64).reshape(-1, 4):
        p1 = (int(np.clip(round(x1), 0, w - 1)), int(np.clip(round(y1), 0, h - 1)))
        p2 = (int(np.clip(round(x2) - 1, 0, w - 1)), int(np.clip(round(y2) - 1, 0, h - 1)))
        cv2.rectangle(mask, p1, p2, 1, -1 if fill else 1)
    return dilate(mask > 0, dilation)


def make_source_masks(video: Video, source: str, out: Path, settings: SourceSettings = SourceSettings(),
                      batch: int = 16, overwrite: bool = False, device="cpu") -> dict:
    """Make and save ``out`` (a vcm edge-mask file) from ``canny`` or ``boxes:DETECTOR``; a summary. A finished
    file made from the same frames, source and settings is reused as it is (``overwrite``: made again).
    ``device``: where the detector of ``boxes:DETECTOR`` runs (Canny runs on the CPU)."""
    import time

    from vcm.masks.store import check_mask_output, kept_masks, load_masks

    kind, detector_name = parse_source(source)
    if kind == "sam":
        raise VcmError("SAM masks are made by vcm masks --sam-checkpoint PATH")
    check_mask_output(out)
    start, masks = time.time(), []
    detector = None
    if kind == "boxes":
        from vcm.detectors.factory import create_detector

        detector = create_detector(detector_name, device=device)
    meta = {"source": source, "alpha": None, "sam_model": None, "settings": asdict(settings),
            "detector_settings": detector.settings() if detector is not None else None,
            "source_frames": [video.source_frames.start, video.source_frames.stop], "video": video.name,
            "video_fingerprint": video.fingerprint()}
    if kept_masks(Path(out), meta, overwrite):
        stack, _ = load_masks(Path(out))
        progress.log(f"{source} masks: {out} already holds them (same frames, source and settings); kept")
        return {"path": str(out), "source": source, "frames": video.num_frames, "edge_fraction": float(stack.mean()),
                "seconds": 0.0, "cached": True}
    with progress.progress(f"{source} masks", video.num_frames) as bar:
        for i in range(0, video.num_frames, batch):
            chunk = video.frames_u8[i:i + batch]
            if detector is None:
                masks += [canny_edges(f, settings.dilation) for f in chunk]
            else:
                for d in detector.detect(chunk, list(range(i, i + len(chunk)))):
                    keep = d.scores >= settings.score
                    masks.append(box_mask(d.boxes[keep], (video.height, video.width), settings.fill, settings.dilation))
            bar.advance(len(chunk))
    stack = np.stack(masks)
    save_masks(Path(out), stack, meta)
    return {"path": str(out), "source": source, "frames": video.num_frames, "edge_fraction": float(stack.mean()),
            "seconds": time.time() - start, "cached": False}


def default_path(video: Video, source: str, settings: SourceSettings, folder: Path) -> Path:
    a, b = video.source_frames.start, video.source_frames.stop
    tag = source.replace(":", "-") + (f"_d{settings.dilation}" if settings.dilation else "") + ("_fill" if settings.fill else "")
    return Path(folder) / f"{video.name}_{a}-{b}_{tag}.npz"
