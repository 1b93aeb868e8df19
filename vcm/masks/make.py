"""``vcm masks``: make cached per-frame edge masks for one or more α values."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vcm import progress
from vcm.masks.sam import MaskSettings, checkpoint_fingerprint, frame_edges, load_sam, make_generator
from vcm.masks.store import PartialMasks, save_masks
from vcm.video import Video


def default_path(video: Video, sam_model: str, alpha: float, folder: Path = Path("masks")) -> Path:
    a, b = video.source_frames.start, video.source_frames.stop
    return folder / f"{video.name}_{a}-{b}_{sam_model}_a{alpha:g}.npz"


def path_for_alpha(out: Path | None, video: Video, sam_model: str, alpha: float, several: bool) -> Path:
    if out is None:
        return default_path(video, sam_model, alpha)
    out = Path(out)
    if out.suffix != ".npz":
        out = out.with_suffix(out.suffix + ".npz") if out.suffix else out.with_suffix(".npz")
    return out.with_name(f"{out.stem}_a{alpha:g}{out.suffix}") if several else out


def make_masks(video: Video, sam_model: str, checkpoint: Path, alphas: list[float], settings: MaskSettings,
               out: Path | None, device, should_stop=None, overwrite: bool = False,
               hint: str = "pass --overwrite to replace them, or name another --out") -> list[dict]:
    """Make one mask file per α; returns a summary per file. Finished frames are never redone, and a finished
    file made from the same frames, weights and settings is reused as it is (``overwrite``: made again); one made
    otherwise is refused, ``hint`` saying what to do."""
    from vcm.masks.store import check_mask_output, kept_masks, load_masks

    paths = [path_for_alpha(out, video, sam_model, alpha, len(alphas) > 1) for alpha in alphas]
    for path in paths:  # before SAM is loaded: a name taken by another file is refused at once
        check_mask_output(path)
    ckpt_fp = checkpoint_fingerprint(Path(checkpoint), sam_model)
    video_fp = video.fingerprint()
    jobs = []
    for alpha, path in zip(alphas, paths):
        meta = {"alpha": float(alpha), "sam_model": sam_model, "checkpoint": str(checkpoint),
                "checkpoint_fingerprint": ckpt_fp, "settings": settings.to_dict(),
                "source_frames": [video.source_frames.start, video.source_frames.stop],
                "video": video.name, "video_fingerprint": video_fp, "width": video.width, "height": video.height}
        jobs.append((alpha, path, meta, kept_masks(path, meta, overwrite, hint)))
    sam = load_sam(sam_model, checkpoint, device) if not all(kept for *_, kept in jobs) else None
    results = []
    for alpha, path, meta, kept in jobs:
        if kept:
            masks, _ = load_masks(path)
            progress.log(f"masks α={alpha:g}: {path} already holds them (same frames, weights and settings); kept")
            results.append({"path": str(path), "alpha": alpha, "frames": video.num_frames,
                            "reused_frames": video.num_frames, "edge_fraction": float(masks.mean()), "seconds": 0.0,
                            "masks_per_second": None, "cached": True})
            continue
        partial = PartialMasks(path, meta)
        generator = make_generator(sam, settings, alpha)
        todo = [i for i in range(video.num_frames) if not partial.has(i)]
        if len(todo) < video.num_frames:
            progress.log(f"masks α={alpha:g}: resuming, {video.num_frames - len(todo)} of {video.num_frames} frames already done")
        start, done = time.time(), 0
        with progress.progress(f"SAM masks α={alpha:g}", video.num_frames, completed=video.num_frames - len(todo)) as bar:
            for i in todo:
                if should_stop is not None and should_stop(i):
                    from vcm.errors import VcmError

                    raise VcmError(f"stopped; {done + video.num_frames - len(todo)} frames saved, run again to continue")
                partial.put(i, frame_edges(generator, video.frames_u8[i], settings.dilation))
                done += 1
                bar.advance(1)
        seconds = time.time() - start
        masks = np.stack([partial.get(i, video.height, video.width) for i in range(video.num_frames)])
        save_masks(path, masks, {k: v for k, v in meta.items() if k not in ("width", "height")})
        partial.discard()
        results.append({"path": str(path), "alpha": alpha, "frames": video.num_frames,
                        "reused_frames": video.num_frames - len(todo),
                        "edge_fraction": float(masks.mean()), "seconds": seconds,
                        "masks_per_second": done / seconds if done and seconds > 0 else None})
    return results
