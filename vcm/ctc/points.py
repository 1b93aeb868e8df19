"""One CTC point: encode → decode → evaluate, as a plain function of a JSON-able spec.

The same function runs in-process, in a process pool, or as a Ray task. It returns a result
row; it raises only for bugs (user-caused failures are caught by the runner and recorded).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from pathlib import Path

import numpy as np
import torch

from vcm.quality import summarize
from vcm.rate import rate


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock file, so that parallel points sharing one NeRV fit train it once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _video(spec: dict):
    from vcm.video import open_video

    return open_video(spec["source"], spec["frames"])


def _nerv_point(spec: dict, video, device) -> dict:
    from vcm.codec.compress import CompressOptions, compress_run, decode_file
    from vcm.nerv.run import plan
    from vcm.nerv.train import fit

    p = spec["point"]
    fit_cfg = p["fit"]
    fit_dir = Path(spec["fit_dir"])
    spec_model, train = plan(fit_cfg.get("preset", "nerv-s"), fit_cfg.get("params"), epochs=fit_cfg.get("epochs"),
                             batch=fit_cfg.get("batch"), lr=fit_cfg.get("lr"),
                             loss="sa-nerv" if spec["codec"] == "sa-nerv" else "nerv")
    with _locked(fit_dir.with_suffix(".lock")):
        if not (fit_dir / "metrics.json").exists():
            masks_u8 = masks_meta = None
            if spec["codec"] == "sa-nerv":
                from vcm.masks.provide import masks_for_fit

                m = p.get("masks") or {}
                masks_u8, masks_meta = masks_for_fit(
                    video, Path(m["masks"]) if m.get("masks") else None,
                    Path(m["sam_checkpoint"]) if m.get("sam_checkpoint") else None, float(m.get("alpha", 0.93)),
                    fit_dir, device, sam_model=m.get("sam_model", "vit_h"),
                    settings_path=Path(m["config"]) if m.get("config") else None)
            fit(video, spec_model.build(video.height, video.width), train, fit_dir, device,
                resume=(fit_dir / "checkpoint.pt").exists(), masks_u8=masks_u8, masks_meta=masks_meta)
    out = Path(spec["workdir"]) / "stream.nerv"
    t = time.time()
    compress_run(fit_dir, out, CompressOptions(prune=p["prune"], bits=p["bits"], qat=bool(p.get("qat")),
                                               finetune_epochs=p.get("finetune_epochs")), device)
    encode = time.time() - t
    frames, _, _ = decode_file(out, device)
    decode = time.time() - t - encode
    return {"bitstream": str(out), "bytes": out.stat().st_size, "frames_u8": frames, "encode": encode, "decode": decode,
            "qp": None}


def _anchor_point(spec: dict, video, device) -> dict:
    from vcm.anchors.ffmpeg import CODECS, encode_decode, planes_of

    p = spec["point"]
    planes, bit_depth = planes_of(video)
    out = Path(spec["workdir"]) / f"stream{CODECS[spec['codec']][2]}"
    r = encode_decode(spec["codec"], planes, bit_depth, video.width, video.height, video.fps, p["qp"], out,
                      preset=p.get("preset"), vtm=p.get("vtm"))
    return {"bitstream": str(out), "bytes": out.stat().st_size, "frames_u8": r.frames_u8,
            "encode": r.encode_seconds, "decode": r.decode_seconds, "qp": p["qp"]}


def _icm_point(spec: dict, video, device) -> dict:
    from vcm.icm.codec import decode_icm_file, encode_video

    p = spec["point"]
    out = Path(spec["workdir"]) / "stream.icm"
    t = time.time()
    encode_video(video, Path(p["checkpoint"]), out, device, arch=p.get("arch", "tcm"))
    encode = time.time() - t
    frames, _ = decode_icm_file(out, device, checkpoint=Path(p["checkpoint"]))
    return {"bitstream": str(out), "bytes": out.stat().st_size, "frames_u8": frames, "encode": encode,
            "decode": time.time() - t - encode, "qp": None}


RUNNERS = {"nerv": _nerv_point, "sa-nerv": _nerv_point, "hevc": _anchor_point, "vvc": _anchor_point,
           "sa-icm": _icm_point}


def _detect(spec: dict, video, frames_u8: np.ndarray, device) -> dict:
    det_cfg = spec.get("detector") or {}
    if not det_cfg or video.info.sequence is None:
        return {"map": None, "ap50": None, "detections": None}
    from vcm.eval.detect import create_detector
    from vcm.eval.gt import load_ground_truth
    from vcm.eval.run import Decoded, score, write_outputs

    gt = load_ground_truth(video.info.sequence.name, Path(spec["annotations"]) if spec.get("annotations") else None)
    detector = create_detector(det_cfg.get("name", "yolov7"), gt=gt, weights=det_cfg.get("weights"),
                               yolov7_repo=det_cfg.get("repo"), device=device, batch=int(det_cfg.get("batch", 8)))
    clip, scores = score(Decoded(frames_u8, video.source_frames, gt.sequence), gt, detector)
    write_outputs(Path(spec["workdir"]), clip, scores)
    return {"map": scores["map"], "ap50": scores["ap50"], "detections": str(Path(spec["workdir"]) / "detections.json")}


def run_point(spec: dict) -> dict:
    """Encode, decode and evaluate one point; returns its result row (also written to result.json)."""
    from vcm.device import resolve_device
    from vcm.fsutil import write_json
    from vcm.progress import set_quiet

    set_quiet(spec.get("quiet", False))
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = resolve_device(spec.get("device", "auto"))
    Path(spec["workdir"]).mkdir(parents=True, exist_ok=True)
    video = _video(spec)
    coded = RUNNERS[spec["codec"]](spec, video, device)
    frames_u8 = coded.pop("frames_u8")
    quality = summarize(video.frames_u8, frames_u8)
    detection = _detect(spec, video, frames_u8, device)
    n, w, h = video.num_frames, video.width, video.height
    seq = video.info.sequence
    row = {
        "status": "ok", "sequence": spec["sequence"], "class": seq.seq_class if seq else None,
        "codec": spec["codec"], "point": spec["point_id"], "qp": coded["qp"],
        "fps": video.fps, "frames": n, "source_frames": [video.source_frames.start, video.source_frames.stop],
        "width": w, "height": h, **rate(coded["bytes"], video.fps, n, w, h), "psnr": quality["psnr"], "psnr_y": quality["psnr_y"],
        "ms_ssim": quality["ms_ssim"], **detection, "encode_seconds": coded["encode"],
        "decode_seconds": coded["decode"], "bitstream": coded["bitstream"], "annotations": spec.get("annotations"),
    }
    write_json(Path(spec["workdir"]) / "result.json", row)
    return row


def read_result(workdir: Path) -> dict | None:
    path = Path(workdir) / "result.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None
