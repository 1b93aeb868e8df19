"""NeRV training losses (facts §1).

- eq. (4) NeRV:    L = β·‖x − x̂‖₁ + (1 − β)·(1 − ssim(x, x̂))
- eq. (6) SA-NeRV: L = eq.(4) + w·[β·‖x⊙s − x̂⊙s‖₁ + (1 − β)·(1 − ssim(x⊙s, x̂⊙s))]

x, x̂: ``float [B,3,H,W]`` in [0,1]; s: ``float/bool [B,1,H,W]`` edge mask in {0,1}.
‖·‖₁ is the mean absolute error; ssim is pytorch-msssim's (11-tap Gaussian, σ = 1.5,
data range 1, averaged over the batch) — the reference NeRV's choice.

Every Gaussian pass runs on a channels-last copy of its input: oneDNN's depthwise convolution is
2–3× faster on NHWC than on NCHW with three channels. Forward and gradient were bit-identical to the
NCHW call where measured (docs/hinerv.md): the same function, computed faster.

Training fits one clip, so the target's half of SSIM's window statistics (its blurred mean and
blurred square) is the same at every step: :class:`ClipLoss` computes it once per clip and the
steps blur only what depends on x̂ (six of SSIM's ten Gaussian passes instead of ten).
"""

from __future__ import annotations

import warnings

import torch
from pytorch_msssim import ssim
from pytorch_msssim.ssim import _fspecial_gauss_1d, gaussian_filter

# On frames under 11 px a side SSIM blurs along the other side only, as pytorch-msssim does; it says so in a warning
# per side, which reached `vcm fit`'s user as four lines naming a file of the library, with nothing to act on.
warnings.filterwarnings("ignore", message="Skipping Gaussian Smoothing", category=UserWarning, module="pytorch_msssim")

WINDOW, SIGMA = 11, 1.5  # pytorch-msssim's defaults
C1, C2 = 0.01 ** 2, 0.03 ** 2  # K1², K2² at data range 1
CACHE_BYTES = 1 << 30  # the most memory a clip's target statistics may take (else SSIM runs in full each step)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def blur(x: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """pytorch-msssim's ``gaussian_filter`` (valid windows) of ``x [B, C, H, W]``, run channels-last."""
    return gaussian_filter(_nhwc(x), win)


def l1_ssim(x_hat: torch.Tensor, x: torch.Tensor, beta: float = 0.7) -> torch.Tensor:
    """β·L1 + (1−β)·(1−SSIM), a scalar."""
    l1 = (x_hat - x).abs().mean()
    if beta >= 1.0:
        return l1
    # channels-last inputs keep every product SSIM blurs channels-last (the fast, bit-identical path)
    return beta * l1 + (1 - beta) * (1 - ssim(_nhwc(x_hat), _nhwc(x), data_range=1.0, size_average=True))


def nerv_loss(x_hat: torch.Tensor, x: torch.Tensor, beta: float = 0.7) -> torch.Tensor:
    """Eq. (4)."""
    return l1_ssim(x_hat, x, beta)


def _window(channels: int, device) -> torch.Tensor:
    """pytorch-msssim's 1-D Gaussian as its ``gaussian_filter`` takes it, ``float32 [C, 1, 1, 11]``."""
    return _fspecial_gauss_1d(WINDOW, SIGMA).to(device).repeat(channels, 1, 1, 1)


def target_stats(x: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """The target's half of SSIM's window statistics, ``[B, 2, C, H−10, W−10]``: blurred x and blurred x²."""
    return torch.stack([blur(x, win), blur(x * x, win)], dim=1)


def ssim_given_target(x_hat: torch.Tensor, x: torch.Tensor, stats: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """pytorch-msssim's SSIM (mean over the batch) with the target's statistics precomputed
    (``stats`` from :func:`target_stats` of ``x``); frames of at least 11×11. The same formula as the
    library's ``_ssim``, which blurs the target's maps itself at every call."""
    mu1, mu2 = blur(x_hat, win), stats[:, 0]
    mu1_sq, mu2_sq, mu1_mu2 = mu1.pow(2), mu2.pow(2), mu1 * mu2
    sigma1_sq = blur(x_hat * x_hat, win) - mu1_sq
    sigma2_sq = stats[:, 1] - mu2_sq
    sigma12 = blur(x_hat * x, win) - mu1_mu2
    cs_map = (2 * sigma12 + C2) / (sigma1_sq + sigma2_sq + C2)
    ssim_map = ((2 * mu1_mu2 + C1) / (mu1_sq + mu2_sq + C1)) * cs_map
    return torch.flatten(ssim_map, 2).mean(-1).mean()


class ClipLoss:
    """Eq. (4) on frames of one clip: ``loss(x̂, x, idx)`` with ``x = frames[idx] / 255``.

    ``frames_u8``: ``uint8 [T, 3, H, W]`` on the training device. The target's SSIM statistics of every
    frame are computed once (in chunks, without gradients) when the frames are at least 11×11 and the
    statistics fit in ``cache_bytes``; otherwise each step computes SSIM in full, as before."""

    def __init__(self, frames_u8: torch.Tensor, beta: float = 0.7, cache_bytes: int = CACHE_BYTES, chunk: int = 8):
        self.beta = beta
        t, c, h, w = frames_u8.shape
        self.stats = None
        self.win = _window(c, frames_u8.device)
        if beta < 1.0 and min(h, w) >= WINDOW and 2 * t * c * (h - WINDOW + 1) * (w - WINDOW + 1) * 4 <= cache_bytes:
            with torch.no_grad():
                self.stats = torch.cat([target_stats(frames_u8[i:i + chunk].float().div_(255), self.win)
                                        for i in range(0, t, chunk)])

    def __call__(self, x_hat: torch.Tensor, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if self.stats is None:
            return l1_ssim(x_hat, x, self.beta)
        l1 = (x_hat - x).abs().mean()
        return self.beta * l1 + (1 - self.beta) * (1 - ssim_given_target(x_hat, x, self.stats[idx], self.win))
