"""Rate control: the λ that lands a stream on a target rate or quality, as x265 users set a bitrate.

``vcm compress RUN --target-kbps K`` (or ``--target-psnr DB``, luma) searches λ of the rate–distortion
method. Trial 1 runs the full schedule from the fit at the first λ (``--lambda``, default 1; on a rate-aware
fit its own λ, where the full schedule is none: the fit as trained); each later trial starts warm from the
trained network and quantizers of the trial nearest the target and runs a shorter schedule
(``warm_fraction`` of the steps). The next λ comes from the secant through the two trials nearest the target
in (ln λ, ln bytes) — or (ln λ, Y-PSNR) — with the slope measured on the dev clips as the first guess and a
third of it as the flattest slope believed. A warm trial's outcome depends on where it started as well as on
λ, so a search whose warm trials stall — the two nearest trials disagree on which way λ moves the result, or
move it far more than a change of λ that small does on any settled curve, or the secant asks for a λ already
tried warm — runs its next trial cold, the full schedule from the fit, at
the λ that the cold trials alone point to. The search stops within ``tolerance`` of the target, after
``max_trials``, or when the next trial would repeat a cold one; the trial nearest the target is written, and
every trial is in the report, which names the side (``beyond``) when every trial missed the target on the
same one.
"""

from __future__ import annotations

import copy
import glob
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vcm import progress
from vcm.codec import nerv_stream, stage_state
from vcm.codec.rd import RDOptions, rd_steps
from vcm.codec.stage import StageResult
from vcm.codec.stage_state import StageCheckpoint
from vcm.errors import VcmError
from vcm.fsutil import output_lock

# d ln(bytes) / d ln λ and d Y-PSNR / d ln λ of vcm's HiNeRV curves (carphone, λ 0.3 → 20: rate ÷ 4.3,
# Y-PSNR −6.8 dB): the first step's guesses; later steps use the measured secant.
RATE_SLOPE = -0.35
PSNR_SLOPE = -1.6
MAX_STEP = math.log(30.0)  # one trial moves λ by at most ×/÷ 30
SAME_LAMBDA = 0.01  # λs within 1 % (in ln λ) are the same trial again
# A secant this many times steeper than the first guess joins trials on two curves, not one: λ 4.30 → 27,901 B
# and λ 4.36 → 17,506 B (bikes 640×272, 16 frames, --rd-steps 40), warm trials whose starts had not settled.
STEEPEST = 10


@dataclass(frozen=True)
class Target:
    """What the search aims at: ``kbps`` or ``psnr_y`` (dB), within ``tolerance`` (relative for a rate,
    dB for a quality)."""

    kbps: float | None = None
    psnr_y: float | None = None
    tolerance: float | None = None  # default: 3 % of the rate, 0.1 dB of quality
    max_trials: int = 6
    warm_fraction: float = 0.5

    def check(self) -> None:
        if (self.kbps is None) == (self.psnr_y is None):
            raise VcmError("give one target: --target-kbps or --target-psnr")
        if self.kbps is not None and not (self.kbps > 0 and math.isfinite(self.kbps)):
            raise VcmError(f"--target-kbps must be a positive number, got {self.kbps}")
        if self.psnr_y is not None and not (0 < self.psnr_y < 100):
            raise VcmError(f"--target-psnr must be in (0, 100) dB, got {self.psnr_y}")
        if self.max_trials < 1 or not 0 < self.warm_fraction <= 1:
            raise VcmError("max_trials must be at least 1 and warm_fraction in (0, 1]")

    @property
    def by_rate(self) -> bool:
        return self.kbps is not None

    def tol(self) -> float:
        return self.tolerance if self.tolerance is not None else (0.03 if self.by_rate else 0.1)

    def miss(self, value: float, goal: float) -> float:
        return _miss(value, goal, self.by_rate)

    def hit(self, value: float, goal: float) -> bool:
        return abs(value / goal - 1) <= self.tol() if self.by_rate else abs(value - goal) <= self.tol()


@dataclass
class _Trial:
    lam: float
    steps: int
    value: float  # bytes, or Y-PSNR dB
    stream: nerv_stream.NervStream
    result: StageResult
    model: torch.nn.Module
    cold: bool = False  # the full schedule from the fit (not warm from an earlier trial)


