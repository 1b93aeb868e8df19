import json
from pathlib import Path

import numpy as np
import re
import pytest
import torch

from vcm.errors import VcmError
from vcm.nerv.config import TrainConfig
from vcm.nerv.model import NervShape
from vcm.nerv.train import fit, load_run, reconstruct
from vcm.video.source import Video, VideoInfo
from tests.conftest import moving_frames, run_main

CPU = torch.device("cpu")


def make_video(frames: np.ndarray, name="synthetic") -> Video:
    t, _, h, w = frames.shape
    info = VideoInfo(path=Path(name), kind="images", name=name, width=w, height=h, fps=25.0, num_frames=t,
                     bit_depth=8, first_source_frame=0, sequence=None, is_ctc_clip=False)
    return Video(info=info, frames_u8=frames, source_frames=range(t))


TINY = NervShape(fc_dim=16, stem_dims=(64,), lower_width=8, embed_levels=16)


def test_short_fit_lowers_loss_and_raises_psnr(tmp_path):
    video = make_video(moving_frames(t=4, h=32, w=48))
    mcfg = TINY.config(32, 48)
    cfg = TrainConfig(epochs=30, batch=2, lr=3e-3, checkpoint_every=30)
    torch.manual_seed(0)
    from vcm.nerv.model import NeRV

    before = reconstruct(NeRV(mcfg), 4, CPU)
    from vcm.quality import psnr_rgb

    psnr_before = psnr_rgb(video.frames_u8, before).mean()
    result = fit(video, mcfg, cfg, tmp_path / "run", CPU)
    hist = result.metrics["history"]
    assert hist[-1]["loss"] < 0.6 * hist[0]["loss"]
    assert result.metrics["psnr"] > psnr_before + 5
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(saved["per_frame"]["psnr"]) == 4 and saved["ms_ssim"] is None  # too small for MS-SSIM
    model, config = load_run(tmp_path / "run")
    assert config["video"]["num_frames"] == 4
    assert np.array_equal(reconstruct(model, 4, CPU), reconstruct(load_run(tmp_path / "run")[0], 4, CPU))


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    video = make_video(moving_frames(t=5, h=24, w=24))
    mcfg = TINY.config(24, 24)
    cfg = TrainConfig(epochs=4, batch=2, lr=2e-3, checkpoint_every=1)
    straight = fit(video, mcfg, cfg, tmp_path / "a", CPU)
    # Stop in the middle of epoch 2 (3 steps per epoch), as Ctrl-C would.
    stopped = fit(video, mcfg, cfg, tmp_path / "b", CPU, should_stop=lambda step: step == 5)
    assert stopped.interrupted and stopped.epochs_done == 1
    assert not (tmp_path / "b" / "metrics.json").exists()
    with pytest.raises(VcmError, match="--resume"):
        fit(video, mcfg, cfg, tmp_path / "b", CPU)
    resumed = fit(video, mcfg, cfg, tmp_path / "b", CPU, resume=True)
    assert not resumed.interrupted
    a, b = load_run(tmp_path / "a")[0].state_dict(), load_run(tmp_path / "b")[0].state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.metrics["psnr"] == pytest.approx(straight.metrics["psnr"])


def test_resume_refuses_other_frames(tmp_path):
    mcfg = TINY.config(24, 24)
    cfg = TrainConfig(epochs=1, batch=2, checkpoint_every=1)
    fit(make_video(moving_frames(t=4, h=24, w=24)), mcfg, cfg, tmp_path / "r", CPU)
    other = make_video(moving_frames(t=4, h=24, w=24, seed=9))
    with pytest.raises(VcmError, match="other frames"):
        fit(other, mcfg, cfg, tmp_path / "r", CPU, resume=True)


def test_resume_refuses_a_schedule_shorter_than_what_is_done(tmp_path):
    """Resumed with fewer steps than it had trained, a run reported "done 4/2" and recorded the shorter
    schedule in config.json; a longer one goes on from where it stopped."""
    import json

    mcfg = TINY.config(24, 24)
    video = make_video(moving_frames(t=4, h=24, w=24))
    fit(video, mcfg, TrainConfig(steps=4, batch=2, checkpoint_every=1), tmp_path / "r", CPU)
    with pytest.raises(VcmError, match="has trained 4 steps, more than the 2 now asked for"):
        fit(video, mcfg, TrainConfig(steps=2, batch=2, checkpoint_every=1), tmp_path / "r", CPU, resume=True)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["steps"] == 4
    longer = fit(video, mcfg, TrainConfig(steps=6, batch=2, checkpoint_every=1), tmp_path / "r", CPU, resume=True)
    assert not longer.interrupted and longer.epochs_done == 3


