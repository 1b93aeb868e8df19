"""What each task network costs per frame on this machine, at its default evaluation settings.

    uv run python benchmarks/detectors.py                                  # torchvision entries, 2 sizes
    uv run python benchmarks/detectors.py --yolov7-weights yolov7.pt --yolov7-repo ~/yolov7 --frames 4

torchvision detectors are timed randomly initialised (``--weights random``: the same layers, so the
same compute, as the COCO weights; only the number of boxes reaching NMS differs). YOLOv7 is timed when
its weights and repo are given or found locally. Frames: carphone (176x144) and carphone scaled to
class C's 832x480. One frame per call (``--batch 1``) after one warm-up frame. Run it alone on the
machine: the times are wall-clock on its cores. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch
from _common import print_table, run

from vcm.detectors.factory import create_detector
from vcm.detectors.registry import names
from vcm.detectors.yolov7 import find_repo, find_weights
from vcm.samples import sample_clip
from vcm.video import open_video


def frames_at(size: tuple[int, int] | None, n: int) -> np.ndarray:
    """``n + 1`` carphone frames (uint8 [T,3,H,W]), resized to ``size`` = (w, h) when given."""
    frames = open_video(sample_clip("carphone"), f"0:{n + 1}").frames_u8
    if size is None:
        return frames
    return np.stack([cv2.resize(f.transpose(1, 2, 0), size, interpolation=cv2.INTER_CUBIC).transpose(2, 0, 1)
                     for f in frames])


def seconds_per_frame(detector, frames: np.ndarray) -> float:
    detector.detect(frames[:1], [0])  # warm-up
    start = time.perf_counter()
    for i in range(1, len(frames)):
        detector.detect(frames[i:i + 1], [i])
    return (time.perf_counter() - start) / (len(frames) - 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=3, help="timed frames per detector and size")
    ap.add_argument("--only", nargs="*", help="detector names (default: every registered one but the oracle)")
    ap.add_argument("--yolov7-weights")
    ap.add_argument("--yolov7-repo")
    args = ap.parse_args()
    chosen = args.only or [n for n in names() if n != "oracle"]
    sizes = {"176x144 (carphone)": None, "832x480 (class C)": (832, 480)}
    clips = {label: frames_at(size, args.frames) for label, size in sizes.items()}
    rows = []
    for name in chosen:
        if name == "yolov7":
            weights, repo = find_weights(args.yolov7_weights), find_repo(args.yolov7_repo)
            if weights is None or not weights.is_file() or repo is None:
                print("yolov7: no weights/repo given or found locally; skipped")
                continue
            det = create_detector("yolov7", weights=weights, repo=repo, batch=1)
        else:
            det = create_detector(name, weights="random", batch=1)
        st = det.settings()
        size = f"img_size {st['img_size']}" if "img_size" in st else f"min_size {st['min_size']}, max_size {st['max_size']}"
        row = [name, size]
        for label, frames in clips.items():
            row.append(f"{seconds_per_frame(det, frames):.2f}")
        rows.append(row)
        print(" | ".join(row), flush=True)
    print_table(f"seconds per frame, {torch.get_num_threads()} threads, torch {torch.__version__}",
                ["detector", "input size", *[f"s/frame {k}" for k in clips]], rows)


if __name__ == "__main__":
    run(main)
