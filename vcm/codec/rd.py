"""Rate–distortion compression: train a fitted representation through learned quantizers with the
rate in the loss, then code each tensor under exactly its trained entropy model.

    loss = D + λ · R,   R = (bits of all parameter symbols) / (H · W · T)   [bits per pixel]

D is the run's own loss (eq. 4, or eq. 6 for a SA-NeRV run with its masks). The first
``noise_fraction`` of the steps use additive uniform noise (smooth rate), the rest rounding with a
straight-through gradient, so the last steps see exactly what the decoder rebuilds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

from vcm import progress
from vcm.codec.rd_coding import RDTensor
from vcm.codec.stage_state import ResumableStage, StageCheckpoint
from vcm.codec.stage import StageResult
from vcm.entropy_models import laplace
from vcm.entropy_models.learned import RateDistortionModel, bpp_scale, quantizer_lr
from vcm.errors import VcmError
from vcm.nerv.config import TrainConfig, check_schedule_length


@dataclass(frozen=True)
class RDOptions:
    """Options of the rate–distortion method (``vcm compress --lambda``)."""

    lam: float  # λ: weight of the rate in bits per pixel against the distortion
    epochs: int | None = None  # None: half of the fit's epochs (0 for a rate-aware fit: code its own quantizers)
    steps: int | None = None  # optimiser steps instead of epochs: the same on any clip (wins over epochs)
    noise_fraction: float | None = None  # share of the steps with additive noise, then straight-through rounding
                                         # (None: the fit's rd_noise_fraction)
    lr_scale: float | None = None  # the network's peak lr = fit lr × this (None: the fit's rd_lr_scale)
    step_lr: float | None = None  # Adam lr of the log2 steps (None: the fit's rd_step_lr, else 2e-2; short schedules want more)
    entropy_lr: float | None = None  # Adam lr of the entropy models' log scales (None: as for step_lr)
    init_bits: int = 8  # initial steps: max|w| per channel / 2^(init_bits − 1)
    prune: float = 0.0  # optional global magnitude pruning first (pruned weights are symbol 0)
    temporal: bool = True  # code the representation's temporal tensors (HiNeRV's grids) along time
    seed: int = 0

    def draws_at_random(self, own_quantizers: bool = False) -> bool:
        """Whether the seed changes the bytes: whether the stage trains (:func:`rd_steps`), which the stage of a
        rate-aware fit at this λ (``own_quantizers``: its quantizers are coded as they are) does only for steps
        asked for."""
        if self.steps is not None:
            return self.steps > 0
        if self.epochs is not None:
            return self.epochs > 0
        return not own_quantizers

    def check(self) -> None:
        if not (self.lam > 0 and math.isfinite(self.lam)):
            raise VcmError(f"--lambda must be a positive number, got {self.lam}")
        if not 0.0 <= self.prune < 1.0:
            raise VcmError(f"--prune must be in [0, 1), got {self.prune}")
        if self.noise_fraction is not None and not 0.0 <= self.noise_fraction <= 1.0:
            raise VcmError(f"noise_fraction must be in [0, 1], got {self.noise_fraction}")
        if self.lr_scale is not None and not 0.0 < self.lr_scale <= 10.0:
            raise VcmError(f"lr_scale must be in (0, 10], got {self.lr_scale}")
        if self.epochs is not None and self.epochs < 0:
            raise VcmError(f"rate-distortion epochs must be 0 or more, got {self.epochs}")
        if self.steps is not None and self.steps < 0:
            raise VcmError(f"rate-distortion steps must be 0 or more, got {self.steps}")
        if self.steps is not None:  # epochs are counted in steps by rd_steps, on the clip's frames
            check_schedule_length(self.steps, "a rate–distortion stage")

    def label(self) -> str:
        """The default stream name's options part: ``l<λ>`` and :meth:`suffix`."""
        return self.lam_label() + self.suffix()

    def lam_label(self) -> str:
        """λ as a name part: ``l0p3``."""
        return f"l{self.lam:g}".replace(".", "p")

    def suffix(self) -> str:
        """The options besides λ that change the stream, as a name part (``_p40_s300_seed2``), so that two
        commands of other options never write one file: pruning, a stage's length when given, a seed other than 0."""
        return ((f"_p{round(self.prune * 100)}" if self.prune else "")
                + (f"_s{self.steps}" if self.steps is not None
                   else f"_e{self.epochs}" if self.epochs is not None else "")
                + (f"_seed{self.seed}" if self.seed else ""))