def test_resume_with_another_network_names_what_differs(tmp_path):
    """Resumed with another --params (or width scale, preset), a run said only "holds a different model
    configuration": which of the options, and which of the network's fields, was left to guess."""
    from dataclasses import replace

    mcfg = TINY.config(24, 24)
    video = make_video(moving_frames(t=4, h=24, w=24))
    cfg = TrainConfig(steps=4, batch=2, checkpoint_every=1)
    fit(video, mcfg, cfg, tmp_path / "r", CPU, should_stop=lambda step: step == 2)
    wider = replace(mcfg, fc_dim=mcfg.fc_dim + 1)
    with pytest.raises(VcmError, match=rf"^cannot resume: \S+ holds another network \(fc_dim {mcfg.fc_dim}, now "
                                       rf"{mcfg.fc_dim + 1}\); resume with the options it started with \(preset, "
                                       rf"--params, --width-scale\)"):
        fit(video, wider, cfg, tmp_path / "r", CPU, resume=True)


@pytest.mark.parametrize("change", [{"lr": 1e-3}, {"betas": (0.9, 0.99)}, {"warmup": 0.9}, {"warmup_min_steps": 1},
                                    {"grad_clip": 1.0}, {"grid_lr_scale": 3.0}])
def test_resume_refuses_another_optimiser_schedule(tmp_path, change):
    """Resumed with another learning rate (or Adam's betas, warm-up, clipping), a run went on as a different
    fit while config.json recorded the new value as if it had held from the first step."""
    from dataclasses import replace

    mcfg = TINY.config(24, 24)
    video = make_video(moving_frames(t=4, h=24, w=24))
    cfg = TrainConfig(steps=4, batch=2, lr=2e-3, checkpoint_every=1)
    fit(video, mcfg, cfg, tmp_path / "r", CPU, should_stop=lambda step: step == 2)
    (key, value), = change.items()
    with pytest.raises(VcmError, match=f"cannot resume: training option '{key}' was"):
        fit(video, mcfg, replace(cfg, **change), tmp_path / "r", CPU, resume=True)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"][key] == \
        (list(getattr(cfg, key)) if key == "betas" else getattr(cfg, key))
    assert not fit(video, mcfg, cfg, tmp_path / "r", CPU, resume=True).interrupted  # the run's own values go on


@pytest.mark.parametrize("size, cache_bytes", [((40, 56), 1 << 30), ((40, 56), 0), ((8, 56), 1 << 30)])
def test_the_clip_loss_is_eq4_with_the_targets_ssim_half_computed_once(size, cache_bytes):
    """The training loss on a clip's frames: the value and the gradient of eq. (4) with pytorch-msssim's
    SSIM, whether the target's window statistics are cached (frames of 11×11 or more, within the memory
    budget) or not."""
    from vcm.nerv.loss import ClipLoss, nerv_loss

    torch.manual_seed(0)
    frames = (torch.rand(10, 3, *size) * 255).to(torch.uint8)
    loss = ClipLoss(frames, 0.7, cache_bytes=cache_bytes, chunk=3)  # chunks that do not divide the clip
    assert (loss.stats is not None) == (cache_bytes > 0 and min(size) >= 11)
    idx = torch.tensor([9, 2, 5])
    x = frames[idx].float() / 255
    x_hat = (x + 0.1 * torch.randn_like(x)).clamp(0, 1).requires_grad_()
    ours, reference = loss(x_hat, x, idx), nerv_loss(x_hat, x, 0.7)
    assert ours.item() == pytest.approx(reference.item(), abs=1e-7)
    (g_ours,), (g_ref,) = torch.autograd.grad(ours, x_hat), torch.autograd.grad(reference, x_hat)
    assert torch.allclose(g_ours, g_ref, atol=1e-9)
    if loss.stats is not None:  # other frames' statistics give another value: the cache is indexed, not ignored
        assert abs(loss(x_hat, x, torch.tensor([0, 1, 3])).item() - reference.item()) > 1e-3


