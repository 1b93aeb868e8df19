"""``vcm compress`` / ``vcm decode``: a fitted run → a ``.nerv`` file → frames.

Both compression methods run the same stages:

    prepare (run, source frames, masks)  →  optimise (method)  →  write stream  →  decode and measure

- ``CompressOptions`` — the paper's pipeline (:mod:`vcm.codec.affine`, Table 1 baseline);
- ``RDOptions`` — rate–distortion training with learned quantizers and entropy models
  (:mod:`vcm.codec.rd`).

The quality reported is measured on the frames the real decoder rebuilds from the written file.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vcm import progress
from vcm.codec import affine, nerv_stream, rd, stage_state
from vcm.codec.chain import StageEnd, chain_order
from vcm.codec.affine import CompressOptions, parse_group_bits  # noqa: F401  (public names)
from vcm.codec.decode import decode_file, decode_frames, decode_stream, frame_batch, frame_range, iter_frames  # noqa: F401  (public names)
from vcm.codec.rd import RDOptions
from vcm.codec.stage import StageResult
from vcm.codec.stage_state import StageCheckpoint, tensors_digest
from vcm.errors import VcmError
from vcm.fsutil import atomic_path, lock_holder, output_lock, pid_note, write_json
from vcm.nerv.config import TrainConfig
from vcm.bitstream.stream_output import check_stream_output
from vcm.provenance import provenance
from vcm.nerv.train import CHECKPOINT, CONFIG, METRICS, load_quantizers, load_run
from vcm.quality import summarize
from vcm.rate import rate
from vcm.video import Video, load, probe

Options = CompressOptions | RDOptions
# When vcm began to read .y4m files itself (before, through ffmpeg's YUV-to-RGB: other pixels of the same file).
Y4M_READ_BY_VCM_SINCE = "2026-12-04T14:37:06+00:00"


def source_video(config: dict, source: Path | None = None, fitted: str = "") -> Video:
    """Re-open the frames a run was fitted on (``source``: where they are now, a path or ``sample:NAME``; a sample
    clip recorded in an environment that is gone is found in this one's), and check they are the same frames.
    ``fitted``: when the run was fitted (its config.json's provenance date, ISO 8601; "" unknown)."""
    from vcm.samples import resolve, sample_clip, sample_named

    v = config["video"]
    path = resolve(source) if source else Path(v["source"])
    if source and not path.exists():
        raise VcmError(f"--input {source} does not exist")
    sample = None if path.exists() else sample_named(path)
    if sample:  # a sample clip inside another environment (one made afresh): the same frames, as checked below
        path = sample_clip(sample)
    if not path.exists():
        raise VcmError(f"the run's source video {path} is not there; pass --input PATH to point at it")
    info = probe(path, size=(v["width"], v["height"]) if path.suffix.lower() == ".yuv" else None,
                 fps=v["fps"], bit_depth=v.get("bit_depth"))
    video = load(info, range(*v["source_frames"]))
    if video.fingerprint() != v["fingerprint"]:
        hint = ("; vcm reads a .y4m itself now, with its own colour conversion, where the vcm that fitted this run read "
                "it through ffmpeg's: a run fitted from one then is fitted again"
                if path.suffix.lower() == ".y4m" and fitted < Y4M_READ_BY_VCM_SINCE else "")  # ISO dates sort as text
        raise VcmError(f"{path} does not hold the frames this run was fitted on (fingerprint differs: the file changed "
                       f"since, or is another){hint}")
    return video


@dataclass
class Prepared:
    """What every method starts from: the fitted run, its frames and (SA-NeRV) its masks."""

    run_dir: Path
    config: dict
    video: Video
    masks_u8: np.ndarray | None
    fit_cfg: TrainConfig

    @functools.cached_property
    def fit_digest(self) -> str:
        """sha256 of the fit's checkpoint: part of every stage's key, read once however many stages run."""
        from vcm.provenance import file_fingerprint

        return file_fingerprint(self.run_dir / CHECKPOINT)

    def fresh_model(self) -> torch.nn.Module:
        """A new copy of the fitted network (each method, each λ starts from the fit)."""
        model, _ = load_run(self.run_dir)
        return model

    def fit_start(self) -> tuple[torch.nn.Module, dict | None]:
        """Where a stage from the fit starts: a new copy of the network and the fit's own quantizers (a
        rate-aware fit's; None for a plain one)."""
        return self.fresh_model(), load_quantizers(self.run_dir)


def _fit_date(run_dir: Path) -> str:
    """When the run was fitted (config.json's provenance date), "" when it does not say."""
    try:
        return str(json.loads((run_dir / CONFIG).read_text())["provenance"]["date"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def prepare(run_dir: Path, source: Path | None = None, fps: float | None = None) -> Prepared:
    """The run in ``run_dir`` ready to compress. ``fps``: the frame rate its streams declare and their kbps count
    in, when it is not the one the fit recorded (a CTC entry's rate corrected after its fit: the frames, and so
    the network, are the same)."""
    run_dir = _real(Path(run_dir))  # runs/latest → the run it points at
    _, config = load_run(run_dir)
    if fps is not None and fps != config["video"]["fps"]:
        config = {**config, "video": {**config["video"], "fps": fps}}
    if not (run_dir / METRICS).is_file():  # a fit writes its metrics when it has run all its steps
        holder = lock_holder(run_dir)
        if holder is not None:
            progress.log(f"{run_dir} is still being trained by a vcm fit{pid_note(holder)}: "
                         f"this codes its last checkpoint; compress again when the fit has ended", style="yellow")
        else:
            progress.log(f"{run_dir} holds an unfinished fit (stopped before its last step): this codes the "
                         f"network as it was then; its vcm fit command again with --resume finishes it", style="yellow")
    video = source_video(config, source, _fit_date(run_dir))
    masks_u8 = None
    if config["train"]["loss"] == "sa-nerv":
        from vcm.masks.store import load_masks_for_video

        masks_path = Path(config["masks"]["path"])
        fitted_on = config["masks"].get("fingerprint")  # recorded by fits since masks are fingerprinted
        if fitted_on is not None and masks_path.is_file():
            from vcm.provenance import file_fingerprint

            if file_fingerprint(masks_path) != fitted_on:
                raise VcmError(f"{masks_path} is not the mask file {run_dir} was fitted with (it was replaced since); "
                               f"fit again with it, or put the fit's masks back")
        masks_u8 = load_masks_for_video(masks_path, video)
    return Prepared(run_dir, config, video, masks_u8, TrainConfig.from_dict(config["train"]))


def optimise(prep: Prepared, opts: Options, device, model: torch.nn.Module | None = None,
             init_quantizers: dict | None = None, checkpoint: StageCheckpoint | None = None,
             should_stop: Callable[[int], bool] | None = None) -> tuple[nerv_stream.NervStream, StageResult]:
    """Run one method on a fresh copy of the fitted network (or on ``model``, trained in place, with
    ``init_quantizers``: a warm start from another λ) → (stream to write, the method's result).
    ``checkpoint``: where the method's training keeps its state to continue after an interruption."""
    if model is None:
        model, init_quantizers = prep.fit_start()
    if isinstance(opts, RDOptions):
        tensors, result = rd.optimise(model, prep.video.frames_u8, prep.masks_u8, prep.fit_cfg, opts, device,
                                      init_quantizers=init_quantizers, checkpoint=checkpoint, should_stop=should_stop)
        coding = "rd"
    else:
        tensors, result = affine.optimise(model, prep.video.frames_u8, prep.masks_u8, prep.fit_cfg, opts, device,
                                          checkpoint=checkpoint, should_stop=should_stop)
        coding = "affine"
    return stream_of(prep, model, tensors, coding), result


def stream_of(prep: Prepared, model, tensors: list, coding: str) -> nerv_stream.NervStream:
    """The stream of ``tensors`` of ``model`` for the run's video."""
    v = prep.config["video"]
    return nerv_stream.NervStream(
        model=model.cfg,
        video={"name": v["name"], "width": v["width"], "height": v["height"], "fps": v["fps"],
               "frames": v["num_frames"], "source_frames": v["source_frames"], "sequence": v.get("sequence")},
        tensors=tensors, arch=model.ARCH, coding=coding)


def default_out(prep: Prepared, opts: Options) -> Path:
    name, arch = prep.config["video"]["name"], prep.config.get("arch", "nerv")
    prefix = name if arch == "nerv" else f"{name}_{arch}"
    return prep.run_dir / f"{prefix}_{'rd_' if isinstance(opts, RDOptions) else ''}{opts.label()}.nerv"


def default_outs(prep: Prepared, opts_list: list[Options], chained: bool, out_dir: Path | None = None) -> list[Path]:
    """Each stream's default file: :func:`default_out`, or in ``out_dir`` named after the run folder; a chained
    stream's name adds the λ whose stage it started from (``_from_l0p3``), since it is not the stream that λ alone
    gives from the fit."""
    froms = [""] * len(opts_list)
    if chained:
        order = chain_order([o.lam for o in opts_list])
        for before, after in zip(order, order[1:]):
            froms[after] = "_from_" + opts_list[before].lam_label()
    outs = []
    for opts, start in zip(opts_list, froms):
        plain = (default_out(prep, opts) if out_dir is None
                 else out_dir / f"{prep.run_dir.resolve().name}_rd_{opts.label()}.nerv")
        outs.append(plain.with_name(f"{plain.stem}{start}{plain.suffix}"))
    return outs


def check_out(out: Path, prep: "Prepared | None" = None) -> Path:
    """``out`` must name a ``.nerv`` file that replaces neither an input (the source video, masks)
    nor the run's own files, and neither may the report written beside it as ``.json``."""
    inputs, protected = [], []
    if prep is not None:
        inputs = [prep.video.info.path, (prep.config.get("masks") or {}).get("path")]
        protected = [prep.run_dir / name for name in ("checkpoint.pt", "config.json", "metrics.json")]
    return check_stream_output(out, ".nerv", inputs=inputs, protected=protected)


def measure(prep: Prepared, path: Path) -> dict:
    """Decode ``path`` with the real decoder and measure it against the source frames."""
    recon = np.concatenate(list(iter_frames(decode_stream(path), torch.device("cpu"))))
    return summarize(prep.video.frames_u8, recon, prep.masks_u8)


def compress_prepared(prep: Prepared, out: Path | None, opts: Options, device) -> dict:
    """optimise → write → measure for one option set; writes ``out`` and ``out.json``; returns the report."""
    return compress_stage(prep, out, opts, device)[0]


def stage_key(prep: Prepared, opts: Options, device, model: torch.nn.Module | None = None,
              quantizers: dict | None = None) -> str:
    """The key of a stage's saved state (:func:`vcm.codec.stage_state.stage_key`) for a stage that starts
    from the fit, or from ``model`` and ``quantizers`` (where another stage ended)."""
    origin = "fit" if model is None else tensors_digest(model.state_dict(), quantizers)
    return stage_state.stage_key(prep.fit_digest, origin, opts, prep.masks_u8, device)


def _chained(prep: Prepared, opts: RDOptions) -> RDOptions:
    """A chained stage's options: the steps a stage from the fit would run (the fit's ``rd_steps`` unless
    ``opts`` says), not the none of a warm rate-aware start."""
    return replace(opts, steps=rd.rd_steps(opts, prep.fit_cfg, prep.video.num_frames, False), epochs=None)


def _start_key(prep: Prepared, opts: Options, device, start: StageEnd | None) -> str:
    return stage_key(prep, opts, device, *((start.model, start.quantizers) if start is not None else ()))


def compress_stage(prep: Prepared, out: Path | None, opts: Options, device, start: StageEnd | None = None,
                   should_stop: Callable[[int], bool] | None = None, key: str | None = None) -> tuple[dict, StageEnd | None]:
    """``compress_prepared``, from ``start`` (a chained λ point: where the previous λ's stage ended) instead of
    the fit when given → (the report, where this rate–distortion stage ended; None for the paper's pipeline).
    A chained stage runs the steps a stage from the fit would (the fit's ``rd_steps`` unless ``opts`` says).
    Its training (a rate–distortion stage, the paper pipeline's fine-tunes) keeps its state beside ``out``
    until the stream is written, and continues one that the same stage saved there (:mod:`vcm.codec.stage_state`);
    ``key``: its :func:`stage_key`, when the caller has it."""
    began = time.time()
    out = check_out(out if out is not None else default_out(prep, opts), prep)
    if start is None:
        model, init = prep.fit_start()
    else:
        if not isinstance(opts, RDOptions):
            raise VcmError("only rate–distortion points (λ) are chained")
        model, init = start.model, start.quantizers
        opts = _chained(prep, opts)
    checkpoint = StageCheckpoint(stage_state.partial_path(out), key or _start_key(prep, opts, device, start))
    with output_lock(out):
        stream, result = optimise(prep, opts, device, model=model, init_quantizers=init, checkpoint=checkpoint,
                                  should_stop=should_stop)
        if start is not None:
            result = replace(result, report={**result.report, "start": {"lambda": start.lam}})
        began -= result.report.get("resumed", {}).get("seconds", 0.0)  # the stage's time before it was interrupted
        report = publish(prep, out, stream, result, began, device)
        stage_state.discard_partials(out)
    if not isinstance(opts, RDOptions):
        return report, None
    seconds = (start.seconds if start is not None else 0.0) + report["encode_seconds"]
    if start is not None:
        report["chain_encode_seconds"] = round(seconds, 3)  # every stage of the chain up to this stream
    return report, StageEnd(model, result.quantizers, opts.lam, seconds)


def publish(prep: Prepared, out: Path, stream: nerv_stream.NervStream, result: StageResult, start: float,
            device) -> dict:
    """Write ``stream`` to ``out`` (atomically, with ``out.json``), decode it with the real decoder and
    measure it; returns the report. ``start``: when encoding began (``time.time()``)."""
    encoded = nerv_stream.encode(stream)
    encode_seconds = time.time() - start
    with atomic_path(out) as tmp:  # measured from the file itself, published only with its report
        tmp.write_bytes(encoded.data)
        quality = measure(prep, tmp)
        report = _report(prep, out, stream, encoded, result, quality, encode_seconds, device)
        write_json(out.with_suffix(".json"), report)
    return report


def _report(prep: Prepared, out: Path, stream, encoded: nerv_stream.Encoded, result: StageResult, quality: dict,
            encode_seconds: float, device) -> dict:
    v = prep.config["video"]
    data = encoded.data
    params = stream.param_count()
    nonzero = int(sum(int(np.count_nonzero(t.dequantize())) for t in stream.tensors))
    report = {
        "bitstream": str(out), "run": str(prep.run_dir), "arch": stream.arch, "coding": stream.coding,
        "sequence": v.get("sequence") or v["name"], "frames": v["num_frames"], "fps": v["fps"],
        "width": v["width"], "height": v["height"],
        **rate(len(data), v["fps"], v["num_frames"], v["width"], v["height"]),
        "psnr": quality["psnr"], "psnr_y": quality["psnr_y"], "ms_ssim": quality["ms_ssim"],
        **({"edge_psnr": quality["edge_psnr"]} if "edge_psnr" in quality else {}),
        "params": params, "nonzero_params": nonzero, "bits_per_param": 8 * len(data) / params,
        "decoder_kmac_per_pixel": stream.kmac_per_pixel(v["width"], v["height"]),
        **result.report,
        "encode_seconds": round(encode_seconds, 3), "per_frame": quality["per_frame"],
        "provenance": provenance(device),
    }
    if result.estimate_bits is not None:
        # Training-time estimate: the trained entropy models' bits of the symbols + the exact side information.
        side = len(data) - encoded.entropy_coded_bytes
        estimate = result.estimate_bits / 8 + side
        report.update(estimate_bytes=round(estimate, 1), side_bytes=side,
                      estimate_error=round((len(data) - estimate) / estimate, 5), rd_history=result.history)
    from vcm.codec.breakdown import stream_breakdown

    report["breakdown"] = stream_breakdown(stream, encoded)
    return report


def compress_run(run_dir: Path, out: Path | None, opts: Options, device, source: Path | None = None,
                 start_from: Path | None = None, keep_end: Path | None = None, fps: float | None = None) -> dict:
    """Compress a fitted run into ``out`` (.nerv) with one method and write ``out.json``; returns the report.
    A chained λ point (:mod:`vcm.codec.chain`) starts from the stage end saved at ``start_from`` and saves
    its own at ``keep_end``. ``fps``: as :func:`prepare` takes it."""
    opts.check()
    prep = prepare(run_dir, source, fps)
    start = StageEnd.load(start_from, prep.fresh_model()) if start_from is not None else None
    report, end = compress_stage(prep, out, opts, device, start=start)
    if keep_end is not None and end is not None:
        end.save(keep_end)
    return report


def compress_many(run_dir: Path, opts_list: list[Options], device, source: Path | None = None,
                  outs: list[Path | None] | None = None, chain: bool | None = None,
                  should_stop: Callable[[int], bool] | None = None, seed_given: bool = False,
                  out_dir: Path | None = None) -> list[dict]:
    """Several streams (e.g. several λ) from one fit: the run and its frames are read once. ``chain``
    (default: the fit's ``rd_chain``): λ points run from the smallest λ up, each from where the one before
    ended (:mod:`vcm.codec.chain`); never on a rate-aware fit, whose own quantizers each λ starts from.
    Reports come in the order of ``opts_list``. ``seed_given``: the options' seed was asked for (``--seed``), and
    is refused when no stage draws at random (a rate-aware fit coded at its own λ trains nothing). Streams ``outs``
    leaves out are named by their options (:func:`default_outs`), in the run folder or ``out_dir``.

    Interrupted (Ctrl-C, or ``should_stop(step)`` of a stage returning True), the same call again keeps
    the streams already written, and continues the stage that was stopped where it stopped: with several
    λ each finished stage's end is kept beside its stream until the last one is written."""
    for opts in opts_list:
        opts.check()
    prep = prepare(run_dir, source)
    rate_aware = load_quantizers(prep.run_dir) is not None
    if chain and rate_aware:
        raise VcmError(f"{prep.run_dir} is a rate-aware fit: each λ starts from its own quantizers, with no chain")
    chain = prep.fit_cfg.rd_chain if chain is None else chain
    chained = chain and all(isinstance(o, RDOptions) for o in opts_list) and not rate_aware
    named = default_outs(prep, opts_list, chained, out_dir)
    outs = [out if out is not None else default for out, default in zip(outs or [None] * len(opts_list), named)]
    if seed_given and all(isinstance(o, RDOptions)
                          and not o.draws_at_random(rd.codes_fit_as_trained(o, prep.fit_cfg, rate_aware))
                          for o in opts_list):  # every seed gave the same bytes
        raise VcmError(f"--seed {opts_list[0].seed}: nothing in this compression is random ({prep.run_dir} is a "
                       f"rate-aware fit at λ {prep.fit_cfg.rate_lambda:g}, coded with its own quantizers as trained; "
                       f"--rd-steps trains a stage from them); drop --seed")
    keep_ends = len(opts_list) > 1
    reports: list = [None] * len(opts_list)
    if not chained:
        for i, (out, opts) in enumerate(zip(outs, opts_list)):
            reports[i], _ = _stage_or_kept(prep, out, opts, device, None, keep_ends, should_stop)
    else:
        end = None
        for i in chain_order([o.lam for o in opts_list]):
            reports[i], end = _stage_or_kept(prep, outs[i], opts_list[i], device, end, keep_ends, should_stop)
    for out in outs:
        stage_state.end_path(out).unlink(missing_ok=True)
    return reports


def _stage_or_kept(prep: Prepared, out: Path, opts: Options, device, start: StageEnd | None, keep_end: bool,
                   should_stop) -> tuple[dict, StageEnd | None]:
    """``compress_stage``, or, when an interrupted run of the same command already wrote this stream (its
    kept end carries this stage's key), that stream's report and end. ``keep_end``: keep this stage's end
    beside its stream (removed by ``compress_many`` once every stream is written)."""
    if not isinstance(opts, RDOptions):
        return compress_stage(prep, out, opts, device, start=start, should_stop=should_stop)
    if start is not None:  # as compress_stage runs it, so that the key is the same
        opts = _chained(prep, opts)
    kept = StageCheckpoint(stage_state.end_path(out), _start_key(prep, opts, device, start))
    state = kept.load() if keep_end else None
    report_path = out.with_suffix(".json")
    if state is not None and out.is_file() and report_path.is_file():
        progress.log(f"λ={opts.lam:g}: {out} was written by an earlier run of this command; kept")
        return json.loads(report_path.read_text()), StageEnd.from_state(state, prep.fresh_model())
    report, end = compress_stage(prep, out, opts, device, start=start, should_stop=should_stop, key=kept.key)
    if keep_end and end is not None:
        kept.save(end.state())
    return report, end


def _real(path: Path) -> Path:
    real = path.resolve()
    try:
        return real.relative_to(Path.cwd().resolve())
    except ValueError:
        return real


