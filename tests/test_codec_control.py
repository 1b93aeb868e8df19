"""The codec on any clip: schedules in steps, a time budget, rate control and the byte breakdown."""

import json
import math

import numpy as np
import pytest
import torch

from tests.conftest import tiny_video, run_main
from vcm.codec.compress import RDOptions, compress_many, decode_file, prepare
from vcm.codec.rate_control import Target, _Trial, beyond, beyond_hint, next_lambda, next_trial, smallest_stream_bytes, target_bytes
from vcm.errors import VcmError
from vcm.nerv.budget import parse_duration, steps_for_budget
from vcm.nerv.config import TrainConfig
from vcm.nerv.model import NervShape
from vcm.nerv.train import CHECKPOINT, fit

CPU = torch.device("cpu")


def tiny_nerv():
    return NervShape(fc_dim=8, stem_dims=(24,), lower_width=6, embed_levels=8).config(24, 32)


# --- schedules in steps ------------------------------------------------------------------------

@pytest.mark.parametrize("frames", [4, 10])
def test_the_same_steps_on_a_short_and_a_long_clip(tmp_path, frames):
    """--steps is the schedule's length whatever the clip's length (a partial last epoch included), for
    the fit and for the rate–distortion stage."""
    video = tiny_video(tmp_path, t=frames)
    result = fit(video, tiny_nerv(), TrainConfig(steps=7, batch=2, lr=3e-3), tmp_path / "run", CPU)
    assert result.metrics["steps"] == 7
    assert torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)["step"] == 7
    assert result.metrics["epochs"] == math.ceil(7 / math.ceil(frames / 2)) == len(result.metrics["history"])
    (report,) = compress_many(tmp_path / "run", [RDOptions(lam=1.0, steps=5)], CPU, outs=[tmp_path / "s.nerv"])
    assert report["rd_steps"] == 5


def test_a_fit_carries_its_rate_distortion_schedule_and_flags_win_over_it(tmp_path):
    """A preset's rd_steps / rd_step_lr / rd_noise_fraction / rd_lr_scale are recorded with the fit and become
    `vcm compress --lambda`'s defaults (the demo's codec is the product's default); steps, a noise share or an lr
    scale given to compress win."""
    video = tiny_video(tmp_path, t=4)
    fit(video, tiny_nerv(), TrainConfig(steps=6, batch=2, lr=3e-3, rd_steps=3, rd_step_lr=0.1, rd_noise_fraction=0.3,
                                    rd_lr_scale=0.7),
        tmp_path / "run", CPU)
    told_opts = RDOptions(lam=1.0, steps=2, noise_fraction=1.0, lr_scale=0.3)
    own, told = compress_many(tmp_path / "run", [RDOptions(lam=1.0), told_opts], CPU,
                              outs=[tmp_path / "own.nerv", tmp_path / "told.nerv"])
    assert own["rd_steps"] == 3 and told["rd_steps"] == 2 and own["step_lr"] == told["step_lr"] == 0.1
    assert own["noise_fraction"] == 0.3 and told["noise_fraction"] == 1.0
    assert own["lr_scale"] == 0.7 and told["lr_scale"] == 0.3
    from vcm.nerv.model import NeRV

    assert own["decoder_kmac_per_pixel"] == round(NeRV.frame_macs(tiny_nerv()) / (24 * 32) / 1e3, 3) > 0


def test_epochs_asked_for_replace_a_presets_steps_and_steps_asked_for_run_in_full():
    from vcm.nerv.run import plan

    _, preset = plan("hinerv-demo")
    assert preset.steps == 900 and preset.rd_steps == 360 and preset.rd_step_lr == 0.1 and preset.rd_noise_fraction == 0.3
    from vcm.nerv.presets import list_presets

    others = {name: plan(name)[1].rd_lr_scale for name in list_presets() if name != "hinerv-demo"}
    assert preset.rd_lr_scale == 1.0 and others and set(others.values()) == {0.2}  # only vcm's codec was measured at 1.0
    chains = {name: plan(name)[1].rd_chain for name in list_presets() if name != "hinerv-demo"}
    assert preset.rd_chain and not any(chains.values())  # only vcm's codec chains its λ points (measured on the dev clips)
    _, by_epochs = plan("hinerv-demo", epochs=2)
    assert by_epochs.steps is None and by_epochs.total_steps(8) == 2 * 2
    _, both = plan("hinerv-demo", epochs=2, steps=5)
    assert both.total_steps(8) == 5
    assert preset.total_steps(32) == 400  # the preset's own steps stop at 50 passes over a 32-frame clip
    _, asked = plan("hinerv-demo", steps=900)
    assert asked.total_steps(32) == 900  # steps asked for run in full