def test_the_channels_last_blur_is_pytorch_msssims_gaussian_filter_value_and_gradient():
    """The loss blurs channels-last copies (oneDNN's fast depthwise path); that must stay the library's
    filter: same values and same gradient as ``gaussian_filter`` on the NCHW tensor (bit-identical on
    the development machine; float rounding allowed elsewhere), and the result keeps the NCHW shape."""
    from pytorch_msssim.ssim import gaussian_filter
    from pytorch_msssim import ssim

    from vcm.nerv.loss import _window, blur, l1_ssim

    torch.manual_seed(0)
    x = torch.rand(2, 3, 30, 47)
    x_hat = torch.rand(2, 3, 30, 47, requires_grad=True)
    win = _window(3, CPU)
    ours, reference = blur(x_hat * x, win), gaussian_filter(x_hat * x, win)
    assert ours.shape == reference.shape == (2, 3, 20, 37)
    assert torch.allclose(ours, reference, rtol=0, atol=1e-7)
    weights = torch.rand_like(reference)
    (g_ours,), (g_ref,) = (torch.autograd.grad((y * weights).sum(), x_hat) for y in (ours, reference))
    assert torch.allclose(g_ours, g_ref, rtol=0, atol=1e-7)
    library = 0.7 * (x_hat - x).abs().mean() + 0.3 * (1 - ssim(x_hat, x, data_range=1.0, size_average=True))
    assert l1_ssim(x_hat, x, 0.7).item() == pytest.approx(library.item(), abs=1e-7)


def test_ms_ssim_per_frame_is_pytorch_msssims_and_none_below_its_minimum_side():
    """The measurement runs the library's MS-SSIM on channels-last batches (faster); per frame it must
    give the library's values on the NCHW frames, in frame order across batches."""
    from pytorch_msssim import ms_ssim as library

    from vcm.quality import ms_ssim

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (5, 3, 168, 176), dtype=np.uint8)
    test = np.clip(ref.astype(np.int16) + rng.integers(-20, 21, ref.shape), 0, 255).astype(np.uint8)
    test[3] = ref[3]  # one exact frame: 1.0 where the others are below it
    ours = ms_ssim(ref, test, batch=2)
    expected = library(torch.from_numpy(ref).float() / 255, torch.from_numpy(test).float() / 255,
                       data_range=1.0, size_average=False).numpy()
    assert ours.shape == (5,) and np.allclose(ours, expected, rtol=0, atol=1e-6)
    assert ours[3] == pytest.approx(1.0) and ours[[0, 1, 2, 4]].max() < 0.99
    assert ms_ssim(ref[:, :, :150], test[:, :, :150]) is None


