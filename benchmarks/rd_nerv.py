"""RD points of one fitted run under both compression methods, and the BD-rate between them.

    uv run python benchmarks/rd_nerv.py runs/latest
    uv run python benchmarks/rd_nerv.py runs/latest --lambdas 0.1,0.3,1,3 --rd-epochs 20 --anchors
    uv run python benchmarks/rd_nerv.py RUN --lambdas 0.3,1,3,10 --rd-epochs 6 --step-lr 0.1 --flat --anchors
        (a HiNeRV run: also its λ points with the grids coded as they are, not along time)

Rows: the paper's pipeline (prune/bits points) and the rate–distortion method (λ points), each a
real .nerv file decoded by the real decoder: kbps, PSNR (RGB) and Y-PSNR of the decoded frames,
bits per parameter, the training-time rate estimate against the file size, the gap between the
Laplace entropy model and the symbols' own empirical entropy (what a perfectly adapted static
model would need, table cost excluded), and the encode time. Then the PSNR BD-rate of the new
method against the old pipeline (and, with ``--anchors``, both against x265 and vvenc on the same
frames). Run it alone on the machine: the times are wall-clock. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import print_table, run

from vcm.codec import nerv_stream
from vcm.codec.compress import CompressOptions, RDOptions, compress_prepared, prepare
from vcm.ctc.bd import bd

OLD_POINTS = [(0.0, 8), (0.4, 8), (0.4, 6), (0.6, 6)]  # the demo's paper-pipeline points
ANCHOR_QPS = [33, 36, 39, 42, 45, 48, 51]


def empirical_gap(path: Path) -> float | None:
    """(Laplace model bits − empirical entropy bits) / empirical, over all tensors of an rd stream."""
    from vcm.entropy_models import laplace

    stream = nerv_stream.decode(path.read_bytes())
    if stream.coding != "rd":
        return None
    model = empirical = 0.0
    for t in stream.tensors:
        s = t.coded_symbols()
        if s.min() == s.max():
            continue
        counts = np.bincount(s - s.min())
        p = counts[counts > 0] / s.size
        empirical += float(-(counts[counts > 0] * np.log2(p)).sum())
        model += laplace.model_bits(s, t.m)
    return (model - empirical) / empirical


def anchor_curves(video, qps) -> dict:
    from vcm.anchors.ffmpeg import encode_decode, planes_of
    from vcm.quality import summarize

    planes, depth = planes_of(video)
    curves = {}
    with tempfile.TemporaryDirectory() as tmp:
        for codec in ("hevc", "vvc"):
            pts = []
            for qp in qps:
                r = encode_decode(codec, planes, depth, video.width, video.height, video.fps, qp, Path(tmp) / f"{codec}{qp}")
                q = summarize(video.frames_u8, r.frames_u8)
                kbps = r.bitstream.stat().st_size * 8 * video.fps / 1000 / video.num_frames
                pts.append((kbps, q["psnr"], q["psnr_y"]))
            curves[codec] = pts
    return curves


def _bd(anchor, test, index=1):
    res = bd([p[0] for p in anchor], [p[index] for p in anchor], [p[0] for p in test], [p[index] for p in test])
    value = "–" if res["bd_rate"] is None else f"{res['bd_rate']:+.1f} %"
    overlap = re.search(r"BD-rate: Insufficient curve overlap: '([\d.]+)'", res["error"] or "")
    return value + (f" (overlap {overlap.group(1)} %, below the tool's 75 %)" if overlap else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--lambdas", default="0.1,0.3,1,3,10")
    ap.add_argument("--rd-epochs", type=int, default=None, help="rate–distortion epochs per λ (default: half the fit's)")
    ap.add_argument("--noise-fraction", type=float, default=None)
    ap.add_argument("--step-lr", type=float, default=None, help="Adam lr of the steps and entropy models (the demo: 0.1)")
    ap.add_argument("--flat", action="store_true",
                    help="also the λ points with temporal tensors (HiNeRV's grids) coded as they are: the ablation")
    ap.add_argument("--anchors", action="store_true", help="also BD-rates against x265 and vvenc on the same frames")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    from vcm.device import resolve_device

    device = resolve_device(args.device)
    prep = prepare(args.run)
    out_dir = Path(tempfile.mkdtemp(prefix="rd_nerv_"))
    extra = {} if args.noise_fraction is None else {"noise_fraction": args.noise_fraction}
    if args.step_lr is not None:
        extra.update(step_lr=args.step_lr, entropy_lr=args.step_lr)
    options = [CompressOptions(prune=p, bits=b) for p, b in OLD_POINTS]
    for temporal in (True, False) if args.flat else (True,):
        options += [RDOptions(lam=float(v), epochs=args.rd_epochs, temporal=temporal, **extra) for v in args.lambdas.split(",")]
    rows, curves = [], {"prune-quantize": [], "rate-distortion": []}
    for opts in options:
        t = time.time()
        flat = isinstance(opts, RDOptions) and not opts.temporal
        r = compress_prepared(prep, out_dir / f"{opts.label()}{'_flat' if flat else ''}.nerv", opts, device)
        seconds = time.time() - t
        rd = r["coding"] == "rd"
        method = r["method"] + (" (grids flat)" if flat else "")
        curves.setdefault(method, []).append((r["kbps"], r["psnr"], r["psnr_y"]))
        gap = empirical_gap(Path(r["bitstream"])) if rd else None
        rows.append([method, f"λ={r['lambda']:g}" if rd else f"p{r['prune']:.0%} b{r['bits']}", f"{r['bytes']:,}",
                     f"{r['kbps']:.2f}", f"{r['psnr']:.2f}", f"{r['psnr_y']:.2f}", f"{r['bits_per_param']:.2f}",
                     f"{r['estimate_bytes']:,.0f} ({r['estimate_error']:+.2%})" if rd else "–",
                     f"{gap:+.2%}" if gap is not None else "–", f"{seconds:.1f}"])
    v = prep.config["video"]
    print_table(f"{v['name']} ({v['width']}x{v['height']}, {v['num_frames']} frames), {prep.config.get('arch', 'nerv')}",
                ["method", "point", "bytes", "kbps", "PSNR dB", "Y-PSNR dB", "bits/param", "estimate (file vs est.)",
                 "Laplace vs empirical", "encode s"], rows)
    print(f"PSNR BD-rate, rate-distortion vs prune-quantize: {_bd(curves['prune-quantize'], curves['rate-distortion'])}")
    if args.flat:
        print(f"Y-PSNR BD-rate, grids coded along time vs as they are: "
              f"{_bd(curves['rate-distortion (grids flat)'], curves['rate-distortion'], 2)}")
    if args.anchors:
        anchors = anchor_curves(prep.video, ANCHOR_QPS)
        for name, pts in anchors.items():
            print(f"{name}: " + ", ".join(f"{k:.1f} kbps/{p:.2f} dB" for k, p, _ in pts))
        table = [[m] + [_bd(anchors[a], curves[m], i) for a in ("hevc", "vvc") for i in (1, 2)] for m in curves]
        print_table("PSNR BD-rate against the anchors (RGB and Y)", ["method", "vs x265 RGB", "vs x265 Y", "vs vvenc RGB",
                                                                      "vs vvenc Y"], table)


if __name__ == "__main__":
    run(main)