def test_train_config_counts_steps():
    cfg = TrainConfig(epochs=3, batch=4)
    assert cfg.total_steps(120) == 90 and cfg.total_steps(48) == 36  # epochs: the clip's length decides
    stepped = TrainConfig(epochs=3, steps=900, batch=4)
    assert stepped.total_steps(120) == stepped.total_steps(48) == 900
    capped = TrainConfig(steps=900, max_epochs=75, batch=4)  # never more than 75 passes over the clip
    assert capped.total_steps(120) == capped.total_steps(48) == 900 and capped.total_steps(32) == 600
    assert stepped.total_epochs(48) == 75 and TrainConfig(steps=31, batch=4).total_epochs(120) == 2
    with pytest.raises(VcmError, match="steps"):
        TrainConfig(steps=0).check()
    with pytest.raises(VcmError, match="rd_noise_fraction"):
        TrainConfig(rd_noise_fraction=1.5).check()
    with pytest.raises(VcmError, match="rd_lr_scale"):
        TrainConfig(rd_lr_scale=0).check()


@pytest.mark.parametrize("field, value, message", [
    ("lr", 0.0, r"lr must be in \(0, 10\], got 0.0"), ("lr", float("nan"), "lr must be a finite number, got nan"),
    ("lr", float("inf"), "lr must be a finite number, got inf"), ("rate_lambda", float("inf"), "rate_lambda must be a finite"),
    ("grad_clip", float("inf"), "grad_clip must be a finite"), ("betas", (0.9, float("nan")), "betas must be a finite"),
    ("batch", 0, "batch must be at least 1"), ("checkpoint_every", 0, "checkpoint_every must be at least 1"),
    ("mask_weight", -1.0, "mask_weight must be 0 or more"), ("warmup", 1.0, "warmup must be in \\[0, 1\\)"),
    ("rate_start", float("nan"), "rate_start must be a finite"), ("grid_lr_scale", 0.0, "grid_lr_scale must be above 0"),
    ("warmup_min_steps", -1, "warmup_min_steps must be 0 or more"),
    ("epochs", 10**20, "epochs must be from 1 to 1,000,000,000, got 100000000000000000000"),
    ("steps", 10**9 + 1, "steps must be from 1 to 1,000,000,000"), ("rd_steps", 10**12, "rd_steps must be from 1 to")])
def test_a_training_value_no_fit_can_use_is_named_alone(field, value, message):
    """`--lr 0` was answered with every rule at once ("lr must be > 0 and epochs, batch and
    checkpoint_every at least 1"), and a negative mask_weight (eq. 6's w) trained on; `--lr inf` and
    `--lambda inf` passed "above 0" and trained to NaN, exit code 0."""
    with pytest.raises(VcmError, match=message):
        TrainConfig(**{field: value}).check()


def test_a_schedule_no_run_can_finish_is_refused_before_anything_is_written(tmp_path):
    """`vcm fit --epochs 99999999999999999999` trained on at 8.8 dB for as long as it was left (its warm-up, a tenth
    of 10^20 steps, held the learning rate at nothing), and `--finetune-epochs 9999999999` fine-tuned without end.
    A fit's, a stage's or a fine-tune's schedule beyond 10^9 optimiser steps is refused in one line."""
    from vcm.codec.affine import CompressOptions
    from vcm.codec.compress import compress_run

    video = tiny_video(tmp_path, t=4)
    shape = NervShape(fc_dim=8, stem_dims=(16,), lower_width=4, embed_levels=8).config(24, 32)
    with pytest.raises(VcmError, match="600,000,000 epochs of 4 frames would be 1,200,000,000 optimiser steps"):
        fit(video, shape, TrainConfig(epochs=600_000_000, batch=2), tmp_path / "huge", CPU)
    assert not (tmp_path / "huge").exists()  # not even its config.json
    fit(video, shape, TrainConfig(epochs=1, batch=2), tmp_path / "run", CPU)
    with pytest.raises(VcmError, match="rate–distortion epochs of 4 frames would be 1,000,000,002 optimiser steps"):
        compress_many(tmp_path / "run", [RDOptions(lam=1.0, epochs=500_000_001)], CPU, outs=[tmp_path / "a.nerv"])
    with pytest.raises(VcmError, match="a rate–distortion stage would be"):
        RDOptions(lam=1.0, steps=10**10).check()
    with pytest.raises(VcmError, match="fine-tuning epochs of 4 frames would be 1,000,000,002 optimiser steps"):
        compress_run(tmp_path / "run", tmp_path / "p.nerv", CompressOptions(prune=0.2, finetune_epochs=500_000_001),
                     CPU)
    assert not list(tmp_path.glob("*.nerv*"))


@pytest.mark.parametrize("betas, message", [([1.5, 0.9], "betas must be two numbers in \\[0, 1\\)"),
                                            ([0.9, -0.1], "betas must be two numbers"),
                                            ([0.9], "'betas' must be a list of 2 values, got 1"),
                                            ([0.9, 0.99, 0.5], "'betas' must be a list of 2 values, got 3")])
