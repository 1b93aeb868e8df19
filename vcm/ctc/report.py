"""``vcm ctc report``: summary.csv, BD-rate tables, RD plots, Table-1 layout, report.md/html."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections import defaultdict
from pathlib import Path

from vcm.codecs import curve_order
from vcm.ctc.bd import MIN_OVERLAP, bd, describe
from vcm.errors import VcmError
from vcm.fsutil import write_bytes, write_json, write_text

SUMMARY_COLUMNS = ["Dataset", "fps", "num_of_coded_frame", "qp", "rate_point", "bitrate (kbps)", "end_accuracy", "encode",
                   "decode", "nn_task", "codec", "curve", "bytes", "bpp", "psnr", "psnr_y", "psnr_yuv", "ms_ssim", "map",
                   "ap50", "fit_seconds", "compress_seconds", "class", "ground_truth"]
METRICS = {"psnr_y": "Y-PSNR (dB)", "psnr_yuv": "YUV-PSNR 6:1:1 (dB)", "psnr": "RGB PSNR (dB)"}


def collect(out: Path) -> tuple[list[dict], list[dict]]:
    """(finished rows, failed rows) under ``out/points``."""
    rows, failed = [], []
    for p in sorted(Path(out).glob("points/*/*/*/result.json")):
        r = json.loads(p.read_text())
        (rows if r.get("status") == "ok" else failed).append(r)
    if not rows and not failed:
        raise VcmError(f"{out} holds no CTC results; run vcm ctc run first")
    return rows, failed


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
                    "curve": r.get("curve") or r["codec"], "bytes": r["bytes"], "bpp": round(r["bpp"], 6),
                    "psnr": round(r["psnr"], 4), "psnr_y": round(r["psnr_y"], 4), "psnr_yuv": _round(r.get("psnr_yuv"), 4),
                    "ms_ssim": _round(r["ms_ssim"], 6), "map": _round(r["map"], 4), "ap50": _round(r["ap50"], 4),
                    "fit_seconds": _round(r.get("fit_seconds"), 1), "compress_seconds": _round(r.get("compress_seconds"), 1),
                    "class": r.get("class"), "ground_truth": (r.get("ground_truth") or {}).get("kind")})
    return out


def curves_by_sequence(rows: list[dict]) -> dict:
    """{sequence: {curve: [rows sorted by rate]}}; a curve is a codec, or one method of it (``nerv-rd``)."""
    by = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by[r["sequence"]][r.get("curve") or r["codec"]].append(r)
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


def class_curves(rows: list[dict], annotations: Path | None) -> dict:
    """Pooled class-level mAP per (class, codec, k-th rate point): {class: {codec: [{kbps, map, ap50}]}}."""
    from vcm.eval.coco import Detections, ScoredClip, evaluate
    from vcm.eval.gt import load_ground_truth
    import numpy as np

    # Pooling reloads SFU-HW's ground truth: only points scored against it (not pseudo ground truth) pool.
    curves = curves_by_sequence([r for r in rows if r.get("class") and r.get("detections")
                                 and (r.get("ground_truth") or {}).get("kind", "sfu-hw") == "sfu-hw"])
    out = defaultdict(dict)
    classes = defaultdict(list)
    for seq, codecs in curves.items():
        classes[next(iter(codecs.values()))[0]["class"]].append(seq)
    gts = {}
    for cls, seqs in classes.items():
        codecs = set.intersection(*(set(curves[s]) for s in seqs))
        for codec in codecs:
            n = {len(curves[s][codec]) for s in seqs}
            if len(n) != 1:
                continue  # different numbers of points: no pooling by rank
            points = []
            for k in range(n.pop()):
                clips, kbps = [], []
                for s in seqs:
                    r = curves[s][codec][k]
                    gt = gts.setdefault(s, load_ground_truth(s, annotations or (Path(r["annotations"]) if r.get("annotations") else None)))
                    dets = json.loads(Path(r["detections"]).read_text())
                    per = defaultdict(list)
                    for d in dets:
                        per[d["source_frame"]].append(d)
                    frames = gt.covers(range(*r["source_frames"]))
                    clips.append(ScoredClip(gt, frames, [Detections(
                        np.array([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in per[f])], np.float32).reshape(-1, 4),
                        np.array([d["score"] for d in per[f]], np.float32), np.array([d["category_id"] for d in per[f]], np.int64))
                        for f in frames]))
                    kbps.append(r["kbps"])
                res = evaluate(clips)
                points.append({"kbps": float(np.mean(kbps)), "map": res["map"], "ap50": res["ap50"], "psnr": None})
            out[cls][codec] = points
    return out


def _fmt(v, digits=2, signed=False):
    if v is None:
        return "–"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


STYLES = [("o", "-"), ("s", "-"), ("D", "--"), ("^", "-."), ("v", ":"), ("P", "-"), ("X", "--"), ("*", "-."), ("h", ":")]


def curve_styles(curves: list[str]) -> dict[str, dict]:
    """One marker, line style and colour per curve, the same in every plot of a report."""
    import matplotlib

    colours = matplotlib.colormaps["tab10"].colors
    return {c: {"marker": STYLES[i % len(STYLES)][0], "linestyle": STYLES[i % len(STYLES)][1],
                "color": colours[i % len(colours)]} for i, c in enumerate(sorted(curves, key=curve_order))}


def point_label(r: dict) -> str:
    """A rate point's short name on a plot or in a table (QP37, λ1.0, …), as its codec named it when it
    ran; the point's id for a result written before points carried their label."""
    return str(r.get("label") or r["point"])


