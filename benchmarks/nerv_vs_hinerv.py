"""NeRV vs HiNeRV at equal parameter budgets and equal epochs, before compression.

    uv run python benchmarks/nerv_vs_hinerv.py                       # carphone and bikes416, 60k and 300k, 20 epochs
    uv run python benchmarks/nerv_vs_hinerv.py --clips carphone --budgets 60k=hinerv-demo --epochs 80

Each row fits both representations (NeRV with the demo schedule, HiNeRV with the preset made for the
budget; epochs and budget overridden) on the same frames and prints PSNR, the difference, and seconds per epoch
with their ratio. Run it alone on the machine: the times are wall-clock on its cores.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from _common import dev_clip, print_table, run

from vcm.nerv.config import load_preset, override
from vcm.nerv.model import parse_param_count
from vcm.nerv.train import fit


def fit_once(video, preset: str, budget: int, epochs: int) -> tuple[float, int, float]:
    spec, cfg = load_preset(preset)
    cfg = override(cfg, epochs=epochs, checkpoint_every=10**9)
    mcfg = replace(spec, params=budget).build(video.height, video.width, video.num_frames)
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(video, mcfg, cfg, Path(tmp) / "run", torch.device("cpu"))
    return result.metrics["psnr"], result.metrics["params"], result.seconds / epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", default="carphone,bikes416")
    ap.add_argument("--budgets", default="60k=hinerv-xs,300k=hinerv-s",
                    help="BUDGET=HINERV_PRESET pairs: each budget with the HiNeRV preset made for it")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--nerv-preset", default="demo", help="NeRV's schedule (demo: lr 5e-3, batch 4 — stronger than "
                                                          "nerv-s's reference recipe at these epoch counts)")
    args = ap.parse_args()
    rows = []
    for clip in args.clips.split(","):
        video = dev_clip(clip)
        for pair in args.budgets.split(","):
            budget, _, hinerv_preset = pair.partition("=")
            n = fit_once(video, args.nerv_preset, parse_param_count(budget), args.epochs)
            h = fit_once(video, hinerv_preset or "hinerv-s", parse_param_count(budget), args.epochs)
            rows.append([f"{clip} {video.width}x{video.height}x{video.num_frames}", budget, f"{n[1]:,}", f"{h[1]:,}",
                         f"{n[0]:.2f}", f"{h[0]:.2f}", f"{h[0] - n[0]:+.2f}", f"{n[2]:.2f}", f"{h[2]:.2f}", f"{h[2] / n[2]:.2f}x"])
            print(" | ".join(rows[-1]), flush=True)
    print_table(f"NeRV ({args.nerv_preset} schedule) vs HiNeRV, {args.epochs} epochs each, before compression",
                ["clip", "budget", "nerv params", "hinerv params", "nerv PSNR", "hinerv PSNR", "Δ dB", "nerv s/epoch",
                 "hinerv s/epoch", "time ratio"], rows)


if __name__ == "__main__":
    run(main)