def test_adams_betas_are_two_numbers_below_one(tmp_path, betas, message):
    """Out of range, Adam itself raised mid-setup (a traceback); a list of another length got past the
    schema. Both are refused before any frame is read, in one line naming the field."""
    with pytest.raises(VcmError, match=message):
        TrainConfig.from_dict({"betas": betas}).check()
    if betas == [1.5, 0.9]:  # the same through the command line and a preset file
        import yaml

        from tests.test_cli import assert_one_line_error
        from vcm.nerv.presets import preset_path

        preset = yaml.safe_load(preset_path("hinerv-demo").read_text())
        preset["train"]["betas"] = betas
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(preset))
        assert_one_line_error(run_main("fit", "sample:carphone", "--config", tmp_path / "bad.yaml", "--frames", "0:2",
                                       "--steps", "1", "--out", tmp_path / "run"), "betas must be two numbers")


def test_budgets_parse_and_become_steps():
    assert parse_duration("90") == parse_duration("90s") == parse_duration("1.5m") == 90
    assert parse_duration("2h") == 7200
    for bad in ("", "-5m", "0s", "5 minutes", "m"):
        with pytest.raises(VcmError, match="--budget"):
            parse_duration(bad)
    assert steps_for_budget(60, 0.25) == 240 and steps_for_budget(0.1, 5.0) == 1


@pytest.mark.slow
def test_fit_with_a_budget_records_the_steps_it_resolved(tmp_path):
    tiny_video(tmp_path, t=4)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("model: {arch: nerv, fc_dim: 8, stem_dims: [24], lower_width: 6, embed: '1.25_8'}\n"
                   "train: {epochs: 1, batch: 2, lr: 3.0e-3}\n")
    proc = run_main("fit", tmp_path / "Tiny_32x24_25.yuv", "--config", cfg, "--budget", "2s", "--out", tmp_path / "r",
                    "--json")
    assert proc.returncode == 0, proc.stderr
    steps = json.loads((tmp_path / "r" / "config.json").read_text())["train"]["steps"]
    assert steps >= 1 and json.loads(proc.stdout)["steps"] == steps
    assert f"--steps {steps}" in " ".join(proc.stderr.split())
    bad = run_main("fit", tmp_path / "Tiny_32x24_25.yuv", "--config", cfg, "--budget", "soon", "--out", tmp_path / "r2")
    assert bad.returncode != 0 and "--budget must be a positive duration" in bad.stderr and "Traceback" not in bad.stderr
    both = run_main("fit", tmp_path / "Tiny_32x24_25.yuv", "--budget", "5s", "--steps", "9", "--out", tmp_path / "r3")
    assert both.returncode != 0 and "drop --steps/--epochs" in both.stderr
    # a budget of more steps than any run finishes (--budget 99999h trained on, its config recording 2.3e9 steps)
    huge = run_main("fit", tmp_path / "Tiny_32x24_25.yuv", "--config", cfg, "--budget", "99999999h", "--out",
                    tmp_path / "r4")
    assert huge.returncode == 1 and "--budget 99999999h at " in huge.stderr and "more than 1,000,000,000" in huge.stderr
    assert not (tmp_path / "r4").exists()


def test_a_length_given_two_ways_is_refused(tmp_path):
    """`vcm fit --epochs 2 --steps 3` fitted 3 steps and `vcm compress --rd-epochs 2 --rd-steps 5` ran 5,
    each ignoring the other option without a word."""
    tiny_video(tmp_path, t=4)
    clip = tmp_path / "Tiny_32x24_25.yuv"
    fit = run_main("fit", clip, "--epochs", "2", "--steps", "3", "--out", tmp_path / "r")
    assert fit.returncode == 1 and "--steps and --epochs both set the fit's length" in fit.stderr
    assert "Traceback" not in fit.stderr and not (tmp_path / "r").exists()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"")  # refused before the run is read
    rd = run_main("compress", tmp_path / "run", "--lambda", "1", "--rd-epochs", "2", "--rd-steps", "5",
                  "--out", tmp_path / "s.nerv")
    assert rd.returncode == 1 and "--rd-steps and --rd-epochs both set" in rd.stderr and "Traceback" not in rd.stderr
    assert not (tmp_path / "s.nerv").exists()


@pytest.mark.parametrize("args, said", [
    # each was ignored without a word: the method that ran takes no such option
    (("--lambda", "1", "--bits", "8"), "--bits/--group-bits/--qat/--finetune-epochs belong to the paper pipeline"),
    (("--target-kbps", "9", "--qat"), "--bits/--group-bits/--qat/--finetune-epochs belong to the paper pipeline"),
    (("--prune", "0.4", "--rd-steps", "3"), "--rd-steps/--rd-epochs belong to the rate–distortion method"),
    (("--rd-epochs", "2",), "--rd-steps/--rd-epochs belong to the rate–distortion method"),
    (("--bits", "8", "--chain"), "--chain runs several --lambda one after another; rate control and the paper"),
    (("--lambda", "1", "--chain"), "--chain runs several --lambda one after another; one λ has no chain"),
    # every seed gave the same bytes
    (("--bits", "8", "--seed", "3"), "--seed 3: nothing in this compression is random"),
    (("--prune", "0.4", "--finetune-epochs", "0", "--seed", "0"), "--seed 0: nothing in this compression is random"),
])
def test_an_option_of_the_other_compression_method_is_refused(tmp_path, args, said):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"")  # refused before the run is read
    r = run_main("compress", tmp_path / "run", *args, "--out", tmp_path / "s.nerv")
    assert r.returncode == 1 and r.stderr.startswith(f"error: {said}") and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "s.nerv").exists()


