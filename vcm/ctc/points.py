"""One CTC point: encode → decode → evaluate, as a plain function of a JSON-able spec.

The same function runs in-process, in a process pool, or as a Ray task. It returns a result
row; it raises only for bugs (user-caused failures are caught by the runner and recorded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vcm import codecs, progress
from vcm.ctc.result_row import RESULT
from vcm.quality import summarize
from vcm.rate import rate

POINT_LOG = "point.log"  # every message and progress line of one point, in its folder
ELSEWHERE = "elsewhere"  # a row's status: the point was being run by another vcm command, and was left to it


def _video(spec: dict):
    from vcm.errors import VideoOptionError
    from vcm.video import open_video

    try:
        return open_video(spec["source"], spec["frames"], **(spec.get("video") or {}))
    except VideoOptionError as err:
        raise _from_entry(err) from None


def frame_count(spec: dict) -> int:
    """The number of frames a point reads (:func:`_video`), from the file's header alone."""
    from vcm.errors import VideoOptionError
    from vcm.video import probe, resolve_frames

    try:
        return len(resolve_frames(probe(spec["source"], **(spec.get("video") or {})), spec["frames"]))
    except VideoOptionError as err:
        raise _from_entry(err) from None


def _from_entry(err: Exception):
    """The video layer's error, which names the command's options, said of a CTC config's entry."""
    from vcm.errors import VcmError

    return VcmError(f"{err} (in a CTC config: frames, size, fps or bit_depth in the sequence's entry)")


def evaluation(spec: dict, info) -> tuple | None:
    """What evaluating the point of ``spec`` on its video (``info``: :class:`vcm.video.source.VideoInfo`) takes:
    (``TruthSpec``, the name its ground truth is looked up by, the detector's section), or None when it evaluates
    nothing (no detector; a video without annotations of its own, the config's being SFU-HW's, and no pseudo
    ground truth)."""
    from vcm.eval.run import TruthSpec

    det_cfg = spec.get("detector") or {}
    truth = dict(spec.get("truth") or {"annotations": spec.get("annotations")})
    if not det_cfg:
        return None
    if truth.get("reference", "annotations") == "annotations" and info.sequence is None \
            and not spec.get("sequence_annotations"):
        return None
    return TruthSpec(**truth), info.sequence.name if info.sequence else info.name, det_cfg


def _detect(spec: dict, video, frames_u8: np.ndarray, device) -> dict:
    """Detector on the decoded frames against the sequence's ground truth (SFU-HW's, a COCO JSON, or
    pseudo ground truth from the original); nothing when no detector or no ground truth is configured."""
    planned = evaluation(spec, video.info)
    if planned is None:
        return {"map": None, "ap50": None, "detections": None, "ground_truth": None}
    from vcm.eval.run import OUTPUTS, Decoded, complete, score, truth_and_detector, write_outputs

    spec_t, name, det_cfg = planned
    decoded = Decoded(frames_u8, video.source_frames, name, video.info.first_source_frame + video.info.num_frames)
    batch, every = int(det_cfg.get("batch", 8)), int(det_cfg.get("every", 1))
    gt, detector = truth_and_detector(spec_t, name, det_cfg.get("name", "yolov7"), weights=det_cfg.get("weights"),
                                      repo=det_cfg.get("repo"), device=device, batch=batch,
                                      options=det_cfg.get("settings"))
    gt, detector = complete(spec_t, decoded, gt, detector, every, batch, spec.get("video"))
    clip, scores = score(decoded, gt, detector, batch, every)
    write_outputs(Path(spec["workdir"]), clip, scores)
    return {"map": scores["map"], "ap50": scores["ap50"], "detections": str(Path(spec["workdir"]) / OUTPUTS[0]),
            "ground_truth": scores["ground_truth"], "detector_settings": scores["detector_settings"],
            "detect_seconds_per_frame": scores["detect_seconds_per_frame"]}