def _same_layout(rd: RateDistortionModel, state: dict) -> bool:
    """Whether a rate-aware fit's saved quantizers fit ``rd``'s (not so for one saved by an earlier vcm,
    with a step per grid frame, or when temporal coding is switched off now)."""
    mine = rd.quantizers.state_dict()
    return set(state) == set(mine) and all(state[k].shape == mine[k].shape for k in mine)


def _or_fit(asked, fit_value):
    """An option left unset (None) takes the fit's setting; a value asked for wins, 0 included."""
    return fit_value if asked is None else asked


def codes_fit_as_trained(opts: RDOptions, fit_cfg: TrainConfig, has_quantizers: bool) -> bool:
    """Whether a stage at ``opts.lam`` starts from a rate-aware fit trained at that same λ (``has_quantizers``:
    the fit has its own quantizers), so that its quantizers, coded as they are, already are that λ's stream.
    At another λ they are only where a stage towards it starts: coded as they were, ``--lambda 4`` on a fit
    at λ 1 wrote the λ 1 network labelled λ 4."""
    return has_quantizers and math.isclose(opts.lam, fit_cfg.rate_lambda, rel_tol=1e-6)


def rd_steps(opts: RDOptions, fit_cfg: TrainConfig, num_frames: int, has_quantizers: bool) -> int:
    """Optimiser steps of the rate–distortion stage: ``opts.steps``, else ``opts.epochs`` passes, else none for
    a rate-aware fit at ``opts.lam`` (its own quantizers are coded, :func:`codes_fit_as_trained`), else the fit's
    ``rd_steps``, else half of its schedule."""
    if opts.steps is not None:
        return opts.steps
    if opts.epochs is not None:
        return check_schedule_length(opts.epochs * fit_cfg.steps_per_epoch(num_frames),
                                     f"{opts.epochs:,} rate–distortion epochs of {num_frames} frames")
    if codes_fit_as_trained(opts, fit_cfg, has_quantizers):
        return 0
    if fit_cfg.rd_steps is not None:
        return fit_cfg.rd_steps
    if fit_cfg.steps is not None:
        return max(1, round(0.5 * fit_cfg.total_steps(num_frames)))
    return max(1, round(0.5 * fit_cfg.epochs)) * fit_cfg.steps_per_epoch(num_frames)


