"""NeRV training losses (facts §1).

- eq. (4) NeRV:    L = β·‖x − x̂‖₁ + (1 − β)·(1 − ssim(x, x̂))
- eq. (6) SA-NeRV: L = eq.(4) + w·[β·‖x⊙s − x̂⊙s‖₁ + (1 − β)·(1 − ssim(x⊙s, x̂⊙s))]

x, x̂: ``float [B,3,H,W]`` in [0,1]; s: ``float/bool [B,1,H,W]`` edge mask in {0,1}.
‖·‖₁ is the mean absolute error; ssim is pytorch-msssim's (11-tap Gaussian, σ = 1.5,
data range 1, averaged over the batch) — the reference NeRV's choice.
"""

from __future__ import annotations

import torch
from pytorch_msssim import ssim


def l1_ssim(x_hat: torch.Tensor, x: torch.Tensor, beta: float = 0.7) -> torch.Tensor:
    """β·L1 + (1−β)·(1−SSIM), a scalar."""
    l1 = (x_hat - x).abs().mean()
    if beta >= 1.0:
        return l1
    return beta * l1 + (1 - beta) * (1 - ssim(x_hat, x, data_range=1.0, size_average=True))


def nerv_loss(x_hat: torch.Tensor, x: torch.Tensor, beta: float = 0.7) -> torch.Tensor:
    """Eq. (4)."""
    return l1_ssim(x_hat, x, beta)