def test_a_second_fit_into_a_folder_a_fit_is_writing_is_refused_and_the_lock_dies_with_its_holder(tmp_path):
    """Two `vcm fit --out R` at once (or a --resume while the fit still ran) both trained, each resuming from and
    overwriting the other's checkpoints. The folder's lock refuses the second at once, naming the first's pid."""
    import os
    import subprocess
    import sys

    from vcm.fsutil import lock_holder, run_lock

    video = make_video(moving_frames(t=2, h=24, w=24))
    cfg = TrainConfig(epochs=2, batch=1, lr=3e-3)
    run = tmp_path / "run"
    with run_lock(run):
        assert lock_holder(run) == os.getpid()
        for resume in (False, True):
            with pytest.raises(VcmError, match=f"being written by another vcm fit \\(pid {os.getpid()}\\)"):
                fit(video, TINY.config(24, 24), cfg, run, CPU, resume=resume)
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written by the refused fits
    assert lock_holder(run) is None
    assert fit(video, TINY.config(24, 24), cfg, run, CPU).metrics is not None  # free again: this fit runs
    from vcm import progress
    from vcm.codec.compress import prepare

    (run / "metrics.json").rename(tmp_path / "metrics.json")  # as while its fit still trains
    with run_lock(run), progress.log_to(tmp_path / "log.txt"), pytest.raises(VcmError, match="source video"):
        prepare(run)  # its warning comes first; a synthetic clip has no file to reopen
    assert f"is still being trained by a vcm fit (pid {os.getpid()})" in (tmp_path / "log.txt").read_text()
    # the command says so before "already holds a run; pass --resume", which would only be refused next
    from tests.conftest import tiny_video

    clip = tiny_video(tmp_path).info.path
    with run_lock(run):
        proc = run_main("fit", clip, "--epochs", "1", "--out", run)
    assert proc.returncode == 1 and f"being written by another vcm fit (pid {os.getpid()})" in proc.stderr, proc.stderr
    # a holder killed outright leaves no lock behind
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from vcm.fsutil import run_lock\n"
                               "with run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)",
                               str(tmp_path / "other")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held" and lock_holder(tmp_path / "other") == holder.pid
    holder.kill()
    holder.wait()
    assert lock_holder(tmp_path / "other") is None
    # a fit refused before it wrote anything leaves no folder it created
    with pytest.raises(VcmError):
        fit(video, TINY.config(24, 24), cfg, tmp_path / "new", CPU, resume=True)  # nothing there to resume
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("text, message", [
    ("model: [1, 2]\n", "the 'model' section must be a mapping of option: value, got list [1, 2]"),  # was a traceback
    ("model: {arch: hinerv}\ntrain: 5\n", "the 'train' section must be a mapping of option: value, got int 5"),
    ("model: {arch: hinerv, params: lots}\n", "the model's params must look like 0.3M"),  # it named --params
    # the steps ran and the epochs were dropped without a word (vcm fit --steps --epochs is refused)
    ("model: {arch: hinerv}\ntrain: {steps: 5, epochs: 2}\n", "train sets steps and epochs, both the fit's length"),
    # each read by nothing: a fit of epochs takes no cap on passes, and a NeRV has no grids
    ("model: {arch: hinerv}\ntrain: {epochs: 2, max_epochs: 1}\n", "train sets max_epochs, a cap on a schedule in "
                                                                   "steps, but no steps"),
    ("model: {arch: nerv}\ntrain: {grid_lr_scale: 3}\n", "train sets grid_lr_scale, but a nerv network has no grids"),
])
def test_a_fit_config_with_a_section_not_a_mapping_or_its_length_set_twice_is_one_line(tmp_path, text, message):
    from vcm.errors import VcmError
    from vcm.nerv.config import load_preset

    path = tmp_path / "fit.yaml"
    path.write_text(text)
    with pytest.raises(VcmError, match=re.escape(message)):
        load_preset(str(path))


def test_a_fit_that_diverges_stops_with_one_line_and_never_saves_its_nan_weights(tmp_path):
    """At lr 1e30 the weights overflow to NaN in the first steps; the fit trained on as NaN and "finished"
    at 4 dB with exit code 0, saving NaN checkpoints over the good ones."""
    video = make_video(moving_frames(t=4, h=24, w=24))
    mcfg = TINY.config(24, 24)
    good = fit(video, mcfg, TrainConfig(epochs=2, batch=2, lr=2e-3, checkpoint_every=1), tmp_path / "run", CPU,
               should_stop=lambda step: step == 2)
    assert good.interrupted
    saved = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    from vcm.diverged import TrainingDiverged

    with pytest.raises(TrainingDiverged, match=r"the loss was nan in pass 1 over the frames \(steps 1–2\); "
                                               r"lower the learning rate \(vcm fit: --lr; a CTC config: the fit's lr; "):
        fit(video, mcfg, TrainConfig(epochs=3, batch=2, lr=1e30, checkpoint_every=1), tmp_path / "wild", CPU)
    assert not (tmp_path / "wild" / "checkpoint.pt").exists() and not (tmp_path / "wild" / "metrics.json").exists()
    # Stopped (Ctrl-C) mid-pass after the weights went NaN: the stop's save refuses, the last good state stays.
    model, _ = load_run(tmp_path / "run")
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    from vcm.nerv.train import _Run

    with pytest.raises(TrainingDiverged, match="the network's .* holds NaN or infinity, so it was not saved"):
        _Run(tmp_path / "run", {}, model, torch.optim.Adam(model.parameters()), None).save(3)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == saved


def _saturated_fit(frames_u8: np.ndarray, pre_tanh: float, steps: int, grad_clip: float = 1.0):
    """``train_epochs`` on a "network" whose output is (tanh(z) + 1) / 2 of one learned map z, started at
    ``pre_tanh`` everywhere: far beyond ±9 every gradient is exactly zero, as in a fit whose output saturated."""
    from vcm.nerv.train import train_epochs

    t, c, h, w = frames_u8.shape
    z = torch.nn.Parameter(torch.full((1, c, h, w), pre_tanh))
    opt = torch.optim.Adam([z], lr=1e-2)
    forward = lambda times: ((torch.tanh(z.expand(len(times), c, h, w)) + 1) / 2, None)  # noqa: E731
    cfg = TrainConfig(epochs=1, batch=2, lr=1e-2, grad_clip=grad_clip)
    passes = []
    return train_epochs(forward, opt, torch.from_numpy(frames_u8), None, cfg, 0, steps, lambda step: False,
                        passes.append), passes


