"""Scene cuts: where a clip jumps to another shot, so that a representation need not blend across it.

A cut is a frame whose mean absolute difference from the previous frame stands far above the clip's
typical frame-to-frame change: above ``ratio`` times the median difference and above ``floor`` grey
levels (both on the 0–255 scale, averaged over the three channels). A camera pan or a person moving
changes a few grey levels per pixel per frame; a cut changes tens. The `bikes` sample jumps from a
door to a street at frame 30 (difference 109 against a median of 5); carphone has no cut (largest
difference 8, median 4).
"""

from __future__ import annotations

import numpy as np


def frame_differences(frames_u8: np.ndarray) -> np.ndarray:
    """Mean absolute difference of each frame from the one before: ``uint8 [T,3,H,W]`` → ``float [T-1]``."""
    diffs = np.empty(max(0, len(frames_u8) - 1))
    for i in range(1, len(frames_u8)):  # one pair at a time: no [T,3,H,W] float copy of the clip
        diffs[i - 1] = np.abs(frames_u8[i].astype(np.int16) - frames_u8[i - 1]).mean()
    return diffs


def shot_lengths(frames_u8: np.ndarray, ratio: float = 6.0, floor: float = 20.0, min_shot: int = 2) -> tuple[int, ...]:
    """Lengths in frames of the clip's shots, in order (they sum to T); ``()`` when there is no cut.

    A shot shorter than ``min_shot`` frames (a flash, a single odd frame) is not split off.
    """
    diffs = frame_differences(frames_u8)
    if diffs.size == 0:
        return ()
    threshold = max(floor, ratio * float(np.median(diffs)))
    starts = [0]
    for i in np.flatnonzero(diffs > threshold) + 1:
        if i - starts[-1] >= min_shot and len(frames_u8) - i >= min_shot:
            starts.append(int(i))
    if len(starts) == 1:
        return ()
    return tuple(int(b - a) for a, b in zip(starts, starts[1:] + [len(frames_u8)]))
