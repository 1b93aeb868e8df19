"""A fit's compute budget in wall time (``vcm fit --budget 5m``), turned into optimiser steps.

The schedule (warm-up, cosine decay, rate onset) needs its length before the first step, so a
time budget is resolved once: a few steps of a throwaway copy of the network are timed on the
real frames, and ``budget / seconds per step`` steps are fitted. The resolved count is what the
run records (``train.steps`` in ``config.json``), so ``--steps N`` reproduces the fit exactly.
"""

from __future__ import annotations

import re
import time

import torch

from vcm.errors import VcmError

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"5m"``, ``"1.5h"`` → seconds (> 0)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|m|min|h)?\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise VcmError(f"--budget must be a positive duration such as 90s, 5m or 1.5h, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or ""]


def seconds_per_step(model_cfg, cfg, frames_u8, masks_u8, device, trials: int = 4) -> float:
    """Wall seconds of one training step of ``model_cfg`` at ``cfg.batch`` frames (median of ``trials``
    after one warm-up step), on a throwaway network: the fit itself starts from its own seed."""
    from vcm.nerv import registry
    from vcm.nerv.train import frame_times, make_loss, param_groups

    model = registry.create_representation(registry.arch_of_config(model_cfg), model_cfg).to(device)
    opt = torch.optim.Adam(param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas)
    n = min(cfg.batch, len(frames_u8))
    clip = torch.from_numpy(frames_u8[:n]).to(device)
    idx = torch.arange(n, device=device)
    x = clip.float().div_(255)
    mask = None if masks_u8 is None else torch.from_numpy(masks_u8[:n].astype("uint8")).to(device)
    loss_fn = make_loss(cfg, device, clip, mask)
    t = frame_times(len(frames_u8), device)[:n]
    times = []
    for i in range(trials + 1):
        start = time.perf_counter()
        loss = loss_fn(model(t), x, mask, idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def steps_for_budget(seconds: float, step_seconds: float) -> int:
    """Steps that fit in ``seconds`` at ``step_seconds`` each (at least one)."""
    return max(1, int(seconds / max(step_seconds, 1e-9)))