@pytest.mark.parametrize("grad_clip", [1.0, 0.0])
def test_a_fit_whose_output_saturated_stops_with_one_line_instead_of_finishing_at_4_db(grad_clip):
    """hinerv-xs at `--steps 60` on 8 frames of carphone: at step 14 every output pixel was pinned at 0 or 1
    (pre-tanh values of 30 and more), every later gradient was exactly zero, and the fit "finished" at 4.4 dB
    with exit code 0."""
    from vcm.diverged import TrainingDiverged

    gray = np.full((4, 3, 16, 16), 128, np.uint8)
    with pytest.raises(TrainingDiverged, match=r"training stalled: no step of passes 1–5 over the frames \(steps "
                                               r"1–10\) changed the network.*saturated.*lower the learning rate or "
                                               r"give more steps \(vcm fit: --lr, --steps; a CTC config: the fit's lr, "
                                               r"steps\), and start again"):
        _saturated_fit(gray, 50.0, 40, grad_clip)
    with pytest.raises(TrainingDiverged, match=r"no step of pass 1 over the frames \(steps 1–2\)"):
        _saturated_fit(gray, 50.0, 2, grad_clip)  # a fit that ends saturated, however short


@pytest.mark.parametrize("total, warm", [(900, 90), (400, 40), (100, 30), (20, 10), (1, 1)])
def test_the_warm_up_lasts_at_least_30_steps_or_half_a_shorter_fit(total, warm):
    """A 10 % ramp was 2 to 10 steps in a short fit: too fast for a HiNeRV rate (next test). The presets' own
    schedules (warmup × steps ≥ 30) keep their ramp to the step."""
    from vcm.nerv.train import lr_at

    cfg = TrainConfig(lr=1.0, warmup=0.1)
    ramp = [lr_at(step, total, cfg) for step in range(total)]
    assert ramp[warm - 1] == 1.0 and ramp[0] == pytest.approx(1 / warm)
    assert all(a < b for a, b in zip(ramp[:warm], ramp[1:warm]))  # rising until the peak, falling after it
    assert all(a >= b for a, b in zip(ramp[warm - 1:], ramp[warm:]))


def test_the_compression_stages_keep_their_own_short_ramp(monkeypatch):
    """A rate–distortion stage (5 % of its steps) and the paper's fine-tuning (none) start from a fitted
    network: the minimum is off for them, so their learning rates are what they were, step for step."""
    from vcm.codec import affine, rd
    from vcm.nerv import train
    from vcm.nerv.model import NeRV

    seen = {}
    real = train.lr_at

    def recording(step, total, cfg):
        seen.setdefault((cfg.warmup, total), []).append(real(step, total, cfg) / cfg.lr)
        return real(step, total, cfg)

    monkeypatch.setattr(train, "lr_at", recording)
    frames = moving_frames(t=4, h=32, w=48)
    fit_cfg = TrainConfig(batch=2, lr=1e-3)  # the minimum of 30 steps is on in the fit's config
    rd.optimise(NeRV(TINY.config(32, 48)), frames, None, fit_cfg, rd.RDOptions(lam=1.0, steps=40), CPU)
    affine._finetune(NeRV(TINY.config(32, 48)), frames, None, fit_cfg, 3, {}, None, CPU, "fine-tune")
    assert seen[(0.05, 40)][:3] == [0.5, 1.0, pytest.approx(1.0, abs=0.01)]  # a 2-step ramp, as before
    assert seen[(0.0, 6)][0] == 1.0  # no ramp


