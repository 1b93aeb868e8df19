import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ANNOTATIONS, fails_after, run_main
from vcm import sequences
from vcm.errors import VcmError
from vcm.eval.coco import Detections, ScoredClip, evaluate
from vcm.eval.detect import OracleDetector
from vcm.eval.gt import Box, GroundTruth, load_coco_json, load_yolo_labels, to_coco_json
from vcm.eval.run import decode_any, score
from vcm.video.yuv import frame_bytes

REAL_JSONS = sorted(ANNOTATIONS.glob("*_val.json")) if ANNOTATIONS.is_dir() else []


def oracle_clip(gt: GroundTruth) -> ScoredClip:
    frames = sorted(gt.frames)
    return ScoredClip(gt, frames, OracleDetector(gt).detect(None, frames))


@pytest.mark.skipif(not REAL_JSONS, reason="shared SFU-HW annotations are not present")
def test_real_ground_truth_as_detections_scores_100():
    by_class = {"C": [], "D": []}
    assert len(REAL_JSONS) == 8
    for path in REAL_JSONS:
        gt = load_coco_json(path)
        seq = sequences.lookup(gt.sequence)
        assert sorted(gt.frames) == list(range(seq.ctc_first, seq.ctc_last + 1))
        r = evaluate([oracle_clip(gt)])
        assert r["map"] == pytest.approx(100.0) and r["ap50"] == pytest.approx(100.0), path.name
        by_class[seq.seq_class].append(oracle_clip(gt))
    for clips in by_class.values():
        pooled = evaluate(clips)  # image ids offset per sequence
        assert pooled["map"] == pytest.approx(100.0) and pooled["images"] == sum(len(c.frames) for c in clips)


def tiny_gt() -> GroundTruth:
    return GroundTruth("BQSquare", 416, 240, {471: [Box(10, 10, 20, 20, 0)], 472: []})


def dets(*rows) -> Detections:
    a = np.array(rows, np.float32).reshape(-1, 6)
    return Detections(a[:, :4], a[:, 4], a[:, 5].astype(np.int64))


def test_hand_computed_ap():
    gt = tiny_gt()
    # A false positive scored above the true positive: precision 0.5 at recall 1 → AP 50.
    r = evaluate([ScoredClip(gt, [471, 472], [dets([10, 10, 30, 30, 0.9, 0], [200, 100, 220, 120, 0.95, 0]), dets()])])
    assert r["map"] == pytest.approx(50.0, abs=0.01) and r["ap50"] == pytest.approx(50.0, abs=0.01)
    # IoU 0.6 (x shifted by 5 px: 15·20 / (2·400 − 300)): a hit at IoU .50, .55, .60 only → 3/10.
    r = evaluate([ScoredClip(gt, [471, 472], [dets([15, 10, 35, 30, 0.9, 0]), dets()])])
    assert r["ap50"] == pytest.approx(100.0) and r["map"] == pytest.approx(30.0, abs=0.01)
    # Wrong class: nothing found. A class absent from the ground truth is not scored.
    r = evaluate([ScoredClip(gt, [471, 472], [dets([10, 10, 30, 30, 0.9, 2]), dets()])])
    assert r["map"] == pytest.approx(0.0) and "car" not in r["per_category"]
    assert evaluate([ScoredClip(gt, [471, 472], [dets(), dets()])])["map"] == 0.0


class IndexCheckingDetector(OracleDetector):
    """Frames carry their source index in their pixels; fail if a frame is paired with the wrong index."""

    def detect(self, frames_u8, source_frames):
        for frame, idx in zip(frames_u8, source_frames):
            assert abs(float(frame.mean()) - (idx % 200 + 20)) < 2, (float(frame.mean()), idx)
        return super().detect(frames_u8, source_frames)


def write_indexed_yuv(path: Path, first: int, count: int, w=416, h=240):
    per = frame_bytes(w, h, 8)
    with open(path, "wb") as f:
        for i in range(first, first + count):
            y = np.full(w * h, 0, np.uint8)
            # a grey frame whose RGB value is i % 200 + 20 (luma in limited range, neutral chroma)
            y[:] = round(16 + 219 * (i % 200 + 20) / 255)
            f.write(y.tobytes() + np.full(per - w * h, 128, np.uint8).tobytes())


