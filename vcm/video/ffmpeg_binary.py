"""The ffmpeg binary vcm runs (lossless video files, the HEVC/VVC anchors), paths as libav reads them, and what
ffmpeg said when it failed."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess

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
        raise VcmError(f"no ffmpeg program at {exe} ({_where()}): name an ffmpeg binary, or unset {ENV} for the one "
                       f"imageio-ffmpeg ships")
    return exe


def _where() -> str:
    return f"{ENV}={os.environ[ENV]}" if os.environ.get(ENV) else "imageio-ffmpeg's binary"


@functools.lru_cache(maxsize=4)
def _encoders(exe: str) -> str:
    """``exe -encoders``'s listing, or empty where it gives none."""
    try:
        return subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=20,
                              stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def require_encoder(encoder: str) -> None:
    """VcmError, naming the ffmpeg, where it lists its encoders and ``encoder`` is not among them (a system ffmpeg
    set in ``IMAGEIO_FFMPEG_EXE``, built without libvvenc); an ffmpeg that lists none is left to try."""
    exe = ffmpeg_exe()
    listed = _encoders(exe)
    if listed and not re.search(rf"^\s*[A-Z.]{{6}}\s+{re.escape(encoder)}\s", listed, re.MULTILINE):
        fix = (f"unset {ENV} for the one imageio-ffmpeg ships" if os.environ.get(ENV)
               else f"name one that has it in {ENV}")
        raise VcmError(f"the ffmpeg at {exe} ({_where()}) has no {encoder} encoder; {fix}")


def libav_path(path: str | os.PathLike) -> str:
    """``path`` as ffmpeg (and decord, on the same libav) reads a file: absolute. libav takes the letters before a
    first colon for a protocol, so a relative ``T10:00/x.mp4`` or ``a:b.mp4`` failed with "Protocol not found"."""
    return os.path.abspath(path)


_CONTEXT = re.compile(r"^(\[[^\]]* @ (0x)?[0-9a-fA-F]+\] *)+")  # ffmpeg's "[vost#0:0/libx265 @ 0x55d4…] "


def first_error(stderr: bytes) -> str:
    """The first line a program wrote to stderr, where the cause is ("x265 [error]: Picture width must be …"); the
    lines after it are its consequences (ffmpeg ended with "Nothing was written into output file, …"), and ffmpeg's
    "[component @ address]" prefixes are left out. Empty for no output."""
    for line in stderr.decode(errors="replace").splitlines():
        if line := _CONTEXT.sub("", line).strip():
            return line[:300]
    return ""
