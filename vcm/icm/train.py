"""``vcm icm train``: a learned image codec trained with the SA-ICM loss, eq. (5).

    L = λ · 255² · mse(x ⊙ s, x̂ ⊙ s) + bpp          (``--masks sam``, s = SAM edge mask)
    L = λ · 255² · mse(x, x̂) + bpp                   (``--masks none``: the plain eq. (1) baseline)

as the reference scales it: mse is the mean over all B·3·H·W values (masked-out pixels count as
zeros) of [0,1] images, bpp = Σ −log2(likelihoods of y and z) / (B·H·W). Adam (lr 1e-4) on the
network, a separate Adam (1e-3) on the entropy bottleneck's quantiles minimising its auxiliary
loss, gradient norm clipped to 1.0, random crops. Edge masks are made once per image and cached.
Checkpoints (``checkpoint.pth.tar``: arch, config, state_dict, optimizers, epoch, history, random
states) are written atomically every epoch, and on Ctrl-C or SIGTERM after the step in progress (with where
in its epoch it stopped); ``--resume`` continues from there as the run would have gone on.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from vcm import progress
from vcm.device import rng_state, set_rng_state
from vcm.diverged import TrainingDiverged, refuse_nonfinite
from vcm.errors import VcmError
from vcm.fsutil import atomic_path, open_regular, run_lock, save_torch, write_json
from vcm.icm.models import arch_config, create, pad_multiple
from vcm.icm.train_config import CHECKPOINT, SUMMARY, IcmTrainConfig, check_run_folder
from vcm.video.source import _read_image, image_files


def list_images(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise VcmError(f"{folder} is not a folder of images")
    files = image_files(folder)
    if not files:
        raise VcmError(f"{folder} holds no PNG/JPEG images")
    return files


def _image_key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def images_key(files: list[Path], keys: list[str]) -> str:
    """The training images' names and bytes (``keys``: each one's :func:`_image_key`), digested: what a resume must
    train on again."""
    h = hashlib.sha256()
    for f, key in zip(files, keys):
        h.update(f"{f.name}\0{key}\0".encode())
    return h.hexdigest()[:16]


def edge_masks(images: list[Path], pixels: list[np.ndarray], cache: Path, sam_checkpoint: Path | None,
               sam_model: str, alpha: float, device, settings_path: Path | None = None,
               keys: list[str] | None = None) -> list[np.ndarray]:
    """``bool [H,W]`` edge mask per image (``pixels``: their ``uint8 [3,H,W]``; ``keys``: their :func:`_image_key`
    where already read), made once with SAM and cached."""
    from vcm.masks.sam import frame_edges, load_sam, load_settings, make_generator
    from vcm.masks.store import pack

    keys = keys or [_image_key(p) for p in images]
    paths = [cache / f"{p.stem}_{key}_{sam_model}_a{alpha:g}.npy" for p, key in zip(images, keys)]
    settings = load_settings(settings_path)
    if sam_checkpoint is not None:  # made only with weights: a refusal without them left an empty run folder
        cache.mkdir(parents=True, exist_ok=True)
        _check_made_with(cache, sam_checkpoint, sam_model, settings)
    todo = [i for i, c in enumerate(paths) if not c.exists()]
    if todo:
        if sam_checkpoint is None:
            raise VcmError("--masks sam needs --sam-checkpoint PATH (or --masks none for the plain loss)")
        generator = make_generator(load_sam(sam_model, sam_checkpoint, device), settings, alpha)
        with progress.progress("SAM edge masks", len(todo)) as bar:
            for i in todo:
                mask = frame_edges(generator, pixels[i], settings.dilation)
                with atomic_path(paths[i]) as tmp, open(tmp, "wb") as f:
                    np.save(f, pack(mask))
                bar.advance(1)
    return [_cached_mask(p, *img.shape[1:]) for p, img in zip(paths, pixels)]


def _cached_mask(path: Path, height: int, width: int) -> np.ndarray:
    """A mask of the cache, ``bool [height, width]``; a damaged one (or one that is not a file) is one line."""
    from vcm.masks.store import unpack

    try:
        with open_regular(path, "rb", kept="cached edge mask") as f:
            packed = np.load(f, allow_pickle=False)
    except VcmError:
        raise
    except Exception:  # noqa: BLE001  (whatever numpy makes of damaged bytes)
        packed = None
    # unpackbits pads a short array with zeros: a mask cut short would have lost its edges without a word
    if not isinstance(packed, np.ndarray) or packed.dtype != np.uint8 or packed.shape != (-(-height * width // 8),):
        raise VcmError(f"{path} is a damaged cached edge mask; delete it and run again to make it anew")
    return unpack(packed, height, width)


MADE_WITH = "made_with.json"


def _check_made_with(cache: Path, sam_checkpoint: Path, sam_model: str, settings) -> None:
    """Refuse a run's cached masks made with other SAM weights or settings (a resume with another checkpoint
    trained on old masks for the images it had seen and new ones for the rest); record them on first use."""
    import json

    from vcm.masks.sam import checkpoint_fingerprint

    made_with = {"checkpoint_fingerprint": checkpoint_fingerprint(Path(sam_checkpoint), sam_model),
                 "settings": settings.to_dict()}
    record = cache / MADE_WITH
    try:
        with open_regular(record, kept="record of the masks' SAM weights") as f:
            before = json.loads(f.read())
    except FileNotFoundError:
        before = None
    except (OSError, ValueError):
        raise VcmError(f"{record} cannot be read, so the masks beside it cannot be checked against the SAM weights; "
                       f"start a new run with --out DIR") from None
    if before is None:  # a run's masks from before this record are taken as made with these weights
        write_json(record, made_with)
    elif before != json.loads(json.dumps(made_with)):
        what = "weights" if not isinstance(before, dict) or before.get("checkpoint_fingerprint") != made_with["checkpoint_fingerprint"] else "settings"
        raise VcmError(f"the edge masks in {cache} were made with other SAM {what} than --sam-checkpoint gives; "
                       f"give the ones this run was started with, or start a new run with --out DIR")


def _crop_batch(images, masks, crop: int, batch: int, gen: np.random.Generator):
    xs, ss = [], []
    for _ in range(batch):
        i = int(gen.integers(len(images)))
        img, m = images[i], masks[i]
        _, h, w = img.shape
        if h < crop or w < crop:  # pad small images by reflection to the crop size
            ph, pw = max(0, crop - h), max(0, crop - w)
            img = np.pad(img, ((0, 0), (0, ph), (0, pw)), mode="reflect")
            m = np.pad(m, ((0, ph), (0, pw)), mode="reflect")
            _, h, w = img.shape
        y0, x0 = int(gen.integers(h - crop + 1)), int(gen.integers(w - crop + 1))
        xs.append(img[:, y0:y0 + crop, x0:x0 + crop])
        ss.append(m[y0:y0 + crop, x0:x0 + crop])
    x = torch.from_numpy(np.stack(xs)).float() / 255
    s = torch.from_numpy(np.stack(ss)[:, None].astype(np.float32))
    return x, s


_DIVERGED_ADVICE = "lower the learning rate (vcm icm train --lr) and start a new run"


def rd_loss(out: dict, x: torch.Tensor, s: torch.Tensor | None, lmbda: float) -> tuple[torch.Tensor, dict]:
    """Eq. (5) (or (1) when ``s`` is None) → (loss, parts)."""
    b, _, h, w = x.shape
    bpp = sum(-torch.log2(lik).sum() for lik in out["likelihoods"].values()) / (b * h * w)
    x_hat = out["x_hat"]
    mse = ((x_hat - x) * s).square().mean() if s is not None else (x_hat - x).square().mean()
    return lmbda * 255**2 * mse + bpp, {"bpp": bpp, "mse": mse}


def _split_params(model):
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    return main, aux


@torch.no_grad()
def validate(model, images, masks, device) -> dict:
    """Mean estimated bpp, PSNR and masked PSNR (over edge pixels) of the forward pass on each whole image, padded as
    the encoder pads a frame (:func:`vcm.icm.codec.pad_to_multiple`) and measured on the image's own pixels: what
    ``vcm icm encode`` would spend and reach. (Cropped to the model's multiple instead, a 416x240 image lost a
    quarter of its pixels, and one under 64 px a side was left out, all of them leaving the figures empty.)"""
    from vcm.icm.codec import crop_back, pad_to_multiple

    model.eval()
    mult = pad_multiple(model)
    bpps, psnrs, mpsnrs = [], [], []
    for img, m in zip(images, masks):
        _, h, w = img.shape
        x = torch.from_numpy(img).float().div(255)[None].to(device)
        xp, pads = pad_to_multiple(x, mult)
        out = model(xp)
        bpps.append(float(sum(-torch.log2(l).sum() for l in out["likelihoods"].values()) / (h * w)))
        err = (crop_back(out["x_hat"], pads, h, w).clamp(0, 1) - x).square()
        psnrs.append(10 * math.log10(1 / max(float(err.mean()), 1e-12)))
        if m is not None:
            s = torch.from_numpy(m.astype(np.float32)).to(device)
            if s.sum() > 0:
                mpsnrs.append(10 * math.log10(1 / max(float((err * s).sum() / (3 * s.sum())), 1e-12)))
    model.train()
    mean = lambda v: float(np.mean(v)) if v else None  # noqa: E731
    return {"bpp": mean(bpps), "psnr": mean(psnrs), "masked_psnr": mean(mpsnrs)}


# What an image holds while it trains (bytes a pixel): its RGB samples and its edge mask.
HELD_BYTES_PER_PIXEL = 4


def _check_images_fit_in_memory(files: list[Path]) -> None:
    """Refuse, in one line and before any is decoded, training images that would not fit in the memory this machine
    has free: every image is held decoded for the whole training (a large folder was read until the kernel ended
    the process). Sizes come from the images' headers."""
    from PIL import Image

    from vcm.memory import check_fits_in_memory

    need = 0
    for p in files:
        try:
            with Image.open(p) as im:
                need += HELD_BYTES_PER_PIXEL * im.size[0] * im.size[1]
        except Exception:  # noqa: BLE001  (reading it says what is wrong with it)
            continue
    check_fits_in_memory(need, f"the {len(files):,} training and validation images, decoded with their edge masks,",
                         "train on fewer or smaller images")


