"""Sectioned, checksummed container shared by vcm's bitstreams (``.nerv``, ``.icm``).

    magic (4 bytes) · version (u8) · section count (u8) · sections
    section = tag (4 ASCII bytes) · length (u32 LE) · payload · crc32(tag + payload) (u32 LE)

Parsing checks every length against the bytes present and every CRC before a payload is used.
"""

from __future__ import annotations

import struct
import zlib

from vcm.bitstream.bits import StreamError


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
        raise StreamError(f"not a {kind} bitstream (wrong magic bytes)")
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
