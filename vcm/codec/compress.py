"""``vcm compress`` / ``vcm decode``: a fitted run → a ``.nerv`` file → frames.

Both compression methods run the same stages:

    prepare (run, source frames, masks)  →  optimise (method)  →  write stream  →  decode and measure

- ``CompressOptions`` — the paper's pipeline (:mod:`vcm.codec.affine`, Table 1 baseline);
- ``RDOptions`` — rate–distortion training with learned quantizers and entropy models
  (:mod:`vcm.codec.rd`).

The quality reported is measured on the frames the real decoder rebuilds from the written file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vcm.codec import affine, nerv_stream, rd
from vcm.codec.affine import CompressOptions, parse_group_bits  # noqa: F401  (public names)
from vcm.codec.rd import RDOptions
from vcm.errors import VcmError
from vcm.fsutil import write_bytes, write_json
from vcm.nerv.config import TrainConfig
from vcm.nerv.train import load_quantizers, load_run, reconstruct
from vcm.quality import summarize
from vcm.rate import rate
from vcm.video import Video, load, probe

Options = CompressOptions | RDOptions


def source_video(config: dict, source: Path | None = None) -> Video:
    """Re-open the frames a run was fitted on, and check they are the same frames."""
    v = config["video"]
    path = Path(source) if source else Path(v["source"])
    if not path.exists():
        raise VcmError(f"the run's source video {path} is not there; pass --input PATH to point at it")
    info = probe(path, size=(v["width"], v["height"]) if path.suffix.lower() == ".yuv" else None,
                 fps=v["fps"], bit_depth=v.get("bit_depth"))
    video = load(info, range(*v["source_frames"]))
    if video.fingerprint() != v["fingerprint"]:
        raise VcmError(f"{path} does not hold the frames this run was fitted on (fingerprint differs)")
    return video


@dataclass
class Prepared:
    """What every method starts from: the fitted run, its frames and (SA-NeRV) its masks."""

    run_dir: Path
    config: dict
    video: Video
    masks_u8: np.ndarray | None
    fit_cfg: TrainConfig

    def fresh_model(self) -> torch.nn.Module:
        """A new copy of the fitted network (each method, each λ starts from the fit)."""
        model, _ = load_run(self.run_dir)
        return model


def prepare(run_dir: Path, source: Path | None = None) -> Prepared:
    run_dir = _real(Path(run_dir))  # runs/latest → the run it points at
    _, config = load_run(run_dir)
    video = source_video(config, source)
    masks_u8 = None
    if config["train"]["loss"] == "sa-nerv":
        from vcm.masks.store import load_masks_for_video

        masks_u8 = load_masks_for_video(Path(config["masks"]["path"]), video)
    return Prepared(run_dir, config, video, masks_u8, TrainConfig.from_dict(config["train"]))


def optimise(prep: Prepared, opts: Options, device) -> tuple[nerv_stream.NervStream, dict]:
    """Run one method on a fresh copy of the fitted network → (stream to write, report fields)."""
    model = prep.fresh_model()
    if isinstance(opts, RDOptions):
        tensors, fields = rd.optimise(model, prep.video.frames_u8, prep.masks_u8, prep.fit_cfg, opts, device,
                                      init_quantizers=load_quantizers(prep.run_dir))
        coding = "rd"
    else:
        tensors, fields = affine.optimise(model, prep.video.frames_u8, prep.masks_u8, prep.fit_cfg, opts, device)
        coding = "affine"
    v = prep.config["video"]
    stream = nerv_stream.NervStream(
        model=model.cfg,
        video={"name": v["name"], "width": v["width"], "height": v["height"], "fps": v["fps"],
               "frames": v["num_frames"], "source_frames": v["source_frames"], "sequence": v.get("sequence")},
        tensors=tensors, arch=model.ARCH, coding=coding)
    return stream, fields


def default_out(prep: Prepared, opts: Options) -> Path:
    name, arch = prep.config["video"]["name"], prep.config.get("arch", "nerv")
    prefix = name if arch == "nerv" else f"{name}_{arch}"
    return prep.run_dir / f"{prefix}_{'rd_' if isinstance(opts, RDOptions) else ''}{opts.label()}.nerv"


def check_out(out: Path) -> Path:
    """``out`` must name a ``.nerv`` file (so neither the report beside it nor a run's checkpoint is overwritten)."""
    out = Path(out)
    if out.suffix != ".nerv":
        raise VcmError(f"--out {out}: a bitstream file name must end in .nerv (its report goes beside it as .json)")
    if out.is_dir():
        raise VcmError(f"--out {out} is a directory; name a .nerv file")
    return out


def measure(prep: Prepared, path: Path) -> dict:
    """Decode ``path`` with the real decoder and measure it against the source frames."""
    decoded = nerv_stream.decode(Path(path).read_bytes()).build_model()
    recon = reconstruct(decoded, prep.video.num_frames, torch.device("cpu"))
    return summarize(prep.video.frames_u8, recon)


def compress_prepared(prep: Prepared, out: Path | None, opts: Options, device) -> dict:
    """optimise → write → measure for one option set; writes ``out`` and ``out.json``; returns the report."""
    start = time.time()
    out = check_out(out if out is not None else default_out(prep, opts))
    stream, fields = optimise(prep, opts, device)
    stats: dict = {}
    data = nerv_stream.encode(stream, stats)
    encode_seconds = time.time() - start
    write_bytes(out, data)
    quality = measure(prep, out)
    v = prep.config["video"]
    params = int(sum(int(np.prod(t.shape)) for t in stream.tensors))
    nonzero = int(sum(int(np.count_nonzero(t.dequantize())) for t in stream.tensors))
    report = {
        "bitstream": str(out), "run": str(prep.run_dir), "arch": stream.arch, "coding": stream.coding,
        "sequence": v.get("sequence") or v["name"], "frames": v["num_frames"], "fps": v["fps"],
        "width": v["width"], "height": v["height"],
        **rate(len(data), v["fps"], v["num_frames"], v["width"], v["height"]),
        "psnr": quality["psnr"], "psnr_y": quality["psnr_y"], "ms_ssim": quality["ms_ssim"],
        "params": params, "nonzero_params": nonzero, "bits_per_param": 8 * len(data) / params,
        **{k: val for k, val in fields.items() if k not in ("estimate_bits", "history")},
        "encode_seconds": round(encode_seconds, 3), "per_frame": quality["per_frame"],
    }
    if "estimate_bits" in fields:
        # Training-time estimate: the trained entropy models' bits of the symbols + the exact side information.
        side = len(data) - stats["entropy_coded_bytes"]
        estimate = fields["estimate_bits"] / 8 + side
        report.update(estimate_bytes=round(estimate, 1), side_bytes=side,
                      estimate_error=round((len(data) - estimate) / estimate, 5), rd_history=fields["history"])
    write_json(out.with_suffix(".json"), report)
    return report


def compress_run(run_dir: Path, out: Path | None, opts: Options, device, source: Path | None = None) -> dict:
    """Compress a fitted run into ``out`` (.nerv) with one method and write ``out.json``; returns the report."""
    opts.check()
    return compress_prepared(prepare(run_dir, source), out, opts, device)


def compress_many(run_dir: Path, opts_list: list[Options], device, source: Path | None = None,
                  outs: list[Path | None] | None = None) -> list[dict]:
    """Several streams (e.g. several λ) from one fit: the run and its frames are read once."""
    for opts in opts_list:
        opts.check()
    prep = prepare(run_dir, source)
    outs = outs or [None] * len(opts_list)
    return [compress_prepared(prep, out, opts, device) for out, opts in zip(outs, opts_list)]


def _real(path: Path) -> Path:
    real = path.resolve()
    try:
        return real.relative_to(Path.cwd().resolve())
    except ValueError:
        return real


def decode_file(path: Path, device) -> tuple[np.ndarray, nerv_stream.NervStream, float]:
    """Decode a ``.nerv`` file → (``uint8 [T,3,H,W]`` frames, stream, decode frames/s)."""
    path = Path(path)
    if not path.exists():
        raise VcmError(f"{path} does not exist")
    if path.is_dir():
        raise VcmError(f"{path} is a directory; name a .nerv file")
    start = time.time()
    stream = nerv_stream.decode(path.read_bytes())
    frames = reconstruct(stream.build_model(), stream.video["frames"], device)
    return frames, stream, stream.video["frames"] / max(time.time() - start, 1e-9)
