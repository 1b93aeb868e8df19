"""The paper's compression pipeline (NeRV, Table 1 baseline): global magnitude pruning → fine-tuning
with the pruned weights held at zero → optional quantization-aware fine-tuning (straight-through)
→ per-channel affine quantization at fixed bit depths (coded by the ``affine`` stream layout).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from vcm.codec.prune import apply_masks, magnitude_masks
from vcm.codec.quant import QTensor, fake_quantize, quantize
from vcm.codec.stage import StageResult
from vcm.codec.stage_state import ResumableStage, StageCheckpoint
from vcm.errors import VcmError
from vcm.nerv.config import TrainConfig, check_schedule_length


@dataclass(frozen=True)
class CompressOptions:
    """Options of the paper's pipeline (``vcm compress --prune P --bits B``)."""

    prune: float = 0.0  # fraction of prunable weights set to zero
    bits: int = 8  # default bits for every tensor group
    group_bits: dict = field(default_factory=dict)  # overrides, e.g. {"bias": 10}
    finetune_epochs: int | None = None  # None: 10 % of the fit's epochs when pruning or QAT, else 0
    finetune_lr_scale: float = 0.1  # fine-tune peak lr = fit lr × this
    qat: bool = False
    seed: int = 0

    def bits_for(self, group: str) -> int:
        return int(self.group_bits.get(group, self.bits))

    def check(self) -> None:
        if not 0.0 <= self.prune < 1.0:
            raise VcmError(f"--prune must be in [0, 1), got {self.prune}")
        if not 2 <= self.bits <= 16:
            raise VcmError(f"--bits must be in 2..16, got {self.bits}")
        # a fine-tune that cannot run was reported as if it had ("QAT yes" after no QAT step)
        if self.qat and self.finetune_epochs == 0:
            raise VcmError("--qat fine-tunes through quantization: give it --finetune-epochs above 0 (or leave it out)")
        if self.finetune_epochs and not (self.prune > 0 or self.qat):
            raise VcmError(f"--finetune-epochs {self.finetune_epochs}: nothing to fine-tune without --prune or --qat")

    def label(self) -> str:
        """The default stream name's options part: every option that changes the stream and was given
        (``p40_b6_head10_qat_ft5_seed2``), so that two commands of other options never write one file."""
        groups = "".join(f"_{group}{bits}" for group, bits in sorted(self.group_bits.items()))
        return (f"p{round(self.prune * 100)}_b{self.bits}{groups}{'_qat' if self.qat else ''}"
                + (f"_ft{self.finetune_epochs}" if self.finetune_epochs is not None else "")
                + (f"_seed{self.seed}" if self.seed else ""))

    def draws_at_random(self, own_quantizers: bool = False) -> bool:
        """Whether the seed changes the bytes: the pipeline draws at random only when it fine-tunes, after pruning
        or for QAT (``finetune_epochs`` 0 fine-tunes nothing); ``own_quantizers`` as for :class:`RDOptions`."""
        return self.finetune_epochs != 0 and (self.prune > 0 or self.qat)


def parse_group_bits(text: str | None) -> dict:
    """``"head=10,bias=12"`` → {"head": 10, "bias": 12} (group names are checked against the run's
    representation when it is loaded)."""
    out = {}
    for part in filter(None, (text or "").split(",")):
        name, _, value = part.partition("=")
        name = name.strip()
        if not name or not value.strip().isdigit() or not 2 <= int(value) <= 16:
            raise VcmError(f"--group-bits takes GROUP=BITS pairs with 2..16 bits (e.g. head=10,bias=12); got {part!r}")
        if name in out:  # the last one used to win without a word
            raise VcmError(f"--group-bits gives {name} twice; give each group once")
        out[name] = int(value)
    return out


def finetune_epochs(opts: CompressOptions, fit_cfg: TrainConfig) -> int:
    """Epochs of each fine-tune (after pruning, and of QAT): ``opts.finetune_epochs``, else 10 % of the fit's
    epochs when it prunes or runs QAT, else none."""
    if opts.finetune_epochs is not None:
        return opts.finetune_epochs
    return max(1, round(0.1 * fit_cfg.epochs)) if (opts.prune > 0 or opts.qat) else 0


