"""``vcm eval``: decoded frames → detector → COCO mAP against ground truth.

Ground truth is one of three kinds (:func:`ground_truth`): SFU-HW's (zero configuration for the
eight class C/D sequences), a user's COCO JSON for any video (``vcm.eval.annotations``), or pseudo
ground truth from the detector on the original frames (``vcm.eval.reference``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vcm import progress, sequences
from vcm.errors import VcmError
from vcm.eval.coco import ScoredClip, evaluate, results_json
from vcm.detectors.registry import Detector
from vcm.eval.gt import GroundTruth
from vcm.eval.kept_detections import detect_frames
from vcm.fsutil import json_bytes, write_together
from vcm.outputs import json_has_keys


@dataclass
class Decoded:
    """Frames to evaluate: ``uint8 [T,3,H,W]`` and the source indices they stand for."""

    frames_u8: np.ndarray
    source_frames: range
    name: str
    total: int | None = None  # frames in the video file (None for a bitstream: the original's length is unknown)


@dataclass
class TruthSpec:
    """Which ground truth to score against; JSON-able (a CTC point carries one).

    ``reference``: ``annotations`` (SFU-HW's or ``annotations``, a COCO JSON) or ``original``
    (pseudo ground truth: detections on ``original`` with a score ≥ ``score``). ``frame_mapping``,
    ``category_ids``, ``category_map`` and ``image_frames`` (A:B for the order mapping) read a user's JSON.
    """

    reference: str = "annotations"
    annotations: str | None = None
    original: str | None = None
    score: float = 0.5
    frame_mapping: str = "auto"
    category_ids: str = "auto"
    category_map: list[str] = field(default_factory=list)
    image_frames: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _is_sfu_json(path: Path) -> bool:
    """A COCO JSON in the CTC's layout for an SFU-HW sequence (``<Seq>_<W>x<H>_<fps>_val_NNN.png``)."""
    import json

    from vcm.eval.gt import _VAL_RE, _sequence_of

    try:
        images = json.loads(Path(path).read_text(encoding="utf-8-sig")).get("images") or []
        m = _VAL_RE.match(str(images[0].get("file_name", "")))
    except (OSError, ValueError, AttributeError, IndexError, TypeError):
        return False
    return bool(m) and _sequence_of(m.group("stem")) is not None


def early_ground_truth(spec: TruthSpec, name: str, sequence: str | None = None) -> GroundTruth | None:
    """The ground truth that needs no decoded frames (SFU-HW's), loaded before any decoding; None
    when it must wait for the frames (a user's JSON is checked here, mapped later)."""
    from vcm import sequences
    from vcm.eval.annotations import CATEGORY_IDS, FRAME_MAPPINGS
    from vcm.eval.coco_json import read_json
    from vcm.eval.gt import load_ground_truth
    from vcm.eval.reference import REFERENCES

    for value, allowed, option in ((spec.reference, REFERENCES, "--reference"),
                                   (spec.frame_mapping, FRAME_MAPPINGS, "--frame-mapping"),
                                   (spec.category_ids, CATEGORY_IDS, "--category-ids")):
        if value not in allowed:
            raise VcmError(f"{option} must be one of {', '.join(allowed)}, got {value!r}")
    if not 0.0 <= spec.score <= 1.0:
        raise VcmError(f"--reference-score must be between 0 and 1, got {spec.score}")
    if spec.reference == "original":
        return None
    ann = Path(spec.annotations) if spec.annotations else None
    if ann is not None and ann.is_file() and not (_is_sfu_json(ann) or sequence):
        read_json(ann)
        return None
    if ann is None and sequences.lookup(sequence or name) is None:
        raise VcmError(f"{name!r} has no ground truth vcm knows (not an SFU-HW class C/D sequence): pass "
                       "--annotations gt.json (COCO, any video) or --reference original (pseudo ground truth)")
    return load_ground_truth(sequence or name, ann)


def ground_truth(spec: TruthSpec, decoded: Decoded, detector: Detector | None, frames: list[int], batch: int = 8,
                 video_options: dict | None = None) -> GroundTruth:
    """The ground truth of ``decoded`` that :func:`early_ground_truth` left for after decoding
    (``detector`` None: a JSON's categories are mapped to COCO-80, for the oracle)."""
    from vcm.eval.gt import COCO80

    _, _, h, w = decoded.frames_u8.shape
    if spec.reference == "original":
        from vcm.eval.reference import pseudo_ground_truth

        if not spec.original:
            raise VcmError("--reference original needs the uncompressed video: pass --original PATH")
        return pseudo_ground_truth(Path(spec.original), decoded.name, w, h, frames, detector, spec.score, batch,
                                   **(video_options or {}))
    from vcm.eval.annotations import load_annotations

    image_frames = None
    if spec.image_frames:
        a, _, b = spec.image_frames.partition(":")
        try:
            image_frames = range(int(a), int(b))
        except ValueError:
            raise VcmError(f"--frames must be A:B for images matched in order, got {spec.image_frames!r}") from None
    limit = decoded.total if decoded.total is not None else 1 << 30
    classes = tuple(detector.classes) if detector is not None else tuple(COCO80)
    gt, _ = load_annotations(Path(spec.annotations), decoded.name, w, h, limit, classes,
                             spec.frame_mapping, image_frames, spec.category_ids, spec.category_map)
    return gt


def truth_and_detector(spec: TruthSpec, name: str, detector: str, sequence: str | None = None,
                       **detector_args) -> tuple[GroundTruth | None, Detector | None]:
    """Before decoding: the ground truth that needs no frames and the detector, so that a missing
    annotation or weight file is reported first. The oracle copies ground truth that a user's JSON
    gives only once the frames are known, so it may come back None (built by :func:`complete`)."""
    from vcm.detectors.registry import check_reads
    from vcm.eval.detect import create_detector

    check_reads(detector, [("--weights", "weights", detector_args.get("weights")),
                           ("--yolov7-repo", "repo", detector_args.get("repo")),
                           ("--half", "half", detector_args.get("half"))])
    gt = early_ground_truth(spec, name, sequence)
    if detector == "oracle" and detector_args.get("options"):
        raise VcmError("the oracle detector has no settings")
    if gt is None and detector == "oracle" and spec.reference != "original":
        return None, None
    return gt, create_detector(detector, gt=gt, **detector_args)


def complete(spec: TruthSpec, decoded: Decoded, gt: GroundTruth | None, detector: Detector | None, every: int = 1,
             batch: int = 8, video_options: dict | None = None) -> tuple[GroundTruth, Detector]:
    """After decoding: what :func:`truth_and_detector` left (a user's JSON mapped onto the decoded
    frames, pseudo ground truth, the oracle)."""
    from vcm.eval.detect import create_detector

    if gt is None:
        gt = ground_truth(spec, decoded, detector, frames_to_score(None, decoded.source_frames, every), batch, video_options)
    if detector is None:
        detector = create_detector("oracle", gt=gt)
    return gt, detector


def frames_to_score(gt: GroundTruth | None, source_frames: range, every: int = 1) -> list[int]:
    """The source frames among ``source_frames`` (the decoded ones) that have ground truth (all of them
    for pseudo ground truth) whose offset from the first is a multiple of ``every`` (the same frames
    however often applied)."""
    if every < 1:
        raise VcmError(f"every must be ≥ 1, got {every}")
    frames = list(source_frames) if gt is None else gt.covers(source_frames)
    return [f for f in frames if (f - source_frames.start) % every == 0]


def decode_any(path: Path, device, frames: str = "auto", size=None, fps=None, bit_depth=None,
               checkpoint: Path | None = None, gt: GroundTruth | None = None, every: int = 1) -> Decoded:
    """A ``.nerv`` bitstream is decoded; anything else is read as a video (the original too).

    A stream decodes the source frames ``frames`` selects among those it holds (``auto``: all of them; ``ctc``,
    ``A:B`` as for a video), and with ground truth known before decoding (``gt``), only the range of them
    that will be scored (each frame decodes on its own); the frames chosen by :func:`frames_to_score` are
    the same as after a full decode."""
    from vcm import codecs

    path = Path(path)
    codec = codecs.for_stream(path)
    if codec is not None:
        def wanted(source: range, sequence: str) -> range:
            if frames not in (None, "auto"):  # --frames on a stream was dropped without a word
                from vcm.video.source import select_frames

                source = select_frames(frames, source, sequences.lookup(sequence), path.name)
            picked = frames_to_score(gt, source, every) if gt is not None else []
            # no frame to score: all of them are decoded, and score() says why
            return range(picked[0], picked[-1] + 1) if picked else source

        out, source, name = codec.read_stream(path, device, wanted, checkpoint)
        return Decoded(out, source, name)
    from vcm.video import load, probe

    video = load(probe(path, size=size, fps=fps, bit_depth=bit_depth, need_fps=False), frames)  # no rate is read
    name = video.info.sequence.name if video.info.sequence else video.name
    return Decoded(video.frames_u8, video.source_frames, name, video.info.first_source_frame + video.info.num_frames)


def input_name(path: Path, size=None, fps=None, bit_depth=None) -> str:
    """The sequence an input stands for, read cheaply (a stream's header, a video's name): the same
    name :func:`decode_any` gives, known before anything is decoded."""
    from vcm import codecs

    path = Path(path)
    codec = codecs.for_stream(path)
    if codec is not None:
        return codec.stream_sequence(path)
    from vcm.video import probe
    from vcm.video.naming import parse_size

    info = probe(path, size=parse_size(size) if isinstance(size, str) else size, fps=fps, bit_depth=bit_depth,
                 need_fps=False)
    return info.sequence.name if info.sequence else info.name


def score(decoded: Decoded, gt: GroundTruth, detector: Detector, batch: int = 16,
          every: int = 1, keep: Path | None = None, key: dict | None = None) -> tuple[ScoredClip, dict]:
    """Run the detector on the decoded frames that have ground truth (every ``every``-th) and score them
    (``keep``, ``key``: where a stopped run keeps its detections, and what they depend on;
    :func:`vcm.eval.kept_detections.detect_frames`)."""
    if decoded.frames_u8.shape[2:] != (gt.height, gt.width):
        raise VcmError(f"decoded frames are {decoded.frames_u8.shape[3]}x{decoded.frames_u8.shape[2]}, "
                       f"the ground truth of {gt.sequence} is {gt.width}x{gt.height}")
    if tuple(detector.classes) != tuple(gt.classes):
        raise VcmError(f"the detector {detector.name} has {len(detector.classes)} classes that are not the ground "
                       f"truth's {len(gt.classes)}; map the annotations to its classes")
    frames = frames_to_score(gt, decoded.source_frames, every)
    if not frames:
        have = sorted(gt.frames)
        raise VcmError(f"decoded frames {decoded.source_frames.start}:{decoded.source_frames.stop} have no ground truth "
                       f"({gt.sequence} is annotated on frames {have[0]}:{have[-1] + 1})")
    if len(frames) < len(decoded.source_frames):
        progress.log(f"evaluating {len(frames)} of {len(decoded.source_frames)} frames "
                     f"(those with ground truth{', one in ' + str(every) if every > 1 else ''})")
    index = [f - decoded.source_frames.start for f in frames]
    start = time.time()
    detections, kept = detect_frames(decoded.frames_u8, index, frames, detector, batch, f"detect ({detector.name})",
                                     keep, key)
    seconds, detected = time.time() - start, len(frames) - kept  # the speed is this run's: kept frames took no time
    clip = ScoredClip(gt, frames, detections)
    scores = evaluate([clip])
    scores.update({"sequence": gt.sequence, "source_frames": [frames[0], frames[-1] + 1], "frames": len(frames),
                   "every": every, "ground_truth": {"kind": gt.kind, "source": gt.source},
                   "detector": detector.name, "detector_settings": detector.settings(), "detect_seconds": seconds,
                   "detect_seconds_per_frame": seconds / detected if detected else None,
                   "detect_frames_per_second": detected / max(seconds, 1e-9) if detected else None,
                   **({"detections_continued": kept} if kept else {})})
    return clip, scores


OUTPUTS = ("detections.json", "scores.json")
KEPT = "detections.partial.pt"  # a stopped evaluation's detections so far, beside its outputs


def check_output_folder(out: Path) -> None:
    """Refuse a folder where writing :data:`OUTPUTS` would replace files that no vcm eval wrote (an earlier
    evaluation's pair is replaced: the same command again)."""
    out = Path(out)
    present = [name for name in OUTPUTS if (out / name).exists()]
    if present and not json_has_keys(out / OUTPUTS[1], {"input", "truth", "map"}):
        raise VcmError(f"{out} holds {' and '.join(present)} that no vcm eval wrote; an evaluation would replace "
                       f"{'them' if len(present) > 1 else 'it'}: name a new or empty folder with --out")


def write_outputs(out: Path, clip: ScoredClip, scores: dict) -> None:
    """Both outputs, or neither: detections.json alone was no evaluation's that a run again could replace."""
    write_together([(Path(out) / OUTPUTS[0], json_bytes(results_json(clip))),
                    (Path(out) / OUTPUTS[1], json_bytes(scores))])
