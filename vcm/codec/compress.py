"""``vcm compress`` / ``vcm decode``: a fitted run → a ``.nerv`` file → frames.

Compression: global magnitude pruning (stem + conv weights) → fine-tuning with the pruned
weights held at zero, using the run's own loss → optional quantization-aware fine-tuning
(straight-through) → per-channel affine quantization → constriction ANS. The quality reported
is measured on the frames decoded from the written file by the real decoder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from vcm import progress
from vcm.codec import nerv_stream
from vcm.codec.groups import GROUPS, channels_of, group_of
from vcm.codec.prune import apply_masks, magnitude_masks
from vcm.codec.quant import fake_quantize, quantize
from vcm.errors import VcmError
from vcm.fsutil import write_bytes, write_json
from vcm.nerv.config import TrainConfig
from vcm.nerv.train import EpochStats, load_run, reconstruct, to_device, train_epochs
from vcm.quality import summarize
from vcm.rate import rate
from vcm.video import Video, load, probe


@dataclass(frozen=True)
class CompressOptions:
    prune: float = 0.0  # fraction of stem+conv weights set to zero
    bits: int = 8  # default bits for every tensor group
    group_bits: dict = field(default_factory=dict)  # overrides, e.g. {"bias": 10}
    finetune_epochs: int | None = None  # None: 10 % of the fit's epochs when pruning or QAT, else 0
    finetune_lr_scale: float = 0.1  # fine-tune peak lr = fit lr × this
    qat: bool = False
    seed: int = 0

    def bits_for(self, group: str) -> int:
        return int(self.group_bits.get(group, self.bits))


def parse_group_bits(text: str | None) -> dict:
    """``"head=10,bias=12"`` → {"head": 10, "bias": 12}."""
    out = {}
    for part in filter(None, (text or "").split(",")):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in GROUPS or not value.strip().isdigit() or not 2 <= int(value) <= 16:
            raise VcmError(f"--group-bits takes GROUP=BITS pairs with GROUP in {', '.join(GROUPS)} and 2..16 bits; got {part!r}")
        out[name] = int(value)
    return out


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


def _run_masks(config: dict, video: Video):
    meta = config.get("masks")
    if config["train"]["loss"] != "sa-nerv":
        return None
    from vcm.masks.store import load_masks_for_video

    return load_masks_for_video(Path(meta["path"]), video)


def _finetune(model, video, masks_u8, cfg: TrainConfig, epochs: int, keep, qat_bits, device, label: str):
    """Fine-tune in place: pruned weights held at zero; with ``qat_bits`` through fake quantization."""
    cfg = replace(cfg, epochs=epochs, warmup=0.0)
    frames, masks = to_device(video.frames_u8, masks_u8, device)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    steps = epochs * -(-video.num_frames // cfg.batch)
    if qat_bits is None:
        forward = model
    else:
        channels = {n: channels_of(n, tuple(p.shape), model.cfg) for n, p in model.named_parameters()}

        def forward(t):
            params = {n: fake_quantize(p, qat_bits[n], channels[n]) for n, p in model.named_parameters()}
            return torch.func.functional_call(model, params, (t,))

    with progress.progress(label, epochs) as bar:
        def on_epoch(s: EpochStats):
            bar.advance(1, status=f"loss {s.loss:.4f}  PSNR {s.train_psnr:.2f} dB")

        train_epochs(forward, opt, frames, masks, cfg, 0, steps, lambda step: False, on_epoch,
                     after_step=lambda: apply_masks(model, keep))
    model.cpu().eval()


def compress_run(run_dir: Path, out: Path | None, opts: CompressOptions, device, source: Path | None = None) -> dict:
    """Compress a fitted run into ``out`` (.nerv) and write ``out.json``; returns the report."""
    start = time.time()
    if not 0.0 <= opts.prune < 1.0:
        raise VcmError(f"--prune must be in [0, 1), got {opts.prune}")
    if not 2 <= opts.bits <= 16:
        raise VcmError(f"--bits must be in 2..16, got {opts.bits}")
    run_dir = _real(Path(run_dir))  # runs/latest → the run it points at
    model, config = load_run(run_dir)
    video = source_video(config, source)
    masks_u8 = _run_masks(config, video)
    fit_cfg = TrainConfig.from_dict(config["train"])
    torch.manual_seed(opts.seed)
    fit_cfg = replace(fit_cfg, seed=opts.seed, lr=fit_cfg.lr * opts.finetune_lr_scale)
    epochs = opts.finetune_epochs
    if epochs is None:
        epochs = max(1, round(0.1 * fit_cfg.epochs)) if (opts.prune > 0 or opts.qat) else 0

    keep = magnitude_masks(model, opts.prune)
    apply_masks(model, keep)
    bits = {n: opts.bits_for(group_of(n)) for n, _ in model.named_parameters()}
    if epochs and opts.prune > 0:
        _finetune(model, video, masks_u8, fit_cfg, epochs, keep, None, device, "prune fine-tune")
    if epochs and opts.qat:
        _finetune(model, video, masks_u8, fit_cfg, epochs, keep, bits, device, "QAT fine-tune")

    tensors = [quantize(n, p.detach().cpu().numpy(), bits[n], channels_of(n, tuple(p.shape), model.cfg))
               for n, p in model.named_parameters()]
    v = config["video"]
    stream = nerv_stream.NervStream(
        model=model.cfg,
        video={"name": v["name"], "width": v["width"], "height": v["height"], "fps": v["fps"],
               "frames": v["num_frames"], "source_frames": v["source_frames"], "sequence": v.get("sequence"),
               "colour": "RGB; YUV sources converted BT.601 limited range 4:2:0"},
        tensors=tensors,
    )
    data = nerv_stream.encode(stream)
    encode_seconds = time.time() - start
    if out is None:
        out = run_dir / f"{v['name']}_p{round(opts.prune * 100)}_b{opts.bits}{'_qat' if opts.qat else ''}.nerv"
    out = Path(out)
    write_bytes(out, data)

    # Quality of what a decoder gets from the file just written.
    decoded = nerv_stream.decode(out.read_bytes()).build_model()
    recon = reconstruct(decoded, video.num_frames, torch.device("cpu"))
    quality = summarize(video.frames_u8, recon)
    nonzero = int(sum(int(np.count_nonzero(q.centered)) for q in tensors))
    report = {
        "bitstream": str(out), "run": str(run_dir), "sequence": v.get("sequence") or v["name"],
        "frames": v["num_frames"], "fps": v["fps"], "width": v["width"], "height": v["height"],
        **rate(len(data), v["fps"], v["num_frames"], v["width"], v["height"]),
        "psnr": quality["psnr"], "psnr_y": quality["psnr_y"], "ms_ssim": quality["ms_ssim"],
        "params": int(sum(int(np.prod(q.shape)) for q in tensors)), "nonzero_params": nonzero,
        "prune": opts.prune, "bits": opts.bits, "group_bits": {g: opts.bits_for(g) for g in GROUPS},
        "qat": opts.qat, "finetune_epochs": epochs, "encode_seconds": round(encode_seconds, 3),
        "per_frame": quality["per_frame"],
    }
    write_json(out.with_suffix(".json"), report)
    return report


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
    start = time.time()
    stream = nerv_stream.decode(path.read_bytes())
    frames = reconstruct(stream.build_model(), stream.video["frames"], device)
    return frames, stream, stream.video["frames"] / max(time.time() - start, 1e-9)