def target_bytes(kbps: float, fps: float, frames: int) -> float:
    """The file size of ``frames`` frames at ``kbps`` (1 kbit = 1000 bits) and ``fps``."""
    return kbps * 1000 / 8 * frames / fps


def smallest_stream_bytes(prep) -> int:
    """Bytes of the smallest stream the run's network can become: every weight rounded to zero, so that
    only the header, the step codes and each tensor's record are left (no λ goes below it)."""
    from vcm.codec.compress import stream_of
    from vcm.codec.rd import coded_tensors
    from vcm.entropy_models.learned import RateDistortionModel

    model = prep.fresh_model()
    tensors = [replace(t, symbols=np.zeros_like(t.symbols)) for t in coded_tensors(model, RateDistortionModel(model))]
    return len(nerv_stream.encode(stream_of(prep, model, tensors, "rd")).data)


def float32_bytes(prep) -> int:
    """Bytes of the run's network as 32-bit floats, every parameter exact: a rate target above it asks a
    stream of this network for more than all it holds."""
    return 4 * sum(p.numel() for p in prep.fresh_model().parameters())


def _psnr_y(prep, stream: nerv_stream.NervStream) -> float:
    from vcm.nerv.train import reconstruct
    from vcm.quality import summarize

    frames = reconstruct(stream.build_model(), prep.video.num_frames, torch.device("cpu"))
    return float(summarize(prep.video.frames_u8, frames)["psnr_y"])


def _measured_slope(trials: list[_Trial], goal: float, target: Target) -> float | None:
    """d miss / d ln λ through the two trials nearest the goal; None with fewer than two λs."""
    near = sorted(trials, key=lambda t: abs(target.miss(t.value, goal)))
    if len(near) < 2 or near[1].lam == near[0].lam:
        return None
    a, b = near[0], near[1]
    return (target.miss(a.value, goal) - target.miss(b.value, goal)) / (math.log(a.lam) - math.log(b.lam))


def next_lambda(trials: list[_Trial], goal: float, target: Target) -> float:
    """λ of the next trial: secant through the two trials nearest the goal (the first-guess slope when
    there is one trial or the two disagree on the direction)."""
    a = min(trials, key=lambda t: abs(target.miss(t.value, goal)))
    slope = RATE_SLOPE if target.by_rate else PSNR_SLOPE
    measured = _measured_slope(trials, goal, target)
    if measured is not None and measured < 0:  # rate and quality fall as λ grows; a noisy pair may say otherwise
        # at least a third of the first guess: two trials a few % apart in λ and in rate give a secant that is
        # mostly noise (carphone at QP 51's rate: −0.03 from λ 9.9 and 12.1, and the next trial jumped to λ 43)
        slope = min(measured, slope / 3)
    step = -target.miss(a.value, goal) / slope
    return a.lam * math.exp(max(-MAX_STEP, min(MAX_STEP, step)))


def next_trial(trials: list[_Trial], goal: float, target: Target) -> tuple[float, bool] | None:
    """(λ, cold) of the next trial, or None when it would repeat a cold trial. Warm unless the warm
    trials stalled: the two nearest the goal disagree on the direction (measured slope ≥ 0) or lie on
    two curves (a slope over ``STEEPEST`` times the first guess), or ``next_lambda`` asks for a λ
    already tried warm. A cold trial's λ comes from the cold trials alone:
    warm trials lie on curves of their own (on bikes 640 a warm trial at λ 4.9 kept 7,141 B where a
    cold one at λ 4.1 came out at 5,976 B)."""
    lam = next_lambda(trials, goal, target)
    measured = _measured_slope(trials, goal, target)
    stalled = measured is not None and not _steepest(target.by_rate) <= measured < 0
    if not stalled and not any(not t.cold and _same(t.lam, lam) for t in trials):
        return lam, False
    lam = next_lambda([t for t in trials if t.cold], goal, target)
    if any(t.cold and _same(t.lam, lam) for t in trials):
        return None
    return lam, True


def _miss(value: float, goal: float, by_rate: bool) -> float:
    """Signed distance from the goal on the search's own scale (ln bytes, or dB)."""
    return math.log(value / goal) if by_rate else value - goal


