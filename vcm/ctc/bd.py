"""Bjøntegaard deltas with the ``bjontegaard`` package (PCHIP on log-rate, as the JVET sheet).

``monotone=True`` first makes each curve's quality non-decreasing in rate (isotonic regression,
pool-adjacent-violators), as newer VCM reporting fits each curve monotonically before BD, and keeps
of each flat run only its lowest-rate point (where that quality is first reached). ``vcm demo``
does this for mAP, whose curves saturate and wobble near the top (a detector at its ceiling).

Every figure comes with its overlap: the share of the two curves' combined range (quality for a
BD-rate, log-rate for a BD-metric) that both cover. Below ``MIN_OVERLAP`` (the tool's 75 %) the
figure extrapolates more than it measures: reports withhold it and say why.
"""

from __future__ import annotations

import numpy as np

MIN_OVERLAP = 0.75


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """|range(a) ∩ range(b)| / |range(a) ∪ range(b)| in [0, 1] (as the ``bjontegaard`` package)."""
    inter = min(a.max(), b.max()) - max(a.min(), b.min())
    union = max(a.max(), b.max()) - min(a.min(), b.min())
    return float(max(inter, 0.0) / union) if union > 0 else 0.0


def monotone(values: np.ndarray) -> np.ndarray:
    """Least-squares non-decreasing fit of ``values`` (given in increasing-rate order)."""
    blocks = [[float(v), 1] for v in values]
    i = 0
    while i < len(blocks) - 1:
        if blocks[i][0] > blocks[i + 1][0]:
            v = (blocks[i][0] * blocks[i][1] + blocks[i + 1][0] * blocks[i + 1][1]) / (blocks[i][1] + blocks[i + 1][1])
            blocks[i:i + 2] = [[v, blocks[i][1] + blocks[i + 1][1]]]
            i = max(i - 1, 0)
        else:
            i += 1
    return np.array([v for v, n in blocks for _ in range(n)])


def _curve(rates, metric, use_monotone: bool):
    r, m = np.asarray(rates, float), np.asarray(metric, float)
    order = np.argsort(r)
    r, m = r[order], m[order]
    if use_monotone:
        m = monotone(m)
        # a flat run reaches its quality first at its lowest rate: BD-rate needs a strictly rising curve
        first = np.concatenate([[True], np.diff(m) > 0])
        r, m = r[first], m[first]
    return r, m


def _first_fall(rates: np.ndarray, metric: np.ndarray) -> str | None:
    """Where a curve (sorted by rate) stops rising, in words; None for a rising curve."""
    for i in np.flatnonzero(np.diff(metric) <= 0):
        return f"{metric[i]:.2f} at {rates[i]:.1f} kbps, then {metric[i + 1]:.2f} at {rates[i + 1]:.1f} kbps"
    return None