def _images_and_masks(files: list[Path], out: Path, cfg: IcmTrainConfig, sam_checkpoint: Path | None, device,
                      validation: bool = False, keys: list[str] | None = None) -> tuple[list[np.ndarray], list]:
    """The images ``files`` and their edge masks: SAM's with ``--masks sam``, else all-ones masks for training and
    None for validation (``keys``: as :func:`edge_masks` takes them)."""
    imgs = [_read_image(p) for p in files]
    if cfg.masks == "sam" and files:
        return imgs, edge_masks(files, imgs, out / "masks", sam_checkpoint, cfg.sam_model, cfg.alpha, device,
                                keys=keys)
    return imgs, [None] * len(imgs) if validation else [np.ones(i.shape[1:], bool) for i in imgs]


# What shapes the epochs already trained: resumed with another of these, a run would go on as a different
# codec (an SA-ICM run resumed with --masks none, another λ) while its checkpoint recorded only the new value.
_SAME_ON_RESUME = ("arch", "lmbda", "batch", "crop", "lr", "aux_lr", "clip", "masks", "alpha", "sam_model", "seed",
                   "steps_per_epoch")
_OPTION = {"lmbda": "--lambda", "aux_lr": "the aux learning rate", "clip": "gradient clipping",
           "steps_per_epoch": "--steps-per-epoch", "sam_model": "--sam-model"}


