"""Segment-Anything edge masks: SAM automatic masks → label map → Canny → per-frame edge mask."""
