"""The ffmpeg binary vcm runs (lossless video files, the HEVC/VVC anchors), and paths as libav reads them."""

from __future__ import annotations

import os
import shutil

from vcm.errors import VcmError

ENV = "IMAGEIO_FFMPEG_EXE"  # imageio-ffmpeg's own setting: a path, or a name on PATH


def ffmpeg_exe() -> str:
    """``IMAGEIO_FFMPEG_EXE`` where set, else the binary the imageio-ffmpeg wheel ships; VcmError, naming the
    setting, where that names no program (it failed later as "No such file or directory: /path", not saying what)."""
    import imageio_ffmpeg

    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as err:  # neither the setting, nor the wheel's binary, nor one on PATH
        raise VcmError(str(err).strip().splitlines()[0]) from None
    if shutil.which(exe) is None:
        where = f"{ENV}={os.environ[ENV]}" if os.environ.get(ENV) else "imageio-ffmpeg's binary"
        raise VcmError(f"no ffmpeg program at {exe} ({where}): name an ffmpeg binary, or unset {ENV} for the one "
                       f"imageio-ffmpeg ships")
    return exe


def libav_path(path: str | os.PathLike) -> str:
    """``path`` as ffmpeg (and decord, on the same libav) reads a file: absolute. libav takes the letters before a
    first colon for a protocol, so a relative ``T10:00/x.mp4`` or ``a:b.mp4`` failed with "Protocol not found"."""
    return os.path.abspath(path)