def _steepest(by_rate: bool) -> float:
    """The steepest d miss / d ln λ believed of one curve: ``STEEPEST`` times the first guess."""
    return STEEPEST * (RATE_SLOPE if by_rate else PSNR_SLOPE)


def beyond(trials: list[_Trial], goal: float, target: Target) -> str | None:
    """``"above"`` or ``"below"`` when no trial hit and every one came out on that side of the goal (more
    bytes or a higher quality than asked: ``"above"``), so that the goal may lie beyond what the network
    reaches within the λs tried; None otherwise."""
    if any(target.hit(t.value, goal) for t in trials):
        return None
    if all(t.value > goal for t in trials):
        return "above"
    if all(t.value < goal for t in trials):
        return "below"
    return None


def _same(a: float, b: float) -> bool:
    return abs(math.log(a / b)) < SAME_LAMBDA


class _KeptTrials:
    """The trials of a search that writes ``out``, kept beside it until it is written: each finished
    trial's network, quantizers, stream and result (``<out>.trial<k>.pt``), and the trial in progress as
    any stage keeps it (``<out>.partial.pt``, :mod:`vcm.codec.stage_state`). The same search run again
    reuses a kept trial whose key (the fit, where the trial started, its options, …) is its own, and
    continues the stopped one: the same trials, the same stream."""

    def __init__(self, prep, out: Path, device):
        self.prep, self.out, self.device = prep, out, device

    def key(self, o: RDOptions, model: torch.nn.Module, init: dict | None, cold: bool) -> str:
        from vcm.codec.compress import stage_key

        return stage_key(self.prep, o, self.device, *(() if cold else (model, init)))

    def _record(self, k: int, key: str) -> StageCheckpoint:
        return StageCheckpoint(self.out.with_name(f"{self.out.name}.trial{k}.pt"), key)

    def partial(self, key: str) -> StageCheckpoint:
        return StageCheckpoint(stage_state.partial_path(self.out), key)

    def load(self, k: int, key: str, model: torch.nn.Module) -> tuple[nerv_stream.NervStream, StageResult, float] | None:
        """Trial ``k`` as kept (its network loaded into ``model``), or None."""
        rec = self._record(k, key).load()
        if rec is None:
            return None
        model.load_state_dict(rec["model"])
        stream = nerv_stream.decode(rec["stream"].numpy().tobytes())
        result = StageResult(rec["report"], rec["estimate_bits"], rec["history"], rec["quantizers"])
        return stream, result, float(rec["value"])

    def save(self, k: int, key: str, trial: "_Trial") -> None:
        data = nerv_stream.encode(trial.stream).data
        self._record(k, key).save({
            "model": trial.model.state_dict(), "stream": torch.frombuffer(bytearray(data), dtype=torch.uint8),
            "report": trial.result.report, "estimate_bits": trial.result.estimate_bits,
            "history": trial.result.history, "quantizers": trial.result.quantizers, "value": trial.value})

    def discard(self) -> None:
        for path in self.out.parent.glob(glob.escape(self.out.name) + ".trial*.pt"):
            path.unlink(missing_ok=True)


