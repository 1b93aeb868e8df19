"""vcm eval on any video: a user's COCO JSON, pseudo ground truth from the original, the detector registry."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli, run_main
from vcm.errors import VcmError

BLOB = Path(__file__).with_name("blob_detector.py")
COCO91_CAR = 3


def write_coco(path: Path, convention: str, frames=range(0, 12, 3), categories="names", category_ids=(1, COCO91_CAR)):
    """A COCO JSON for carphone (176x144): two objects on each listed frame, images named per ``convention``."""
    images, anns = [], []
    for k, f in enumerate(frames):
        image = {"id": 500 + k, "width": 176, "height": 144}
        if convention == "name0":
            image["file_name"] = f"clip_176x144_30_val_{f:03d}.png"
        elif convention == "name1":
            image["file_name"] = f"frame{f + 1:04d}.jpg"
        elif convention == "field":
            image.update(file_name=f"shot-{chr(97 + k)}.png", frame_index=f)
        else:  # order
            image["file_name"] = f"img_{chr(97 + k)}.png"
        images.append(image)
        for cat, box in zip(category_ids, ([20 + k, 30, 50, 60], [90, 40, 40, 30])):
            anns.append({"id": len(anns) + 1, "image_id": 500 + k, "category_id": cat, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
    data = {"images": images, "annotations": anns}
    if categories == "names":
        data["categories"] = [{"id": category_ids[0], "name": "person"}, {"id": category_ids[1], "name": "Motorbike"}]
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("convention, extra, expect", [
    ("name0", [], "counted from 0"),
    ("name1", [], "counted from 1"),
    ("field", [], "frame_index"),
    ("order", ["--frames", "3:7"], "in JSON order onto frames 3:7"),
])
def test_oracle_scores_100_on_a_coco_json_for_a_non_sfu_clip(tmp_path, convention, extra, expect):
    frames = range(3, 7) if convention == "order" else range(0, 12, 3)
    gt = write_coco(tmp_path / "gt.json", convention, frames)
    proc = run_main("eval", "sample:carphone", "--annotations", gt, "--detector", "oracle", *extra,
                    "--out", tmp_path / "out", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)
    assert scores["map"] == pytest.approx(100.0) and scores["objects"] == 8 and scores["frames"] == 4
    assert scores["ground_truth"]["kind"] == "annotations" and expect in scores["ground_truth"]["source"]
    assert scores["source_frames"] == [frames[0], frames[-1] + 1]
    dets = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert {d["source_frame"] for d in dets} == set(frames)  # each image scored on its own frame
    assert {d["category_id"] for d in dets} == {0, 3}  # person, motorcycle (COCO-80) from the names


def test_frame_and_category_mapping_rules(tmp_path):
    from vcm.eval.annotations import load_annotations
    from vcm.eval.gt import COCO80

    def load(path, **kw):
        return load_annotations(path, "clip", 176, 144, 120, tuple(COCO80), **kw)[0]

    gt = load(write_coco(tmp_path / "a.json", "name1", range(0, 12, 3), categories=None, category_ids=(1, 85)))
    assert sorted(gt.frames) == [0, 3, 6, 9] and {b.category for bs in gt.frames.values() for b in bs} == {0, 74}
    assert "COCO-91" in gt.source  # ids without names, one above 79: COCO-91 ids (85 = clock)
    gt = load(write_coco(tmp_path / "a.json", "name1", categories=None, category_ids=(1, COCO91_CAR)), category_ids="coco91")
    assert {b.category for bs in gt.frames.values() for b in bs} == {0, 2}  # 3 is car in COCO-91 (motorcycle in COCO-80)
    gt = load(write_coco(tmp_path / "b.json", "name0", categories=None, category_ids=(0, 12)), category_ids="auto")
    assert "COCO-80" in gt.source and {b.category for bs in gt.frames.values() for b in bs} == {0, 12}
    with pytest.raises(VcmError, match="pass --category-ids coco80 or coco91"):
        load(write_coco(tmp_path / "c.json", "name0", categories=None, category_ids=(1, 2)))
    gt = load(write_coco(tmp_path / "c.json", "name0", categories=None, category_ids=(1, 2)), category_ids="coco80")
    assert {b.category for bs in gt.frames.values() for b in bs} == {1, 2}
    # a JSON whose numbers end one past the last frame counts from 1; one from 0 counts from 0
    gt = load(write_coco(tmp_path / "d.json", "name0", frames=range(60, 121, 30)))
    assert sorted(gt.frames) == [59, 89, 119] and "counted from 1" in gt.source
    # a category named outside the detector's classes is refused, unless renamed
    data = json.loads(write_coco(tmp_path / "e.json", "name0").read_text())
    data["categories"][1]["name"] = "scooter"
    (tmp_path / "e.json").write_text(json.dumps(data))
    with pytest.raises(VcmError, match=r"no class of the detector: scooter \(id 3\).*--category-map"):
        load(tmp_path / "e.json")
    gt = load(tmp_path / "e.json", category_map=["scooter=motorcycle"])
    assert {b.category for bs in gt.frames.values() for b in bs} == {0, 3} and "scooter→motorcycle" in gt.source
    # ids the categories do not name are COCO's when the user says so
    data["annotations"][0]["category_id"] = 7
    (tmp_path / "e.json").write_text(json.dumps(data))
    gt = load(tmp_path / "e.json", category_ids="coco91")
    assert 6 in {b.category for bs in gt.frames.values() for b in bs}  # COCO-91 id 7 is train


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["images"][0].update(file_name="clip_val_500.png"), "maps to frame 500, but the video has frames 0:120"),
    (lambda d: d["images"][0].update(file_name="clip_val.png"), "has no frame number"),
    (lambda d: d["annotations"][0].update(image_id=9999), "refers to image 9999, which is not listed"),
    (lambda d: d["categories"][0].update(name="unicorn"), "no class of the detector: unicorn"),
    (lambda d: d["images"][1].update(file_name=d["images"][0]["file_name"]), "1 image maps to a frame another image already has"),
    (lambda d: d["images"][0].update(width=352), "is 352x144, the video is 176x144"),
    # an id the JSON's own categories do not name was reported as "categories have no names"
    (lambda d: d["annotations"][0].update(category_id=7), "use category id 7 that 'categories' does not name"),
    # a box no detection can overlap counted as an object every detector missed; a non-object was dropped
    (lambda d: d["annotations"][0].update(bbox=[0, 0, -4, 10]), "needs a width and height above 0"),
    (lambda d: d["annotations"][0].update(bbox=[0, 0, 4, float("inf")]), "is not made of finite numbers"),
    (lambda d: d["annotations"][0].update(bbox=[176, 0, 4, 4]), "lies wholly outside the 176x144 frame"),
    (lambda d: d["images"][0].update(id=[1]), "has the id [1]; an id is a number or a string"),  # tracebacks
    (lambda d: d["annotations"][0].update(category_id=[1]), "has the category_id [1]; an id is a number or a string"),
    (lambda d: d["annotations"].append("person"), "'annotations' must be a list of objects"),
    (lambda d: (d["annotations"][0].pop("id", None), d["annotations"][0].pop("bbox")), "annotation #1 (no id) has no"),
    # each was a traceback of int() or float()
    (lambda d: d["annotations"][0].update(area="big"), "iscrowd and area must be numbers, got 0 and 'big'"),
    (lambda d: d["annotations"][0].update(iscrowd=float("inf")), "iscrowd and area must be numbers, got inf"),
    (lambda d: d["annotations"][0].update(iscrowd=2), "iscrowd must be 0 or 1 and its area a number of at least 0"),
])
def test_unmatched_frames_and_categories_are_one_clear_line(tmp_path, edit, message):
    path = write_coco(tmp_path / "gt.json", "name0")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    proc = run_main("eval", "sample:carphone", "--annotations", path, "--detector", "oracle", "--out", tmp_path / "o",
                    cwd=tmp_path)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_non_sfu_clip_without_ground_truth_says_what_to_pass(tmp_path):
    proc = run_main("eval", "sample:carphone", "--detector", "oracle", "--out", tmp_path / "o", cwd=tmp_path)
    assert proc.returncode == 1 and "--annotations gt.json" in proc.stderr and "--reference original" in proc.stderr


@pytest.mark.slow
def test_randomly_initialised_faster_rcnn_on_a_coco_json_gives_a_number(tmp_path):
    gt = write_coco(tmp_path / "gt.json", "name0", frames=[0, 6])
    proc = run_main("eval", "sample:carphone", "--annotations", gt, "--detector", "fasterrcnn_resnet50_fpn_v2",
                    "--weights", "random", "--set", "min_size=144", "--frames", "0:8", "--out", tmp_path / "o", "--json",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)
    assert scores["frames"] == 2 and 0.0 <= scores["map"] <= 100.0 and scores["detections"] > 0
    st = scores["detector_settings"]
    assert st["name"] == "fasterrcnn_resnet50_fpn_v2" and st["min_size"] == 144 and st["score_threshold"] == 0.05
    assert st["weights"].startswith("random initialisation")


@pytest.mark.slow
def test_reference_original_scores_the_original_100_and_a_coded_copy_less(tmp_path):
    """Pseudo ground truth from a randomly initialised Faster R-CNN on the real clip: cached, reused."""
    from vcm.samples import sample_clip
    from vcm.video import open_video
    from vcm.video.yuv import write_yuv420

    args = ["--reference", "original", "--detector", "fasterrcnn_resnet50_fpn_v2", "--weights", "random",
            "--set", "min_size=144", "--frames", "0:2", "--json"]
    proc = run_main("eval", "sample:carphone", *args, "--out", tmp_path / "self", cwd=tmp_path,
                    env={"VCM_CACHE": str(tmp_path / "cache"), "VCM_PROGRESS": "lines"})
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)
    assert scores["map"] == pytest.approx(100.0) and scores["objects"] > 0
    assert scores["ground_truth"]["kind"] == "pseudo" and "score ≥ 0.5" in scores["ground_truth"]["source"]
    assert len(list((tmp_path / "cache" / "reference").glob("*.json"))) == 1
    # a degraded copy (every pixel darkened and blurred), scored against the cached reference detections
    frames = open_video(sample_clip("carphone"), "0:2").frames_u8.astype(np.float32)
    blurred = (frames[:, :, ::2, ::2].repeat(2, 2).repeat(2, 3) * 0.7).astype(np.uint8)
    write_yuv420(tmp_path / "coded_176x144_30.yuv", blurred)
    proc = run_main("eval", tmp_path / "coded_176x144_30.yuv", *args, "--original", "sample:carphone",
                    "--out", tmp_path / "coded", cwd=tmp_path, env={"VCM_CACHE": str(tmp_path / "cache"), "VCM_PROGRESS": "lines"})
    assert proc.returncode == 0, proc.stderr
    assert "from the cache" in proc.stderr
    coded = json.loads(proc.stdout)
    assert coded["objects"] == scores["objects"] and coded["map"] < 100.0
    # the cache is keyed by everything that changes the detections, never by the score threshold
    from vcm.eval.reference import cache_path

    settings = scores["detector_settings"]
    key = cache_path("abc", "clip", settings, [0, 1])
    assert key == cache_path("abc", "clip", dict(settings), [0, 1])
    assert key != cache_path("abd", "clip", settings, [0, 1]) != cache_path("abc", "clip", settings, [0, 2])
    assert key != cache_path("abc", "clip", {**settings, "nms_iou": 0.3}, [0, 1])


def test_oracle_cannot_make_pseudo_ground_truth(tmp_path):
    proc = run_main("eval", "sample:carphone", "--reference", "original", "--detector", "oracle", cwd=tmp_path)
    assert proc.returncode == 1 and "oracle detector needs ground truth" in proc.stderr


def test_detector_registry_names_settings_and_weights_files(tmp_path):
    import torch

    from vcm.detectors.registry import names
    from vcm.eval.detect import create_detector

    assert {"yolov7", "oracle", "fasterrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn_v2"} <= set(names())
    with pytest.raises(VcmError, match="unknown detector 'yolo8'.*fasterrcnn_resnet50_fpn_v2"):
        create_detector("yolo8")
    with pytest.raises(VcmError, match=r"settings: unknown key min_sise; valid: max_detections, max_size, min_size"):
        create_detector("fasterrcnn_resnet50_fpn_v2", weights="random", options={"min_sise": "100"})
    with pytest.raises(VcmError, match="setting min_size must be int"):
        create_detector("fasterrcnn_resnet50_fpn_v2", weights="random", options={"min_size": "big"})
    with pytest.raises(VcmError, match="yolov7 settings: unknown key conf; valid: conf_thres"):
        create_detector("yolov7", options={"conf": "0.1"})
    random = create_detector("fasterrcnn_mobilenet_v3_large_fpn", weights="random", options={"min_size": "96"})
    torch.save(random.model.state_dict(), tmp_path / "w.pth")
    loaded = create_detector("fasterrcnn_mobilenet_v3_large_fpn", weights=tmp_path / "w.pth", options={"min_size": "96"})
    from vcm.samples import sample_clip
    from vcm.video import open_video

    frame = open_video(sample_clip("carphone"), "0:1").frames_u8
    a, b = random.detect(frame, [0])[0], loaded.detect(frame, [0])[0]
    assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.classes, b.classes)
    assert a.classes.max(initial=0) < 80  # COCO-91 labels arrive as COCO-80 indices
    (tmp_path / "bad.pth").write_bytes(b"not a state dict")
    with pytest.raises(VcmError, match="bad.pth is not a fasterrcnn_mobilenet_v3_large_fpn state_dict"):
        create_detector("fasterrcnn_mobilenet_v3_large_fpn", weights=tmp_path / "bad.pth")


def test_a_users_own_detector_by_file_and_attribute(tmp_path):
    gt = write_coco(tmp_path / "gt.json", "name0")
    proc = run_main("eval", "sample:carphone", "--annotations", gt, "--detector", f"{BLOB}:make", "--set", "min_area=20",
                    "--out", tmp_path / "o", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)
    assert scores["detector_settings"]["min_area"] == 20 and scores["detections"] > 0 and scores["map"] is not None
    (tmp_path / "bad.py").write_text("def make(device=None):\n    return lambda frames: [(1, 2)] * len(frames)\n")
    for spec, message in ((f"{tmp_path / 'bad.py'}:make", "must return (boxes [N,4], scores [N], labels [N])"),
                          (f"{tmp_path / 'bad.py'}:nope", "has no 'nope'"),
                          ("no_such_module_x:make", "could not import no_such_module_x")):
        proc = run_main("eval", "sample:carphone", "--annotations", gt, "--detector", spec, "--out", tmp_path / "b",
                        cwd=tmp_path)
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert proc.returncode == 1 and len(errors) == 1 and message in errors[0] and "Traceback" not in proc.stderr, proc.stderr


LAB_DETECTOR = """
import importlib.util
from dataclasses import dataclass

