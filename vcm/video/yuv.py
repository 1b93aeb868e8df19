"""Raw planar YUV 4:2:0 files, 8-bit or 10/16-bit (little-endian 16-bit samples).

Reading is memory-mapped: a frame range touches only its own bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vcm.errors import VcmError, VideoOptionError
from vcm.video.color import chroma_size, rgb_to_yuv420


def frame_bytes(width: int, height: int, bit_depth: int) -> int:
    """Bytes of one 4:2:0 frame."""
    ch, cw = chroma_size(height, width)
    return (width * height + 2 * ch * cw) * (1 if bit_depth == 8 else 2)


def count_frames(path: Path, width: int, height: int, bit_depth: int) -> int:
    """Number of frames in ``path``; a clear error when the size is not a whole number."""
    size = os.path.getsize(path)
    per = frame_bytes(width, height, bit_depth)
    if size == 0:
        raise VcmError(f"{path} is empty")
    if size % per:
        raise VideoOptionError(
            f"{path} is {size} bytes, not a whole number of {width}x{height} {bit_depth}-bit 4:2:0 "
            f"frames ({per} bytes each); check --size and --bit-depth"
        )
    return size // per


def read_yuv420(
    path: Path, width: int, height: int, bit_depth: int, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planes of frames [start, stop): Y ``[T,H,W]``, U and V ``[T,h,w]`` (uint8 or uint16)."""
    n = count_frames(path, width, height, bit_depth)
    if not (0 <= start < stop <= n):
        raise VcmError(f"frames {start}:{stop} are outside {path.name}, which has {n} frames")
    per = frame_bytes(width, height, bit_depth)
    frames = np.fromfile(path, np.uint8, count=(stop - start) * per, offset=start * per).reshape(-1, per)
    return split_planes(frames, width, height, bit_depth, VideoOptionError(
        f"{path.name} has samples above the {bit_depth}-bit range; check --bit-depth"))


def split_planes(frames: np.ndarray, width: int, height: int, bit_depth: int,
                 above_range: VcmError) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``uint8 [T, frame_bytes]`` (each row one frame's planes, as a file holds them) → Y ``[T,H,W]``, U and V
    ``[T,h,w]``, little-endian 16-bit samples above 8 bits; ``above_range``: the error for a sample beyond
    ``bit_depth``."""
    samples = frames if bit_depth == 8 else frames.view("<u2")
    ch, cw = chroma_size(height, width)
    ny, nc = width * height, ch * cw
    y = samples[:, :ny].reshape(-1, height, width)
    u = samples[:, ny:ny + nc].reshape(-1, ch, cw)
    v = samples[:, ny + nc:ny + 2 * nc].reshape(-1, ch, cw)
    if bit_depth != 8 and int(max(y.max(), u.max(), v.max())) >= (1 << bit_depth):
        raise above_range
    return y, u, v


def write_yuv420(path: Path, rgb_u8: np.ndarray, bit_depth: int = 8, append: bool = False) -> None:
    """Write ``uint8 [T,3,H,W]`` RGB frames as planar 4:2:0 (not atomic: use fsutil for that)."""
    with open(path, "ab" if append else "wb") as f:
        write_yuv420_to(f, rgb_u8, bit_depth)


def write_yuv420_to(f, rgb_u8: np.ndarray, bit_depth: int = 8, frame_line: bytes = b"") -> None:
    """Append ``uint8 [T,3,H,W]`` RGB frames as planar 4:2:0 to an open binary file, each after ``frame_line``
    (YUV4MPEG2's ``FRAME``; nothing for a raw file)."""
    y, u, v = rgb_to_yuv420(rgb_u8, bit_depth)
    dtype = np.uint8 if bit_depth == 8 else np.dtype("<u2")
    for t in range(y.shape[0]):
        f.write(frame_line)
        for plane in (y[t], u[t], v[t]):
            f.write(np.ascontiguousarray(plane, dtype=dtype).tobytes())
