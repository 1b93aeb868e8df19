"""Sectioned, checksummed container shared by vcm's bitstreams (``.nerv``, ``.icm``).

    magic (4 bytes) · version (u8) · section count (u8) · sections
    section = tag (4 ASCII bytes) · length (u32 LE) · payload · crc32(tag + payload) (u32 LE)

Parsing checks every length against the bytes present and every CRC before a payload is used.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from vcm.bitstream.bits import StreamError

# The first four bytes of each kind of vcm stream (what tells a stream of that kind from any other file).
NERV_MAGIC = b"VCMN"
ICM_MAGIC = b"VCMI"
STREAM_KINDS = {".nerv": (NERV_MAGIC, "vcm NeRV"), ".icm": (ICM_MAGIC, "vcm ICM")}  # file suffix → (magic, name)
_DECODER = {NERV_MAGIC: "vcm decode", ICM_MAGIC: "vcm icm decode"}  # the command that reads each kind


def folder_given(path: Path, suffix: str) -> str:
    """The one line for a folder named where a ``suffix`` stream (``.nerv``, ``.icm``) was wanted, naming the
    streams it holds (a run folder holds those ``vcm compress`` wrote), newest first."""
    found = sorted((p for p in Path(path).glob(f"*{suffix}") if p.is_file()), key=lambda p: p.stat().st_mtime,
                   reverse=True)
    if not found:
        return f"{path} is a directory; name a {suffix} file"
    listed = ", ".join(str(p) for p in found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
    return f"{path} is a directory; name one of its {suffix} streams: {listed}"


def pack(magic: bytes, version: int, sections: list[tuple[bytes, bytes]]) -> bytes:
    out = bytearray(magic + bytes([version, len(sections)]))
    for tag, payload in sections:
        assert len(tag) == 4
        out += tag + struct.pack("<I", len(payload)) + payload
        out += struct.pack("<I", zlib.crc32(tag + payload) & 0xFFFFFFFF)
    return bytes(out)


def unpack(data: bytes, magic: bytes, version: int, kind: str) -> dict[bytes, bytes]:
    """Validate and split a container; raises StreamError with a one-line reason."""
    if len(data) < 6 or data[:4] != magic:
        other = next((f"; it is a {name} bitstream ({_DECODER[m]} decodes it)" for m, name in STREAM_KINDS.values()
                      if m != magic and data[:4] == m), "")
        raise StreamError(f"not a {kind} bitstream (wrong magic bytes){other}")
    if data[4] > version:
        raise StreamError(f"this {kind} bitstream has format version {data[4]}, newer than this vcm "
                          f"understands ({version}); upgrade vcm")
    if data[4] == 0:
        raise StreamError(f"malformed {kind} bitstream (version 0)")
    n, pos, sections = data[5], 6, {}
    for _ in range(n):
        if pos + 8 > len(data):
            raise StreamError(f"truncated {kind} bitstream (section header)")
        tag = bytes(data[pos:pos + 4])
        (length,) = struct.unpack_from("<I", data, pos + 4)
        end = pos + 8 + length
        if end + 4 > len(data):
            raise StreamError(f"truncated {kind} bitstream (section {tag!r} claims {length} bytes)")
        payload = bytes(data[pos + 8:end])
        (crc,) = struct.unpack_from("<I", data, end)
        if zlib.crc32(tag + payload) & 0xFFFFFFFF != crc:
            raise StreamError(f"corrupt {kind} bitstream: checksum mismatch in section {tag.decode('ascii', 'replace')!r}")
        if tag in sections:
            raise StreamError(f"malformed {kind} bitstream (section {tag!r} twice)")
        sections[tag] = payload
        pos = end + 4
    if pos != len(data):
        raise StreamError(f"malformed {kind} bitstream ({len(data) - pos} trailing bytes)")
    return sections


MAX_HEADER_BYTES = 1 << 20  # decompressed; real headers are under 2 KiB
MAX_HEADER_DEPTH = 32  # nesting of JSON arrays/objects; real headers nest 3 deep
MAX_SOURCE_FRAME = 1 << 31  # the largest source frame index a header may declare (a 32-bit index)


def valid_source_range(v) -> bool:
    """Whether a header's ``source_frames`` is ``[a, b]``: whole numbers (not booleans), 0 ≤ a < b ≤ 2³¹."""
    return (isinstance(v, list) and len(v) == 2 and all(isinstance(s, int) and not isinstance(s, bool) for s in v)
            and 0 <= v[0] < v[1] <= MAX_SOURCE_FRAME)


def pack_header(header: dict, zdict: bytes | None = None) -> bytes:
    """Compact JSON with sorted keys, zlib-compressed (with the preset dictionary ``zdict``, a format's
    own constant: its usual keys and values then cost a few bits each)."""
    c = zlib.compressobj(9, zdict=zdict) if zdict else zlib.compressobj(9)
    return c.compress(json.dumps(header, separators=(",", ":"), sort_keys=True).encode()) + c.flush()


def read_header(blob: bytes, kind: str, zdict: bytes | None = None) -> dict:
    """A zlib-compressed JSON object (``zdict``: the preset dictionary it was written with), checked: at
    most ``MAX_HEADER_BYTES`` once decompressed (no zip bomb), one complete zlib stream with nothing
    after it, nesting at most ``MAX_HEADER_DEPTH``."""
    d = zlib.decompressobj(zdict=zdict) if zdict else zlib.decompressobj()
    try:
        raw = d.decompress(blob, MAX_HEADER_BYTES)
    except zlib.error:
        raise StreamError(f"malformed {kind} bitstream (unreadable header)") from None
    if d.unconsumed_tail:
        raise StreamError(f"malformed {kind} bitstream (header larger than {MAX_HEADER_BYTES} bytes)")
    if not d.eof or d.unused_data:
        raise StreamError(f"malformed {kind} bitstream (header truncated or followed by junk)")
    if _depth(raw) > MAX_HEADER_DEPTH:
        raise StreamError(f"malformed {kind} bitstream (header nested too deeply)")
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise StreamError(f"malformed {kind} bitstream (unreadable header)") from None
    if not isinstance(header, dict):
        raise StreamError(f"malformed {kind} bitstream (header is not an object)")
    return header


def _depth(raw: bytes) -> int:
    """Maximum bracket nesting of JSON text (brackets inside strings counted too: an upper bound)."""
    depth = peak = 0
    for byte in raw:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            peak = max(peak, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return peak
