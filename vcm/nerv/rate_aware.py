"""Rate-aware fitting (``vcm fit --lambda L``): after a warm-up the fit trains through learned
quantizers with loss D + λ·bpp, so the network is born compressible.

The rate joins on the schedule of :mod:`vcm.entropy_models.schedule`: plain fit before start =
``rate_start`` · total steps, then additive noise, then rounding (``rate_noise_fraction`` of the rest
with noise). The quantizers (steps and entropy models) are created from the weights at
``start``, added to the optimizer, and saved in the checkpoint, so an interrupted run resumes and
``vcm compress --lambda`` continues from them.
"""

from __future__ import annotations

import torch

from vcm.entropy_models.learned import RateDistortionModel, bpp_scale, quantizer_lr
from vcm.entropy_models.schedule import QuantizationSchedule
from vcm.nerv.config import TrainConfig



class RateTerm:
    """The forward of a fit that adds λ·R once ``start`` steps are done."""

    def __init__(self, model: torch.nn.Module, opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int,
                 height: int, width: int, frames: int, step: int = 0):
        self.model, self.opt, self.cfg = model, opt, cfg
        self.schedule = QuantizationSchedule.over(total_steps, cfg.rate_start, cfg.rate_noise_fraction, step)
        self.weight = cfg.rate_lambda * bpp_scale(height, width, frames)
        self.rd: RateDistortionModel | None = None

    def restore(self, step: int, quantizers: dict | None) -> None:
        """Continue a run at ``step``; ``quantizers``: the saved state when the rate term had joined."""
        self.schedule.step = step
        if quantizers is not None:
            self.activate(quantizers)

    def activate(self, state: dict | None = None) -> None:
        """Wrap the model in quantizers (from ``state`` when resuming) and let the optimizer train them."""
        device = next(self.model.parameters()).device
        self.rd = RateDistortionModel(self.model).to(device)
        if state is not None:
            self.rd.quantizers.load_state_dict(self.rd.complete_state(state))
        lr = quantizer_lr(self.cfg.rd_step_lr)
        for group in self.rd.optimizer_groups(self.cfg.lr, lr, lr):
            self.opt.add_param_group(group)

    def __call__(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        mode = self.schedule.mode()
        if mode is None:
            return self.model(t), None
        if self.rd is None:
            self.activate()
        # Noise seeded by (seed, step): a resumed run draws exactly what an uninterrupted one would.
        gen = torch.Generator(device=t.device).manual_seed(self.cfg.seed * 1_000_003 + self.schedule.step)
        x_hat, bits = self.rd(t, mode, gen)
        return x_hat, self.weight * bits

    def after_step(self) -> None:
        self.schedule.advance()

    def state(self) -> dict | None:
        return None if self.rd is None else {k: v.detach().cpu() for k, v in self.rd.quantizers.state_dict().items()}


class Quantized(torch.nn.Module):
    """The network as its learned quantizers round it: what ``vcm compress --lambda`` codes with
    no extra epochs, ``forward(t) → x̂`` (for measuring a rate-aware fit)."""

    def __init__(self, rd: RateDistortionModel):
        super().__init__()
        self.rd = rd

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.rd(t, "round")[0]
