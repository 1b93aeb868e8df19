"""``vcm info EVAL_FOLDER``: what a ``vcm eval`` output folder holds — the scores it wrote, or how far a
stopped evaluation got — read from its files (nothing is detected)."""

from __future__ import annotations

import json
from pathlib import Path

_SCORES_KEYS = {"input", "truth", "map"}  # a vcm eval's scores.json, not a user's file of the same name


def is_evaluation(path: Path) -> bool:
    """A folder that ``vcm eval`` wrote: its scores, or the detections of a stopped evaluation."""
    if not path.is_dir():  # a file: answered before the evaluation's modules (and torch) are imported
        return False
    from vcm.eval.run import KEPT, OUTPUTS
    from vcm.outputs import json_has_keys

    return json_has_keys(path / OUTPUTS[1], _SCORES_KEYS) or (path / KEPT).is_file()


def describe_evaluation(path: Path) -> dict:
    """The evaluated input, detector, ground truth, frames and mAP / AP50 (%) from ``scores.json``, and a
    stopped evaluation's progress (``stopped``: frames detected and to detect) from its kept detections."""
    from vcm.eval.run import KEPT, OUTPUTS

    r = {"path": str(path), "kind": "evaluation", "scored": False, "stopped": None}
    try:
        scores = json.loads((path / OUTPUTS[1]).read_text())
    except (OSError, ValueError):
        scores = None
    damaged = _scores_problem(scores) if isinstance(scores, dict) and _SCORES_KEYS <= scores.keys() else None
    if damaged:
        r["damaged"] = f"{path / OUTPUTS[1]} is damaged ({damaged}); the same vcm eval writes it again"
    elif isinstance(scores, dict) and _SCORES_KEYS <= scores.keys():
        r.update(scored=True, input=scores["input"], sequence=scores.get("sequence"),
                 detector=scores.get("detector"), ground_truth=(scores.get("ground_truth") or {}).get("source"),
                 frames=scores.get("frames"), source_frames=scores.get("source_frames"), every=scores.get("every"),
                 map=scores["map"], ap50=scores.get("ap50"), objects=scores.get("objects"),
                 detections=scores.get("detections"))
    if (path / KEPT).is_file():
        from vcm.errors import VcmError
        from vcm.fsutil import load_torch_dict

        try:
            kept = load_torch_dict(path / KEPT, "a stopped evaluation's detections")
            r["stopped"] = {"detected": len(kept["detections"]), "frames": int(kept["frames"])}
        except (VcmError, KeyError, TypeError, ValueError):
            pass  # not readable: the next vcm eval says so and starts afresh
    return r


def _scores_problem(scores: dict) -> str | None:
    """Why ``scores`` (a parsed scores.json) cannot be shown, or None: each field shown has the type it is shown as
    (an edited one was a TypeError traceback)."""
    from vcm.schema import finite_number
    from vcm.schema import whole_number as whole

    def text(v) -> bool:
        return isinstance(v, str)

    def span(v) -> bool:
        return isinstance(v, list) and len(v) == 2 and all(map(whole, v))

    def truth(v) -> bool:
        return isinstance(v, dict) and text(v.get("source", ""))

    kinds = {"input": (text, False), "map": (finite_number, True), "ap50": (finite_number, True),
             "sequence": (text, True), "detector": (text, True), "ground_truth": (truth, True),
             "frames": (whole, True), "every": (whole, True), "objects": (whole, True), "detections": (whole, True),
             "source_frames": (span, True)}
    for key, (sound, none_ok) in kinds.items():
        v = scores.get(key)
        if not (sound(v) or (none_ok and v is None)):
            return f"field {key!r} is not what vcm eval writes"
    return None


def evaluation_rows(r: dict) -> list[tuple[str, str]]:
    """The table of :func:`describe_evaluation`'s result."""
    from vcm.cli.common import fmt

    rows = [("folder", r["path"])]
    if r.get("damaged"):
        rows.append(("scores", r["damaged"]))
    if r["scored"]:
        rows += [("input", r["input"]), ("sequence", str(r["sequence"])), ("detector", str(r["detector"])),
                 ("ground truth", str(r["ground_truth"])),
                 ("frames", f"{r['frames']} (source {r['source_frames'][0]}:{r['source_frames'][1]}"
                            f"{', every ' + str(r['every']) if (r['every'] or 1) > 1 else ''})"
                  if r["source_frames"] else str(r["frames"])),
                 ("objects / detections", f"{r['objects']} / {r['detections']}"),
                 ("mAP@[.5:.95]", fmt(r["map"], 2, " %")), ("AP50", fmt(r["ap50"], 2, " %"))]
    if r["stopped"]:
        s = r["stopped"]
        rows.append(("stopped evaluation", f"{s['detected']} of {s['frames']} frames detected; the vcm eval command "
                                           "that started it continues it"
                     + (" (the scores above are an earlier evaluation's)" if r["scored"] else "")))
    return rows
