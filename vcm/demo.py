"""``vcm demo``: the whole product on the embedded clip, in a few minutes on 2 CPU cores."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.table import Table

from vcm import progress
from vcm.device import resolve_device
from vcm.nerv.run import fit_video, plan
from vcm.samples import sample_clip
from vcm.video import open_video

DEMO_PRESET = "demo"


def run_demo(out: Path, device: str = "auto", epochs: int | None = None) -> dict:
    """Fit the demo preset on carphone and print a summary table; returns the summary."""
    from vcm.cli.common import out as stdout

    dev = resolve_device(device)
    video = open_video(sample_clip("carphone"))
    spec, cfg = plan(DEMO_PRESET, epochs=epochs)
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)  # the demo's own previous output
    progress.log(f"vcm demo: fitting a NeRV ({DEMO_PRESET} preset) on {video.name} "
                 f"({video.width}x{video.height}, {video.num_frames} frames) on {dev}")
    fit_result = fit_video(video, spec, cfg, out / "nerv", dev)
    m = fit_result.metrics
    summary = {
        "clip": video.name, "frames": video.num_frames, "size": f"{video.width}x{video.height}",
        "params": m["params"], "epochs": m["epochs"], "fit_seconds": round(fit_result.seconds, 1),
        "psnr": round(m["psnr"], 3), "psnr_y": round(m["psnr_y"], 3), "ms_ssim": m["ms_ssim"],
        "run_dir": str(fit_result.run_dir),
    }
    table = Table(title="vcm demo", title_justify="left")
    for col in ("params", "epochs", "fit time", "PSNR (dB)", "MS-SSIM"):
        table.add_column(col, justify="right")
    table.add_row(f"{m['params']:,}", str(m["epochs"]), f"{fit_result.seconds:.0f} s", f"{m['psnr']:.2f}",
                  "–" if m["ms_ssim"] is None else f"{m['ms_ssim']:.4f}")
    if not progress.is_quiet():
        stdout.print(table)
    return summary
