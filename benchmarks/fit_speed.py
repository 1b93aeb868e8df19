"""Training throughput of ``vcm fit``: frames/s and ms/step for a preset on a clip and device.

    uv run python benchmarks/fit_speed.py --preset demo                    # carphone 176x144
    uv run python benchmarks/fit_speed.py --preset nerv-s --size 416x240   # synthetic class-D-sized frames
    uv run python benchmarks/fit_speed.py --input BQMall.yuv --device cuda

Measures the real training step (same code as ``vcm fit``) after warm-up steps; prints a table.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _common import print_table, run

from vcm.device import describe, resolve_device
from vcm.nerv.config import load_preset, override
from vcm.nerv import registry
from vcm.nerv.train import fit
from vcm.samples import sample_clip
from vcm.video import open_video
from vcm.video.naming import parse_size
from vcm.video.source import Video, VideoInfo


def synthetic(width: int, height: int, frames: int) -> Video:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (frames, 3, height, width), dtype=np.uint8)
    info = VideoInfo(Path("synthetic"), "images", f"synthetic_{width}x{height}", width, height, 30.0, frames, 8, 0, None, False)
    return Video(info, data, range(frames))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--input", help="a video file (default: the carphone sample clip)")
    ap.add_argument("--size", help="use synthetic frames of this size instead, e.g. 416x240")
    ap.add_argument("--frames", type=int, default=32, help="frames of the clip to use")
    ap.add_argument("--batch", type=int, help="override the preset's batch")
    ap.add_argument("--steps", type=int, default=40, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()

    device = resolve_device(args.device)
    if args.size:
        w, h = parse_size(args.size)
        video = synthetic(w, h, args.frames)
    else:
        video = open_video(args.input or sample_clip("carphone"), f"0:{args.frames}")
    spec, cfg = load_preset(args.preset)
    cfg = override(cfg, batch=args.batch, compile=args.compile or None, checkpoint_every=10**9)
    mcfg = spec.build(video.height, video.width, video.num_frames)
    steps_per_epoch = -(-video.num_frames // cfg.batch)
    total = args.warmup + args.steps
    cfg = override(cfg, epochs=-(-total // steps_per_epoch) + 1)

    marks: dict[int, float] = {}

    def stop(step: int) -> bool:
        if step in (args.warmup, total):
            if device.type == "cuda":
                torch.cuda.synchronize()
            marks[step] = time.perf_counter()
        return step >= total

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fit(video, mcfg, cfg, Path(tmp) / "run", device, should_stop=stop)
    seconds = marks[total] - marks[args.warmup]
    ms_step = 1000 * seconds / args.steps
    params = registry.entry(registry.arch_of_config(mcfg)).model_cls.count_params(mcfg)
    print_table("vcm fit speed", ["device", "preset", "frame size", "params", "batch", "ms/step", "frames/s"],
                [[describe(device), args.preset, f"{video.width}x{video.height}", f"{params:,}", str(cfg.batch),
                  f"{ms_step:.1f}", f"{cfg.batch * args.steps / seconds:.1f}"]])


if __name__ == "__main__":
    run(main)
