"""The learned-image-codec registry and checkpoint loading.

Architectures: ``tcm`` (the SA-ICM network, official size), ``tcm-tiny`` (for tests and smoke
runs), and CompressAI's ``cheng2020-attn`` / ``mbt2018-mean`` (built by CompressAI's zoo with
``pretrained=False``; ``quality`` picks their width). All expose forward / compress / decompress
/ update.

Checkpoints: vcm's own (``{"arch", "config", "state_dict", ...}``) or the official SA-ICM / TCM
files (``{"state_dict": ...}`` possibly with ``module.`` prefixes, N and M read from the weights).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from vcm.errors import VcmError
from vcm.fsutil import load_torch_dict, require_input
from vcm.icm.archs import TINY, TCMConfig, check_arch, default_tcm, missing_checkpoint
from vcm.icm.tcm import TCM


def create(arch: str, config: dict | None = None, quality: int = 6) -> torch.nn.Module:
    check_arch(arch)
    config = dict(config or {})
    if arch in ("tcm", "tcm-tiny"):
        try:
            cfg = TCMConfig.from_dict(config) if config else default_tcm(arch)
        except ValueError as err:
            raise VcmError(f"{arch} configuration: {err}") from None
        return TCM(cfg)
    if arch in ("cheng2020-attn", "mbt2018-mean"):
        from compressai import zoo

        fn = {"cheng2020-attn": zoo.cheng2020_attn, "mbt2018-mean": zoo.mbt2018_mean}[arch]
        return fn(quality=int(config.get("quality", quality)), pretrained=False)
    raise AssertionError(f"{arch} is in ARCHS but create() does not build it")


def arch_config(model: torch.nn.Module, arch: str, quality: int = 6) -> dict:
    if isinstance(model, TCM):
        return model.cfg.to_dict()
    return {"quality": quality}


def pad_multiple(model: torch.nn.Module) -> int:
    return model.cfg.pad_multiple if isinstance(model, TCM) else 64


def decode_bytes_per_pixel(model: torch.nn.Module) -> int:
    """Peak memory of coding one frame per padded pixel. Measured for TCM (maximum resident size over
    compress + decompress): N = 16 at 512²: 617 B (38·N); N = 128: 5.4 KB at 512² (42·N), 7.3 KB at
    256² (57·N). 64·N is kept as the estimate."""
    n = model.cfg.N if isinstance(model, TCM) else int(getattr(model, "N", 192))
    return 64 * n


def string_symbols(model: torch.nn.Module, latent: tuple[int, int]) -> list[int]:
    """Symbols the entropy decoder reads from each of one frame's strings, in stream order, for a
    hyper-latent of ``latent`` = (h, w) (y is 4× larger along each axis): TCM writes one string per
    channel slice of y, then z; CompressAI's models write y, then z."""
    h, w = latent
    if isinstance(model, TCM):
        slice_channels = model.cfg.M // model.cfg.num_slices
        return [slice_channels * 16 * h * w] * model.cfg.num_slices + [model.cfg.z_channels * h * w]
    return [int(model.M) * 16 * h * w, int(model.entropy_bottleneck.channels) * h * w]


def fingerprint(path: Path) -> str:
    h = hashlib.sha256(str(os.path.getsize(path)).encode())
    with open(path, "rb") as f:
        h.update(f.read(4 << 20))
    return h.hexdigest()[:16]


def _strip(state: dict) -> dict:
    return {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}


def _infer_tcm(state: dict, base: TCMConfig) -> TCMConfig:
    """Official TCM/SA-ICM weights: N from g_a's first conv, M from its last; the rest from ``base``."""
    try:
        n = state["g_a.0.conv1.weight"].shape[0] // 2
        last = max(int(k.split(".")[1]) for k in state if k.startswith("g_a.") and k.split(".")[1].isdigit())
        m = state[f"g_a.{last}.weight"].shape[0]
    except (KeyError, ValueError):
        raise VcmError("the checkpoint's weights are not a TCM network (no g_a layers)") from None
    from dataclasses import replace

    return replace(base, N=n, M=m)


def load_checkpoint(path: Path, arch: str | None = None, device="cpu",
                    own_arch: bool = False) -> tuple[torch.nn.Module, str, dict]:
    """(model in eval mode with entropy tables updated, arch, config) from a vcm or official checkpoint. ``arch``:
    the architecture to build, where the checkpoint records none (an official one); ``own_arch``: refuse an ``arch``
    other than the one the checkpoint records (an encoder names its streams' architecture after it)."""
    path = Path(path)
    require_input(path, "checkpoint", missing=missing_checkpoint(path))
    ckpt = load_torch_dict(path, "an image codec's checkpoint (a dict with 'state_dict')")
    state = _strip(ckpt.get("state_dict", ckpt))
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VcmError(f"{path.name} holds no state_dict of tensors")
    recorded = ckpt.get("arch")
    if own_arch and arch is not None and recorded is not None and arch != recorded:
        # built as the named architecture, it coded a stream labelled with it, or its weights failed to load
        raise VcmError(f"{path.name} holds a {recorded} network, not {arch}: an architecture is named only for a "
                       f"checkpoint that records none (vcm icm train records its own)")
    arch = arch or recorded or "tcm"
    config = ckpt.get("config")
    if config is None and arch in ("tcm", "tcm-tiny"):
        config = _infer_tcm(state, TINY if arch == "tcm-tiny" else TCMConfig()).to_dict()
    model = create(arch, config)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise VcmError(f"{path.name} does not fit the {arch} architecture "
                       f"({first[1].strip()[:120] if len(first) > 1 else first[0][:120]})") from None
    model.update(force=True)
    return model.to(device).eval(), arch, arch_config(model, arch, int((config or {}).get("quality", 6)))
