"""What a decode will cost, known and checked before it starts.

A neural representation decodes any number of frames at any size from the same few bytes, so a
stream's header alone can ask for hours of work or a full disk. Before the first frame a decoder
builds a :class:`DecodePlan` from the header and checks it:

- **output**: the bytes the chosen format will hold (``.yuv`` exactly; PNG folders and lossless
  containers at most about the raw RGB size) against the free space of the output's filesystem;
  too large is refused in every case (nothing is written);
- **frames**: a stream below ``MIN_BYTES_PER_FRAME`` bytes of stream per declared frame is out of
  proportion (vcm's own lowest-rate streams spend 40+ bytes per frame);
- **work**: the representation's multiply–accumulates per frame × frames, allowed up to
  ``FREE_WORK`` or ``WORK_PER_BYTE`` per byte of stream, whichever is larger.

The last two are lifted when the user asks explicitly: ``--allow-large`` on the command line, or
``VCM_WORK_BUDGET=unlimited``. ``VCM_WORK_BUDGET=50T`` (multiply–accumulates) replaces the work
rule with one fixed cap — as ``VCM_MEMORY_BUDGET`` does for memory — whatever the stream's size.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vcm.bitstream.bits import StreamError
from vcm.words import human as human_bytes
from vcm.errors import VcmError
from vcm.video.writer import to_stdout

MIN_BYTES_PER_FRAME = 4
# Measured on 2 CPU cores: vcm's HiNeRV and NeRV presets decode at 2–9 GMAC/s; the lower end
# keeps the estimate on the safe side. A GPU is far faster: the estimate is then an upper bound.
MACS_PER_SECOND = 3e9
FREE_WORK = 3e10  # about ten seconds on 2 cores: any stream may ask this much
# The demo's smallest stream asks 1.4·10⁶ per byte, a 20 KB class C stream about 10⁷.
WORK_PER_BYTE = 1e8
_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}


def work_budget() -> float | None:
    """``VCM_WORK_BUDGET`` in multiply–accumulates (``inf`` for ``unlimited``), or None when unset."""
    raw = os.environ.get("VCM_WORK_BUDGET", "").strip()
    if not raw:
        return None
    if raw.lower() in ("unlimited", "inf", "none"):
        return float("inf")
    text = raw.upper()
    unit = text[-1] if text[-1] in _UNITS else ""
    try:
        value = float(text[: len(text) - len(unit)]) * _UNITS[unit]
    except ValueError:
        value = -1.0
    if not value >= 1:  # a fraction of one was 'more than the work budget of 0 GMAC' for any stream
        raise VcmError(f"VCM_WORK_BUDGET={raw!r} is not an amount such as 50T (multiply–accumulates) or unlimited")
    return value


def human_macs(n: float) -> str:
    return f"{n / 1e9:,.1f} GMAC" if n >= 1e8 else f"{n / 1e6:,.1f} MMAC"


def human_seconds(s: float) -> str:
    """An estimate in words: "under a second", "about 12 s", "about 3 min", "about 1.5 h"."""
    if s < 1:
        return "under a second"
    if s < 90:
        return f"about {s:.0f} s"
    if s < 5400:
        return f"about {s / 60:.0f} min"
    return f"about {s / 3600:.1f} h"


def output_bytes(out: Path | None, frames: int, width: int, height: int) -> int:
    """Bytes ``frames`` decoded frames will take in ``out``'s format (0 when nothing is written):
    4:2:0 for ``.yuv`` and ``.y4m`` (exact, with Y4M's header and frame lines), raw RGB as the bound for PNG
    folders and lossless containers."""
    if out is None:
        return 0
    planes = frames * (width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2))
    suffix = Path(out).suffix.lower()
    if suffix == ".yuv":
        return planes
    if suffix == ".y4m" or to_stdout(out):
        return 64 + planes + 6 * frames
    return frames * 3 * width * height


def free_space(out: Path) -> tuple[int, Path]:
    """(free bytes, the existing folder they were measured on) for a path that may not exist yet."""
    from vcm.outputs import existing_ancestor

    folder = existing_ancestor(Path(out).resolve().parent)
    return shutil.disk_usage(folder).free, folder


@dataclass(frozen=True)
class DecodePlan:
    """A decode as declared by a stream: ``frames`` of ``width``×``height`` from ``stream_bytes``
    bytes, ``macs_per_frame`` multiply–accumulates each (None: not estimated)."""

    kind: str
    name: str
    frames: int
    width: int
    height: int
    stream_bytes: int
    macs_per_frame: int | None = None

    @property
    def macs(self) -> float | None:
        return None if self.macs_per_frame is None else float(self.macs_per_frame) * self.frames

    @property
    def seconds(self) -> float | None:
        return None if self.macs is None else self.macs / MACS_PER_SECOND

    def describe(self, out: Path | None = None) -> str:
        """One line: frames, size, output bytes and estimated time."""
        parts = [f"{self.frames:,} frames of {self.width}x{self.height}"]
        if out is not None:
            parts.append(f"{human_bytes(output_bytes(out, self.frames, self.width, self.height))} to write")
        if self.macs is not None:
            parts.append(f"{human_macs(self.macs)}, {human_seconds(self.seconds)} on 2 CPU cores")
        return ", ".join(parts)

    def check(self, out: Path | None = None, allow_large: bool = False) -> None:
        """Refuse (one line) an output that does not fit on its disk and — unless ``allow_large`` or
        ``VCM_WORK_BUDGET=unlimited`` — a frame count or work out of proportion to the stream (the
        work against ``VCM_WORK_BUDGET`` instead when it is set)."""
        if out is not None:
            from vcm.video.writer import check_writable

            check_writable(out, self.frames)  # an image file takes one frame
        need = output_bytes(out, self.frames, self.width, self.height)
        disk = ""
        if out is not None and not to_stdout(out):  # a pipe has no disk to fill
            free, folder = free_space(out)
            disk = f"; {human_bytes(need)} to write, {human_bytes(free)} free on {folder}"
            if need > free:
                raise VcmError(f"{self.name} would write {human_bytes(need)} ({self.frames:,} frames of "
                               f"{self.width}x{self.height}) to {out}, but only {human_bytes(free)} are free on {folder}")
        budget = work_budget()
        if allow_large or budget == float("inf"):
            return
        if self.frames * MIN_BYTES_PER_FRAME > self.stream_bytes:
            raise StreamError(f"{self.name} declares {self.frames:,} frames in a {self.stream_bytes:,}-byte {self.kind} "
                              f"stream (fewer than {MIN_BYTES_PER_FRAME} bytes per frame){disk}; pass --allow-large "
                              f"(or set VCM_WORK_BUDGET=unlimited) if it is genuine")
        if self.macs is None:
            return
        allowed = budget if budget is not None else max(FREE_WORK, WORK_PER_BYTE * self.stream_bytes)
        if self.macs > allowed:
            why = (f"the work budget of {allowed / 1e9:,.0f} GMAC" if budget is not None else
                   f"{allowed / 1e9:,.0f} GMAC allowed for a {self.stream_bytes:,}-byte stream")
            raise StreamError(f"{self.name} would take {self.macs / 1e9:,.0f} GMAC to decode ({self.frames:,} frames of "
                              f"{self.width}x{self.height}, {human_seconds(self.seconds)} on 2 CPU cores), more "
                              f"than {why}{disk}; pass --allow-large or set VCM_WORK_BUDGET (e.g. 50T, or "
                              f"unlimited) if it is genuine")
