"""SAM segmentations → one binary edge mask per frame.

How overlapping masks are combined: masks are painted onto a label map in order of decreasing
area, so every pixel carries the id of the *smallest* mask that covers it (small objects on top
of the larger regions around them); pixels no mask covers keep label 0. Ids are drawn on an
8-bit map as 1 + (i mod 255).

Edges: OpenCV's Canny runs on that label map with thresholds (1, 1), so any change of label is
an edge (a step of one grey level gives a Sobel response of at least 4). The edge pixels are then
optionally dilated by ``dilation`` pixels (a (2d+1)² square); ``dilation = 0`` keeps Canny's
one-pixel-wide edges, the paper's choice.
"""

from __future__ import annotations

import numpy as np

CANNY_LOW, CANNY_HIGH = 1, 1


def label_map(segmentations: list[np.ndarray], areas: list[int] | None = None) -> np.ndarray:
    """Boolean ``[H,W]`` masks → ``uint8 [H,W]`` label map (largest painted first, 0 = none)."""
    if not segmentations:
        raise ValueError("label_map needs the frame size: pass at least one mask or use empty_mask")
    h, w = segmentations[0].shape
    areas = [int(s.sum()) for s in segmentations] if areas is None else areas
    order = sorted(range(len(segmentations)), key=lambda i: (-areas[i], i))
    labels = np.zeros((h, w), np.uint8)
    for rank, i in enumerate(order):
        labels[np.asarray(segmentations[i], dtype=bool)] = 1 + rank % 255
    return labels


def edges_from_labels(labels: np.ndarray, dilation: int = 0) -> np.ndarray:
    """``uint8 [H,W]`` label map → ``bool [H,W]`` edge mask."""
    import cv2

    return dilate(cv2.Canny(np.ascontiguousarray(labels), CANNY_LOW, CANNY_HIGH) > 0, dilation)


def dilate(mask: np.ndarray, dilation: int) -> np.ndarray:
    """``bool [H,W]`` widened by ``dilation`` pixels (a (2d+1)² square); unchanged for 0. A square wider than
    the frame covers it from any edge pixel, so ``dilation`` counts up to max(H, W) only; the square is
    applied as a row and then a column (the same mask, with kernels of 2d+1 bytes instead of (2d+1)²)."""
    import cv2

    if dilation <= 0:
        return mask
    side = 2 * min(int(dilation), max(mask.shape)) + 1
    rows = cv2.dilate(mask.astype(np.uint8), np.ones((1, side), np.uint8))
    return cv2.dilate(rows, np.ones((side, 1), np.uint8)) > 0


def edge_mask(segmentations: list[np.ndarray], shape: tuple[int, int], dilation: int = 0,
              areas: list[int] | None = None) -> np.ndarray:
    """SAM segmentations of one frame → ``bool [H,W]`` edge mask (all False if there are none)."""
    if not segmentations:
        return np.zeros(shape, bool)
    return edges_from_labels(label_map(segmentations, areas), dilation)