from vcm.detectors.classes import COCO80, Detections
from vcm.detectors.registry import apply_options, register_detector

spec = importlib.util.spec_from_file_location("blobs", {blob!r})
blobs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(blobs)


@dataclass(frozen=True)
class Settings:
    min_area: int = 12


def settings_of(options):
    return apply_options(Settings(), options, "lab-blobs")


class LabBlobs:
    name, classes = "lab-blobs", COCO80

    def __init__(self, settings):
        self.s, self.fn = settings, blobs.make(min_area=settings.min_area)

    def settings(self):
        return {{"name": self.name, "min_area": self.s.min_area}}

    def detect(self, frames_u8, source_frames):
        return [Detections(b, s, c) for b, s, c in self.fn(frames_u8)]


@register_detector("lab-blobs", "a lab's bright-blob finder", family="lab", settings_of=settings_of)
def create(weights=None, repo=None, device="cpu", batch=8, half=False, options=None):
    return LabBlobs(settings_of(options))
"""


def test_a_detector_of_another_package_runs_by_its_name_through_its_entry_point(tmp_path):
    """A lab's detector package joins as codecs and representations do: its module, named in the entry-point group
    ``vcm.detectors``, registers a detector that `vcm eval --detector NAME` builds with its checked `--set` options
    (a stand-in distribution on PYTHONPATH); without the package the name is one line saying where such names come
    from."""
    from tests.conftest import plugin_package

    site = tmp_path / "site"
    plugin_package(site, "lab-det", "vcm.detectors", "lab", "lab_det", LAB_DETECTOR.format(blob=str(BLOB)))
    gt = write_coco(tmp_path / "gt.json", "name0")
    env = {"PYTHONPATH": str(site)}
    args = ["eval", "sample:carphone", "--annotations", gt, "--detector", "lab-blobs", "--set", "min_area=20"]
    proc = run_cli(*args, "--out", tmp_path / "o", "--json", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)
    assert scores["detector_settings"] == {"name": "lab-blobs", "min_area": 20} and scores["detections"] > 0
    proc = run_cli(*args[:-1], "min_are=20", "--out", tmp_path / "b", cwd=tmp_path, env=env)
    assert proc.returncode == 1 and "lab-blobs settings" in proc.stderr and "min_are" in proc.stderr
    proc = run_main(*args, "--out", tmp_path / "c", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.startswith("error: unknown detector 'lab-blobs'; known: oracle, ")
    assert proc.stderr.endswith("or MODULE:ATTR / FILE.py:ATTR for your own (another package's detector is known once "
                                "installed with an entry point in vcm.detectors)\n")


@pytest.mark.parametrize("option, detector, message", [
    (["--yolov7-repo", "src/yolov7"], "opencv-face", "--yolov7-repo: detector opencv-face loads no code from a "
                                                     "repository, so src/yolov7 would be ignored; leave it out"),
    (["--yolov7-repo", "src/yolov7"], "fasterrcnn_resnet50_fpn_v2", "--yolov7-repo: detector fasterrcnn_resnet50_fpn_v2 "
                                                                    "loads no code from a repository"),
    (["--half"], "retinanet_resnet50_fpn_v2", "--half: detector retinanet_resnet50_fpn_v2 has no fp16 mode (one "
                                              "registered with it has, as yolov7 on CUDA); leave it out"),
    (["--half"], "oracle", "--half: detector oracle has no fp16 mode"),
])
def test_a_repository_or_fp16_given_to_a_detector_that_has_none_is_refused(tmp_path, option, detector, message):
    """Only yolov7 loads a repository's code and runs in fp16: given to another detector, each was ignored unseen."""
    gt = write_coco(tmp_path / "gt.json", "name0")
    r = run_main("eval", "sample:carphone", "--annotations", gt, "--detector", detector, *option, "--out",
                 tmp_path / "o", cwd=tmp_path)
    assert r.returncode == 1 and message in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert not (tmp_path / "o").exists()


