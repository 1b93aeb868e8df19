"""A detector run over many frames that a stop does not throw away.

On a CPU a detector such as YOLOv7 takes about a second a frame, so an evaluation of a CTC range
is minutes to hours. :func:`detect_frames` runs the detector batch by batch and, given a ``keep``
file, writes the detections of the batches done so far there (JSON, atomically) every
``SAVE_EVERY_S`` seconds and when Ctrl-C stops it. The same call again, with the same ``key``,
frames and batch size, starts after the last kept batch; any other key starts afresh. Batches are
the same whether or not a run was stopped, so the detections are too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from vcm import progress
from vcm.detectors.classes import Detections

SAVE_EVERY_S = 30.0


def to_json(dets: list[Detections]) -> list[dict]:
    """Detections as JSON-able dicts (boxes x1, y1, x2, y2 in pixels; scores; class indices)."""
    return [{"boxes": d.boxes.tolist(), "scores": d.scores.tolist(), "classes": d.classes.tolist()} for d in dets]


def from_json(items: list[dict]) -> list[Detections]:
    """:func:`to_json`'s inverse; raises ``KeyError``/``ValueError``/``TypeError`` on a malformed entry."""
    return [Detections(np.asarray(d["boxes"], np.float32).reshape(-1, 4), np.asarray(d["scores"], np.float32),
                       np.asarray(d["classes"], np.int64)) for d in items]


def _kept(keep: Path, key: dict) -> list[Detections]:
    """The detections ``keep`` holds for exactly this ``key``; none for another key or a damaged file."""
    try:
        data = json.loads(keep.read_text())
        if data.get("key") != key:
            progress.log(f"{keep.name} holds detections of another evaluation; starting afresh")
            return []
        return from_json(data["detections"])
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        progress.log(f"{keep.name} is damaged; starting afresh")
        return []


def detect_frames(frames_u8: np.ndarray, index: list[int], frames: list[int], detector, batch: int, what: str,
                  keep: Path | None = None, key: dict | None = None) -> tuple[list[Detections], int]:
    """The detector on ``frames_u8[index]`` (``uint8 [N,3,H,W]``; ``frames``: the source frame each stands
    for), ``batch`` frames a call → (one ``Detections`` per frame, how many of them came from ``keep``).
    With ``keep``, the run continues from and saves to that file under ``key`` (JSON-able: what the
    detections depend on), and removes it once every frame is done."""
    from vcm.fsutil import write_json

    key = json.loads(json.dumps({**(key or {}), "frames": list(frames), "batch": batch}))  # as it reads back
    done = _kept(keep, key) if keep is not None else []
    if len(done) > len(index) or len(done) % batch and len(done) != len(index):
        done = []  # not a run of whole batches of these frames
    kept, saved_at = len(done), time.monotonic()

    def save() -> None:
        write_json(keep, {"key": key, "detections": to_json(done)})

    stopped = False
    with progress.progress(what, len(index), completed=len(done)) as bar:
        for i in range(len(done), len(index), batch):
            try:
                dets = detector.detect(frames_u8[index[i:i + batch]], frames[i:i + batch])
            except KeyboardInterrupt:  # the batch in progress is lost, the ones before are kept
                stopped = True
                break
            done += dets
            bar.advance(len(dets))
            if keep is not None and time.monotonic() - saved_at >= SAVE_EVERY_S:
                save()
                kept, saved_at = len(done), time.monotonic()
    if stopped:
        if keep is not None and done:
            save()
            progress.log(f"stopped after {len(done)} of {len(index)} frames; their detections are kept in "
                         f"{keep}: the same command again continues from there")
        raise KeyboardInterrupt
    if keep is not None:
        keep.unlink(missing_ok=True)
    return done, kept
