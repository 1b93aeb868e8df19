"""``vcm info RUN``: what a ``vcm icm train`` run folder holds — the codec, its training settings, how far it
trained (where a stopped run stopped) and its last losses — read from its checkpoint (nothing is trained)."""

from __future__ import annotations

from pathlib import Path


def is_icm_run(path: Path) -> bool:
    """A folder that holds a ``vcm icm train`` checkpoint."""
    from vcm.icm.train_config import CHECKPOINT

    return path.is_dir() and (path / CHECKPOINT).is_file()


def describe_icm_run(path: Path) -> dict:
    """The run's codec, λ, loss (SA-ICM or plain), epochs done of those asked for, where a stopped one stopped,
    and its last epoch's training (and validation) figures."""
    from vcm.errors import VcmError
    from vcm.fsutil import load_torch_dict, lock_holder
    from vcm.icm.train_config import CHECKPOINT, SUMMARY

    ckpt = load_torch_dict(path / CHECKPOINT, "a vcm icm train checkpoint")
    train, history = ckpt.get("train"), ckpt.get("history")
    if not (isinstance(train, dict) and isinstance(history, list) and isinstance(ckpt.get("epoch"), int)):
        raise VcmError(f"{path / CHECKPOINT} is not a vcm icm train checkpoint (no training settings or history)")
    last = history[-1] if history and isinstance(history[-1], dict) else {}
    stopped = ckpt.get("stopped") if isinstance(ckpt.get("stopped"), dict) else None
    return {"path": str(path), "kind": "icm run", "arch": ckpt.get("arch"), "lambda": train.get("lmbda"),
            "masks": train.get("masks"), "epochs": ckpt["epoch"], "total_epochs": train.get("epochs"),
            "stopped": None if stopped is None else {"epoch": ckpt["epoch"] + 1, "step": stopped.get("step"),
                                                     "steps": stopped.get("steps")},
            "finished": (path / SUMMARY).is_file() and stopped is None and ckpt["epoch"] == train.get("epochs"),
            "training_pid": lock_holder(path),  # a training running in it now (0: its pid unreadable)
            "loss": last.get("loss"), "bpp": last.get("bpp"), "val": last.get("val")}


def icm_run_rows(r: dict) -> list[tuple[str, str]]:
    """The table of :func:`describe_icm_run`'s result."""
    from vcm.cli.common import fmt
    from vcm.fsutil import pid_note

    loss = "SA-ICM (edge-masked, eq. 5)" if r["masks"] == "sam" else "plain (eq. 1)"

    state = ("finished" if r["finished"] else
             f"training now{pid_note(r['training_pid'])}" if r["training_pid"] is not None else
             f"stopped in epoch {r['stopped']['epoch']} at step {r['stopped']['step']} of {r['stopped']['steps']}"
             if r["stopped"] else "stopped between epochs")
    rows = [("run", r["path"]), ("codec", f"vcm ICM ({r['arch']})"), ("loss", f"{loss}, λ = {r['lambda']:g}"),
            ("trained", f"{r['epochs']} of {r['total_epochs']} epochs, {state}")]
    if r["loss"] is not None:
        rows.append(("last epoch", f"loss {fmt(r['loss'], 4)}, {fmt(r['bpp'], 4)} bpp"))
    if r["val"]:
        rows.append(("validation", f"{fmt(r['val'].get('bpp'), 4)} bpp, PSNR {fmt(r['val'].get('psnr'), 2, ' dB')}"))
    return rows