def search(prep, target: Target, opts: RDOptions, device, out: Path | None = None,
           should_stop: Callable[[int], bool] | None = None) -> tuple[nerv_stream.NervStream, StageResult]:
    """Trials until one lands within the tolerance → (the nearest trial's stream, its result, whose report
    adds ``rate_control``: target, achieved, and every trial's λ, steps and result). ``out``: the stream
    the search is for, beside which its trials are kept until it is written (``_KeptTrials``), so that
    an interrupted search (Ctrl-C, or ``should_stop(step)`` of a trial returning True) run again goes on
    where it stopped."""
    from vcm.codec.compress import optimise
    from vcm.nerv.train import load_quantizers

    target.check()
    v = prep.config["video"]
    goal = target_bytes(target.kbps, v["fps"], v["num_frames"]) if target.by_rate else target.psnr_y
    if target.by_rate and goal < (least := smallest_stream_bytes(prep)):
        shown = f"{goal:,.0f}" if goal >= 10 else f"{goal:.2g}"
        raise VcmError(f"--target-kbps {target.kbps:g} is {shown} bytes for these {v['num_frames']} frames; "
                       f"this network's smallest stream (every weight zero: header, step codes, records) is {least:,} "
                       f"bytes, {least * 8 * v['fps'] / v['num_frames'] / 1000:.3g} kbps; a smaller network "
                       f"(vcm fit --width-scale 0.5, or --params) goes lower")
    if target.by_rate and goal > (most := float32_bytes(prep)):
        raise VcmError(f"--target-kbps {target.kbps:g} is {goal:,.0f} bytes for these {v['num_frames']} frames, more "
                       f"than this network's every parameter as a 32-bit float ({most:,} bytes, "
                       f"{most * 8 * v['fps'] / v['num_frames'] / 1000:,.1f} kbps); a larger network "
                       f"(vcm fit --params) reaches higher rates")
    fit_quantizers = load_quantizers(prep.run_dir)  # a rate-aware fit's own; None for a plain fit

    def full(lam: float) -> int:  # a trial from the fit: none at a rate-aware fit's own λ, a whole stage elsewhere
        return rd_steps(replace(opts, lam=lam), prep.fit_cfg, prep.video.num_frames, fit_quantizers is not None)

    warm = max(1, round(target.warm_fraction * rd_steps(opts, prep.fit_cfg, prep.video.num_frames, False)))
    trials: list[_Trial] = []
    lam, cold = opts.lam, True
    kept = _KeptTrials(prep, out, device) if out is not None else None
    for k in range(target.max_trials):
        if cold:  # the full schedule from the fit
            model, init, steps = prep.fresh_model(), fit_quantizers, full(lam)
        else:  # warm, from the trial nearest the target
            start = min(trials, key=lambda t: abs(target.miss(t.value, goal)))
            model, init, steps = copy.deepcopy(start.model), start.result.quantizers, warm
        o = replace(opts, lam=lam, steps=steps, epochs=None)
        key = kept.key(o, model, init, cold) if kept is not None else None
        earlier = kept.load(k, key, model) if kept is not None else None
        if earlier is not None:
            stream, result, value = earlier
        else:
            stream, result = optimise(prep, o, device, model=model, init_quantizers=init,
                                      checkpoint=kept.partial(key) if kept is not None else None, should_stop=should_stop)
            value = len(nerv_stream.encode(stream).data) if target.by_rate else _psnr_y(prep, stream)
        trials.append(_Trial(lam, steps, value, stream, result, model, cold))
        if kept is not None and earlier is None:
            kept.save(k, key, trials[-1])
            kept.partial(key).discard()
        shown = (f"{value:,.0f} bytes ({value / goal - 1:+.1%} from {goal:,.0f})" if target.by_rate
                 else f"Y-PSNR {value:.2f} dB ({value - goal:+.2f} dB)")
        progress.log(f"rate control trial {k + 1}: λ = {lam:.4g}, {o.steps} steps from "
                     f"{'the fit' if cold else 'the nearest trial'} → {shown}")
        if target.hit(value, goal) or k == target.max_trials - 1:
            break
        planned = next_trial(trials, goal, target)
        if planned is None:
            progress.log("rate control: the next trial would repeat one; keeping the nearest")
            break
        lam, cold = planned
    best = min(trials, key=lambda t: abs(target.miss(t.value, goal)))
    control = {
        "target": {"kbps": target.kbps} if target.by_rate else {"psnr_y": target.psnr_y},
        "goal": goal, "tolerance": target.tol(), "hit": target.hit(best.value, goal), "lambda": best.lam,
        "beyond": beyond(trials, goal, target),
        "trials": [{"lambda": t.lam, "steps": t.steps, "start": "fit" if t.cold else "warm",
                    ("bytes" if target.by_rate else "psnr_y"): t.value} for t in trials],
    }
    return best.stream, replace(best.result, report={**best.result.report, "rate_control": control, "lambda": best.lam})


# A file this far from the training's estimate comes from a stage too short for its λ (8 frames of carphone, one
# fit, λ 10: 60 rate–distortion steps wrote 4,974 bytes at -76 % of their estimate, 360 steps 717 bytes at -3 %).
# Settled streams of the dev clips come in 0.5–6.4 % under it in format version 5; version 6's wave context takes
# up to 6.2 % more off than the row buckets training estimates with (the seeds' streams re-encoded: -1.8 to -10.4 %).
FAR_FROM_ESTIMATE = 0.15


