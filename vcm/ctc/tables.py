"""The report's data: result rows gathered, grouped into curves, and the tables computed from them
(BD-rates against an anchor, the paper's Table 1, how the experiment was made). No rendering here:
:mod:`vcm.ctc.render` turns these into Markdown and HTML, :mod:`vcm.ctc.plots` into figures."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from vcm.codecs import curve_order
from vcm.ctc import result_row
from vcm.ctc.bd import MIN_OVERLAP, bd, describe
from vcm.errors import VcmError
from vcm.words import counted

SUMMARY_COLUMNS = ["Dataset", "fps", "num_of_coded_frame", "qp", "rate_point", "bitrate (kbps)", "end_accuracy", "encode",
                   "decode", "nn_task", "codec", "curve", "bytes", "bpp", "psnr", "psnr_y", "psnr_yuv", "ms_ssim", "map",
                   "ap50", "fit_seconds", "compress_seconds", "class", "ground_truth"]
METRICS = {"psnr_y": "Y-PSNR (dB)", "psnr_yuv": "YUV-PSNR 6:1:1 (dB)", "psnr": "RGB PSNR (dB)"}


def collect(out: Path, require: bool = True) -> tuple[list[dict], list[dict], list[dict]]:
    """(finished rows, failed rows, unfinished points) under ``out/points``. An unfinished point is a
    point's folder without a result (stopped, killed or still running): ``{"sequence", "codec", "point",
    "stopped_stage"}``, the last true when a rate–distortion stage kept its state there. ``require``: a
    folder without any point is an error."""
    from vcm.codec.stage_state import PARTIAL
    from vcm.eval.run import OUTPUTS

    rows, failed, unfinished = [], [], []
    for folder in sorted(p for p in Path(out).glob("points/*/*/*") if p.is_dir()):
        p = folder / result_row.RESULT
        r, why = result_row.load(p)
        if r is None and why is None and not p.exists():
            unfinished.append({"sequence": folder.parent.parent.name, "codec": folder.parent.name,
                               "point": folder.name, "stopped_stage": any(folder.glob("*" + PARTIAL))})
            continue
        if r is None:
            r = result_row.damaged_row(p, why or "gone while it was read")
        elif r.get("detections"):
            # always the point's own file, where the folder is now: a results folder copied off the machine that ran
            # it keeps the absolute paths it was written with, and an edited row could name any file
            r = {**r, "detections": str(folder / OUTPUTS[0])}
        (rows if r.get("status") == "ok" else failed).append(r)
    if require and not rows and not failed and not unfinished:
        if not Path(out).exists():  # a mistyped folder was reported as one without results
            raise VcmError(f"{out} does not exist; name the folder vcm ctc run wrote (its --out)")
        raise VcmError(f"{out} holds no CTC results; run vcm ctc run first")
    return rows, failed, unfinished


def _round(v, digits):
    return None if v is None else round(v, digits)


def summary_rows(rows: list[dict]) -> list[dict]:
    """The CTC summary layout: ``qp`` numeric (empty for codecs without one), the rate point's name
    in ``rate_point``, fps to three decimals (29.97, not 29.97002997002997)."""
    out = []
    for r in rows:
        out.append({"Dataset": r["sequence"], "fps": round(r["fps"], 3), "num_of_coded_frame": r["frames"],
                    "qp": r["qp"] if isinstance(r.get("qp"), int) else None, "rate_point": r["point"],
                    "bitrate (kbps)": round(r["kbps"], 4), "end_accuracy": _round(r["map"], 4),
                    "encode": round(r["encode_seconds"], 3), "decode": round(r["decode_seconds"], 3),
                    "nn_task": "detection" if r["map"] is not None else "none", "codec": r["codec"],
                    "curve": curve_of(r), "bytes": r["bytes"], "bpp": round(r["bpp"], 6),
                    "psnr": round(r["psnr"], 4), "psnr_y": round(r["psnr_y"], 4), "psnr_yuv": _round(r.get("psnr_yuv"), 4),
                    "ms_ssim": _round(r["ms_ssim"], 6), "map": _round(r["map"], 4), "ap50": _round(r["ap50"], 4),
                    "fit_seconds": _round(r.get("fit_seconds"), 1), "compress_seconds": _round(r.get("compress_seconds"), 1),
                    "class": r.get("class"), "ground_truth": (r.get("ground_truth") or {}).get("kind")})
    return out


def curves_by_sequence(rows: list[dict]) -> dict:
    """{sequence: {curve: [rows sorted by rate]}}; a curve is a codec, or one method of it (``nerv-rd``)."""
    by = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by[r["sequence"]][curve_of(r)].append(r)
    for seq in by.values():
        for codec in seq:
            seq[codec].sort(key=lambda r: r["kbps"])
    return by


def bd_table(curves: dict, anchor: str, monotone: frozenset = frozenset(), metric: str = "psnr_y") -> list[dict]:
    """BD figures of every curve against ``anchor`` per sequence, for the quality ``metric`` and mAP:
    keys ``bd_rate_<m>``, ``bd_<m>``, ``overlap_<m>`` (0–1), ``withheld_<m>`` and ``note_<m>``
    (``monotone``: the metrics, among ``metric`` and ``map``, whose curves are made monotone first)."""
    table = []
    for seq, codecs in curves.items():
        if anchor not in codecs:
            continue
        a = codecs[anchor]
        for codec, pts in codecs.items():
            if codec == anchor:
                continue
            row = {"sequence": seq, "codec": codec, "anchor": anchor, "metric": metric}
            for m in (metric, "map"):
                res = bd([p["kbps"] for p in a], [p.get(m) for p in a], [p["kbps"] for p in pts],
                         [p.get(m) for p in pts], m in monotone)
                row.update({f"bd_rate_{m}": res["bd_rate"], f"bd_{m}": res["bd_metric"], f"note_{m}": res["error"],
                            f"overlap_{m}": res["overlap_rate"], f"withheld_{m}": res["withheld_rate"]})
            table.append(row)
    return table


def curve_of(r: dict) -> str:
    """The curve a result row belongs to: its codec, or the method of it that made the row (``nerv-rd``)."""
    return r.get("curve") or r["codec"]


def point_label(r: dict) -> str:
    """A rate point's short name on a plot or in a table (QP37, λ1.0, …), as its codec named it when it
    ran; the point's id for a result written before points carried their label."""
    return str(r.get("label") or r["point"])


