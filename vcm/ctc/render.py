"""The report rendered: Markdown (tables, plots by reference) and a self-contained HTML page."""

from __future__ import annotations

import base64
import re

from vcm.ctc.bd import MIN_OVERLAP, describe
from vcm.ctc.tables import METRICS, ReportData, curve_of, point_label
from vcm.quality import MS_SSIM_MIN_SIDE, ms_ssim_measurable


def _fmt(v, digits=2, signed=False):
    if v is None:
        return "–"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


# What could start Markdown in text a result row gave (names, settings, errors): links and images, emphasis, code,
# table cells, strikethrough; a "<" only where a tag or an autolink could begin, an "&" where an entity could, an
# underscore where it could open or close emphasis, so that vcm's own words ("overlap 72 % < 75 %") and ids such
# as s_rd_l1 stay readable in report.md.
_MD_SPECIAL = re.compile(r"[\\`*\[\]|~]|<(?=[A-Za-z/!?])|&(?=[A-Za-z#])|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
# What opens a block at the start of a line's text (a list item's note): a quote, a heading, a list.
_BLOCK_START = re.compile(r"^(?:([>#+=-])|([0-9]+)([.)]))")


def md_text(value, starts_line: bool = False) -> str:
    """``value`` as Markdown that renders as exactly its text, on one line (a row's text made links and bold type
    in report.html); ``starts_line``: the text begins a line's content, where it could also open a block."""
    text = _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), str(value).replace("\r", " ").replace("\n", " "))
    if starts_line:
        text = _BLOCK_START.sub(lambda m: "\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3), text)
    return text


def plot_markdown(seq: str, target: str | None = None) -> str:
    """The Markdown image of ``seq``'s RD plot: its file in ``plots/``, or ``target`` (a data URI) in its place. The
    destination in angle brackets: a name with a space was no image at all."""
    dest = target or "plots/" + re.sub(r"([<>\\])", r"\\\1", seq.replace("\n", " ")) + ".png"
    return f"![{md_text(seq)}](<{dest}>)"


def _md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report_markdown(data: ReportData) -> str:
    """The report as Markdown; sections with nothing to show are left out."""
    rows, failed, curves, bd_rows = data.rows, data.failed, data.curves, data.bd_rows
    cls_curves, cls_bd, anchor, metric = data.class_curves, data.class_bd, data.anchor, data.metric
    plots = data.plotted
    has_map = any(r["map"] is not None for r in rows)
    quality = METRICS[metric].split(" (")[0]
    md = ["# vcm CTC report", ""]
    md.append(f"Quality is **{quality}** (RGB PSNR, Y-PSNR and YUV-PSNR are all in summary.csv); BD figures are "
              f"against **{md_text(anchor)}**, negative BD-rate = fewer bits than {md_text(anchor)} for the same "
              f"quality. A figure is "
              f"shown with the overlap of the two curves it integrates over, and withheld below "
              f"{100 * MIN_OVERLAP:.0f} %.")
    md += ["", "## Experiment", ""]
    md.append(_md_table(["item", "how it was made"], [[k, v] for k, v in data.experiment]))
    if bd_rows:
        md += ["", f"## BD-rate against {md_text(anchor)}", ""]
        head = ["sequence", "curve", f"BD-rate ({quality})", f"BD-{quality}"] + (["BD-rate (mAP)"] if has_map else [])
        md.append(_md_table(head, [
            [b["sequence"], b["codec"], describe(b[f"bd_rate_{metric}"], b[f"overlap_{metric}"], b[f"withheld_{metric}"], b[f"note_{metric}"]),
             _fmt(b[f"bd_{metric}"], 2, True)] +
            ([describe(b["bd_rate_map"], b["overlap_map"], b["withheld_map"], b["note_map"])] if has_map else [])
            for b in bd_rows]))
    md += ["", "## RD plots", ""]
    md += [plot_markdown(seq) for seq in plots]
    points = [r for seq in curves.values() for pts in seq.values() for r in pts]
    md += ["", "## Results per point", ""]
    head = ["sequence", "curve", "point", "kbps", "bpp", "Y-PSNR", "YUV-PSNR", "RGB PSNR", "MS-SSIM"]
    head += (["mAP %", "AP50 %", "ground truth"] if has_map else []) + ["encode s", "of which fit s", "decode s"]
    md.append(_md_table(head, [
        [r["sequence"], curve_of(r), point_label(r), f"{r['kbps']:.2f}", f"{r['bpp']:.4f}",
         _fmt(r["psnr_y"]), _fmt(r.get("psnr_yuv")), _fmt(r["psnr"]), _fmt(r["ms_ssim"], 4)] +
        ([_fmt(r["map"]), _fmt(r["ap50"]), (r.get("ground_truth") or {}).get("kind", "–" if r["map"] is None else "sfu-hw")]
         if has_map else []) +
        [_fmt(r["encode_seconds"], 1), _fmt(r.get("fit_seconds"), 1), _fmt(r["decode_seconds"], 1)]
        for r in points]))
    if any(r["ms_ssim"] is None and not ms_ssim_measurable(r["height"], r["width"]) for r in points):
        md += ["", f"MS-SSIM is left out (–) for frames under {MS_SSIM_MIN_SIDE} px on a side: its five scales need them."]
    md += breakdown_section(points)
    md += rate_control_section(points)
    if cls_curves:
        md += ["", "## Per class (detections pooled over the class's sequences)", ""]
        md.append(_md_table(["class", "curve", "point #", "mean kbps", "mAP %", "AP50 %"],
                            [[c, codec, str(k + 1), f"{p['kbps']:.2f}", _fmt(p["map"]), _fmt(p["ap50"])]
                             for c, v in sorted(cls_curves.items()) for codec, pts in v.items() for k, p in enumerate(pts)]))
        if cls_bd:
            md += ["", f"BD-rate (mAP) against {md_text(anchor)} per class:", ""]
            md.append(_md_table(["class", "curve", "BD-rate (mAP)", "BD-mAP"],
                                [[b["sequence"], b["codec"], describe(b["bd_rate_map"], b["overlap_map"], b["withheld_map"], b["note_map"]),
                                  _fmt(b["bd_map"], 2, True)] for b in cls_bd]))
    header, t1 = data.table1
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
    if data.unfinished:
        md += ["", "## Points without a result yet", "",
               "Stopped, killed or still running when this report was made: the curves above leave them out, and "
               "the same `vcm ctc run` finishes them (a stopped stage continues where it stopped).", ""]
        md.append(_md_table(["sequence", "codec", "point", "state"],
                            [[u["sequence"], u["codec"], u["point"],
                              "a stage stopped in it" if u["stopped_stage"] else "no result"] for u in data.unfinished]))
    return "\n".join(md) + "\n"


def breakdown_section(rows: list[dict]) -> list[str]:
    """Markdown lines: each coded point's bytes per part (``vcm compress``'s breakdown), as bytes, share
    and bits per parameter; nothing when no point has one (anchors)."""
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
        table.append([r["sequence"], curve_of(r), point_label(r), f"{r['bytes']:,}"] + cells)
    return ["", "## Where the bytes go", "",
            "Bytes of each part of the stream (share of the file · bits per parameter); side information is the "
            "quantization steps and the entropy models' parameters (the paper's pipeline: its ranges, scales and "
            "code tables).", "",
            _md_table(["sequence", "curve", "point", "bytes"] + parts, table)]


def rate_control_section(rows: list[dict]) -> list[str]:
    """Markdown lines: each point coded to a target (``{match: ANCHOR}``, ``target_kbps``) with what it
    aimed at, what its stream gave and the λ searches' count; a target beyond every trial says so and
    what reaches further. Nothing when no point searched."""
    from vcm.codec.rate_control import achieved, beyond_hint, missed_hint

    rows = [r for r in rows if r.get("rate_control")]
    if not rows:
        return []
    table, notes = [], []
    for r in rows:
        rc, a, name = r["rate_control"], achieved(r), [r["sequence"], curve_of(r), point_label(r)]
        table.append(name + [f"{a['target']:.2f} {a['unit']}", f"{a['achieved']:.2f} {a['unit']}", a["error_text"],
                             str(len(rc["trials"])), f"{rc['lambda']:.4g}"])
        hint = beyond_hint(a, rc["lambda"], "config") or missed_hint(a, rc, "config")
        if hint:
            notes.append(f"- {md_text(' '.join(name), starts_line=True)}: {md_text(hint)}.")
    return ["", "## Rate control", "",
            "Points coded to a target: the λ search's aim, what the written stream gave (its file size, or its "
            "decoded Y-PSNR), and how many trials it took.", "",
            _md_table(["sequence", "curve", "point", "target", "achieved", "error", "trials", "λ"], table)] + \
        ([""] + notes if notes else [])


def _md_cell(value) -> str:
    return md_text(value)


def report_html(markdown: str, plots: dict) -> str:
    """A self-contained HTML page: the Markdown rendered by markdown-it-py (CommonMark + tables, raw HTML shown as
    text: the report quotes result rows, which a shared results folder could fill with scripts), plots embedded
    as data URIs."""
    from markdown_it import MarkdownIt

    for seq, png in plots.items():  # the very line report_markdown wrote, pointing at the picture itself
        markdown = markdown.replace(plot_markdown(seq), plot_markdown(seq, "data:image/png;base64,"
                                                                      + base64.b64encode(png).decode()))
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    style = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1500px;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px}"
             "td{text-align:right}td:first-child,td:nth-child(2){text-align:left}th{background:#f3f3f3}"
             "img{max-width:100%;display:block;margin:1em 0}code{background:#f3f3f3;padding:0 3px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>vcm CTC report</title><style>{style}</style>"
            f"</head><body>{body}</body></html>\n")
