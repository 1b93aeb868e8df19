"""``vcm ctc compare BASE NEW``: every curve of one results folder against the same curve of another, as a codec
change is judged: the same codec (its curve name) on the same sequence and frames, before and after.

Per (sequence, curve) found in both folders: the BD-rate of NEW against BASE on the quality metric and on mAP
(where both measured it, against the same ground truth with the same detector settings), each with its overlap
(withheld below 75 %, as in the report), and both curves' points. A curve in one folder only is listed as such;
one made from other frames, another size or another file of the same name is not compared (its figure would
measure the clip, not the codec)."""

from __future__ import annotations

from pathlib import Path

from vcm.codecs import curve_order
from vcm.ctc.bd import bd
from vcm.ctc.tables import METRICS, collect, curves_by_sequence
from vcm.errors import VcmError
from vcm.words import differences


def compare(base: Path, new: Path, metric: str = "psnr_y", monotone: frozenset = frozenset()) -> dict:
    """{"base", "new", "metric", "curves": [one dict per (sequence, curve)]}. A compared curve has
    ``bd_rate_<m>``, ``overlap_<m>`` (0–1), ``withheld_<m>`` and ``note_<m>`` for ``metric`` and ``map``
    (negative BD-rate: NEW needs fewer bits for the same quality), and ``base_points``/``new_points`` as
    ``[kbps, quality]``; any other has a ``note`` saying why it was not compared (and ``only_in``, ``base`` or
    ``new``, where only that side has the curve). ``monotone``: the metrics,
    among ``metric`` and ``map``, whose curves are made monotone first (as the report's)."""
    if metric not in METRICS:
        raise VcmError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if Path(base).resolve() == Path(new).resolve():
        raise VcmError(f"{base} and {new} are one folder; compare two vcm ctc run results folders")
    curves_b = curves_by_sequence(collect(base)[0])
    curves_n = curves_by_sequence(collect(new)[0])
    out = []
    for seq in sorted(set(curves_b) | set(curves_n)):
        names = set(curves_b.get(seq, {})) | set(curves_n.get(seq, {}))
        for curve in sorted(names, key=curve_order):
            b, n = curves_b.get(seq, {}).get(curve, []), curves_n.get(seq, {}).get(curve, [])
            row = {"sequence": seq, "curve": curve, "base_points": _points(b, metric), "new_points": _points(n, metric)}
            if not b or not n:
                row["only_in"] = "new" if n else "base"
                row["note"] = f"only in {row['only_in']}"
            elif _clip(b) != _clip(n):
                row["note"] = f"other frames (base {_describe_clip(b)}, new {_describe_clip(n)})"
            elif _sources(b) and _sources(n) and _sources(b) != _sources(n):
                row["note"] = "another video file of the same name, size and frames (its fingerprint differs)"
            else:
                for m in (metric, "map"):
                    res = bd([p["kbps"] for p in b], [p.get(m) for p in b], [p["kbps"] for p in n], [p.get(m) for p in n],
                             m in monotone)
                    row.update({f"bd_rate_{m}": res["bd_rate"], f"overlap_{m}": res["overlap_rate"],
                                f"withheld_{m}": res["withheld_rate"], f"note_{m}": res["error"]})
                scored_otherwise = _scored_otherwise(b, n)
                if scored_otherwise:  # the mAP figure would measure the change of ground truth or detector
                    row.update({"bd_rate_map": None, "overlap_map": None, "withheld_map": False,
                                "note_map": scored_otherwise})
            out.append(row)
    if not any("note" not in r for r in out):
        raise VcmError(f"{base} and {new} share no curve of the same sequence and frames to compare")
    return {"base": str(base), "new": str(new), "metric": metric, "curves": out, "summary": _summary(out, metric)}


def _summary(rows: list[dict], metric: str) -> list[dict]:
    """Per curve: on how many sequences it was compared, on how many of those NEW needs fewer bits (a figure
    withheld for its overlap counts as neither), and the mean BD-rate over the figures not withheld."""
    out = []
    for curve in sorted({r["curve"] for r in rows if "note" not in r}, key=curve_order):
        compared = [r for r in rows if r["curve"] == curve and "note" not in r]
        shown = [r[f"bd_rate_{metric}"] for r in compared
                 if r[f"bd_rate_{metric}"] is not None and not r[f"withheld_{metric}"]]
        out.append({"curve": curve, "sequences": len(compared), "shown": len(shown),
                    "fewer_bits": sum(v < 0 for v in shown), "mean_bd_rate": sum(shown) / len(shown) if shown else None})
    return out


def _points(rows: list[dict], metric: str) -> list[list[float]]:
    return [[r["kbps"], r.get(metric)] for r in rows]


def _clip(rows: list[dict]) -> set:
    """What the rows coded: frame range and size (a curve of another clip is not the same codec's curve)."""
    return {(tuple(r.get("source_frames") or ()), r.get("width"), r.get("height")) for r in rows}


def _sources(rows: list[dict]) -> set:
    """The fingerprints of the video files the rows coded (``source_key``; rows written before it say none)."""
    return {r["source_key"] for r in rows if r.get("source_key")}


def _scored_otherwise(base: list[dict], new: list[dict]) -> str | None:
    """Why the two curves' mAP figures are not comparable, or None: scored against other ground truth (another
    kind, another pseudo ground truth, annotations whose fingerprint differs) or by other detector settings."""
    b = next((r for r in base if r.get("map") is not None), None)
    n = next((r for r in new if r.get("map") is not None), None)
    if b is None or n is None:
        return None
    tb, tn = b.get("ground_truth") or {}, n.get("ground_truth") or {}
    if tb.get("kind") != tn.get("kind"):
        return f"scored against other ground truth ({tb.get('kind')}, now {tn.get('kind')})"
    if tb.get("kind") == "pseudo" and tb.get("source") != tn.get("source"):  # the detector and score on the original
        return "scored against other pseudo ground truth (another detector or score threshold on the original)"
    if b.get("truth_key") and n.get("truth_key") and b["truth_key"] != n["truth_key"]:  # rows before it say none
        return "scored against other ground truth (the annotations' fingerprint differs)"
    db, dn = _detector(b.get("detector_settings") or {}), _detector(n.get("detector_settings") or {})
    if db and dn and db != dn:
        return f"scored by other detector settings ({differences(db, dn, 3)})"
    return None


def _detector(settings: dict) -> dict:
    """A weights file known by its name: a results folder copied from another machine keeps its paths."""
    weights = settings.get("weights")
    return {**settings, "weights": Path(weights).name} if isinstance(weights, str) else settings


def _describe_clip(rows: list[dict]) -> str:
    return ", ".join(f"{w}x{h} frames {f[0]}:{f[1]}" if len(f) == 2 else f"{w}x{h}" for f, w, h in sorted(_clip(rows), key=str))
