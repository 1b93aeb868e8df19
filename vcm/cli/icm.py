from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vcm.cli.app import app
from vcm.schema import SEED_MAX
from vcm.samples import resolve
from vcm.cli.common import (BitDepthOpt, DeviceOpt, FpsOpt, JsonOpt, OverwriteOpt, SizeOpt, SourceFramesOpt,
                            check_frames_output, decoded_frames_text, exit_stopped, fmt, print_json, probe_input,
                            quality_rows, refuse_unused, start, table)

icm_app = typer.Typer(help="SA-ICM: the edge-trained learned image codec (intra baseline).", no_args_is_help=True)
app.add_typer(icm_app, name="icm")


@icm_app.command("train")
def icm_train(
    folder: Optional[Path] = typer.Argument(None, metavar="IMAGES", show_default=False,
                                            help="Folder of training images (PNG/JPEG); or --images."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of training images (PNG/JPEG)."),
    val: Optional[Path] = typer.Option(None, "--val", help="Folder of validation images."),
    sam_checkpoint: Optional[Path] = typer.Option(None, "--sam-checkpoint", help="SAM weights for the edge masks."),
    sam_model: Optional[str] = typer.Option(None, "--sam-model", help="SAM model of --sam-checkpoint (vit_h, vit_l, vit_b, tiny). Default vit_h."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="SAM threshold α (pred_iou_thresh). Default 0.93."),
    lmbda: float = typer.Option(0.05, "--lambda", help="Rate-distortion trade-off λ (paper: 0.05)."),
    masks: str = typer.Option("sam", "--masks", help="sam (eq. 5) or none (the plain eq. 1 baseline)."),
    arch: str = typer.Option("tcm", "--arch", help="tcm, tcm-tiny, cheng2020-attn or mbt2018-mean."),
    epochs: int = typer.Option(50, "--epochs", min=1, help="Training epochs."),
    batch: int = typer.Option(8, "--batch", min=1, help="Image crops per step."),
    crop: int = typer.Option(256, "--crop", min=16, help="Side of the random square training crops, in pixels."),
    lr: float = typer.Option(1e-4, "--lr", help="Adam learning rate of the codec network."),
    steps: Optional[int] = typer.Option(None, "--steps-per-epoch", min=1, help="Steps per epoch (default: one pass over the images)."),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Seed of initialisation and crops."),
    out: Path = typer.Option(Path("runs/icm"), "--out", "-o", help="Run folder: checkpoint, history and cached edge masks."),
    resume: bool = typer.Option(False, "--resume", metavar="", help="Continue the interrupted training in --out."),
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Train a learned image codec with the edge-masked SA-ICM loss (5), resumably."""
    from vcm.icm.train_config import IcmTrainConfig, check_run_folder
    from vcm.outputs import check_output

    start()
    images = _training_images(folder, images)
    if masks == "none":
        refuse_unused([("--alpha", alpha), ("--sam-checkpoint", sam_checkpoint), ("--sam-model", sam_model)],
                      "--masks none", "the plain loss uses no edge masks")
    check_output(out, inputs=[images, val, sam_checkpoint], kind="dir")
    cfg = IcmTrainConfig(arch=arch, lmbda=lmbda, epochs=epochs, batch=batch, crop=crop, lr=lr, masks=masks,
                         **({} if alpha is None else {"alpha": alpha}),
                         **({} if sam_model is None else {"sam_model": sam_model}), seed=seed,
                         steps_per_epoch=steps)
    cfg.check()  # before torch and CompressAI are imported: a wrong value or folder is refused at once
    check_run_folder(out, resume)
    from vcm.device import resolve_device
    from vcm.icm.train import train

    r = train(images, out, cfg, resolve_device(device), val, sam_checkpoint, resume)
    if "stopped" in r:
        where = r["stopped"]
        exit_stopped(f"stopped in epoch {where['epoch']} at step {where['step']} of {where['steps']}; checkpoint saved "
                     f"in {r['checkpoint']}")
    if json_out:
        print_json(r)
        return
    last = r["history"][-1]
    rows = [("checkpoint", r["checkpoint"]), ("epochs", str(r["epochs"])), ("loss", fmt(last["loss"], 4)),
            ("train bpp", fmt(last["bpp"], 4)), ("time", f"{r['seconds']:.1f} s")]
    if "val" in last:
        v = last["val"]
        rows += [("val bpp", fmt(v["bpp"], 4)), ("val PSNR", fmt(v["psnr"], 2, " dB")), ("val masked PSNR", fmt(v["masked_psnr"], 2, " dB"))]
    table(f"vcm icm train ({'SA-ICM' if masks == 'sam' else 'plain'}, λ={lmbda})", rows)


def _training_images(folder: Path | None, images: Path | None) -> Path:
    """The training images' folder, given as the argument (as `vcm fit VIDEO` takes its video) or as --images."""
    from vcm.errors import VcmError

    if folder is None and images is None:
        raise VcmError("vcm icm train needs a folder of training images: vcm icm train FOLDER (or --images FOLDER)")
    if folder is not None and images is not None and folder != images:
        raise VcmError(f"the training images are given twice ({folder} and --images {images}); give one folder")
    return folder if folder is not None else images


@icm_app.command("encode")
def icm_encode(
    input: Path = typer.Argument(..., help="A video (any format vcm reads) or a single image."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Codec checkpoint (vcm's or the official icm_78/icm_93)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Architecture, if the checkpoint does not say."),
    frames: str = SourceFramesOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output .icm file (default: the input's name with .icm, in the working folder)."),
    device: str = DeviceOpt,
    size: Optional[str] = SizeOpt,
    fps: Optional[float] = FpsOpt,
    bit_depth: Optional[int] = BitDepthOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Code every frame with a learned image codec into a .icm file (rate = its size)."""
    from vcm.errors import VcmError
    from vcm.bitstream.stream_output import check_own_stream
    from vcm.outputs import check_output

    start()
    input = resolve(input)  # sample:NAME → the bundled clip
    # in the working folder, as runs/, masks/ and eval/: beside the input it went into a read-only dataset's folder
    # (refused), or for sample:NAME into the installed package's data (without a word)
    from vcm.video.source import folder_name

    # a folder of frames by its own name (`vcm icm encode .`: a traceback, `..`: "...icm")
    target = out or Path(folder_name(input) if input.is_dir() else input.name).with_suffix(".icm")
    if target.suffix != ".icm":
        raise VcmError(f"--out {target}: a bitstream file name must end in .icm")
    check_output(target, inputs=[input, checkpoint], kind="file")  # before torch and CompressAI are imported
    check_own_stream(target)
    from vcm.fsutil import require_input
    from vcm.icm.archs import missing_checkpoint

    require_input(checkpoint, "checkpoint", missing=missing_checkpoint(checkpoint))
    from vcm.device import resolve_device
    from vcm.icm.codec import encode_video
    from vcm.video import load

    video = load(probe_input(input, size, fps, bit_depth), frames)
    from vcm.icm.codec import decode_icm_file
    from vcm.quality import summarize
    from vcm.rate import rate

    r = encode_video(video, checkpoint, target, resolve_device(device), arch)
    r.update(rate(r["bytes"], video.fps, video.num_frames, video.width, video.height))
    # quality as vcm compress measures it: on the frames the written file decodes to
    decoded, _ = decode_icm_file(target, resolve_device(device), checkpoint)
    quality = summarize(video.frames_u8, decoded)
    r.update({k: quality[k] for k in ("psnr", "psnr_y", "ms_ssim")})
    if json_out:
        print_json(r)
        return
    table(f"vcm icm encode: {input.name}", [("bitstream", r["bitstream"]), ("size", f"{r['bytes']:,} bytes"),
                                            ("rate", f"{r['kbps']:.2f} kbps ({r['bpp']:.4f} bpp)"),
                                            *quality_rows(r, video.height, video.width),
                                            ("speed", f"{r['frames_coded'] / r['seconds']:.2f} frames/s"
                                                      + (f" (over the {r['frames_coded']} frames coded in this run; "
                                                         f"{r['frames_continued']} were kept from a stopped one)"
                                                         if r.get("frames_continued") else ""))])


@icm_app.command("decode")
def icm_decode(
    bitstream: Path = typer.Argument(..., help="A .icm file."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="The codec checkpoint (default: beside the file)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output .yuv, .y4m, .mp4/.mkv (lossless), a folder of PNGs, or .png for one frame."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Decode only frames A:B of the stream (0-based, B exclusive): every frame of an image codec decodes on its own."),
    overwrite: bool = OverwriteOpt,
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Decode a .icm file (or some of its frames) and write its frames (as they are decoded)."""
    import contextlib
    import time

    from vcm import progress
    from vcm.errors import VcmError

    start()
    if bitstream.is_dir():  # the usual mistakes are answered before torch and CompressAI are imported
        from vcm.bitstream.container import folder_given

        raise VcmError(folder_given(bitstream, ".icm"))
    from vcm.fsutil import require_input

    require_input(bitstream)
    piped = check_frames_output(out, [bitstream, checkpoint], overwrite, json_out)
    from vcm.device import resolve_device
    from vcm.bitstream.decode_plan import DecodePlan
    from vcm.codec.decode import frame_range
    from vcm.icm.codec import open_icm
    from vcm.video.writer import check_raw_name, open_writer

    t0 = time.time()
    header, selected, decoded = open_icm(bitstream, resolve_device(device), checkpoint,
                                         lambda header: frame_range(frames, header["frames"]))
    plan = DecodePlan("vcm ICM", bitstream.name, len(selected), header["width"], header["height"],
                      bitstream.stat().st_size)
    plan.check(out)
    read_back = check_raw_name(out, header["width"], header["height"], header["fps"]) if out is not None and not piped else ""
    progress.log(f"decode {bitstream.name}: {plan.describe(out)}")
    first = header["source_frames"][0]
    with progress.progress(f"decode {bitstream.name}", len(selected)) as bar, \
            (open_writer(out, header["fps"], first_frame=first + selected.start) if out is not None
             else contextlib.nullcontext(None)) as write:
        for frame in decoded:
            if write is not None:
                write(frame)
            bar.advance(1)
    fps = len(selected) / max(time.time() - t0, 1e-9)
    r = {"bitstream": str(bitstream), "frames": len(selected), "stream_frames": [selected.start, selected.stop],
         "source_frames": [first + selected.start, first + selected.stop],
         "size": f"{header['width']}x{header['height']}", "fps": header["fps"], "arch": header["arch"],
         "decode_frames_per_second": fps, "out": "stdout (YUV4MPEG2)" if piped else str(out) if out else None}
    if json_out:
        print_json(r)
        return
    table(f"vcm icm decode: {bitstream.name}", [
        ("frames", decoded_frames_text(selected, header["frames"], first)), ("size", r["size"]),
        ("codec", f"{header['arch']} (checkpoint {header['checkpoint']})"), ("decode speed", f"{fps:.1f} frames/s"),
        ("written to", r["out"] or "– (use --out)"),
    ] + ([("", read_back)] if read_back else []), stderr=piped)