@pytest.mark.parametrize("steps, same", [(200, True), (20, False)])
def test_a_fit_recorded_before_the_minimum_warm_up_is_the_same_fit_where_its_ramp_is(tmp_path, steps, same):
    """A run that an earlier vcm started (config.json and checkpoint without warmup_min_steps) ramped over its
    fraction alone: with a ramp of 40 steps it is the fit this vcm would train, and a CTC fit cache reuses or
    resumes it; with one of 4 steps it is not, and neither may pass it off as this schedule's."""
    from vcm.nerv.train import run_differs

    mcfg = TINY.config(24, 24)
    video = make_video(moving_frames(t=4, h=24, w=24))
    cfg = TrainConfig(steps=steps, batch=2, lr=2e-3, checkpoint_every=1)
    fit(video, mcfg, cfg, tmp_path / "r", CPU, should_stop=lambda step: step == 2)
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    del config["train"]["warmup_min_steps"]
    (tmp_path / "r" / "config.json").write_text(json.dumps(config))
    ckpt = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    del ckpt["config"]["train"]["warmup_min_steps"]
    torch.save(ckpt, tmp_path / "r" / "checkpoint.pt")
    differs = run_differs(tmp_path / "r", video, mcfg, cfg)
    assert differs == (None if same else "other training options (warmup_min_steps)")
    if same:
        assert not fit(video, mcfg, cfg, tmp_path / "r", CPU, resume=True).interrupted
    else:
        with pytest.raises(VcmError, match="cannot resume: training option 'warmup_min_steps' was 0, now 30"):
            fit(video, mcfg, cfg, tmp_path / "r", CPU, resume=True)


@pytest.mark.parametrize("warmup, same", [(0.3, True), (0.9, False)])
def test_the_ramps_options_are_one_fit_where_they_give_one_ramp(tmp_path, warmup, same):
    """warmup and warmup_min_steps reach the schedule only through the ramp's length: 0.2 and 0.3 of 40 steps
    both ramp over the minimum's 20, the same learning rate at every step, so a fit cache keeps the run and
    resume continues it; 0.9 ramps over 36 steps, another fit."""
    from dataclasses import replace

    from vcm.nerv.train import run_differs

    mcfg = TINY.config(24, 24)
    video = make_video(moving_frames(t=4, h=24, w=24))
    cfg = TrainConfig(steps=40, batch=2, lr=2e-3, warmup=0.2, checkpoint_every=1)
    fit(video, mcfg, cfg, tmp_path / "r", CPU, should_stop=lambda step: step == 2)
    other = replace(cfg, warmup=warmup)
    assert run_differs(tmp_path / "r", video, mcfg, other) == (None if same else "other training options (warmup)")
    if same:
        assert not fit(video, mcfg, other, tmp_path / "r", CPU, resume=True).interrupted
    else:
        with pytest.raises(VcmError, match="cannot resume: training option 'warmup' was 0.2, now 0.9"):
            fit(video, mcfg, other, tmp_path / "r", CPU, resume=True)


def test_a_short_hinerv_fit_learns_instead_of_saturating(tmp_path):
    """`vcm fit sample:carphone --frames 0:8 --preset hinerv-xs --steps 60` stopped as stalled (its 6-step ramp
    to 3e-2 pinned every pixel at 0 or 1 by step 14); with a 30-step ramp it learns the picture."""
    from vcm.quality import flat_psnr
    from vcm.video.source import open_video

    done = run_main("fit", "sample:carphone", "--frames", "0:8", "--preset", "hinerv-xs", "--steps", "60",
                    "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    flat = flat_psnr(open_video("sample:carphone", frames="0:8").frames_u8)
    assert metrics["psnr"] > flat + 5, (metrics["psnr"], flat)


def test_an_output_saturated_where_the_frames_are_is_not_a_stall():
    """Black frames fitted by an output pinned at 0: zero gradients at a loss of ~0 are a finished fit."""
    (step, interrupted), passes = _saturated_fit(np.zeros((4, 3, 16, 16), np.uint8), -50.0, 40)
    assert (step, interrupted) == (40, False) and len(passes) == 20 and passes[-1].loss < 1e-6


def test_the_flat_frame_baseline_is_the_clips_mean_colour_against_every_frame():
    from vcm.quality import flat_psnr, psnr_rgb

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 3, 6, 7), dtype=np.uint8)
    flat = np.broadcast_to(np.rint(frames.astype(np.float64).mean(axis=(0, 2, 3)))[None, :, None, None],
                           frames.shape).astype(np.uint8)
    assert flat_psnr(frames, chunk=2) == pytest.approx(psnr_rgb(frames, flat).mean(), abs=1e-9)
    assert flat_psnr(np.full((2, 3, 4, 4), 77, np.uint8)) == 100.0  # a flat clip is its own mean colour


