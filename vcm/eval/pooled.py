"""Class-level mAP pooled over the sequences of an SFU-HW class (the CTC reports classes C and D this
way): the detections each point wrote are scored again, together, against the ground truth."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from vcm.eval.coco import Detections, ScoredClip, evaluate
from vcm.eval.gt import load_ground_truth


def poolable(row: dict) -> bool:
    """Whether a result row takes part in pooling: it has a class and detections scored against SFU-HW's
    ground truth (pooling reloads that ground truth; points scored against pseudo ground truth do not pool)."""
    return bool(row.get("class") and row.get("detections")
                and (row.get("ground_truth") or {}).get("kind", "sfu-hw") == "sfu-hw")


def class_curves(curves: dict, annotations: Path | None) -> dict:
    """Pooled class-level mAP per (class, curve, k-th rate point) → {class: {curve: [{kbps, map, ap50}]}},
    from ``curves`` = {sequence: {curve: [poolable rows sorted by rate]}}: the detections of the k-th
    point of every sequence of a class are scored together, as the CTC's class figures are."""
    out = defaultdict(dict)
    classes = defaultdict(list)
    for seq, codecs in curves.items():
        classes[next(iter(codecs.values()))[0]["class"]].append(seq)
    gts = {}
    for cls, seqs in classes.items():
        codecs = set.intersection(*(set(curves[s]) for s in seqs))
        for codec in codecs:
            n = {len(curves[s][codec]) for s in seqs}
            if len(n) != 1:
                continue  # different numbers of points: no pooling by rank
            points = []
            for k in range(n.pop()):
                clips, kbps = [], []
                for s in seqs:
                    r = curves[s][codec][k]
                    gt = gts.setdefault(s, load_ground_truth(s, annotations or (Path(r["annotations"]) if r.get("annotations") else None)))
                    per = defaultdict(list)
                    for d in _read_detections(Path(r["detections"]), r):
                        per[d["source_frame"]].append(d)
                    frames = gt.covers(range(*r["source_frames"]))
                    clips.append(ScoredClip(gt, frames, [Detections(
                        np.array([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in per[f])], np.float32).reshape(-1, 4),
                        np.array([d["score"] for d in per[f]], np.float32), np.array([d["category_id"] for d in per[f]], np.int64))
                        for f in frames]))
                    kbps.append(r["kbps"])
                res = evaluate(clips)
                points.append({"kbps": float(np.mean(kbps)), "map": res["map"], "ap50": res["ap50"], "psnr": None})
            out[cls][codec] = points
    return out


def _read_detections(path: Path, row: dict) -> list[dict]:
    """A point's ``detections.json`` (as ``vcm eval`` writes it: objects with ``source_frame``, an ``[x, y, w, h]``
    ``bbox``, ``score`` and ``category_id``), checked: a missing or edited file is one line naming it."""
    from vcm.errors import VcmError
    from vcm.fsutil import path_problem
    from vcm.schema import finite_number

    where = " ".join(str(row.get(k, "?")) for k in ("sequence", "codec", "point"))
    why = path_problem(path)  # a named pipe was waited on for a writer forever
    if not why:
        try:
            dets = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            why = type(err).__name__
    if why:
        raise VcmError(f"the detections of {where} cannot be read for class pooling ({path}: {why}); "
                       f"put the point's detections.json back, or delete its result.json and run vcm ctc run again") \
            from None

    def sound(d) -> bool:
        return (isinstance(d, dict) and isinstance(d.get("source_frame"), int) and isinstance(d.get("bbox"), list)
                and len(d["bbox"]) == 4 and all(map(finite_number, d["bbox"] + [d.get("score")]))
                and isinstance(d.get("category_id"), int))

    if not isinstance(dets, list) or not all(map(sound, dets)):
        raise VcmError(f"{path} (the detections of {where}) is not a list of detections with source_frame, bbox, "
                       f"score and category_id; delete the point's result.json and run vcm ctc run again")
    return dets