@pytest.mark.parametrize("kind", ["ctc_clip", "full", "sub_range"])
def test_frame_index_mapping(tmp_path, kind):
    seq = sequences.lookup("RaceHorsesD")
    gt = GroundTruth(seq.name, seq.width, seq.height,
                     {f: [Box(f % 50, 10, 30, 40, 0)] for f in range(seq.ctc_first, seq.ctc_last + 1)})
    if kind == "ctc_clip":
        path = tmp_path / "RaceHorsesD.yuv"
        write_indexed_yuv(path, seq.ctc_first, seq.ctc_count)
        decoded, expect = decode_any(path, "cpu"), [235, 300]
    elif kind == "full":
        path = tmp_path / "RaceHorses_416x240_30.yuv"
        write_indexed_yuv(path, 0, seq.frames)
        decoded, expect = decode_any(path, "cpu", "all"), [235, 300]  # only frames with ground truth count
    else:
        path = tmp_path / "RaceHorses_416x240_30.yuv"
        write_indexed_yuv(path, 0, seq.frames)
        decoded, expect = decode_any(path, "cpu", "250:260"), [250, 260]
    clip, scores = score(decoded, gt, IndexCheckingDetector(gt))
    assert scores["source_frames"] == expect and scores["map"] == pytest.approx(100.0)
    with pytest.raises(VcmError, match="no ground truth|outside"):
        score(decode_any(tmp_path / path.name, "cpu", "0:10"), gt, IndexCheckingDetector(gt))


def test_annotations_that_do_not_fit_the_video_say_what_would(tmp_path):
    from vcm.eval.gt import find_annotations

    with pytest.raises(VcmError, match="--annotations .*nowhere does not exist"):  # was blamed on the sequence
        find_annotations("BQMall", tmp_path / "nowhere")
    with pytest.raises(VcmError, match="not an SFU-HW class C/D sequence.*--annotations gt.json"):
        find_annotations("carphone", tmp_path)


def test_annotations_are_found_in_folders_below_the_one_named(tmp_path, monkeypatch):
    """--annotations DIR (and VCM_ANNOTATIONS) found a sequence's CTC JSON only in DIR itself: a dataset kept as one
    folder per sequence (SEQ_val/annotations/SEQ_val.json) was "ground truth … not found"."""
    from vcm.eval.gt import find_annotations

    monkeypatch.delenv("VCM_ANNOTATIONS", raising=False)
    json_path = tmp_path / "BQMall_832x480_60_val" / "annotations" / "BQMall_832x480_60_val.json"
    json_path.parent.mkdir(parents=True)
    json_path.write_text("{}")
    assert find_annotations("BQMall", tmp_path) == json_path
    monkeypatch.setenv("VCM_ANNOTATIONS", str(tmp_path))
    assert find_annotations("BQMall") == json_path
    with pytest.raises(VcmError, match=r"^ground truth BQSquare_416x240_60_val.json not found \(looked in .* and the "
                                       r"folders 2 levels below each\)"):
        find_annotations("BQSquare", tmp_path)


