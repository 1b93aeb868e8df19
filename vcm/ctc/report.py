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
from vcm.ctc.bd import bd
from vcm.errors import VcmError
from vcm.fsutil import write_bytes, write_json, write_text

SUMMARY_COLUMNS = ["Dataset", "fps", "num_of_coded_frame", "qp", "bitrate (kbps)", "end_accuracy", "encode", "decode",
                   "nn_task", "codec", "curve", "rate_point", "bytes", "bpp", "psnr", "psnr_y", "ms_ssim", "map", "ap50", "class"]
MARKERS = "osD^v<>ph*"


def collect(out: Path) -> tuple[list[dict], list[dict]]:
    """(finished rows, failed rows) under ``out/points``."""
    rows, failed = [], []
    for p in sorted(Path(out).glob("points/*/*/*/result.json")):
        r = json.loads(p.read_text())
        (rows if r.get("status") == "ok" else failed).append(r)
    if not rows and not failed:
        raise VcmError(f"{out} holds no CTC results; run vcm ctc run first")
    return rows, failed


def summary_rows(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        out.append({"Dataset": r["sequence"], "fps": r["fps"], "num_of_coded_frame": r["frames"],
                    "qp": r["qp"] if r["qp"] is not None else r["point"], "bitrate (kbps)": round(r["kbps"], 4),
                    "end_accuracy": None if r["map"] is None else round(r["map"], 4),
                    "encode": round(r["encode_seconds"], 3), "decode": round(r["decode_seconds"], 3),
                    "nn_task": "detection" if r["map"] is not None else "none", "codec": r["codec"],
                    "curve": r.get("curve") or r["codec"],
                    "rate_point": r["point"], "bytes": r["bytes"], "bpp": round(r["bpp"], 6),
                    "psnr": round(r["psnr"], 4), "psnr_y": round(r["psnr_y"], 4),
                    "ms_ssim": None if r["ms_ssim"] is None else round(r["ms_ssim"], 6),
                    "map": None if r["map"] is None else round(r["map"], 4),
                    "ap50": None if r["ap50"] is None else round(r["ap50"], 4), "class": r.get("class")})
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


def bd_table(curves: dict, anchor: str, use_monotone: bool) -> list[dict]:
    table = []
    for seq, codecs in curves.items():
        if anchor not in codecs:
            continue
        a = codecs[anchor]
        for codec, pts in codecs.items():
            if codec == anchor:
                continue
            row = {"sequence": seq, "codec": codec, "anchor": anchor}
            for metric in ("psnr", "map"):
                res = bd([p["kbps"] for p in a], [p[metric] for p in a], [p["kbps"] for p in pts],
                         [p[metric] for p in pts], use_monotone)
                row[f"bd_rate_{metric}"], row[f"bd_{metric}"], row[f"note_{metric}"] = res["bd_rate"], res["bd_metric"], res["error"]
            table.append(row)
    return table


def class_curves(rows: list[dict], annotations: Path | None) -> dict:
    """Pooled class-level mAP per (class, codec, k-th rate point): {class: {codec: [{kbps, map, ap50}]}}."""
    from vcm.eval.coco import Detections, ScoredClip, evaluate
    from vcm.eval.gt import load_ground_truth
    import numpy as np

    curves = curves_by_sequence([r for r in rows if r.get("class") and r.get("detections")])
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
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def rd_plot(seq: str, codecs: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("map", "psnr") if any(p[m] is not None for pts in codecs.values() for p in pts)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for i, codec in enumerate(sorted(codecs, key=curve_order)):
            pts = [p for p in codecs[codec] if p[metric] is not None]
            if pts:
                ax.plot([p["kbps"] for p in pts], [p[metric] for p in pts], marker=MARKERS[i % len(MARKERS)], label=codec)
        ax.set_xscale("log")
        ax.set_xlabel("bitrate (kbps)")
        ax.set_ylabel({"map": "mAP@[.5:.95] (%)", "psnr": "PSNR RGB (dB)"}[metric])
        ax.set_title(f"{seq}: rate vs {'mAP' if metric == 'map' else 'PSNR'}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def table1(curves: dict) -> tuple[list[str], list[list]]:
    """NeRV vs SA-NeRV mAP per sequence and shared rate point (the paper's Table 1, with the rates)."""
    header = ["sequence", "class", "rate point", "NeRV kbps", "NeRV mAP %", "SA-NeRV kbps", "SA-NeRV mAP %", "Δ mAP"]
    rows = []
    for seq, codecs in sorted(curves.items()):
        if "nerv" not in codecs and "sa-nerv" not in codecs:
            continue
        cls = next(iter(codecs.values()))[0].get("class") or "–"
        points = sorted({r["point"] for c in ("nerv", "sa-nerv") for r in codecs.get(c, [])})
        for p in points:
            n = next((r for r in codecs.get("nerv", []) if r["point"] == p), None)
            s = next((r for r in codecs.get("sa-nerv", []) if r["point"] == p), None)
            delta = s["map"] - n["map"] if n and s and n["map"] is not None and s["map"] is not None else None
            rows.append([seq, cls, p, _fmt(n and n["kbps"]), _fmt(n and n["map"]), _fmt(s and s["kbps"]),
                         _fmt(s and s["map"]), _fmt(delta, 2, True)])
    return header, rows


def make_report(out: Path, anchor: str = "vvc", use_monotone: bool = False, annotations: Path | None = None) -> dict:
    out = Path(out)
    rows, failed = collect(out)
    summary = summary_rows(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS)
    w.writeheader()
    w.writerows(summary)
    write_text(out / "summary.csv", buf.getvalue())

    curves = curves_by_sequence(rows)
    bd_rows = bd_table(curves, anchor, use_monotone)
    cls_curves = class_curves(rows, annotations) if any(r.get("detections") for r in rows) else {}
    cls_bd = bd_table({f"class {c}": v for c, v in cls_curves.items()}, anchor, use_monotone)
    plots = {}
    (out / "plots").mkdir(exist_ok=True)
    for seq, codecs in curves.items():
        png = rd_plot(seq, codecs)
        write_bytes(out / "plots" / f"{seq}.png", png)
        plots[seq] = png

    md = ["# vcm CTC report\n", f"Anchor for BD figures: **{anchor}**; interpolation PCHIP on log-rate "
          f"(`bjontegaard`){'; curves made monotone first (isotonic fit)' if use_monotone else ''}. "
          "Negative BD-rate = fewer bits than the anchor for the same quality.\n"]
    md.append("## Results per point\n")
    md.append(_md_table(["sequence", "codec", "point", "kbps", "PSNR dB", "MS-SSIM", "mAP %", "AP50 %", "enc s", "dec s"],
                        [[r["sequence"], r.get("curve") or r["codec"], r["point"], f"{r['kbps']:.2f}", _fmt(r["psnr"]), _fmt(r["ms_ssim"], 4),
                          _fmt(r["map"]), _fmt(r["ap50"]), _fmt(r["encode_seconds"], 1), _fmt(r["decode_seconds"], 1)]
                         for seq in curves.values() for pts in seq.values() for r in pts]))
    md.append(f"\n## BD-rate against {anchor} per sequence\n")
    md.append(_md_table(["sequence", "codec", "BD-rate mAP %", "BD-mAP", "BD-rate PSNR %", "BD-PSNR dB", "note"],
                        [[b["sequence"], b["codec"], _fmt(b["bd_rate_map"], 2, True), _fmt(b["bd_map"], 2, True),
                          _fmt(b["bd_rate_psnr"], 2, True), _fmt(b["bd_psnr"], 2, True),
                          "; ".join(f"{m}: {b['note_' + k]}" for m, k in (("mAP", "map"), ("PSNR", "psnr"))
                                    if b["note_" + k])] for b in bd_rows]) if bd_rows
              else f"(no sequence has both {anchor} and another codec)")
    if cls_curves:
        md.append("\n## Per class (detections pooled over the class's sequences)\n")
        md.append(_md_table(["class", "codec", "point #", "mean kbps", "mAP %", "AP50 %"],
                            [[c, codec, str(k + 1), f"{p['kbps']:.2f}", _fmt(p["map"]), _fmt(p["ap50"])]
                             for c, v in sorted(cls_curves.items()) for codec, pts in v.items() for k, p in enumerate(pts)]))
        if cls_bd:
            md.append(f"\nBD-rate (mAP) against {anchor} per class:\n")
            md.append(_md_table(["class", "codec", "BD-rate mAP %", "BD-mAP", "note"],
                                [[b["sequence"], b["codec"], _fmt(b["bd_rate_map"], 2, True), _fmt(b["bd_map"], 2, True),
                                  b["note_map"] or ""] for b in cls_bd]))
    header, t1 = table1(curves)
    if t1:
        md.append("\n## NeRV vs SA-NeRV (the paper's Table 1 layout, YOLOv7 mAP %)\n")
        md.append(_md_table(header, t1))
    if failed:
        md.append("\n## Failed points\n")
        md.append(_md_table(["sequence", "codec", "point", "error"],
                            [[f["sequence"], f["codec"], f["point"], f["error"]] for f in failed]))
    md.append("\n## RD plots\n")
    md += [f"![{seq}](plots/{seq}.png)" for seq in plots]
    md_text = "\n".join(md) + "\n"
    write_text(out / "report.md", md_text)
    write_text(out / "report.html", _html(md_text, plots))
    result = {"summary_csv": str(out / "summary.csv"), "report_md": str(out / "report.md"),
              "report_html": str(out / "report.html"), "points": len(rows), "failed": len(failed),
              "bd": bd_rows, "class_bd": cls_bd}
    write_json(out / "bd.json", {"anchor": anchor, "monotone": use_monotone, "sequences": bd_rows, "classes": cls_bd})
    return result


def _html(md_text: str, plots: dict) -> str:
    """A self-contained HTML page: markdown tables rendered, plots embedded as data URIs."""
    body, in_table = [], False
    for line in md_text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set(line.replace("|", "").strip()) <= {"-"}:
                continue
            if not in_table:
                body.append("<table>")
                in_table = True
                body.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cells) + "</tr>")
            else:
                body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("!["):
            seq = line[2:line.index("]")]
            data = base64.b64encode(plots[seq]).decode()
            body.append(f'<img alt="{html.escape(seq)}" src="data:image/png;base64,{data}">')
        elif line.strip():
            body.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    if in_table:
        body.append("</table>")
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
             "img{max-width:100%}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>vcm CTC report</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
