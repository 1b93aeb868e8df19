"""``vcm info RUN``: what a fit's run folder holds — its video, network, schedule and state, and the
streams compressed from it — read from its checkpoint and records (nothing is trained or decoded)."""

from __future__ import annotations

import json
from pathlib import Path

from vcm.words import counted


def is_run(path: Path) -> bool:
    """A run folder (or ``runs/latest``): one that holds a vcm fit's checkpoint."""
    from vcm.nerv.run_files import CHECKPOINT

    return path.is_dir() and (path / CHECKPOINT).is_file()


def describe_run(path: Path) -> dict:
    """The run's video, network (parameters, decoder kMAC per pixel), loss and schedule, how far it trained,
    its quality when finished, and each ``.nerv`` stream in the folder with its report's figures."""
    from vcm.codec.stage_state import PARTIAL
    from vcm.fsutil import lock_holder
    from vcm.nerv import registry
    from vcm.nerv.train import run_state
    from vcm.schema import finite_number

    state = run_state(path)
    config, video, train = state["config"], state["config"]["video"], state["config"]["train"]
    arch, model_cfg = state["arch"], state["model"]
    r = {"path": str(path), "kind": "run", "resolved": str(path.resolve()) if path.is_symlink() else None,
         "name": video["name"], "source": video.get("source"), "width": video["width"], "height": video["height"],
         "fps": video["fps"], "frames": video["num_frames"], "source_frames": video["source_frames"],
         "arch": arch, "params": state["params"],
         "kmac_per_pixel": registry.kmac_per_pixel(arch, model_cfg, video["width"], video["height"]),
         "loss": train["loss"], "masks": (config.get("masks") or {}).get("path"), "batch": train["batch"],
         "lr": train["lr"], "rate_lambda": train.get("rate_lambda", 0.0),
         "step": state["step"], "total_steps": state["total_steps"], "finished": state["finished"],
         "training_pid": None if state["finished"] else lock_holder(path),
         "streams": [_stream(p) for p in sorted(path.glob("*.nerv"))],
         "stopped_stages": [s for s in map(_stopped_stage, sorted(path.glob("*.nerv*" + PARTIAL))) if s]}
    m = state["metrics"]
    if m:
        r.update(psnr=m.get("psnr"), psnr_y=m.get("psnr_y"), ms_ssim=m.get("ms_ssim"),
                 train_seconds=m.get("train_seconds"),
                 edge_psnr=m.get("edge_psnr") if finite_number(m.get("edge_psnr")) else None)
    return r


def _stream(path: Path) -> dict:
    """A stream of the run: its size, and what ``vcm compress`` reported for it when its report is beside it."""
    s = {"file": path.name, "bytes": path.stat().st_size}
    try:
        report = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return s
    if isinstance(report, dict) and report.get("bytes") == s["bytes"]:  # the report of this very file
        from vcm.schema import finite_number

        # an edited figure is left out (it was a traceback where the table formats it)
        s.update({k: report.get(k) for k in ("kbps", "psnr_y", "lambda") if finite_number(report.get(k))})
        s.update({"method": report["method"]} if isinstance(report.get("method"), str) else {})
    return s


def _stopped_stage(path: Path) -> dict | None:
    """A stage of vcm compress stopped before its stream was written (:mod:`vcm.codec.stage_state`): its
    stream, what it is (a rate–distortion stage at λ, a fine-tune) and how far it trained; None for a file
    that is not such a state."""
    from vcm.errors import VcmError
    from vcm.fsutil import load_torch_dict

    try:
        state = load_torch_dict(path, "a stage's saved state")
        return {"file": path.name[:path.name.index(".nerv") + len(".nerv")], "what": str(state["what"]),
                "step": int(state["step"]), "steps": int(state["steps"])}
    except (VcmError, KeyError, TypeError, ValueError):  # unreadable, or saved without these fields
        return None


def run_rows(r: dict) -> list[tuple[str, str]]:
    """The table of :func:`describe_run`'s result."""
    from vcm.fsutil import pid_note

    first, stop = r["source_frames"]
    rows = [("run", r["path"] + (f" → {r['resolved']}" if r["resolved"] else "")),
            ("video", f"{r['name']}: {r['width']}x{r['height']}, {r['frames']} frames (source {first}:{stop}), "
                      f"{r['fps']:g} fps"),
            ("source", r["source"] or "–"),
            ("network", f"{r['arch']}, {r['params']:,} parameters, {r['kmac_per_pixel']:.2f} kMAC per pixel to decode"),
            ("loss", r["loss"] + (f" (edge masks {r['masks']})" if r["masks"] else "")),
            ("schedule", f"{counted(r['total_steps'], 'step')}, batch {r['batch']}, lr {r['lr']:g}"
                         + (f", rate-aware at λ {r['rate_lambda']:g}" if r["rate_lambda"] else ""))]
    if r["finished"]:
        rows.append(("state", f"finished ({counted(r['step'], 'step')}"
                              + (f" in {r['train_seconds']:.0f} s)" if r.get("train_seconds") else ")")))
        quality = [f"PSNR {r['psnr']:.2f} dB" if r.get("psnr") is not None else None,
                   f"Y-PSNR {r['psnr_y']:.2f} dB" if r.get("psnr_y") is not None else None,
                   f"MS-SSIM {r['ms_ssim']:.4f}" if r.get("ms_ssim") is not None else None,
                   f"PSNR on edges {r['edge_psnr']:.2f} dB" if r.get("edge_psnr") is not None else None]
        rows.append(("fitted network", ", ".join(q for q in quality if q) or "–"))
    elif r["training_pid"] is not None:
        rows.append(("state", f"training now{pid_note(r['training_pid'])}: step {r['step']:,} of "
                              f"{r['total_steps']:,} at its last checkpoint"))
    else:
        rows.append(("state", f"interrupted at step {r['step']:,} of {r['total_steps']:,}: its vcm fit command "
                              f"again with --resume finishes it"))
    for s in r["streams"]:
        said = [f"{s['kbps']:.2f} kbps" if s.get("kbps") is not None else None,
                f"Y-PSNR {s['psnr_y']:.2f} dB" if s.get("psnr_y") is not None else None,
                f"λ {s['lambda']:g}" if s.get("method") == "rate-distortion" and s.get("lambda") is not None else None]
        rows.append(("stream", f"{s['file']}: {s['bytes']:,} bytes" + "".join(f", {x}" for x in said if x)))
    for s in r["stopped_stages"]:
        rows.append(("stopped stage", f"{s['file']} ({s['what']}): step {s['step']:,} of {s['steps']:,}; "
                                      f"the vcm compress command that started it continues it"))
    if not r["streams"] and not r["stopped_stages"]:
        rows.append(("streams", "none yet (vcm compress " + r["path"] + " --lambda 1)"))
    return rows