def check_programs(specs: list[dict]) -> None:
    """Before any of ``specs`` runs: the programs each point's codec runs are on this machine
    (:meth:`vcm.codecs.Codec.check_programs`)."""
    from vcm import codecs

    for spec in specs:
        codecs.get(spec["codec"]).check_programs(spec["point"])


def check_evaluations(specs: list[dict]) -> None:
    """Before any of ``specs`` runs: the ground truth each point will be scored against that needs no frames (an
    annotation file that is missing or not COCO's), and each detector, built once on the CPU (a ``MODULE:ATTR``
    that does not import, weights that are not there; the oracle with pseudo ground truth, which it cannot copy).
    Each failed every point after its network had trained."""
    import json

    from vcm.errors import VcmError
    from vcm.eval.run import early_ground_truth, truth_and_detector
    from vcm.video import probe

    checked: set[str] = set()  # (video, truth, detector) of a point
    built: set[str] = set()  # a detector and its weights and settings
    for spec in specs:
        key = json.dumps([spec["source"], spec.get("video"), spec.get("truth"), spec.get("annotations"),
                          spec.get("sequence_annotations"), spec.get("detector")], sort_keys=True, default=str)
        if key in checked:
            continue
        checked.add(key)
        try:
            planned = evaluation(spec, probe(spec["source"], **(spec.get("video") or {})))
        except VcmError:  # the point itself says what is wrong with its video
            continue
        if planned is None:
            continue
        spec_t, name, det_cfg = planned
        detector = det_cfg.get("name", "yolov7")
        same = json.dumps([detector, det_cfg.get("weights"), det_cfg.get("repo"), det_cfg.get("settings")],
                          sort_keys=True, default=str)
        try:
            if detector == "oracle" or same not in built:  # the point's own rules; the oracle is built in a moment
                if detector != "oracle":
                    built.add(same)
                    progress.log(f"loading the detector {detector} once to check it, before any point runs")
                truth_and_detector(spec_t, name, detector, weights=det_cfg.get("weights"), repo=det_cfg.get("repo"),
                                   device="cpu", options=det_cfg.get("settings"))
            else:  # a detector built for another sequence: this one's ground truth only
                early_ground_truth(spec_t, name)
        except VcmError as err:
            raise VcmError(f"sequence {spec['sequence']}: {err}") from None


def run_point(spec: dict) -> dict:
    """Encode, decode and evaluate one point; returns its result row (also written to result.json)."""
    from vcm import stopping

    with stopping.like_a_command():  # in a worker process, its runner's stop reaches it as SIGTERM
        return _run_point_here(spec)


def _run_point_here(spec: dict) -> dict:
    from vcm.device import resolve_device
    from vcm.fsutil import output_lock

    progress.set_quiet(spec.get("quiet", False))
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = resolve_device(spec.get("device", "auto"))
    workdir = Path(spec["workdir"])
    # Held while the point runs: a second vcm ctc run on the same results folder (another --only, another
    # machine on a shared disk) leaves it to this one (fsutil.Busy) instead of failing it or clobbering its log.
    with output_lock(workdir / RESULT):
        done = None if spec.get("force") else read_result(workdir)
        if done is not None and finished_as_asked(done, spec):  # another run finished it after this one planned
            progress.log(f"{spec['sequence']} {spec['codec']} {spec['point_id']}: finished meanwhile by another vcm "
                         f"command; its result is reused")
            return done
        elsewhere = _previous_running_elsewhere(spec)
        if elsewhere is not None:
            return elsewhere
        (workdir / POINT_LOG).unlink(missing_ok=True)  # a point run again logs afresh
        with progress.log_to(workdir / POINT_LOG):  # what a quiet worker did, read by the runner
            return _run_point(spec, device)


def elsewhere_row(spec: dict, pid: int, **extra) -> dict:
    """The row of ``spec``'s point left to another vcm command (process ``pid``, 0 unknown) that is running it, or
    (``after``) the point it starts from."""
    return {"status": ELSEWHERE, "sequence": spec["sequence"], "codec": spec["codec"], "point": spec["point_id"],
            "pid": pid, **extra}


