"""Entropy coding of quantized symbols with constriction's ANS coder.

Each array is coded under its own categorical model, whose table travels in the stream (see
``encode_array`` for the layout and the constant / uniform modes). Table entries are
log-domain counts, so a 300-symbol table costs ~100 bytes rather than ~300, for a mismatch
cost of well under 1 %. The decoder rebuilds bit-identical float64 probabilities from the
integers (powers of two times literal constants: no libm), so both sides use the same model.
Whole arrays are coded in one call.
"""

from __future__ import annotations

import numpy as np
import constriction

from vcm.bitstream.bits import Reader, StreamError, Writer, exp_golomb_pack, exp_golomb_unpack, unzigzag, zigzag

MAX_SPAN = 1 << 17  # 16-bit symbols at most (±65534)


RESOLUTIONS = (1, 2, 3, 4)  # table steps per octave of count
# 2^(j/r) for j < r as float literals (parsed exactly everywhere; no pow() from libm).
_ROOTS = {
    1: (1.0,),
    2: (1.0, 1.4142135623730951),
    3: (1.0, 1.2599210498948732, 1.5874010519681994),
    4: (1.0, 1.189207115002721, 1.4142135623730951, 1.681792830507429),
}


def _probabilities(v: np.ndarray, r: int) -> np.ndarray:
    """Table entries → float64 weights, bit-identical on every platform.

    v = 0: absent symbol; v ≥ 1: weight 2^((v−1)/r) = 2^⌊(v−1)/r⌋ · 2^(((v−1) mod r)/r), an
    exact power of two times a literal constant, so encoder and decoder get the same floats.
    """
    e = np.maximum(v - 1, 0)
    frac = np.array(_ROOTS[r], dtype=np.float64)
    w = np.ldexp(frac[e % r], (e // r).astype(np.int64))
    return np.where(v > 0, w, 0.0)


def _model(v: np.ndarray, r: int):
    return constriction.stream.model.Categorical(_probabilities(v, r), perfect=False)


def _table(counts: np.ndarray, r: int) -> tuple[float, np.ndarray, bytes]:
    """(table + coded bits, entries v, packed table) for log-domain resolution r."""
    v = np.where(counts > 0, 1 + np.rint(r * np.log2(np.maximum(counts, 1))), 0).astype(np.int64)
    packed = exp_golomb_pack([zigzag(int(d)) for d in np.diff(v, prepend=0)])
    p = _probabilities(v, r)
    present = counts > 0
    coded_bits = float(-(counts[present] * np.log2(p[present] / p.sum())).sum())
    return 8 * len(packed) + coded_bits, v, packed


MODE_CONSTANT, MODE_TABLE, MODE_UNIFORM = 0, 1, 2


def encode_array(symbols: np.ndarray, w: Writer) -> int:
    """Append the coded ``symbols`` (integers, any shape) to ``w``; returns the bytes of its ANS words (the rest
    of what it appended, its range, mode and table, describes them).

    Layout: svarint lo · varint span · u8 mode · [u8 r · table] · varint n_words · u32 words.
    The table holds v_i = 1 + round(r·log2 count_i) (0 for absent symbols) as Exp-Golomb codes of
    zigzagged neighbour differences; r (steps per octave) is chosen to minimise table + data bits.
    Mode ``table`` codes under the transmitted categorical model; ``uniform`` (no table) is used
    when it is cheaper, e.g. for a few dozen biases; ``constant`` when span is 1.
    """
    s = np.asarray(symbols, dtype=np.int64).ravel()
    if s.size == 0:
        w.svarint(0)
        w.varint(0)
        return 0
    lo, hi = int(s.min()), int(s.max())
    span = hi - lo + 1
    if span > MAX_SPAN:
        raise ValueError(f"symbol span {span} too large")
    w.svarint(lo)
    w.varint(span)
    if span == 1:
        w.raw(bytes([MODE_CONSTANT]))
        return 0
    counts = np.bincount(s - lo, minlength=span).astype(np.int64)
    cost, v, packed, r = min((_table(counts, r) + (r,) for r in RESOLUTIONS), key=lambda c: c[0])
    if cost < s.size * np.log2(span):
        w.raw(bytes([MODE_TABLE, r]))
        w.raw(packed)
        model = _model(v, r)
    else:
        w.raw(bytes([MODE_UNIFORM]))
        model = constriction.stream.model.Uniform(span)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse((s - lo).astype(np.int32), model)
    words = coder.get_compressed()
    w.varint(int(words.size))
    w.raw(words.astype("<u4").tobytes())
    return 4 * int(words.size)


def decode_array(r: Reader, count: int) -> np.ndarray:
    """Read one coded array of ``count`` symbols → ``int64 [count]``."""
    lo = r.svarint(MAX_SPAN)
    span = r.varint(MAX_SPAN)
    if span == 0:
        if count:
            raise StreamError("empty table for a non-empty tensor")
        return np.zeros(0, np.int64)
    mode = r.raw(1)[0]
    if mode == MODE_CONSTANT:
        if span != 1:
            raise StreamError("malformed entropy-coded data")
        return np.full(count, lo, dtype=np.int64)
    if mode == MODE_TABLE and span >= 2:
        res = r.raw(1)[0]
        if res not in RESOLUTIONS:
            raise StreamError("malformed probability table")
        diffs, used = exp_golomb_unpack(bytes(r.data[r.pos:r.pos + 11 * span + 8]), span)
        r.pos += used
        v = np.cumsum([unzigzag(d) for d in diffs], dtype=np.int64)
        if v.min() < 0 or v.max() > res * 64 or not v.any():
            raise StreamError("malformed probability table")
        try:  # constriction checks the weights itself; a table it refuses is the stream's fault too
            model = _model(v, res)
        except (ValueError, AssertionError) as err:
            raise StreamError(f"malformed probability table ({type(err).__name__})") from None
    elif mode == MODE_UNIFORM and span >= 2:
        model = constriction.stream.model.Uniform(span)
    else:
        raise StreamError("malformed entropy-coded data (unknown mode)")
    n_words = r.varint(limit=max(r.remaining() // 4, 0))
    words = r.array("<u4", n_words).astype(np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        out = np.asarray(coder.decode(model, count), dtype=np.int32)
        again = constriction.stream.stack.AnsCoder()
        again.encode_reverse(out, model)
    except Exception as err:  # constriction reports corrupt data as ValueError/AssertionError
        raise StreamError(f"corrupt entropy-coded data ({type(err).__name__})") from None
    # Exactly the words the encoder writes for these symbols: none left unread (junk, or symbols of
    # a larger array), none decoded past the coded ones (a declared count larger than was coded).
    if not np.array_equal(again.get_compressed(), words):
        raise StreamError("malformed entropy-coded data (its words do not match the declared symbol count)")
    # The encoder's span runs from the least symbol to the greatest, and its table weights exactly the
    # symbols that occur: anything else decodes, but to symbols whose re-encoding is other bytes.
    occurs = np.bincount(out, minlength=span) > 0
    if not (occurs[0] and occurs[-1] and (mode != MODE_TABLE or np.array_equal(occurs, v > 0))):
        raise StreamError("malformed entropy-coded data (its table or span counts symbols that do not occur)")
    return out.astype(np.int64) + lo