def _finetune(model, frames_u8, masks_u8, cfg: TrainConfig, epochs: int, keep, qat_bits, device, label: str,
              checkpoint: StageCheckpoint | None = None, should_stop: Callable[[int], bool] | None = None):
    """Fine-tune in place: pruned weights held at zero; with ``qat_bits`` through fake quantization.
    ``checkpoint``: where it keeps its state to continue after an interruption (:mod:`vcm.codec.stage_state`)."""
    from vcm.nerv.train import param_groups, train_stage

    cfg = replace(cfg, epochs=epochs, warmup=0.0, warmup_min_steps=0)
    model.to(device).train()
    opt = torch.optim.Adam(param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas)
    channels = {n: model.quant_channels(n, tuple(p.shape)) for n, p in model.named_parameters()}

    def forward(t):
        if qat_bits is None:
            return model(t), None
        params = {n: fake_quantize(p, qat_bits[n], channels[n]) for n, p in model.named_parameters()}
        return torch.func.functional_call(model, params, (t,)), None

    steps = check_schedule_length(epochs * cfg.steps_per_epoch(len(frames_u8)),
                                  f"{epochs:,} fine-tuning epochs of {len(frames_u8)} frames")
    stage = ResumableStage(checkpoint, {"model": model, "optimizer": opt}, device, label)
    stage.resume(steps)
    stage.run(lambda start, stop, on_step: train_stage(
        forward, opt, frames_u8, masks_u8, cfg, steps, device, label,
        lambda s: f"epoch {s.epoch}/{epochs}  loss {s.loss:.4f}  PSNR {s.train_psnr:.2f} dB",
        after_step=lambda: apply_masks(model, keep), start=start, stop=stop, on_step=on_step), steps, should_stop)
    model.cpu().eval()
    return stage.resumed()


def optimise(model, frames_u8, masks_u8, fit_cfg: TrainConfig, opts: CompressOptions, device,
             checkpoint: StageCheckpoint | None = None,
             should_stop: Callable[[int], bool] | None = None) -> tuple[list[QTensor], StageResult]:
    """Prune, fine-tune and quantize ``model`` in place → (quantized tensors, report fields). ``checkpoint``:
    where the fine-tunes keep their states (a phase each), so that an interrupted run continues them."""
    opts.check()
    unknown = set(opts.group_bits) - set(model.GROUPS)
    if unknown:
        raise VcmError(f"--group-bits: no group {', '.join(sorted(unknown))} in a {model.ARCH} network "
                       f"(groups: {', '.join(model.GROUPS)})")
    torch.manual_seed(opts.seed)
    cfg = replace(fit_cfg, seed=opts.seed, lr=fit_cfg.lr * opts.finetune_lr_scale)
    epochs = finetune_epochs(opts, fit_cfg)
    keep = magnitude_masks(model, opts.prune)
    apply_masks(model, keep)
    bits = {n: opts.bits_for(model.param_group(n)) for n, _ in model.named_parameters()}
    phase = (lambda name: checkpoint.phase(name)) if checkpoint is not None else (lambda name: None)
    resumed = {}  # phase → where a continued phase started again, and its seconds before
    if epochs and opts.prune > 0:
        resumed["prune"] = _finetune(model, frames_u8, masks_u8, cfg, epochs, keep, None, device, "prune fine-tune",
                                     phase("prune"), should_stop).get("resumed")
    if epochs and opts.qat:
        resumed["qat"] = _finetune(model, frames_u8, masks_u8, cfg, epochs, keep, bits, device, "QAT fine-tune",
                                   phase("qat"), should_stop).get("resumed")
    resumed = {name: r for name, r in resumed.items() if r}
    tensors = [quantize(n, p.detach().cpu().numpy(), bits[n], model.quant_channels(n, tuple(p.shape)))
               for n, p in model.named_parameters()]
    return tensors, StageResult({"method": "prune-quantize", "prune": opts.prune, "bits": opts.bits,
                                 "group_bits": {g: opts.bits_for(g) for g in model.GROUPS}, "qat": opts.qat,
                                 "finetune_epochs": epochs,
                                 **({"resumed": {"phases": {n: r["step"] for n, r in resumed.items()},
                                                 "seconds": round(sum(r["seconds"] for r in resumed.values()), 3)}}
                                    if resumed else {})})
