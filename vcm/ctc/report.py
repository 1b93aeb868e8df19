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
from vcm.fsutil import write_bytes, write_json, write_text


# What a report writes into its CTC folder, beside points/ and ctc.log.
SUMMARY, BD_JSON, PLOTS, REPORT_MD, REPORT_HTML = "summary.csv", "bd.json", "plots", "report.md", "report.html"
REPORT_FILES = (SUMMARY, BD_JSON, PLOTS, REPORT_MD, REPORT_HTML)
DEFAULT_ANCHORS = ("vvc", "hevc")  # the anchor of a report that names none: the first of these the results hold


def make_report(out: Path, anchor: str | None = None, use_monotone: bool = False, annotations: Path | None = None,
                metric: str = "psnr_y", monotone_map: bool = False) -> dict:
    """summary.csv, bd.json, plots/<sequence>.png, report.md and report.html from ``out/points``.

    ``anchor``: the curve BD figures are measured against; one the results do not hold is refused before
    anything is written (None: the first of :data:`DEFAULT_ANCHORS` they hold).
    ``metric``: the quality of the RD plots and BD figures (``psnr_y`` default, ``psnr_yuv``, ``psnr``).
    ``use_monotone``: make every curve monotone before BD; ``monotone_map``: only the mAP curves.
    """
    if metric not in METRICS:
        raise VcmError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    out = Path(out)
    rows, failed, unfinished = collect(out)
    if not rows and not failed:
        raise VcmError(f"{out} holds no finished CTC point yet ({len(unfinished)} without a result: stopped, killed or "
                       "still running); the same vcm ctc run finishes them")
    anchor = _anchor(anchor, {curve_of(r) for r in rows})
    summary = summary_rows(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS)
    w.writeheader()
    w.writerows(summary)
    write_text(out / SUMMARY, buf.getvalue())

    monotone = frozenset({metric, "map"} if use_monotone else {"map"} if monotone_map else ())
    data = report_data(rows, failed, anchor, metric, monotone, annotations, unfinished)
    styles = curve_styles(sorted({c for seq in data.curves.values() for c in seq}))
    plots = {}
    (out / PLOTS).mkdir(exist_ok=True)
    for seq, codecs in data.curves.items():
        png = rd_plot(seq, codecs, metric, styles)
        write_bytes(out / PLOTS / f"{seq}.png", png)
        plots[seq] = png
    md_text = report_markdown(data)
    write_text(out / REPORT_MD, md_text)
    write_text(out / REPORT_HTML, report_html(md_text, plots))
    result = {"summary_csv": str(out / SUMMARY), "report_md": str(out / REPORT_MD),
              "report_html": str(out / REPORT_HTML), "points": len(rows), "failed": len(failed),
              "unfinished": len(unfinished),
              "metric": metric, "bd": data.bd_rows, "class_bd": data.class_bd}
    write_json(out / BD_JSON, {"anchor": anchor, "monotone": sorted(monotone), "metric": metric,
                                 "min_overlap": MIN_OVERLAP, "sequences": data.bd_rows, "classes": data.class_bd})
    return result


def _anchor(anchor: str | None, curves: set[str]) -> str:
    """The anchor to measure against: ``anchor`` if the results hold that curve (a report against a curve
    that is not there used to replace the last report with one without a single BD figure)."""
    if anchor is None:
        return next((a for a in DEFAULT_ANCHORS if a in curves), DEFAULT_ANCHORS[0])
    if anchor not in curves:
        raise VcmError(f"--anchor {anchor}: the results hold no such curve (curves: {', '.join(sorted(curves)) or 'none'})")
    return anchor