def test_txt_labels_convert_to_ctc_json(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "BQSquare_416x240_60_seq_471.txt").write_text("0 0.5 0.5 0.25 0.5\n56 0.1 0.2 0.1 0.1\n")
    (labels / "BQSquare_416x240_60_seq_473.txt").write_text("2 0.5 0.5 0.5 0.5\n")
    gt = load_yolo_labels(labels, "BQSquare", range(471, 474))
    b = gt.frames[471][0]
    assert (b.x, b.y, b.w, b.h, b.category) == pytest.approx((156.0, 60.0, 104.0, 120.0, 0))
    assert gt.frames[472] == []
    proc = run_main("gt", "convert", labels, "--sequence", "BQSquare", "--frames", "471:474", "--out", tmp_path / "gt.json")
    assert proc.returncode == 0, proc.stderr
    # frame 472 has no file: it is written as a frame without objects, and the summary says so (it was silent, and
    # --frames all on a folder holding part of the labels wrote hundreds of empty frames without a word)
    table = " ".join(proc.stdout.replace("│", " ").split())  # the table's cells, wrapped lines joined
    assert "2 of the 3 frames (the other 1 count as frames without objects)" in table, proc.stdout
    data = json.loads((tmp_path / "gt.json").read_text())
    assert [im["file_name"] for im in data["images"]] == [f"BQSquare_416x240_60_val_00{i}.png" for i in range(3)]
    again = load_coco_json(tmp_path / "gt.json", "BQSquare")
    assert sorted(again.frames) == [471, 472, 473] and len(again.frames[471]) == 2
    # never over a file of another kind (--out clip.yuv replaced the video), never an empty range (5:3 was written)
    (tmp_path / "clip.yuv").write_bytes(b"video")
    for frames, out, message in (("471:474", tmp_path / "clip.yuv", "must end in .json"),
                                 ("474:471", tmp_path / "e.json", "not a range within"),
                                 ("471:99999", tmp_path / "e.json", "not a range within")):
        proc = run_main("gt", "convert", labels, "--sequence", "BQSquare", "--frames", frames, "--out", out)
        assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "clip.yuv").read_bytes() == b"video" and not (tmp_path / "e.json").exists()
    # an existing ground truth (the official one has the same layout) is replaced only when asked
    (tmp_path / "gt.json").write_text('{"official": 1}')
    proc = run_main("gt", "convert", labels, "--sequence", "BQSquare", "--frames", "471:474", "--out", tmp_path / "gt.json")
    assert proc.returncode == 1 and "exists; pass --overwrite to replace it" in proc.stderr
    assert (tmp_path / "gt.json").read_text() == '{"official": 1}'
    proc = run_main("gt", "convert", labels, "--sequence", "BQSquare", "--frames", "471:474", "--out", tmp_path / "gt.json",
                    "--overwrite")
    assert proc.returncode == 0 and json.loads((tmp_path / "gt.json").read_text())["images"], proc.stderr



@pytest.mark.parametrize("line, message", [
    ("85 0.5 0.5 0.2 0.2", "class 85 is not a COCO-80 index"),  # was a traceback
    ("-1 0.5 0.5 0.2 0.2", "class -1 is not a COCO-80 index"),  # was written as a toothbrush
    ("0 0.5 0.5 0.2 0.2 0.9", "expected 'class cx cy w h'"),  # a detector's output, not labels
    ("0 nan 0.5 0.2 0.2", "is not made of finite numbers"),
    ("1_0 0.5 0.5 0.2 0.2", "expected 'class cx cy w h'"),  # was read as class 10
    ("\uff11 0.5 0.5 0.2 0.2", "expected 'class cx cy w h'"),  # a full-width 1, was read as class 1
    ("0 0.5 0.5 0_2 0.2", "expected 'class cx cy w h'"),  # was a box 2 frames wide
    ("0 0.5 0.5 0 0.2", "needs a width and height above 0"),
    ("0 1.5 0.5 0.2 0.2", "lies wholly outside the 416x240 frame"),
])
def test_sfu_hw_labels_no_detector_could_match_are_one_clear_line(tmp_path, line, message):
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "BQSquare_416x240_60_seq_471.txt").write_text("0 0.5 0.5 0.25 0.5\n" + line + "\n")
    proc = run_main("gt", "convert", labels, "--sequence", "BQSquare", "--frames", "471:472", "--out", tmp_path / "gt.json")
    assert proc.returncode == 1 and "seq_471.txt:2: " in proc.stderr and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "gt.json").exists()