@pytest.mark.parametrize("reached, said", [(3.5, True), (60.0, False)])
def test_a_fit_no_better_than_a_flat_frame_says_so(tmp_path, monkeypatch, capsys, reached, said):
    """A 20-step hinerv-xs fit on 8 frames of carphone finished at 3.5 dB (its output saturated, some gradient
    left), with nothing said; a flat frame of the clip's mean colour reaches ~11 dB."""
    import vcm.nerv.train as train

    real = train._measure
    monkeypatch.setattr(train, "_measure", lambda *a: {**real(*a), "psnr": reached})
    video = make_video(moving_frames(t=4, h=24, w=24))
    fit(video, TINY.config(24, 24), TrainConfig(epochs=1, batch=2, lr=2e-3), tmp_path / "run", CPU)
    err = " ".join(capsys.readouterr().err.split())
    assert ("the fitted network reaches 3.50 dB, less than a flat frame of the clip's mean colour" in err) is said
    # the same trainer runs in a CTC config's fits (and the demo's): its advice names where each sets the values
    assert ("give more steps (vcm fit: --lr, --steps; a CTC config: the fit's lr, steps)" in err) is said


def test_a_rate_distortion_stage_never_saves_a_nan_state_over_its_last_one(tmp_path):
    from vcm.codec.stage_state import ResumableStage, StageCheckpoint
    from vcm.diverged import TrainingDiverged

    net = torch.nn.Linear(2, 2)
    checkpoint = StageCheckpoint.keyed(tmp_path / "s.partial.pt", {"stage": 1})
    stage = ResumableStage(checkpoint, {"model": net}, CPU, "rate-distortion λ=1")
    stage.run(lambda start, stop, on_step: (2, False), 2)
    kept = checkpoint.path.read_bytes()

    def diverge(start, stop, on_step):
        with torch.no_grad():
            net.weight.fill_(float("inf"))
        return 4, False

    with pytest.raises(TrainingDiverged, match="rate-distortion λ=1: model's weight holds NaN or infinity"):
        stage.run(diverge, 4)
    assert checkpoint.path.read_bytes() == kept


def test_frames_per_second_counts_the_frames_each_step_held():
    """`vcm fit --batch 100` on a 6-frame clip reported 790 frames/s: steps × batch, 100 frames a step where
    each step held the clip's 6; each pass's last, partial batch was counted whole too."""
    from vcm.nerv.train import frames_seen

    assert frames_seen(0, 2, 6, 100) == 12  # the batch is the clip
    assert frames_seen(0, 3, 5, 2) == 5 and frames_seen(2, 5, 5, 2) == 5  # batches 2, 2, 1 per pass; resumed at 2
    assert frames_seen(0, 900, 120, 4) == 900 * 4 and frames_seen(7, 7, 9, 2) == 0


def test_a_fits_frame_rate_is_the_frames_it_trained_on(tmp_path, capsys):
    video = make_video(moving_frames(t=3, h=24, w=24))
    result = fit(video, TINY.config(24, 24), TrainConfig(epochs=2, batch=100, lr=2e-3), tmp_path / "run", CPU)
    assert result.frames_per_second * result.seconds == pytest.approx(6)
    assert "batch 100 is more than the clip's 3 frames: each step takes them all" in capsys.readouterr().err


def test_a_fit_whose_runs_latest_cannot_be_made_still_succeeds(tmp_path):
    """`vcm fit --out ELSEWHERE` from a folder where runs/latest cannot be made (read-only, a file system without
    links; here a file named runs) trained, saved, and then ended with an error and code 1."""
    (tmp_path / "runs").write_text("not a folder")
    done = run_main("fit", "sample:carphone", "--frames", "0:4", "--preset", "hinerv-xs", "--steps", "1",
                    "--out", tmp_path / "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "checkpoint.pt").is_file() and (tmp_path / "runs").read_text() == "not a folder"
    said = "".join(done.stderr.split())  # rich may wrap a long path anywhere
    assert "runs/latestnotpointedattherun(" in said and f"name{tmp_path / 'run'}tothecommands" in said


@pytest.mark.parametrize("steps, shown", [(1, "1 (1 epoch)"), (3, "3 (2 epochs)")])
def test_the_fit_table_counts_its_passes_in_words_that_agree(tmp_path, steps, shown):
    """A one-pass fit's table said "1 (1 epochs)"."""
    done = run_main("fit", "sample:carphone", "--frames", "0:4", "--preset", "hinerv-xs", "--steps", str(steps),
                    "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    assert re.search(rf"│ steps\s+│ {re.escape(shown)}\s+│", done.stdout), done.stdout
