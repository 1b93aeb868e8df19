"""The detectors that ship inside OpenCV's wheel: real boxes on real frames, none on a flat one,
a pseudo-ground-truth score that coding artefacts can lower, settings checked and recorded."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_main
from vcm.errors import VcmError
from vcm.detectors.factory import create_detector
from vcm.detectors.registry import names
from vcm.detectors.opencv import SHIPPED, pick_for

CARPHONE = "sample:carphone"


@pytest.fixture(scope="module")
def carphone():
    from vcm.samples import resolve
    from vcm.video import open_video

    return open_video(resolve(Path(CARPHONE)), "all").frames_u8


def iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_every_shipped_detector_is_registered_and_finds_nothing_on_a_flat_frame():
    grey = np.full((2, 3, 144, 176), 128, np.uint8)
    assert set(SHIPPED) <= set(names())
    for name in SHIPPED:
        detector = create_detector(name)
        found = detector.detect(grey, [0, 1])
        assert len(found) == 2 and all(len(d.boxes) == 0 for d in found), name
        json.dumps(detector.settings())  # data, written into every score file


def test_the_face_cascade_finds_the_face_of_carphone_frame_0(carphone):
    det = create_detector("opencv-face").detect(carphone[:1], [0])[0]
    # the face of carphone's first frame, read off the frame by eye: x 62–120, y 36–92
    assert len(det.boxes) == 1 and iou(det.boxes[0], (62, 36, 120, 92)) > 0.7
    assert 0.5 < det.scores[0] <= 1 and det.classes[0] == 0  # COCO-80 person
    assert pick_for(carphone) == "opencv-face"  # the demo's choice for this clip


def test_the_upper_body_cascade_finds_the_cyclist_of_bikes():
    from vcm.samples import resolve
    from vcm.video import open_video

    frame = open_video(resolve(Path("sample:bikes")), "78:79").frames_u8
    det = create_detector("opencv-upperbody").detect(frame, [78])[0]
    # frame 78: a cyclist whose head is at about (445, 60), read off the frame by eye
    assert len(det.boxes) >= 1 and any(x1 < 445 < x2 and y1 < 60 < y2 for x1, y1, x2, y2 in det.boxes)


def test_settings_are_checked():
    with pytest.raises(VcmError, match="scale_factr"):
        create_detector("opencv-face", options={"scale_factr": "1.2"})
    with pytest.raises(VcmError, match="above 1"):
        create_detector("opencv-face", options={"scale_factor": "1.0"})
    with pytest.raises(VcmError, match="min_size"):
        create_detector("opencv-upperbody", options={"min_size": "0"})
    assert create_detector("opencv-face", options={"min_neighbors": "5"}).settings()["min_neighbors"] == 5


def test_pseudo_ground_truth_scores_the_original_100_and_a_blurred_copy_less(tmp_path, carphone):
    import cv2

    from vcm.video.writer import write_video

    base = ["--reference", "original", "--detector", "opencv-face", "--every", "4", "--json"]
    original = run_main("eval", CARPHONE, *base, "--out", tmp_path / "orig", cwd=tmp_path)
    assert original.returncode == 0, original.stderr
    scores = json.loads(original.stdout)
    assert scores["map"] == pytest.approx(100.0) and scores["objects"] > 10
    assert scores["detector_settings"]["detects"] == "frontal face" and scores["detector_settings"]["min_neighbors"] == 3
    blurred = np.stack([cv2.GaussianBlur(f.transpose(1, 2, 0), (0, 0), 4).transpose(2, 0, 1) for f in carphone])
    write_video(tmp_path / "blurred_176x144_30.yuv", blurred, 30)
    worse = run_main("eval", tmp_path / "blurred_176x144_30.yuv", *base, "--original", CARPHONE,
                     "--out", tmp_path / "blur", cwd=tmp_path)
    assert worse.returncode == 0, worse.stderr
    assert json.loads(worse.stdout)["map"] < 90