def test_a_decoder_checkpoint_for_an_input_that_reads_none_is_refused(tmp_path):
    """--checkpoint is an .icm stream's decoder weights: given with a video or a .nerv stream (which holds its
    network), it was ignored without a word."""
    (tmp_path / "ck.pth").write_bytes(b"weights")
    (tmp_path / "s.nerv").write_bytes(b"not read: refused first")
    for input, what in (("sample:carphone", "carphone_pristine.mp4: it is a video"),
                        (tmp_path / "s.nerv", "s.nerv: it is a .nerv stream, which holds its decoder")):
        r = run_main("eval", input, "--detector", "opencv-face", "--reference", "original", "--checkpoint",
                     tmp_path / "ck.pth", "--out", tmp_path / "o", cwd=tmp_path)
        assert r.returncode == 1 and r.stderr == (f"error: --checkpoint does not apply to {what} (--checkpoint is for "
                                                  f".icm streams, whose decoder's weights are a file of their own)\n")
    assert not (tmp_path / "o").exists()


def test_video_options_for_a_stream_that_no_video_read_here_takes_are_refused(tmp_path):
    """--size, --fps and --bit-depth describe a video read here; with a stream as the input they were ignored without
    a word, unless an --original read them (--size and --bit-depth only a raw one's)."""
    (tmp_path / "s.nerv").write_bytes(b"not read: refused first")
    for options, message in (
            (("--annotations", tmp_path, "--bit-depth", "10"), "--bit-depth does not apply to s.nerv, a stream (a "
                                                               "stream says its frames; it is for a video read here: "
                                                               "the input or --original)"),
            (("--reference", "original", "--original", "sample:carphone", "--size", "176x144"),
             "--size does not apply to --original carphone_pristine.mp4 (it is for a raw .yuv; any other video says "
             "it)")):
        r = run_main("eval", tmp_path / "s.nerv", "--detector", "opencv-face", *options, "--out", tmp_path / "o",
                     cwd=tmp_path)
        assert r.returncode == 1 and r.stderr == f"error: {message}\n", r.stderr
    assert not (tmp_path / "o").exists()


