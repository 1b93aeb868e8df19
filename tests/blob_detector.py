"""A cheap detector of a user's own (the ``FILE.py:ATTR`` entry point): the bright blobs of a frame.

Boxes around the connected regions brighter than the frame's 90th percentile, all of class 0: a
real function of the pixels (coding artefacts move and split the blobs), at no detector's cost.
"""

import cv2
import numpy as np


def make(device=None, min_area=12):
    min_area = int(min_area)

    def detect(frames_u8):
        out = []
        for frame in frames_u8:
            grey = frame.astype(np.float32).mean(0)
            mask = (grey >= np.percentile(grey, 90)).astype(np.uint8)
            _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            rows = [(x, y, x + w, y + h, a) for x, y, w, h, a in stats[1:] if a >= min_area]
            boxes = np.array([r[:4] for r in rows], np.float32).reshape(-1, 4)
            scores = np.array([min(1.0, 0.5 + r[4] / mask.size * 10) for r in rows], np.float32)
            out.append((boxes, scores, np.zeros(len(rows), np.int64)))
        return out

    detect.settings = {"threshold": "90th brightness percentile", "min_area": min_area}
    return detect