def _resume(ckpt_path: Path, cfg: "IcmTrainConfig", images: str, model, opt, aux_opt, device
            ) -> tuple[int, list, dict | None]:
    """Load a checkpoint into the model, both optimizers and the random generator → (epochs done, history, where in
    the next epoch a stopped run stopped or None); refuse one trained with other settings or on other images
    (``images``: :func:`images_key`), or for more epochs than ``cfg`` now asks for."""
    from vcm.fsutil import load_torch_dict

    ckpt = load_torch_dict(ckpt_path, "an SA-ICM training checkpoint")
    before = ckpt.get("train") if isinstance(ckpt.get("train"), dict) else {}
    for key in _SAME_ON_RESUME:
        was, now = before.get(key), getattr(cfg, key)
        if was != now:
            raise VcmError(f"cannot resume: {ckpt_path.parent} was trained with {_OPTION.get(key, '--' + key)} {was!r}, "
                           f"now {now!r} (resume with the run's value, or start a new run with --out)")
    if ckpt.get("images") not in (None, images):  # (checkpoints written before it said none)
        raise VcmError(f"cannot resume: {ckpt_path.parent} was trained on other images (the --images folder's names "
                       f"or bytes differ); resume with the run's images, or start a new run with --out")
    done = int(ckpt["epoch"])
    if done > cfg.epochs:
        raise VcmError(f"cannot resume: {ckpt_path.parent} has trained {done} epochs, more than the {cfg.epochs} now "
                       f"asked for; give at least {done} (--epochs)")
    model.load_state_dict(ckpt["state_dict"])
    opt.load_state_dict(ckpt["optimizer"])
    aux_opt.load_state_dict(ckpt["aux_optimizer"])
    if "rng" in ckpt:  # (checkpoints written before it went on from the seed's state)
        set_rng_state(ckpt["rng"], device)
    return done, list(ckpt.get("history", [])), ckpt.get("stopped")