def test_weights_given_to_a_detector_that_reads_none_are_refused(tmp_path):
    """OpenCV's cascades, the oracle and a user's FILE.py:ATTR read no weights: `--weights w.pt` (a file that was not
    even there) was ignored without a word, in vcm eval and in a CTC config's detector section, as a repository
    there (only yolov7 loads one)."""
    gt = write_coco(tmp_path / "gt.json", "name0")
    for detector, extra in (("opencv-face", ()), ("oracle", ()), (f"{BLOB}:make", (" (a detector of your own takes "
                                                                                   "its settings through --set)",))):
        r = run_main("eval", "sample:carphone", "--annotations", gt, "--detector", detector, "--weights", "w.pt",
                     "--out", tmp_path / "o", cwd=tmp_path)
        assert r.returncode == 1 and r.stderr == (f"error: --weights: detector {detector} reads no weights, so w.pt "
                                                  f"would be ignored; leave them out{''.join(extra)}\n"), r.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"sequences": [{"path": "sample:carphone", "frames": "0:2"}], "reference": "original",
                               "codecs": {"hevc": {"qps": [40]}}, "detector": {"name": "opencv-face",
                                                                               "weights": "w.pt"}}))
    r = run_main("ctc", "run", cfg, "--dry-run", "--out", tmp_path / "c", cwd=tmp_path)
    assert r.returncode == 1 and "detector: detector opencv-face reads no weights, so w.pt would be ignored" in r.stderr
    cfg.write_text(cfg.read_text().replace('"weights": "w.pt"', '"repo": "src/yolov7"'))
    r = run_main("ctc", "run", cfg, "--dry-run", "--out", tmp_path / "c", cwd=tmp_path)
    assert r.returncode == 1 and "detector: repo: detector opencv-face loads no code from a repository" in r.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "c").exists()


