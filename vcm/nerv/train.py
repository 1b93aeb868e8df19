"""``vcm fit``: train one NeRV network on one video, resumably.

Run directory layout (all files written atomically):
- ``config.json``   model config, training config, video description
- ``checkpoint.pt`` weights, optimizer, global step (saved every N epochs, at the end, on Ctrl-C)
- ``metrics.json``  per-frame and mean PSNR / MS-SSIM of the trained network, loss per epoch

Hot loop design: all frames live on the device as uint8; each step gathers a batch by index,
converts to float there, and never synchronises with the host (losses are summed on device
and read once per epoch). bf16 autocast and channels_last on CUDA; optional torch.compile.
The per-epoch permutation is seeded from (seed, epoch), so a resumed run replays exactly the
steps an uninterrupted run would have taken.
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vcm import progress
from vcm.diverged import TrainingDiverged, refuse_nonfinite
from vcm.errors import VcmError
from vcm.fsutil import load_torch_dict, nothing_to_resume, run_lock, save_torch, write_json
from vcm.nerv.config import TrainConfig
from vcm.nerv.loss import ClipLoss
from vcm.nerv.train_memory import check_training_memory
from vcm.outputs import json_has_keys
from vcm.nerv import registry
from vcm.nerv.frames import frame_times, reconstruct, to_u8  # noqa: F401  (public through the trainer too)
from vcm.provenance import provenance
from vcm.quality import summarize
from vcm.schema import finite_number
from vcm.video import Video
from vcm.words import differences

from vcm.nerv.run_files import CHECKPOINT, CONFIG, METRICS  # noqa: F401  (public through the trainer too)


# Where a user sets a fit's learning rate and length: the same trainer runs under vcm fit and in a CTC config's
# fits (vcm demo's too), so its advice names both.
DIVERGED_ADVICE = ("lower the learning rate (vcm fit: --lr; a CTC config: the fit's lr; a rate–distortion stage: the "
                   "preset's rd_lr_scale and rd_step_lr, a CTC point's step_lr) or clip the gradient norm "
                   "(train.grad_clip in a preset file: vcm fit --config FILE, a CTC fit's preset: FILE), "
                   "and start again")
LR_OR_STEPS = "lower the learning rate or give more steps (vcm fit: --lr, --steps; a CTC config: the fit's lr, steps)"
STALLED_STEPS = 10  # consecutive steps of whole passes without a gradient that make a fit stalled
STALLED_LOSS = 1e-3  # a loss above this with no gradient is an output pinned away from the frames, not a fit done


@dataclass
class FitResult:
    run_dir: Path
    epochs_done: int
    interrupted: bool
    metrics: dict | None
    seconds: float
    frames_per_second: float
    steps_done: int = 0
    total_steps: int = 0


def video_description(video: Video) -> dict:
    info = video.info
    return {
        "name": video.name,
        "source": str(info.path.resolve()),  # compress/decode may run from another directory
        "width": video.width,
        "height": video.height,
        "fps": video.fps,
        "source_frames": [video.source_frames.start, video.source_frames.stop],
        "num_frames": video.num_frames,
        "sequence": info.sequence.name if info.sequence else None,
        "bit_depth": info.bit_depth,
        "fingerprint": video.fingerprint(),
    }


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """Optimizer groups: grid parameters (a representation's ``grids`` group) at ``grid_lr_scale``
    times the schedule's rate, everything else at the rate itself."""
    grids = [p for n, p in model.named_parameters() if model.param_group(n) == "grids"]
    rest = [p for n, p in model.named_parameters() if model.param_group(n) != "grids"]
    if not grids:
        return [{"params": rest}]
    return [{"params": grids, "lr_scale": cfg.grid_lr_scale}, {"params": rest}]


def warmup_steps(total: int, fraction: float, minimum: int) -> int:
    """Steps of the linear ramp in a schedule of ``total`` steps: ``fraction`` of them, but at least ``minimum``
    (or half of them, when fewer), and at least one."""
    return max(1, int(total * fraction), min(minimum, total // 2))


# Training options whose default changed the fit when they were added: a run recorded before had this value.
_BEFORE_IT_EXISTED = {"warmup_min_steps": 0}


def _recorded(train: dict, key: str):
    """Training option ``key`` of a ``train`` section as config.json records it (a list for a tuple); a key that
    an older run lacks had the default of its day."""
    return _as_recorded(train.get(key, _BEFORE_IT_EXISTED.get(key, getattr(TrainConfig, key, None))))


# Options the schedule reads only through the length of its warm-up ramp (lr_at): two values of them make the
# same fit where the ramps are equal (a run recorded before warmup_min_steps existed, with a ramp of 30 steps or
# more, is this vcm's fit).
_RAMP_OPTIONS = ("warmup", "warmup_min_steps")


def _ramp(train: dict, total: int) -> int:
    """Steps of the warm-up ramp that a recorded ``train`` section gives a schedule of ``total`` steps."""
    return warmup_steps(total, _recorded(train, "warmup"), _recorded(train, "warmup_min_steps"))


def _option_differs(key: str, before: dict, now: dict, total: int) -> bool:
    """Whether training option ``key`` of a recorded ``train`` section and of this one's make different fits of
    ``total`` steps: another value, and for the ramp's options another ramp too."""
    if _recorded(before, key) == _recorded(now, key):
        return False
    return key not in _RAMP_OPTIONS or _ramp(before, total) != _ramp(now, total)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warmup over ``cfg.warmup`` of all steps, but at least ``cfg.warmup_min_steps`` (or half of
    them, when fewer), then cosine decay to 0 (reference NeRV)."""
    warm = warmup_steps(total, cfg.warmup, cfg.warmup_min_steps)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def make_loss(cfg: TrainConfig, device, frames: torch.Tensor, masks: torch.Tensor | None = None) -> Callable:
    """``loss(x_hat, x, mask | None, idx)`` for the configured loss and implementation, on ``x =
    frames[idx] / 255`` and ``mask = masks[idx]`` (``frames``: the clip, ``uint8 [T,3,H,W]`` on ``device``;
    ``masks``: its edge masks, ``uint8 [T,1,H,W]``, for SA-NeRV)."""
    if cfg.loss == "nerv":
        clip_loss = ClipLoss(frames, cfg.beta)
        return lambda x_hat, x, mask, idx: clip_loss(x_hat, x, idx)
    if cfg.loss == "sa-nerv":
        from vcm.nerv.sa_loss import sa_nerv_loss_fn

        return sa_nerv_loss_fn(cfg.beta, cfg.mask_weight, cfg.loss_impl, device,
                               None if masks is None else (frames, masks))
    raise VcmError(f"unknown loss {cfg.loss!r}; use nerv or sa-nerv")


class StopFlag:
    """SIGINT, SIGTERM or another of :func:`vcm.stopping.stop_signals` sets a flag checked between steps; a second
    Ctrl-C aborts at once (a second SIGTERM, as a parent process passes one on to its workers after the terminal's
    Ctrl-C, changes nothing)."""

    def __init__(self, extra: Callable[[int], bool] | None):
        self.requested = False
        self.extra = extra
        self._old: dict = {}

    def __enter__(self):
        from vcm.stopping import stop_signals

        try:
            self._old = {s: signal.signal(s, self._handle) for s in stop_signals()}
        except ValueError:  # not in the main thread
            self._old = {}
        return self

    def _handle(self, signum, frame):
        from vcm.stopping import received

        name = received(signum)
        if self.requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.requested = True
        progress.log(f"{name}: finishing this step and saving a checkpoint (Ctrl-C again to abort)", style="yellow")

    def __call__(self, step: int) -> bool:
        return self.requested or (self.extra is not None and self.extra(step))

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)


def load_run(run_dir: Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild the trained network of a run directory (on CPU) and return it with its config."""
    ckpt_path = Path(run_dir) / CHECKPOINT
    ckpt = _read_checkpoint(ckpt_path)
    arch, model_cfg, _ = stored_model_config(ckpt_path, ckpt)
    try:
        model = registry.create_representation(arch, model_cfg)
        model.load_state_dict(ckpt["model"])
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise VcmError(f"{ckpt_path} does not hold a usable network ({type(err).__name__}); the file is damaged") from None
    return model.eval(), ckpt["config"]


def stored_model_config(ckpt_path: Path, ckpt: dict) -> tuple[str, object, int]:
    """(representation name, model config, parameters) of the network a run's checkpoint ``ckpt`` describes, held
    to what a .nerv stream holds and to the values the checkpoint holds: an edited config was built before it failed
    to load (a million blocks hung, 5·10⁹ parameters took gigabytes and minutes)."""
    from vcm.nerv.limits import checked_config

    try:
        arch = registry.arch_of(ckpt["config"])
        model_cfg = checked_config(arch, ckpt["config"]["model"])
        declared = registry.entry(arch).model_cls.count_params(model_cfg)
        held = sum(t.numel() for t in ckpt["model"].values())
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as err:
        why = str(err)[:80] or type(err).__name__
        raise VcmError(f"{ckpt_path} does not describe a network a .nerv stream can hold ({why}); the file is "
                       "damaged") from None
    if declared > held:
        raise VcmError(f"{ckpt_path} declares a network of {declared:,} parameters and holds {held:,} values; the "
                       "file is damaged")
    why = _video_problem(ckpt["config"].get("video"), model_cfg)
    if why:  # what vcm info shows and a stream's header carries (an edited one was a traceback in either)
        raise VcmError(f"{ckpt_path} describes its video wrongly ({why}); the file is damaged")
    return arch, model_cfg, declared


def _video_problem(video, model_cfg) -> str | None:
    """Why a run's stored ``video`` section (name, source, sequence, size, fps, frames and their source range)
    cannot be the video its network ``model_cfg`` was fitted on, or None."""
    from vcm.bitstream.container import valid_source_range
    from vcm.schema import finite_number, whole_number
    from vcm.video.limits import MAX_FPS

    if not isinstance(video, dict):
        return "no video section"
    if not (isinstance(video.get("name"), str) and all(video.get(k) is None or isinstance(video[k], str)
                                                       for k in ("source", "sequence"))):
        return "its name, source or sequence is not text"
    if [video.get("width"), video.get("height")] != [model_cfg.width, model_cfg.height]:
        return "its size is not the network's"
    if not (finite_number(video.get("fps")) and 0 < video["fps"] <= MAX_FPS):
        return f"its fps is not a rate above 0 and at most {MAX_FPS}"
    span, n = video.get("source_frames"), video.get("num_frames")
    if not (valid_source_range(span) and whole_number(n) and n == span[1] - span[0]):
        return "its frames are not a source frame range of that many frames"
    return None


@dataclass
class EpochStats:
    epoch: int  # 1-based number of the finished epoch
    loss: float
    train_psnr: float
    penalty: float = 0.0  # mean of the forward's extra loss term (e.g. λ·rate), 0 when there is none


def train_epochs(
    forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
    opt: torch.optim.Optimizer,
    frames: torch.Tensor,
    masks: torch.Tensor | None,
    cfg: TrainConfig,
    step: int,
    total_steps: int,
    stop: Callable[[int], bool],
    on_epoch: Callable[[EpochStats], None],
    after_step: Callable[[], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[int, bool]:
    """The hot loop shared by fit, pruning fine-tune and QAT. Returns (step, interrupted).

    ``frames``: ``uint8 [T,3,H,W]`` on the device; ``masks``: ``uint8 [T,1,H,W]`` or None.
    ``forward(t)`` maps ``float [B]`` frame times to ``(x̂ float [B,3,H,W], penalty)``, where a scalar
    penalty (e.g. λ·rate) is added to the distortion and None adds nothing. ``after_step`` runs
    after every optimizer step (e.g. re-applying a pruning mask). A param group's ``lr_scale``
    multiplies the schedule's learning rate. Losses are summed on the device and read once per
    epoch; the permutation of epoch e is seeded from (seed, e).
    """
    device = frames.device
    cuda = device.type == "cuda"
    num_frames = frames.shape[0]
    t_all = frame_times(num_frames, device)
    steps_per_epoch = math.ceil(num_frames / cfg.batch)
    loss_fn = make_loss(cfg, device, frames, masks)
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and cfg.amp)
    epoch = step // steps_per_epoch
    stalled_from = None  # (pass, step) where the current run of passes without any gradient began
    while step < total_steps:
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        perm = torch.randperm(num_frames, generator=gen).to(device)
        loss_sum = torch.zeros((), device=device)
        mse_sum = torch.zeros((), device=device)
        penalty_sum = torch.zeros((), device=device)
        still_steps = torch.zeros((), device=device)  # steps of this pass whose gradient was exactly zero
        first = step - epoch * steps_per_epoch
        for i in range(first, min(steps_per_epoch, total_steps - epoch * steps_per_epoch)):  # the last may be partial
            idx = perm[i * cfg.batch:(i + 1) * cfg.batch]
            lr = lr_at(step, total_steps, cfg)
            for group in opt.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            x = frames[idx].float().div_(255)
            if cuda and cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with amp:
                x_hat, penalty = forward(t_all[idx])
            x_hat = x_hat.float()
            loss = loss_fn(x_hat, x, None if masks is None else masks[idx], idx)
            if penalty is not None:
                loss = loss + penalty
                penalty_sum += penalty.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            params = [p for g in opt.param_groups for p in g["params"]]  # groups may be added mid-run (the rate term)
            if cfg.grad_clip > 0:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            else:
                grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            still_steps += grad_norm == 0
            opt.step()
            if after_step is not None:
                after_step()
            loss_sum += loss.detach()
            mse_sum += (x_hat.detach() - x).square().mean()
            step += 1
            if on_step is not None:
                on_step(step)
            if stop(step) and step < total_steps:
                if step % steps_per_epoch:
                    return step, True
                break
        n = step - epoch * steps_per_epoch - first
        means = torch.stack([loss_sum, mse_sum, penalty_sum]) / n
        mean_loss, mean_mse, mean_penalty, still = torch.cat([means, still_steps[None]]).tolist()  # one sync
        first_step = epoch * steps_per_epoch + first + 1
        if not math.isfinite(mean_loss):  # NaN weights train on as NaN, and a fit "finished" at 4 dB with exit code 0
            raise TrainingDiverged(f"training diverged: the loss was {mean_loss} in pass {epoch + 1} over the frames "
                                   f"(steps {first_step}–{step}); {DIVERGED_ADVICE}")
        stalled_from = (stalled_from or (epoch + 1, first_step)) if still == n and mean_loss > STALLED_LOSS else None
        if stalled_from and (step - stalled_from[1] + 1 >= STALLED_STEPS or step >= total_steps):
            _stalled(stalled_from, epoch + 1, step, mean_loss)
        epoch += 1
        on_epoch(EpochStats(epoch, mean_loss, 10 * math.log10(1 / max(mean_mse, 1e-12)), mean_penalty))
        if stop(step) and step < total_steps:
            return step, True
    return step, False


def _stalled(since: tuple[int, int], last_pass: int, last_step: int, loss: float) -> None:
    """Raise :class:`TrainingDiverged` for passes ``since[0]``–``last_pass`` (steps ``since[1]``–``last_step``)
    in which no gradient reached the network: a fit "finished" at 4 dB with exit code 0 after its output had
    saturated (hinerv-xs, 60 steps on 8 frames: pre-tanh values over 30 at step 14, then zero gradients)."""
    passes = f"pass {last_pass}" if since[0] == last_pass else f"passes {since[0]}–{last_pass}"
    raise TrainingDiverged(
        f"training stalled: no step of {passes} over the frames (steps {since[1]}–{last_step}) changed the network "
        f"(every gradient was zero at a loss of {loss:.3f}): its output is saturated, pixels pinned at 0 or 1, and "
        f"cannot learn again; {LR_OR_STEPS}, and start again")


@dataclass
class _Run:
    """A fit in progress: its network, optimizer, optional rate term, position and history."""

    run_dir: Path
    config: dict  # what config.json and the checkpoint record
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    rate: object | None  # a RateTerm for a rate-aware fit
    step: int = 0
    history: list = field(default_factory=list)

    def save(self, at_step: int) -> None:
        quantizers = None if self.rate is None else self.rate.state()
        weights = _state(self.model)
        refuse_nonfinite(weights, "the network", DIVERGED_ADVICE)
        save_torch(self.run_dir / CHECKPOINT, {
            "model": weights, "optimizer": self.opt.state_dict(), "step": at_step, "history": self.history,
            "config": self.config, **({"quantizers": quantizers} if quantizers is not None else {})})


def check_new_run_dir(run_dir: Path) -> None:
    """Refuse to start a fit in a folder where it would replace a file that no fit wrote: a new fit writes
    config.json, then checkpoint.pt and metrics.json, and a user's own config.json or metrics.json there was
    replaced without a word. An earlier attempt's config.json (a fit that died before its first checkpoint)
    is the fit's own; other files are left as they are."""
    run_dir = Path(run_dir)
    for name in (CONFIG, METRICS, CHECKPOINT):
        path = run_dir / name
        if not (path.exists() or path.is_symlink()):
            continue
        if name == CONFIG and not (run_dir / METRICS).exists() and json_has_keys(path, {"model", "train", "video"}):
            continue
        raise VcmError(f"{run_dir} holds a {name} that no unfinished vcm fit wrote; a new fit would replace it: "
                       f"name a new or empty folder with --out")


def _start(video: Video, model_cfg, cfg: TrainConfig, run_dir: Path, device, resume: bool, masks_meta) -> _Run:
    """Build the network and optimizer (and the rate term), resume or refuse to overwrite, write config.json."""
    cfg.total_steps(video.num_frames)  # refuses a schedule no run could finish before anything is written
    torch.manual_seed(cfg.seed)
    arch = registry.arch_of_config(model_cfg)
    config = {"arch": arch, "model": model_cfg.to_dict(), "train": cfg.to_dict(), "video": video_description(video),
              "masks": masks_meta}
    check_training_memory(arch, model_cfg, min(cfg.batch, video.num_frames), device, loss=cfg.loss)  # batch ≤ clip
    model = registry.create_representation(arch, model_cfg).to(device)
    opt = torch.optim.Adam(param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas)
    rate = None
    if cfg.rate_lambda > 0:
        from vcm.nerv.rate_aware import RateTerm

        rate = RateTerm(model, opt, cfg, cfg.total_steps(video.num_frames), video.height, video.width, video.num_frames)
    run = _Run(run_dir, config, model, opt, rate)
    ckpt_path = run_dir / CHECKPOINT
    if resume:
        total = cfg.total_steps(video.num_frames)
        run.step, run.history = _resume(ckpt_path, config, model, opt, device, total, rate)
        if run.step > total:  # it reported "done 40/20" and recorded the shorter schedule in config.json
            raise VcmError(f"cannot resume: {run_dir} has trained {run.step} steps, more than the {total} now asked for; "
                           f"give at least {run.step} (--steps) or the schedule it was started with")
    elif ckpt_path.exists():
        raise VcmError(f"{run_dir} already holds a run; pass --resume to continue it or --out DIR for a new one")
    else:
        check_new_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Provenance goes to config.json only: the checkpoint stays a function of the inputs alone.
    write_json(run_dir / CONFIG, {**config, "provenance": provenance(device)})
    return run


def fit(
    video: Video,
    model_cfg,
    cfg: TrainConfig,
    run_dir: Path,
    device: torch.device,
    resume: bool = False,
    masks_u8: np.ndarray | None = None,
    masks_meta: dict | None = None,
    should_stop: Callable[[int], bool] | None = None,
) -> FitResult:
    """Train the representation of ``model_cfg`` (a registered config, e.g. NervConfig) on ``video``.

    ``masks_u8``: ``uint8/bool [T,1,H,W]`` edge masks for the SA-NeRV loss (eq. 6).
    ``should_stop(step)``: polled after every step; True stops like Ctrl-C (checkpoint + return).
    """
    run_dir = Path(run_dir)
    if cfg.loss == "sa-nerv" and masks_u8 is None:
        raise VcmError("--loss sa-nerv needs edge masks: pass --masks FILE or --sam-checkpoint PATH")
    with run_lock(run_dir):  # a second fit (or resume) into the same folder interleaved its checkpoints with this one's
        run = _start(video, model_cfg, cfg, run_dir, device, resume, masks_meta)
        if cfg.batch > video.num_frames:
            progress.log(f"batch {cfg.batch} is more than the clip's {video.num_frames} frames: each step takes them all")
        total_steps = cfg.total_steps(video.num_frames)
        frames, masks = to_device(video.frames_u8, masks_u8, device)
        if device.type == "cuda" and cfg.channels_last:
            run.model = run.model.to(memory_format=torch.channels_last)
        # the rate term wraps the plain module (torch.compile is not applied then)
        forward = run.rate if run.rate is not None else _plain(torch.compile(run.model) if cfg.compile else run.model)
        start_time, first_step = time.time(), run.step
        with StopFlag(should_stop) as stop, \
                progress.progress(f"fit {video.name} (steps)", total_steps, completed=run.step) as bar:
            step, interrupted = train_epochs(forward, run.opt, frames, masks, cfg, run.step, total_steps, stop,
                                             _epoch_logger(run, cfg, video.num_frames, bar),
                                             after_step=None if run.rate is None else run.rate.after_step,
                                             on_step=lambda _: bar.advance(1))
            if interrupted:
                run.save(step)
        seconds = time.time() - start_time
        fps = frames_seen(first_step, step, video.num_frames, cfg.batch) / max(seconds, 1e-9)
        epochs_done = step // cfg.steps_per_epoch(video.num_frames)
        if interrupted:
            return FitResult(run_dir, epochs_done, True, None, seconds, fps, step, total_steps)
        metrics = _measure(run, video, device, masks_u8)
        _say_if_no_better_than_flat(metrics["psnr"], video.frames_u8)
        metrics.update({"params": registry.entry(run.config["arch"]).model_cls.count_params(model_cfg),
                        "epochs": cfg.total_epochs(video.num_frames), "steps": total_steps, "history": run.history,
                        "train_seconds": seconds, "train_frames_per_second": fps})
        write_json(run_dir / METRICS, metrics)
        return FitResult(run_dir, epochs_done, False, metrics, seconds, fps, step, total_steps)


def _say_if_no_better_than_flat(psnr: float, frames_u8: np.ndarray) -> None:
    """One line on stderr when the fitted network is worse than a flat frame of the clip's mean colour (a
    20-step hinerv-xs fit on 8 frames of carphone "finished" at 3.5 dB, where that frame gives ~11 dB)."""
    from vcm.quality import flat_psnr

    flat = flat_psnr(frames_u8)
    if psnr < flat:
        progress.log(f"the fitted network reaches {psnr:.2f} dB, less than a flat frame of the clip's mean colour "
                     f"({flat:.2f} dB): it has learned nothing of the picture; {LR_OR_STEPS}")


def frames_seen(first: int, last: int, num_frames: int, batch: int) -> int:
    """Frames trained on from step ``first`` to ``last`` (0-based, ``last`` exclusive) over a clip of
    ``num_frames``: each pass's last batch holds what is left, and a batch above the clip holds the clip."""
    per_epoch = -(-num_frames // batch)
    sizes = [min(batch, num_frames - i * batch) for i in range(per_epoch)]
    whole, rest = divmod(last, per_epoch)
    done_whole, done_rest = divmod(first, per_epoch)
    return (whole - done_whole) * num_frames + sum(sizes[:rest]) - sum(sizes[:done_rest])


def _plain(model) -> Callable[[torch.Tensor], tuple[torch.Tensor, None]]:
    """A network as a training forward: its frames and no penalty."""
    return lambda t: (model(t), None)


def train_stage(forward, opt: torch.optim.Optimizer, frames_u8: np.ndarray, masks_u8: np.ndarray | None,
                cfg: TrainConfig, steps: int, device, label: str, status: Callable[[EpochStats], str],
                after_step: Callable[[], None] | None = None, start: int = 0,
                stop: Callable[[int], bool] | None = None, on_step: Callable[[int], None] | None = None) -> tuple[int, bool]:
    """A fixed-length stage after a fit (pruning fine-tune, QAT, rate–distortion): steps ``start`` to
    ``steps`` of ``train_epochs`` on the clip, with ``status(stats)`` on the progress line after each
    epoch → (the step it stopped at, whether ``stop`` stopped it early). ``stop(step)`` is polled after
    every step; ``on_step(step)`` runs after it (a stage that keeps its state saves it there)."""
    frames, masks = to_device(frames_u8, masks_u8, device)

    def after(step: int) -> None:
        bar.advance(1)
        if on_step is not None:
            on_step(step)

    with progress.progress(f"{label} (steps)", steps, completed=start) as bar:
        if start >= steps:
            return start, False
        return train_epochs(forward, opt, frames, masks, cfg, start, steps, stop or (lambda step: False),
                            lambda stats: bar.update(status=status(stats)), after_step=after_step, on_step=after)


def _epoch_logger(run: _Run, cfg: TrainConfig, num_frames: int, bar) -> Callable[[EpochStats], None]:
    """After each epoch: its history entry, the progress line, and a checkpoint every ``checkpoint_every``."""
    total_epochs, total_steps = cfg.total_epochs(num_frames), cfg.total_steps(num_frames)

    def on_epoch(stats: EpochStats) -> None:
        entry = {"epoch": stats.epoch, "loss": stats.loss, "train_psnr": stats.train_psnr}
        if cfg.rate_lambda > 0:
            entry["bpp"] = stats.penalty / cfg.rate_lambda
        run.history.append(entry)
        rate_status = f"  rate {entry['bpp']:.4f} bpp" if entry.get("bpp") else ""
        bar.update(status=f"epoch {stats.epoch}/{total_epochs}  loss {stats.loss:.4f}  PSNR {stats.train_psnr:.2f} dB{rate_status}")
        if stats.epoch % cfg.checkpoint_every == 0 or stats.epoch == total_epochs:
            run.save(min(stats.epoch * cfg.steps_per_epoch(num_frames), total_steps))

    return on_epoch


def _measure(run: _Run, video: Video, device, masks_u8: np.ndarray | None = None) -> dict:
    """PSNR and MS-SSIM of the trained network (and with ``masks_u8``, a SA-NeRV fit's edge masks, its PSNR on
    the edge pixels). A rate-aware network is meant to be decoded through its quantizers: that network is
    measured, with the unquantized weights' PSNR beside it."""
    if run.rate is None or run.rate.rd is None:
        return evaluate_run(run.model, video, device, masks_u8)
    from vcm.nerv.rate_aware import Quantized

    with torch.no_grad():
        metrics = evaluate_run(Quantized(run.rate.rd), video, device, masks_u8)
        plain = evaluate_run(run.model, video, device)
    return {**metrics, "quantized": True, "unquantized_psnr": plain["psnr"], "unquantized_psnr_y": plain["psnr_y"]}


def to_device(frames_u8: np.ndarray, masks_u8: np.ndarray | None, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Frames (and masks) resident on the device as uint8."""
    frames = torch.from_numpy(np.ascontiguousarray(frames_u8)).to(device)
    masks = None if masks_u8 is None else torch.from_numpy(np.ascontiguousarray(masks_u8, dtype=np.uint8)).to(device)
    return frames, masks


def evaluate_run(model: torch.nn.Module, video: Video, device, masks_u8: np.ndarray | None = None) -> dict:
    progress.log(f"measuring the fitted network on {video.num_frames} frames (PSNR, MS-SSIM"
                 f"{', PSNR on edges' if masks_u8 is not None else ''})")
    recon = reconstruct(_unwrap(model), video.num_frames, device)
    return summarize(video.frames_u8, recon, masks_u8)


def _unwrap(model):
    return getattr(model, "_orig_mod", model)


def _state(model) -> dict:
    """State dict in the default (contiguous) memory format, on CPU."""
    return {k: v.detach().contiguous().cpu() for k, v in _unwrap(model).state_dict().items()}


def _resume(ckpt_path: Path, config: dict, model, opt, device, total: int, rate=None) -> tuple[int, list]:
    if not ckpt_path.exists():
        raise VcmError(nothing_to_resume(ckpt_path.parent, ckpt_path.name))
    try:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        old = ckpt["config"]
    except Exception as err:
        raise VcmError(f"{ckpt_path} cannot be read ({type(err).__name__}); the file is damaged") from None
    if old["video"]["fingerprint"] != config["video"]["fingerprint"]:
        raise VcmError(f"{ckpt_path.parent} was trained on other frames (different video or --frames); cannot resume")
    was, now = old.get("masks") or {}, config.get("masks") or {}
    if was.get("fingerprint") and now.get("fingerprint") and was["fingerprint"] != now["fingerprint"]:
        raise VcmError(f"cannot resume: {ckpt_path.parent} was trained with other edge masks "
                       f"({Path(str(was.get('path'))).name}, now {Path(str(now.get('path'))).name}; their content "
                       f"differs); resume with them, or start a new run with --out")
    if old["model"] != config["model"] or registry.arch_of(old) != config["arch"]:
        differs = _network_difference(registry.arch_of(old), old["model"], config["arch"], config["model"])
        raise VcmError(f"cannot resume: {ckpt_path.parent} holds another network ({differs}); resume with the "
                       f"options it started with (preset, --params, --width-scale), or start a new run with --out")
    # What shapes the steps already taken: the loss, the batches and the optimiser's schedule. A run resumed
    # with another of these would go on as a different fit while config.json names one value for all of it.
    for key in ("loss", "beta", "batch", "seed", "mask_weight", "rate_lambda", "rate_start", "rate_noise_fraction",
                "lr", "betas", "warmup", "warmup_min_steps", "grad_clip", "grid_lr_scale"):
        if _option_differs(key, old["train"], config["train"], total):
            before, now = _recorded(old["train"], key), _recorded(config["train"], key)
            raise VcmError(f"cannot resume: training option {key!r} was {before!r}, now {now!r} "
                           f"(resume with the run's value, or start a new run with --out)")
    model.load_state_dict(ckpt["model"])
    if rate is not None:  # once the rate term had joined, its parameters are in the optimizer: add them first
        rate.restore(int(ckpt["step"]), ckpt.get("quantizers"))
    opt.load_state_dict(ckpt["optimizer"])
    return int(ckpt["step"]), list(ckpt.get("history", []))


def _network_difference(old_arch: str, old: dict, arch: str, now: dict, shown: int = 3) -> str:
    """What differs between two networks' configs, in words: the representation, else the first ``shown`` fields
    that differ (``fc_dim 2, now 3``), where "a different model configuration" named none."""
    if old_arch != arch:
        return f"representation {old_arch}, now {arch}"
    return differences(old, now, shown)


def run_differs(run_dir: Path, video: Video, model_cfg, cfg: TrainConfig, masks: dict | None = None,
                completed: Callable[[dict], dict] | None = None) -> str | None:
    """What differs between the fit in ``run_dir``, finished or stopped with a checkpoint, and the one ``video``,
    ``model_cfg`` and ``cfg`` would train (other frames, another network, a training option, and with ``masks``,
    the fields its edge masks' record in config.json must hold, that record first passed through ``completed``
    when given: fields a fit recorded before they were can be read elsewhere), in words; None when it is the same fit or
    ``run_dir`` holds none. A fit cache (a CTC run's ``fits/``) reuses or resumes a run only when None: a stopped
    fit of another config was resumed, and refused ("cannot resume: training option ...") in every point."""
    if not ((Path(run_dir) / METRICS).exists() or (Path(run_dir) / CHECKPOINT).exists()):
        return None
    try:
        old = json.loads((Path(run_dir) / CONFIG).read_text())
    except (OSError, ValueError):
        return "its config.json is unreadable"
    if not isinstance(old, dict) or (old.get("video") or {}).get("fingerprint") != video.fingerprint():
        return "other frames"
    if registry.arch_of(old) != registry.arch_of_config(model_cfg) or not _same(old.get("model"), model_cfg.to_dict()):
        return "another network"
    now, before, total = cfg.to_dict(), old.get("train") or {}, cfg.total_steps(video.num_frames)
    changed = [k for k in now if _option_differs(k, before, now, total)]
    if changed:
        return f"other training options ({', '.join(changed)})"
    recorded = old.get("masks") if isinstance(old.get("masks"), dict) else {}
    if completed is not None:
        recorded = completed(recorded)
    if masks is not None and any(not _same(recorded.get(k), v) for k, v in masks.items()):
        return "other edge masks"
    return None


def _same(a, b) -> bool:
    """Equal as config.json records them."""
    return _as_recorded(a) == _as_recorded(b)


def _as_recorded(value):
    """A value as config.json holds it (a tuple such as Adam's betas is a list there, at any depth)."""
    return json.loads(json.dumps(value))


def load_quantizers(run_dir: Path) -> dict | None:
    """The learned quantizers of a rate-aware run (``vcm fit --lambda``), or None."""
    return _read_checkpoint(Path(run_dir) / CHECKPOINT).get("quantizers")


def _read_checkpoint(ckpt_path: Path) -> dict:
    """A run's checkpoint on the CPU; a missing or damaged file is one clear error."""
    if not ckpt_path.exists():
        raise VcmError(f"{ckpt_path.parent} holds no {CHECKPOINT}; run vcm fit first")
    return load_torch_dict(ckpt_path, "a vcm fit's checkpoint")


def run_state(run_dir: Path) -> dict:
    """What a run folder holds, read from its checkpoint and records (nothing is built or trained):
    ``config`` (as config.json), ``arch``, ``model`` and ``params`` (its representation, network config and
    parameters, checked as :func:`stored_model_config` does), ``step`` (optimiser steps done), ``total_steps``
    (of its schedule), ``finished`` (all steps run and measured) and ``metrics`` (metrics.json, None before the end)."""
    run_dir = Path(run_dir)
    ckpt = _read_checkpoint(run_dir / CHECKPOINT)
    try:
        config, step = ckpt["config"], int(ckpt["step"])
        total = TrainConfig.from_dict(config["train"]).total_steps(int(config["video"]["num_frames"]))
    except (KeyError, TypeError, ValueError):
        raise VcmError(f"{run_dir / CHECKPOINT} does not hold a vcm fit's state; the file is damaged") from None
    arch, model_cfg, params = stored_model_config(run_dir / CHECKPOINT, ckpt)
    metrics = None
    if (run_dir / METRICS).is_file():
        metrics = read_metrics(run_dir)
    return {"config": config, "arch": arch, "model": model_cfg, "params": params, "step": step, "total_steps": total,
            "finished": metrics is not None, "metrics": metrics}


# A finished fit's measures in metrics.json that vcm reads back (vcm info, a CTC point's fit time); None where not
# measured (train_seconds is always measured).
_METRIC_NUMBERS = ("psnr", "psnr_y", "psnr_yuv", "ms_ssim", "train_seconds")


def read_metrics(run_dir: Path) -> dict:
    """A finished fit's ``metrics.json``, checked: an object whose measures are numbers (or None); a file that
    is not is damaged, in one line (it was a ValueError of a format or a KeyError where it is read)."""
    path = Path(run_dir) / METRICS
    try:
        metrics = json.loads(path.read_text())
    except ValueError:
        raise VcmError(f"{path} is damaged (not JSON)") from None
    if not isinstance(metrics, dict):
        raise VcmError(f"{path} is damaged (not an object)")
    for key in _METRIC_NUMBERS:
        v = metrics.get(key)
        if (v is not None or key == "train_seconds") and not finite_number(v):
            raise VcmError(f"{path} is damaged (field {key!r} is not a number)")
    return metrics
