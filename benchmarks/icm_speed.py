"""SA-ICM codec speed: encode / decode frames/s and bpp of the full-size TCM (random weights).

    uv run python benchmarks/icm_speed.py                       # 416x240 frames, on CUDA if present
    uv run python benchmarks/icm_speed.py --n 64 --frames 2 --device cpu

Random weights give meaningless quality; the point is speed (and a real rANS bitstream size).
Frames are padded to the network's multiple of 128 (416x240 → 512x256). Not a test.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import print_table, run

from vcm.device import describe, resolve_device
from vcm.icm.codec import crop_back, pad_to_multiple
from vcm.icm.archs import TCMConfig
from vcm.icm.tcm import TCM
from vcm.video.naming import parse_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="416x240")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--n", type=int, default=128, help="TCM width N (128 official, 64 smaller)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    w, h = parse_size(args.size)
    torch.manual_seed(0)
    model = TCM(TCMConfig(N=args.n)).to(device).eval()
    model.update(force=True)
    rng = np.random.default_rng(0)
    frames = [torch.from_numpy(rng.random((1, 3, h, w), dtype=np.float32)).to(device) for _ in range(args.frames)]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        xp, pads = pad_to_multiple(frames[0], 128)
        model.decompress(**{k: v for k, v in model.compress(xp).items() if k in ("strings", "shape")})  # warm-up
        sync()
        t0 = time.perf_counter()
        coded = [model.compress(pad_to_multiple(f, 128)[0]) for f in frames]
        sync()
        t1 = time.perf_counter()
        for c in coded:
            crop_back(model.decompress(c["strings"], c["shape"])["x_hat"], pads, h, w)
        sync()
        t2 = time.perf_counter()
    nbytes = np.mean([sum(len(s[0]) for s in c["strings"]) for c in coded])
    params = sum(p.numel() for p in model.parameters())
    print_table(f"SA-ICM (TCM N={args.n}, {params:,} params, random weights), {w}x{h}, on {describe(device)}",
                ["encode frames/s", "decode frames/s", "bpp (random weights)"],
                [[f"{args.frames / (t1 - t0):.2f}", f"{args.frames / (t2 - t1):.2f}", f"{8 * nbytes / (w * h):.3f}"]])


if __name__ == "__main__":
    run(main)
