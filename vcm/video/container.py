"""Reading video containers (mp4, mkv, webm, …): decord where its libav decodes the codec (random access), else the
ffmpeg vcm ships (frames decoded in order). decord's libav reads no AV1 or VVC stream ("Check failed: st_nb >= 0"),
which the shipped ffmpeg decodes."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from vcm.errors import VcmError
from vcm.video.ffmpeg_binary import ffmpeg_exe, first_error, libav_path

# every decoded frame once, whatever the rates the container states
_PASSTHROUGH = ["-fps_mode", "passthrough"]


class Container:
    """An opened container: ``frames``, ``width``, ``height`` (pixels), ``fps`` (0 where the file gives none) and
    ``read(a, b)``, its frames [a, b) as ``uint8 [T,H,W,3]`` RGB."""

    frames: int
    width: int
    height: int
    fps: float

    def read(self, a: int, b: int) -> np.ndarray:
        raise NotImplementedError


class _Decord(Container):
    def __init__(self, reader):
        self._reader = reader
        self.frames = len(reader)
        self.height, self.width = self.read(0, 1).shape[1:3] if self.frames else (0, 0)  # its first frame decoded
        self.fps = float(reader.get_avg_fps())

    def read(self, a: int, b: int) -> np.ndarray:
        with _native_stderr_silenced():  # a damaged stream's decoder complains per macroblock
            frames = self._reader.get_batch(list(range(a, b))).asnumpy()
        # At some narrow widths (2, 4, 6, 8, 12, 16, 24, 48 and 72 px: of the even widths to 198 at 16 rows and every
        # fourth from 200 to 996 at 8 rows) decord's frames come with four channels and a batch fails to copy ("Check
        # failed: from_size == to_size"): vcm's own lossless .mp4 of such a clip could not be read back. The first
        # frame is read so when the file is opened, and a file decord fails goes to the shipped ffmpeg.
        if frames.ndim != 4 or frames.shape[3] != 3:
            raise RuntimeError(f"decord decoded frames of shape {frames.shape[1:]}, not height x width x 3")
        return frames


class _Ffmpeg(Container):
    """Frames decoded in order from the file's start: counting them decodes the whole file once, reading [a, b)
    decodes frames 0 to b."""

    def __init__(self, path: Path):
        import logging

        import imageio_ffmpeg

        # its one warning says that a rotated video's frames are rotated ("The frame size for reading (144, 176) is
        # different from the source frame size (176, 144)."), on the terminal through logging's last resort
        logging.getLogger("imageio_ffmpeg").setLevel(logging.ERROR)
        self._path = libav_path(path)
        frames = imageio_ffmpeg.read_frames(self._path, output_params=_PASSTHROUGH)
        try:
            meta = next(frames)
        finally:
            frames.close()
        self.width, self.height = (int(v) for v in meta["size"])
        self.fps = float(meta.get("fps") or 0.0)
        self.frames = int(imageio_ffmpeg.count_frames_and_secs(self._path)[0] or 0)

    def read(self, a: int, b: int) -> np.ndarray:
        import imageio_ffmpeg

        out = np.empty((b - a, self.height, self.width, 3), np.uint8)
        frames = imageio_ffmpeg.read_frames(self._path, output_params=_PASSTHROUGH + ["-frames:v", str(b)])
        got = 0
        try:
            next(frames)
            for i, data in enumerate(frames):
                if i >= a:
                    out[i - a] = np.frombuffer(data, np.uint8).reshape(self.height, self.width, 3)
                    got += 1
        finally:
            frames.close()
        if got != b - a:
            raise RuntimeError(f"ffmpeg decoded {got} of frames {a}:{b}")
        return out


@contextlib.contextmanager
def _native_stderr_silenced():
    """File descriptor 2 pointed at /dev/null: libav and decord print their own lines there from C (a damaged
    file gave three before vcm's one-line error); Python's ``sys.stderr`` object is not touched."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_container(path: Path) -> Container:
    """``path`` opened by decord, or where decord cannot, by the shipped ffmpeg; one-line VcmError where neither
    can read it. Its frame count and size are found as it opens (decord decodes the first frame for the size, ffmpeg
    the whole file for the count), so that a file one reader opens but cannot decode goes to the other. The last two
    opened are kept while their files stay as they were: ``load`` reads with the reader ``probe`` chose, and does
    not count the frames again."""
    st = path.stat()
    return _opened(Path(os.path.abspath(path)), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _opened(path: Path, *stat_key: int) -> Container:
    """``stat_key`` only keys the cache."""
    try:
        import decord

        with _native_stderr_silenced():
            return _Decord(decord.VideoReader(libav_path(path), ctx=decord.cpu(0)))
    except Exception as err:  # decord raises its own DECORDError and RuntimeError
        said = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
    try:
        return _Ffmpeg(path)
    except VcmError:
        raise
    except Exception:  # noqa: BLE001  (imageio-ffmpeg raises OSError, RuntimeError and ValueError)
        said = _ffmpeg_error(path) or said
    raise VcmError(f"{path.name}: cannot read this video container ({said[:160]})")


def _ffmpeg_error(path: Path) -> str:
    """What ffmpeg says, errors only, when it decodes the first frame of ``path`` ("moov atom not found")."""
    try:
        proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-i", libav_path(path), "-map", "0:v:0",
                               "-frames:v", "1", "-f", "null", "-"], capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    return first_error(proc.stderr)


def read_frames(container: Container, path: Path, a: int, b: int) -> np.ndarray:
    """Frames [a, b) of an opened ``container`` as ``uint8 [T,3,H,W]`` RGB; one-line VcmError where they do not
    decode."""
    try:
        data = container.read(a, b)
    except Exception as err:
        raise VcmError(f"{path.name}: failed to decode frames {a}:{b} ({str(err)[:160]})") from None
    return np.ascontiguousarray(data.transpose(0, 3, 1, 2))
