from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vcm.cli.app import app
from vcm.schema import SEED_MAX
from vcm.samples import resolve
from vcm.cli.common import (BitDepthOpt, DeviceOpt, FpsOpt, JsonOpt, SizeOpt, SourceFramesOpt, exit_stopped,
                            print_json, probe_input, quality_rows, refuse_unused, start, table)
from vcm.nerv.presets import presets_by_arch
from vcm.words import counted

PRESETS = "; ".join(f"{arch}: {', '.join(names)}" for arch, names in sorted(presets_by_arch().items(), reverse=True))


@app.command()
def fit(
    input: Path = typer.Argument(..., help="The video to model (.yuv, .y4m, mp4/avi/mkv, folder of frames)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Representation: nerv (the paper's NeRV), hinerv (hierarchical grids; vcm's strongest), or one an installed package adds (entry points vcm.representations). Picks the default preset of that representation."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help=f"A preset in configs/nerv/ ({PRESETS}). Default nerv-s, or hinerv-demo (vcm's codec: the demo's network and schedule) with --arch hinerv."),
    config: Optional[Path] = typer.Option(None, "--config", help="A YAML file with 'model' and 'train' sections (instead of --preset)."),
    params: Optional[str] = typer.Option(None, "--params", help="Parameter budget, e.g. 0.3M or 50k: widths are solved for it."),
    width_scale: Optional[float] = typer.Option(None, "--width-scale", help="Then every width of that network times this (e.g. 0.5: a smaller network of the same shape whose size follows the clip)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Training epochs (passes over all frames); default from the preset."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Optimiser steps of the whole fit, the same on any clip (instead of --epochs)."),
    budget: Optional[str] = typer.Option(None, "--budget", help="Wall-time budget, e.g. 5m: a few steps are timed and the fit gets the steps that fit in it (recorded as train.steps; --steps N reproduces it)."),
    batch: Optional[int] = typer.Option(None, "--batch", min=1, help="Frames per step."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (Adam, warmup then cosine)."),
    lam: Optional[float] = typer.Option(None, "--lambda", min=0.0, help="Rate-aware fit: after a warm-up (rate_start of the steps) train through learned quantizers with loss D + λ·bpp; then vcm compress --lambda with the same λ codes it as trained (another λ trains a stage from it)."),
    loss: Optional[str] = typer.Option(None, "--loss", help="nerv (eq. 4) or sa-nerv (eq. 6, needs edge masks)."),
    loss_impl: Optional[str] = typer.Option(None, "--loss-impl", help="SA-NeRV loss implementation: auto, torch or triton."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Edge-mask file from 'vcm masks' (for --loss sa-nerv)."),
    sam_checkpoint: Optional[Path] = typer.Option(None, "--sam-checkpoint", help="Make the edge masks first with this SAM checkpoint."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="SAM threshold α when masks are made here (with --sam-checkpoint). Default 0.93."),
    sam_model: Optional[str] = typer.Option(None, "--sam-model", help="SAM model of --sam-checkpoint (vit_h, the default; vit_l, vit_b, tiny)."),
    mask_source: Optional[str] = typer.Option(None, "--mask-source", help="Make the edge masks here without SAM: canny (edges of the frame's luma) or boxes:DETECTOR (outlines of a detector's boxes, e.g. boxes:opencv-face); SAM's when --sam-checkpoint is given."),
    frames: str = SourceFramesOpt,
    device: str = DeviceOpt,
    seed: Optional[int] = typer.Option(None, "--seed", min=0, max=SEED_MAX, help="Seed of initialisation and frame order (same seed, same network)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (default runs/<sequence>/)."),
    resume: bool = typer.Option(False, "--resume", metavar="", help="Continue the interrupted run in the run directory."),
    compile: bool = typer.Option(False, "--compile", metavar="", help="torch.compile the network (faster on CUDA after warm-up)."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", min=1, help="Save a checkpoint every N epochs."),
    save_video: Optional[Path] = typer.Option(None, "--save-video", help="Also write the decoded frames (.yuv, .mp4 or a folder)."),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Let --save-video replace an existing video (refused otherwise: it may be your original)."),
    size: Optional[str] = SizeOpt,
    fps: Optional[float] = FpsOpt,
    bit_depth: Optional[int] = BitDepthOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Model a video as a network of the NeRV family (NeRV or HiNeRV; one per sequence), resumably."""
    from vcm import progress
    from vcm.errors import VcmError
    from vcm.fsutil import check_unlocked, nothing_to_resume, require_input
    from vcm.nerv.presets import preset_path
    from vcm.outputs import check_output, check_replaceable
    from vcm.video import load, resolve_frames, write_video
    from vcm.video.source import rate_note

    start()
    # Everything that can be wrong with the command line is checked before a frame is read; the
    # usual mistakes (a path, a preset name, an output) even before torch is imported.
    input = resolve(input)  # sample:NAME → the bundled clip
    require_input(input, folder_ok=True)
    if config is not None and preset is not None:  # --config won without a word
        raise VcmError("--preset and --config both name the network and schedule to fit; give one")
    if config is not None or preset is not None:
        preset_path(config or preset)  # a Path: --config names a file, never a preset
    reads = [input, masks, config, sam_checkpoint]
    if out is not None:
        check_output(out, inputs=reads, kind="dir")
    from vcm.device import resolve_device
    from vcm.nerv.run import default_run_dir_for, fit_video, plan, preset_for
    from vcm.nerv.train import CHECKPOINT, check_new_run_dir, load_run, reconstruct

    if steps is not None and epochs is not None:  # --steps used to win without a word
        raise VcmError("--steps and --epochs both set the fit's length; give one of them")
    budget_seconds = _budget_seconds(budget, steps, epochs)
    spec, cfg = plan(preset_for(arch, config or preset), params, width_scale, epochs=epochs, steps=steps, batch=batch,
                     lr=lr, loss=loss, loss_impl=loss_impl, rate_lambda=lam, seed=seed, checkpoint_every=checkpoint_every,
                     compile=compile or None)
    _check_mask_options(cfg.loss, masks, sam_checkpoint, mask_source, alpha, sam_model)
    if cfg.loss != "sa-nerv":  # each was ignored without a word
        refuse_unused([("--loss-impl", loss_impl)], f"--loss {cfg.loss}", "it picks the SA-NeRV loss's implementation")
    if save_video is None:
        refuse_unused([("--overwrite", overwrite)], "a fit without --save-video", "it lets --save-video replace a "
                      "video")
    else:
        run_files = [out / name for name in ("checkpoint.pt", "config.json", "metrics.json")] if out else []
        check_output(save_video, inputs=reads, protected=run_files, kind="any", option="--save-video")
        check_replaceable(save_video, overwrite, option="--save-video")
    dev = resolve_device(device)
    info = probe_input(input, size, fps, bit_depth)
    source_frames = resolve_frames(info, frames)
    run_dir = out if out is not None else default_run_dir_for(info.name)
    check_unlocked(run_dir)  # before "already holds a run; pass --resume", which would be refused next
    if resume and not (run_dir / CHECKPOINT).is_file():
        raise VcmError(nothing_to_resume(run_dir, CHECKPOINT))
    if not resume and (run_dir / CHECKPOINT).exists():
        raise VcmError(f"{run_dir} already holds a run; pass --resume to continue it or --out DIR for a new one")
    if not resume:  # before any mask is made or frame read
        check_new_run_dir(run_dir)
    assumed = f" at {info.fps:g} fps {rate_note(info)}" if info.fps_assumed else ""
    lost = f"; {info.reading_note}" if info.reading_note else ""
    progress.log(f"reading {len(source_frames)} frames of {input.name} ({info.width}x{info.height}{lost}){assumed}")
    video = load(info, source_frames)
    masks_u8 = masks_meta = None
    if cfg.loss == "sa-nerv" or masks is not None or sam_checkpoint is not None or mask_source is not None:
        from vcm.masks.provide import masks_for_fit

        from vcm.masks.sam import check_alpha, check_sam_model

        masks_u8, masks_meta = masks_for_fit(video, masks, sam_checkpoint, check_alpha(alpha), run_dir, dev,
                                             sam_model=check_sam_model(sam_model), source=mask_source)
    if budget_seconds is not None:
        cfg = _budget_steps(budget, budget_seconds, spec, cfg, video, masks_u8, dev, run_dir if resume else None)
    result = fit_video(video, spec, cfg, out, dev, resume=resume, masks_u8=masks_u8, masks_meta=masks_meta)
    if result.interrupted:
        exit_stopped(f"stopped at step {result.steps_done} of {result.total_steps}; checkpoint saved in {result.run_dir}")
    if save_video is not None:
        model, _ = load_run(result.run_dir)
        write_video(save_video, reconstruct(model, video.num_frames, dev), video.fps,
                    first_frame=video.source_frames.start)
    _print_fit(result, video, cfg.loss, json_out)


def _budget_seconds(budget: str | None, steps: int | None, epochs: int | None) -> float | None:
    """``--budget`` in seconds (None without one); it sets the fit's length alone."""
    if budget is None:
        return None
    from vcm.errors import VcmError
    from vcm.nerv.budget import parse_duration

    if steps is not None or epochs is not None:
        raise VcmError("--budget sets the fit's length; drop --steps/--epochs, or drop --budget")
    return parse_duration(budget)


def _check_mask_options(loss: str, masks: Path | None, sam_checkpoint: Path | None, mask_source: str | None,
                        alpha: float | None, sam_model: str | None = None) -> None:
    """The edge-mask options choose one place (``vcm.masks.choice``'s rules), name files that exist, and are
    given for the SA-NeRV loss, which needs one."""
    from vcm.errors import VcmError
    from vcm.fsutil import require_input
    from vcm.masks.choice import CLI_NAMES, MaskChoice, check_choice

    check_choice(MaskChoice(masks=masks, sam_checkpoint=sam_checkpoint, source=mask_source, alpha=alpha,
                            sam_model=sam_model), CLI_NAMES)
    for path, option in ((masks, "--masks"), (sam_checkpoint, "--sam-checkpoint")):
        if path is not None:
            require_input(path, option)
    mask_options = [("--masks", masks), ("--sam-checkpoint", sam_checkpoint), ("--mask-source", mask_source)]
    if loss != "sa-nerv":  # the masks were made or read, then never used
        refuse_unused(mask_options, f"--loss {loss}", "only the SA-NeRV loss uses edge masks; add --loss sa-nerv")
    elif all(value is None for _, value in mask_options):
        raise VcmError("--loss sa-nerv needs edge masks: pass --masks FILE, --sam-checkpoint PATH or --mask-source canny")


def _print_fit(result, video, loss: str, json_out: bool) -> None:
    m = result.metrics
    if json_out:
        print_json({k: v for k, v in m.items() if k != "per_frame"} | {"run_dir": str(result.run_dir)})
        return
    table(f"vcm fit: {video.name}", [
        ("run", str(result.run_dir)), ("frames", f"{video.num_frames} ({video.source_frames.start}:{video.source_frames.stop})"),
        ("params", f"{m['params']:,}"),
        ("steps", f"{m['steps']:,} ({counted(m['epochs'], 'epoch')})"), ("loss", loss),
        ("time", f"{result.seconds:.1f} s ({result.frames_per_second:.1f} frames/s)"),
        *quality_rows(m, video.height, video.width, psnr_label="PSNR"),
    ])


def _budget_steps(text: str, seconds: float, spec, cfg, video, masks_u8, device, resumed_run: Path | None):
    """``cfg`` with the steps of a ``--budget``: timed here for a new fit, the recorded ones for a resumed fit."""
    import json
    from dataclasses import replace

    from vcm import progress
    from vcm.nerv.budget import seconds_per_step, steps_for_budget
    from vcm.nerv.train import CONFIG

    if resumed_run is not None:  # the schedule's length was fixed when the fit started
        return replace(cfg, steps=json.loads((resumed_run / CONFIG).read_text())["train"].get("steps"))
    from vcm.nerv.config import check_schedule_length

    per_step = seconds_per_step(spec.build_for(video), cfg, video.frames_u8, masks_u8, device)
    steps = check_schedule_length(steps_for_budget(seconds, per_step), f"--budget {text} at {per_step:.3f} s a step")
    cfg = replace(cfg, steps=steps, max_epochs=None)  # the budget decides alone
    progress.log(f"budget {text}: {per_step:.3f} s a step measured here → {cfg.steps:,} steps "
                 f"(vcm fit --steps {cfg.steps} reproduces this fit)")
    return cfg
