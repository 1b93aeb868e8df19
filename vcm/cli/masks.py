from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from vcm.cli.app import app
from vcm.samples import resolve
from vcm.cli.common import (BitDepthOpt, DeviceOpt, JsonOpt, SizeOpt, SourceFramesOpt, UnreadFpsOpt, print_json,
                            probe_input, refuse_unused, start)


@app.command()
def masks(
    input: Path = typer.Argument(..., help="The video whose frames get edge masks."),
    sam_checkpoint: Optional[Path] = typer.Option(None, "--sam-checkpoint", help="SAM weights, e.g. sam_vit_h_4b8939.pth (needed for --source sam)."),
    source: str = typer.Option("sam", "--source", help="sam (the paper's: SAM masks → Canny), canny (Canny on the frame's luma, no weights) or boxes:DETECTOR (outlines of a detector's boxes, e.g. boxes:opencv-face)."),
    fill: bool = typer.Option(False, "--fill", metavar="", help="With --source boxes: box interiors instead of outlines."),
    sam_model: Optional[str] = typer.Option(None, "--sam-model", help="vit_h (default), vit_l, vit_b (official) or tiny (tests)."),
    alpha: Optional[List[float]] = typer.Option(None, "--alpha", help="SAM confidence threshold α (repeat for several: one file each). Default 0.93."),
    config: Optional[Path] = typer.Option(None, "--config", help="Generator settings YAML (default configs/masks/default.yaml)."),
    dilation: Optional[int] = typer.Option(None, "--dilation", min=0, help="Dilate edges by N pixels (default from the config: 0)."),
    frames: str = SourceFramesOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Mask file (.npz); with several α, _a<α> is added to the name."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Make the masks again over a mask file made from other frames, weights or settings (one made the same way is reused as it is)."),
    device: str = DeviceOpt,
    size: Optional[str] = SizeOpt,
    fps: Optional[float] = UnreadFpsOpt,
    bit_depth: Optional[int] = BitDepthOpt,
    json_out: bool = JsonOpt,
) -> None:
    """SAM automatic masks → Canny edges → cached, bit-packed per-frame edge masks (resumable).

    Without SAM's weights: --source canny, or --source boxes:DETECTOR (the outlines of a detector's boxes)."""
    from vcm.cli.common import out as stdout
    from vcm.device import resolve_device
    from vcm.errors import VcmError
    from vcm.masks.sources import parse_source
    from vcm.video import load

    start()
    refuse_unused([("--fps", fps)], "vcm masks", "masks are made frame by frame; no frame rate is read")
    kind, _ = parse_source(source)
    if kind != "sam":  # (and --fill named a Canny file _fill)
        refuse_unused([("--alpha", alpha), ("--sam-checkpoint", sam_checkpoint), ("--sam-model", sam_model),
                       ("--config", config)],
                      f"--source {source}", "it is for --source sam")
    if kind != "boxes":
        refuse_unused([("--fill", fill)], f"--source {source}", "it is for --source boxes:DETECTOR")
    if kind == "canny":  # it was ignored without a word (a CUDA asked for on a machine without one too)
        refuse_unused([("--device", None if device == "auto" else device)], "--source canny",
                      "Canny runs on the CPU")
    if kind == "sam" and sam_checkpoint is None:
        raise VcmError("--source sam needs --sam-checkpoint PATH (or use --source canny, which needs no weights)")
    if kind == "sam":
        from vcm.masks.sam import check_alpha, check_sam_model

        alpha = [check_alpha(a) for a in alpha or [None]]
        sam_model = check_sam_model(sam_model)  # before any frame is read
    input = resolve(input)  # sample:NAME → the bundled clip
    if out is not None:  # `--out clip.yuv` used to replace the input video with the masks
        from vcm.outputs import check_output

        if Path(out).suffix != ".npz":
            raise VcmError(f"--out {out}: a mask file name must end in .npz")
        check_output(out, inputs=[input, sam_checkpoint, config], kind="file")
    dev = None if kind == "canny" else resolve_device(device)  # before any frame is read
    video = load(probe_input(input, size, None, bit_depth, need_fps=False), frames)
    if kind != "sam":
        from vcm.masks.sources import SourceSettings, default_path, make_source_masks

        settings = SourceSettings(dilation=dilation or 0, fill=fill)
        target = Path(out) if out is not None else default_path(video, source, settings, Path("masks"))
        results = [{**make_source_masks(video, source, target, settings, overwrite=overwrite, device=dev),
                    "alpha": None, "masks_per_second": None}]
    else:
        from vcm.masks.make import make_masks
        from vcm.masks.sam import load_settings

        settings = load_settings(config, dilation)
        results = make_masks(video, sam_model, sam_checkpoint, alpha, settings, out, dev,
                             overwrite=overwrite)
    if json_out:
        print_json(results)
        return
    from rich.table import Table

    t = Table(title=f"vcm masks: {video.name} ({video.num_frames} frames)", title_justify="left")
    for col in ("α / source", "file", "edge pixels", "masks/s"):
        t.add_column(col, justify="right")
    for r in results:
        mps = ("cached" if r.get("cached") or r["masks_per_second"] is None and r["alpha"] is not None
               else f"{r['masks_per_second']:.2f}" if r["alpha"] is not None else f"{r['frames'] / max(r['seconds'], 1e-9):.1f}")
        t.add_row(f"{r['alpha']:g}" if r["alpha"] is not None else source, r["path"], f"{100 * r['edge_fraction']:.2f} %", mps)
    stdout.print(t)
