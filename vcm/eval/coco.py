"""COCO bbox mAP with pycocotools, per sequence or pooled over several (class-level mAP).

Pooling follows the VCM CTC: the detections of all sequences of a class are evaluated together,
with image ids offset per sequence so that they never collide.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from vcm.detectors.classes import COCO80, Detections
from vcm.eval.gt import GroundTruth


@dataclass
class ScoredClip:
    """Ground truth, the source frames evaluated, and one Detections per frame."""

    gt: GroundTruth
    frames: list[int]
    detections: list[Detections]


def to_coco(clips: list[ScoredClip]) -> tuple[dict, list[dict]]:
    """(ground-truth dataset, results list) with image ids offset per clip."""
    images, anns, results = [], [], []
    image_id = 0
    for clip in clips:
        for frame, det in zip(clip.frames, clip.detections):
            images.append({"id": image_id, "width": clip.gt.width, "height": clip.gt.height,
                           "file_name": f"{clip.gt.sequence}_{frame:05d}", "sequence": clip.gt.sequence, "frame": frame})
            for b in clip.gt.frames.get(frame, []):
                anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": b.category,
                             "bbox": [b.x, b.y, b.w, b.h], "area": b.area if b.area is not None else b.w * b.h,
                             "iscrowd": b.iscrowd})
            for (x1, y1, x2, y2), s, c in zip(det.boxes.tolist(), det.scores.tolist(), det.classes.tolist()):
                results.append({"image_id": image_id, "category_id": int(c),
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(s)})
            image_id += 1
    classes = clips[0].gt.classes if clips else tuple(COCO80)
    if any(c.gt.classes != classes for c in clips):
        raise ValueError("clips pooled into one mAP must share one set of classes")
    cats = [{"id": i, "name": n} for i, n in enumerate(classes)]
    return {"images": images, "annotations": anns, "categories": cats}, results


def evaluate(clips: list[ScoredClip]) -> dict:
    """mAP@[.5:.95] and AP50 in %, per-category AP in %, counts. None where there is nothing to score."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, results = to_coco(clips)
    out = {"images": len(dataset["images"]), "objects": len(dataset["annotations"]), "detections": len(results),
           "map": None, "ap50": None, "per_category": {}}
    if not dataset["annotations"]:
        return out
    if not results:
        out.update(map=0.0, ap50=0.0)
        return out
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out["map"] = float(ev.stats[0]) * 100
    out["ap50"] = float(ev.stats[1]) * 100
    precision = ev.eval["precision"]  # [T IoU, R recall, K cats, A areas, M maxDets]
    for k, cat in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        if (p > -1).any():
            out["per_category"][dataset["categories"][cat]["name"]] = float(p[p > -1].mean()) * 100
    return out


def results_json(clip: ScoredClip, first_image_id: int = 0) -> list[dict]:
    """COCO results list of one clip, image ids = position in the clip (+ first_image_id)."""
    rows = []
    for i, det in enumerate(clip.detections):
        for (x1, y1, x2, y2), s, c in zip(det.boxes.tolist(), det.scores.tolist(), det.classes.tolist()):
            rows.append({"image_id": first_image_id + i, "source_frame": clip.frames[i], "category_id": int(c),
                         "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                         "score": round(float(s), 5)})
    return rows