def test_whether_a_compression_reads_its_seed_follows_the_steps_it_trains():
    """``draws_at_random`` (the seed refusals of vcm compress and a CTC fit's stage_seed) restates when a stage
    trains: ``rd_steps`` > 0 for the rate–distortion method, a fine-tune for the paper pipeline (as ``optimise`` runs
    one). Either rule changed alone would refuse a seed that is read, or let an unread one through."""
    from dataclasses import replace
    from itertools import product

    from vcm.codec.affine import CompressOptions, finetune_epochs
    from vcm.codec.rd import RDOptions, codes_fit_as_trained, rd_steps
    from vcm.nerv.config import TrainConfig

    for schedule in (TrainConfig(epochs=30, batch=4), TrainConfig(steps=900, max_epochs=50, batch=4, rd_steps=360)):
        lengths = ((None, None), (0, None), (5, None), (None, 0), (None, 2))
        for (quantizers, fit_lam), (steps, epochs) in product(((False, 0.0), (True, 1.0), (True, 4.0)), lengths):
            opts = RDOptions(lam=1.0, steps=steps, epochs=epochs)
            fitted = replace(schedule, rate_lambda=fit_lam)  # with quantizers: a rate-aware fit at λ 1 or 4
            own = codes_fit_as_trained(opts, fitted, quantizers)  # as vcm compress asks it
            assert own == (quantizers and fit_lam == 1.0)
            assert opts.draws_at_random(own) == (rd_steps(opts, fitted, 48, quantizers) > 0), (fitted, steps, epochs)
        for prune, qat, epochs in product((0.0, 0.4), (False, True), (None, 0, 3)):
            opts = CompressOptions(prune=prune, qat=qat, finetune_epochs=epochs)
            assert opts.draws_at_random() == (finetune_epochs(opts, schedule) > 0 and (prune > 0 or qat)), opts


# --- rate control ------------------------------------------------------------------------------

def _fake(lam: float, value: float, cold: bool = False) -> _Trial:
    return _Trial(lam, 1, value, None, {}, None, cold)


@pytest.mark.parametrize("exponent", [-0.2, -0.5, -1.0])
def test_the_lambda_search_converges_on_a_power_law_curve(exponent):
    """A codec whose size is c·λ^e (the first guess of the slope wrong by up to 3×): within 5 trials the
    search lands within 3 % of any target inside the curve's range."""
    size = lambda lam: 5000 * lam ** exponent  # noqa: E731
    target = Target(kbps=1.0)
    for goal in (800.0, 5000.0, 20000.0):
        trials, lam = [], 1.0
        for _ in range(5):
            trials.append(_fake(lam, size(lam)))
            if target.hit(trials[-1].value, goal):
                break
            lam = next_lambda(trials, goal, target)
        assert target.hit(trials[-1].value, goal), (exponent, goal, [(t.lam, t.value) for t in trials])


def test_a_stalled_warm_search_goes_back_to_the_fit_and_never_repeats_a_trial():
    """Measured on bikes 640 (goal 4,443 B): warm trials from a coarsened network came out smaller at a
    smaller λ, and the search then ran λ 3.89 three times over. Now: after a pair that disagrees on the
    direction the next trial is cold; a λ tried warm comes back cold; a λ tried cold is not run again."""
    target, goal = Target(kbps=1.0), 4443.0
    first = _fake(1.0, 7484.0, cold=True)
    assert next_trial([first], goal, target)[1] is False  # the search is on course: warm
    drifted = [first, _fake(4.433, 4245.0), _fake(3.931, 4215.0)]  # smaller λ, fewer bytes
    lam, cold = next_trial(drifted, goal, target)
    assert cold and lam == pytest.approx(next_lambda([first], goal, target))  # aimed by the cold trials alone
    again = drifted + [_fake(3.89, 4183.0)]  # a warm trial at the λ the secant of all trials asks for
    assert next_trial(again, goal, target) == (pytest.approx(lam), True)
    # a stall whose cold λ was already run cold: nothing new to try (a tight tolerance, a cold trial 0.2 % off)
    tight = Target(kbps=1.0, tolerance=0.001)
    assert next_trial([_fake(1.0, 1002.0, cold=True), _fake(2.0, 1010.0)], 1000.0, tight) is None
    # a search that works keeps going warm
    on_course = [first, _fake(4.433, 4245.0)]
    assert next_trial(on_course, goal, target)[1] is False


