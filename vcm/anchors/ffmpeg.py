"""Anchor codecs: YUV in, bitstream file out (its size is the rate), decoded frames back.

Both encoders get 10-bit 4:2:0 input (the CTC's internal bit depth; libvvenc accepts nothing
else): 8-bit source samples are shifted left by 2 here, and the decoder's 10-bit output is read
back with vcm's own 10-bit reader and colour conversion, so no ffmpeg scaler or dither touches
the samples. Fixed QP (no adaptive quantisation) in one of the CTC's three configurations (``CONFIGS``):
random access (the default: intra period from the CTC, 64 at 50/60 fps and 32 at 24/30 fps, closed GOPs,
hierarchical B frames), low delay (one intra frame, then frames in display order, no reordering) or all
intra.

An external VTM (``EncoderApp``/``DecoderApp``) can be used instead by giving their paths.
"""

from __future__ import annotations

import functools
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcm.errors import VcmError
from vcm.fsutil import scratch_dir
from vcm.video.color import rgb_to_yuv420, yuv420_to_rgb
from vcm.video.ffmpeg_binary import ffmpeg_exe, first_error, libav_path, require_encoder
from vcm.video.yuv import read_yuv420

CODECS = {"hevc": ("libx265", "hevc", ".hevc"), "vvc": ("libvvenc", "vvc", ".266")}


CONFIGS = {"ra": "random access", "ld": "low delay", "ai": "all intra"}


def check_config(config) -> str:
    """One of the CTC's configurations (``ra``, ``ld``, ``ai``), or a one-line error naming them."""
    if not isinstance(config, str) or config not in CONFIGS:  # a list or mapping here is not hashable
        raise VcmError(f"config must be one of {', '.join(CONFIGS)} ({', '.join(CONFIGS.values())}), got {config!r}")
    return config


def intra_period(fps: float, config: str = "ra") -> int:
    """Frames from one intra frame to the next: the CTC's random-access period (64 frames at 50/60 fps, 32 at
    24/30 fps), -1 in low delay (the first frame only), 1 in all intra."""
    return {"ld": -1, "ai": 1}.get(check_config(config), 64 if fps >= 48 else 32)


_STRUCTURE = {  # what each encoder's GOP is in each configuration, for the report
    ("hevc", "ra"): "random access: 7 B-frames, hierarchical (b-pyramid), closed GOP, no scene cut, AQ off",
    ("hevc", "ld"): "low delay: P frames in display order (x265 has no low-delay B), no scene cut, AQ off",
    ("hevc", "ai"): "all intra, AQ off",
    ("vvc", "ra"): "random access (VVenC default GOP), perceptual QPA off",
    ("vvc", "ld"): "low delay: B frames in display order (GOP 8, no reordering), perceptual QPA off",
    ("vvc", "ai"): "all intra, perceptual QPA off",
}


def settings(codec: str, fps: float, preset: str | None = None, vtm: dict | None = None, config: str = "ra") -> dict:
    """What an anchor point was encoded with, for the report's experiment block."""
    period = intra_period(fps, config)
    if vtm:
        return {"encoder": "VTM (external)", "config": f"{CONFIGS[config]}, {Path(str(vtm.get('config', '?'))).name}",
                "intra_period": period, "bit_depth": 10}
    if codec == "hevc":
        return {"encoder": "x265 (ffmpeg libx265)", "preset": preset or "medium", "config": _STRUCTURE[codec, config],
                "intra_period": period, "bit_depth": 10, "ffmpeg": ffmpeg_version()}
    return {"encoder": "VVenC (ffmpeg libvvenc)", "preset": preset or "faster", "config": _STRUCTURE[codec, config],
            "intra_period": period, "bit_depth": 10, "ffmpeg": ffmpeg_version()}


@functools.lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    """The first line of ``ffmpeg -version`` (e.g. ``ffmpeg version 7.0.2``), or ``unknown``; asked once."""
    try:
        out = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True, timeout=20).stdout
        return " ".join(out.splitlines()[0].split()[:3]) if out else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class AnchorResult:
    bitstream: Path
    frames_u8: np.ndarray  # decoded, uint8 [T,3,H,W]
    encode_seconds: float
    decode_seconds: float


