"""``vcm ctc compare B1 N1 B2 N2 …``: a codec change judged over several starts, against the spread of the starts.

One run of a NeRV-family codec differs from the next by its start (a seed): on the dev clips by 4–13 % BD-rate
(docs/hinerv.md, "Seeds"), as much as most changes. So a change is kept only with a gain on every clip beyond
that clip's spread. Each pair is a run of the codec before (BASE) and after (NEW) from the same start; a folder
may be one results folder or a folder of them (``benchmarks/dev_clips.py --out``: one per clip, paired by name).

Per (clip, sequence, curve): the BD-rate of NEW against BASE in every pair (:func:`vcm.ctc.compare.compare`), their
mean, the spread of the starts (the largest BD-rate, either sign, of a later run against the first of its side,
BASE's or NEW's, a figure withheld for its overlap counted as its extrapolation; none with a single pair) and a
verdict: ``fewer bits`` or ``more bits`` *beyond the spread* when every pair's figure is shown, of that sign and
larger than the spread, ``within the spread`` otherwise, ``not judged`` where a pair's figure is withheld (overlap
under 75 %) or missing, and ``one start`` for a single pair (no spread to judge against)."""

from __future__ import annotations

from pathlib import Path

from vcm.ctc.compare import compare
from vcm.errors import VcmError

VERDICTS = ("fewer bits beyond the spread", "more bits beyond the spread", "within the spread", "not judged",
            "one start")


def result_sets(folder: Path) -> dict[str, Path]:
    """The results folders ``folder`` stands for: itself (named ``""``) when it holds points, else each of its
    sub-folders that does, by name."""
    folder = Path(folder)
    if (folder / "points").is_dir():
        return {"": folder}
    found = {p.name: p for p in sorted(folder.iterdir()) if (p / "points").is_dir()} if folder.is_dir() else {}
    if not found:
        raise VcmError(f"{folder} holds no CTC results, nor folders that do; name what vcm ctc run wrote (its --out)"
                       if folder.exists() else f"{folder} does not exist; name the folder vcm ctc run wrote (its --out)")
    return found


def judge(pairs: list[tuple[Path, Path]], metric: str = "psnr_y", monotone: frozenset = frozenset()) -> dict:
    """{"pairs", "metric", "curves": one dict per (set, sequence, curve), "summary": one per curve}. A judged
    curve has ``pairs_<m>`` (per pair: ``{bd_rate, overlap, withheld, note}``) and ``mean_<m>`` for ``metric`` and
    ``map``, ``spread_base`` and ``spread_new`` (each side's own, percent on ``metric``, figures withheld for their
    overlap counted as their extrapolation: then ``spread_note`` says so), ``spread`` (the larger; None with one
    pair, or where a side's figure is missing: then ``spread_note``), and ``verdict``
    (one of :data:`VERDICTS`); a curve compared in no pair has ``note``."""
    if not pairs:
        raise VcmError("compare needs a BASE and a NEW results folder")
    sets = [(result_sets(b), result_sets(n)) for b, n in pairs]
    names = sorted(set.intersection(*(set(b) & set(n) for b, n in sets)))
    if not names:
        raise VcmError("the folders share no results folder by name to compare (" + "; ".join(
            f"{b}: {', '.join(sorted(result_sets(b))) or 'itself'}" for b, _ in pairs) + ")")
    out = []
    for name in names:
        runs = [compare(b[name], n[name], metric, monotone)["curves"] for b, n in sets]
        spreads = {side: [compare(sets[0][i][name], later[i][name], metric, monotone)["curves"] for later in sets[1:]]
                   for i, side in enumerate(("base", "new"))}
        for key in _keys(runs):
            out.append(_judged(name, key, [_find(r, key) for r in runs],
                               {side: [_find(c, key) for c in rows] for side, rows in spreads.items()}, metric))
    return {"pairs": [[str(b), str(n)] for b, n in pairs], "metric": metric, "curves": out,
            "summary": _summary(out)}


