"""Fit presets: ``configs/nerv/<name>.yaml`` = a model shape (+ parameter budget) and a schedule.

A preset is data: every default of a fit lives in its YAML file, and CLI flags override fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from vcm.errors import VcmError
from vcm.schema import SEED_RULE, is_seed, refuse_first_broken
from vcm.nerv.model import parse_param_count
from vcm.nerv.presets import preset_path, read_preset


# Optimiser steps of one fit or stage at most: about 12 days at 1,000 steps a second. More is a typo whose warm-up
# alone outlasts any run, so that the network never learns (--epochs 99999999999999999999 stayed at 8.8 dB).
MAX_STEPS = 10**9


def check_schedule_length(steps: int, what: str) -> int:
    """``steps`` (a fit's or a stage's optimiser steps), or a one-line error naming ``what`` when over ``MAX_STEPS``."""
    if steps > MAX_STEPS:
        raise VcmError(f"{what} would be {steps:,} optimiser steps, more than {MAX_STEPS:,} (about 12 days at 1,000 "
                       f"steps a second), a schedule no run finishes: give fewer")
    return steps


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule of ``vcm fit`` (reference NeRV recipe by default)."""

    epochs: int = 300
    steps: int | None = None  # optimiser steps of the whole fit, the same on any clip (None: epochs × steps per epoch)
    max_epochs: int | None = None  # with steps: never more passes over the clip than this (compute ∝ the clip's pixels)
    batch: int = 1
    lr: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.999)
    warmup: float = 0.2  # fraction of all steps with a linear ramp, then cosine to 0
    # The ramp lasts at least this many steps (at most half the fit): a fit of a few hundred steps or less at a
    # HiNeRV rate (2e-2 to 9e-2) otherwise saturated its output (every pixel pinned at 0 or 1) and stopped
    # learning. Any fit with warmup × steps ≥ this (the presets' own schedules) is unchanged by it.
    warmup_min_steps: int = 30
    loss: str = "nerv"  # "nerv" (eq. 4) or "sa-nerv" (eq. 6)
    beta: float = 0.7  # weight of L1 against (1 − SSIM)
    mask_weight: float = 1.0  # weight of the masked term of eq. (6)
    loss_impl: str = "auto"  # auto | torch | triton (SA-NeRV loss)
    checkpoint_every: int = 10  # epochs
    seed: int = 0
    amp: bool = True  # bf16 autocast on CUDA
    channels_last: bool = True  # on CUDA
    compile: bool = False  # torch.compile the model
    grad_clip: float = 0.0  # clip the gradient norm to this (0: off; HiNeRV's recipe uses 1.0)
    grid_lr_scale: float = 1.0  # learning rate of grid parameters (HiNeRV) = lr × this
    rate_lambda: float = 0.0  # > 0: rate-aware fit, loss D + λ·bpp after rate_start (vcm fit --lambda)
    rate_start: float = 0.5  # fraction of the steps before the rate term joins
    rate_noise_fraction: float = 0.6  # of the rate-aware steps: additive noise first, then rounding
    # The rate–distortion stage that `vcm compress --lambda` runs on this fit unless told otherwise:
    rd_steps: int | None = None  # its optimiser steps (None: half the fit's), the same on any clip
    rd_step_lr: float | None = None  # Adam lr of its quantization steps and entropy models, and of a rate-aware
    # fit's (None: 2e-2)
    rd_noise_fraction: float = 0.6  # share of its steps with additive noise; the rest round (straight-through)
    rd_lr_scale: float = 0.2  # the network's peak lr in it = lr × this (the quantization steps keep rd_step_lr)
    rd_chain: bool = False  # several λ on this fit: each stage from where the next-smaller λ's ended (vcm.codec.chain)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    def check(self) -> None:
        """Refuse values no fit can use (before any frame is read)."""
        if self.loss not in ("nerv", "sa-nerv"):
            raise VcmError(f"unknown loss {self.loss!r}; use nerv or sa-nerv")
        if self.loss_impl not in ("auto", "torch", "triton"):
            raise VcmError(f"unknown loss implementation {self.loss_impl!r}; use auto, torch or triton")
        # one rule per field, so that the message names the value at fault (NaN fails every rule)
        # lr at most 10: a larger one only diverges, and one beyond float32's range failed inside the optimiser
        rules = [("lr", 0 < self.lr <= 10, "in (0, 10]"),
                 ("seed", is_seed(self.seed), SEED_RULE),
                 ("epochs", 1 <= self.epochs <= MAX_STEPS, f"from 1 to {MAX_STEPS:,}"),
                 ("batch", self.batch >= 1, "at least 1"), ("checkpoint_every", self.checkpoint_every >= 1, "at least 1"),
                 ("steps", self.steps is None or 1 <= self.steps <= MAX_STEPS, f"from 1 to {MAX_STEPS:,}"),
                 ("max_epochs", self.max_epochs is None or self.max_epochs >= 1, "at least 1"),
                 ("rd_steps", self.rd_steps is None or 1 <= self.rd_steps <= MAX_STEPS, f"from 1 to {MAX_STEPS:,}"),
                 ("rd_step_lr", self.rd_step_lr is None or self.rd_step_lr > 0, "above 0"),
                 ("rd_noise_fraction", 0 <= self.rd_noise_fraction <= 1, "in [0, 1]"),
                 ("rd_lr_scale", 0 < self.rd_lr_scale <= 10, "in (0, 10]"),
                 ("rate_lambda", self.rate_lambda >= 0, "0 or more"), ("rate_start", 0 <= self.rate_start < 1, "in [0, 1)"),
                 ("rate_noise_fraction", 0 <= self.rate_noise_fraction <= 1, "in [0, 1]"),
                 ("betas", len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                  "two numbers in [0, 1) (Adam's β1, β2)"),
                 ("warmup", 0 <= self.warmup < 1, "in [0, 1)"),
                 ("warmup_min_steps", self.warmup_min_steps >= 0, "0 or more"),
                 ("beta", 0 <= self.beta <= 1, "in [0, 1]"),
                 ("mask_weight", self.mask_weight >= 0, "0 or more"), ("grad_clip", self.grad_clip >= 0, "0 or more"),
                 ("grid_lr_scale", self.grid_lr_scale > 0, "above 0")]
        try:
            refuse_first_broken("training option", self, rules)
        except ValueError as err:
            raise VcmError(str(err)) from None

    def steps_per_epoch(self, num_frames: int) -> int:
        """Optimiser steps of one pass over ``num_frames`` frames."""
        return -(-num_frames // self.batch)

    def total_steps(self, num_frames: int) -> int:
        """Optimiser steps of the whole fit: ``steps`` when set (the same for a 48- and a 120-frame clip),
        at most ``max_epochs`` passes over the frames; else ``epochs`` passes. Warm-up, decay and the
        rate onset are fractions of this."""
        if self.steps is None:
            return check_schedule_length(self.epochs * self.steps_per_epoch(num_frames),
                                         f"{self.epochs:,} epochs of {num_frames} frames")
        steps = self.steps if self.max_epochs is None else min(self.steps,
                                                                self.max_epochs * self.steps_per_epoch(num_frames))
        return check_schedule_length(steps, "the fit")

    def total_epochs(self, num_frames: int) -> int:
        """Passes over the frames that ``total_steps`` makes (the last one may be partial)."""
        return -(-self.total_steps(num_frames) // self.steps_per_epoch(num_frames))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Strict: unknown options and wrongly typed values are refused (one line naming the field)."""
        from vcm.schema import strict_from_dict

        try:
            return strict_from_dict(cls, d)
        except ValueError as err:
            raise VcmError(f"training options: {err}") from None


@dataclass(frozen=True)
class ModelSpec:
    """A representation's shape plus how to size it: a parameter budget, or the widths as they are;
    then, with ``width_scale`` ≠ 1, every width of that network (not the frame counts of its grids)
    times ``width_scale``. A scale follows the clip where a budget does not: the same scale leaves a
    clip whose grids hold most of the parameters (many frames) a larger share of them."""

    shape: object  # the representation's shape (NervShape, HinervShape, …)
    params: int | None = None
    arch: str = "nerv"
    width_scale: float = 1.0

    def build(self, height: int, width: int, frames: int, shots: tuple[int, ...] = ()):
        """The representation's config for an H×W video of ``frames`` frames (``shots``: frames per
        shot of a clip with scene cuts, for a shape that follows them)."""
        from vcm.nerv import registry

        model_cls = registry.entry(self.arch).model_cls
        cfg = model_cls.config_for(self.shape, height, width, frames, self.params, shots)
        return cfg if self.width_scale == 1.0 else model_cls.scale_widths(cfg, self.width_scale)

    def build_for(self, video):
        """``build`` for a loaded clip, its scene cuts found when the shape follows them."""
        shots = ()
        if getattr(self.shape, "scene_cuts", False):
            from vcm.video.shots import shot_lengths

            shots = shot_lengths(video.frames_u8)
        return self.build(video.height, video.width, video.num_frames, shots)


def model_spec_from_dict(d: dict) -> ModelSpec:
    """A preset's ``model`` section: ``arch`` (a registered representation; nerv when absent), an optional
    ``params`` budget, and the representation's own shape keys."""
    from vcm.nerv import registry

    arch = d.get("arch", "nerv")
    if arch not in registry.names():
        raise VcmError(f"unknown representation {arch!r} in the model section; known: {registry.known()}")
    params = parse_param_count(d["params"], "the model's params") if d.get("params") is not None else None
    width_scale = parse_width_scale(d["width_scale"]) if d.get("width_scale") is not None else 1.0
    try:
        shape = registry.entry(arch).model_cls.shape_from_preset(
            {k: v for k, v in d.items() if k not in ("arch", "params", "width_scale")})
    except (TypeError, ValueError) as err:
        raise VcmError(str(err)) from None
    return ModelSpec(shape=shape, params=params, arch=arch, width_scale=width_scale)


def parse_width_scale(value) -> float:
    """A width scale: a number in (0, 8]."""
    try:
        scale = float(value)
    except (TypeError, ValueError):
        scale = float("nan")
    if isinstance(value, bool) or not 0 < scale <= 8:
        raise VcmError(f"width_scale must be a number above 0 and at most 8, got {value!r}")
    return scale


def load_preset(name_or_path: str | Path) -> tuple[ModelSpec, TrainConfig]:
    """Read a preset by name (``configs/nerv/NAME.yaml``) or a YAML path with ``model``/``train`` (a ``Path`` is
    always a file: :func:`vcm.nerv.presets.preset_path`)."""
    path = preset_path(name_or_path)
    raw = read_preset(path)
    if not isinstance(raw, dict) or not {"model", "train", "curve"} >= set(raw):
        raise VcmError(f"{path}: a fit config has the sections 'model' and 'train' only (and 'curve': its default "
                       f"rate points in a CTC config)")
    for section in ("model", "train"):
        if not isinstance(raw.get(section) or {}, dict):
            raise VcmError(f"{path}: the {section!r} section must be a mapping of option: value, "
                           f"got {type(raw[section]).__name__} {raw[section]!r}")
    train = raw.get("train") or {}
    if train.get("steps") is not None and train.get("epochs") is not None:  # steps won without a word
        raise VcmError(f"{path}: train sets steps and epochs, both the fit's length; give one of them")
    if train.get("max_epochs") is not None and train.get("steps") is None:  # a fit of epochs never read it
        raise VcmError(f"{path}: train sets max_epochs, a cap on a schedule in steps, but no steps; set steps or drop "
                       "max_epochs")
    spec = model_spec_from_dict(raw.get("model") or {})
    if train.get("grid_lr_scale") is not None and not _has_grids(spec.arch):
        raise VcmError(f"{path}: train sets grid_lr_scale, but a {spec.arch} network has no grids; drop it")
    return spec, TrainConfig.from_dict(train)


def _has_grids(arch: str) -> bool:
    """Whether a representation's parameters include a ``grids`` group (the one ``grid_lr_scale`` sets)."""
    from vcm.nerv import registry

    return "grids" in registry.entry(arch).model_cls.GROUPS


def override(cfg: TrainConfig, **changes) -> TrainConfig:
    """``replace`` with the changes that are not None."""
    return replace(cfg, **{k: v for k, v in changes.items() if v is not None})

