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
    progress.log("vcm demo: compressing (prune 40 %, 8 bits) and decoding the bitstream")
    from vcm.codec.compress import CompressOptions, compress_run, decode_file

    comp = compress_run(fit_result.run_dir, out / "demo.nerv", CompressOptions(prune=0.4, bits=8), dev)
    decoded, _, decode_fps = decode_file(out / "demo.nerv", dev)
    summary = {
        "clip": video.name, "frames": video.num_frames, "size": f"{video.width}x{video.height}",
        "params": m["params"], "epochs": m["epochs"], "fit_seconds": round(fit_result.seconds, 1),
        "psnr": round(m["psnr"], 3), "psnr_y": round(m["psnr_y"], 3), "ms_ssim": m["ms_ssim"],
        "run_dir": str(fit_result.run_dir),
        "bitstream": comp["bitstream"], "bytes": comp["bytes"], "kbps": round(comp["kbps"], 3),
        "bpp": comp["bpp"], "decoded_psnr": round(comp["psnr"], 3), "decode_fps": round(decode_fps, 1),
    }
    table = Table(title=f"vcm demo: {video.name} ({video.width}x{video.height}, {video.num_frames} frames)",
                  title_justify="left")
    has_ms = m["ms_ssim"] is not None  # MS-SSIM needs frames > 160 px on the short side
    for col in ("stage", "params", "epochs", "time", "bytes", "kbps", "PSNR dB") + (("MS-SSIM",) if has_ms else ()):
        table.add_column(col, justify="right")
    rows = [
        ("fit", f"{m['params']:,}", str(m["epochs"]), f"{fit_result.seconds:.0f} s", "–", "–", f"{m['psnr']:.2f}",
         m["ms_ssim"]),
        ("compress", f"{comp['nonzero_params']:,} nz", str(comp["finetune_epochs"]), f"{comp['encode_seconds']:.0f} s",
         f"{comp['bytes']:,}", f"{comp['kbps']:.1f}", f"{comp['psnr']:.2f}", comp["ms_ssim"]),
    ]
    for *cells, ms in rows:
        table.add_row(*cells, *((f"{ms:.4f}",) if has_ms else ()))
    if not progress.is_quiet():
        stdout.print(table)
    return summary