def test_local_detector_is_found_only_when_its_weights_are_on_disk(tmp_path, monkeypatch):
    import torch

    from vcm import demo
    from vcm.detectors.registry import local_detector
    from vcm.detectors.torchvision_models import cached_weights_file

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for var in ("VCM_YOLOV7_WEIGHTS", "VCM_YOLOV7_REPO", "VCM_DEMO_DETECTOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    assert local_detector() is None
    assert demo.demo_detector() == {"name": "opencv-face", "every": 2}  # shipped with OpenCV, found on carphone
    target = cached_weights_file("retinanet_resnet50_fpn_v2")
    assert target.parent == tmp_path / "hub" / "checkpoints"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"")
    assert local_detector() == {"name": "retinanet_resnet50_fpn_v2", "weights": "default"}
    assert demo.demo_detector()["settings"] == {"min_size": 288}
    (tmp_path / "repo" / "models").mkdir(parents=True)
    (tmp_path / "y.pt").write_bytes(b"")
    monkeypatch.setenv("VCM_YOLOV7_WEIGHTS", str(tmp_path / "y.pt"))
    assert local_detector() == {"name": "retinanet_resnet50_fpn_v2", "weights": "default"}  # weights alone: no repo
    monkeypatch.setenv("VCM_YOLOV7_REPO", str(tmp_path / "repo"))
    assert local_detector() == {"name": "yolov7", "weights": str(tmp_path / "y.pt"), "repo": str(tmp_path / "repo")}
    monkeypatch.setenv("VCM_DEMO_DETECTOR", "none")
    assert demo.demo_detector() is None
    monkeypatch.setenv("VCM_DEMO_DETECTOR", "yolo8")
    with pytest.raises(VcmError, match="VCM_DEMO_DETECTOR=yolo8 is no detector"):
        demo.demo_detector()


