"""A representation's frames: the time of each frame and the decoder's exact output.

Shared by training (which samples frame times) and decoding (which must not import training).
"""

from __future__ import annotations

import numpy as np
import torch


def frame_times(num_frames: int, device) -> torch.Tensor:
    """Normalised frame index t = i / T in [0, 1), ``float [T]``."""
    return torch.arange(num_frames, device=device, dtype=torch.float32) / num_frames


@torch.no_grad()
def reconstruct(model: torch.nn.Module, num_frames: int, device, batch: int = 8) -> np.ndarray:
    """Decode all frames: ``uint8 [T,3,H,W]`` (round(255·x̂), the decoder's exact output)."""
    model = model.to(device).eval()
    t_all = frame_times(num_frames, device)
    return np.concatenate([to_u8(model(t_all[i:i + batch])) for i in range(0, num_frames, batch)])


def to_u8(x_hat: torch.Tensor) -> np.ndarray:
    """A network's output ``float [B,3,H,W]`` in [0, 1] → the decoder's frames ``uint8 [B,3,H,W]``."""
    return torch.round(x_hat.float().clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()