def optimise(model: torch.nn.Module, frames_u8: np.ndarray, masks_u8, fit_cfg: TrainConfig, opts: RDOptions,
             device, init_quantizers: dict | None = None, label: str = "rate-distortion",
             checkpoint: StageCheckpoint | None = None,
             should_stop: Callable[[int], bool] | None = None) -> tuple[list[RDTensor], StageResult]:
    """Train ``model`` (in place) through its quantizers at λ = ``opts.lam`` → (coded tensors, its
    result: report fields, the entropy models' estimate, the history and the trained quantizers).
    ``init_quantizers``: learned quantizers to start from (a rate-aware fit's, or another λ's).

    ``checkpoint``: where this stage keeps its state (:mod:`vcm.codec.stage_state`): a state saved there
    by the same stage is continued, and Ctrl-C (or ``should_stop(step)`` returning True) saves it and
    raises KeyboardInterrupt. Without it the stage runs to its end, as rate control's trials do."""
    from vcm.codec.prune import apply_masks, magnitude_masks
    from vcm.entropy_models.schedule import QuantizationSchedule
    from vcm.nerv.train import param_groups, train_stage

    opts.check()
    torch.manual_seed(opts.seed)
    keep = magnitude_masks(model, opts.prune) if opts.prune > 0 else None
    if keep is not None:
        apply_masks(model, keep)
    t_frames, _, h, w = frames_u8.shape
    steps = rd_steps(opts, fit_cfg, t_frames, init_quantizers is not None)
    epochs = -(-steps // fit_cfg.steps_per_epoch(t_frames))
    lr_scale = _or_fit(opts.lr_scale, fit_cfg.rd_lr_scale)
    cfg = replace(fit_cfg, epochs=max(epochs, 1), steps=None, warmup=0.05, warmup_min_steps=0, lr=fit_cfg.lr * lr_scale,
                  seed=opts.seed, rate_lambda=0.0)
    rd = RateDistortionModel(model, keep, init_bits=opts.init_bits, temporal=opts.temporal)
    if init_quantizers is not None:
        init_quantizers = rd.complete_state(init_quantizers)
    if init_quantizers is not None and not _same_layout(rd, init_quantizers):
        if not steps:
            raise VcmError("this rate-aware fit's quantizers have another layout than vcm codes now (an earlier vcm, "
                           "or temporal coding switched off); pass --rd-steps N to train new ones, or refit")
        progress.log(f"{label}: the fit's quantizers have another layout; new ones are trained for {steps} steps")
    elif init_quantizers is not None:
        rd.quantizers.load_state_dict(init_quantizers)
    rd = rd.to(device).train()
    step_lr = quantizer_lr(opts.step_lr, fit_cfg.rd_step_lr)
    opt = torch.optim.Adam([*param_groups(model, cfg), *rd.optimizer_groups(cfg.lr, step_lr, opts.entropy_lr or step_lr)],
                           lr=cfg.lr, betas=cfg.betas)
    noise_fraction = _or_fit(opts.noise_fraction, fit_cfg.rd_noise_fraction)
    schedule = QuantizationSchedule.over(steps, 0.0, noise_fraction)
    to_bpp = opts.lam * bpp_scale(h, w, t_frames)

    def forward(t):
        # noise from the global generator seeded above (a resumed stage restores its state)
        x_hat, bits = rd(t, schedule.mode())
        return x_hat, to_bpp * bits

    stage = ResumableStage(checkpoint, {"model": model, "quantizers": rd.quantizers, "optimizer": opt}, device,
                           f"{label} λ={opts.lam:g}", info={"lambda": opts.lam})
    schedule.step = stage.resume(steps)
    history = stage.history

    def status(s) -> str:
        bpp = s.penalty / opts.lam
        history.append({"epoch": s.epoch, "loss": s.loss, "train_psnr": s.train_psnr, "bpp": bpp})
        return f"epoch {s.epoch}/{epochs}  PSNR {s.train_psnr:.2f} dB  rate {bpp:.4f} bpp"

    stage.run(lambda start, stop, on_step: train_stage(forward, opt, frames_u8, masks_u8, cfg, steps, device,
                                                       stage.what, status, after_step=schedule.advance, start=start,
                                                       stop=stop, on_step=on_step), steps, should_stop)
    rd.cpu().eval()
    tensors = coded_tensors(model, rd, keep)
    report = {"method": "rate-distortion", "lambda": opts.lam, "prune": opts.prune, "rd_epochs": epochs, "rd_steps": steps,
              "step_lr": step_lr, "noise_fraction": noise_fraction, "lr_scale": lr_scale, **stage.resumed()}
    return tensors, StageResult(report, rd.estimate_bits(), history,
                                {k: v.detach().clone() for k, v in rd.quantizers.state_dict().items()})


def coded_tensors(model: torch.nn.Module, rd, keep: dict | None = None) -> list[RDTensor]:
    """``model``'s parameters as its quantizers ``rd`` (on the CPU) code them: step codes, Laplace code and
    symbols of each (``keep``: pruning masks by name)."""
    tensors = []
    for n, p in model.named_parameters():
        q = rd.quantizer(n)
        keep_n = None if keep is None or n not in keep else keep[n].cpu()
        tensors.append(RDTensor(n, tuple(p.shape), q.step_codes().cpu().numpy().astype(np.int64),
                                laplace.s_code(q.coded_log_b()), q.symbols(p.detach().cpu(), keep_n), q.temporal))
    return tensors
