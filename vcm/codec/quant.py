"""Per-channel affine quantization with exactly 2^b − 1 levels and an exact zero.

For a channel with values in [lo, hi] (lo ≤ 0 ≤ hi after widening to include 0):
    scale = (hi − lo) / (L − 1),  L = 2^b − 1 levels, symbols q ∈ {0 … L−1}
    z = clamp(round(−lo / scale), 0, L−1)               (integer zero point)
    q = clamp(round(w / scale) + z, 0, L−1)
    ŵ = (q − z) · scale                                  (float32, identical in encoder and decoder)
The scale is rounded up to bfloat16 (it travels in 16 bits) before quantizing.
Zero is exactly representable (q = z ↦ 0.0), so pruned weights stay exactly zero and need no mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class QTensor:
    """A quantized tensor. ``centered`` = q − z, ``int32 [C, K]``; ``scale`` float32 [C]; ``zero`` int32 [C]."""

    name: str
    shape: tuple[int, ...]
    bits: int
    scale: np.ndarray
    zero: np.ndarray
    centered: np.ndarray

    def dequantize(self) -> np.ndarray:
        return dequantize(self.centered, self.scale).reshape(self.shape)


def levels(bits: int) -> int:
    return (1 << bits) - 1


def quantize(name: str, w: np.ndarray, bits: int, channels: int) -> QTensor:
    """Quantize ``w`` (any shape, first axis grouped into ``channels`` contiguous channels)."""
    w2 = np.asarray(w, dtype=np.float32).reshape(channels, -1)
    qmax = levels(bits) - 1
    lo = np.minimum(w2.min(axis=1), 0).astype(np.float32)
    hi = np.maximum(w2.max(axis=1), 0).astype(np.float32)
    scale = ((hi - lo) / np.float32(qmax)).astype(np.float32)
    scale[scale == 0] = np.float32(1.0)  # an all-zero channel
    scale = bf16_ceil(scale)
    zero = np.clip(np.rint(-lo / scale), 0, qmax).astype(np.int32)
    q = np.clip(np.rint(w2 / scale[:, None]) + zero[:, None], 0, qmax).astype(np.int32)
    return QTensor(name, tuple(w.shape), bits, scale, zero, q - zero[:, None])


def bf16_ceil(x: np.ndarray) -> np.ndarray:
    """Smallest bfloat16 values ≥ positive float32 ``x`` (as float32): scales travel as 16 bits,
    rounded up so the quantization range is never clipped."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32)
    up = (bits + np.uint32(0xFFFF)) & np.uint32(0xFFFF0000)
    return up.view(np.float32)


def bf16_bytes(x: np.ndarray) -> bytes:
    return (np.asarray(x, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()


def bf16_from(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def dequantize(centered: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(q − z) · scale in float32, ``[C, K]``: the one dequantization encoder and decoder share."""
    return centered.astype(np.float32) * scale.astype(np.float32)[:, None]


def fake_quantize(w: torch.Tensor, bits: int, channels: int) -> torch.Tensor:
    """Quantize-dequantize in torch with a straight-through gradient (for QAT)."""
    w2 = w.reshape(channels, -1)
    qmax = levels(bits) - 1
    with torch.no_grad():
        lo = w2.min(dim=1).values.clamp(max=0)
        hi = w2.max(dim=1).values.clamp(min=0)
        scale = (hi - lo) / qmax
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        scale = torch.from_numpy(bf16_ceil(scale.cpu().numpy())).to(w.device)
        zero = torch.round(-lo / scale).clamp(0, qmax)
        q = (torch.round(w2 / scale[:, None]) + zero[:, None]).clamp(0, qmax)
        deq = ((q - zero[:, None]) * scale[:, None]).reshape(w.shape)
    return w + (deq - w).detach()
