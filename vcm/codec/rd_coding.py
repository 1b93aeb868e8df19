"""``DATA`` layout of ``.nerv`` v2 streams with coding ``rd`` (see docs/bitstream.md).

1. the step codes k of every channel of every tensor (model order), one coded array;
2. per tensor: svarint lo · varint span · (span ≥ 2) u16 m, the Laplace parameter;
3. varint n_words · n_words × u32: one constriction ANS stream holding every tensor's symbols in
   model order, each tensor coded under ``Categorical(laplace.table(m, lo, hi), perfect=False)``.

A temporal tensor (named in the header's ``temporal`` list; one step code) is coded as its first
slice along axis 0 followed by the differences of consecutive slices; lo/span/m describe those.

One ANS stream for all tensors costs one coder flush instead of one per tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from vcm.bitstream.bits import Reader, StreamError, Writer
from vcm.entropy_models import laplace
from vcm.codec.entropy import MAX_SPAN, decode_array, encode_array
from vcm.entropy_models.learned import STEP_CODE_RANGE, step_from_code


@dataclass
class RDTensor:
    """One tensor as coded: step codes ``int64 [C]``, Laplace code m, symbols ``int32 [C, K]``
    (the quantized values; a temporal tensor is coded as their differences along axis 0)."""

    name: str
    shape: tuple[int, ...]
    step_codes: np.ndarray
    m: int
    symbols: np.ndarray
    temporal: bool = False

    def coded_symbols(self) -> np.ndarray:
        """``int64``, flat: what the entropy coder codes."""
        s = self.symbols.astype(np.int64)
        if not self.temporal:
            return s.ravel()
        s = s.reshape(self.shape)
        return np.concatenate([s[:1], np.diff(s, axis=0)]).ravel()

    def dequantize(self) -> np.ndarray:
        """ŵ = q · Δ in float32 — the one dequantization encoder and decoder share."""
        return (self.symbols.astype(np.float32) * step_from_code(self.step_codes)[:, None]).reshape(self.shape)


SYMBOL_LIMIT = MAX_SPAN  # |q| of a temporal tensor after summing its differences (the encoder's own bound)


def code_bits(t: RDTensor) -> float:
    """Information content of ``t``'s coded symbols under its Laplace model, in bits (the ANS stream
    spends this plus a few bits of flush; a tensor of one distinct symbol costs nothing)."""
    s = t.coded_symbols()
    if s.size == 0 or s.min() == s.max():
        return 0.0
    lo, hi = int(s.min()), int(s.max())
    p = laplace.table(t.m, lo, hi)
    return float(-np.log2(p[s - lo] / p.sum()).sum())


def _model(m: int, lo: int, hi: int):
    return constriction.stream.model.Categorical(laplace.table(m, lo, hi), perfect=False)


def _encode_words(coded: list[tuple[np.ndarray, object]]) -> np.ndarray:
    """One ANS stream of [(symbols ≥ 0, model)] in order → its words (``uint32``)."""
    coder = constriction.stream.stack.AnsCoder()
    for symbols, model in reversed(coded):  # a stack: the first tensor is decoded first
        coder.encode_reverse(symbols.astype(np.int32), model)
    return coder.get_compressed() if coded else np.zeros(0, np.uint32)


def write(tensors: list[RDTensor], w: Writer) -> int:
    """Append the tensors to ``w``; returns the bytes of the ANS payload (the words)."""
    encode_array(np.concatenate([t.step_codes for t in tensors]), w)
    coded = []
    for t in tensors:
        if t.temporal and t.symbols.size and int(np.abs(t.symbols).max()) > SYMBOL_LIMIT:
            raise ValueError(f"symbols of {t.name} too large")
        s = t.coded_symbols()
        lo, hi = (int(s.min()), int(s.max())) if s.size else (0, -1)
        if hi - lo + 1 > MAX_SPAN:
            raise ValueError(f"symbol span of {t.name} too large")
        w.svarint(lo)
        w.varint(hi - lo + 1)
        if hi > lo:
            w.raw(int(t.m).to_bytes(2, "little"))
            coded.append((s - lo, _model(t.m, lo, hi)))
    words = _encode_words(coded)
    w.varint(int(words.size))
    w.raw(words.astype("<u4").tobytes())
    return 4 * int(words.size)


def read(r: Reader, layout: list[tuple[str, tuple[int, ...], int]], temporal: frozenset[str] = frozenset()) -> list[RDTensor]:
    """Tensors of ``layout`` = [(name, shape, channels)] from the payload (``temporal``: names coded
    along time; their channels must be 1); StreamError on any defect."""
    n_channels = sum(c for _, _, c in layout)
    codes = decode_array(r, n_channels)
    lo_code, hi_code = STEP_CODE_RANGE
    if codes.size and (codes.min() < lo_code or codes.max() > hi_code):
        raise StreamError("malformed vcm NeRV bitstream (quantization step out of range)")
    params = []
    for name, shape, _ in layout:
        lo = r.svarint(MAX_SPAN)
        span = r.varint(MAX_SPAN)
        count = int(np.prod(shape))
        if (span == 0) != (count == 0):
            raise StreamError(f"malformed vcm NeRV bitstream (symbol range of {name})")
        m = int.from_bytes(r.raw(2), "little") if span >= 2 else 0
        if span >= 2 and not 1 <= m < laplace.S_ONE:
            raise StreamError(f"malformed vcm NeRV bitstream (entropy model of {name})")
        params.append((lo, span, m))
    n_words = r.varint(limit=max(r.remaining() // 4, 0))
    words = r.array("<u4", n_words).astype(np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        tensors, decoded, c0 = [], [], 0
        for (name, shape, channels), (lo, span, m) in zip(layout, params):
            count = int(np.prod(shape))
            if span >= 2:
                model = _model(m, lo, lo + span - 1)
                decoded.append((np.asarray(coder.decode(model, count), dtype=np.int32), model))
                flat = decoded[-1][0].astype(np.int64) + lo
            else:
                flat = np.full(count, lo, dtype=np.int64)
            if name in temporal:
                flat = np.cumsum(flat.reshape(shape), axis=0).ravel()
                if flat.size and max(-int(flat.min()), int(flat.max())) > SYMBOL_LIMIT:
                    raise StreamError(f"malformed vcm NeRV bitstream (symbols of {name} out of range)")
            tensors.append(RDTensor(name, shape, codes[c0:c0 + channels].astype(np.int64), m,
                                    flat.astype(np.int32).reshape(channels, -1), name in temporal))
            c0 += channels
        # The words must be exactly what the encoder writes for the decoded symbols: no coded word
        # left unread (junk, or symbols of a shape the header no longer declares) and no symbol
        # decoded past the coded ones (a declared shape larger than what was coded).
        if not np.array_equal(_encode_words(decoded), words):
            raise StreamError("malformed vcm NeRV bitstream (the declared tensor shapes do not match the "
                              "entropy-coded words)")
    except StreamError:
        raise
    except Exception as err:  # constriction reports corrupt data as ValueError / AssertionError
        raise StreamError(f"corrupt vcm NeRV bitstream (entropy-coded data: {type(err).__name__})") from None
    return tensors
