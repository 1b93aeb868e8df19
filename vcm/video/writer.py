"""Write decoded frames: raw YUV 4:2:0, a lossless video container, or a folder of PNGs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from vcm.errors import VcmError
from vcm.fsutil import atomic_path
from vcm.video import yuv


def write_video(path: str | Path, frames_u8: np.ndarray, fps: float, bit_depth: int = 8) -> Path:
    """Write ``uint8 [T,3,H,W]`` RGB to ``path`` by its suffix; a directory gets PNG frames.

    ``.yuv``: planar 4:2:0 (BT.601 limited, see :mod:`vcm.video.color`). ``.mp4``/``.mkv``:
    lossless RGB H.264 (``libx264rgb -qp 0``) so that re-reading gives the same pixels.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".yuv":
        with atomic_path(path) as tmp:
            yuv.write_yuv420(tmp, frames_u8, bit_depth)
    elif suffix in (".mp4", ".mkv", ".avi", ".mov"):
        _write_container(path, frames_u8, fps)
    elif suffix == "":
        _write_pngs(path, frames_u8)
    else:
        raise VcmError(f"cannot write {path.name}: use .yuv, .mp4, .mkv or a folder name")
    return path


def _write_container(path: Path, frames_u8: np.ndarray, fps: float) -> None:
    import imageio_ffmpeg

    t, _, h, w = frames_u8.shape
    with atomic_path(path) as tmp:
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps}", "-i", "-",
            "-c:v", "libx264rgb", "-qp", "0", "-preset", "veryfast", "-f", path.suffix.lstrip(".").replace("mkv", "matroska"),
            str(tmp),
        ]
        rgb = np.ascontiguousarray(frames_u8.transpose(0, 2, 3, 1))
        proc = subprocess.run(cmd, input=rgb.tobytes(), capture_output=True)
        if proc.returncode:
            raise VcmError(f"ffmpeg could not write {path.name}: {proc.stderr.decode(errors='replace').strip()[:200]}")


def _write_pngs(folder: Path, frames_u8: np.ndarray) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames_u8):
        with atomic_path(folder / f"frame_{i:05d}.png") as tmp:
            Image.fromarray(np.ascontiguousarray(frame.transpose(1, 2, 0))).save(tmp, format="PNG")