def test_warm_trials_on_two_curves_send_the_search_back_to_the_fit():
    """Measured on bikes 640×272 (16 frames, a 149-step fit, --target-kbps 300 --rd-steps 40: goal 24,000 B): a warm
    trial at λ 4.30 from λ 1's stage kept 27,901 B, and warm trials from it at λ 4.96, 4.48 and 4.36 all came out
    near 17,000 B. The secant between λ 4.30 and the nearest of them is ten and more times the first guess, and
    the search spent its last three trials narrowing λ towards 4.30 (written at +16 %, "between λ 4.304 and
    4.36"). Such a pair lies on two curves: the next trial is cold."""
    target, goal = Target(kbps=1.0), 24000.0
    trials = [_fake(1.0, 39999.0, cold=True), _fake(4.3035, 27901.0), _fake(7.9222, 14642.0)]
    assert next_trial(trials, goal, target)[1] is False  # ~3× the first guess: a curve, steeper than carphone's
    lam, cold = next_trial(trials + [_fake(4.9628, 16548.0)], goal, target)  # ~10× it
    assert cold and lam == pytest.approx(next_lambda(trials[:1], goal, target))
    quality = Target(psnr_y=30.0)  # the same on a quality target: 1 dB from a 2 % change of λ
    assert next_trial([_fake(1.0, 31.5, cold=True), _fake(2.0, 30.6), _fake(2.04, 29.6)], 30.0, quality)[1] is True


def test_a_nearly_flat_secant_does_not_throw_lambda_far():
    """Carphone at QP 51's rate (goal 4,354 B): trials at λ 9.9 and 12.1 gave 4,535 and 4,510 B, a secant of
    −0.03 that sent the next trial to λ 43 (2,078 B). The slope is held to a third of the first guess."""
    target, goal = Target(kbps=1.0), 4354.0
    trials = [_fake(1.0, 9725.0, cold=True), _fake(9.935, 4535.0), _fake(12.11, 4510.0, cold=True)]
    lam = next_lambda(trials, goal, target)
    assert 12.11 < lam < 20.0


def test_quality_targets_move_lambda_the_right_way():
    target = Target(psnr_y=30.0)
    assert next_lambda([_fake(1.0, 28.0)], 30.0, target) < 1.0  # too low a quality: smaller λ
    assert next_lambda([_fake(1.0, 33.0)], 30.0, target) > 1.0
    assert target.hit(30.05, 30.0) and not target.hit(30.2, 30.0)


def test_a_target_that_every_trial_missed_on_one_side_says_so():
    """A goal past every trial (e.g. a rate below what the network reaches) is named in the report, with
    what reaches further; trials on both sides of the goal, or a hit, name nothing."""
    target, goal = Target(kbps=1.0), 1000.0
    assert beyond([_fake(1.0, 4000.0, cold=True), _fake(30.0, 2500.0), _fake(900.0, 2400.0)], goal, target) == "above"
    assert beyond([_fake(1.0, 400.0, cold=True), _fake(0.03, 700.0)], goal, target) == "below"
    assert beyond([_fake(1.0, 1500.0, cold=True), _fake(3.0, 800.0)], goal, target) is None  # bracketed
    assert beyond([_fake(1.0, 1500.0, cold=True), _fake(3.0, 1010.0)], goal, target) is None  # the last one hit
    assert beyond([_fake(1.0, 28.0)], 30.0, Target(psnr_y=30.0)) == "below"
    hint = beyond_hint({"unit": "kbps", "beyond": "above"}, 900.0)
    assert hint.startswith("target not reached: every trial gave more bytes than asked") and "λ 900" in hint
    assert "smaller network (vcm fit --width-scale 0.5, or --params)" in hint
    assert "larger network" in beyond_hint({"unit": "dB", "beyond": "below"}, 0.5)
    assert beyond_hint({"unit": "kbps", "beyond": None}, 1.0) == ""
    # a stream far from its stage's estimate: the stage was too short for its quantization steps to grow (10 steps
    # on 16 frames of carphone wrote +1,417 % of a 20 kbps target at λ 2.4e7; 100 steps reached it)
    from vcm.codec.rate_control import achieved

    row = {"bytes": 20_000, "kbps": 300.0, "estimate_bytes": 35_000.0,
           "rate_control": {"target": {"kbps": 20.0}, "beyond": "above"}}
    hint = beyond_hint(achieved(row), 2.4e7)
    assert "its stage ended before its rate settled (the file is far from its estimate): more steps (--rd-steps) " \
           "come first; a smaller network" in hint, hint
    assert "rd_steps in the point" in beyond_hint(achieved(row), 2.4e7, "config")
    settled = beyond_hint(achieved({**row, "estimate_bytes": 20_500.0}), 2.4e7)
    assert "more steps" not in settled and "smaller network" in settled


def test_targets_are_checked():
    for bad in (Target(), Target(kbps=10, psnr_y=30), Target(kbps=-1), Target(psnr_y=0), Target(kbps=5, max_trials=0)):
        with pytest.raises(VcmError):
            bad.check()
    assert target_bytes(8.0, 25.0, 50) == 2000.0  # 8 kbit/s for 2 s


