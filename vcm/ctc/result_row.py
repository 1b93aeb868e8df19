"""Reading one point's ``result.json`` back, trusting nothing in it.

The runner writes each row atomically, but a results folder is a user's folder: copied, synced, edited
by hand, or cut short by a full disk. A row that is not JSON, not an object, or lacks a field the report
reads (or holds text where a number goes) is *damaged*: ``vcm ctc run`` runs its point again and
``vcm ctc report`` lists it with the failed points instead of stopping with a traceback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

RESULT = "result.json"
_TEXT = ("sequence", "codec", "point")
_POSITIVE = ("kbps", "bytes", "fps", "frames")  # what every rate and BD figure divides by or integrates over
_NUMBER_OR_NONE = ("psnr", "psnr_y", "psnr_yuv", "ms_ssim", "map", "ap50", "encode_seconds", "decode_seconds")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def problem(row) -> str | None:
    """Why ``row`` (parsed JSON) cannot be a result row, or None when it can."""
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
    for key in _NUMBER_OR_NONE:
        if row.get(key) is not None and not _number(row[key]):
            return f"field {key!r} is not a number"
    return None


def load(path: Path) -> tuple[dict | None, str | None]:
    """``(row, None)`` for a sound row, ``(None, why)`` for a damaged one, ``(None, None)`` when there is none."""
    path = Path(path)
    if not path.exists():
        return None, None
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return None, f"not readable JSON ({type(err).__name__})"
    why = problem(row)
    return (None, why) if why else (row, None)


def damaged_row(path: Path, why: str) -> dict:
    """A failed row standing for a damaged ``points/<sequence>/<codec>/<point>/result.json``."""
    path = Path(path)
    sequence, codec, point = path.parts[-4:-1]
    return {"status": "failed", "sequence": sequence, "codec": codec, "point": point,
            "error": f"{path} is damaged ({why}); vcm ctc run runs this point again"}
