"""``vcm demo``: the whole product on the embedded clip, in a few minutes on 2 CPU cores.

It runs ``configs/ctc/demo.yaml`` through the CTC runner: vcm's HiNeRV with rate–distortion
training, fitted on carphone with the plain loss and with SA-NeRV's edge loss (masks from the
outlines of OpenCV's shipped face detector's boxes, no SAM weights), each compressed into real ``.nerv`` bitstreams at four rate
points (each decoded and measured), HEVC and VVC anchors, a detector's mAP on every point against
pseudo ground truth, then the report with Y-PSNR and mAP BD-rates of every curve against both
anchors, the paper's Table 1 (edge loss vs plain loss), and RD plots.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from vcm import progress
from vcm.codecs import curve_order
from vcm.ctc.config import with_defaults
from vcm.ctc.report import make_report
from vcm.ctc.tables import bd_table, curve_of, curves_by_sequence, table1
from vcm.ctc.run import run, with_compute
from vcm.nerv.config import load_preset
from vcm.resources import data_dir
from vcm.yamlfile import load_yaml
from vcm.words import counted, noun

DEMO_CONFIG = "demo.yaml"
DEMO_CLIP = "sample:carphone"  # the clip configs/ctc/demo.yaml names
MARKER = "vcm-demo.json"
# Everything a demo writes into its folder; an earlier demo's copies of these (and only these) are replaced.
DEMO_ENTRIES = ("points", "fits", "plots", DEMO_CONFIG, "summary.csv", "report.md", "report.html", "bd.json",
                "ctc.log", MARKER)


def _stamp(config_text: str, finished: bool, epochs: int | None) -> dict:
    """The marker's content: what makes a stopped demo's files reusable by the next one (the same config,
    written by the same vcm) and whether it got to its report."""
    from vcm import __version__
    from vcm.provenance import git_commit

    return {"demo": "carphone", "epochs": epochs, "finished": finished, "vcm": __version__, "commit": git_commit(),
            "config": config_text}


def prepare_out(out: Path, config_text: str | None = None) -> bool:
    """Make ``out`` ready for a demo: new, empty, or an earlier demo's folder (whose demo files go;
    anything else the user put there stays). Any other non-empty folder is refused.

    A demo stopped before its report (Ctrl-C, a closed terminal) with the same ``config_text`` and vcm
    keeps its files: finished points, fits and stages are reused and the run continues where it
    stopped (returns True). A finished demo is replaced, so that each demo is a fresh run."""
    from vcm.errors import VcmError
    from vcm.outputs import check_output

    check_output(out, kind="dir")
    if not out.exists():
        return False
    entries = list(out.iterdir())
    if entries and not (out / MARKER).is_file():
        raise VcmError(f"--out {out} is a folder with other files in it, not an earlier demo's output; "
                       f"name a new or empty folder")
    try:
        marker = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        marker = None
    if config_text is not None and isinstance(marker, dict) and marker.get("finished") is False and \
            marker == _stamp(config_text, False, marker.get("epochs")):
        progress.log(f"continuing the demo stopped in {out}: its finished points, fits and stages are kept "
                     f"(delete {out} to start afresh)")
        return True
    for name in DEMO_ENTRIES:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


DETECTOR_ENV = "VCM_DEMO_DETECTOR"  # a detector name or MODULE:ATTR for the demo's mAP; "none" for no detector
# mAP on every 12th frame (10 of 120) for YOLOv7 (0.9 s a frame on 2 cores), every 24th for the torchvision
# detectors (3-7 s a frame at their default input size; benchmarks/detectors.py): 21 decodes are scored.
DEMO_EVERY = 12
# OpenCV's shipped detectors take milliseconds a frame: every other frame (60 of 120).
DEMO_SETTINGS = {"fasterrcnn": ({"min_size": 288}, 24), "retinanet": ({"min_size": 288}, 24),
                 "fcos": ({"min_size": 288}, 24), "opencv": (None, 2)}
ENABLE_HINT = ("no detector: mAP is not measured (VCM_DEMO_DETECTOR=none); unset it for OpenCV's shipped detector, "
               "or set VCM_YOLOV7_WEIGHTS=yolov7.pt (with VCM_YOLOV7_REPO or torch.hub's copy of WongKinYiu/yolov7)")
# Fewer frames shorten the fits (their passes are capped), never a rate point's stage, whose steps are the same
# on any clip: 24 frames took 403 s where all 120 take 427 s, and 113 s with --compute 0.25 (2 vCPUs, alone).
QUICKER_HINT = ("fewer frames shorten the fits only: each rate point's stage trains as many steps on any clip, so "
                "this takes nearly as long as the whole clip; add --compute 0.25 (a quarter of every network's "
                "training) for a quicker look")
STRONGER_HINT = ("for YOLOv7's mAP instead, set VCM_YOLOV7_WEIGHTS=yolov7.pt (with VCM_YOLOV7_REPO or torch.hub's copy "
                 "of WongKinYiu/yolov7), or fetch torchvision's Faster R-CNN once (vcm eval sample:carphone "
                 "--reference original --detector fasterrcnn_resnet50_fpn_v2)")


def demo_detector(clip: str = DEMO_CLIP) -> dict | None:
    """The demo's detector section: ``$VCM_DEMO_DETECTOR`` when set, else one whose weights are local,
    else the OpenCV-shipped detector that finds the most in ``clip`` (nothing to download)."""
    import os

    from vcm.detectors.registry import describe, local_detector, names

    chosen = os.environ.get(DETECTOR_ENV, "").strip()
    if chosen.lower() in ("none", "0", "off"):
        return None
    if chosen and ":" not in chosen and chosen not in names():
        from vcm.errors import VcmError

        raise VcmError(f"{DETECTOR_ENV}={chosen} is no detector; choose one of {describe()} (or none)")
    det = {"name": chosen} if chosen else local_detector()
    if det is None:
        from vcm.detectors.opencv import pick_for
        from vcm.samples import resolve
        from vcm.video import open_video

        det = {"name": pick_for(open_video(resolve(Path(clip)), "all").frames_u8)}
    settings, every = next((v for k, v in DEMO_SETTINGS.items() if det["name"].startswith(k)), (None, DEMO_EVERY))
    return {**det, "every": every, **({"settings": settings} if settings else {})}


def demo_config(cfg: dict, epochs: int | None, detector: dict | None, frames: str = "all") -> dict:
    """The demo's CTC config with ``--epochs`` and ``--frames`` (all or A:B) applied and, when there is a
    detector, pseudo ground truth from the original clip (carphone has no annotations)."""
    for sequence in cfg["sequences"]:
        sequence["frames"] = frames
    # a YAML alias (the demo's shared fits) is one object in several sections: each fit is changed once
    fits = list({id(fit): fit for section in cfg["codecs"].values() for fit in section.get("fits") or []}.values())
    for fit in fits if epochs is not None else []:
        _, preset = load_preset(fit["preset"])
        fit_steps = fit.pop("steps", None) or preset.steps
        fit["epochs"] = epochs
        for point in fit.get("points") or []:
            if "rd_epochs" in point:
                point["rd_epochs"] = min(point["rd_epochs"], epochs)
            # the configured ratio of rate-distortion to fitting steps (the point's, else the preset's)
            rd_steps = point.pop("rd_steps", None) or ("rd_epochs" not in point and preset.rd_steps)
            if "lambda" in point and rd_steps and fit_steps:
                point["rd_epochs"] = max(1, round(epochs * rd_steps / fit_steps))
    if detector is not None:
        cfg.update(detector=detector, reference="original")
    return cfg


def default_jobs() -> int:
    """Two points at a time where there are two cores: the demo's two fits (and then its rate points) train
    side by side on a core each, 1.6× the throughput of one fit on both cores (carphone, 2 vCPUs)."""
    from vcm.cpus import usable_cores

    return 2 if usable_cores() >= 2 else 1


def run_demo(out: Path, device: str = "auto", epochs: int | None = None, jobs: int | None = None,
             frames: str = "all", compute: float | None = None) -> dict:
    """Run the demo experiment into ``out`` (replacing an earlier demo's files there); returns the summary.
    ``jobs``: points run in parallel (default :func:`default_jobs`); ``frames``: carphone's frames, all or
    A:B (B exclusive; fewer frames shorten the fits, not the points' stages, and the figures are not the
    demo's); ``compute``: K times the training of every network (:mod:`vcm.codecs.compute`), what a faster
    machine or a GPU gives the same codec."""
    import yaml

    from vcm.device import resolve_device
    from vcm.fsutil import write_json, write_text

    start = time.time()
    resolve_device(device)  # before anything is written: a device this machine lacks would fail every point
    span, total = demo_frames(frames)
    out = Path(out)
    detector = demo_detector()
    # the sections' defaults written out, so that the config the demo leaves in its folder says what ran
    cfg = demo_config(with_defaults(load_yaml((data_dir("configs") / "ctc" / DEMO_CONFIG).read_text())), epochs,
                      detector, frames)
    if compute is not None:  # in the config the demo writes, so that its folder says what ran
        cfg = with_compute(cfg, compute)
    config_text = yaml.safe_dump(cfg, sort_keys=False)
    prepare_out(out, config_text)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MARKER, _stamp(config_text, False, epochs))
    config = out / DEMO_CONFIG
    write_text(config, config_text)
    _announce(detector, span, total, compute)
    result = run(config, out, device=device, jobs=jobs or default_jobs())
    if result["failed"]:
        from vcm.errors import VcmError

        raise VcmError(f"{counted(result['failed'], 'demo point')} failed; see {out}/points/*/*/*/result.json")
    if result["elsewhere"]:
        from vcm.errors import VcmError

        n = result["elsewhere"]
        raise VcmError(f"{counted(n, 'demo point')} {noun(n, 'is', 'are')} being run by another vcm command in {out}; "
                       f"run vcm demo again once it ends")
    # mAP curves saturate and wobble at the detector's ceiling: made monotone before BD (the report says so)
    report = make_report(out, anchor="hevc", monotone_map=True)
    write_json(out / MARKER, _stamp(config_text, True, epochs))
    return {**_summary(out, result["rows"], report, detector, start, span), "compute": compute or 1.0}


def demo_frames(spec: str) -> tuple[range, int]:
    """The frames of the embedded clip that ``--frames`` (all or A:B) selects, and how many it holds; a one-line
    error for a range outside it."""
    from vcm.samples import resolve
    from vcm.video import probe, resolve_frames

    info = probe(resolve(Path(DEMO_CLIP)))
    return resolve_frames(info, spec), len(info.source_range)


def _announce(detector: dict | None, span: range, total: int, compute: float | None = None) -> None:
    """Say what the demo runs and how its mAP is measured (or how to get one)."""
    which = f"{total} frames" if len(span) == total else f"frames {span.start}:{span.stop} of {total}, not the demo's figures"
    scaled = "" if compute in (None, 1) else f", {compute:g} times the training (--compute)"
    progress.log(f"vcm demo on carphone (176x144, {which}{scaled}): HiNeRV with rate-distortion training, with the plain "
                 "loss and with SA-NeRV's edge loss (4 rate points each), HEVC and VVC anchors at 6 QPs, then the report")
    if len(span) < total and compute is None:
        progress.log(QUICKER_HINT)
    if detector is None:
        progress.log(ENABLE_HINT)
    else:
        progress.log(f"mAP against pseudo ground truth: {detector['name']} on the original frames (score ≥ 0.5), "
                     f"one frame in {detector['every']} — not a CTC number")
        if detector["name"].startswith("opencv-"):
            progress.log(STRONGER_HINT)


def _summary(out: Path, rows: list[dict], report: dict, detector: dict | None, start: float, span: range) -> dict:
    """The demo's summary: the clip's frames (``span``), fits, points, BD-rates against both anchors, Table 1, the
    report's path."""
    rows = sorted(rows, key=lambda r: (curve_order(curve_of(r)), r["kbps"]))
    curves = curves_by_sequence(rows)
    metric = report["metric"]
    vs = {anchor: {b["codec"]: b for b in bd_table(curves, anchor, frozenset({"map"}), metric)}
          for anchor in ("hevc", "vvc")}
    fits = {}
    for metrics in sorted((out / "fits").glob("*/*/*/metrics.json")):
        m = json.loads(metrics.read_text())
        # "codec/fit": a curve may take its rate points from more than one network (a network per rate range)
        fits[f"{metrics.parent.parent.name}/{metrics.parent.name}"] = {"params": m["params"], "epochs": m["epochs"],
                                            "seconds": round(m["train_seconds"], 1), "psnr": round(m["psnr"], 3)}
    own = [c for c in sorted(next(iter(curves.values())), key=curve_order) if c not in ("hevc", "vvc")]
    summary = {
        "clip": "carphone", "frames": [span.start, span.stop], "fits": fits,
        "points": [{k: r.get(k) for k in ("codec", "curve", "point", "label", "qp", "bytes", "kbps", "psnr", "psnr_y",
                                          "psnr_yuv", "map", "ap50")}
                   for r in rows],
        "bd_metric": metric,
        # Per curve and anchor: BD-rate %, the overlap it integrates over, whether it is withheld, why not.
        "bd_rate": {c: {a: {k: vs[a].get(c, {}).get(f"{k}_{metric}") for k in ("bd_rate", "overlap", "withheld", "note")}
                        for a in vs} for c in own},
        "detector": None if detector is None else {
            "name": detector["name"], "ground_truth": next((r["ground_truth"]["source"] for r in rows if r.get("ground_truth")), None),
            "every": detector["every"]},
        "bd_rate_map": None if detector is None else {
            c: {a: {k: vs[a].get(c, {}).get(f"{k}_map") for k in ("bd_rate", "overlap", "withheld", "note")} for a in vs}
            for c in own},
        # The paper's Table 1 for each network trained both ways (SA curve vs the plain-loss curve).
        "table1": [dict(zip(["sequence", "class", "comparison", "bd_rate_map", "bd_rate_psnr", "points"], row))
                   for row in table1(curves, metric, frozenset({"map"}))[1]],
        "report_html": report["report_html"], "seconds": round(time.time() - start, 1),
    }
    return summary