def test_labels_and_annotations_saved_by_a_windows_editor_are_read(tmp_path):
    """A byte-order mark (Notepad's UTF-8) refused a label file ("expected 'class cx cy w h', got '\\ufeff0 0.5 …'")
    and a COCO JSON ("gt.json is not JSON"), and made the SFU-HW check take such a JSON for another one."""
    from vcm.eval.run import _is_sfu_json

    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "BQSquare_416x240_60_seq_471.txt").write_bytes(b"\xef\xbb\xbf0 0.5 0.5 0.25 0.5\r\n2 0.5 0.5 0.5 0.5\r\n")
    gt = load_yolo_labels(labels, "BQSquare", range(471, 472))
    assert [b.category for b in gt.frames[471]] == [0, 2]
    proc = run_main("gt", "convert", labels, "--sequence", "BQSquare", "--frames", "471:472", "--out",
                    tmp_path / "gt.json")
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "gt.json").read_bytes())
    assert sorted(load_coco_json(tmp_path / "bom.json", "BQSquare").frames) == [471]
    assert _is_sfu_json(tmp_path / "bom.json") and _is_sfu_json(tmp_path / "gt.json")


def test_a_label_file_that_is_not_text_or_not_a_file_is_one_line(tmp_path):
    """A label that is not UTF-8 was a UnicodeDecodeError, a folder named like a label file an IsADirectoryError."""
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "BQSquare_416x240_60_seq_471.txt").write_bytes(b"\xff\xfe0 0.5 0.5 0.1 0.1\n")
    args = ("gt", "convert", labels, "--sequence", "BQSquare", "--frames", "471:473", "--out", tmp_path / "gt.json")
    proc = run_main(*args)
    assert proc.returncode == 1 and "seq_471.txt: not a text file of labels" in proc.stderr, proc.stderr
    (labels / "BQSquare_416x240_60_seq_471.txt").write_text("0 0.5 0.5 0.25 0.5\n")
    (labels / "BQSquare_416x240_60_seq_472.txt").mkdir()  # not a label file: frame 472 has none
    proc = run_main(*args)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads((tmp_path / "gt.json").read_text())["annotations"]) == 1
    # a named pipe named like a label file, and two files of one frame, were skipped or dropped without a word: the
    # frame's objects lost
    os.mkfifo(labels / "BQSquare_416x240_60_seq_0472.txt")
    with fails_after(30, "a label file that is a pipe was waited on"):
        proc = run_main(*args, "--overwrite")
    assert proc.returncode == 1 and "seq_0472.txt is not a regular file" in proc.stderr, proc.stderr
    (labels / "BQSquare_416x240_60_seq_0472.txt").unlink()
    (labels / "BQSquare_416x240_60_seq_0471.txt").write_text("2 0.5 0.5 0.25 0.5\n")
    proc = run_main(*args, "--overwrite")
    both = "seq_0471.txt and BQSquare_416x240_60_seq_471.txt both hold the labels of frame 471"
    assert proc.returncode == 1 and both in proc.stderr, proc.stderr


def test_a_ctc_json_with_an_unusable_box_is_one_clear_line(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "BQSquare_416x240_60_seq_471.txt").write_text("0 0.5 0.5 0.25 0.5\n")
    assert run_main("gt", "convert", tmp_path / "labels", "--sequence", "BQSquare", "--frames", "471:472",
                    "--out", tmp_path / "gt.json").returncode == 0
    good = json.loads((tmp_path / "gt.json").read_text())
    for edit, message in ((lambda d: d["annotations"][0].update(bbox=[float("nan"), 0, 4, 4]), "is not made of finite numbers"),
                          (lambda d: d["annotations"][0].pop("bbox"), "needs image_id, an [x, y, w, h] bbox and category_id"),
                          (lambda d: d["annotations"][0].update(iscrowd=float("inf")), "needs image_id"),
                          (lambda d: d["images"][0].update(id=[0]), "has the id [0]; an id is a number or a string"),
                          (lambda d: d["images"].append(3), "every image must be an object with a numeric id"),
                          (lambda d: d["images"][0].update(width="wide"), "is widex240; BQSquare is 416x240")):
        data = json.loads(json.dumps(good))
        edit(data)
        (tmp_path / "bad.json").write_text(json.dumps(data))
        with pytest.raises(VcmError, match=re.escape(message)):
            load_coco_json(tmp_path / "bad.json", "BQSquare")


FAKE_YOLO = '''
import torch
from torch import nn
from utils.general import helper


class Model(nn.Module):
    """Stands in for YOLOv7: one box per image at a fixed place of the letterboxed input."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def fuse(self):
        return self

    def forward(self, x):
        b = x.shape[0]
        pred = torch.zeros(b, 2, 85)
        pred[:, 0, :4] = torch.tensor([320.0, 208.0, 100.0, 60.0]) * self.w
        pred[:, 0, 4] = 0.9
        pred[:, 0, 5] = helper()  # class 0 (person) probability
        return pred, None
'''


