"""``vcm ctc report``: summary.csv, bd.json, RD plots, report.md and report.html from a CTC folder.

The work is split by kind: :mod:`vcm.ctc.tables` gathers the rows and computes the tables,
:mod:`vcm.eval.pooled` scores class-level mAP, :mod:`vcm.ctc.plots` draws, :mod:`vcm.ctc.render`
writes Markdown and HTML. They meet in one :class:`vcm.ctc.tables.ReportData`, built once here.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from vcm.ctc.bd import MIN_OVERLAP
from vcm.ctc.plots import curve_styles, rd_plot
from vcm.ctc.render import report_html, report_markdown
from vcm.ctc.tables import METRICS, SUMMARY_COLUMNS, collect, curve_of, report_data, summary_rows
from vcm.errors import VcmError
from vcm.fsutil import json_bytes, write_together


# What a report writes into its CTC folder, beside points/ and ctc.log.
SUMMARY, BD_JSON, PLOTS, REPORT_MD, REPORT_HTML = "summary.csv", "bd.json", "plots", "report.md", "report.html"
REPORT_FILES = (SUMMARY, BD_JSON, PLOTS, REPORT_MD, REPORT_HTML)
DEFAULT_ANCHORS = ("vvc", "hevc")  # the anchor of a report that names none: the first of these the results hold


def _check_annotations(annotations: Path, rows: list[dict]) -> None:
    """``--annotations`` names a folder that is there, for results that pool class mAP from it (points that
    scored an SFU-HW sequence's detections): a missing folder, or one given to results without such points,
    was ignored without a word."""
    from vcm.eval.pooled import poolable
    from vcm.fsutil import require_input

    require_input(annotations, "--annotations", folder_ok=True)
    if not any(poolable(r) for r in rows):
        raise VcmError("--annotations does not apply to these results (it is the SFU-HW ground truth that class "
                       "mAP is pooled from, and no point scored an SFU-HW sequence's detections)")


def make_report(out: Path, anchor: str | None = None, use_monotone: bool | None = False, annotations: Path | None = None,
                metric: str | None = "psnr_y", monotone_map: bool = False, as_last: bool = False) -> dict:
    """summary.csv, bd.json, plots/<sequence>.png, report.md and report.html from ``out/points``.

    ``anchor``: the curve BD figures are measured against; one the results do not hold is refused before
    anything is written (None: the first of :data:`DEFAULT_ANCHORS` they hold).
    ``metric``: the quality of the RD plots and BD figures (``psnr_y`` default, ``psnr_yuv``, ``psnr``).
    ``use_monotone``: make every curve monotone before BD; ``monotone_map``: only the mAP curves.
    ``as_last``: the settings left as None (anchor, metric, use_monotone) are those of the folder's last
    report (its bd.json), so that a report made again is the report the folder had, e.g. ``vcm demo``'s.
    """
    out = Path(out)
    rows, failed, unfinished = collect(out)
    if not rows and not failed:
        raise VcmError(f"{out} holds no finished CTC point yet ({len(unfinished)} without a result: stopped, killed or "
                       "still running); the same vcm ctc run finishes them")
    curves = {curve_of(r) for r in rows}
    if as_last:
        anchor, metric, use_monotone, monotone_map = _as_last(out, curves, anchor, metric, use_monotone, monotone_map)
    metric = metric or "psnr_y"
    if metric not in METRICS:
        raise VcmError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    anchor = _anchor(anchor, curves)
    if annotations is not None:
        _check_annotations(annotations, rows)
    summary = summary_rows(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS)
    w.writeheader()
    w.writerows(summary)

    monotone = frozenset({metric, "map"} if use_monotone else {"map"} if monotone_map else ())
    data = report_data(rows, failed, anchor, metric, monotone, annotations, unfinished)
    styles = curve_styles(sorted({c for seq in data.curves.values() for c in seq}))
    plots = {seq: rd_plot(seq, codecs, metric, styles) for seq, codecs in data.curves.items()}
    md_text = report_markdown(data)
    # all files or none (a full disk): a report.md of new settings beside the last report's bd.json, which a
    # report made again (`vcm demo`) takes its settings from, was no report
    write_together([(out / SUMMARY, buf.getvalue().encode()),
                    *((out / PLOTS / f"{seq}.png", png) for seq, png in plots.items()),
                    (out / REPORT_MD, md_text.encode()), (out / REPORT_HTML, report_html(md_text, plots).encode()),
                    (out / BD_JSON, json_bytes({"anchor": anchor, "monotone": sorted(monotone), "metric": metric,
                                                "min_overlap": MIN_OVERLAP, "sequences": data.bd_rows,
                                                "classes": data.class_bd}))])
    result = {"summary_csv": str(out / SUMMARY), "report_md": str(out / REPORT_MD),
              "report_html": str(out / REPORT_HTML), "points": len(rows), "failed": len(failed),
              "unfinished": len(unfinished),
              "metric": metric, "bd": data.bd_rows, "class_bd": data.class_bd}
    return result


def _as_last(out: Path, curves: set[str], anchor, metric, use_monotone, monotone_map):
    """(anchor, metric, use_monotone, monotone_map) with those not given taken from ``out``'s last report;
    says on the log which ones, and how to change them."""
    import json

    from vcm import progress

    try:
        last = json.loads((out / BD_JSON).read_text())
        last_anchor, last_metric, last_monotone = last["anchor"], last["metric"], set(last["monotone"])
        if not all(isinstance(v, str) for v in (last_anchor, last_metric, *last_monotone)):
            raise TypeError  # an edited file: a list here was unhashable below
    except (OSError, ValueError, KeyError, TypeError):
        return anchor, metric, use_monotone, monotone_map  # no earlier report (or not ours): the defaults
    kept = []
    if anchor is None and last_anchor in curves:
        anchor = last_anchor
        kept.append(f"anchor {anchor}")
    if metric is None and last_metric in METRICS:
        metric = last_metric
        kept.append(f"metric {metric}")
    if use_monotone is None and not monotone_map:
        use_monotone, monotone_map = last_metric in last_monotone, last_monotone == {"map"}
        if last_monotone:
            kept.append("every curve made monotone" if use_monotone else "mAP curves made monotone")
    if kept:
        progress.log(f"as the last report of {out}: {', '.join(kept)} (--anchor, --metric, --monotone, "
                     "--monotone-map or --no-monotone change them)")
    return anchor, metric, bool(use_monotone), monotone_map


def _anchor(anchor: str | None, curves: set[str]) -> str:
    """The anchor to measure against: ``anchor`` if the results hold that curve (a report against a curve
    that is not there used to replace the last report with one without a single BD figure)."""
    if anchor is None:
        return next((a for a in DEFAULT_ANCHORS if a in curves), DEFAULT_ANCHORS[0])
    if anchor not in curves:
        raise VcmError(f"--anchor {anchor}: the results hold no such curve (curves: {', '.join(sorted(curves)) or 'none'})")
    return anchor
