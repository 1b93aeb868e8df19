"""The ``.icm`` stream's container and header, read and checked without the codec's network code.

Container (see vcm/bitstream/container.py) with magic ``VCMI``:
- ``HEAD``: zlib JSON — name, sequence, width, height, fps, frames, source_frames, arch, config,
  checkpoint fingerprint, padding multiple;
- ``DATA``: per frame, the latent shape (two varints), the number of strings, and each rANS
  string (varint length + bytes).
``vcm info`` reads a stream's header through this module alone, so it never imports CompressAI.
"""

from __future__ import annotations

from vcm.bitstream import container
from vcm.bitstream.bits import StreamError
from vcm.icm.archs import ARCHS
from vcm.video.limits import MAX_SIDE

MAGIC, VERSION = container.ICM_MAGIC, 1

MAX_FRAMES = 1_000_000
MIN_FRAME_BYTES = 4  # a frame's data: two latent varints, the string count and a length per string
MAX_STRINGS = 8  # entropy-coded strings per frame read before the count is checked (TCM: slices + 1, others 2)
# Header fields and their checks: a schema, so that no field is used before its type is known.
_HEADER = {
    "name": lambda v: isinstance(v, str) and len(v) <= 256,
    "sequence": lambda v: v is None or (isinstance(v, str) and len(v) <= 256),
    "width": lambda v: _is_int(v) and 1 <= v <= MAX_SIDE,
    "height": lambda v: _is_int(v) and 1 <= v <= MAX_SIDE,
    "fps": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1000,
    "frames": lambda v: _is_int(v) and 1 <= v <= MAX_FRAMES,
    "source_frames": container.valid_source_range,
    "arch": lambda v: isinstance(v, str) and v in ARCHS,
    "config": lambda v: isinstance(v, dict),
    "checkpoint": lambda v: isinstance(v, str) and 0 < len(v) <= 255 and "/" not in v and "\\" not in v and v not in (".", ".."),
    "checkpoint_fingerprint": lambda v: isinstance(v, str) and len(v) == 16,
}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_header(data: bytes) -> tuple[dict, bytes]:
    """Validate a ``.icm`` stream's container and header → (header, DATA payload)."""
    sections = container.unpack(data, MAGIC, VERSION, "vcm ICM")
    if b"HEAD" not in sections or b"DATA" not in sections:
        raise StreamError("malformed vcm ICM bitstream (missing HEAD or DATA)")
    header = container.read_header(sections[b"HEAD"], "vcm ICM")
    unknown = set(header) - set(_HEADER)
    if unknown:
        raise StreamError(f"malformed vcm ICM bitstream (unknown header field {sorted(unknown)[0][:40]!r})")
    for key, ok in _HEADER.items():
        if key not in header:
            raise StreamError(f"malformed vcm ICM bitstream (header field {key!r} missing)")
        if not ok(header[key]):
            raise StreamError(f"malformed vcm ICM bitstream (header field {key!r} is invalid)")
    if header["source_frames"][1] - header["source_frames"][0] != header["frames"]:
        raise StreamError("malformed vcm ICM bitstream (source frame range does not match the frame count)")
    if header["frames"] * MIN_FRAME_BYTES > len(sections[b"DATA"]):
        raise StreamError(f"malformed vcm ICM bitstream (it declares {header['frames']:,} frames in "
                          f"{len(sections[b'DATA']):,} bytes of frame data)")
    return header, sections[b"DATA"]
