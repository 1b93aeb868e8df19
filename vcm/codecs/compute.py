"""More compute for the same codec: ``compute: K`` on a fit runs K times the optimiser steps its schedule
gives the clip, in its fit and in each of its points' stages (rate–distortion steps, or the paper
pipeline's fine-tuning epochs).

The steps are counted as the schedule would count them on that clip (after a preset's cap on passes over
the frames, a stage's passes turned into steps), then multiplied, so a fit and its stages keep their
proportions and warm-up, decay and rate onset keep their places in them. ``vcm ctc run --compute K`` and
``vcm demo --compute K`` set it on every fit: what the same sections give a machine K times faster (a GPU)
in about the time they take here.
"""

from __future__ import annotations

import math
from dataclasses import replace

from vcm.errors import VcmError

MAX_FACTOR = 1000.0  # a factor beyond this is a typo (1000 times the demo's fit is 900,000 steps)


def check_factor(value, where: str) -> float:
    """``value`` as a compute factor: a number above 0 and at most :data:`MAX_FACTOR`; a one-line error
    naming ``where`` it was given otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and 0 < value <= MAX_FACTOR):
        raise VcmError(f"{where} must be a factor above 0 and at most {MAX_FACTOR:g} (K times the schedule's "
                       f"steps), not {value!r}")
    return float(value)


def fit_steps(train, factor: float, num_frames: int) -> int:
    """The optimiser steps of a fit whose schedule is ``train`` (a ``TrainConfig``) on ``num_frames`` frames,
    times ``factor``: at least one."""
    return max(1, round(factor * train.total_steps(num_frames)))


def stage_options(opts, train, factor: float, num_frames: int, has_quantizers: bool):
    """A point's compression options with ``factor`` times the training of its stage, counted as the stage
    counts it on the fit of schedule ``train``: the rate–distortion stage's steps (``vcm.codec.rd.rd_steps``),
    or the paper pipeline's fine-tuning epochs (``vcm.codec.affine.finetune_epochs``). A stage that trains
    nothing (a rate-aware fit codes its own quantizers; quantization alone) stays so."""
    from vcm.codec.affine import CompressOptions, finetune_epochs
    from vcm.codec.rd import RDOptions, rd_steps

    if isinstance(opts, CompressOptions):
        epochs = finetune_epochs(opts, train)
        return replace(opts, finetune_epochs=max(1, round(factor * epochs))) if epochs else opts
    if not isinstance(opts, RDOptions):
        return opts
    steps = rd_steps(opts, train, num_frames, has_quantizers)
    return replace(opts, steps=max(1, round(factor * steps)), epochs=None) if steps else opts


def stage_steps(opts, train, num_frames: int, has_quantizers: bool) -> int:
    """Optimiser steps of a point's own stage after the fit of schedule ``train`` on ``num_frames`` frames, as
    it runs them: the rate–distortion stage's (``vcm.codec.rd.rd_steps``), or the paper pipeline's fine-tunes
    (one after pruning and one of QAT, each ``finetune_epochs`` passes); 0 for quantization alone."""
    from vcm.codec.affine import CompressOptions, finetune_epochs
    from vcm.codec.rd import RDOptions, rd_steps

    if isinstance(opts, RDOptions):
        return rd_steps(opts, train, num_frames, has_quantizers)
    if isinstance(opts, CompressOptions):
        tunes = (opts.prune > 0) + bool(opts.qat)
        return tunes * finetune_epochs(opts, train) * train.steps_per_epoch(num_frames)
    return 0
