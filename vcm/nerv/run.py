"""Fit a NeRV on a video from a preset plus overrides; maintain ``runs/latest``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from vcm.errors import VcmError
from vcm.fsutil import point_symlink
from vcm.nerv.config import ModelSpec, TrainConfig, load_preset, override, parse_width_scale
from vcm.nerv.model import parse_param_count
from vcm.nerv.train import FitResult, fit
from vcm.video import Video

RUNS = Path("runs")


def default_run_dir(video: Video) -> Path:
    return default_run_dir_for(video.name)


def default_run_dir_for(name: str) -> Path:
    """``runs/<video name>/``."""
    return RUNS / name


def preset_for(arch: str | None, preset: str | Path | None) -> str | Path:
    """The preset to fit: the one named (a ``Path``: ``vcm fit --config``), else the default of ``arch`` (nerv when
    neither is given); one of another representation than ``arch`` is refused."""
    from vcm.nerv import registry

    defaults = {e.name: e.default_preset for e in registry.entries() if e.default_preset}
    if arch is not None and arch not in defaults:
        if arch in registry.names():  # a representation of another package may come without one
            raise VcmError(f"--arch {arch}: that representation has no default preset; fit a preset whose model "
                           f"names it (--preset FILE.yaml)")
        raise VcmError(f"--arch {arch!r} is no representation installed here; known: {registry.known()}")
    if preset is None:
        return defaults[arch or "nerv"]
    if arch is not None:
        spec, _ = load_preset(preset)
        if spec.arch != arch:  # --config FILE fitted its own representation, and --arch went unread
            named = f"--config {preset}" if isinstance(preset, Path) else f"preset {preset!r}"
            raise VcmError(f"{named} is a {spec.arch} preset, not {arch}; drop --arch or pick a {arch} preset")
    return preset


def plan(preset: str | Path, params: str | None = None, width_scale: float | None = None,
         **train_overrides) -> tuple[ModelSpec, TrainConfig]:
    """The preset with CLI overrides applied (None means 'keep the preset's value'). Epochs asked for
    replace a preset's steps (the schedule is one or the other); steps asked for are run in full (the
    preset's ``max_epochs`` cap is for its own steps)."""
    spec, cfg = load_preset(preset)
    if params is not None:
        spec = replace(spec, params=parse_param_count(params))
    if width_scale is not None:
        spec = replace(spec, width_scale=parse_width_scale(width_scale))
    if train_overrides.get("epochs") is not None and train_overrides.get("steps") is None:
        cfg = replace(cfg, steps=None)
    if train_overrides.get("steps") is not None and train_overrides.get("max_epochs") is None:
        cfg = replace(cfg, max_epochs=None)
    cfg = override(cfg, **train_overrides)
    cfg.check()
    return spec, cfg


def fit_video(
    video: Video,
    spec: ModelSpec,
    cfg: TrainConfig,
    out: Path | None,
    device,
    resume: bool = False,
    masks_u8: np.ndarray | None = None,
    masks_meta: dict | None = None,
    should_stop=None,
) -> FitResult:
    """Fit and point ``runs/latest`` at the run directory."""
    run_dir = Path(out) if out is not None else default_run_dir(video)
    model_cfg = spec.build_for(video)
    result = fit(video, model_cfg, cfg, run_dir, device, resume=resume, masks_u8=masks_u8,
                 masks_meta=masks_meta, should_stop=should_stop)
    # Finished or stopped with a checkpoint: this is now the latest run. A fit that failed (a refused
    # --resume, a bad option) leaves runs/latest where it was.
    if (run_dir / "checkpoint.pt").exists():
        try:
            point_symlink(RUNS / "latest", run_dir)
        except OSError as err:  # a read-only working folder, a file system without links: the run is saved anyway
            from vcm import progress

            progress.log(f"{RUNS / 'latest'} not pointed at the run ({err.strerror or err}): name {run_dir} to the "
                         f"commands that take a run", style="yellow")
    return result
