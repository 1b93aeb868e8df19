"""Any COCO ground-truth JSON for any video: images → frames, categories → the detector's classes.

Images are matched to *source frame indices* (0-based frame numbers of the video file) by one of:

- ``field``: an explicit ``frame_index`` on every image (0-based);
- ``name0`` / ``name1``: the last number in the image's file name (``clip_176x144_30_val_007.png``
  → 7), counted from 0 or from 1. ``auto`` picks 0-based when some index is 0, else 1-based
  when the indices start at 1 (ffmpeg's ``%03d.png`` dumps do), else 0-based; the choice is stated;
- ``order``: the images in the JSON's order stand for the frames ``--frames A:B`` one by one.

Categories are matched by name to the detector's classes (``motorbike`` = ``motorcycle``, case,
spaces, ``_`` and ``-`` ignored). A JSON without names gives ids: ``coco80`` (0-based indices,
SFU-HW's convention) or ``coco91`` (the original 1-based COCO ids with gaps); ``auto`` decides
from the ids and says so. ``--category-map NAME=CLASS`` renames a category first; a category
without a class is an error unless none of its objects is used.
"""

from __future__ import annotations

import math

import re
from dataclasses import dataclass
from pathlib import Path

from vcm.errors import VcmError
from vcm.detectors.classes import norm
from vcm.eval.coco_json import read_json
from vcm.eval.gt import COCO80, Box, GroundTruth, box_fault
from vcm.words import counted, noun

FRAME_MAPPINGS = ("auto", "field", "name0", "name1", "order")
CATEGORY_IDS = ("auto", "names", "coco80", "coco91")

# The ids of the 80 COCO classes in the original 1-based, 91-slot numbering (COCO-80 index k ↔ COCO91_IDS[k]).
COCO91_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31,
              32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57,
              58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87,
              88, 89, 90)
assert len(COCO91_IDS) == 80
_NUMBER = re.compile(r"(\d+)(?!.*\d)")


@dataclass
class Mapping:
    """How a JSON was read, stated in every output: ``frames`` and ``categories`` are one line each."""

    frames: str
    categories: str


def _frame_numbers(images: list[dict], path: Path) -> list[int]:
    out = []
    for im in images:
        m = _NUMBER.search(Path(str(im.get("file_name", ""))).stem)
        if m is None:
            raise VcmError(f"{path.name}: image file name {im.get('file_name')!r} has no frame number; "
                           "use --frame-mapping order with --frames A:B, or give each image a frame_index")
        out.append(int(m.group(1)))
    return out


def map_frames(images: list[dict], path: Path, mapping: str, num_frames: int,
               frames: range | None) -> tuple[list[int], str]:
    """Source frame index of each image, and a sentence saying how they were found."""
    if mapping not in FRAME_MAPPINGS:
        raise VcmError(f"--frame-mapping must be one of {', '.join(FRAME_MAPPINGS)}, got {mapping!r}")
    if mapping == "auto":
        if images and all("frame_index" in im for im in images):
            mapping = "field"
        elif frames is not None and not all(_NUMBER.search(Path(str(im.get("file_name", ""))).stem) for im in images):
            mapping = "order"
        else:  # numbers from 1 (ffmpeg's dumps), or that run one past the last frame, count from 1
            numbers = _frame_numbers(images, path)
            lo, hi = min(numbers), max(numbers)
            mapping = "name1" if lo == 1 or (lo > 0 and hi == num_frames) else "name0"
    if mapping == "field":
        try:
            index = [int(im["frame_index"]) for im in images]
        except (KeyError, TypeError, ValueError):
            raise VcmError(f"{path.name}: every image needs an integer frame_index for --frame-mapping field") from None
        how = "by each image's frame_index (0-based)"
    elif mapping in ("name0", "name1"):
        base = int(mapping[-1])
        index = [n - base for n in _frame_numbers(images, path)]
        how = f"by the number in each file name, counted from {base}"
    else:
        if frames is None:
            raise VcmError("--frame-mapping order needs --frames A:B (the frames the images stand for, in order)")
        if len(images) != len(frames):
            raise VcmError(f"{path.name} lists {len(images)} images but --frames {frames.start}:{frames.stop} "
                           f"names {len(frames)} frames")
        index = list(frames)
        how = f"in JSON order onto frames {frames.start}:{frames.stop}"
    bad = [(im.get("file_name"), i) for im, i in zip(images, index) if not 0 <= i < num_frames]
    if bad:
        name, i = bad[0]
        raise VcmError(f"{path.name}: image {name!r} maps to frame {i}, but the video has frames 0:{num_frames} "
                       f"({counted(len(bad), 'image')} outside; check --frame-mapping)")
    dup = len(index) - len(set(index))
    if dup:
        raise VcmError(f"{path.name}: {counted(dup, 'image')} {noun(dup, 'maps', 'map')} to a frame another image "
                       f"already has; check --frame-mapping")
    return index, how


