"""``vcm info CTC_FOLDER``: how far a ``vcm ctc run`` got — its points per sequence and codec, finished,
failed or left unfinished (a stage stopped in it, or not begun) — and whether its report is written,
read from the points' folders (nothing is run)."""

from __future__ import annotations

from pathlib import Path


def is_ctc_results(path: Path) -> bool:
    """A ``vcm ctc run`` output folder: its log or its points' folder is there."""
    if not path.is_dir():  # a file: answered before the runner's modules (and torch) are imported
        return False
    from vcm.ctc.run import LOG

    return (path / "points").is_dir() or (path / LOG).is_file()


def describe_ctc_results(path: Path) -> dict:
    """Per (sequence, codec): the curves its finished points belong to, the points ``ok`` (with their rate
    range in kbps), ``failed`` (with the error) and ``unfinished`` (``vcm.ctc.tables.collect``: a folder
    without a result, with ``stopped_stage`` when a stage kept its state there); and the report's files."""
    from vcm.ctc.report import REPORT_FILES
    from vcm.ctc.tables import collect, curve_of

    rows, failed, unfinished = collect(path, require=False)
    curves: dict[tuple[str, str], dict] = {}

    def entry(r: dict) -> dict:
        return curves.setdefault((r["sequence"], r["codec"]), {"sequence": r["sequence"], "codec": r["codec"],
                                                               "curves": [], "ok": 0, "kbps": [], "failed": [],
                                                               "unfinished": []})

    for r in rows:
        c = entry(r)
        c["ok"] += 1
        c["kbps"].append(r["kbps"])
        c["curves"] = sorted(set(c["curves"]) | {curve_of(r)})  # a codec's methods (hinerv → hinerv-rd)
    for r in failed:
        entry(r)["failed"].append({"point": r["point"], "error": r["error"]})
    for u in unfinished:
        entry(u)["unfinished"].append({"point": u["point"], "stopped_stage": u["stopped_stage"]})
    listed = [curves[k] for k in sorted(curves)]
    for c in listed:
        c["kbps"] = [min(c["kbps"]), max(c["kbps"])] if c["kbps"] else None
    return {"path": str(path), "kind": "ctc results", "curves": listed,
            "points": {"ok": len(rows), "failed": len(failed), "unfinished": len(unfinished)},
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