def write_10bit(path: Path, planes: tuple[np.ndarray, np.ndarray, np.ndarray], bit_depth: int) -> None:
    """Planar 4:2:0 samples → a raw 10-bit little-endian file."""
    shift = 10 - bit_depth
    with open(path, "wb") as f:
        for t in range(planes[0].shape[0]):
            for p in planes:
                v = p[t].astype(np.uint16)
                f.write((v << shift if shift >= 0 else v >> -shift).astype("<u2").tobytes())


def _run(cmd: list[str], what: str) -> float:
    start = time.time()
    # stdin closed: ffmpeg reads it for keys ('q'), and a run in the background or beside another
    # encoder sharing the terminal could then stop early and leave an empty stream behind
    proc = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL)
    if proc.returncode:
        raise VcmError(f"{what} failed: {first_error(proc.stderr) or 'exit code ' + str(proc.returncode)}")
    return time.time() - start


def _check_written(out: Path, encoder: str, qp: int) -> None:
    """An encoder that exits 0 must have written a stream (an empty one is not a point of the curve)."""
    if not out.exists() or out.stat().st_size == 0:
        raise VcmError(f"{encoder} exited without writing a stream at QP {qp}")


ENCODE_TRIES, RETRY_PAUSE = 3, 2.0  # tries of an encode that writes nothing; seconds before the 2nd (then 2×)


def _encode_until_written(cmd: list[str], out: Path, encoder: str, qp: int) -> float:
    """Run an ffmpeg encode; one that exits 0 with an empty stream is run again after a pause (seen with
    libvvenc when points run in parallel: about one encode in six reads its input, encodes nothing and
    exits 0 within a second, even with no other encode running, and the same command then succeeds;
    an encoder's output does not depend on the try). Seconds of the try that wrote the stream."""
    from vcm import progress

    for attempt in range(1, ENCODE_TRIES + 1):
        seconds = _run(cmd, f"{encoder} encoding")
        if out.exists() and out.stat().st_size > 0:
            return seconds
        if attempt < ENCODE_TRIES:
            progress.log(f"{encoder} exited without writing a stream at QP {qp}; encoding again ({attempt + 1}/{ENCODE_TRIES})")
            time.sleep(RETRY_PAUSE * attempt)
    _check_written(out, encoder, qp)
    return seconds


# The smallest side x265 and vvenc are given: x265 refuses a side under 16 ("Image size is too small") and, at its
# placebo preset, under 32; vvenc refuses some pictures with a side under 32 (16x16, 48x8) and takes others (8x48).
# A VTM pads a picture to its coding size itself and is given the clip's even size.
MIN_CODED_SIDE = 32


def coded_size(width: int, height: int, smallest: int = MIN_CODED_SIDE) -> tuple[int, int]:
    """The picture size (width, height) an encoder codes a ``width`` x ``height`` clip at: even, as 4:2:0 needs
    ("Picture width must be an integer multiple of the specified chroma subsampling"), and at least ``smallest``
    (even) a side."""
    return max(width + width % 2, smallest), max(height + height % 2, smallest)