def bd(anchor_rate, anchor_metric, test_rate, test_metric, use_monotone: bool = False) -> dict:
    """{"bd_rate": % (negative = test saves bits), "bd_metric": metric units, "overlap_rate" /
    "overlap_metric": the overlap (0–1) each figure integrates over, "withheld_rate" /
    "withheld_metric": overlap below ``MIN_OVERLAP``, "error": None | reason}."""
    from vcm.matplotlib_home import matplotlib_config_dir

    matplotlib_config_dir()  # bjontegaard imports matplotlib
    import bjontegaard

    out = {"bd_rate": None, "bd_metric": None, "overlap_rate": None, "overlap_metric": None,
           "withheld_rate": False, "withheld_metric": False, "error": None}
    pairs = [(a, b) for a, b in zip(anchor_rate, anchor_metric) if b is not None]
    tests = [(a, b) for a, b in zip(test_rate, test_metric) if b is not None]
    if not pairs or not tests:
        out["error"] = "not measured"
        return out
    if len(pairs) < 4 or len(tests) < 4:
        out["error"] = "needs 4 points per curve"
        return out
    ra, ma = _curve(*zip(*pairs), use_monotone)
    rt, mt = _curve(*zip(*tests), use_monotone)
    if len(np.unique(ma)) < 2 or len(np.unique(mt)) < 2:
        out["error"] = "flat quality curve"
        return out
    out["overlap_rate"] = round(overlap(ma, mt), 4)  # BD-rate integrates over the quality axis
    out["overlap_metric"] = round(overlap(np.log10(ra), np.log10(rt)), 4)
    out["withheld_rate"] = out["overlap_rate"] < MIN_OVERLAP
    out["withheld_metric"] = out["overlap_metric"] < MIN_OVERLAP
    import warnings

    notes = []
    for key, fn, label in (("bd_rate", bjontegaard.bd_rate, "BD-rate"), ("bd_metric", bjontegaard.bd_psnr, "BD-metric")):
        if out["overlap_rate" if key == "bd_rate" else "overlap_metric"] == 0:  # nothing to integrate over
            notes.append(f"{label}: {_apart(key, ra, ma, rt, mt)}")
            continue
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out[key] = float(fn(ra, ma, rt, mt, method="pchip", require_matching_points=False))
            msgs = sorted({str(w.message).split(". You can")[0].replace("BD cannot be calculated.", "").strip()
                           for w in caught if "Insufficient curve overlap" not in str(w.message)})
            if msgs:  # e.g. partial overlap: the figure covers the overlapping interval only
                notes.append(f"{label}: {'; '.join(msgs)}")
        except Exception as err:  # no overlap of the quality ranges, non-monotone curves
            falls = [f"the {name} curve's quality does not rise with its rate ({fall})"
                     for name, fall in (("anchor", _first_fall(ra, ma)), ("tested", _first_fall(rt, mt))) if fall]
            if key == "bd_rate" and falls:  # BD-rate integrates rate over quality: it needs rising curves
                notes.append(f"{label}: {'; '.join(falls)}; a report made with --monotone fits each curve first")
                continue
            twice = [f"the {name} curve has two points at {r[np.flatnonzero(np.diff(r) == 0)[0]]:.1f} kbps"
                     for name, r in (("anchor", ra), ("tested", rt)) if (np.diff(r) == 0).any()]
            if key == "bd_metric" and twice:  # BD-metric integrates quality over rate: it needs rates that differ
                notes.append(f"{label}: {'; '.join(twice)}")
                continue
            first_line = next(iter(str(err).splitlines()), "")  # some errors carry no message at all
            notes.append(f"{label}: {first_line[:100].rstrip('.') or type(err).__name__}")
    out["error"] = "; ".join(notes) or None
    for key in ("bd_rate", "bd_metric"):
        if out[key] is not None and not np.isfinite(out[key]):
            out[key] = None
    return out


def _apart(key: str, ra: np.ndarray, ma: np.ndarray, rt: np.ndarray, mt: np.ndarray) -> str:
    """Why a figure has nothing to integrate over: the two ranges it needs to share, side by side."""
    if key == "bd_rate":
        return (f"the quality ranges do not overlap (tested {mt.min():.2f} to {mt.max():.2f}, anchor {ma.min():.2f} to "
                f"{ma.max():.2f})")
    return (f"the rate ranges do not overlap (tested {rt.min():.1f} to {rt.max():.1f} kbps, anchor {ra.min():.1f} to "
            f"{ra.max():.1f} kbps)")


def describe(value: float | None, overlap_share: float | None, withheld: bool, note: str | None, unit: str = "%") -> str:
    """One cell: ``-12.3 % (overlap 81 %)``, or ``withheld (overlap 32 % < 75 %)``, or the reason."""
    if value is None:
        return f"n/a ({note})" if note else "n/a"
    share = ""
    if overlap_share is not None:  # a withheld figure never reads as "overlap 75 % < 75 %"
        digits = 1 if withheld and round(100 * overlap_share) >= round(100 * MIN_OVERLAP) else 0
        share = f"overlap {100 * overlap_share:.{digits}f} %"
    if withheld:
        return f"withheld ({share} < {100 * MIN_OVERLAP:.0f} %; {value:+.1f} {unit} extrapolated)"
    return f"{value:+.1f} {unit} ({share})"
