from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from vcm.cli import app
from vcm.samples import resolve
from vcm.cli.common import BitDepthOpt, DeviceOpt, FpsOpt, JsonOpt, SizeOpt, print_json, probe_input, start


@app.command()
def masks(
    input: Path = typer.Argument(..., help="The video whose frames get edge masks."),
    sam_checkpoint: Path = typer.Option(..., "--sam-checkpoint", help="SAM weights, e.g. sam_vit_h_4b8939.pth."),
    sam_model: str = typer.Option("vit_h", "--sam-model", help="vit_h, vit_l, vit_b (official) or tiny (tests)."),
    alpha: Optional[List[float]] = typer.Option(None, "--alpha", help="SAM confidence threshold α (repeat for several: one file each). Default 0.93."),
    config: Optional[Path] = typer.Option(None, "--config", help="Generator settings YAML (default configs/masks/default.yaml)."),
    dilation: Optional[int] = typer.Option(None, "--dilation", min=0, help="Dilate edges by N pixels (default from the config: 0)."),
    frames: str = typer.Option("auto", "--frames", help="ctc | all | A:B (source frames, B exclusive)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Mask file (.npz); with several α, _a<α> is added to the name."),
    device: str = DeviceOpt,
    size: Optional[str] = SizeOpt,
    fps: Optional[float] = FpsOpt,
    bit_depth: Optional[int] = BitDepthOpt,
    json_out: bool = JsonOpt,
) -> None:
    """SAM automatic masks → Canny edges → cached, bit-packed per-frame edge masks (resumable)."""
    from vcm.cli.common import out as stdout
    from vcm.device import resolve_device
    from vcm.masks.make import make_masks
    from vcm.masks.sam import load_settings
    from vcm.video import load

    start(json_out)
    input = resolve(input)  # sample:NAME → the bundled clip
    video = load(probe_input(input, size, fps, bit_depth), frames)
    settings = load_settings(config, dilation)
    results = make_masks(video, sam_model, sam_checkpoint, alpha or [0.93], settings, out, resolve_device(device))
    if json_out:
        print_json(results)
        return
    from rich.table import Table

    t = Table(title=f"vcm masks: {video.name} ({video.num_frames} frames)", title_justify="left")
    for col in ("α", "file", "edge pixels", "masks/s"):
        t.add_column(col, justify="right")
    for r in results:
        mps = "cached" if r["masks_per_second"] is None else f"{r['masks_per_second']:.2f}"
        t.add_row(f"{r['alpha']:g}", r["path"], f"{100 * r['edge_fraction']:.2f} %", mps)
    stdout.print(t)
