"""What a file name says about a raw video: ``Name_WxH_fps[...].yuv``.

Recognised forms (JCT-VC and CompressAI-Vision names):
``BQMall_832x480_60.yuv``, ``BQMall_832x480_60Hz_8bit_P420.yuv``, ``RaceHorses_416x240_30_val.yuv``,
``Foo_1920x1080_24_10bit.yuv``. A chroma format in the name (``_P420``, ``_444``, ``_yuv422p``) is read too: vcm reads
and writes raw 4:2:0, and a 4:4:4 file read as 4:2:0 would be twice as many wrong frames, with no error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME_RE = re.compile(
    r"^(?P<name>.+?)_(?P<w>\d+)x(?P<h>\d+)(?:_(?P<fps>\d+(?:\.\d+)?)(?:hz|fps)?)?(?P<rest>(?:_.*)?)$",
    re.IGNORECASE,
)
_BITS_RE = re.compile(r"_(?P<bits>8|10|12|16)bit", re.IGNORECASE)
# The chroma format a name may carry: _P420 (CompressAI-Vision), _444, _yuv422p, _400 (luma only).
_CHROMA_RE = re.compile(r"_(?:p|yuv)?(?P<chroma>420|422|444|440|400)p?(?=_|$)", re.IGNORECASE)
# Each as a person reads it, and as ffmpeg's -pix_fmt names it (8 bit).
CHROMA_FORMATS = {"420": ("4:2:0", "yuv420p"), "422": ("4:2:2", "yuv422p"), "444": ("4:4:4", "yuv444p"),
                  "440": ("4:4:0", "yuv440p"), "400": ("4:0:0 (luma only)", "gray")}


@dataclass(frozen=True)
class ParsedName:
    name: str
    width: int
    height: int
    fps: float | None
    bit_depth: int | None
    is_val_clip: bool
    chroma: str | None = None  # "420", "422", "444", "440" or "400" where the name says it


def parse_name(stem: str) -> ParsedName | None:
    """Parse a file stem (no extension); None when it has no ``_WxH`` part."""
    m = _NAME_RE.match(stem)
    if not m:
        return None
    rest = m.group("rest") or ""
    bits = _BITS_RE.search(rest)
    chroma = _CHROMA_RE.search(rest)
    return ParsedName(
        name=m.group("name"),
        width=int(m.group("w")),
        height=int(m.group("h")),
        fps=float(m.group("fps")) if m.group("fps") else None,
        bit_depth=int(bits.group("bits")) if bits else None,
        is_val_clip="_val" in rest.lower(),
        chroma=chroma.group("chroma") if chroma else None,
    )


def parse_size(text: str) -> tuple[int, int]:
    """``"832x480"`` → (832, 480)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        from vcm.errors import VcmError

        raise VcmError(f"--size must look like WIDTHxHEIGHT (e.g. 832x480), got {text!r}")
    return int(m.group(1)), int(m.group(2))