def test_demo_without_weights_scores_a_shipped_detector_and_says_how_to_get_yolov7(tmp_path, monkeypatch, capsys):
    import torch

    from vcm import demo, progress

    class Stop(Exception):
        pass

    def stop(config, out, device, jobs):
        raise Stop(config)

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for var in ("VCM_YOLOV7_WEIGHTS", "VCM_YOLOV7_REPO", "VCM_DEMO_DETECTOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, "run", stop)
    monkeypatch.setenv("VCM_PROGRESS", "lines")
    progress.set_quiet(False)
    with pytest.raises(Stop) as err:
        demo.run_demo(tmp_path / "d")
    err_lines = capsys.readouterr().err.splitlines()
    lines = [ln for ln in err_lines if "for YOLOv7's mAP instead" in ln]
    assert len(lines) == 1 and "VCM_YOLOV7_WEIGHTS" in lines[0] and "fasterrcnn_resnet50_fpn_v2" in lines[0]
    assert any("opencv-face" in ln and "pseudo ground truth" in ln and "not a CTC number" in ln for ln in err_lines)
    import yaml

    cfg = yaml.safe_load(Path(err.value.args[0]).read_text())
    assert cfg["detector"] == {"name": "opencv-face", "every": 2} and cfg["reference"] == "original"


YOLOV7_SDIST = "yolov7detect==1.0.1"  # WongKinYiu/yolov7's code, packaged (imports renamed yolov7.models → models)


@pytest.fixture(scope="module")
def real_yolov7(tmp_path_factory):
    """The real YOLOv7 code laid out as its repository, and a checkpoint its Model class made.

    The network is a tiny config of the real layers (Conv + IDetect), its detection biases raised so
    that it finds boxes; saved as train.py does (``{'model': model.half()}``)."""
    pip = [sys.executable, "-m", "pip"] if shutil.which("pip") is None else [shutil.which("pip")]
    root = tmp_path_factory.mktemp("yolov7src")
    got = subprocess.run([*pip, "download", "--no-deps", "--no-binary", ":all:", YOLOV7_SDIST, "-d", str(root), "-q"],
                         capture_output=True, text=True, timeout=300)
    sdists = list(root.glob("yolov7detect-*.tar.gz"))
    if got.returncode != 0 or not sdists:
        pytest.skip(f"could not download {YOLOV7_SDIST} from the package index: {got.stderr.strip()[-200:]}")
    import tarfile

    with tarfile.open(sdists[0]) as tar:
        tar.extractall(root, filter="data")
    src = next(root.glob("yolov7detect-*/yolov7"))
    repo = root / "repo"
    for package in ("models", "utils"):
        shutil.copytree(src / package, repo / package)
    for py in repo.rglob("*.py"):
        text = py.read_text()
        py.write_text(text.replace("from yolov7.models", "from models").replace("from yolov7.utils", "from utils")
                      .replace("import yolov7.", "import "))
    (repo / "hubconf.py").write_text("raise AssertionError('vcm must never import hubconf.py')\n")
    build = '''
import torch
from models.yolo import Model
cfg = {"nc": 80, "depth_multiple": 1.0, "width_multiple": 1.0,
       "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
       "backbone": [[-1, 1, "Conv", [8, 3, 2]], [-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", [16, 3, 2]],
                    [-1, 1, "Conv", [32, 3, 2]], [-1, 1, "Conv", [32, 3, 2]]],
       "head": [[[2, 3, 4], 1, "IDetect", ["nc", "anchors"]]]}
torch.manual_seed(0)
m = Model(cfg, ch=3, nc=80)
with torch.no_grad():
    for conv in m.model[-1].m:
        b = conv.bias.view(3, -1)
        b[:, 4] += 12.0  # objectness
        b[:, 5] += 12.0  # class 0, person
torch.save({"model": m.half(), "epoch": -1}, "tiny-yolov7.pt")
# the same layers trained on a user's three classes: train.py stores their names on the model
cfg["nc"] = 3
m = Model(cfg, ch=3, nc=3)
with torch.no_grad():
    for conv in m.model[-1].m:
        b = conv.bias.view(3, -1)
        b[:, 4] += 12.0
        b[:, 6] += 12.0  # class 1, "drone"
m.names = ["cone", "drone", "buoy"]
torch.save({"model": m.half(), "epoch": -1}, "tiny-custom.pt")
'''
    made = subprocess.run([sys.executable, "-c", build], cwd=repo, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    return repo, repo / "tiny-yolov7.pt"


def test_a_real_yolov7_trained_on_custom_classes_is_scored_in_their_names(tmp_path, real_yolov7):
    repo, _ = real_yolov7
    box = [60.0, 30.0, 60.0, 60.0]
    coco = {"images": [{"id": i + 1, "file_name": f"f{i}.png", "frame_index": i, "width": 176, "height": 144}
                       for i in range(3)],
            "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 7, "bbox": box, "area": 3600.0, "iscrowd": 0}
                            for i in range(3)],
            "categories": [{"id": 5, "name": "cone"}, {"id": 7, "name": "drone"}, {"id": 9, "name": "buoy"}]}
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    proc = run_main("eval", "sample:carphone", "--annotations", tmp_path / "gt.json", "--detector", "yolov7",
                    "--weights", repo / "tiny-custom.pt", "--yolov7-repo", repo, "--frames", "0:3", "--set", "max_det=50",
                    "--out", tmp_path / "o", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)
    assert scores["detector_settings"]["classes"] == ["cone", "drone", "buoy"]
    assert scores["objects"] == 3 and scores["detections"] > 0 and set(scores["per_category"]) == {"drone"}
    dets = json.loads((tmp_path / "o" / "detections.json").read_text())
    assert {d["category_id"] for d in dets} == {1}  # every box is the checkpoint's class 1, "drone"


def test_a_checkpoint_made_by_the_real_yolov7_code_loads_and_detects(tmp_path, real_yolov7):
    repo, weights = real_yolov7
    proc = run_cli("eval", "sample:carphone", "--reference", "original", "--detector", "yolov7", "--weights", weights,
                   "--yolov7-repo", repo, "--frames", "0:3", "--set", "max_det=50", "--out", tmp_path / "o", "--json",
                   cwd=tmp_path)  # a process of its own: torch warns once a process, and fd 1 is the user's stdout
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr  # the repo's own torch.meshgrid call is not the user's to act on
    scores = json.loads(proc.stdout)  # stdout is the JSON alone: what YOLOv7's fuse() prints went to stderr
    # (COCO's mAP counts 100 detections per image: 50 confident boxes a frame keep every reference box in play)
    assert scores["objects"] == 150 and scores["map"] == pytest.approx(100.0)
    assert scores["detector_settings"]["img_size"] == 640 and scores["detector_settings"]["conf_thres"] == 0.001
    # the environment is untouched: a fresh interpreter still has no 'models' or 'utils' of YOLOv7
    check = subprocess.run([sys.executable, "-c", "import importlib.util as u; print(u.find_spec('models'), u.find_spec('utils'))"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert check.stdout.strip() == "None None"


def test_ctc_sequences_with_annotations_or_pseudo_ground_truth(tmp_path):
    """Any ``{name, path, annotations}`` entry scores like SFU-HW; ``reference: original`` uses the
    detector on the sequence's own frames; each row and the report say which ground truth it used."""
    import yaml

    gt = write_coco(tmp_path / "gt.json", "order", frames=range(0, 4))
    cfg = {"sequences": [
        {"name": "annotated", "path": "sample:carphone", "frames": "0:4", "annotations": str(gt),
         "detector": {"name": "oracle"}},
        {"name": "pseudo", "path": "sample:carphone", "frames": "0:4", "reference": "original",
         "detector": {"name": f"{BLOB}:make", "every": 2}},
    ], "device": "cpu", "codecs": {"hevc": {"qps": [30, 40, 46, 51]}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_main("ctc", "run", tmp_path / "c.yaml", "--out", tmp_path / "out", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["failed"] == 0
    rows = {(r["sequence"], r["point"]): r for r in
            (json.loads(p.read_text()) for p in (tmp_path / "out" / "points").glob("*/*/*/result.json"))}
    assert all(rows[("annotated", f"qp{q}")]["map"] == pytest.approx(100.0) for q in (30, 40, 46, 51))
    assert rows[("annotated", "qp30")]["ground_truth"]["kind"] == "annotations"
    pseudo = [rows[("pseudo", f"qp{q}")] for q in (30, 40, 46, 51)]
    assert all(r["ground_truth"]["kind"] == "pseudo" for r in pseudo)
    assert pseudo[0]["map"] > pseudo[-1]["map"]  # QP 51 moves and splits the bright blobs more than QP 30
    scores = json.loads((tmp_path / "out" / "points" / "pseudo" / "hevc" / "qp30" / "scores.json").read_text())
    assert scores["frames"] == 2 and scores["every"] == 2
    proc = run_main("ctc", "report", tmp_path / "out", "--anchor", "hevc", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| ground truth |" in md and "| pseudo |" in md and "| annotations |" in md
    assert "pseudo ground truth: " in md and "blob_detector.py:make" in md


def test_eval_never_replaces_detections_or_scores_it_did_not_write(tmp_path):
    """`vcm eval clip --out results` replaced the user's own results/detections.json without a word; an
    earlier vcm eval's pair there is replaced as before (the same command again)."""
    gt = write_coco(tmp_path / "gt.json", "name0", frames=[0, 6])
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "detections.json").write_text("[]")
    args = ("eval", "sample:carphone", "--annotations", gt, "--detector", "oracle", "--frames", "0:8", "--out", folder)
    proc = run_main(*args, cwd=tmp_path)
    assert proc.returncode == 1 and "holds detections.json that no vcm eval wrote" in proc.stderr, proc.stderr
    assert (folder / "detections.json").read_text() == "[]" and not (folder / "scores.json").exists()
    (folder / "detections.json").unlink()
    assert run_main(*args, cwd=tmp_path).returncode == 0
    again = run_main(*args, "--json", cwd=tmp_path)
    assert again.returncode == 0 and json.loads(again.stdout)["map"] == 100.0


COUNTING = '''
import importlib.util, os

spec = importlib.util.spec_from_file_location("blob", {blob!r})
blob = importlib.util.module_from_spec(spec)
spec.loader.exec_module(blob)


def make(device=None, min_area=12):
    inner = blob.make(device, min_area)

    def detect(frames_u8):
        with open(os.environ["CALLS"], "a") as log:
            calls = sum(1 for _ in open(os.environ["CALLS"])) + 1
            log.write(f"{{len(frames_u8)}}\\n")
        if calls == int(os.environ.get("STOP_AT", 0)):
            raise KeyboardInterrupt
        return inner(frames_u8)

    detect.settings = inner.settings
    return detect
'''


def test_a_stopped_eval_keeps_its_detections_and_the_same_command_continues_to_the_same_scores(tmp_path):
    """Ctrl-C in the detector's third call keeps the two batches before it; the same command then detects only
    the frames left and writes the scores of a run never stopped; another detector setting starts afresh."""
    gt = write_coco(tmp_path / "gt.json", "name0", frames=range(0, 12, 2))  # 6 annotated frames: 3 batches of 2
    (tmp_path / "counting.py").write_text(COUNTING.format(blob=str(BLOB)))
    calls = tmp_path / "calls.txt"

    def evaluate(out, *extra, stop_at=0):
        calls.write_text("")
        args = ["--annotations", gt, "--detector", f"{tmp_path / 'counting.py'}:make", "--batch", "2", "--json"]
        proc = run_main("eval", "sample:carphone", *args, *extra, "--out", tmp_path / out, cwd=tmp_path,
                        env={"CALLS": str(calls), "STOP_AT": str(stop_at), "VCM_PROGRESS": "lines"})
        return proc, calls.read_text().split()

    whole, n = evaluate("whole")
    assert whole.returncode == 0, whole.stderr
    assert n == ["2", "2", "2"]
    stopped, n = evaluate("o", stop_at=3)
    assert stopped.returncode == 130 and "stopped after 4 of 6 frames" in stopped.stderr, stopped.stderr
    assert (tmp_path / "o" / "detections.partial.pt").is_file() and not (tmp_path / "o" / "scores.json").exists()
    info = run_main("info", tmp_path / "o", "--json")  # the folder says how far the evaluation got
    assert info.returncode == 0 and json.loads(info.stdout)["stopped"] == {"detected": 4, "frames": 6}, info.stderr
    again, n = evaluate("o")
    assert again.returncode == 0, again.stderr
    assert n == ["2"] and "continuing at 4/6" in again.stderr  # only the last batch is detected again
    continued = json.loads(again.stdout)  # its speed is over the 2 frames it detected, not the 6 it scored
    assert continued["detections_continued"] == 4 and continued["detect_frames_per_second"] == pytest.approx(
        2 / continued["detect_seconds"])
    assert not (tmp_path / "o" / "detections.partial.pt").exists()
    info = json.loads(run_main("info", tmp_path / "o", "--json").stdout)
    assert info["scored"] and info["stopped"] is None and info["map"] == continued["map"]
    for name in ("detections.json", "scores.json"):
        a, b = (json.loads((tmp_path / d / name).read_text()) for d in ("whole", "o"))
        if name == "scores.json":
            assert b.pop("detections_continued") == 4 and "detections_continued" not in a
            a, b = ({k: v for k, v in s.items() if "seconds" not in k and "per_second" not in k and k != "provenance"}
                    for s in (a, b))
        assert a == b, name
    # kept detections are used only for the same evaluation: another detector setting starts afresh
    evaluate("o2", stop_at=3)
    other, n = evaluate("o2", "--set", "min_area=20")
    assert other.returncode == 0 and n == ["2", "2", "2"] and "another evaluation" in other.stderr, other.stderr


def test_reference_detections_stopped_midway_continue_from_the_batches_done(tmp_path, monkeypatch):
    """Pseudo ground truth's detections on the original keep their batches across a stop too, beside the cache."""
    from vcm.eval.reference import cache_dir, original_detections
    from vcm.samples import sample_clip

    monkeypatch.setenv("VCM_CACHE", str(tmp_path / "cache"))

    class Counting:
        name, classes = "counting", ("thing",)

        def __init__(self, stop_at=0):
            self.calls, self.stop_at = [], stop_at

        def settings(self):
            return {"name": "counting"}

        def detect(self, frames_u8, source_frames):
            self.calls.append(list(source_frames))
            if len(self.calls) == self.stop_at:
                raise KeyboardInterrupt
            from vcm.detectors.classes import Detections

            return [Detections(np.array([[f, 0, f + 4, 4]], np.float32), np.ones(1, np.float32), np.zeros(1, np.int64))
                    for f in source_frames]

    frames = list(range(6))
    with pytest.raises(KeyboardInterrupt):
        original_detections(sample_clip("carphone"), frames, Counting(stop_at=2), batch=4)
    assert len(list(cache_dir().glob("*.partial.pt"))) == 1
    det = Counting()
    dets, cached = original_detections(sample_clip("carphone"), frames, det, batch=4)
    assert det.calls == [[4, 5]] and not cached  # the first batch came from the kept part
    assert [d.boxes[0, 0] for d in dets] == frames and not list(cache_dir().glob("*.partial.pt"))


@pytest.mark.parametrize("edit, field", [({"every": "2"}, "every"), ({"source_frames": [0]}, "source_frames"),
                                         ({"ground_truth": "pseudo"}, "ground_truth"), ({"map": "high"}, "map")])
def test_vcm_info_shows_an_edited_scores_file_as_damaged_not_a_traceback(tmp_path, edit, field):
    """`vcm info EVAL_FOLDER` read scores.json's fields as the types vcm eval writes: `every` as text was a TypeError
    traceback, a ground truth as text an AttributeError, a one-number frame span an IndexError."""
    scores = {"input": "clip.mp4", "truth": {}, "map": 41.5, "ap50": 60.0, "sequence": "clip", "detector": "yolov7",
              "ground_truth": {"kind": "pseudo", "source": "the detector on the original"}, "frames": 8,
              "source_frames": [0, 8], "every": 1, "objects": 5, "detections": 7}
    (tmp_path / "scores.json").write_text(json.dumps(scores))
    proc = run_main("info", tmp_path)
    assert proc.returncode == 0 and "41.50 %" in proc.stdout
    (tmp_path / "scores.json").write_text(json.dumps({**scores, **edit}))
    proc = run_main("info", tmp_path)
    text = " ".join(proc.stdout.split()).replace("│ ", "").replace(" │", "")
    assert proc.returncode == 0 and f"is damaged (field '{field}' is not what vcm eval writes)" in text, proc.stdout
    assert "41.50 %" not in proc.stdout


def test_a_cache_folder_vcm_cannot_write_costs_a_line_not_the_evaluation(tmp_path):
    """The reference detections were computed, then the cache's write failed the whole evaluation."""
    (tmp_path / "afile").write_text("x")
    proc = run_main("eval", "sample:carphone", "--reference", "original", "--detector", "opencv-face",
                    "--frames", "0:2", "--json", "--out", tmp_path / "e", cwd=tmp_path,
                    env={"VCM_CACHE": str(tmp_path / "afile")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    said = "".join(proc.stderr.split())  # rich wraps a long path anywhere
    assert "".join(f"no cache of reference detections ({tmp_path / 'afile' / 'reference'} cannot be written: "
                   f"Not a directory)".split()) in said
    assert json.loads(proc.stdout)["ground_truth"]["kind"] == "pseudo" and (tmp_path / "e" / "scores.json").is_file()


def test_a_user_with_no_home_folder_evaluates_without_a_cache(tmp_path, monkeypatch):
    """A container's user with no home folder (no HOME, no passwd entry): Path.home() raised a RuntimeError that
    ended the evaluation in a traceback."""
    from pathlib import Path

    from vcm.eval.reference import cache_dir

    def no_home(cls=None):
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv("VCM_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(Path, "home", classmethod(no_home))
    assert cache_dir() is None
    proc = run_main("eval", "sample:carphone", "--reference", "original", "--detector", "opencv-face",
                    "--frames", "0:2", "--out", tmp_path / "e", cwd=tmp_path)
    assert proc.returncode == 0 and "no home folder to keep it in" in " ".join(proc.stderr.split()), proc.stderr[-2000:]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "vcm" / "reference"


def test_reference_detections_of_a_raw_original_read_otherwise_are_not_taken_from_the_cache(tmp_path, monkeypatch):
    """The cache was keyed by the file's bytes alone: a raw original read once with the wrong --bit-depth (or
    --size) cached detections on garbage frames, which every later evaluation read back as its pseudo ground
    truth, however the file was read then."""
    from vcm.eval.reference import original_detections
    from vcm.video import open_video
    from vcm.video.yuv import write_yuv420

    monkeypatch.setenv("VCM_CACHE", str(tmp_path / "cache"))
    frames = open_video("sample:carphone", "0:4").frames_u8
    raw = tmp_path / "orig_176x144_30.yuv"
    write_yuv420(raw, frames, bit_depth=10)  # a 10-bit file whose name says no bit depth

    class Brightness:  # one box whose left edge is the frame's mean sample
        name, classes = "brightness", ("thing",)

        def settings(self):
            return {"name": "brightness"}

        def detect(self, frames_u8, source_frames):
            from vcm.detectors.classes import Detections

            return [Detections(np.array([[float(f.mean()), 0, 200, 4]], np.float32), np.ones(1, np.float32),
                               np.zeros(1, np.int64)) for f in frames_u8]

    wrong, cached = original_detections(raw, [0, 1], Brightness(), bit_depth=8)  # as the user said, wrongly
    assert not cached
    right, cached = original_detections(raw, [0, 1], Brightness(), bit_depth=10)
    assert not cached and right[0].boxes[0, 0] != wrong[0].boxes[0, 0]
    again, cached = original_detections(raw, [0, 1], Brightness(), bit_depth=10)
    assert cached and again[0].boxes[0, 0] == right[0].boxes[0, 0]
    with pytest.raises(VcmError, match="the original orig_176x144_30.yuv is 88x288"):
        original_detections(raw, [0, 1], Brightness(), size=(88, 288), bit_depth=10, expect_hw=(144, 176))


def test_vcm_eval_reads_a_raw_file_without_a_rate_and_refuses_fps(tmp_path):
    """Detection is frame by frame, yet a raw input (or original) whose name gives no rate was refused until --fps
    named one, which nothing then read."""
    from vcm.video import open_video
    from vcm.video.yuv import write_yuv420

    raw = tmp_path / "clip_176x144.yuv"
    write_yuv420(raw, open_video("sample:carphone", "0:2").frames_u8)
    proc = run_main("eval", raw, "--reference", "original", "--detector", "opencv-face", "--out", tmp_path / "e",
                    "--json", cwd=tmp_path, env={"VCM_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["source_frames"] == [0, 2]
    proc = run_main("eval", raw, "--reference", "original", "--detector", "opencv-face", "--fps", "30", "--out",
                    tmp_path / "f", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr == ("error: --fps does not apply to vcm eval (detection is frame by "
                                                    "frame; no frame rate is read)\n")
    assert not (tmp_path / "f").exists()