def train(images_dir: Path, out: Path, cfg: IcmTrainConfig, device, val_dir: Path | None = None,
          sam_checkpoint: Path | None = None, resume: bool = False, should_stop=None) -> dict:
    """Train the codec → its summary (also written to train.json); or, stopped by Ctrl-C, SIGTERM or
    ``should_stop(step)`` (polled after every step), ``{"checkpoint", "stopped": {epoch, step, steps}}`` once the
    checkpoint is saved, nothing summarised. The run folder is locked meanwhile: a second training into it (a
    --resume in another terminal) interleaved its checkpoints with this one's."""
    with run_lock(out, who="vcm icm train"):
        return _train(images_dir, Path(out), cfg, device, val_dir, sam_checkpoint, resume, should_stop)


def _train(images_dir: Path, out: Path, cfg: IcmTrainConfig, device, val_dir: Path | None,
           sam_checkpoint: Path | None, resume: bool, should_stop) -> dict:
    from vcm.nerv.train import StopFlag

    ckpt_path = out / CHECKPOINT
    check_run_folder(out, resume)  # under the lock: another training may have written it meanwhile
    cfg.check()
    torch.manual_seed(cfg.seed)
    files, val_files = list_images(images_dir), list_images(val_dir) if val_dir else []
    _check_images_fit_in_memory(files + val_files)
    model = create(cfg.arch).to(device).train()
    main, aux = _split_params(model)
    opt = torch.optim.Adam(main, lr=cfg.lr)
    aux_opt = torch.optim.Adam(aux, lr=cfg.aux_lr)
    keys = [_image_key(f) for f in files]  # each file read once for both the resume's check and the masks' cache
    trained_on = images_key(files, keys)
    epoch, history, stopped = (_resume(ckpt_path, cfg, trained_on, model, opt, aux_opt, device) if resume
                               else (0, [], None))  # refused before any mask is made for images it never saw
    imgs, masks = _images_and_masks(files, out, cfg, sam_checkpoint, device, keys=keys)
    val_imgs, val_masks = _images_and_masks(val_files, out, cfg, sam_checkpoint, device, validation=True)
    steps = cfg.steps_per_epoch or max(1, math.ceil(len(imgs) / cfg.batch))
    start, step = time.time(), 0

    def save(**where) -> None:
        refuse_nonfinite(model.state_dict(), "the codec", _DIVERGED_ADVICE)  # never over the last finite state
        save_torch(ckpt_path, {"arch": cfg.arch, "config": arch_config(model, cfg.arch), "state_dict": model.state_dict(),
                               "optimizer": opt.state_dict(), "aux_optimizer": aux_opt.state_dict(), "epoch": epoch,
                               "history": history, "train": asdict(cfg), "images": trained_on, "rng": rng_state(device),
                               **where})

    with StopFlag(should_stop) as stop, progress.progress(
            f"icm train ({cfg.arch}, {'SA-ICM' if cfg.masks == 'sam' else 'plain'})", cfg.epochs, completed=epoch) as bar:
        while epoch < cfg.epochs:
            gen = np.random.default_rng(cfg.seed * 7919 + epoch)
            sums = torch.zeros(3, device=device)
            first = 0
            if stopped is not None:  # this epoch was stopped part-way: its crops and sums go on from there
                if int(stopped["steps"]) != steps:
                    raise VcmError(f"cannot resume: {out} stopped at step {stopped['step']} of an epoch of "
                                   f"{stopped['steps']} steps, and these images make {steps}; resume with the run's "
                                   f"images (or --steps-per-epoch), or start a new run with --out")
                gen.bit_generator.state, first = stopped["crops"], int(stopped["step"])
                sums = torch.tensor(stopped["sums"], device=device)
                progress.log(f"continuing epoch {epoch + 1} at step {first} of {steps}")
                stopped = None
            for k in range(first, steps):
                x, s = _crop_batch(imgs, masks, cfg.crop, cfg.batch, gen)
                x, s = x.to(device), (s.to(device) if cfg.masks == "sam" else None)
                loss, parts = rd_loss(model(x), x, s, cfg.lmbda)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(main, cfg.clip)
                opt.step()
                aux_loss = model.aux_loss()
                aux_opt.zero_grad(set_to_none=True)
                aux_loss.backward()
                aux_opt.step()
                sums += torch.stack([loss.detach(), parts["bpp"].detach(), parts["mse"].detach()])
                step += 1
                if stop(step) and k + 1 < steps:
                    save(stopped={"step": k + 1, "steps": steps, "crops": gen.bit_generator.state,
                                  "sums": sums.tolist()})
                    return {"checkpoint": str(ckpt_path), "stopped": {"epoch": epoch + 1, "step": k + 1, "steps": steps}}
            epoch += 1
            loss_v, bpp_v, mse_v = (sums / steps).tolist()
            if not math.isfinite(loss_v):
                raise TrainingDiverged(f"training diverged: the loss was {loss_v} in epoch {epoch}; {_DIVERGED_ADVICE}")
            record = {"epoch": epoch, "loss": loss_v, "bpp": bpp_v, "masked_mse" if cfg.masks == "sam" else "mse": mse_v}
            if val_imgs:
                record["val"] = validate(model, val_imgs, val_masks, device)
            history.append(record)
            save()
            bar.advance(1, status=f"loss {loss_v:.4f}  bpp {bpp_v:.3f}")
            if stop(step) and epoch < cfg.epochs:
                return {"checkpoint": str(ckpt_path), "stopped": {"epoch": epoch + 1, "step": 0, "steps": steps}}
    summary = {"checkpoint": str(ckpt_path), "epochs": epoch, "history": history, "seconds": time.time() - start,
               "images": len(imgs), "masks": cfg.masks, "lambda": cfg.lmbda}
    write_json(out / SUMMARY, summary)
    return summary