def _keys(runs: list[list[dict]]) -> list[tuple[str, str]]:
    """Every (sequence, curve) of the pairs' comparisons, in the first pair's order."""
    keys = []
    for rows in runs:
        keys += [(r["sequence"], r["curve"]) for r in rows if (r["sequence"], r["curve"]) not in keys]
    return keys


def _find(rows: list[dict], key: tuple[str, str]) -> dict | None:
    return next((r for r in rows if (r["sequence"], r["curve"]) == key), None)


def _figure(row: dict | None, m: str) -> dict:
    if row is None or "note" in row:
        return {"bd_rate": None, "overlap": None, "withheld": False, "note": (row or {}).get("note", "not in this pair")}
    return {"bd_rate": row[f"bd_rate_{m}"], "overlap": row[f"overlap_{m}"], "withheld": row[f"withheld_{m}"],
            "note": row[f"note_{m}"]}


def _judged(name: str, key: tuple[str, str], rows: list[dict | None], own: dict[str, list[dict | None]],
            metric: str) -> dict:
    """One curve judged: its figures in every pair (``rows``) against the larger of the two sides' own spreads
    (``own``: each side's later runs against its first, on the same curve)."""
    out = {"set": name, "sequence": key[0], "curve": key[1]}
    if all(r is None or "note" in r for r in rows):
        first = next((r for r in rows if r is not None), {"note": "not in every pair"})
        return {**out, "note": first["note"], **({"only_in": first["only_in"]} if "only_in" in first else {})}
    for m in (metric, "map"):
        figures = [_figure(r, m) for r in rows]
        shown = [f["bd_rate"] for f in figures if f["bd_rate"] is not None and not f["withheld"]]
        out[f"pairs_{m}"] = figures
        out[f"mean_{m}"] = sum(shown) / len(shown) if shown else None
    out["spread"] = None
    extrapolated = False
    for side, side_rows in own.items():
        figures = [_figure(r, metric) for r in side_rows]
        # a figure withheld for its overlap still measures how far two starts lie apart: counted, it can only widen
        # the spread (and so make a verdict harder), where leaving it out would leave the curve unjudged
        out[f"spread_{side}"] = None if any(f["bd_rate"] is None for f in figures) or not figures \
            else max(abs(f["bd_rate"]) for f in figures)
        extrapolated |= any(f["withheld"] and f["bd_rate"] is not None for f in figures)
    has_spread = len(rows) > 1
    if has_spread and None in (out["spread_base"], out["spread_new"]):
        out["spread_note"] = "a run's curve against its side's first run has no figure"
    elif has_spread:
        out["spread"] = max(out["spread_base"], out["spread_new"])
        if extrapolated:
            out["spread_note"] = "counts a figure withheld for its overlap (its extrapolation)"
    out["verdict"] = _verdict(out[f"pairs_{metric}"], out["spread"], has_spread)
    return out


def _verdict(figures: list[dict], spread: float | None, has_spread: bool) -> str:
    """One of :data:`VERDICTS` for a curve's figures across the pairs against the base's ``spread``; ``one start``
    where a single pair gives no spread to judge against."""
    if any(f["bd_rate"] is None or f["withheld"] for f in figures) or (has_spread and spread is None):
        return "not judged"
    if not has_spread:  # a single pair: its sign is one start's, as likely as not the spread's own
        return "one start"
    values, bound = [f["bd_rate"] for f in figures], spread
    if all(v < -bound for v in values):
        return VERDICTS[0]
    if all(v > bound for v in values):
        return VERDICTS[1]
    return VERDICTS[2]


def _summary(rows: list[dict]) -> list[dict]:
    """Per curve: on how many (set, sequence) it was judged, and how many of each verdict."""
    out = []
    for curve in dict.fromkeys(r["curve"] for r in rows if "verdict" in r):
        judged = [r for r in rows if r["curve"] == curve and "verdict" in r]
        out.append({"curve": curve, "judged": len(judged), **{v: sum(r["verdict"] == v for r in judged)
                                                               for v in VERDICTS}})
    return out
