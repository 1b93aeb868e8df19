"""``vcm demo``: the whole product on the embedded clip, in a few minutes on 2 CPU cores.

It runs ``configs/ctc/demo.yaml`` through the CTC runner: a NeRV fitted on carphone and compressed
into real ``.nerv`` bitstreams at four rate points (each decoded and measured), HEVC and VVC
anchors, then the report with PSNR BD-rates and RD plots.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from vcm import progress
from vcm.ctc.report import bd_table, curves_by_sequence, make_report
from vcm.ctc.run import run
from vcm.resources import data_dir

DEMO_CONFIG = "demo.yaml"


def run_demo(out: Path, device: str = "auto", epochs: int | None = None) -> dict:
    """Run the demo experiment into ``out`` (replacing an earlier demo there); returns the summary."""
    start = time.time()
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)  # the demo's own previous output
    config = data_dir("configs") / "ctc" / DEMO_CONFIG
    if epochs is not None:
        import yaml

        cfg = yaml.safe_load(config.read_text())
        for fit in cfg["codecs"]["nerv"]["fits"]:
            fit["epochs"] = epochs
        out.mkdir(parents=True)
        config = out / DEMO_CONFIG
        config.write_text(yaml.safe_dump(cfg))
    progress.log("vcm demo: NeRV fit on carphone (176x144, 120 frames), 4 compressed rate points, "
                 "HEVC and VVC anchors at 6 QPs, then the report")
    result = run(config, out, device=device)
    if result["failed"]:
        from vcm.errors import VcmError

        raise VcmError(f"{result['failed']} demo point(s) failed; see {out}/points/*/*/*/result.json")
    report = make_report(out, anchor="hevc")
    rows = sorted(result["rows"], key=lambda r: (r["codec"], r["kbps"]))
    fit_metrics = json.loads(next((out / "fits").glob("*/nerv/*/metrics.json")).read_text())
    bds = {b["codec"]: b for b in report["bd"]}
    vs_vvc = bd_table(curves_by_sequence(rows), "vvc", use_monotone=False)
    summary = {
        "clip": "carphone", "fit": {"params": fit_metrics["params"], "epochs": fit_metrics["epochs"],
                                    "seconds": round(fit_metrics["train_seconds"], 1), "psnr": round(fit_metrics["psnr"], 3)},
        "points": [{k: r[k] for k in ("codec", "point", "bytes", "kbps", "psnr")} for r in rows],
        "bd_rate_psnr_vs_hevc": bds.get("nerv", {}).get("bd_rate_psnr"),
        "bd_rate_psnr_vs_vvc": next((b["bd_rate_psnr"] for b in vs_vvc if b["codec"] == "nerv"), None),
        "bd_notes": {"hevc": bds.get("nerv", {}).get("note_psnr"),
                     "vvc": next((b["note_psnr"] for b in vs_vvc if b["codec"] == "nerv"), None)},
        "report_html": report["report_html"], "seconds": round(time.time() - start, 1),
    }
    return summary
