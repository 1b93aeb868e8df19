"""SFU-HW ground truth in one representation, keyed by *source* frame index.

Two sources:
- the CTC COCO JSON (m59143 conversion): images ``<Seq>_<W>x<H>_<fps>_val_NNN.png`` where NNN
  counts from 000 at the sequence's first CTC frame; ``category_id`` = COCO-80 index (0 = person);
  float image ids; absolute ``[x, y, w, h]`` boxes;
- the original SFU-HW-Objects-v1 labels: one txt per frame, ``<Seq>_<W>x<H>_<fps>_seq_NNN.txt``,
  NNN = 0-based source frame index, lines ``class cx cy w h`` relative to the frame (YOLO style).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from vcm import sequences
from vcm.detectors.classes import COCO80
from vcm.errors import VcmError
from vcm.fsutil import path_problem, require_input
from vcm.resources import data_dir

@dataclass(frozen=True)
class Box:
    """An object: absolute ``x, y, w, h`` in pixels, COCO-80 ``category`` (0 = person)."""

    x: float
    y: float
    w: float
    h: float
    category: int
    iscrowd: int = 0
    area: float | None = None


@dataclass
class GroundTruth:
    """Objects per source frame index of one sequence (frames without objects map to []).

    ``category`` of a box indexes ``classes`` (the detector's class names; COCO-80 by default).
    ``kind`` says where it came from: ``sfu-hw`` (the CTC JSON / labels), ``annotations`` (a
    user's COCO JSON) or ``pseudo`` (a detector's confident detections on the original frames);
    ``source`` describes it in one line for outputs and reports.
    """

    sequence: str
    width: int
    height: int
    frames: dict[int, list[Box]] = field(default_factory=dict)
    classes: tuple[str, ...] = tuple(COCO80)
    kind: str = "sfu-hw"
    source: str = ""

    def covers(self, source_frames: range) -> list[int]:
        return [i for i in source_frames if i in self.frames]


def box_fault(x: float, y: float, w: float, h: float, width: int, height: int) -> str | None:
    """Why a ground-truth box (absolute ``x, y, w, h`` pixels) in a ``width``×``height`` frame
    cannot be scored, or None when it can.

    Such a box would count as an object every detector misses (no detection can overlap it), so
    the loaders refuse it rather than lower every score in silence. A box partly outside the
    frame is fine: SFU-HW's own labels have them.
    """
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return "is not made of finite numbers"
    if w <= 0 or h <= 0:
        return "needs a width and height above 0"
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        return f"lies wholly outside the {width}x{height} frame"
    return None


# ASCII digits only: int() and float() also read "1_0" as 10 and full-width "１" as 1, so a label's typo, or a file
# named with other digits, was taken as another class or frame without a word
_VAL_RE = re.compile(r"^(?P<stem>.+)_val_(?P<n>[0-9]+)\.\w+$")
_SEQ_RE = re.compile(r"^(?P<stem>.+)_seq_(?P<n>[0-9]+)\.txt$")
_CLASS_RE = re.compile(r"[-+]?[0-9]+")
_NUMBER_RE = re.compile(r"[-+]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[-+]?[0-9]+)?|nan|inf(?:inity)?)", re.IGNORECASE)


def _sequence_of(stem: str):
    """``BQMall_832x480_60`` → manifest entry (or None)."""
    from vcm.video.naming import parse_name

    parsed = parse_name(stem)
    if parsed is None:
        return sequences.lookup(stem)
    return sequences.lookup_parsed(parsed.name, parsed.width, parsed.height)


def load_coco_json(path: Path, sequence: str | None = None) -> GroundTruth:
    """Read a CTC COCO JSON (m59143 layout or any COCO JSON with ``_val_NNN`` file names)."""
    from vcm.eval.coco_json import read_json  # the same checks of shape and ids as a user's COCO JSON

    path = Path(path)
    data = read_json(path)
    images, anns = data["images"], data["annotations"]
    seq = sequences.lookup(sequence) if sequence else None
    frame_of_image: dict[float, int] = {}
    gt = None
    if not all(isinstance(im, dict) and isinstance(im.get("id"), (int, float)) for im in images):
        raise VcmError(f"{path.name}: every image must be an object with a numeric id (the CTC layout)")
    for im in images:
        m = _VAL_RE.match(str(im.get("file_name", "")))
        if not m:
            raise VcmError(f"{path.name}: image file name {im.get('file_name')!r} is not <Seq>_<W>x<H>_<fps>_val_NNN.png")
        s = seq or _sequence_of(m.group("stem"))
        if s is None:
            raise VcmError(f"{path.name}: {m.group('stem')} is not an SFU-HW class C/D sequence; pass --sequence")
        if gt is None:
            width, height = im.get("width", s.width), im.get("height", s.height)
            if (width, height) != (s.width, s.height):  # the boxes are in the sequence's pixels
                raise VcmError(f"{path.name}: image {im.get('file_name')!r} is {width}x{height}; {s.name} is "
                               f"{s.width}x{s.height}")
            gt = GroundTruth(s.name, s.width, s.height, source=f"SFU-HW ground truth {path.name}")
        frame = s.ctc_first + int(m.group("n"))
        frame_of_image[float(im["id"])] = frame
        gt.frames.setdefault(frame, [])
    if gt is None:
        raise VcmError(f"{path.name} lists no images")
    for a in anns:
        try:
            frame = frame_of_image.get(float(a["image_id"]))
            x, y, w, h = (float(v) for v in a["bbox"])
            cat, iscrowd, area = int(a["category_id"]), int(a.get("iscrowd", 0)), float(a.get("area", w * h))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):  # OverflowError: int() of inf
            raise VcmError(f"{path.name}: annotation {a.get('id') if isinstance(a, dict) else a!r} needs image_id, "
                           "an [x, y, w, h] bbox and category_id as numbers") from None
        if frame is None:
            raise VcmError(f"{path.name}: annotation {a.get('id')} refers to unknown image {a['image_id']}")
        if not 0 <= cat < 80:
            raise VcmError(f"{path.name}: category_id {cat} is not a COCO-80 index (0..79)")
        fault = box_fault(x, y, w, h, gt.width, gt.height)
        if fault:
            raise VcmError(f"{path.name}: annotation {a.get('id')}'s bbox {a['bbox']} {fault}")
        gt.frames[frame].append(Box(x, y, w, h, cat, iscrowd, area))
    return gt


def load_yolo_labels(folder: Path, sequence: str, frames: range | None = None) -> GroundTruth:
    """Read SFU-HW per-frame txt labels (``<Seq>_..._seq_NNN.txt``) from ``folder``."""
    seq = sequences.lookup(sequence)
    if seq is None:
        raise VcmError(f"{sequence!r} is not an SFU-HW class C/D sequence")
    folder = Path(folder)
    if not folder.is_dir():
        raise VcmError(f"{folder} is not a folder of SFU-HW label files")
    gt = GroundTruth(seq.name, seq.width, seq.height, source=f"SFU-HW labels in {folder}")
    found = 0
    for frame, p in label_files(folder, seq).items():
        if frames is not None and frame not in frames:
            continue
        found += 1
        boxes = []
        try:
            text = p.read_text(encoding="utf-8-sig")  # a byte-order mark, as some Windows editors write
        except UnicodeDecodeError:  # was a traceback
            raise VcmError(f"{p.name}: not a text file of labels ('class cx cy w h' per line)") from None
        for ln, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            try:
                if len(parts) != 5 or not _CLASS_RE.fullmatch(parts[0]) or not all(
                        _NUMBER_RE.fullmatch(v) for v in parts[1:]):  # a sixth column (a confidence) is no label
                    raise ValueError
                cat, cx, cy, w, h = int(parts[0]), *map(float, parts[1:5])
            except ValueError:
                raise VcmError(f"{p.name}:{ln}: expected 'class cx cy w h', got {line!r}") from None
            if not 0 <= cat < 80:
                raise VcmError(f"{p.name}:{ln}: class {cat} is not a COCO-80 index (0..79)")
            bw, bh = w * seq.width, h * seq.height
            box = Box(cx * seq.width - bw / 2, cy * seq.height - bh / 2, bw, bh, cat, 0, bw * bh)
            fault = box_fault(box.x, box.y, box.w, box.h, seq.width, seq.height)
            if fault:
                raise VcmError(f"{p.name}:{ln}: the box {line.strip()!r} {fault}")
            boxes.append(box)
        gt.frames[frame] = boxes
    if not found:
        raise VcmError(f"no label files of {seq.name} (…_seq_NNN.txt) in {folder}")
    if frames is not None:
        for f in frames:  # frames without a file have no objects
            gt.frames.setdefault(f, [])
    return gt


def label_files(folder: Path, seq) -> dict[int, Path]:
    """{source frame: its label file} of SFU-HW sequence ``seq`` in ``folder``, in frame order."""
    out = {}
    for p in sorted(Path(folder).iterdir()):
        m = _SEQ_RE.match(p.name)
        if not m or p.is_dir() or _sequence_of(m.group("stem")) not in (seq, None):  # a folder of that name is no label
            continue
        problem = path_problem(p)  # a pipe was skipped: its frame counted as one without objects
        if problem:
            raise VcmError(f"{p} {problem}")
        frame = int(m.group("n"))
        if frame in out:  # _seq_7.txt and _seq_007.txt: one of them was dropped without a word
            raise VcmError(f"{out[frame].name} and {p.name} both hold the labels of frame {frame}; keep one")
        out[frame] = p
    return dict(sorted(out.items()))


def to_coco_json(gt: GroundTruth, first_frame: int) -> dict:
    """The m59143 layout: ``<Seq>_<W>x<H>_<fps>_val_NNN.png``, NNN from ``first_frame``."""
    seq = sequences.lookup(gt.sequence)
    stem = seq.file.rsplit(".", 1)[0] if seq else gt.sequence
    images, anns = [], []
    for i, frame in enumerate(sorted(gt.frames)):
        images.append({"file_name": f"{stem}_val_{frame - first_frame:03d}.png", "width": gt.width,
                       "height": gt.height, "id": float(i)})
        for b in gt.frames[frame]:
            anns.append({"bbox": [b.x, b.y, b.w, b.h], "bbox_mode": 0, "category_id": b.category,
                         "class": COCO80[b.category].replace("_", " "), "id": len(anns) + 1,
                         "image_id": float(i), "iscrowd": b.iscrowd, "area": b.area if b.area is not None else b.w * b.h})
    cats = [{"name": n.replace("_", " ").capitalize(), "id": i} for i, n in enumerate(COCO80)]
    return {"images": images, "annotations": anns, "categories": cats}


def find_annotations(sequence: str, annotations: Path | None = None) -> Path:
    """Resolve the CTC JSON of ``sequence``: --annotations (file or folder), $VCM_ANNOTATIONS, sequences/annotations/
    (a folder or one up to two levels below it, :func:`vcm.dataset_files.find_in`)."""
    from vcm.dataset_files import DEPTH, find_in

    if annotations is not None:  # a missing file was reported as the sequence's fault
        require_input(annotations, "--annotations", folder_ok=True)
    seq = sequences.lookup(sequence)
    if seq is None:
        raise VcmError(f"{sequence!r} is not an SFU-HW class C/D sequence, whose ground truth a folder may hold: "
                       "pass --annotations gt.json (COCO, any video) or --reference original (pseudo ground truth)")
    if annotations is not None and Path(annotations).is_file():
        return Path(annotations)
    folders = [Path(annotations)] if annotations is not None else []
    if os.environ.get("VCM_ANNOTATIONS"):
        folders.append(Path(os.environ["VCM_ANNOTATIONS"]))
    folders.append(data_dir("sequences") / "annotations")
    for folder in folders:
        found = find_in(folder, [seq.annotations], seq.name)
        if found is not None:
            return found
    raise VcmError(f"ground truth {seq.annotations} not found (looked in {', '.join(map(str, folders))} and the "
                   f"folders {DEPTH} levels below each); pass --annotations FILE_OR_DIR or set VCM_ANNOTATIONS")


def load_ground_truth(sequence: str, annotations: Path | None = None) -> GroundTruth:
    path = Path(annotations) if annotations is not None else None
    if path is not None and path.is_dir() and any(path.glob("*_seq_*.txt")):
        return load_yolo_labels(path, sequence)
    return load_coco_json(find_annotations(sequence, path), sequence)
