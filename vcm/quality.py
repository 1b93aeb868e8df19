"""Pixel quality of decoded frames: PSNR (RGB, Y and YUV 6:1:1) and MS-SSIM, per frame.

Inputs are ``uint8 [T,3,H,W]`` RGB arrays (what every codec's decoder delivers).
"""

from __future__ import annotations

import numpy as np

from vcm.video.color import rgb_to_luma

MS_SSIM_MIN_SIDE = 161  # pytorch-msssim's 5-scale MS-SSIM with an 11-tap window needs > 160 px


def _psnr(mse: np.ndarray, peak: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, 10.0 * np.log10(peak**2 / np.maximum(mse, 1e-30)), 100.0)


def psnr_rgb(ref_u8: np.ndarray, test_u8: np.ndarray) -> np.ndarray:
    """PSNR in dB over R, G, B per frame → ``float64 [T]`` (100 dB for identical frames)."""
    d = ref_u8.astype(np.float64) - test_u8.astype(np.float64)
    return _psnr((d * d).mean(axis=(1, 2, 3)), 255.0)


def psnr_y(ref_u8: np.ndarray, test_u8: np.ndarray) -> np.ndarray:
    """PSNR in dB of limited-range 8-bit luma (BT.601) per frame → ``float64 [T]``."""
    d = rgb_to_luma(ref_u8) - rgb_to_luma(test_u8)
    return _psnr((d * d).mean(axis=(1, 2)), 255.0)


def psnr_yuv(ref_u8: np.ndarray, test_u8: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """YUV PSNR with the 6:1:1 weighting of the MPEG/JVET reports, per frame → ``float64 [T]``:
    (6·PSNR_Y + PSNR_U + PSNR_V) / 8 on BT.601 limited-range 4:2:0 planes (Y unrounded, as
    :func:`psnr_y`; U and V as the 8-bit chroma :func:`vcm.video.color.rgb_to_yuv420` writes).
    ``y``: the frames' :func:`psnr_y` when the caller has it already."""
    from vcm.video.color import rgb_to_yuv420

    _, ur, vr = rgb_to_yuv420(ref_u8, 8)
    _, ut, vt = rgb_to_yuv420(test_u8, 8)
    chroma = [_psnr(((a.astype(np.float64) - b) ** 2).mean(axis=(1, 2)), 255.0) for a, b in ((ur, ut), (vr, vt))]
    y = psnr_y(ref_u8, test_u8) if y is None else y
    return (6 * y + chroma[0] + chroma[1]) / 8


def edge_psnr(ref_u8: np.ndarray, test_u8: np.ndarray, masks_u8: np.ndarray) -> np.ndarray:
    """PSNR in dB over R, G, B on each frame's edge pixels (``masks_u8``: ``uint8 [T,1,H,W]`` in {0, 1}, the
    pixels SA-NeRV's loss, eq. 6, weighs) → ``float64 [T]``, NaN for a frame without an edge pixel. One frame at a
    time: no float copy of the clip."""
    out = np.full(len(ref_u8), np.nan)
    for i, (ref, test, mask) in enumerate(zip(ref_u8, test_u8, masks_u8)):
        edges = mask[0].astype(bool)
        count = int(edges.sum())
        if count:
            d = ref[:, edges].astype(np.float64) - test[:, edges]
            out[i] = _psnr(np.array((d * d).sum() / (3 * count)), 255.0)
    return out


def ms_ssim_measurable(height: int, width: int) -> bool:
    """Whether frames of this size have an MS-SSIM: its five scales need 161 px or more on each side."""
    return min(height, width) >= MS_SSIM_MIN_SIDE


def ms_ssim(ref_u8: np.ndarray, test_u8: np.ndarray, batch: int = 16) -> np.ndarray | None:
    """MS-SSIM (RGB, data range 1) per frame, or None when frames are too small (≤ 160 px)."""
    if not ms_ssim_measurable(*ref_u8.shape[2:]):
        return None
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    from vcm import progress

    out = []
    with torch.no_grad(), progress.progress("MS-SSIM", ref_u8.shape[0]) as bar:
        for i in range(0, ref_u8.shape[0], batch):
            # channels-last: oneDNN's 3-channel Gaussian passes run ~3× faster (same values to ~1e-7)
            a, b = ((torch.from_numpy(u8[i:i + batch]).float() / 255).contiguous(memory_format=torch.channels_last)
                    for u8 in (ref_u8, test_u8))
            out.append(_ms_ssim(a, b, data_range=1.0, size_average=False).numpy())
            bar.advance(len(a))
    return np.concatenate(out).astype(np.float64)


def flat_psnr(frames_u8: np.ndarray, chunk: int = 4) -> float:
    """Mean RGB PSNR (dB, as :func:`psnr_rgb`) of one flat frame, the clip's mean colour rounded to 8 bits,
    against every frame of ``frames_u8`` ``uint8 [T,3,H,W]``: what a network that learned nothing of the
    picture but its colour reaches. Reads the clip in chunks of frames (no float copy of all of it)."""
    t = len(frames_u8)
    sums = np.zeros((t, frames_u8.shape[1]))
    squares = np.zeros_like(sums)
    for i in range(0, t, chunk):
        part = frames_u8[i:i + chunk].astype(np.float64)
        sums[i:i + chunk], squares[i:i + chunk] = part.mean(axis=(2, 3)), (part * part).mean(axis=(2, 3))
    colour = np.rint(sums.mean(axis=0))  # [C]
    mse = (squares - 2 * colour * sums + colour * colour).mean(axis=1)  # per frame: E[(x − c)²] over channels
    return float(_psnr(np.maximum(mse, 0.0), 255.0).mean())


def summarize(ref_u8: np.ndarray, test_u8: np.ndarray, masks_u8: np.ndarray | None = None) -> dict:
    """Per-frame and mean PSNR (RGB, Y) and MS-SSIM as a JSON-ready dict; with ``masks_u8`` (edge masks, as
    :func:`edge_psnr` takes them) also ``edge_psnr``: the mean over the frames that have edge pixels (None if none)."""
    if ref_u8.shape != test_u8.shape:
        raise ValueError(f"shape mismatch {ref_u8.shape} vs {test_u8.shape}")
    p, py = psnr_rgb(ref_u8, test_u8), psnr_y(ref_u8, test_u8)
    pyuv = psnr_yuv(ref_u8, test_u8, py)
    ms = ms_ssim(ref_u8, test_u8)
    out = {
        "psnr": float(p.mean()),
        "psnr_y": float(py.mean()),
        "psnr_yuv": float(pyuv.mean()),
        "ms_ssim": None if ms is None else float(ms.mean()),
        "per_frame": {
            "psnr": [round(float(v), 4) for v in p],
            "psnr_y": [round(float(v), 4) for v in py],
            "psnr_yuv": [round(float(v), 4) for v in pyuv],
            "ms_ssim": None if ms is None else [round(float(v), 6) for v in ms],
        },
    }
    if masks_u8 is not None:
        e = edge_psnr(ref_u8, test_u8, masks_u8)
        out["edge_psnr"] = float(np.nanmean(e)) if np.isfinite(e).any() else None
    return out
