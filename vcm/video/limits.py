"""What vcm reads as a video frame, one rule for every kind of input: a side of ``MIN_SIDE`` to ``MAX_SIDE``
pixels, a rate above 0 and at most ``MAX_FPS`` frames a second.

A side of one pixel has no 2×2 block for its chroma and no window for SSIM (training failed on it with a
traceback deep in the loss); a side beyond 16384 is no video vcm is for, and an image header can declare one in
a few hundred bytes (a folder of such PNGs was decoded until the machine ran out of memory).
"""

from __future__ import annotations

from vcm.errors import VcmError

MIN_SIDE = 2  # pixels
MAX_SIDE = 16384  # pixels a side may declare
MAX_FPS = 1000  # frames per second


def check_frame_size(width: int, height: int, what: str) -> None:
    """Refuse, in one line naming ``what`` (e.g. ``"clip.y4m: its YUV4MPEG2 header declares frames of"``), frames of
    ``width``×``height`` with a side outside [MIN_SIDE, MAX_SIDE]."""
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise VcmError(f"{what} {width}x{height} pixels; vcm reads frames of {MIN_SIDE} to {MAX_SIDE} pixels a side")
