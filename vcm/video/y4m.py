"""YUV4MPEG2 (``.y4m``) files, 4:2:0, 8-bit or 9–16-bit (little-endian 16-bit samples), read and written
with vcm's own colour conversion, as a raw ``.yuv`` is: the file says its size, rate and depth, and its own
samples reach the anchors' encoders unconverted.

A file is a header line (``YUV4MPEG2 W176 H144 F30000:1001 Ip A1:1 C420jpeg``), then per frame a line
``FRAME`` and the planes Y, U, V. A frame range is read from its own bytes alone. Frames whose lines are a
bare ``FRAME``, as the encoders and ffmpeg write them, are found by arithmetic; a file whose frame lines
carry parameters (``FRAME Ip Xkey=value``) is walked frame line by frame line, its parameters ignored
except an interlaced frame's, which is refused. A cut or damaged file is refused in one line.

vcm's decoders add ``XVCM_FIRST_FRAME=N`` to the header: the file's frame 0 is source frame N (a stream of frames
403:500, or ``--frames``), so that read back, ground truth and an original are matched to the frames it holds
whatever its name. Other readers skip an X parameter they do not know.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from vcm.errors import VcmError
from vcm.video.color import yuv420_to_rgb
from vcm.video.limits import MAX_FPS, check_frame_size
from vcm.video.yuv import frame_bytes, split_planes, write_yuv420_to

MAGIC = b"YUV4MPEG2"
FRAME = b"FRAME\n"
MAX_HEADER = 4096  # bytes of header line read at most
_DECLARED = set("WHFIC")  # the header's fields that say how to read the frames (X, a comment, may repeat)
_CHROMA_420 = {"420", "420jpeg", "420mpeg2", "420paldv"}  # 4:2:0 whatever the chroma siting
FIRST_FRAME = "VCM_FIRST_FRAME="  # an X parameter: the source index of the file's frame 0
MAX_FIRST_FRAME = 10**9


@dataclass(frozen=True)
class Y4mHeader:
    """What a Y4M header declares: size in pixels, frames per second, bits per sample, and the byte offset
    of the first frame line."""

    width: int
    height: int
    fps: float | None  # None when the header has no F (a rate is never guessed: the reader asks for --fps)
    bit_depth: int
    data_offset: int
    first_frame: int | None = None  # the source index of frame 0 when the header says it (XVCM_FIRST_FRAME)


def read_header(path: Path) -> Y4mHeader:
    """The header of ``path``; a one-line VcmError for anything vcm cannot read as 4:2:0 progressive frames."""
    with open(path, "rb") as f:
        head = f.read(MAX_HEADER)
    end = head.find(b"\n")
    if not head.startswith(MAGIC + b" "):
        raise VcmError(f"{path.name}: not a YUV4MPEG2 file (its first line must start with 'YUV4MPEG2 ')")
    if end < 0:
        raise VcmError(f"{path.name}: its YUV4MPEG2 header line does not end within {MAX_HEADER} bytes "
                       f"(a damaged file)")
    fields, extras = {}, []
    for token in head[len(MAGIC) + 1:end].decode("ascii", "replace").split():
        key, value = token[0], token[1:]
        if key == "X":
            extras.append(value.upper())
        if key in _DECLARED and fields.get(key, value) != value:  # readers disagree on which counts (ffmpeg: the last)
            raise VcmError(f"{path.name}: its YUV4MPEG2 header gives {key} twice ({key}{fields[key]} and {token})")
        fields.setdefault(key, value)
    try:
        width, height = int(fields["W"]), int(fields["H"])
    except (KeyError, ValueError):
        raise VcmError(f"{path.name}: its YUV4MPEG2 header gives no frame size (W and H)") from None
    check_frame_size(width, height, f"{path.name}: its YUV4MPEG2 header declares frames of")
    fps = _rate(path, fields["F"]) if "F" in fields else None
    if fields.get("I", "p") not in ("p", "?"):
        raise VcmError(f"{path.name}: interlaced YUV4MPEG2 (I{fields['I']}); vcm reads progressive frames "
                       f"(deinterlace it first, e.g. ffmpeg -vf yadif)")
    chroma = fields.get("C", "420jpeg")
    depth = 8
    if chroma.startswith("420p") and chroma[4:].isdigit():
        chroma, depth = "420", int(chroma[4:])
    if chroma not in _CHROMA_420 or not 8 <= depth <= 16:
        raise VcmError(f"{path.name}: YUV4MPEG2 colour space C{fields.get('C')}; vcm reads 4:2:0 of 8 to 16 bits "
                       f"(convert it, e.g. ffmpeg -i IN -pix_fmt yuv420p OUT.y4m)")
    if "COLORRANGE=FULL" in extras:  # read as limited range, its colours came out stretched
        raise VcmError(f"{path.name}: its YUV4MPEG2 header says full-range samples (XCOLORRANGE=FULL); vcm reads "
                       f"limited range, BT.601 (convert it, e.g. ffmpeg -i IN -pix_fmt yuv420p -color_range tv "
                       f"OUT.y4m)")
    return Y4mHeader(width, height, fps, depth, end + 1, _first_frame(path, extras))


def _first_frame(path: Path, extras: list[str]) -> int | None:
    said = [x[len(FIRST_FRAME):] for x in extras if x.startswith(FIRST_FRAME)]
    if not said:
        return None
    if len(set(said)) > 1 or not said[0].isdigit() or int(said[0]) > MAX_FIRST_FRAME:  # isdigit: no sign, no space
        raise VcmError(f"{path.name}: its YUV4MPEG2 header gives X{FIRST_FRAME}{' and '.join(said)} (need one whole "
                       f"number from 0 to {MAX_FIRST_FRAME:,})")
    return int(said[0])


def _rate(path: Path, value: str) -> float:
    try:
        num, den = (int(x) for x in value.split(":"))
        fps = num / den
    except (ValueError, ZeroDivisionError):
        fps = float("nan")
    if not 0 < fps <= MAX_FPS:
        raise VcmError(f"{path.name}: its YUV4MPEG2 header gives the frame rate F{value} (need N:D, above 0 and at "
                       f"most {MAX_FPS} frames a second)")
    return fps


def _frame_record(header: Y4mHeader) -> int:
    """Bytes of one frame in the file: its ``FRAME`` line and its planes."""
    return len(FRAME) + frame_bytes(header.width, header.height, header.bit_depth)


MAX_FRAME_LINE = 1024  # bytes of a frame line (FRAME and its parameters) read at most


def frame_index(path: Path, header: Y4mHeader) -> tuple[int, np.ndarray | None]:
    """``(frames, offsets)``: how many frames ``path`` holds, and the byte offset of each one's planes
    (``int64 [frames]``, read-only) when its frame lines carry parameters; None when they are bare (frame i's
    line then starts at ``data_offset + i · record``, checked as a range is read). A one-line error for a file
    that holds no frames, is cut short or is not a sequence of frame lines and planes.

    The index is kept for the file as it is (its path, size and modification time), so that a probe and the
    reads after it walk a file once."""
    st = os.stat(path)
    return _frame_index(Path(path), st.st_size, st.st_mtime_ns, header)


@functools.lru_cache(maxsize=1)  # one file at a time: a walked file's index is 8 bytes a frame
def _frame_index(path: Path, size: int, mtime_ns: int, header: Y4mHeader) -> tuple[int, np.ndarray | None]:
    data = size - header.data_offset
    per = _frame_record(header)
    if data <= 0:
        raise VcmError(f"{path.name} holds no frames")
    with open(path, "rb") as f:
        f.seek(header.data_offset)
        bare = f.read(len(FRAME)) == FRAME
    if bare and data % per == 0:
        return data // per, None
    offsets = _walk(path, header, header.data_offset + data)
    offsets.flags.writeable = False  # shared by every read of the file
    return len(offsets), offsets


def _walk(path: Path, header: Y4mHeader, size: int) -> np.ndarray:
    """The planes' offsets of a file whose frame lines are not all bare: each line is read and its planes
    skipped (one small read a frame)."""
    planes = frame_bytes(header.width, header.height, header.bit_depth)
    offsets, pos = [], header.data_offset
    with open(path, "rb") as f:
        while pos < size:
            f.seek(pos)
            line = f.read(64)
            if b"\n" not in line:
                line += f.read(MAX_FRAME_LINE - len(line))
            end = line.find(b"\n")
            if not line.startswith(b"FRAME") or end < 0 or line[5:6] not in (b"\n", b" "):
                raise VcmError(f"{path.name}: frame {len(offsets)} does not start with a FRAME line (a damaged file, "
                               f"or planes that are not the {header.width}x{header.height} {header.bit_depth}-bit 4:2:0 "
                               f"its header declares)")
            for param in line[6:end].decode("ascii", "replace").split():
                if param[0] == "I" and "i" in param[2:4]:  # Ixyz: y temporal, z spatial sampling
                    raise VcmError(f"{path.name}: frame {len(offsets)} is interlaced ({param}); vcm reads progressive "
                                   f"frames (deinterlace it first, e.g. ffmpeg -vf yadif)")
            start = pos + end + 1
            if start + planes > size:
                raise VcmError(f"{path.name}: frame {len(offsets)} is cut short ({max(size - start, 0):,} of its "
                               f"{planes:,} bytes of planes): a cut file")
            offsets.append(start)
            pos = start + planes
    return np.array(offsets, dtype=np.int64)


def count_frames(path: Path, header: Y4mHeader) -> int:
    """Frames in ``path`` (see :func:`frame_index`)."""
    return frame_index(path, header)[0]


def read_planes(path: Path, header: Y4mHeader, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planes of frames [start, stop): Y ``[T,H,W]``, U and V ``[T,h,w]`` (uint8, or uint16 above 8 bits)."""
    n, offsets = frame_index(path, header)
    if not 0 <= start < stop <= n:
        raise VcmError(f"frames {start}:{stop} are outside {path.name}, which has {n} frames")
    per = _frame_record(header)
    if offsets is None:  # bare frame lines: one read of the range, its lines checked
        records = np.fromfile(path, np.uint8, count=(stop - start) * per, offset=header.data_offset + start * per)
        records = records.reshape(-1, per)
        bad = np.flatnonzero((records[:, :len(FRAME)] != np.frombuffer(FRAME, np.uint8)).any(axis=1))
        if bad.size:
            raise VcmError(f"{path.name}: frame {start + int(bad[0])} does not start with a FRAME line (a damaged "
                           f"file)")
        samples = records[:, len(FRAME):]
    else:  # one read of the range too, each frame's planes taken from it past its line
        planes, first = per - len(FRAME), int(offsets[start])
        span = np.fromfile(path, np.uint8, count=int(offsets[stop - 1]) + planes - first, offset=first)
        samples = np.stack([span[o - first:o - first + planes] for o in offsets[start:stop]])
    return split_planes(samples, header.width, header.height, header.bit_depth,
                        VcmError(f"{path.name} has samples above the {header.bit_depth}-bit range its header declares"))


