"""Byte-level primitives for the bitstream: varints, zigzag, Exp-Golomb bit packing.

Readers raise :class:`StreamError` (a VcmError) on truncated or malformed input; they never
allocate more than the bytes they were given justify.
"""

from __future__ import annotations

import numpy as np

from vcm.errors import VcmError


class StreamError(VcmError):
    """A malformed or truncated bitstream."""


def zigzag(v: int) -> int:
    return (v << 1) ^ (v >> 63) if v < 0 else v << 1


def unzigzag(u: int) -> int:
    return (u >> 1) ^ -(u & 1)


class Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def varint(self, v: int) -> None:
        if v < 0:
            raise ValueError("varint takes non-negative integers")
        while True:
            b = v & 0x7F
            v >>= 7
            self.buf.append(b | (0x80 if v else 0))
            if not v:
                return

    def svarint(self, v: int) -> None:
        self.varint(zigzag(int(v)))

    def raw(self, data: bytes) -> None:
        self.buf += data

    def getvalue(self) -> bytes:
        return bytes(self.buf)


class Reader:
    def __init__(self, data: bytes, what: str = "stream") -> None:
        self.data, self.pos, self.what = memoryview(data), 0, what

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def varint(self, limit: int = 1 << 40) -> int:
        v, shift = 0, 0
        while True:
            if self.pos >= len(self.data):
                raise StreamError(f"truncated {self.what}")
            b = self.data[self.pos]
            self.pos += 1
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 63:
                raise StreamError(f"malformed integer in {self.what}")
        if v > limit:
            raise StreamError(f"value {v} out of range in {self.what}")
        return v

    def svarint(self, limit: int = 1 << 40) -> int:
        v = unzigzag(self.varint(2 * limit + 1))
        return v

    def raw(self, n: int) -> bytes:
        if n < 0 or n > self.remaining():
            raise StreamError(f"truncated {self.what}")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def array(self, dtype: str, count: int) -> np.ndarray:
        dt = np.dtype(dtype)
        return np.frombuffer(self.raw(dt.itemsize * count), dtype=dt).copy()


def exp_golomb_pack(values: list[int]) -> bytes:
    """Order-0 Exp-Golomb codes of non-negative integers, MSB first, zero-padded to a byte."""
    bw = BitWriter()
    for v in values:
        bw.exp_golomb(v)
    return bw.getvalue()


def exp_golomb_unpack(data: bytes, count: int, what: str = "table") -> tuple[list[int], int]:
    """Read ``count`` Exp-Golomb values; returns (values, bytes consumed). The padding is not checked."""
    br = BitReader(Reader(data, what), len(data))
    return [br.exp_golomb() for _ in range(count)], (br.pos + 7) // 8


class BitWriter:
    """Bits MSB first: order-0 Exp-Golomb codes and fixed-width fields; :meth:`getvalue` pads the last
    byte with zeros."""

    def __init__(self) -> None:
        self.bits: list[str] = []

    def exp_golomb(self, v: int) -> None:
        if v < 0:
            raise ValueError("Exp-Golomb codes take non-negative integers")
        code = bin(v + 1)[2:]
        self.bits.append("0" * (len(code) - 1) + code)

    def signed(self, v: int) -> None:
        self.exp_golomb(zigzag(int(v)))

    def fixed(self, v: int, width: int) -> None:
        if not 0 <= v < 1 << width:
            raise ValueError(f"{v} does not fit in {width} bits")
        self.bits.append(format(v, f"0{width}b"))

    def bit_length(self) -> int:
        return sum(len(b) for b in self.bits)

    def getvalue(self) -> bytes:
        s = "".join(self.bits)
        s += "0" * (-len(s) % 8)
        return int(s, 2).to_bytes(len(s) // 8, "big") if s else b""


class BitReader:
    """Reads what :class:`BitWriter` wrote from a :class:`Reader`'s current position; :meth:`close`
    checks the padding and moves the reader past the bytes used."""

    MAX_ZEROS = 40  # a longer run of leading zeros is no value a writer of vcm's produces

    def __init__(self, r: Reader, max_bytes: int) -> None:
        """``max_bytes``: the most the records can take (only that much is unpacked)."""
        self.r = r
        self.bits = np.unpackbits(np.frombuffer(r.data[r.pos:r.pos + max_bytes], dtype=np.uint8))
        self.pos = 0

    def _take(self, n: int) -> int:
        if self.pos + n > len(self.bits):
            raise StreamError(f"truncated {self.r.what}")
        value = 0
        for b in self.bits[self.pos:self.pos + n]:
            value = (value << 1) | int(b)
        self.pos += n
        return value

    def exp_golomb(self, limit: int = 1 << 40) -> int:
        zeros = 0
        while self.pos < len(self.bits) and not self.bits[self.pos]:
            zeros += 1
            self.pos += 1
            if zeros > self.MAX_ZEROS:
                raise StreamError(f"malformed integer in {self.r.what}")
        v = self._take(zeros + 1) - 1
        if v > limit:
            raise StreamError(f"value {v} out of range in {self.r.what}")
        return v

    def signed(self, limit: int = 1 << 40) -> int:
        return unzigzag(self.exp_golomb(2 * limit + 1))

    def fixed(self, width: int) -> int:
        return self._take(width)

    def close(self) -> None:
        used = (self.pos + 7) // 8
        if self.bits[self.pos:8 * used].any():
            raise StreamError(f"malformed {self.r.what} (padding bits set)")
        self.r.pos += used
