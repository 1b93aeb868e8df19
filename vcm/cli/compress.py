from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from vcm.cli.app import app
from vcm.schema import SEED_MAX
from vcm.cli.common import (DeviceOpt, JsonOpt, OverwriteOpt, check_frames_output, decoded_frames_text, print_json,
                            quality_rows, start, table)
from vcm.words import counted


@app.command()
def compress(
    run: Path = typer.Argument(Path("runs/latest"), help="A run directory from vcm fit (default: the newest)."),
    lam: Optional[list[float]] = typer.Option(None, "--lambda", help="Rate–distortion method: train through learned quantizers with loss D + λ·bpp and code with the trained entropy models. Repeat for several streams from one fit (e.g. --lambda 0.3 --lambda 1)."),
    prune: float = typer.Option(0.0, "--prune", help="Fraction of stem and conv weights pruned by magnitude (e.g. 0.4); composes with --lambda."),
    bits: Optional[int] = typer.Option(None, "--bits", help="Paper pipeline: quantization bits for every tensor group (default 8)."),
    group_bits: Optional[str] = typer.Option(None, "--group-bits", help="Paper pipeline: per-group bits, e.g. head=10,bias=12 (NeRV groups: stem, blocks, head, bias)."),
    finetune_epochs: Optional[int] = typer.Option(None, "--finetune-epochs", min=0, help="Paper pipeline: fine-tune epochs after pruning / for QAT (default 10 % of the fit's)."),
    qat: bool = typer.Option(False, "--qat", metavar="", help="Paper pipeline: quantization-aware fine-tuning (straight-through estimator)."),
    rd_epochs: Optional[int] = typer.Option(None, "--rd-epochs", min=1, help="Rate–distortion method: training epochs per λ (default half of the fit's)."),
    rd_steps: Optional[int] = typer.Option(None, "--rd-steps", min=1, help="Rate–distortion method: optimiser steps per λ, the same on any clip (instead of --rd-epochs)."),
    target_kbps: Optional[float] = typer.Option(None, "--target-kbps", help="Rate control: search λ (warm-started trials) for a stream of this rate; --lambda is the first guess (default 1; a rate-aware fit's own λ)."),
    target_psnr: Optional[float] = typer.Option(None, "--target-psnr", help="Rate control: search λ for this luma PSNR (dB) of the decoded frames."),
    chain: Optional[bool] = typer.Option(None, "--chain/--no-chain", help="Several --lambda: each λ's stage starts where the next-smaller λ's ended, not from the fit (default: the fit's preset, rd_chain)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, max=SEED_MAX, help="Seed of fine-tuning / rate–distortion training (same seed, same bytes; default 0)."),
    input: Optional[Path] = typer.Option(None, "--input", help="The source video (a path or sample:NAME), if it moved since vcm fit; a sample clip is found in this environment by itself."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output .nerv file (default: inside the run directory); with several --lambda, a folder."),
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Compress a fitted network into a self-describing .nerv file: the paper's prune/quantize pipeline (--prune/--bits), or rate–distortion training (--lambda)."""
    from vcm.errors import VcmError

    start()
    if not (run / "checkpoint.pt").is_file():  # answered before torch is even imported
        what = "does not exist" if not run.exists() else "holds no checkpoint.pt"
        raise VcmError(f"{run} {what}; run vcm fit first or name a run directory")
    from vcm.bitstream.stream_output import check_stream_output
    from vcm.outputs import check_output

    if out is not None and len(lam or []) <= 1:  # checked again with the run's inputs once it is read
        check_stream_output(out, ".nerv", protected=[run / n for n in ("checkpoint.pt", "config.json", "metrics.json")])
    from vcm.codec.compress import CompressOptions, RDOptions, compress_many, parse_group_bits
    from vcm.device import resolve_device

    rate_distortion = bool(lam) or target_kbps is not None or target_psnr is not None
    if rate_distortion and (bits is not None or group_bits or qat or finetune_epochs is not None):
        raise VcmError("--bits/--group-bits/--qat/--finetune-epochs belong to the paper pipeline; "
                       "the rate–distortion method (--lambda, --target-kbps/--target-psnr) learns its quantization")
    if not rate_distortion and (rd_steps is not None or rd_epochs is not None):  # the pipeline ran without them
        raise VcmError("--rd-steps/--rd-epochs belong to the rate–distortion method (--lambda, --target-kbps/"
                       "--target-psnr); the paper pipeline fine-tunes for --finetune-epochs")
    if rd_steps is not None and rd_epochs is not None:  # --rd-steps used to win without a word
        raise VcmError("--rd-steps and --rd-epochs both set the rate–distortion stage's length; give one of them")
    if lam and len(set(lam)) < len(lam):  # both streams went to one file, the second (chained) over the first
        twice = next(v for v in lam if lam.count(v) > 1)
        raise VcmError(f"--lambda {twice:g} is given twice; give each λ once")
    if chain and (not lam or target_kbps is not None or target_psnr is not None):
        raise VcmError("--chain runs several --lambda one after another; rate control and the paper pipeline have no chain")
    if chain and len(lam) < 2:  # ignored without a word
        raise VcmError("--chain runs several --lambda one after another; one λ has no chain")
    paper = None if rate_distortion else CompressOptions(prune=prune, bits=8 if bits is None else bits,
                                                          group_bits=parse_group_bits(group_bits),
                                                          finetune_epochs=finetune_epochs, qat=qat)
    if seed is not None and paper is not None and not paper.draws_at_random():
        # every seed gave the same bytes: magnitude pruning and quantization draw nothing at random
        why = ("--finetune-epochs 0 fine-tunes nothing" if finetune_epochs == 0 else
               "fine-tuning, its one random part, runs after --prune or with --qat")
        raise VcmError(f"--seed {seed}: nothing in this compression is random ({why}); drop --seed")
    seed_given, seed = seed is not None, 0 if seed is None else seed
    if target_kbps is not None or target_psnr is not None:
        from vcm.codec.rate_control import compress_to_target
        from vcm.codec.rate_control import Target

        if lam is not None and len(lam) > 1:
            raise VcmError("rate control finds one λ: give at most one --lambda (its first guess)")
        target = Target(kbps=target_kbps, psnr_y=target_psnr)
        target.check()
        opts = RDOptions(lam=lam[0] if lam else 1.0, epochs=rd_epochs, steps=rd_steps, prune=prune, seed=seed)
        reports = [compress_to_target(run, out, target, opts, resolve_device(device), source=input,
                                      guess_given=bool(lam))]
        lam = [reports[0]["lambda"]]
    elif lam:
        opts_list = [RDOptions(lam=v, epochs=rd_epochs, steps=rd_steps, prune=prune, seed=seed) for v in lam]
    else:
        opts_list = [replace(paper, seed=seed)]
    if target_kbps is None and target_psnr is None:
        outs, out_dir = None, None
        if out is not None and len(opts_list) > 1:
            check_output(out, inputs=[input], kind="dir")
            out_dir = out
        elif out is not None:
            outs = [out]
        reports = compress_many(run, opts_list, resolve_device(device), source=input, outs=outs, chain=chain,
                                seed_given=seed_given, out_dir=out_dir)
    if json_out:  # one stream: its report; several λ: a list of them
        short = [{k: v for k, v in r.items() if k not in ("per_frame", "rd_history")} for r in reports]
        print_json(short if len(lam or []) > 1 else short[0])
        return
    for r in reports:
        table(f"vcm compress: {r['sequence']}", _report_rows(r))


def _report_rows(r: dict) -> list[tuple[str, str]]:
    """The table of one stream's report: size, rate, quality, parameters, where the bytes go, rate control."""
    start = f", from λ {r['start']['lambda']:g}'s stage" if r.get("start") else ""
    pruned = f", {r['prune']:.0%} pruned" if r.get("prune") else ""
    method = (f"rate–distortion, λ = {r['lambda']:g}, {r['rd_steps']:,} steps{pruned}{start}" if r["coding"] == "rd" else
              f"prune {r['prune']:.0%} / {r['bits']} bits / QAT {'yes' if r['qat'] else 'no'}")
    rows = [
        ("bitstream", r["bitstream"]), ("method", method), ("size", f"{r['bytes']:,} bytes"),
        ("rate", f"{r['kbps']:.2f} kbps ({r['bpp']:.5f} bpp) at {r['fps']:g} fps"),
        *quality_rows(r, r["height"], r["width"]),
        ("params", f"{r['params']:,} ({r['nonzero_params']:,} non-zero), {r['bits_per_param']:.2f} bits each"),
        ("decoder", f"{r['decoder_kmac_per_pixel']:.2f} kMAC per pixel"),
    ]
    if r["coding"] == "rd":
        rows.append(("rate estimate", f"{r['estimate_bytes']:,.0f} bytes (file {r['estimate_error']:+.2%} vs estimate; "
                                      f"{r['side_bytes']:,} bytes side information)"))
        from vcm.codec.rate_control import unsettled

        if unsettled(r):
            rows.append(("", "the stage ended before its entropy models caught up with its quantization steps, far "
                             "from where its λ leads: more --rd-steps let it get there"))
    from vcm.codec.breakdown import part_text

    rows += [(f"  {part['part']}", part_text(part)) for part in r.get("breakdown") or []]
    if r.get("rate_control"):
        from vcm.codec.rate_control import achieved, beyond_hint, missed_hint

        a = achieved(r)
        rows.append(("rate control", f"target {a['target']:g} {a['unit']}, achieved {a['achieved']:.2f} {a['unit']} "
                                     f"({a['error_text']}) in {counted(len(r['rate_control']['trials']), 'trial')}"))
        hint = beyond_hint(a, r["rate_control"]["lambda"]) or missed_hint(a, r["rate_control"])
        if hint:
            rows.append(("", hint))
    chained = f" ({r['chain_encode_seconds']:.1f} s with the chain's earlier stages)" if r.get("chain_encode_seconds") else ""
    rows.append(("encode time", f"{r['encode_seconds']:.1f} s{chained}"))
    return rows


@app.command()
def decode(
    bitstream: Path = typer.Argument(..., help="A .nerv file."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output: .yuv, .y4m, .mp4/.mkv (lossless), a folder of PNGs, .png for one frame, or - for Y4M on stdout (a pipe: | ffplay -)."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Decode only frames A:B of the stream (0-based, B exclusive): every frame of a neural representation decodes on its own."),
    allow_large: bool = typer.Option(False, "--allow-large", metavar="", help="Decode a stream whose frame count or decoding work is far out of proportion to its size (refused by default; see VCM_WORK_BUDGET)."),
    overwrite: bool = OverwriteOpt,
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Rebuild the network from a .nerv file alone and write its frames (as they are decoded)."""
    import time

    from vcm import progress
    from vcm.errors import VcmError

    start()
    if bitstream.is_dir():  # the usual mistakes are answered before torch is imported
        from vcm.bitstream.container import folder_given

        raise VcmError(folder_given(bitstream, ".nerv"))
    from vcm.fsutil import require_input

    require_input(bitstream)
    piped = check_frames_output(out, [bitstream], overwrite, json_out)
    from vcm.bitstream.decode_plan import human_macs
    from vcm.codec.decode import decode_stream, frame_range, iter_frames
    from vcm.device import resolve_device
    from vcm.video.writer import check_raw_name, open_writer

    t0 = time.time()
    stream = decode_stream(bitstream, allow_large=True)  # its plan is checked below, with the output and range
    v = stream.video
    selected = frame_range(frames, v["frames"])
    plan = stream.plan(bitstream.stat().st_size, selected, bitstream.name)
    plan.check(out, allow_large)
    read_back = check_raw_name(out, v["width"], v["height"], v["fps"]) if out is not None and not piped else ""
    progress.log(f"decode {bitstream.name}: {plan.describe(out)}")
    first = v["source_frames"][0]
    with progress.progress(f"decode {bitstream.name}", len(selected)) as bar, \
            (open_writer(out, v["fps"], first_frame=first + selected.start) if out is not None
             else contextlib.nullcontext(None)) as write:
        for chunk in iter_frames(stream, resolve_device(device), selected):
            if write is not None:
                write(chunk)
            bar.advance(len(chunk))
    fps = len(selected) / max(time.time() - t0, 1e-9)
    result = {"bitstream": str(bitstream), "frames": len(selected), "stream_frames": [selected.start, selected.stop],
              "size": f"{v['width']}x{v['height']}", "fps": v["fps"],
              "source_frames": [first + selected.start, first + selected.stop], "decode_frames_per_second": fps,
              "estimated_gmac": plan.macs / 1e9, "out": str(out) if out else None}
    if json_out:
        print_json(result)
        return
    table(f"vcm decode: {bitstream.name}", [
        ("frames", decoded_frames_text(selected, v["frames"], first)),
        ("size", result["size"]), ("work", f"{human_macs(plan.macs)} (estimated)"),
        ("decode speed", f"{fps:.1f} frames/s"),
        ("written to", "stdout (YUV4MPEG2)" if piped else str(out) if out else "– (use --out)"),
    ] + ([("", read_back)] if read_back else []), stderr=piped)
