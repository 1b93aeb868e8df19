"""Class-level mAP pooled over a class's sequences (eval/pooled.py), as the CTC report shows it."""

from __future__ import annotations

import json
import re

import pytest

from vcm import sequences
from vcm.ctc.tables import curves_by_sequence
from vcm.eval.gt import Box, GroundTruth, to_coco_json
from vcm.eval.pooled import class_curves, poolable

CLASS_D = ("BasketballPass", "BQSquare")


def write_point(folder, seq: str, gt: GroundTruth, point: int, kbps: float, found: bool) -> dict:
    """A finished CTC row of ``seq`` whose detections are the ground truth (``found``) or nothing."""
    dets = [{"source_frame": f, "bbox": [b.x, b.y, b.w, b.h], "score": 0.9, "category_id": b.category}
            for f, boxes in gt.frames.items() for b in boxes] if found else []
    path = folder / f"{seq}_{point}.json"
    path.write_text(json.dumps(dets))
    frames = sorted(gt.frames)
    return {"sequence": seq, "class": "D", "codec": "x", "curve": "x", "kbps": kbps, "detections": str(path),
            "source_frames": [frames[0], frames[-1] + 1], "ground_truth": {"kind": "sfu-hw"}}


def test_points_of_the_same_rank_pool_over_the_class(tmp_path):
    rows = []
    for i, name in enumerate(CLASS_D):
        seq = sequences.lookup(name)
        first = seq.ctc_first
        gt = GroundTruth(name, 416, 240, {first: [Box(10, 10, 40, 30, 0)], first + 1: [Box(50 + i, 60, 30, 30, 2)]})
        (tmp_path / seq.annotations).write_text(json.dumps(to_coco_json(gt, first)))
        rows += [write_point(tmp_path, name, gt, 0, 10.0 + i, found=False),
                 write_point(tmp_path, name, gt, 1, 30.0 + i, found=(i == 0))]  # the second sequence finds nothing
    rows.append({**rows[0], "ground_truth": {"kind": "pseudo"}})  # scored against pseudo ground truth: not pooled
    assert [poolable(r) for r in rows] == [True] * 4 + [False]
    pooled = class_curves(curves_by_sequence([r for r in rows if poolable(r)]), tmp_path)
    low, high = pooled["D"]["x"]
    assert low["kbps"] == pytest.approx(10.5) and high["kbps"] == pytest.approx(30.5)
    assert low["map"] == pytest.approx(0.0)
    # Half of the class's objects found, each exactly: pooled AP is 50 on both classes present.
    assert high["map"] == pytest.approx(50.0, abs=0.5) and high["ap50"] == pytest.approx(50.0, abs=0.5)


def test_a_results_folder_moved_off_its_machine_still_pools_and_an_edited_detections_file_is_one_line(tmp_path):
    """A row records its detections' absolute path; a folder copied elsewhere pooled nothing but a
    FileNotFoundError, and an edited detections.json a KeyError."""
    from vcm.ctc.tables import collect
    from vcm.errors import VcmError

    out = tmp_path / "moved"
    for i, name in enumerate(CLASS_D):
        seq = sequences.lookup(name)
        gt = GroundTruth(name, 416, 240, {seq.ctc_first: [Box(10, 10, 40, 30, 0)]})
        (tmp_path / seq.annotations).write_text(json.dumps(to_coco_json(gt, seq.ctc_first)))
        folder = out / "points" / name / "x" / "p0"
        folder.mkdir(parents=True)
        row = write_point(folder, name, gt, 0, 10.0 + i, found=True)
        (folder / f"{name}_0.json").rename(folder / "detections.json")
        row.update(status="ok", point="p0", fps=50.0, frames=1, bytes=100, bpp=0.01, psnr=30.0, psnr_y=31.0,
                   ms_ssim=None, map=100.0, ap50=100.0, encode_seconds=1.0, decode_seconds=1.0, width=416, height=240,
                   detections=f"/machine/that/ran/it/points/{name}/x/p0/detections.json",
                   ground_truth={"kind": "sfu-hw", "source": "SFU-HW ground truth"})
        (folder / "result.json").write_text(json.dumps(row))
    rows, failed, _ = collect(out)
    assert not failed and all(r["detections"].startswith(str(out)) for r in rows)
    pooled = class_curves(curves_by_sequence(rows), tmp_path)
    assert pooled["D"]["x"][0]["map"] == pytest.approx(100.0)
    from vcm.ctc.report import make_report

    # vcm ctc report --annotations: the folder pooled from (a missing one refused in one line)
    assert make_report(out, anchor="x", annotations=tmp_path)["points"] == 2
    with pytest.raises(VcmError, match="^--annotations .*elsewhere does not exist"):
        make_report(out, anchor="x", annotations=tmp_path / "elsewhere")
    (out / "points" / CLASS_D[1] / "x" / "p0" / "detections.json").write_text(json.dumps([{"bbox": [1, 2, 3, 4]}]))
    with pytest.raises(VcmError, match=re.escape(f"(the detections of {CLASS_D[1]} x p0) is not a list of detections")):
        class_curves(curves_by_sequence(collect(out)[0]), tmp_path)