def padded_to(planes: tuple[np.ndarray, ...], width: int, height: int) -> tuple[np.ndarray, ...]:
    """4:2:0 ``planes`` (Y ``[T,h,w]``, U and V ``[T,ceil(h/2),ceil(w/2)]``) grown to a ``width`` x ``height``
    picture (even, at least their size) by repeating their last column and row, as an HM or VTM encoder pads a
    picture to its coding size. A plane already at its size is returned as it is (the chroma of an odd size holds
    ceil(size / 2) samples already)."""

    def grown(plane: np.ndarray, w: int, h: int) -> np.ndarray:
        rows, cols = h - plane.shape[1], w - plane.shape[2]
        return np.pad(plane, ((0, 0), (0, rows), (0, cols)), mode="edge") if rows or cols else plane

    y, u, v = planes
    return grown(y, width, height), grown(u, width // 2, height // 2), grown(v, width // 2, height // 2)


def encode_decode(codec: str, planes, bit_depth: int, width: int, height: int, fps: float, qp: int,
                  out: Path, preset: str | None = None, vtm: dict | None = None, config: str = "ra") -> AnchorResult:
    """Encode planar 4:2:0 ``planes`` (Y, U, V ``[T,h,w]``) at ``qp`` in ``config`` (``CONFIGS``); write ``out``;
    decode it back. An external VTM takes the structure from its own ``.cfg`` (give the one of that
    configuration) and the intra period from here. A clip of an odd or small size is coded at :func:`coded_size`
    (the stream's rate includes the repeated samples) and decoded frames are cropped back."""
    if codec not in CODECS:
        raise VcmError(f"unknown anchor codec {codec!r}; use hevc or vvc")
    encoder, fmt, _ = CODECS[codec]
    frames = planes[0].shape[0]
    coded_width, coded_height = coded_size(width, height, 2 if vtm else MIN_CODED_SIDE)
    planes = padded_to(planes, coded_width, coded_height)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    period = intra_period(fps, config)
    from vcm import progress

    progress.log(f"{codec} QP {qp}: encoding {frames} frames ({'VTM' if vtm else encoder}), then decoding")
    with scratch_dir(out.parent, "anchor") as tmp:  # beside the output, swept after a kill
        src, rec = Path(tmp) / "in.yuv", Path(tmp) / "rec.yuv"
        write_10bit(src, planes, bit_depth)
        if vtm:
            enc = _run([str(vtm["encoder"]), "-c", str(vtm["config"]), "-i", str(src), "-wdt", str(coded_width),
                        "-hgt", str(coded_height),
                        "-fr", str(round(fps)), "-f", str(frames), "-q", str(qp), "--InputBitDepth=10",
                        "--InternalBitDepth=10", "--OutputBitDepth=10", f"--IntraPeriod={period}", "-b", str(out)], "VTM encoder")
            _check_written(out, "VTM encoder", qp)
            dec = _run([str(vtm["decoder"]), "-b", str(out), "-o", str(rec), "-d", "10"], "VTM decoder")
        else:
            raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{coded_width}x{coded_height}", "-r", f"{fps}",
                   "-i", libav_path(src)]
            if codec == "hevc":
                gop = {"ra": f"keyint={period}:min-keyint={period}:scenecut=0:open-gop=0:bframes=7:b-pyramid=1",
                       "ld": "keyint=-1:scenecut=0:bframes=0",
                       "ai": "keyint=1:min-keyint=1:scenecut=0:bframes=0"}[config]
                if config == "ra" and preset == "ultrafast":  # its lookahead of 5 frames is under 7 B frames: x265
                    gop += ":rc-lookahead=8"  # refused every point ("Lookahead depth must be greater than …")
                params = f"qp={qp}:{gop}:aq-mode=0:info=0:log-level=error"
                opts = ["-c:v", encoder, "-preset", preset or "medium", "-x265-params", params]
            else:
                gop = {"ra": f"IntraPeriod={period}", "ai": "IntraPeriod=1",
                       "ld": "IntraPeriod=-1:DecodingRefreshType=0:GOPSize=8:PicReordering=0"}[config]
                opts = ["-c:v", encoder, "-preset", preset or "faster", "-qp", str(qp), "-qpa", "0",
                        "-vvenc-params", gop]
            require_encoder(encoder)  # each point failed with "Unknown encoder 'libvvenc'", not saying whose
            base = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
            # every frame in, every frame out: by default ffmpeg fits frames to the rate it reads from the stream,
            # and dropped half of a 240 fps clip's decoded frames
            once = ["-fps_mode", "passthrough"]
            enc = _encode_until_written(base + raw + opts + once + ["-f", fmt, libav_path(out)], out, encoder, qp)
            dec = _run(base + ["-i", libav_path(out)] + once + ["-f", "rawvideo", "-pix_fmt", "yuv420p10le",
                                                                 libav_path(rec)], f"{codec} decoding")
        y, u, v = read_yuv420(rec, coded_width, coded_height, 10, 0, frames)
        ch, cw = (height + 1) // 2, (width + 1) // 2
        decoded = yuv420_to_rgb(y[:, :height, :width], u[:, :ch, :cw], v[:, :ch, :cw], bit_depth=10)
    return AnchorResult(out, decoded, enc, dec)


def planes_of(video) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], int]:
    """The source's own YUV samples for raw YUV and Y4M inputs; others converted with vcm.video.color."""
    info = video.info
    if info.kind in ("yuv", "y4m"):
        from vcm.video.source import read_planes

        a = video.source_frames.start - info.first_source_frame
        return read_planes(info, a, a + video.num_frames), info.bit_depth
    return rgb_to_yuv420(video.frames_u8, 8), 8
