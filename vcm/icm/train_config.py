"""What ``vcm icm train`` trains with, and the values it refuses, without torch or CompressAI:
the command checks its options before the network's libraries (seconds of imports) are loaded."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from vcm.bitstream.budget import memory_budget
from vcm.errors import VcmError
from vcm.fsutil import nothing_to_resume
from vcm.icm.archs import default_pad_multiple
from vcm.masks.sam import DEFAULT_ALPHA, DEFAULT_MODEL, check_alpha, check_sam_model
from vcm.schema import SEED_RULE, is_seed
from vcm.words import human

CHECKPOINT = "checkpoint.pth.tar"
SUMMARY = "train.json"


def check_run_folder(out: Path, resume: bool) -> None:
    """Refuse a run folder this training cannot start or resume in: a new training where a checkpoint is (or
    where a ``train.json`` is without one: training writes its checkpoint first, so that one is the user's), a
    resume where none is."""
    ckpt_path = Path(out) / CHECKPOINT
    if resume and not ckpt_path.exists():
        raise VcmError(nothing_to_resume(Path(out), CHECKPOINT))
    if ckpt_path.exists() and not resume:
        raise VcmError(f"{out} already holds a checkpoint; pass --resume to continue or --out DIR for a new run")
    if not ckpt_path.exists() and (Path(out) / SUMMARY).exists():
        raise VcmError(f"{out} holds a {SUMMARY} that no vcm icm train wrote; a new training would replace it: "
                       f"name a new or empty folder with --out")


@dataclass(frozen=True)
class IcmTrainConfig:
    arch: str = "tcm"
    lmbda: float = 0.05
    epochs: int = 50
    batch: int = 8
    crop: int = 256
    lr: float = 1e-4
    aux_lr: float = 1e-3
    clip: float = 1.0
    masks: str = "sam"  # sam | none
    alpha: float = DEFAULT_ALPHA
    sam_model: str = DEFAULT_MODEL
    seed: int = 0
    steps_per_epoch: int | None = None  # default: one pass over the images

    def check(self) -> None:
        """Refuse values no training can use, before any image is read (a crop off the network's multiple
        was a reshape error in its attention windows, a negative lr one from torch, λ ≤ 0 trained on)."""
        if self.masks not in ("sam", "none"):
            raise VcmError("--masks must be sam or none")
        if not (self.lmbda > 0 and math.isfinite(self.lmbda)):
            raise VcmError(f"--lambda must be a positive number, got {self.lmbda}")
        if not (self.lr > 0 and math.isfinite(self.lr) and self.aux_lr > 0):
            raise VcmError(f"--lr must be a positive number, got {self.lr}")
        check_alpha(self.alpha)
        check_sam_model(self.sam_model)  # refused once the run folder's masks folder was made
        mult = default_pad_multiple(self.arch)  # refuses an unknown architecture
        if self.crop < mult or self.crop % mult:
            raise VcmError(f"--crop {self.crop} must be a multiple of {mult} for --arch {self.arch} "
                           f"(the side its windows and downsampling need)")
        if not is_seed(self.seed):
            raise VcmError(f"--seed must be {SEED_RULE}, got {self.seed!r}")
        # A batch's crops alone, before the network's activations (many times more): --batch 100000 built them
        # one by one until the system killed the process.
        crops, budget = self.batch * 3 * self.crop * self.crop * 4, memory_budget()
        if crops > budget:
            raise VcmError(f"--batch {self.batch} of {self.crop}×{self.crop} crops needs {human(crops)} for the crops "
                           f"alone, more than the memory budget of {human(budget)}; lower --batch or --crop "
                           f"(or raise VCM_MEMORY_BUDGET)")