def _parse_category_map(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        a, sep, b = str(pair).partition("=")
        if not sep or not a.strip() or not b.strip():
            raise VcmError(f"--category-map takes NAME=CLASS, got {pair!r}")
        out[norm(a)] = norm(b)
    return out


def map_categories(data: dict, path: Path, classes: tuple[str, ...], mode: str,
                   rename: list[str] | None, used: set) -> tuple[dict, str]:
    """{JSON category id → index into ``classes``} for every id that annotations use, and a sentence."""
    if mode not in CATEGORY_IDS:
        raise VcmError(f"--category-ids must be one of {', '.join(CATEGORY_IDS)}, got {mode!r}")
    by_class = {norm(c): i for i, c in enumerate(classes)}
    renames = _parse_category_map(rename)
    cats = data.get("categories") if isinstance(data.get("categories"), list) else []
    named = {c.get("id"): c.get("name") for c in cats if isinstance(c, dict) and c.get("name") is not None}
    unlisted = sorted(map(str, used - set(named)))
    if mode == "names" or (mode == "auto" and named):
        if unlisted:  # not "no names" (they have some), not "no class" (there is no name to match)
            listed = ", ".join(f"{i} {n}" for i, n in list(named.items())[:5]) or "none"
            raise VcmError(f"{path.name}: annotations use {noun(len(unlisted), 'category id')} "
                           f"{', '.join(unlisted[:6])} that 'categories' does not name (it names {listed}); "
                           "fix the JSON, or pass --category-ids coco80 or coco91 to read the ids as COCO's")
        mode = "names"
    if mode == "auto":
        ids = {i for i in used if isinstance(i, (int, float))}
        if ids and (0 in ids or ids - set(COCO91_IDS)) and max(ids) < 80:
            mode = "coco80"  # 0, or an id in one of COCO-91's gaps (12, 26, …)
        elif ids and max(ids) >= 80:
            mode = "coco91"
        else:
            raise VcmError(f"{path.name}: categories have no names and ids {sorted(ids)[:6]} could be COCO-80 "
                           "indices or COCO-91 ids; pass --category-ids coco80 or coco91")
    coco80 = COCO80
    if mode == "names":
        names = {i: named.get(i) for i in used}
        how = "by name"
    elif mode == "coco80":
        names = {i: coco80[int(i)] if isinstance(i, (int, float)) and 0 <= int(i) < 80 and int(i) == i else None
                 for i in used}
        how = "as COCO-80 indices (0 = person)"
    else:
        pos = {cid: k for k, cid in enumerate(COCO91_IDS)}
        names = {i: coco80[pos[int(i)]] if isinstance(i, (int, float)) and int(i) == i and int(i) in pos else None
                 for i in used}
        how = "as COCO-91 ids (1 = person)"
    out, missing = {}, []
    for cid, name in names.items():
        key = renames.get(norm(name), norm(name)) if name is not None else None
        if key is None or key not in by_class:
            missing.append(f"{name or '?'} (id {cid})")
        else:
            out[cid] = by_class[key]
    if missing:
        raise VcmError(f"{path.name}: categories with no class of the detector: {', '.join(sorted(missing)[:5])}"
                       f"{' …' if len(missing) > 5 else ''}; rename with --category-map NAME=CLASS")
    if renames:
        how += " after " + ", ".join(f"{a}→{b}" for a, b in renames.items())
    return out, how


def load_annotations(path: Path, name: str, width: int, height: int, num_frames: int,
                     classes: tuple[str, ...], frame_mapping: str = "auto", frames: range | None = None,
                     category_ids: str = "auto", category_map: list[str] | None = None) -> tuple[GroundTruth, Mapping]:
    """A user's COCO JSON as ground truth of a ``width``×``height`` video of ``num_frames`` frames.

    Boxes are absolute ``[x, y, w, h]`` pixels; every image must have the video's size when it says
    its size. Frames listed without annotations are frames without objects (they count).
    """
    path = Path(path)
    data = read_json(path)
    images = [im for im in data["images"] if isinstance(im, dict)]
    if not images or len(images) != len(data["images"]):
        raise VcmError(f"{path.name}: 'images' must be a non-empty list of objects")
    for im in images:
        w, h = im.get("width"), im.get("height")
        if (w is not None and w != width) or (h is not None and h != height):
            raise VcmError(f"{path.name}: image {im.get('file_name')!r} is {w}x{h}, the video is {width}x{height}")
    index, frames_how = map_frames(images, path, frame_mapping, num_frames, frames)
    frame_of = {}
    for im, f in zip(images, index):
        if "id" not in im:
            raise VcmError(f"{path.name}: image {im.get('file_name')!r} has no id")
        frame_of[im["id"]] = f
    anns = data["annotations"]
    if not all(isinstance(a, dict) for a in anns):  # one dropped without a word is an object never counted
        raise VcmError(f"{path.name}: 'annotations' must be a list of objects")
    used = set()
    for i, a in enumerate(anns):
        if a.get("image_id") not in frame_of:
            raise VcmError(f"{path.name}: {_annotation(a, i)} refers to image {a.get('image_id')!r}, which is not listed")
        used.add(a.get("category_id"))
    cat_of, cats_how = map_categories(data, path, classes, category_ids, category_map, used)
    gt = GroundTruth(name, width, height, {f: [] for f in index}, tuple(classes), "annotations",
                     f"COCO JSON {path.name} (images matched {frames_how}; categories {cats_how})")
    for i, a in enumerate(anns):
        try:
            x, y, w, h = (float(v) for v in a["bbox"])
        except (KeyError, TypeError, ValueError):
            raise VcmError(f"{path.name}: {_annotation(a, i)} has no [x, y, w, h] bbox") from None
        fault = box_fault(x, y, w, h, width, height)
        if fault:
            raise VcmError(f"{path.name}: {_annotation(a, i)}'s bbox {a['bbox']} {fault}")
        try:
            iscrowd, area = int(a.get("iscrowd", 0) or 0), float(a.get("area", w * h))
        except (TypeError, ValueError, OverflowError):  # was a traceback of int() or float() (int() of inf)
            raise VcmError(f"{path.name}: {_annotation(a, i)}'s iscrowd and area must be numbers, got "
                           f"{a.get('iscrowd')!r} and {a.get('area')!r}") from None
        if not (iscrowd in (0, 1) and math.isfinite(area) and area >= 0):
            raise VcmError(f"{path.name}: {_annotation(a, i)}'s iscrowd must be 0 or 1 and its area a number of at "
                           f"least 0, got {a.get('iscrowd')!r} and {a.get('area')!r}")
        gt.frames[frame_of[a["image_id"]]].append(Box(x, y, w, h, cat_of[a["category_id"]], iscrowd, area))
    return gt, Mapping(frames_how, cats_how)


def _annotation(a: dict, i: int) -> str:
    """An annotation as an error message names it: by its id, else by its place in the list."""
    return f"annotation {a['id']}" if "id" in a else f"annotation #{i + 1} (no id)"
