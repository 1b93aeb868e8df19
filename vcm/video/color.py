"""The project's one YUV <-> RGB conversion.

Every codec's decoded output reaches the detector and the quality metrics through this module,
so all of them are measured in the same colour space.

Convention (the SFU-HW sources): **BT.601, limited ("TV") range, 4:2:0**.
- Y' = 16 + 219·(0.299 R + 0.587 G + 0.114 B)/255, scaled by 2^(bitdepth-8)
- Cb, Cr = 128 + 224·(B−Y or R−Y scaled)/255, scaled likewise
- Chroma down-sampling: mean of each 2×2 block (co-sited with the block centre);
  up-sampling: each chroma sample repeated over its 2×2 block. With this pair,
  YUV → RGB → YUV is the identity up to rounding and RGB clipping.
Odd widths/heights: the chroma planes have ceil(W/2) × ceil(H/2) samples.

Arrays: ``rgb_u8`` is ``uint8 [T, 3, H, W]``; planes are ``uint8``/``uint16 [T, h, w]``.
"""

from __future__ import annotations

import numpy as np

MATRIX = "BT.601"
RANGE = "limited"
KR, KB = 0.299, 0.114
KG = 1.0 - KR - KB

# Full-range RGB in [0,1] -> (Y in [0,1], Cb, Cr in [-0.5, 0.5])
_RGB_TO_YCC = np.array(
    [
        [KR, KG, KB],
        [-0.5 * KR / (1 - KB), -0.5 * KG / (1 - KB), 0.5],
        [0.5, -0.5 * KG / (1 - KR), -0.5 * KB / (1 - KR)],
    ],
    dtype=np.float64,
)
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC)


def chroma_size(height: int, width: int) -> tuple[int, int]:
    """Size (h, w) of one 4:2:0 chroma plane for a luma plane of height × width."""
    return (height + 1) // 2, (width + 1) // 2


def rgb_to_yuv420(rgb_u8: np.ndarray, bit_depth: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``uint8 [T,3,H,W]`` RGB → (Y [T,H,W], U [T,h,w], V [T,h,w]) limited-range samples.

    Samples are ``uint8`` for 8-bit and ``uint16`` for 9–16-bit output.
    """
    rgb = np.asarray(rgb_u8)
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected [T,3,H,W] RGB, got {rgb.shape}")
    t, _, h, w = rgb.shape
    x = rgb.astype(np.float32) / 255.0
    ycc = np.einsum("ij,tjhw->tihw", _RGB_TO_YCC.astype(np.float32), x)
    scale = float(1 << (bit_depth - 8))
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    y = np.clip(np.rint((16.0 + 219.0 * ycc[:, 0]) * scale), 16 * scale, 235 * scale).astype(dtype)
    ch, cw = chroma_size(h, w)
    # Pad odd sizes by edge replication, then average 2x2 blocks.
    c = ycc[:, 1:]
    if h % 2 or w % 2:
        c = np.pad(c, ((0, 0), (0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    c = c.reshape(t, 2, ch, 2, cw, 2).mean(axis=(3, 5))
    cbcr = np.clip(np.rint((128.0 + 224.0 * c) * scale), 16 * scale, 240 * scale).astype(dtype)
    return y, cbcr[:, 0], cbcr[:, 1]


# Pixels converted at once: the float maps of a conversion take about 26 bytes a pixel, so a whole clip at once
# (BQMall's 600 frames) held over 6 GB for an output of 0.7 GB.
CHUNK_PIXELS = 1 << 22


def yuv420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """(Y [T,H,W], U, V [T,h,w]) limited-range samples → ``uint8 [T,3,H,W]`` RGB, a few frames at a time."""
    y = np.asarray(y)
    t, h, w = y.shape
    out = np.empty((t, 3, h, w), np.uint8)
    step = max(1, CHUNK_PIXELS // max(1, h * w))
    for a in range(0, t, step):
        out[a:a + step] = _yuv420_to_rgb(y[a:a + step], u[a:a + step], v[a:a + step], bit_depth)
    return out


def _yuv420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, bit_depth: int) -> np.ndarray:
    t, h, w = y.shape
    scale = float(1 << (bit_depth - 8))
    yf = (y.astype(np.float32) / scale - 16.0) / 219.0
    cb = (u.astype(np.float32) / scale - 128.0) / 224.0
    cr = (v.astype(np.float32) / scale - 128.0) / 224.0
    cb = np.repeat(np.repeat(cb, 2, axis=1), 2, axis=2)[:, :h, :w]
    cr = np.repeat(np.repeat(cr, 2, axis=1), 2, axis=2)[:, :h, :w]
    ycc = np.stack([yf, cb, cr], axis=1)
    rgb = np.einsum("ij,tjhw->tihw", _YCC_TO_RGB.astype(np.float32), ycc)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def rgb_to_luma(rgb_u8: np.ndarray) -> np.ndarray:
    """``uint8 [...,3,H,W]`` → limited-range 8-bit luma as float64 ``[...,H,W]`` (for Y-PSNR)."""
    x = np.asarray(rgb_u8).astype(np.float64)
    return 16.0 + 219.0 * (KR * x[..., 0, :, :] + KG * x[..., 1, :, :] + KB * x[..., 2, :, :]) / 255.0


def rgb_to_gray(frame_rgb: np.ndarray) -> np.ndarray:
    """``uint8 [3,H,W]`` RGB → ``uint8 [H,W]`` full-range BT.601 grey (OpenCV's ``COLOR_RGB2GRAY``):
    what OpenCV's cascades were trained on and what Canny thresholds are set for. Not the coded
    luma (:func:`rgb_to_luma` is, in limited range)."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(np.asarray(frame_rgb).transpose(1, 2, 0)), cv2.COLOR_RGB2GRAY)
