"""The report's RD plots: one figure per sequence, one style per curve shared by every figure."""

from __future__ import annotations

import io

from vcm.codecs import curve_order
from vcm.matplotlib_home import matplotlib_config_dir
from vcm.ctc.tables import METRICS, point_label

STYLES = [("o", "-"), ("s", "-"), ("D", "--"), ("^", "-."), ("v", ":"), ("P", "-"), ("X", "--"), ("*", "-."), ("h", ":")]


def curve_styles(curves: list[str]) -> dict[str, dict]:
    """One marker, line style and colour per curve, the same in every plot of a report."""
    matplotlib_config_dir()
    import matplotlib

    colours = matplotlib.colormaps["tab10"].colors
    return {c: {"marker": STYLES[i % len(STYLES)][0], "linestyle": STYLES[i % len(STYLES)][1],
                "color": colours[i % len(colours)]} for i, c in enumerate(sorted(curves, key=curve_order))}


def rd_plot(seq: str, codecs: dict, metric: str = "psnr_y", styles: dict | None = None, bpp_axis: bool = True) -> bytes:
    """RD plot(s) of one sequence as PNG: ``metric`` against kbps (log axis with labelled ticks), and mAP
    when a detector ran; each curve its own marker and line style, each point labelled, bpp on top."""
    matplotlib_config_dir()
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
