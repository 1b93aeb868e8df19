"""``vcm eval``: decoded frames → detector → COCO mAP against SFU-HW ground truth."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcm import progress
from vcm.errors import VcmError
from vcm.eval.coco import ScoredClip, evaluate, results_json
from vcm.eval.detect import Detector
from vcm.eval.gt import GroundTruth
from vcm.fsutil import write_json


@dataclass
class Decoded:
    """Frames to evaluate: ``uint8 [T,3,H,W]`` and the source indices they stand for."""

    frames_u8: np.ndarray
    source_frames: range
    name: str


def decode_any(path: Path, device, frames: str = "auto", size=None, fps=None, bit_depth=None,
               checkpoint: Path | None = None) -> Decoded:
    """A ``.nerv`` bitstream is decoded; anything else is read as a video (the original too)."""
    path = Path(path)
    if path.suffix == ".nerv":
        from vcm.codec.compress import decode_file

        out, stream, _ = decode_file(path, device)
        return Decoded(out, range(*stream.video["source_frames"]), stream.video.get("sequence") or stream.video["name"])
    if path.suffix == ".icm":
        from vcm.icm.codec import decode_icm_file

        out, header = decode_icm_file(path, device, checkpoint)
        return Decoded(out, range(*header["source_frames"]), header.get("sequence") or header["name"])
    from vcm.video import open_video

    video = open_video(path, frames, size=size, fps=fps, bit_depth=bit_depth)
    name = video.info.sequence.name if video.info.sequence else video.name
    return Decoded(video.frames_u8, video.source_frames, name)


def input_name(path: Path, size=None, fps=None, bit_depth=None) -> str:
    """The sequence an input stands for, read cheaply (a stream's header, a video's name): the same
    name :func:`decode_any` gives, known before anything is decoded."""
    path = Path(path)
    if path.suffix == ".nerv":
        from vcm.codec.nerv_stream import peek_video

        if not path.is_file():
            raise VcmError(f"{path} does not exist")
        v = peek_video(path.read_bytes())
        return v.get("sequence") or v["name"]
    if path.suffix == ".icm":
        from vcm.icm.codec import read_header

        if not path.is_file():
            raise VcmError(f"{path} does not exist")
        header, _ = read_header(path.read_bytes())
        return header.get("sequence") or header["name"]
    from vcm.video import probe
    from vcm.video.naming import parse_size

    info = probe(path, size=parse_size(size) if isinstance(size, str) else size, fps=fps, bit_depth=bit_depth)
    return info.sequence.name if info.sequence else info.name


def score(decoded: Decoded, gt: GroundTruth, detector: Detector, batch: int = 16) -> tuple[ScoredClip, dict]:
    """Run the detector on the decoded frames that have ground truth and score them."""
    if decoded.frames_u8.shape[2:] != (gt.height, gt.width):
        raise VcmError(f"decoded frames are {decoded.frames_u8.shape[3]}x{decoded.frames_u8.shape[2]}, "
                       f"the ground truth of {gt.sequence} is {gt.width}x{gt.height}")
    frames = gt.covers(decoded.source_frames)
    if not frames:
        have = sorted(gt.frames)
        raise VcmError(f"decoded frames {decoded.source_frames.start}:{decoded.source_frames.stop} have no ground truth "
                       f"({gt.sequence} is annotated on frames {have[0]}:{have[-1] + 1})")
    if len(frames) < len(decoded.source_frames):
        progress.log(f"evaluating the {len(frames)} of {len(decoded.source_frames)} frames that have ground truth")
    index = [f - decoded.source_frames.start for f in frames]
    detections, start = [], time.time()
    with progress.progress(f"detect ({detector.name})", len(index)) as bar:
        for i in range(0, len(index), batch):
            chunk = index[i:i + batch]
            detections += detector.detect(decoded.frames_u8[chunk], frames[i:i + batch])
            bar.advance(len(chunk))
    seconds = time.time() - start
    clip = ScoredClip(gt, frames, detections)
    scores = evaluate([clip])
    scores.update({"sequence": gt.sequence, "source_frames": [frames[0], frames[-1] + 1], "frames": len(frames),
                   "detector": detector.name, "detect_seconds": seconds,
                   "detect_frames_per_second": len(frames) / max(seconds, 1e-9)})
    return clip, scores


def write_outputs(out: Path, clip: ScoredClip, scores: dict) -> None:
    write_json(Path(out) / "detections.json", results_json(clip))
    write_json(Path(out) / "scores.json", scores)
