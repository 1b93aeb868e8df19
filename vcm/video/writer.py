"""Write decoded frames: raw YUV 4:2:0, YUV4MPEG2, a lossless video container, or a folder of PNGs.

Frames can be written as they are decoded (:func:`open_writer`), so a long video never has to be
held in memory; the output appears only when it is complete (written to a temporary sibling,
then renamed; a PNG folder is filled in a temporary folder and renamed likewise).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from vcm.errors import VcmError
from vcm.fsutil import atomic_path, naming_write_errors, temp_prefix
from vcm.video import y4m, yuv

CONTAINERS = (".mp4", ".mkv", ".avi", ".mov")
STDOUT = "-"  # an output of that name is YUV4MPEG2 on stdout, for a pipe (ffplay -, x265 --y4m --input -)


def to_stdout(path: str | Path | None) -> bool:
    return path is not None and str(path) == STDOUT


IMAGE = ".png"  # one frame as one image (a stream of a single picture, or --frames K:K+1)


def check_writable(path: str | Path, frames: int | None = None) -> None:
    """Refuse an output name no writer takes, before any frame is decoded (a folder has no suffix), and an image
    file for other than one frame (``frames``, when known)."""
    if to_stdout(path):
        return
    if Path(path).suffix.lower() not in (".yuv", ".y4m", "", IMAGE, *CONTAINERS):
        raise VcmError(f"cannot write {Path(path).name}: use .yuv, .y4m, {', '.join(CONTAINERS)}, a folder name, or "
                       f"{IMAGE} for one frame")
    if Path(path).suffix.lower() == IMAGE and frames is not None and frames != 1:
        folder = Path(path).with_suffix("").name
        raise VcmError(f"cannot write {frames:,} frames to {Path(path).name}, an image of one: name a folder for "
                       f"PNG frames ({folder}), or decode one frame (--frames K:K+1)")


def check_raw_name(path: str | Path, width: int, height: int, fps: float) -> str:
    """For a ``.yuv`` output (8-bit 4:2:0): refuse a name that declares another size, frame rate or bit depth
    than the frames it will hold (vcm reads a raw file back by what its name says, so ``Foo_208x120_25.yuv``
    holding 416×240 frames would read back as four times as many wrong frames). Returns a hint when the name
    declares no size (the file cannot be read back without ``--size``/``--fps``), else ''."""
    from vcm.video.naming import CHROMA_FORMATS, parse_name
    from vcm.video.source import raw_name_says

    path = Path(path)
    if path.suffix.lower() != ".yuv":
        return ""
    size, named_fps, depth = raw_name_says(path.stem)
    parsed = parse_name(path.stem)
    fitting = f"{parsed.name if parsed else path.stem}_{width}x{height}_{fps:g}.yuv"
    if size is not None and tuple(size) != (width, height):
        raise VcmError(f"--out {path.name} says {size[0]}x{size[1]}, but the frames are {width}x{height}: vcm would "
                       f"read it back at the size its name says; name it {fitting}")
    if named_fps is not None and abs(named_fps - fps) > 0.05 and round(fps) != named_fps:
        raise VcmError(f"--out {path.name} says {named_fps:g} fps, but the video is at {fps:g} fps: rates read back "
                       f"from it would be wrong; name it {fitting}")
    if depth not in (None, 8):
        raise VcmError(f"--out {path.name} says {depth}-bit, but decoded frames are written as 8-bit 4:2:0; name it {fitting}")
    if parsed is not None and parsed.chroma not in (None, "420"):
        raise VcmError(f"--out {path.name} says {CHROMA_FORMATS[parsed.chroma][0]} chroma, but decoded frames are "
                       f"written as 8-bit 4:2:0; name it {fitting}")
    if size is None or named_fps is None:
        return (f"raw 8-bit 4:2:0 whose name gives no size or rate: read it with --size {width}x{height} --fps {fps:g}, "
                f"or name it {fitting}")
    return ""


def note_read_back(path: str | Path, source: range) -> str:
    """'' when vcm reads the written video ``path`` back as the source frames ``source`` it holds, else a line,
    logged too, that says what it would take them for (a ``.yuv``, a container or PNGs start at source frame 0,
    or where an SFU-HW name puts them): ground truth or an original matched to them there would be other
    frames'. A file that cannot be read back without --size or --fps is left to :func:`check_raw_name`'s hint."""
    from vcm.video.source import probe

    try:
        info = probe(path, need_fps=False)
    except VcmError:
        return ""
    taken = info.source_range
    if taken == source:
        return ""
    why = (f"its name and frame count make it {info.sequence.name}'s CTC frames" if info.is_ctc_clip
           else f"{_KINDS.get(info.kind, 'it')} does not say where its frames start")
    note = (f"{Path(path).name} holds source frames {source.start}:{source.stop}, but vcm reads it back as frames "
            f"{taken.start}:{taken.stop} ({why}): evaluate the stream itself, or write .y4m, whose header says it")
    from vcm import progress

    progress.log(note, style="yellow")
    return note


_KINDS = {"yuv": "a raw .yuv", "container": "a video container", "images": "a folder of images", "image": "an image"}


def write_video(path: str | Path, frames_u8: np.ndarray | Iterable[np.ndarray], fps: float, bit_depth: int = 8,
                first_frame: int | None = None) -> Path:
    """Write ``uint8 [T,3,H,W]`` RGB (or an iterable of ``[B,3,H,W]`` chunks) to ``path`` by its
    suffix; a path without suffix becomes a folder of PNG frames.

    ``.yuv``: planar 4:2:0 (BT.601 limited, see :mod:`vcm.video.color`); ``.y4m``: the same samples in
    YUV4MPEG2, whose header gives the size, rate and depth (:mod:`vcm.video.y4m`). ``.mp4``/``.mkv``:
    lossless RGB H.264 (``libx264rgb -qp 0``) so that re-reading gives the same pixels. ``first_frame``: the
    source index of the first frame, which a ``.y4m`` records (:func:`open_writer`; None: not said).
    """
    chunks = [frames_u8] if isinstance(frames_u8, np.ndarray) else frames_u8
    with open_writer(path, fps, bit_depth, first_frame) as write:
        for chunk in chunks:
            write(chunk)
    return Path(path)


@contextlib.contextmanager
def open_writer(path: str | Path, fps: float, bit_depth: int = 8, first_frame: int | None = None) -> Iterator:
    """Yield ``write(frames_u8 [B,3,H,W])``; the file (or folder) appears complete on success only.
    ``first_frame``: the source index of the first frame, which a ``.y4m`` header says; a file of another kind
    that vcm would read back as other frames is named on stderr (:func:`note_read_back`). None: not said."""
    written = 0
    with _open_writer(path, fps, bit_depth, first_frame) as write:
        def counted(chunk: np.ndarray) -> None:
            nonlocal written
            write(chunk)
            written += len(chunk)

        yield counted
    if first_frame is not None and not to_stdout(path):
        note_read_back(path, range(first_frame, first_frame + written))


@contextlib.contextmanager
def _open_writer(path: str | Path, fps: float, bit_depth: int, first_frame: int | None) -> Iterator:
    check_writable(path)
    if to_stdout(path):
        try:  # the with-block's writes raise here too
            yield _y4m_writer(sys.stdout.buffer, fps, bit_depth, first_frame)
            sys.stdout.buffer.flush()
        except BrokenPipeError:  # the reader stopped early: `| head`, a player closed
            raise VcmError("stopped: the program reading stdout closed it before the last frame") from None
        return
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".yuv":
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # one handle for the whole video
            yield lambda chunk: yuv.write_yuv420_to(f, chunk, bit_depth)
    elif suffix == ".y4m":
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            yield _y4m_writer(f, fps, bit_depth, first_frame)
    elif suffix in CONTAINERS:
        with _container_writer(path, fps) as write:
            yield write
    elif suffix == IMAGE:
        with _image_writer(path) as write:
            yield write
    else:
        with _png_writer(path) as write:
            yield write


def _y4m_writer(f, fps: float, bit_depth: int, first_frame: int | None = None):
    """``write(frames_u8 [B,3,H,W])`` appending YUV4MPEG2 to the binary file ``f``, its header first (the size
    is known from the first frames)."""
    started = False

    def write(chunk: np.ndarray) -> None:
        nonlocal started
        if not started:
            f.write(y4m.header_line(chunk.shape[3], chunk.shape[2], fps, bit_depth, first_frame))
            started = True
        y4m.write_frames_to(f, chunk, bit_depth)

    return write


@contextlib.contextmanager
def _container_writer(path: Path, fps: float) -> Iterator:
    from vcm.video.ffmpeg_binary import ffmpeg_exe, first_error, libav_path

    with atomic_path(path) as tmp:
        proc = None

        def write(chunk: np.ndarray) -> None:
            nonlocal proc
            if proc is None:  # the size is known from the first frames
                _, _, h, w = chunk.shape
                cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                       "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps}", "-i", "-",
                       "-c:v", "libx264rgb", "-qp", "0", "-preset", "veryfast",
                       "-f", path.suffix.lstrip(".").replace("mkv", "matroska"), libav_path(tmp)]
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                proc.stdin.write(np.ascontiguousarray(chunk.transpose(0, 2, 3, 1)).tobytes())
            except BrokenPipeError:
                pass  # ffmpeg stopped: its message is read below

        try:
            yield write
        except BaseException:
            if proc is not None:
                proc.kill()
                proc.communicate()  # its pipes closed too
            raise
        if proc is None:
            raise VcmError(f"no frames to write to {path.name}")
        _, err = proc.communicate()  # closes its input, reads what it said, waits, and closes the pipes
        if code := proc.returncode:
            said = first_error(err) or f"it ended with code {code} and no message"
            raise VcmError(f"ffmpeg could not write {path.name}: {said}")


@contextlib.contextmanager
def _image_writer(path: Path) -> Iterator:
    """``write`` of a single frame into the image file ``path``, written once the frames end (a second frame is
    refused, and nothing is written then)."""
    from PIL import Image

    frames: list[np.ndarray] = []

    def write(chunk: np.ndarray) -> None:
        if len(frames) + len(chunk) > 1:
            raise VcmError(f"cannot write more than one frame to {path.name}, an image; name a folder for PNG frames")
        frames.extend(chunk)

    yield write
    if not frames:
        raise VcmError(f"no frame was written to {path.name}")
    with atomic_path(path) as tmp, naming_write_errors(path):
        Image.fromarray(np.ascontiguousarray(frames[0].transpose(1, 2, 0))).save(tmp, format="PNG")


@contextlib.contextmanager
def _png_writer(folder: Path) -> Iterator:
    from PIL import Image

    if folder.exists() and not folder.is_dir():
        raise VcmError(f"{folder} is a file; name a folder for PNG frames")
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f"{temp_prefix(parent, folder.name)}{os.getpid()}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    count = 0

    def write(chunk: np.ndarray) -> None:
        nonlocal count
        for frame in chunk:
            Image.fromarray(np.ascontiguousarray(frame.transpose(1, 2, 0))).save(staging / f"frame_{count:05d}.png", format="PNG")
            count += 1

    try:
        with naming_write_errors(folder):
            yield write
        folder.mkdir(exist_ok=True)
        written = {f.name for f in staging.iterdir()}
        for f in sorted(staging.iterdir()):  # into place one by one: other files in the folder stay
            os.replace(f, folder / f.name)
        # frames of an earlier, longer write are this writer's own output, replaced as a set: left behind, they
        # made the folder read back as a video of new frames followed by old ones
        for f in folder.glob("frame_*.png"):
            if f.name not in written and re.fullmatch(r"frame_\d{5,}\.png", f.name):
                f.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
