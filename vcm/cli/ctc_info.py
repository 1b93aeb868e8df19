"""``vcm info CTC_FOLDER``: how far a ``vcm ctc run`` got — its points per sequence and codec, finished,
failed or left unfinished (a stage stopped in it, or not begun) — and whether its report is written,
read from the points' folders (nothing is run)."""

from __future__ import annotations

from pathlib import Path


def is_ctc_results(path: Path) -> bool:
    """A ``vcm ctc run`` output folder: its log or its points' folder is there."""
    from vcm.ctc.run import LOG

    return path.is_dir() and ((path / "points").is_dir() or (path / LOG).is_file())


def describe_ctc_results(path: Path) -> dict:
    """Per (sequence, codec): the curves its finished points belong to, the points ``ok`` (with their rate range in kbps), ``failed`` (with the error)
    and ``unfinished`` (a folder without a result: stopped, killed or still running; ``stopped_stage``
    when a rate–distortion stage kept its state there); and the report's files present."""
    from vcm.codec.stage_state import PARTIAL
    from vcm.ctc import result_row
    from vcm.ctc.report import REPORT_FILES
    from vcm.ctc.tables import curve_of

    curves: dict[tuple[str, str], dict] = {}
    for point in sorted(p for p in (path / "points").glob("*/*/*") if p.is_dir()):
        seq, codec = point.parent.parent.name, point.parent.name
        row, damaged = result_row.load(point / result_row.RESULT)
        c = curves.setdefault((seq, codec), {"sequence": seq, "codec": codec, "curves": [], "ok": 0, "kbps": [],
                                             "failed": [], "unfinished": []})
        if row is not None and row["status"] == "ok":
            c["ok"] += 1
            c["kbps"].append(row["kbps"])
            c["curves"] = sorted(set(c["curves"]) | {curve_of(row)})  # a codec's methods (hinerv → hinerv-rd)
        elif row is not None or damaged:
            c["failed"].append({"point": point.name, "error": row["error"] if row else f"damaged result ({damaged})"})
        else:
            c["unfinished"].append({"point": point.name,
                                    "stopped_stage": any(point.glob("*" + PARTIAL))})
    for c in curves.values():
        c["kbps"] = [min(c["kbps"]), max(c["kbps"])] if c["kbps"] else None
    listed = list(curves.values())
    return {"path": str(path), "kind": "ctc results", "curves": listed,
            "points": {"ok": sum(c["ok"] for c in listed), "failed": sum(len(c["failed"]) for c in listed),
                       "unfinished": sum(len(c["unfinished"]) for c in listed)},
            "report": [name for name in REPORT_FILES if (path / name).exists()]}


def ctc_rows(r: dict) -> list[tuple[str, str]]:
    """The table of :func:`describe_ctc_results`'s result."""
    n = r["points"]
    rows = [("folder", r["path"]),
            ("points", f"{n['ok']} finished, {n['failed']} failed, {n['unfinished']} unfinished")]
    for c in r["curves"]:
        parts = []
        if c["ok"]:
            lo, hi = c["kbps"]
            parts.append(f"{c['ok']} finished ({lo:.1f}–{hi:.1f} kbps)")
        for f in c["failed"]:
            parts.append(f"{f['point']} failed: {f['error']}")
        for u in c["unfinished"]:
            parts.append(f"{u['point']} unfinished" + (" (a stage stopped in it; the same vcm ctc run continues it)"
                                                       if u["stopped_stage"] else ""))
        named = ", ".join(x for x in c["curves"] if x != c["codec"])
        rows.append((f"{c['sequence']} {c['codec']}" + (f" ({named})" if named else ""), "; ".join(parts)))
    rows.append(("report", ", ".join(r["report"]) if r["report"] else
                 f"none yet: vcm ctc report {r['path']}"))
    return rows