def test_target_kbps_lands_within_five_percent(tiny_run, tmp_path):
    """On a tiny clip: a target between the rates of λ = 5 and λ = 0.05 is met within ±5 % by the file
    written (its size is the rate), and the report lists the trials."""
    root, video = tiny_run
    low, high = compress_many(root / "run", [RDOptions(lam=5.0, steps=12), RDOptions(lam=0.05, steps=12)], CPU,
                              outs=[tmp_path / "a.nerv", tmp_path / "b.nerv"])
    goal = math.sqrt(low["kbps"] * high["kbps"])
    proc = run_main("compress", root / "run", "--target-kbps", f"{goal:.3f}", "--rd-steps", "12",
                    "--out", tmp_path / "t.nerv", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert abs(report["kbps"] / goal - 1) <= 0.05, report["rate_control"]
    assert report["bytes"] == (tmp_path / "t.nerv").stat().st_size
    assert report["rate_control"]["trials"][0]["steps"] == 12 and report["lambda"] == report["rate_control"]["lambda"]
    frames, _, _ = decode_file(tmp_path / "t.nerv", CPU)
    assert frames.shape == video.frames_u8.shape
    assert report["rate_control"]["beyond"] is None
    # a rate below the smallest stream the network can become: refused at once, no trial run
    least = smallest_stream_bytes(prepare(root / "run"))
    least_kbps = least * 8 * video.info.fps / video.num_frames / 1000
    assert 0 < least < low["bytes"]
    proc = run_main("compress", root / "run", "--target-kbps", f"{least_kbps * 0.9:.6f}", "--out", tmp_path / "no.nerv")
    assert proc.returncode == 1 and "smallest stream" in proc.stderr and f"{least:,} bytes" in proc.stderr
    assert "rate control trial" not in proc.stderr + proc.stdout and not (tmp_path / "no.nerv").exists()
    # a rate above the network's weights as 32-bit floats: refused at once (it ran every trial, minutes)
    proc = run_main("compress", root / "run", "--target-kbps", "1e9", "--out", tmp_path / "no.nerv")
    assert proc.returncode == 1 and "every parameter as a 32-bit float" in proc.stderr, proc.stderr[-2000:]
    assert "rate control trial" not in proc.stderr + proc.stdout and not (tmp_path / "no.nerv").exists()
    # a rate far below what the network reaches in 4 steps: the nearest trial is written and the report says why
    proc = run_main("compress", root / "run", "--target-kbps", f"{least_kbps * 1.05:.6f}", "--rd-steps", "4",
                    "--out", tmp_path / "far.nerv", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    far = json.loads(proc.stdout)
    assert far["rate_control"]["beyond"] == "above" and not far["rate_control"]["hit"]
    from vcm.cli.compress import _report_rows

    assert any(text.startswith("target not reached: every trial gave more bytes") for _, text in _report_rows(far))
    twice = run_main("compress", root / "run", "--lambda", "1", "--lambda", "1", "--out", tmp_path / "two")
    assert twice.returncode == 1 and "--lambda 1 is given twice" in twice.stderr  # both streams went to one file
    refused = run_main("compress", root / "run", "--target-kbps", "10", "--bits", "6", "--out", tmp_path / "u.nerv")
    assert refused.returncode != 0 and "paper pipeline" in refused.stderr


# --- where the bytes go ------------------------------------------------------------------------

def test_breakdown_sums_to_the_file_and_names_the_parts(tiny_run, tmp_path):
    root, _ = tiny_run
    (report,) = compress_many(root / "run", [RDOptions(lam=0.5, steps=6)], CPU, outs=[tmp_path / "b.nerv"])
    rows = {r["part"]: r for r in report["breakdown"]}
    assert set(rows) == {"weights", "biases/norms", "side information", "header"}
    assert sum(r["bytes"] for r in rows.values()) == pytest.approx(report["bytes"], abs=0.5)
    assert rows["weights"]["params"] + rows["biases/norms"]["params"] == report["params"]
    assert rows["weights"]["bits_per_param"] == pytest.approx(8 * rows["weights"]["bytes"] / rows["weights"]["params"], rel=1e-2)
    assert rows["header"]["bytes"] > 0 and rows["side information"]["bits_per_param"] is None


def test_the_paper_pipelines_streams_say_where_their_bytes_go_too(tiny_run, tmp_path):
    """`vcm compress --prune/--bits` (the Table 1 baseline) reported its size alone, so a user could not see what
    each part of it cost: its report and `vcm info` now break it down as the rd method's do, each part's bytes the
    coded words of its tensors, each under its own table (checked against coding them again here)."""
    from vcm.codec import nerv_stream
    from vcm.codec.affine import CompressOptions
    from vcm.codec.compress import compress_run
    from vcm.codec.entropy import encode_array
    from vcm.bitstream.bits import Writer

    root, _ = tiny_run
    out = tmp_path / "p.nerv"
    report = compress_run(root / "run", out, CompressOptions(prune=0.3, bits=6, group_bits={"head": 8},
                                                             finetune_epochs=0), CPU)
    rows = {r["part"]: r for r in report["breakdown"]}
    assert list(rows) == ["weights", "biases/norms", "side information", "header"]
    assert sum(r["bytes"] for r in rows.values()) == pytest.approx(out.stat().st_size, abs=0.01)
    assert rows["weights"]["params"] + rows["biases/norms"]["params"] == report["params"]
    stream = nerv_stream.decode(out.read_bytes())
    words = {"weights": 0, "biases/norms": 0}
    for q in stream.tensors:  # the stream as the paper pipeline writes it: weights one by one, the biases together
        if not q.name.endswith(".bias"):
            words["weights"] += encode_array(q.centered, Writer())
    words["biases/norms"] = encode_array(np.concatenate([q.centered.ravel() for q in stream.tensors
                                                         if q.name.endswith(".bias")]), Writer())
    assert {part: rows[part]["bytes"] for part in words} == words and rows["side information"]["bytes"] > 0
    shown = json.loads(run_main("info", out, "--json").stdout)  # the file alone says the same
    assert shown["breakdown"] == report["breakdown"]
    said = " ".join(run_main("info", out).stdout.split())  # and shows it as vcm compress does (it rounded to whole %)
    weights = rows["weights"]
    assert f"weights │ {weights['bytes']:,.0f} bytes ({100 * weights['share']:.1f} %, " in said, said


def test_hinerv_breakdown_separates_base_and_local_grids(tmp_path):
    from vcm.nerv.hinerv import HinervShape, solve_for_params

    video = tiny_video(tmp_path, t=4)
    shape = HinervShape(grid_channels=4, grid_levels=1, channels=(8, 6), depths=(1, 0), min_grid=4)
    fit(video, solve_for_params(shape, 24, 32, 4, 3000), TrainConfig(steps=2, batch=2, lr=3e-3), tmp_path / "run", CPU)
    (report,) = compress_many(tmp_path / "run", [RDOptions(lam=1.0, steps=2)], CPU, outs=[tmp_path / "h.nerv"])
    parts = [r["part"] for r in report["breakdown"]]
    assert {"base grids", "local grids", "weights", "biases/norms"} <= set(parts)
    assert sum(r["bytes"] for r in report["breakdown"]) == pytest.approx(report["bytes"], abs=0.5)
    assert np.isfinite([r["bits_per_param"] for r in report["breakdown"] if r["params"]]).all()


def test_a_key_written_twice_in_a_config_is_refused_with_its_line_and_a_merge_may_still_override(tmp_path):
    """YAML keeps a mapping's last value for a key written twice, so a CTC config's second `codecs:` block (or a
    codec named twice) dropped the first's codecs without a word, and a preset's second `lr:` won unseen. Each is now
    refused, naming both lines; keys a merge brings (`<<: *anchor`) may still be overridden, as YAML means. A tab
    in the indentation is said as one, with its line, where PyYAML said "while scanning for the next token"."""
    (tmp_path / "two.yaml").write_text("sequences: [sample:carphone]\ncodecs: {hevc: {qps: [40]}}\n"
                                       "codecs: {vvc: {qps: [40]}}\n")
    (tmp_path / "same.yaml").write_text("sequences: [sample:carphone]\ncodecs:\n  hevc: {qps: [40]}\n"
                                        "  hevc: {qps: [30]}\n")
    (tmp_path / "fit.yaml").write_text("model: {arch: hinerv}\ntrain:\n  lr: 2e-3\n  steps: 10\n  lr: 2e-2\n")
    (tmp_path / "tab.yaml").write_text("sequences:\n\t- sample:carphone\ncodecs: {hevc: {qps: [40]}}\n")
    for args, said in ((("ctc", "run", "two.yaml"), "two.yaml line 3, column 1: the key 'codecs' is written twice in "
                                                      "one mapping (first on line 2); YAML would keep only the last"),
                       (("ctc", "run", "same.yaml"), "same.yaml line 4, column 3: the key 'hevc' is written twice"),
                       (("fit", "sample:carphone", "--config", "fit.yaml"), "fit.yaml line 5, column 3: the key 'lr'"),
                       (("ctc", "run", "tab.yaml"), "tab.yaml line 2, column 1: not valid YAML (a tab: YAML indents "
                                                      "with spaces only)")):
        r = run_main(*args, "--dry-run" if args[0] == "ctc" else "--steps", *([] if args[0] == "ctc" else ["1"]),
                     "--out", tmp_path / "out", cwd=tmp_path)
        assert r.returncode == 1 and r.stderr.startswith(f"error: {said}") and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "out").exists()
    (tmp_path / "merge.yaml").write_text("x-hevc: &h {qps: [40], preset: medium}\nsequences: [sample:carphone]\n"
                                         "codecs:\n  hevc: {<<: *h, qps: [30, 35]}\n")
    r = run_main("ctc", "run", "merge.yaml", "--dry-run", "--json", "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p["point"] for p in json.loads(r.stdout)["plan"]) == ["qp30", "qp35"]


def test_a_frame_span_in_a_config_is_a_span_however_it_starts(tmp_path):
    """YAML 1.1 reads `10:20` as a base-60 number: a sequence's `frames: 10:20` was the integer 620, refused as
    "got 620", while `frames: 0:20` was the span. Both are spans now; `017` is no longer octal 15."""
    from vcm.ctc.config import load as load_ctc
    from vcm.yamlfile import load_yaml

    (tmp_path / "ctc.yaml").write_text("sequences: [{path: sample:carphone, frames: 10:20}, {path: sample:bikes, "
                                       "name: b, frames: 0:20}]\ncodecs: {hevc: {qps: [40]}}\n")
    assert [e["frames"] for e in load_ctc(tmp_path / "ctc.yaml")["sequences"]] == ["10:20", "0:20"]
    r = run_main("ctc", "run", tmp_path / "ctc.yaml", "--dry-run", "--out", tmp_path / "o", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert load_yaml("a: 1:30:00\nb: 017\nc: 0x1f\nd: -.5e1\ne: 1_000") == {"a": "1:30:00", "b": "017", "c": 31,
                                                                                "d": -5.0, "e": 1000}


def test_numbers_with_an_exponent_in_a_config_file_are_numbers(tmp_path):
    """PyYAML (YAML 1.1) read `lr: 2e-3` and `lambda: 1e-1` as strings: a fit config was refused with "lr must
    be a number, got '2e-3'"; `1.0e30` likewise. They are numbers now; quoted ones stay strings."""
    from vcm.ctc.config import load as load_ctc
    from vcm.nerv.config import load_preset
    from vcm.yamlfile import load_yaml

    (tmp_path / "fit.yaml").write_text("model: {arch: hinerv}\ntrain: {lr: 2e-3, steps: 1e2, grid_lr_scale: 3E+0, batch: 2}\n")
    with pytest.raises(VcmError, match="steps must be an integer|'steps' must be an integer"):
        load_preset(str(tmp_path / "fit.yaml"))  # 1e2 is the float 100.0, not a step count
    (tmp_path / "fit.yaml").write_text("model: {arch: hinerv}\ntrain: {lr: 2e-3, steps: 100, grid_lr_scale: .5e1}\n")
    _, cfg = load_preset(str(tmp_path / "fit.yaml"))
    assert (cfg.lr, cfg.grid_lr_scale, cfg.steps) == (0.002, 5.0, 100)
    (tmp_path / "ctc.yaml").write_text("sequences: [{name: c, path: c.yuv}]\ncodecs:\n  hinerv:\n"
                                       "    fits: [{preset: hinerv-demo, points: [{lambda: 1e-1}, {lambda: 2.5e1}]}]\n")
    points = load_ctc(tmp_path / "ctc.yaml")["codecs"]["hinerv"]["fits"][0]["points"]
    assert [p["lambda"] for p in points] == [0.1, 25.0]
    assert load_yaml("a: 1.0e30\nb: '1e5'\nc: 1e\nd: 12\ne: .inf") == {"a": 1e30, "b": "1e5", "c": "1e", "d": 12, "e": float("inf")}


def test_vcm_compress_on_a_rate_aware_fit_reads_its_seed_and_first_guess_as_the_fit_needs(tmp_path):
    """On a fit trained at λ 2: ``--lambda 2 --seed 3`` trains nothing (refused, one line), ``--lambda 0.5`` trains
    a stage towards 0.5, and ``--target-kbps`` without ``--lambda`` starts its search from λ 2 as trained."""
    tiny_video(tmp_path, t=4)
    fit = run_main("fit", tmp_path / "Tiny_32x24_25.yuv", "--lambda", "2", "--steps", "4", "--params", "3k",
                   "--out", tmp_path / "run")
    assert fit.returncode == 0, fit.stderr[-500:]
    seeded = run_main("compress", tmp_path / "run", "--lambda", "2", "--seed", "3", "--out", tmp_path / "s.nerv")
    assert seeded.returncode == 1 and seeded.stderr.startswith("error: --seed 3: nothing in this compression is random")
    assert seeded.stderr.count("\n") == 1 and not (tmp_path / "s.nerv").exists()
    other = run_main("compress", tmp_path / "run", "--lambda", "0.5", "--json", "--out", tmp_path / "o.nerv")
    assert other.returncode == 0 and json.loads(other.stdout)["rd_steps"] == 2, other.stderr[-500:]
    own = run_main("compress", tmp_path / "run", "--lambda", "2", "--json", "--out", tmp_path / "own.nerv")
    kbps = json.loads(own.stdout)["kbps"]
    found = run_main("compress", tmp_path / "run", "--target-kbps", f"{kbps}", "--json", "--out", tmp_path / "t.nerv")
    assert found.returncode == 0, found.stderr[-500:]
    assert [t["lambda"] for t in json.loads(found.stdout)["rate_control"]["trials"]] == [2.0]