CUSTOM_YOLO = FAKE_YOLO.replace("class Model(nn.Module):", """class Model(nn.Module):
    names = ["cone", "drone", "buoy"]  # as YOLOv7's train.py stores a custom data set's classes
""").replace("torch.zeros(b, 2, 85)", "torch.zeros(b, 2, 8)").replace("pred[:, 0, 5] = helper()", "pred[:, 0, 6] = helper()")


@pytest.fixture(scope="module")
def fake_hub(tmp_path_factory):
    repo = tmp_path_factory.mktemp("yolov7")
    (repo / "models").mkdir()
    (repo / "utils").mkdir()
    (repo / "models" / "__init__.py").write_text("")
    (repo / "models" / "yolo.py").write_text(FAKE_YOLO)
    (repo / "utils" / "__init__.py").write_text("")
    (repo / "utils" / "general.py").write_text(textwrap.dedent('''
        def helper():
            return 0.8

        def check_requirements(*args, **kwargs):
            raise AssertionError("vcm must never run YOLOv7's requirement check")
    '''))
    (repo / "hubconf.py").write_text("raise AssertionError('vcm must never import hubconf.py')\n")
    subprocess.run([sys.executable, "-c", "import torch; from models.yolo import Model; "
                    "torch.save({'model': Model(), 'epoch': -1}, 'yolov7.pt')"], cwd=repo, check=True)
    return repo


def test_loader_keeps_sys_modules_clean(fake_hub):
    import types

    from vcm.detectors.yolov7 import load_model

    mine = types.ModuleType("utils")
    sys.modules["utils"] = mine
    try:
        model = load_model(fake_hub / "yolov7.pt", fake_hub, "cpu")
        assert sys.modules["utils"] is mine and "models" not in sys.modules and "models.yolo" not in sys.modules
        assert "utils.general" not in sys.modules and str(fake_hub) not in sys.path
        pred, _ = model(__import__("torch").zeros(1, 3, 64, 64))  # still works once the repo is gone
        assert pred.shape == (1, 2, 85)
    finally:
        del sys.modules["utils"]
    with pytest.raises(VcmError, match=r"yolov7\.pt from https://github\.com/WongKinYiu/yolov7/releases"):
        load_model(fake_hub / "missing.pt", fake_hub, "cpu")