def rd_plot(seq: str, codecs: dict, metric: str = "psnr_y", styles: dict | None = None, bpp_axis: bool = True) -> bytes:
    """RD plot(s) of one sequence as PNG: ``metric`` against kbps (log axis with labelled ticks), and mAP
    when a detector ran; each curve its own marker and line style, each point labelled, bpp on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    styles = styles or curve_styles(list(codecs))
    metrics = [m for m in ("map", metric) if any(p.get(m) is not None for pts in codecs.values() for p in pts)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(8.5 * len(metrics), 6.2), squeeze=False)
    any_row = next(p for pts in codecs.values() for p in pts)
    pixels_per_second = any_row["fps"] * any_row["width"] * any_row["height"]
    for ax, m in zip(axes[0], metrics):
        for codec in sorted(codecs, key=curve_order):
            pts = [p for p in codecs[codec] if p.get(m) is not None]
            if not pts:
                continue
            xs, ys = [p["kbps"] for p in pts], [p[m] for p in pts]
            ax.plot(xs, ys, label=codec, markersize=7, linewidth=1.8, **styles[codec])
            for p, x, y in zip(pts, xs, ys):
                ax.annotate(point_label(p), (x, y), textcoords="offset points", xytext=(4, 5), fontsize=7.5,
                            color=styles[codec]["color"], alpha=0.9)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_locator(LogLocator(base=10, subs=(3.0, 4.0, 6.0, 7.0, 8.0, 9.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xlabel("bitrate (kbps, log scale)", fontsize=11)
        kinds = {(p.get("ground_truth") or {}).get("kind") for pts in codecs.values() for p in pts if p.get("map") is not None}
        map_label = "mAP@[.5:.95] (%)" + (" vs pseudo ground truth" if kinds == {"pseudo"} else "")
        ax.set_ylabel({"map": map_label, **METRICS}[m], fontsize=11)
        ax.set_title(f"{seq}: rate vs {'mAP' if m == 'map' else METRICS[m].split(' (')[0]}", fontsize=13)
        ax.grid(True, which="major", alpha=0.45)
        ax.grid(True, which="minor", alpha=0.15)
        ax.tick_params(labelsize=10)
        if bpp_axis and pixels_per_second > 0:
            top = ax.secondary_xaxis("top", functions=(lambda k: k * 1000 / pixels_per_second,
                                                       lambda b: b * pixels_per_second / 1000))
            top.set_xlabel("bits per pixel", fontsize=10)
            top.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
            top.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:.2g}" if str(f"{v:.2g}")[-1] in "1235" else ""))
        ax.legend(fontsize=10, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def experiment_block(rows: list[dict], anchor: str, metric: str, monotone: frozenset) -> list[tuple[str, str]]:
    """(item, value) lines saying how the numbers were made: encoders and their settings, the code,
    libraries, machine and date (from the points' own records)."""
    lines = []
    by_codec: dict[str, dict] = {}
    for r in rows:
        if r.get("settings") and r["codec"] not in by_codec:
            by_codec[r["codec"]] = r["settings"]
    for codec in sorted(by_codec, key=curve_order):
        st = dict(by_codec[codec])
        if "encoder" in st:
            text = (f"{st.pop('encoder')}, preset {st.pop('preset', '–')}, {st.pop('config', '')}, intra period "
                    f"{st.pop('intra_period', '–')}, {st.pop('bit_depth', '–')}-bit")
            if st.get("ffmpeg"):
                text += f" ({st.pop('ffmpeg')})"
        else:
            fit = st.get("fit") or {}
            fit_text = ", ".join(f"{k} {v}" for k, v in fit.items() if k not in ("rate_lambda",))
            text = f"{st.get('representation')} with loss {st.get('loss')}, {st.get('method')}; fit: {fit_text}"
        lines.append((codec, text))
    truths = sorted({(r["sequence"], r["ground_truth"]["source"]) for r in rows if r.get("ground_truth")})
    for seq, source in truths:
        lines.append((f"ground truth ({seq})", source))
    det = next((r["detector_settings"] for r in rows if r.get("detector_settings")), None)
    if det:
        per_frame = [r["detect_seconds_per_frame"] for r in rows if r.get("detect_seconds_per_frame")]
        lines.append(("detector", ", ".join(f"{k} {v}" for k, v in det.items())
                      + (f"; {min(per_frame):.3f}–{max(per_frame):.3f} s/frame" if per_frame else "")))
    prov = next((r["provenance"] for r in rows if r.get("provenance")), None)
    if prov:
        lines.append(("vcm", f"{prov.get('vcm')}, commit {prov.get('commit') or 'unknown'}"))
        lines.append(("libraries", f"torch {prov.get('torch')}, CUDA {prov.get('cuda') or 'none'}, Python {prov.get('python')}"))
        lines.append(("machine", f"{prov.get('device', '?')} on {prov.get('host')} ({prov.get('platform')})"))
        dates = sorted(r["provenance"]["date"] for r in rows if r.get("provenance"))
        lines.append(("date", dates[0] if dates[0][:10] == dates[-1][:10] else f"{dates[0]} – {dates[-1]}"))
    lines.append(("BD method", f"PCHIP on log-rate (bjontegaard package) against {anchor}, quality {METRICS.get(metric, metric)}"
                               f"{', curves made monotone first' if metric in monotone else ''}"
                               f"{', mAP curves made monotone first' if monotone == {'map'} else ''}; figures whose curves overlap "
                               f"less than {100 * MIN_OVERLAP:.0f} % are withheld"))
    return lines


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


def make_report(out: Path, anchor: str = "vvc", use_monotone: bool = False, annotations: Path | None = None,
                metric: str = "psnr_y", monotone_map: bool = False) -> dict:
    """summary.csv, bd.json, plots/<sequence>.png, report.md and report.html from ``out/points``.

    ``metric``: the quality of the RD plots and BD figures (``psnr_y`` default, ``psnr_yuv``, ``psnr``).
    ``use_monotone``: make every curve monotone before BD; ``monotone_map``: only the mAP curves.
    """
    if metric not in METRICS:
        raise VcmError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    out = Path(out)
    rows, failed = collect(out)
    summary = summary_rows(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS)
    w.writeheader()
    w.writerows(summary)
    write_text(out / "summary.csv", buf.getvalue())

    curves = curves_by_sequence(rows)
    monotone = frozenset({metric, "map"} if use_monotone else {"map"} if monotone_map else ())
    bd_rows = bd_table(curves, anchor, monotone, metric)
    cls_curves = class_curves(rows, annotations) if any(r.get("detections") for r in rows) else {}
    cls_bd = bd_table({f"class {c}": v for c, v in cls_curves.items()}, anchor, monotone, metric)
    styles = curve_styles(sorted({c for seq in curves.values() for c in seq}))
    plots = {}
    (out / "plots").mkdir(exist_ok=True)
    for seq, codecs in curves.items():
        png = rd_plot(seq, codecs, metric, styles)
        write_bytes(out / "plots" / f"{seq}.png", png)
        plots[seq] = png
    md_text = report_markdown(rows, failed, curves, bd_rows, cls_curves, cls_bd, anchor, metric, monotone, list(plots))
    write_text(out / "report.md", md_text)
    write_text(out / "report.html", _html(md_text, plots))
    result = {"summary_csv": str(out / "summary.csv"), "report_md": str(out / "report.md"),
              "report_html": str(out / "report.html"), "points": len(rows), "failed": len(failed),
              "metric": metric, "bd": bd_rows, "class_bd": cls_bd}
    write_json(out / "bd.json", {"anchor": anchor, "monotone": sorted(monotone), "metric": metric,
                                 "min_overlap": MIN_OVERLAP, "sequences": bd_rows, "classes": cls_bd})
    return result


def report_markdown(rows, failed, curves, bd_rows, cls_curves, cls_bd, anchor, metric, monotone, plots) -> str:
    """The report as Markdown; sections with nothing to show are left out."""
    has_map = any(r["map"] is not None for r in rows)
    quality = METRICS[metric].split(" (")[0]
    md = ["# vcm CTC report", ""]
    md.append(f"Quality is **{quality}** (RGB PSNR, Y-PSNR and YUV-PSNR are all in summary.csv); BD figures are "
              f"against **{anchor}**, negative BD-rate = fewer bits than {anchor} for the same quality. A figure is "
              f"shown with the overlap of the two curves it integrates over, and withheld below "
              f"{100 * MIN_OVERLAP:.0f} %.")
    md += ["", "## Experiment", ""]
    md.append(_md_table(["item", "how it was made"], [[k, v] for k, v in experiment_block(rows, anchor, metric, monotone)]))
    if bd_rows:
        md += ["", f"## BD-rate against {anchor}", ""]
        head = ["sequence", "curve", f"BD-rate ({quality})", f"BD-{quality}"] + (["BD-rate (mAP)"] if has_map else [])
        md.append(_md_table(head, [
            [b["sequence"], b["codec"], describe(b[f"bd_rate_{metric}"], b[f"overlap_{metric}"], b[f"withheld_{metric}"], b[f"note_{metric}"]),
             _fmt(b[f"bd_{metric}"], 2, True)] +
            ([describe(b["bd_rate_map"], b["overlap_map"], b["withheld_map"], b["note_map"])] if has_map else [])
            for b in bd_rows]))
    md += ["", "## RD plots", ""]
    md += [f"![{seq}](plots/{seq}.png)" for seq in plots]
    md += ["", "## Results per point", ""]
    head = ["sequence", "curve", "point", "kbps", "bpp", "Y-PSNR", "YUV-PSNR", "RGB PSNR", "MS-SSIM"]
    head += (["mAP %", "AP50 %", "ground truth"] if has_map else []) + ["encode s", "of which fit s", "decode s"]
    md.append(_md_table(head, [
        [r["sequence"], r.get("curve") or r["codec"], point_label(r), f"{r['kbps']:.2f}", f"{r['bpp']:.4f}",
         _fmt(r["psnr_y"]), _fmt(r.get("psnr_yuv")), _fmt(r["psnr"]), _fmt(r["ms_ssim"], 4)] +
        ([_fmt(r["map"]), _fmt(r["ap50"]), (r.get("ground_truth") or {}).get("kind", "–" if r["map"] is None else "sfu-hw")]
         if has_map else []) +
        [_fmt(r["encode_seconds"], 1), _fmt(r.get("fit_seconds"), 1), _fmt(r["decode_seconds"], 1)]
        for seq in curves.values() for pts in seq.values() for r in pts]))
    md += breakdown_section([r for seq in curves.values() for pts in seq.values() for r in pts])
    if cls_curves:
        md += ["", "## Per class (detections pooled over the class's sequences)", ""]
        md.append(_md_table(["class", "curve", "point #", "mean kbps", "mAP %", "AP50 %"],
                            [[c, codec, str(k + 1), f"{p['kbps']:.2f}", _fmt(p["map"]), _fmt(p["ap50"])]
                             for c, v in sorted(cls_curves.items()) for codec, pts in v.items() for k, p in enumerate(pts)]))
        if cls_bd:
            md += ["", f"BD-rate (mAP) against {anchor} per class:", ""]
            md.append(_md_table(["class", "curve", "BD-rate (mAP)", "BD-mAP"],
                                [[b["sequence"], b["codec"], describe(b["bd_rate_map"], b["overlap_map"], b["withheld_map"], b["note_map"]),
                                  _fmt(b["bd_map"], 2, True)] for b in cls_bd]))
    header, t1 = table1(curves, metric, monotone)
    if t1:
        md += ["", "## Edge loss vs plain loss (the paper's Table 1)", "",
               "BD-rate of each SA curve against the same network and method trained with the plain loss "
               "(negative: fewer bits for the same mAP or quality)" +
               (f"; mAP against {', '.join(sorted({(r.get('ground_truth') or {}).get('kind', 'sfu-hw') for r in rows if r['map'] is not None}))} ground truth"
                if has_map else "; no detector ran, so no mAP") + ".", ""]
        md.append(_md_table(header, t1))
    if failed:
        md += ["", "## Failed points", ""]
        md.append(_md_table(["sequence", "codec", "point", "error"],
                            [[f["sequence"], f["codec"], f["point"], f["error"]] for f in failed]))
    return "\n".join(md) + "\n"


def breakdown_section(rows: list[dict]) -> list[str]:
    """Markdown lines: each coded point's bytes per part (``vcm compress``'s breakdown), as bytes, share
    and bits per parameter; nothing when no point has one (anchors, the paper's pipeline)."""
    rows = [r for r in rows if r.get("breakdown")]
    if not rows:
        return []
    parts = list(dict.fromkeys(p["part"] for r in rows for p in r["breakdown"]))
    table = []
    for r in rows:
        by_part = {p["part"]: p for p in r["breakdown"]}
        cells = []
        for part in parts:
            p = by_part.get(part)
            per = f" · {p['bits_per_param']:.2f} b/p" if p and p.get("bits_per_param") is not None else ""
            cells.append(f"{p['bytes']:,.0f} ({100 * p['share']:.0f} %{per})" if p else "–")
        table.append([r["sequence"], r.get("curve") or r["codec"], point_label(r), f"{r['bytes']:,}"] + cells)
    return ["", "## Where the bytes go", "",
            "Bytes of each part of the stream (share of the file · bits per parameter); side information is the "
            "quantization steps and the entropy models' parameters.", "",
            _md_table(["sequence", "curve", "point", "bytes"] + parts, table)]


def _md_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _html(md_text: str, plots: dict) -> str:
    """A self-contained HTML page: the Markdown rendered by markdown-it-py (CommonMark + tables),
    plots embedded as data URIs."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(md_text)
    for seq, png in plots.items():
        src = html.escape(f"plots/{seq}.png", quote=True)
        body = body.replace(f'src="{src}"', f'src="data:image/png;base64,{base64.b64encode(png).decode()}"')
    style = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1500px;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px}"
             "td{text-align:right}td:first-child,td:nth-child(2){text-align:left}th{background:#f3f3f3}"
             "img{max-width:100%;display:block;margin:1em 0}code{background:#f3f3f3;padding:0 3px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>vcm CTC report</title><style>{style}</style>"
            f"</head><body>{body}</body></html>\n")