def frame_samples(path: Path, header: Y4mHeader, start: int, stop: int) -> Iterator[bytes]:
    """The planes' bytes of frames [start, stop) as they lie in the file (Y, U, V: a raw .yuv's bytes), one frame
    at a time; frames past the end are left out."""
    n, offsets = frame_index(path, header)
    per, planes = _frame_record(header), frame_bytes(header.width, header.height, header.bit_depth)
    with open(path, "rb") as f:
        for i in range(max(start, 0), min(stop, n)):
            f.seek(int(offsets[i]) if offsets is not None else header.data_offset + i * per + len(FRAME))
            yield f.read(planes)


def read_rgb(path: Path, header: Y4mHeader, start: int, stop: int) -> np.ndarray:
    """Frames [start, stop) as ``uint8 [T,3,H,W]`` RGB (vcm's BT.601 limited-range conversion)."""
    return yuv420_to_rgb(*read_planes(path, header, start, stop), bit_depth=header.bit_depth)


def header_line(width: int, height: int, fps: float, bit_depth: int = 8, first_frame: int | None = None) -> bytes:
    """The header vcm writes: progressive 4:2:0 with the chroma siting its conversion makes (the centre of
    each 2×2 block: ``420jpeg``), square pixels, the rate as a fraction (29.97 → 30000:1001), and the source
    index of frame 0 where the writer knows it."""
    ntsc = round(fps * 1.001)  # 29.97, 59.94, 23.976: the NTSC rates, N·1000/1001
    if abs(fps - ntsc * 1000 / 1001) < 5e-3 < abs(fps - ntsc):
        rate = Fraction(ntsc * 1000, 1001)
    else:
        rate = Fraction(fps).limit_denominator(1000)
    chroma = "C420jpeg" if bit_depth == 8 else f"C420p{bit_depth}"
    first = f" X{FIRST_FRAME}{first_frame}" if first_frame is not None else ""
    return f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 {chroma}{first}\n".encode()


def write_frames_to(f, rgb_u8: np.ndarray, bit_depth: int = 8) -> None:
    """Append ``uint8 [T,3,H,W]`` RGB frames, each a ``FRAME`` line and its planes, to an open binary file
    whose header is written."""
    write_yuv420_to(f, rgb_u8, bit_depth, FRAME)
