"""A detector run over many frames that a stop does not throw away.

On a CPU a detector such as YOLOv7 takes about a second a frame, so an evaluation of a CTC range
is minutes to hours. :func:`detect_frames` runs the detector batch by batch and, given a checkpoint
(:class:`vcm.codec.stage_state.StageCheckpoint`, as a stopped ``vcm compress`` stage keeps its
state), saves the detections of the batches done so far every ``SAVE_EVERY_S`` seconds and when
Ctrl-C stops it. The same call again, with the same key, frames and batch size, starts after the
last kept batch; any other key starts afresh. Batches are the same whether or not a run was stopped,
so the detections are too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vcm import progress
from vcm.codec.stage_state import StageCheckpoint
from vcm.detectors.classes import Detections


def to_json(dets: list[Detections]) -> list[dict]:
    """Detections as JSON-able dicts (boxes x1, y1, x2, y2 in pixels; scores; class indices)."""
    return [{"boxes": d.boxes.tolist(), "scores": d.scores.tolist(), "classes": d.classes.tolist()} for d in dets]


def from_json(items: list[dict]) -> list[Detections]:
    """:func:`to_json`'s inverse; raises ``KeyError``/``ValueError``/``TypeError`` on a malformed entry."""
    return [Detections(np.asarray(d["boxes"], np.float32).reshape(-1, 4), np.asarray(d["scores"], np.float32),
                       np.asarray(d["classes"], np.int64)) for d in items]


def _kept(checkpoint: StageCheckpoint, frames: int, batch: int) -> list[Detections]:
    """The detections ``checkpoint`` holds for this very run, as whole batches of its frames; none otherwise."""
    saved = checkpoint.load()
    try:
        done = [Detections(d["boxes"].numpy().reshape(-1, 4), d["scores"].numpy(), d["classes"].numpy())
                for d in saved["detections"]] if saved is not None else None
    except (KeyError, TypeError, AttributeError, RuntimeError, ValueError):
        done = None
    if done is not None and (len(done) == frames or len(done) < frames and len(done) % batch == 0):
        return done
    if checkpoint.path.exists():
        progress.log(f"{checkpoint.path.name} holds detections of another evaluation (or is damaged); starting afresh")
    return []


def detect_frames(frames_u8: np.ndarray, index: list[int], frames: list[int], detector, batch: int, what: str,
                  keep: Path | None = None, key: dict | None = None) -> tuple[list[Detections], int]:
    """The detector on ``frames_u8[index]`` (``uint8 [N,3,H,W]``; ``frames``: the source frame each stands
    for), ``batch`` frames a call → (one ``Detections`` per frame, how many of them came from ``keep``).
    With ``keep``, the run continues from and saves to that file under ``key`` (JSON-able: what the
    detections depend on), and removes it once every frame is done."""
    checkpoint = StageCheckpoint.keyed(keep, {**(key or {}), "frames": list(frames), "batch": batch}) \
        if keep is not None else None
    done = _kept(checkpoint, len(index), batch) if checkpoint is not None else []
    kept = len(done)

    def save() -> None:
        checkpoint.save({"frames": len(index), "detections": [
            {"boxes": torch.from_numpy(d.boxes), "scores": torch.from_numpy(d.scores),
             "classes": torch.from_numpy(d.classes)} for d in done]})

    stopped = False
    with progress.progress(what, len(index), completed=kept) as bar:
        for i in range(kept, len(index), batch):
            try:
                dets = detector.detect(frames_u8[index[i:i + batch]], frames[i:i + batch])
            except KeyboardInterrupt:  # the batch in progress is lost, the ones before are kept
                stopped = True
                break
            done += dets
            bar.advance(len(dets))
            if checkpoint is not None and checkpoint.due():
                save()
    if stopped:
        if checkpoint is not None and done:
            save()
            progress.log(f"stopped after {len(done)} of {len(index)} frames; their detections are kept in "
                         f"{keep}: the same command again continues from there")
        raise KeyboardInterrupt
    if checkpoint is not None:
        checkpoint.discard()
    return done, kept