def unsettled(report: dict) -> bool:
    """Whether a written stream's report (or a CTC row) says its stage ended before its entropy models caught
    up with its quantization steps: the file's size more than :data:`FAR_FROM_ESTIMATE` from the estimate."""
    estimate = report.get("estimate_bytes")  # both a stream's report and a CTC row hold it beside the bytes
    return bool(estimate) and abs(report["bytes"] / estimate - 1) > FAR_FROM_ESTIMATE


def achieved(report: dict) -> dict:
    """``{target, achieved, error, error_text, unit, beyond, unsettled}`` of a written stream's report or a CTC
    row (error: relative for a rate, dB for a quality, and as shown: ``+2.0 %``, ``-0.05 dB``; beyond:
    ``rate_control``'s ``beyond``, None in reports written before it; unsettled: :func:`unsettled`)."""
    rc = report["rate_control"]
    if "kbps" in rc["target"]:
        t = rc["target"]["kbps"]
        error = report["kbps"] / t - 1
        out = {"target": t, "achieved": report["kbps"], "error": error, "error_text": f"{100 * error:+.1f} %", "unit": "kbps"}
    else:
        t = rc["target"]["psnr_y"]
        error = report["psnr_y"] - t
        out = {"target": t, "achieved": report["psnr_y"], "error": error, "error_text": f"{error:+.2f} dB", "unit": "dB"}
    return {**out, "beyond": rc.get("beyond"), "unsettled": unsettled(report)}


_BEYOND = {  # (unit, side) → what every trial gave, and what reaches further ({smaller} etc.: see _SAY)
    ("kbps", "above"): ("more bytes", "a smaller network ({smaller}) reaches lower rates"),
    ("kbps", "below"): ("fewer bytes", "a larger network ({larger}) reaches higher rates"),
    ("dB", "above"): ("a higher Y-PSNR", "a smaller network ({smaller}) reaches lower ones in fewer bytes"),
    ("dB", "below"): ("a lower Y-PSNR", "a larger network ({larger}) or a longer fit ({longer}) reaches higher ones"),
}
# How a user asks for it: on vcm fit's command line, or in a CTC config's fit section.
_SAY = {"cli": {"smaller": "vcm fit --width-scale 0.5, or --params", "larger": "vcm fit --params", "longer": "--steps",
                "stage": "--rd-steps"},
        "config": {"smaller": "width_scale: 0.5, or params, in the fit's section", "larger": "params in the fit's section",
                   "longer": "steps", "stage": "rd_steps in the point"}}


def beyond_hint(a: dict, lam: float, where: str = "cli") -> str:
    """One line for a search whose every trial missed on the same side (``a``: from ``achieved``; ``lam``: the
    written trial's λ; ``where``: "cli" or "config", how the remedy is named), or '' when the trials bracket
    the target or one hit it."""
    if not a["beyond"]:
        return ""
    gave, reach = _BEYOND[(a["unit"], a["beyond"])]
    if a.get("unsettled") and (a["unit"], a["beyond"]) == ("kbps", "above"):
        # too few steps for the quantization steps to grow: a smaller network was the wrong advice
        reach = ("its stage ended before its rate settled (the file is far from its estimate): more steps "
                 "({stage}) come first; " + reach)
    return (f"target not reached: every trial gave {gave} than asked (the nearest, λ {lam:.4g}, is written); "
            f"{reach.format(**_SAY[where])}")