def test_yolov7_trained_on_custom_classes_is_scored_in_their_names(tmp_path, fake_hub):
    """A checkpoint whose model carries three class names of its own (and predicts 5 + 3 values per
    box) is scored against a COCO JSON that uses those names."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "yolo.py").write_text(CUSTOM_YOLO)
    for f in ("models/__init__.py", "utils/__init__.py", "utils/general.py"):
        (tmp_path / f).parent.mkdir(exist_ok=True)
        (tmp_path / f).write_text((fake_hub / f).read_text())
    subprocess.run([sys.executable, "-c", "import torch; from models.yolo import Model; "
                    "torch.save({'model': Model(), 'epoch': -1}, 'custom.pt')"], cwd=tmp_path, check=True)
    clip = tmp_path / "Pier_416x240_30.yuv"
    write_indexed_yuv(clip, 0, 4)
    # where the stand-in's box lands on a 416×240 frame (letterboxed to 640×384)
    box = [165.2, 100.5, 65.0, 39.0]
    coco = {"images": [{"id": i + 1, "file_name": f"f{i}.png", "frame_index": i, "width": 416, "height": 240}
                       for i in range(4)],
            "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 2, "bbox": box, "area": box[2] * box[3],
                             "iscrowd": 0} for i in range(4)],
            "categories": [{"id": 1, "name": "cone"}, {"id": 2, "name": "drone"}, {"id": 3, "name": "buoy"}]}
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    proc = run_main("eval", clip, "--annotations", tmp_path / "gt.json", "--weights", tmp_path / "custom.pt",
                    "--yolov7-repo", tmp_path, "--out", tmp_path / "out", "--json", "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)
    assert scores["detector_settings"]["classes"] == ["cone", "drone", "buoy"]
    assert scores["frames"] == 4 and scores["detections"] == 4 and scores["ap50"] == pytest.approx(100.0)
    dets = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert {d["category_id"] for d in dets} == {1}  # "drone", the checkpoint's class 1
    coco_weights = run_main("eval", clip, "--annotations", tmp_path / "gt.json", "--weights", fake_hub / "yolov7.pt",
                            "--yolov7-repo", fake_hub, "--out", tmp_path / "out2", "--json", cwd=tmp_path)
    assert coco_weights.returncode == 1 and "drone" in coco_weights.stderr  # a COCO-80 detector cannot score them


def test_letterbox_round_trip():
    import torch

    from vcm.detectors.yolov7 import letterbox_shape, preprocess, to_frame

    frames = np.zeros((1, 3, 480, 832), np.uint8)
    x, gain, pad = preprocess(frames)
    (rh, rw), (ph, pw) = letterbox_shape(480, 832)
    assert x.shape == (1, 3, ph, pw) and ph % 32 == 0 and pw % 32 == 0 and (rh, rw) == (369, 640)
    assert float(x[0, 0, 0, 0]) == pytest.approx(114 / 255)  # padding
    box = torch.tensor([[pad[0] + 100 * gain, pad[1] + 50 * gain, pad[0] + 300 * gain, pad[1] + 200 * gain, 0.9, 0.0]])
    d = to_frame(box, gain, pad, 480, 832)
    assert np.allclose(d.boxes[0], [100, 50, 300, 200], atol=1e-3)


def test_vcm_eval_end_to_end_with_fake_hub(tmp_path, fake_hub):
    seq = sequences.lookup("RaceHorsesD")
    gt = GroundTruth(seq.name, seq.width, seq.height,
                     {f: [Box(150, 85, 120, 70, 0)] for f in range(seq.ctc_first, seq.ctc_last + 1)})
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / seq.annotations).write_text(json.dumps(to_coco_json(gt, seq.ctc_first)))
    clip = tmp_path / "RaceHorsesD.yuv"
    write_indexed_yuv(clip, seq.ctc_first, seq.ctc_count)
    proc = run_main("eval", clip, "--frames", "240:250", "--annotations", tmp_path / "ann", "--weights",
                    fake_hub / "yolov7.pt", "--yolov7-repo", fake_hub, "--out", tmp_path / "out", "--json",
                    "--device", "cpu", "--half", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--half: fp16 runs on CUDA only; yolov7 detects in fp32 on cpu" in proc.stderr  # it was ignored unseen
    scores = json.loads(proc.stdout)
    assert scores["frames"] == 10 and scores["detections"] == 10 and scores["detector"] == "yolov7"
    assert 0.0 <= scores["map"] <= 100.0 and scores["ap50"] is not None
    dets = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert len(dets) == 10 and dets[0]["source_frame"] == 240 and dets[0]["category_id"] == 0
    missing = run_main("eval", clip, "--annotations", tmp_path / "ann", "--weights", tmp_path / "nope.pt",
                       "--yolov7-repo", fake_hub, cwd=tmp_path)
    assert missing.returncode == 1 and "releases/download" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--reference", "original", "--category-map", "person=person"], "--category-map does not apply to --reference original"),
    (["--reference", "original", "--frame-mapping", "order"], "--frame-mapping does not apply to --reference original"),
    (["--reference", "annotations", "--original", "x.mp4"], "--original does not apply to --reference annotations"),
    (["--reference", "annotations", "--reference-score", "0.3"], "--reference-score does not apply to --reference annotations"),
])
def test_eval_refuses_options_of_the_other_reference(tmp_path, carphone, args, message):
    """Options for annotations were ignored under pseudo ground truth, and the other way round, without a word
    (a mistyped --category-map was taken as well)."""

    proc = run_main("eval", carphone, "--detector", "opencv-face", "--out", tmp_path / "e", *args)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-500:]
    assert not (tmp_path / "e").exists()
