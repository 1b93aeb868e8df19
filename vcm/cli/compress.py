from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vcm.cli import app
from vcm.cli.common import DeviceOpt, JsonOpt, fmt, print_json, start, table


@app.command()
def compress(
    run: Path = typer.Argument(Path("runs/latest"), help="A run directory from vcm fit (default: the newest)."),
    prune: float = typer.Option(0.0, "--prune", help="Fraction of stem and conv weights pruned by magnitude (e.g. 0.4)."),
    bits: int = typer.Option(8, "--bits", help="Quantization bits for every tensor group."),
    group_bits: Optional[str] = typer.Option(None, "--group-bits", help="Per-group bits, e.g. head=10,bias=12 (groups: stem, blocks, head, bias)."),
    finetune_epochs: Optional[int] = typer.Option(None, "--finetune-epochs", min=0, help="Fine-tune epochs after pruning / for QAT (default 10 % of the fit's)."),
    qat: bool = typer.Option(False, "--qat", help="Quantization-aware fine-tuning (straight-through estimator)."),
    seed: int = typer.Option(0, "--seed"),
    input: Optional[Path] = typer.Option(None, "--input", help="The source video, if it moved since vcm fit."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output .nerv file (default: inside the run directory)."),
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Prune, fine-tune, quantize and entropy-code a fitted NeRV into a self-describing .nerv file."""
    from vcm.codec.compress import CompressOptions, compress_run, parse_group_bits
    from vcm.device import resolve_device

    start(json_out)
    if not run.exists():
        from vcm.errors import VcmError

        raise VcmError(f"{run} does not exist; run vcm fit first or name a run directory")
    opts = CompressOptions(prune=prune, bits=bits, group_bits=parse_group_bits(group_bits),
                           finetune_epochs=finetune_epochs, qat=qat, seed=seed)
    r = compress_run(run, out, opts, resolve_device(device), source=input)
    if json_out:
        print_json({k: v for k, v in r.items() if k != "per_frame"})
        return
    table(f"vcm compress: {r['sequence']}", [
        ("bitstream", r["bitstream"]), ("size", f"{r['bytes']:,} bytes"),
        ("rate", f"{r['kbps']:.2f} kbps ({r['bpp']:.5f} bpp) at {r['fps']:g} fps"),
        ("PSNR (decoded)", fmt(r["psnr"], 2, " dB")), ("PSNR-Y", fmt(r["psnr_y"], 2, " dB")),
        ("MS-SSIM", fmt(r["ms_ssim"], 4)),
        ("params", f"{r['params']:,} ({r['nonzero_params']:,} non-zero)"),
        ("prune / bits / QAT", f"{r['prune']:.0%} / {r['bits']} / {'yes' if r['qat'] else 'no'}"),
        ("encode time", f"{r['encode_seconds']:.1f} s"),
    ])


@app.command()
def decode(
    bitstream: Path = typer.Argument(..., help="A .nerv file."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output: .yuv, .mp4/.mkv (lossless) or a folder of PNGs."),
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Rebuild the network from a .nerv file alone and write its frames."""
    from vcm.codec.compress import decode_file
    from vcm.device import resolve_device
    from vcm.video import write_video

    start(json_out)
    frames, stream, fps = decode_file(bitstream, resolve_device(device))
    v = stream.video
    if out is not None:
        write_video(out, frames, v["fps"])
    result = {"bitstream": str(bitstream), "frames": v["frames"], "size": f"{v['width']}x{v['height']}",
              "fps": v["fps"], "source_frames": v["source_frames"], "decode_frames_per_second": fps,
              "out": str(out) if out else None}
    if json_out:
        print_json(result)
        return
    table(f"vcm decode: {bitstream.name}", [
        ("frames", f"{v['frames']} (source {v['source_frames'][0]}:{v['source_frames'][1]})"),
        ("size", result["size"]), ("decode speed", f"{fps:.1f} frames/s"), ("written to", str(out) if out else "– (use --out)"),
    ])