def missed_hint(a: dict, control: dict, where: str = "cli") -> str:
    """One line for a search whose trials bracket the target without one landing within the tolerance (``a``:
    from ``achieved``; ``control``: the report's ``rate_control``; ``where`` as for :func:`beyond_hint`), naming
    the two λ the target lies between (and, where their trials differ far more than λ explains — or two trials at
    the written λ, one warm and one from the fit, lie on either side, or the written stream is unsettled — that
    more steps come first); '' when a trial hit it, when every trial missed on one side (:func:`beyond_hint` says
    that), or for reports written before ``hit`` was recorded."""
    if a["beyond"] or control.get("hit", True):
        return ""
    key = "bytes" if a["unit"] == "kbps" else "psnr_y"
    goal, trials = control["goal"], [t for t in control["trials"] if t.get(key) is not None]
    tol = f"±{100 * control['tolerance']:g} %" if a["unit"] == "kbps" else f"±{control['tolerance']:g} dB"
    text = f"target missed: no trial of {len(trials)} came within {tol} (the nearest, λ {control['lambda']:.4g}, is written)"
    by_rate = a["unit"] == "kbps"
    # the written trial: the nearest of those at its λ (a warm and a cold trial may share one)
    written = min((t for t in trials if t["lambda"] == control["lambda"]),
                  key=lambda t: abs(_miss(t[key], goal, by_rate)), default=None)
    if written is not None:  # and the trial of closest λ that missed on the other side
        side = written[key] >= goal
        other = [t for t in trials if (t[key] >= goal) != side]
        if other:
            across = min(other, key=lambda t: abs(math.log(t["lambda"] / control["lambda"])))
            mine, theirs = written[key], across[key]
            apart = f"{100 * abs(mine / theirs - 1):.0f} %" if by_rate else f"{abs(mine - theirs):.2f} dB"
            unsettled = (f"their stages ended before their results settled, and more steps "
                         f"({_SAY[where]['stage']}) come first")
            run = math.log(control["lambda"] / across["lambda"])
            lo, hi = sorted((control["lambda"], across["lambda"]))
            if _same(control["lambda"], across["lambda"]):
                text += (f"; two trials at λ {control['lambda']:.4g} came out {apart} apart, on either side of it: "
                         f"{unsettled}")
            elif (_miss(mine, goal, by_rate) - _miss(theirs, goal, by_rate)) / run < _steepest(by_rate):
                text += (f"; it lies between λ {lo:.4g} and {hi:.4g}, whose trials came out {apart} apart, far more "
                         f"than so small a change of λ moves a settled stage: {unsettled}")
            elif a.get("unsettled"):  # no λ between them helps a stage too short to settle
                text += (f"; it lies between λ {lo:.4g} and {hi:.4g}, but the written stage ended before its rate "
                         f"settled (its file is far from its estimate): more steps ({_SAY[where]['stage']}) come first")
            else:
                ask = "--lambda" if where == "cli" else "a lambda point"
                text += (f"; it lies between λ {lo:.4g} and {hi:.4g}: a stage at a λ between them ({ask}) may land "
                         f"nearer")
    return text


def compress_to_target(run_dir: Path, out: Path | None, target: Target, opts: RDOptions, device,
                       source: Path | None = None, should_stop: Callable[[int], bool] | None = None,
                       fps: float | None = None, guess_given: bool = True) -> dict:
    """The rate–distortion method at the λ that meets ``target``; ``opts.lam`` is the first guess, unless
    ``guess_given`` is False and the fit is rate-aware: then its own λ, whose first trial codes the fit as trained
    (a default of 1 trained a full stage away from it). Writes ``out`` and ``out.json``; returns the report.
    Interrupted, the same call again goes on from the trials it had run and the one it had begun (``search``).
    ``fps``: as :func:`vcm.codec.compress.prepare` takes it."""
    from vcm.codec.compress import check_out, default_out, prepare, publish

    opts.check()
    target.check()
    prep = prepare(run_dir, source, fps)
    if not guess_given and prep.fit_cfg.rate_lambda > 0:  # a rate-aware fit (its config says; nothing more is read)
        opts = replace(opts, lam=prep.fit_cfg.rate_lambda)
    start = time.time()
    if out is None:
        what = (f"k{target.kbps:g}" if target.by_rate else f"q{target.psnr_y:g}").replace(".", "p") + opts.suffix()
        plain = default_out(prep, opts)
        out = plain.with_name(plain.name.replace(opts.label(), what))
    out = check_out(out, prep)
    with output_lock(out):
        stream, result = search(prep, target, opts, device, out=out, should_stop=should_stop)
        report = publish(prep, out, stream, result, start, device)
        _KeptTrials(prep, out, device).discard()
    return report
