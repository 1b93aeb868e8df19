"""``vcm decode``: a ``.nerv`` file → its frames, without importing anything that trains.

``decode_stream`` parses and validates (no frame decoded yet), ``iter_frames`` decodes chunk by
chunk within the memory budget, ``decode_file`` / ``decode_frames`` return all frames at once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from vcm.codec import nerv_stream
from vcm.errors import VcmError
from vcm.fsutil import require_input
from vcm.nerv import registry
from vcm.nerv.frames import frame_times, to_u8


def frame_batch(stream: nerv_stream.NervStream, limit: int = 8) -> int:
    """Frames decoded at once: up to ``limit``, as many as a quarter of the memory budget allows."""
    from vcm.bitstream.budget import memory_budget

    per_frame = registry.frame_memory(stream.arch, stream.model)
    return max(1, min(limit, memory_budget() // 4 // max(per_frame, 1)))


def decode_stream(path: Path, allow_large: bool = False) -> nerv_stream.NervStream:
    """Read and validate a ``.nerv`` file (no frame is decoded yet); see :func:`nerv_stream.decode`."""
    path = Path(path)
    require_input(path, folder_ok=True)
    if path.is_dir():
        from vcm.bitstream.container import folder_given

        raise VcmError(folder_given(path, ".nerv"))
    return nerv_stream.decode(path.read_bytes(), allow_large)


def iter_frames(stream: nerv_stream.NervStream, device, frames: range | None = None) -> Iterator[np.ndarray]:
    """The decoded video in chunks ``uint8 [B,3,H,W]``, frame by frame, never all of it at once;
    ``frames``: only those frames of the stream (0-based; each frame decodes on its own)."""
    model = stream.build_model().to(device)
    batch = frame_batch(stream)
    t_all = frame_times(stream.video["frames"], device)
    if frames is not None:
        t_all = t_all[frames.start:frames.stop]
    with torch.no_grad():
        for i in range(0, len(t_all), batch):
            yield to_u8(model(t_all[i:i + batch]))


def frame_range(spec: str | None, total: int) -> range:
    """``A:B`` (0-based, B exclusive; either side may be left out) within a stream of ``total`` frames."""
    from vcm.video.source import parse_span

    if not spec:
        return range(total)
    try:
        rng = parse_span(spec, range(total))
    except ValueError:
        rng = None
    if rng is None or not 0 <= rng.start < rng.stop <= total:
        raise VcmError(f"--frames must be A:B with 0 <= A < B <= {total} (the stream's frames), got {spec!r}")
    return rng


def decode_file(path: Path, device, frames: range | None = None) -> tuple[np.ndarray, nerv_stream.NervStream, float]:
    """Decode a ``.nerv`` file (or ``frames`` of it) → (``uint8 [T,3,H,W]`` frames, stream, decode
    frames/s), for callers that need them all at once (measurement, detection)."""
    start = time.time()
    stream = decode_stream(path)
    out = decode_frames(stream, device, frames)
    return out, stream, len(out) / max(time.time() - start, 1e-9)


def decode_frames(stream: nerv_stream.NervStream, device, frames: range | None = None) -> np.ndarray:
    """``frames`` (default: all) of a parsed stream at once, ``uint8 [T,3,H,W]``; checked against the
    memory budget first."""
    from vcm.bitstream.budget import check

    v = stream.video
    count = len(frames) if frames is not None else v["frames"]
    check(count * 3 * v["width"] * v["height"], f"{count} frames held at once", "vcm NeRV")
    return np.concatenate(list(iter_frames(stream, device, frames)))