def _previous_running_elsewhere(spec: dict) -> dict | None:
    """The row of a chained point (``warm_from``) whose previous point another vcm command is running now (a second
    run on the same results folder left that point to it): left to that command as well. Started here, it found no
    state to start from and failed. None for any other point."""
    from vcm.codec.chain import STATE
    from vcm.fsutil import output_holder

    before = (spec.get("point") or {}).get("warm_from")
    previous = Path(spec["workdir"]).with_name(before) if before else None
    if previous is None or (previous / STATE).is_file():
        return None
    holder = output_holder(previous / RESULT)
    if holder is None:
        return None
    return elsewhere_row(spec, holder, after=before)


def _run_point(spec: dict, device) -> dict:
    from vcm.fsutil import write_json
    from vcm.provenance import provenance

    if (spec.get("point") or {}).get("target_from"):
        spec = {**spec, "point": {**spec["point"], "target_kbps": _matched_kbps(Path(spec["point"]["target_from"]))}}
    video = _video(spec)
    codec = codecs.get(spec["codec"])
    coded = codec.encode_decode(spec, video, device)
    frames_u8 = coded.pop("frames_u8")
    quality = summarize(video.frames_u8, frames_u8)
    detection = _detect(spec, video, frames_u8, device)
    n, w, h = video.num_frames, video.width, video.height
    seq = video.info.sequence
    row = {
        "status": "ok", "sequence": spec["sequence"], "class": seq.seq_class if seq else None,
        "codec": spec["codec"], "curve": codec.curve(spec["point"]), "point": spec["point_id"],
        "label": codec.label(spec["point"], coded) or spec["point_id"], "qp": coded["qp"],
        "fps": video.fps, "frames": n, "source_frames": [video.source_frames.start, video.source_frames.stop],
        "width": w, "height": h, **rate(coded["bytes"], video.fps, n, w, h), "psnr": quality["psnr"], "psnr_y": quality["psnr_y"],
        "psnr_yuv": quality["psnr_yuv"],
        "ms_ssim": quality["ms_ssim"], **detection, "encode_seconds": coded["encode"],
        "decode_seconds": coded["decode"], "bitstream": coded["bitstream"], "annotations": spec.get("annotations"),
        **{k: coded[k] for k in ("fit_seconds", "compress_seconds", "params", "bits_per_param", "estimate_bytes",
                                 "breakdown", "rate_control", "decoder_kmac_per_pixel") if k in coded},
        "settings": coded.get("settings"), "experiment": codec.describe(coded["settings"]) if coded.get("settings") else None,
        "provenance": provenance(device), "point_key": spec.get("point_key"),
        "inputs_key": spec.get("inputs_key"), "source_key": spec.get("source_key"), "truth_key": spec.get("truth_key"),
    }
    write_json(Path(spec["workdir"]) / RESULT, row)
    return row


def _matched_kbps(anchor_workdir: Path) -> float:
    """The rate of the anchor point a match point aims at."""
    from vcm.errors import VcmError

    row = read_result(anchor_workdir)
    if row is None or row.get("status") != "ok":
        raise VcmError(f"the point to match ({anchor_workdir.parent.name} {anchor_workdir.name}) has no result: "
                       f"{(row or {}).get('error', 'it did not run')}")
    return float(row["kbps"])


def finished_as_asked(row: dict, spec: dict) -> bool:
    """Whether ``row`` (a point's result) is a finished result of ``spec`` as it is now: status ok, from the same
    settings and inputs (rows written before a key was recorded are taken as they are)."""
    return row.get("status") == "ok" and all(row.get(key) in (None, spec.get(key))
                                             for key in ("point_key", "inputs_key", "source_key", "truth_key"))


def read_result(workdir: Path) -> dict | None:
    """A point's result row, or None when it has none or a damaged one (then the point runs again)."""
    from vcm.ctc import result_row

    return result_row.load(Path(workdir) / result_row.RESULT)[0]