def experiment_lines(rows: list[dict], anchor: str, metric: str, monotone: frozenset) -> list[tuple[str, str]]:
    """(item, value) lines saying how the numbers were made: each codec's settings as it described them
    when its points ran, the code, libraries, machine and date (from the points' own records)."""
    lines = []
    by_codec: dict[str, dict[str, list[str]]] = {}  # codec → its descriptions, each with the points made so
    for r in sorted(rows, key=lambda r: (r["sequence"], r.get("kbps") or 0)):
        if r.get("settings"):
            text = r.get("experiment") or describe_settings(r["codec"], r["settings"])
            points = by_codec.setdefault(r["codec"], {}).setdefault(text, [])
            if point_label(r) not in points:
                points.append(point_label(r))
    for codec in sorted(by_codec, key=curve_order):
        ways = by_codec[codec]
        # a codec whose points were all made alike is one line; otherwise each way names its points
        lines += [(codec, text if len(ways) == 1 else f"{text} ({', '.join(points)})") for text, points in ways.items()]
    truths = sorted({(r["sequence"], r["ground_truth"]["source"]) for r in rows if r.get("ground_truth")})
    for seq, source in truths:
        lines.append((f"ground truth ({seq})", source))
    det = next((r["detector_settings"] for r in rows if r.get("detector_settings")), None)
    if det:
        per_frame = [r["detect_seconds_per_frame"] for r in rows if r.get("detect_seconds_per_frame")]
        lines.append(("detector", ", ".join(f"{k} {v}" for k, v in det.items())
                      + (f"; {min(per_frame):.3f}–{max(per_frame):.3f} s/frame" if per_frame else "")))
    provs = [r["provenance"] for r in rows if r.get("provenance")]
    if provs:
        prov = provs[0]
        lines.append(("vcm", f"{prov.get('vcm')}, commit {prov.get('commit') or 'unknown'}"))
        lines.append(("libraries", f"torch {prov.get('torch')}, CUDA {prov.get('cuda') or 'none'}, Python {prov.get('python')}"))
        lines.append(("machine", machine_line(provs)))
        dates = sorted(p["date"] for p in provs)
        lines.append(("date", dates[0] if dates[0][:10] == dates[-1][:10] else f"{dates[0]} – {dates[-1]}"))
    lines.append(("BD method", f"PCHIP on log-rate (bjontegaard package) against {anchor}, quality {METRICS.get(metric, metric)}"
                               f"{', curves made monotone first' if metric in monotone else ''}"
                               f"{', mAP curves made monotone first' if monotone == {'map'} else ''}; figures whose curves overlap "
                               f"less than {100 * MIN_OVERLAP:.0f} % are withheld"))
    return lines


