"""What a container's video stream holds beyond its size and rate, as ffmpeg lists it: the pixel format's bits per
sample, an HDR transfer, interlacing. vcm reads every container as 8-bit RGB frames (decord, or the shipped ffmpeg),
so a 10-bit stream loses its two low bits and a PQ or HLG stream is read as coded, not tone-mapped; both are said
(``vcm info``, ``vcm fit``). Interlaced frames are refused as a YUV4MPEG2 file's are: read as frames, each would weave
two fields taken at different times.
"""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vcm.errors import VcmError
from vcm.video.ffmpeg_binary import ffmpeg_exe, libav_path

# the transfer characteristics of HDR video, as ffmpeg names them
HDR_TRANSFERS = {"smpte2084": "PQ", "arib-std-b67": "HLG"}
# ffmpeg's field orders ("top coded first (swapped)" and its bottom twin included); "progressive" is not one
_FIELD_ORDERS = ("top first", "bottom first", "top coded first", "bottom coded first")


@dataclass(frozen=True)
class StreamFormat:
    pix_fmt: str  # as ffmpeg names it, e.g. "yuv420p10le"
    bits: int  # bits per sample (the most of any component), 8 for yuv420p
    transfer: str | None  # "PQ" or "HLG" for an HDR stream, else None
    field_order: str | None  # "top first", … for an interlaced stream; None for a progressive or unsaid one

    def reading_note(self) -> str | None:
        return reading_note(self.bits, self.transfer)


def reading_note(bits: int, transfer: str | None = None) -> str | None:
    """What reading a video of ``bits`` per sample (and an HDR ``transfer``) as 8-bit RGB does to it, in words, for
    a raw or Y4M file as for a container; None where nothing is lost."""
    said = [f"its {bits}-bit samples read as 8-bit RGB"] if bits > 8 else []
    if transfer:
        said.append(f"its {transfer} (HDR) transfer read as coded, not tone-mapped")
    return ", ".join(said) or None


def stream_format(path: str | Path, size: tuple[int, int] | None = None) -> StreamFormat | None:
    """The format of the video stream vcm reads from the container at ``path``, from the shipped ffmpeg's listing
    of the file; None where ffmpeg lists none (an error, a file it cannot open: the reader says why). ``size``:
    the (width, height) of the frames the reader gives, which tells that stream from the others of a file with
    several (a thumbnail track listed first, a cover picture)."""
    try:
        listing = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", libav_path(path)],
                                 capture_output=True, timeout=30, stdin=subprocess.DEVNULL).stderr
    except (OSError, subprocess.SubprocessError, VcmError):  # no ffmpeg: decord may still read the file
        return None
    return parse_stream_line(listing.decode("utf-8", "replace"), size)


_VIDEO = re.compile(r"^\s*Stream #\d+:\d+\S*: Video: (.*)$", re.MULTILINE)
_SIZE = re.compile(r"^(\d+)x(\d+)\b")


def parse_stream_line(listing: str, size: tuple[int, int] | None = None) -> StreamFormat | None:
    """The :class:`StreamFormat` of a ``Stream #0:0: Video: codec, pix_fmt(range, colour, field order), WxH, …``
    line of an ffmpeg listing: the first that is not a cover picture and, given ``size``, has that size (turned, for
    a rotated video; the first where none has); None without one, or with a pixel format ffmpeg does not list."""
    streams = [_top_level(m.group(1)) for m in _VIDEO.finditer(listing) if "(attached pic)" not in m.group(1)]
    if size is not None:  # the reader's frames of a rotated video are turned: their size is the stream's turned
        def sizes(parts):
            return {(int(m.group(1)), int(m.group(2))) for p in parts if (m := _SIZE.match(p))}

        streams = ([p for p in streams if tuple(size) in sizes(p)]
                   or [p for p in streams if tuple(size[::-1]) in sizes(p)] or streams)
    return _format(streams[0]) if streams else None


def _format(parts: list[str]) -> StreamFormat | None:
    known = pixel_format_bits()
    # the pixel format is the first part after the codec's that names one (older ffmpegs put "1 reference frame"
    # between them)
    for part in parts[1:]:
        pix_fmt, _, details = part.partition("(")
        if pix_fmt.strip() in known:
            break
    else:
        return None
    said = [d.strip() for d in _top_level(details.removesuffix(")"))] if details else []
    transfer = next((HDR_TRANSFERS[t] for d in said for t in d.split("/")[-1:] if t in HDR_TRANSFERS), None)
    field = next((d for d in said if d.startswith(_FIELD_ORDERS)), None)
    return StreamFormat(pix_fmt.strip(), known[pix_fmt.strip()], transfer, field)


def _top_level(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


@functools.lru_cache(maxsize=1)
def pixel_format_bits() -> dict[str, int]:
    """{pixel format: its most bits per component} from ``ffmpeg -pix_fmts`` (``yuv420p10le  3  15  10-10-10``);
    empty where the listing cannot be had."""
    try:
        listing = subprocess.run([ffmpeg_exe(), "-hide_banner", "-pix_fmts"], capture_output=True, text=True,
                                 timeout=30, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError, VcmError):
        return {}
    rows = re.findall(r"^[A-Z.]{5} (\S+)\s+\d+\s+\d+\s+([\d-]+)\s*$", listing, re.MULTILINE)
    return {name: max(int(b) for b in depths.split("-") if b) for name, depths in rows}
