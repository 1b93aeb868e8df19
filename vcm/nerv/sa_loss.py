"""SA-NeRV loss, eq. (6), and the choice of implementation.

    L = β·L1(x̂, x) + (1−β)·(1 − ssim(x̂, x))
      + w·[β·L1(x̂⊙s, x⊙s) + (1−β)·(1 − ssim(x̂⊙s, x⊙s))]

L1 is the mean absolute difference over all B·3·H·W values (masked-out pixels count as zeros,
so the masked term is ‖x⊙s − x̂⊙s‖₁ normalised like the unmasked one); ssim is
pytorch-msssim's (11-tap Gaussian σ = 1.5, valid windows, C1 = 0.01², C2 = 0.03², data
range 1, mean over the batch). w = 1 is the paper's equation.

Shapes: x̂, x ``float [B,3,H,W]`` in [0,1]; s ``uint8/bool/float [B,1,H,W]`` in {0,1}.
"""

from __future__ import annotations

import torch

from vcm.errors import VcmError
from vcm.nerv.loss import ClipLoss, l1_ssim

IMPLS = ("auto", "torch", "triton")


def sa_nerv_loss(x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, beta: float = 0.7,
                 mask_weight: float = 1.0) -> torch.Tensor:
    """Reference implementation (and the CPU path) of eq. (6)."""
    s = mask.to(x.dtype)
    return l1_ssim(x_hat, x, beta) + mask_weight * l1_ssim(x_hat * s, x * s, beta)


class ClipSaLoss:
    """Eq. (6) on frames of one clip: ``loss(x̂, x, s, idx)`` with ``x = frames[idx] / 255`` and
    ``s = masks[idx]`` (``frames_u8 uint8 [T,3,H,W]``, ``masks_u8 uint8 [T,1,H,W]`` in {0,1}, on the
    training device). Both terms' targets, x and x⊙s, are fixed per frame, so their SSIM statistics are
    computed once per clip as :class:`vcm.nerv.loss.ClipLoss` does for eq. (4): twelve Gaussian passes a
    step instead of twenty (carphone, batch 4, one thread: 44 ms forward and backward instead of 51)."""

    def __init__(self, frames_u8: torch.Tensor, masks_u8: torch.Tensor, beta: float = 0.7, mask_weight: float = 1.0):
        self.plain = ClipLoss(frames_u8, beta)
        self.masked = ClipLoss(frames_u8 * masks_u8.to(frames_u8.dtype), beta)  # x⊙s, exactly: s is 0 or 1
        self.mask_weight = mask_weight

    def __call__(self, x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        s = mask.to(x.dtype)
        return self.plain(x_hat, x, idx) + self.mask_weight * self.masked(x_hat * s, x * s, idx)


def sa_nerv_terms(x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The four terms ``[L1, SSIM, L1 masked, SSIM masked]`` (reference), ``float [4]``."""
    from pytorch_msssim import ssim

    s = mask.to(x.dtype)
    return torch.stack([
        (x_hat - x).abs().mean(), ssim(x_hat, x, data_range=1.0, size_average=True),
        (x_hat * s - x * s).abs().mean(), ssim(x_hat * s, x * s, data_range=1.0, size_average=True),
    ])


def triton_available(device) -> bool:
    import os

    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    if torch.device(device).type != "cuda":
        return False
    import importlib.util

    return importlib.util.find_spec("triton") is not None


def sa_nerv_loss_fn(beta: float, mask_weight: float, impl: str, device, clip: tuple | None = None):
    """``loss(x_hat, x, mask, idx=None)`` for ``impl``: auto = Triton on CUDA, PyTorch elsewhere. The one
    place that chooses: the kernel module never imports this one, and a representation never sees which
    implementation computes its loss (frames smaller than the kernel's window go to PyTorch). ``clip``:
    the training clip's ``(frames_u8, masks_u8)`` on the device, with which PyTorch's path computes the
    targets' statistics once (:class:`ClipSaLoss`; ``idx``, the batch's frame indices, is then required)."""
    if impl not in IMPLS:
        raise VcmError(f"--loss-impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    use_triton = impl == "triton" or (impl == "auto" and torch.device(device).type == "cuda" and triton_available(device))
    if use_triton:
        if not triton_available(device):
            raise VcmError("--loss-impl triton needs a CUDA GPU with Triton (or TRITON_INTERPRET=1 for testing)")
        from vcm.nerv.sa_loss_triton import MIN_SIDE, fused_sa_nerv_loss

        def loss(x_hat, x, mask, idx=None):
            if min(x_hat.shape[-2:]) < MIN_SIDE:
                return sa_nerv_loss(x_hat, x, mask, beta, mask_weight)
            return fused_sa_nerv_loss(x_hat, x, mask, beta, mask_weight)

        return loss
    if clip is not None:
        return ClipSaLoss(*clip, beta, mask_weight)
    return lambda x_hat, x, mask, idx=None: sa_nerv_loss(x_hat, x, mask, beta, mask_weight)