def machine_line(provs: list[dict]) -> str:
    """The machine behind the points (``provs``: their provenance records, at least one): the first's CPU and cores
    (where it recorded them), host and platform, and every device the points ran on (a parallel run gives each
    point its share of the threads)."""
    prov = provs[0]
    devices = sorted({p["device"] for p in provs if p.get("device")}) or ["?"]
    where = f"{prov.get('host')}, {prov.get('platform')}"
    if prov.get("cpu") and prov.get("cores"):
        where = f"{prov['cpu']}, {counted(prov['cores'], 'core')} ({where})"
    return f"{where}; points ran on {' or '.join(devices)}"


def describe_settings(codec: str, settings: dict) -> str:
    """A result row's settings in words, for rows written before each codec described its own: by the
    codec still registered under that name, or else (or where it cannot read them: an edited row) its settings as
    they are."""
    from vcm import codecs

    try:
        return (codecs.get(codec) if codec in codecs.names() else codecs.Codec()).describe(settings)
    except (KeyError, TypeError, AttributeError, ValueError):
        return codecs.Codec().describe(settings)


def table1(curves: dict, metric: str = "psnr_y", monotone: frozenset = frozenset()) -> tuple[list[str], list[list]]:
    """The paper's Table 1 for every network trained both ways: per sequence, the BD-rate of the
    edge-loss curve (``sa-X``) against the same network and method with the plain loss (``X``), on
    mAP and on ``metric`` (negative: the edge loss needs fewer bits for the same mAP / quality).
    ``monotone``: the metrics whose curves are made monotone first."""
    quality = METRICS[metric].split(" (")[0]
    header = ["sequence", "class", "edge loss vs plain loss", "BD-rate (mAP)", f"BD-rate ({quality})", "points"]
    rows = []
    for seq, codecs in sorted(curves.items()):
        cls = next(iter(codecs.values()))[0].get("class") or "–"
        for sa in sorted(c for c in codecs if c.startswith("sa-") and c[3:] in codecs):
            plain, cells = sa[3:], []
            for m in ("map", metric):
                res = bd([p["kbps"] for p in codecs[plain]], [p.get(m) for p in codecs[plain]],
                         [p["kbps"] for p in codecs[sa]], [p.get(m) for p in codecs[sa]],
                         m in monotone)
                cells.append(describe(res["bd_rate"], res["overlap_rate"], res["withheld_rate"], res["error"]))
            rows.append([seq, cls, f"{sa} vs {plain}", *cells, f"{len(codecs[sa])} / {len(codecs[plain])}"])
    return header, rows


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, computed once: the finished and failed result rows, the curves per
    sequence ({sequence: {curve: [rows by rate]}}), BD figures per sequence and per class (``bd_table``
    rows), pooled class curves, the anchor, the quality metric, the metrics made monotone before BD, the
    sequences that have a plot, the paper's Table 1 (header, rows), how the experiment was made
    ((item, text) lines) and the points that have no result yet (:func:`collect`)."""

    rows: list[dict]
    failed: list[dict]
    curves: dict
    bd_rows: list[dict]
    class_curves: dict
    class_bd: list[dict]
    anchor: str
    metric: str
    monotone: frozenset
    plotted: list[str]
    table1: tuple[list[str], list[list]]
    experiment: list[tuple[str, str]]
    unfinished: list[dict]


def report_data(rows: list[dict], failed: list[dict], anchor: str, metric: str, monotone: frozenset,
                annotations: Path | None = None, unfinished: list[dict] | None = None) -> ReportData:
    """The report's data from result rows (pooled class mAP only when some point ran a detector)."""
    curves = curves_by_sequence(rows)
    cls_curves = {}
    if any(r.get("detections") for r in rows):
        from vcm.eval.pooled import class_curves, poolable

        cls_curves = class_curves(curves_by_sequence([r for r in rows if poolable(r)]), annotations)
    cls_bd = bd_table({f"class {c}": v for c, v in cls_curves.items()}, anchor, monotone, metric)
    return ReportData(rows, failed, curves, bd_table(curves, anchor, monotone, metric), cls_curves, cls_bd,
                      anchor, metric, monotone, list(curves), table1(curves, metric, monotone),
                      experiment_lines(rows, anchor, metric, monotone), list(unfinished or []))
