"""Reading one point's ``result.json`` back, trusting nothing in it.

The runner writes each row atomically, but a results folder is a user's folder: copied, synced, edited
by hand, or cut short by a full disk. A row that is not JSON, not an object, or lacks a field the report
reads (or holds text where a number goes) is *damaged*: ``vcm ctc run`` runs its point again and
``vcm ctc report`` lists it with the failed points instead of stopping with a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

from vcm.schema import finite_number as _number
from vcm.schema import whole_number as _whole

RESULT = "result.json"
_TEXT = ("sequence", "codec", "point")
_POSITIVE = ("kbps", "bytes", "fps", "frames")  # what every rate and BD figure divides by or integrates over
_NUMBER = ("psnr", "psnr_y", "bpp", "encode_seconds", "decode_seconds")  # the summary rounds them
_NUMBER_OR_NONE = ("ms_ssim", "map", "ap50")  # None where not measured (absent: None)
_OPTIONAL_NUMBER = ("psnr_yuv", "fit_seconds", "compress_seconds", "detect_seconds_per_frame", "decoder_kmac_per_pixel",
                    "bits_per_param", "estimate_bytes", "params")
_OPTIONAL_TEXT = ("class", "label", "experiment", "detections", "source_key", "truth_key")  # the keys: ctc compare
_OPTIONAL_MAPPING = ("settings", "detector_settings", "provenance")


def problem(row) -> str | None:
    """Why ``row`` (parsed JSON) cannot be a result row, or None when it can: every field the report, the
    summary and ``vcm ctc compare`` read has the type they read it as."""
    if not isinstance(row, dict):
        return "not an object"
    if row.get("status") not in ("ok", "failed"):
        return "no status ok or failed"
    for key in _TEXT + (("curve",) if row["status"] == "ok" else ("error",)):
        if not isinstance(row.get(key), str):
            return f"field {key!r} is not text"
    if row["status"] == "failed":
        return None
    for key in _POSITIVE:
        if not (_number(row.get(key)) and row[key] > 0):
            return f"field {key!r} is not a number above 0"
    for key in _NUMBER:
        if not _number(row.get(key)):
            return f"field {key!r} is not a number"
    for key in _NUMBER_OR_NONE + _OPTIONAL_NUMBER:
        if row.get(key) is not None and not _number(row[key]):
            return f"field {key!r} is not a number"
    for keys, kind, what in ((_OPTIONAL_TEXT, str, "text"), (_OPTIONAL_MAPPING, dict, "a mapping")):
        for k in keys:
            if row.get(k) is not None and not isinstance(row[k], kind):
                return f"field {k!r} is not {what}"
    for key in ("width", "height"):  # the plots' pixel rate and the MS-SSIM note read them
        if not (_whole(row.get(key)) and row[key] > 0):
            return f"field {key!r} is not a whole number above 0"
    src = row.get("source_frames")
    if src is not None and not (isinstance(src, list) and len(src) == 2 and all(map(_whole, src))):
        return "field 'source_frames' is not [first, end]"
    if row.get("qp") is not None and not _whole(row["qp"]):
        return "field 'qp' is not a whole number"
    return _ground_truth_problem(row.get("ground_truth")) or _breakdown_problem(row.get("breakdown")) \
        or _rate_control_problem(row.get("rate_control")) or _provenance_problem(row.get("provenance"))


def _provenance_problem(prov) -> str | None:
    """The report sorts the points' dates and devices and counts the first one's cores."""
    if prov is None:
        return None
    if not (isinstance(prov.get("date"), str) and isinstance(prov.get("device", ""), str)
            and (prov.get("cores") is None or (_whole(prov["cores"]) and prov["cores"] > 0))):
        return "field 'provenance' has no date as text, or a device or cores of another type"
    return None


def _ground_truth_problem(gt) -> str | None:
    if gt is None:
        return None
    if not isinstance(gt, dict) or (gt and not isinstance(gt.get("source"), str)) \
            or not isinstance(gt.get("kind", ""), str):
        return "field 'ground_truth' is not a mapping with its source and kind as text"
    return None


def _breakdown_problem(parts) -> str | None:
    if parts is None:
        return None
    if not isinstance(parts, list) or not all(
            isinstance(p, dict) and isinstance(p.get("part"), str) and _number(p.get("bytes"))
            and _number(p.get("share")) and (p.get("bits_per_param") is None or _number(p["bits_per_param"]))
            for p in parts):
        return "field 'breakdown' is not a list of parts with their bytes and share"
    return None


def _rate_control_problem(rc) -> str | None:
    if rc is None:
        return None
    bad = "field 'rate_control' is not a search's record"
    if not isinstance(rc, dict) or not isinstance(rc.get("target"), dict) or len(rc["target"]) != 1:
        return bad
    (unit, target), = rc["target"].items()
    key = {"kbps": "bytes", "psnr_y": "psnr_y"}.get(unit)
    if key is None or not (_number(target) and target > 0) or not (_number(rc.get("lambda")) and rc["lambda"] > 0):
        return bad
    trials = rc.get("trials")
    if not isinstance(trials, list) or not all(
            isinstance(t, dict) and _number(t.get("lambda")) and t["lambda"] > 0
            and (t.get(key) is None or _number(t[key])) for t in trials):
        return bad
    if not all(_number(rc.get(k, 0)) for k in ("goal", "tolerance")) or not isinstance(rc.get("hit", True), bool) \
            or rc.get("beyond") not in (None, "above", "below"):
        return bad
    if "hit" in rc and not all(_number(rc.get(k)) for k in ("goal", "tolerance")):  # a verdict and what it judged
        return bad
    return None


def load(path: Path) -> tuple[dict | None, str | None]:
    """``(row, None)`` for a sound row, ``(None, why)`` for a damaged one, ``(None, None)`` when there is none.

    ``path`` is ``points/<sequence>/<codec>/<point>/result.json``, and a sound row names those three folders: the
    report writes files named after a row's sequence (its plot), so a row naming ``../..`` wrote outside the
    results folder."""
    path = Path(path)
    if not path.exists():
        return None, None
    if not path.is_file():  # a named pipe was waited on for a writer forever
        return None, "not a regular file"
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return None, f"not readable JSON ({type(err).__name__})"
    why = problem(row) or _filed_elsewhere(row, path)
    if why:
        return None, why
    return ({**row, **{k: row.get(k) for k in _NUMBER_OR_NONE}} if row["status"] == "ok" else row), None


def _filed_elsewhere(row: dict, path: Path) -> str | None:
    """Why ``row``'s sequence, codec and point are not the folders ``path`` lies in, or None when they are."""
    said, folders = [row[k] for k in _TEXT], list(path.parts[-4:-1])
    if said != folders:
        return f"it names the point {'/'.join(said)!r}, not the folders it lies in"
    return None


def damaged_row(path: Path, why: str) -> dict:
    """A failed row standing for a damaged ``points/<sequence>/<codec>/<point>/result.json``."""
    path = Path(path)
    sequence, codec, point = path.parts[-4:-1]
    return {"status": "failed", "sequence": sequence, "codec": codec, "point": point,
            "error": f"{path} is damaged ({why}); vcm ctc run runs this point again"}
