"""Sweep HiNeRV shapes at fixed parameter budgets: PSNR vs parameters vs seconds per epoch.

    uv run python benchmarks/hinerv_sweep.py --clip carphone --params 60k --epochs 40
    uv run python benchmarks/hinerv_sweep.py --clip bikes416 --params 300k --epochs 30 --only preset,lr1e-2-b4

Each row fits one variant of the preset (shape and schedule overrides; epochs and budget from the
command line) on the same frames and reports
the PSNR of the fitted network (before compression), its parameters split into grids and the rest,
and the measured seconds per epoch. Run it alone on the machine. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from _common import dev_clip, print_table, run

from vcm.nerv.config import load_preset, override
from vcm.nerv.hinerv import HiNeRV
from vcm.nerv.model import parse_param_count
from vcm.nerv.train import fit

# name → (HinervShape overrides, training overrides) relative to the preset; widths are at unit
# scale (the budget sets the scale). The variants behind the choice in docs/hinerv.md.
VARIANTS = {
    "preset": ({}, {}),
    "lr1e-2-b4": ({}, {"lr": 1e-2, "batch": 4}),
    "lr2e-2-b4": ({}, {"lr": 2e-2, "batch": 4}),
    "lr4e-2-b4": ({}, {"lr": 4e-2, "batch": 4}),
    "depths1110": ({"depths": (1, 1, 1, 0)}, {"lr": 1e-2, "batch": 4}),
    "depths2100": ({"depths": (2, 1, 0, 0)}, {"lr": 1e-2, "batch": 4}),
    "subpixel-head": ({"depths": (2, 2, 1), "channels": (64, 48, 32), "head": "subpixel"}, {"lr": 1e-2, "batch": 4}),
    "local0.5": ({"local_frame_ratio": 0.5}, {"lr": 1e-2, "batch": 4}),
    "grid8-levels3": ({"grid_channels": 8, "grid_levels": 3, "grid_frame_ratio": 0.25}, {"lr": 1e-2, "batch": 4}),
    "expansion4": ({"expansion": 4.0}, {}),
    # grid-heavy at 0.3M (with --preset hinerv-demo): the extra parameters go to the grids, whose cost per
    # epoch is an interpolation at the base grid's size, and the convolutions stay about as narrow as at 60k
    "grid22": ({"grid_channels": 22}, {}),
    "grid22-b4": ({"grid_channels": 22}, {"batch": 4}),
    "grid22-lr3e-3-g10": ({"grid_channels": 22}, {"lr": 3e-3, "grid_lr_scale": 10.0}),
    "grid12": ({"grid_channels": 12}, {}),
    "grid32": ({"grid_channels": 32}, {}),
    "grid22-b1": ({"grid_channels": 22}, {"batch": 1}),
    "grid22-b1-lr1.5e-2": ({"grid_channels": 22}, {"batch": 1, "lr": 1.5e-2}),
    "grid22-levels3": ({"grid_channels": 22, "grid_levels": 3}, {}),
    "grid22-kernel5": ({"grid_channels": 22, "kernel": 5}, {}),
    "grid22-g3": ({"grid_channels": 22}, {"grid_lr_scale": 3.0}),
    "grid12-g3": ({"grid_channels": 12}, {"grid_lr_scale": 3.0}),
    "g3": ({}, {"grid_lr_scale": 3.0}),
    "grid22-lr5e-2": ({"grid_channels": 22}, {"lr": 5e-2}),
    "grid22-t0.5": ({"grid_channels": 22, "grid_frame_ratio": 0.5}, {}),
    # cheaper at 60k (with --preset hinerv-demo): one block less at half resolution
    "depths211": ({"depths": (2, 1, 1, 0)}, {}),
    "depths211-b4": ({"depths": (2, 1, 1, 0)}, {"batch": 4, "lr": 2e-2}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="carphone", help="carphone or bikes416")
    ap.add_argument("--frames", type=int)
    ap.add_argument("--params", default="60k")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--preset", default="hinerv-s", help="a hinerv preset: its schedule and unit shape")
    ap.add_argument("--only", help="comma-separated variant names: " + ", ".join(VARIANTS))
    args = ap.parse_args()
    video = dev_clip(args.clip, args.frames)
    spec, cfg = load_preset(args.preset)
    cfg = override(cfg, epochs=args.epochs, checkpoint_every=10**9)
    budget = parse_param_count(args.params)
    rows = []
    for name, (change, schedule) in VARIANTS.items():
        if args.only and name not in args.only.split(","):
            continue
        shaped = replace(spec, shape=replace(spec.shape, **change), params=budget)
        train = override(cfg, **schedule)
        mcfg = shaped.build(video.height, video.width, video.num_frames)
        with torch.device("meta"):
            model = HiNeRV(mcfg)
        grids = sum(p.numel() for n, p in model.named_parameters() if model.param_group(n) == "grids")
        total = HiNeRV.count_params(mcfg)
        with tempfile.TemporaryDirectory() as tmp:
            result = fit(video, mcfg, train, Path(tmp) / "run", torch.device("cpu"))
        seconds = result.seconds / args.epochs
        rows.append([name, f"{total:,}", f"{grids / total:.0%}", f"{mcfg.grid_channels}x{mcfg.grid_frames}f",
                     ",".join(map(str, mcfg.channels)), f"{train.lr:g}/{train.batch}", f"{result.metrics['psnr']:.2f}",
                     f"{seconds:.2f}"])
        print(" | ".join(rows[-1]), flush=True)
    print_table(f"HiNeRV shapes on {video.name} ({video.width}x{video.height}, {video.num_frames} frames), "
                f"{args.params} params, {args.epochs} epochs", ["variant", "params", "grids", "base grid", "stage widths",
                                                                 "lr/batch", "PSNR dB", "s/epoch"], rows)


if __name__ == "__main__":
    run(main)
