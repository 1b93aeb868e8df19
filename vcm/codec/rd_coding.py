"""``DATA`` layout of ``.nerv`` streams with coding ``rd`` (see docs/bitstream.md).

1. the step codes k of every channel of every tensor (model order), one coded array; from version 4
   two: each tensor's base code, then the channels' deviations from it (tensors of 2+ channels);
2. per tensor: svarint lo · varint span · (span ≥ 2) u16 m, the Laplace parameter; from version 4
   a temporal tensor starts its record with a mode byte, and mode 1 (context) replaces lo/span/m by
   the parameters of :mod:`vcm.entropy_models.context`. From version 5 the records are bit-packed
   (Exp-Golomb integers, a mode bit, 8-bit Laplace codes chosen by the encoder) and an empty tensor
   has none. From version 6 a context-coded tensor's record names its model in one bit after the mode
   bit: 0 the row model (three weights), 1 the wave model (five);
3. varint n_words · n_words × u32: one constriction ANS stream holding every tensor's symbols in
   model order: a plain tensor's under ``Categorical(laplace.table(m, lo, hi), perfect=False)``, a
   context-coded tensor's row by row (axis −2), within a row bucket by bucket, each bucket under its
   own table; under the wave model (from version 6) slice by slice (axis 0), within a slice wave by
   wave (:func:`vcm.entropy_models.context.waves`), within a wave bucket by bucket.

A temporal tensor (named in the header's ``temporal`` list; one step code) is coded as its first
slice along axis 0 followed by the differences of consecutive slices; lo/span/m describe those.

One ANS stream for all tensors costs one coder flush instead of one per tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import constriction
import numpy as np

from vcm.bitstream.bits import BitReader, BitWriter, Reader, StreamError, Writer
from vcm.entropy_models import context, laplace
from vcm.codec.entropy import MAX_SPAN, decode_array, encode_array
from vcm.entropy_models.learned import STEP_CODE_RANGE, step_from_code

CONTEXT_VERSION = 4  # the first format version whose temporal tensors carry a mode byte
COMPACT_VERSION = 5  # the first whose records are bit-packed, with 8-bit Laplace codes
WAVE_VERSION = 6  # the first whose context-coded tensors use the wave model (left and earlier-slice neighbours too)
LATEST = WAVE_VERSION
PLAIN, CONTEXT = 0, 1  # the mode byte (bit from version 5)
MAX_RECORD_BYTES = 80  # a record is at most 1 + 1 + 7·81 + 64 bits (80 bytes; version 5: 59): bounds what its reader unpacks


@dataclass(frozen=True)
class TensorCoding:
    """How a tensor's symbols are coded: under its one Laplace (``params`` None) or the context
    model with ``params``; ``bits``: the symbols' code length under it; ``m``: the one Laplace's code
    (from version 5 the encoder's choice among the 8-bit codes; before, the trained one)."""

    params: context.ContextParams | None
    bits: float
    m: int = 0


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
    coding: TensorCoding | None = field(default=None, repr=False, compare=False)  # chosen on first use

    def coded_symbols(self) -> np.ndarray:
        """``int64``, flat: what the entropy coder codes."""
        return self.coded_values().ravel()

    def coded_values(self) -> np.ndarray:
        """``int64`` in the tensor's shape (``[C, K]`` for a flat tensor): the symbols, or for a
        temporal tensor their first slice and differences along time."""
        s = self.symbols.astype(np.int64)
        if not self.temporal:
            return s
        s = s.reshape(self.shape)
        return np.concatenate([s[:1], np.diff(s, axis=0)])

    def dequantize(self) -> np.ndarray:
        """ŵ = q · Δ in float32 — the one dequantization encoder and decoder share."""
        return (self.symbols.astype(np.float32) * step_from_code(self.step_codes)[:, None]).reshape(self.shape)


SYMBOL_LIMIT = MAX_SPAN  # |q| of a temporal tensor after summing its differences (the encoder's own bound)


def context_capable(shape: tuple[int, ...], temporal: bool) -> bool:
    """Whether a tensor may be context-coded: temporal, with rows (axis −2) and columns to predict from."""
    return temporal and context.has_rows(shape)


def _plain_coding(t: RDTensor, compact: bool) -> TensorCoding:
    """The one Laplace: from version 5 the 8-bit code with the fewest bits, before it the trained m."""
    s = t.coded_symbols()
    if s.size == 0 or s.min() == s.max():
        return TensorCoding(None, 0.0, t.m)
    lo, hi = int(s.min()), int(s.max())
    if compact:
        m, bits = laplace.best_code(np.bincount(s - lo, minlength=hi - lo + 1), lo, hi)
        return TensorCoding(None, bits, m)
    return TensorCoding(None, laplace.model_bits(s, t.m), t.m)


def _choose(t: RDTensor, compact: bool, models: tuple[int, ...] = (context.ROWS,),
            version: int = COMPACT_VERSION) -> TensorCoding:
    """The coding of fewest bits, its record's included, among the one Laplace and the context ``models`` (their
    kinds: the row model, and from version 6 the wave model too)."""
    plain = _plain_coding(t, compact)
    if not (context_capable(t.shape, t.temporal) and t.symbols.size and plain.bits > 0):
        return plain
    if not compact:  # version 4: byte-aligned parameters against a 16-bit law
        params, bits = context.fit(t.coded_values(), compact)
        return TensorCoding(params, bits) if bits + 8 * _params_bytes(params) < plain.bits + 8 * 2 else plain
    candidates = [plain] + [TensorCoding(*context.fit(t.coded_values(), compact, m)) for m in models]
    return min(candidates, key=lambda c: c.bits + _record_bits(t, c, version))  # a tie keeps the earlier


def coding_of(t: RDTensor, version: int = LATEST) -> TensorCoding:
    """The coding the encoder writes for ``t`` in format ``version`` (for the latest, decided once,
    then kept on ``t``; a decoded tensor keeps the coding its stream used)."""
    if version < COMPACT_VERSION:
        return _choose(t, compact=False)
    if version < WAVE_VERSION:
        return _choose(t, compact=True)
    if t.coding is None:
        t.coding = _choose(t, compact=True, models=(context.WAVES, context.ROWS), version=version)
    return t.coding


def code_bits(t: RDTensor) -> float:
    """Information content of ``t``'s coded symbols under the coding the stream uses for it, in bits
    (the ANS stream spends this plus a few bits of flush; a tensor of one distinct symbol costs nothing)."""
    return coding_of(t).bits


def _model(m: int, lo: int, hi: int):
    return constriction.stream.model.Categorical(laplace.table(m, lo, hi), perfect=False)


def _encode_words(coded: list[tuple[np.ndarray, object]]) -> np.ndarray:
    """One ANS stream of [(symbols ≥ 0, model)] in order → its words (``uint32``)."""
    coder = constriction.stream.stack.AnsCoder()
    for symbols, model in reversed(coded):  # a stack: the first tensor is decoded first
        coder.encode_reverse(symbols.astype(np.int32), model)
    return coder.get_compressed() if coded else np.zeros(0, np.uint32)


def step_code_base(t: RDTensor) -> int:
    """The step code a tensor's channels are coded against: the median code of its channels that hold
    a nonzero symbol (of all of them when none does)."""
    live = (t.symbols != 0).any(axis=1)
    return int(np.median(t.step_codes[live] if live.any() else t.step_codes))


def _write_step_codes(tensors: list[RDTensor], w: Writer) -> None:
    """Version 4's step codes: one coded array of each tensor's base code (a tensor of one channel: its
    code), then one of the other tensors' channel codes minus their base. A channel whose symbols are
    all zero decodes to zero weights under any step, so its deviation is written as 0 (its code is
    the base)."""
    bases, deviations = [], []
    for t in tensors:
        base = step_code_base(t) if len(t.step_codes) > 1 else int(t.step_codes[0])
        bases.append(base)
        if len(t.step_codes) > 1:
            live = (t.symbols != 0).any(axis=1)
            deviations.append(np.where(live, t.step_codes - base, 0))
    encode_array(np.array(bases, np.int64), w)
    encode_array(np.concatenate(deviations) if deviations else np.zeros(0, np.int64), w)


def _read_step_codes(r: Reader, channels: list[int]) -> np.ndarray:
    """The channel codes (``int64``, all tensors in order) from :func:`_write_step_codes`'s arrays."""
    bases = decode_array(r, len(channels))
    deviations = decode_array(r, sum(c for c in channels if c > 1))
    out, d0 = [], 0
    for base, c in zip(bases, channels):
        if c > 1:
            out.append(base + deviations[d0:d0 + c])
            d0 += c
        else:
            out.append(np.full(c, base))
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def _write_params(p: context.ContextParams, w: Writer) -> None:
    """Three signed bytes (weights), svarint lo, varint span, and (span ≥ 2) one u16 m per bucket."""
    w.raw(np.array(p.weights, dtype=np.int8).tobytes())
    w.svarint(p.lo)
    w.varint(p.span)
    if p.span >= 2:
        w.raw(np.array(p.ms, dtype="<u2").tobytes())


def _params_bytes(p: context.ContextParams) -> int:
    w = Writer()
    _write_params(p, w)
    return len(w.getvalue())


def _context_chunks(values: np.ndarray, p: context.ContextParams) -> list[tuple[np.ndarray, object]]:
    """[(residuals − lo, model)] of a context-coded tensor in decoding order: row by row (the row model) or
    slice by slice and wave by wave (the wave model), then bucket by bucket."""
    if p.span < 2:
        return []
    bucket, pred = context.contexts(values, p.weights)
    residual = values - pred - p.lo
    models = {}
    chunks = []

    def add(group_bucket: np.ndarray, group_residual: np.ndarray) -> None:
        for k in range(context.BUCKETS):
            chosen = group_residual[group_bucket == k]
            if chosen.size:
                if k not in models:
                    models[k] = _model(p.ms[k], p.lo, p.lo + p.span - 1)
                chunks.append((chosen, models[k]))

    if len(p.weights) == context.ROWS:
        for h in range(values.shape[-2]):
            add(bucket[..., h, :], residual[..., h, :])
        return chunks
    rows, cols = values.shape[-2:]
    bucket, residual = bucket.reshape(len(values), -1, rows, cols), residual.reshape(len(values), -1, rows, cols)
    cells = context.waves(rows, cols)
    for t in range(len(values)):
        for i, j in cells:  # [C, n]: a wave's cells of every channel, channel by channel
            add(bucket[t][:, i, j], residual[t][:, i, j])
    return chunks


def _symbol_range(t: RDTensor) -> tuple[int, int]:
    """(lo, span) of the symbols ``t`` codes under its one Laplace ((0, 0) when it has none)."""
    s = t.coded_symbols()
    lo, hi = (int(s.min()), int(s.max())) if s.size else (0, -1)
    if hi - lo + 1 > MAX_SPAN:
        raise ValueError(f"symbol span of {t.name} too large")
    return lo, hi - lo + 1


def _chunks(t: RDTensor, params: context.ContextParams | None, m: int) -> list[tuple[np.ndarray, object]]:
    """``t``'s [(symbols ≥ 0, model)] in decoding order: under the context model ``params``, else under
    its one Laplace m (nothing when its symbols are one value or none)."""
    if params is not None:
        return _context_chunks(t.coded_values().reshape(t.shape), params)
    lo, span = _symbol_range(t)
    return [(t.coded_symbols() - lo, _model(m, lo, lo + span - 1))] if span >= 2 else []


def _write_compact_record(t: RDTensor, coding: TensorCoding, bw: BitWriter, version: int = LATEST) -> None:
    """Version 5's (and 6's) record of ``t`` into ``bw`` (none for an empty tensor); version 6 adds a bit to a
    context-coded tensor's: its model (0: rows, 1: waves)."""
    if not t.symbols.size:
        return
    if t.temporal:
        bw.fixed(CONTEXT if coding.params else PLAIN, 1)
    p = coding.params
    if p is not None:
        if p.span > MAX_SPAN:
            raise ValueError(f"residual span of {t.name} too large")
        if version >= WAVE_VERSION:
            bw.fixed(int(len(p.weights) == context.WAVES), 1)
        elif len(p.weights) != context.ROWS:
            raise ValueError(f"{t.name}: version {version} has no wave model")
        for weight in p.weights:
            bw.signed(weight)
        lo, span, laws = p.lo, p.span, p.ms
    else:
        (lo, span), laws = _symbol_range(t), (coding.m,)
    bw.signed(lo)
    bw.exp_golomb(span - 1)
    if span >= 2:
        for m in laws:
            bw.fixed(laplace.CODE_OF_M[m], 8)


def _record_bits(t: RDTensor, coding: TensorCoding, version: int = LATEST) -> int:
    bw = BitWriter()
    _write_compact_record(t, coding, bw, version)
    return bw.bit_length()


def write(tensors: list[RDTensor], w: Writer, version: int = LATEST) -> int:
    """Append the tensors to ``w`` in the layout of format ``version`` (before 4: no mode bytes, every
    tensor plain; before 5: byte-aligned records with 16-bit Laplace codes); returns the bytes of the
    ANS payload (the words)."""
    if version >= CONTEXT_VERSION:
        _write_step_codes(tensors, w)
    else:
        encode_array(np.concatenate([t.step_codes for t in tensors]), w)
    coded = []
    for t in tensors:
        if t.temporal and t.symbols.size and int(np.abs(t.symbols).max()) > SYMBOL_LIMIT:
            raise ValueError(f"symbols of {t.name} too large")
    if version >= COMPACT_VERSION:
        bw = BitWriter()
        for t in tensors:
            coding = coding_of(t, version)
            _write_compact_record(t, coding, bw, version)
            coded += _chunks(t, coding.params, coding.m)
        w.raw(bw.getvalue())
    else:
        for t in tensors:
            with_mode = version >= CONTEXT_VERSION and t.temporal
            params = coding_of(t, version).params if with_mode else None
            if with_mode:
                w.raw(bytes([CONTEXT if params else PLAIN]))
            if params is not None:
                if params.span > MAX_SPAN:
                    raise ValueError(f"residual span of {t.name} too large")
                _write_params(params, w)
            else:
                lo, span = _symbol_range(t)
                w.svarint(lo)
                w.varint(span)
                if span >= 2:
                    w.raw(int(t.m).to_bytes(2, "little"))
            coded += _chunks(t, params, t.m)
    words = _encode_words(coded)
    w.varint(int(words.size))
    w.raw(words.astype("<u4").tobytes())
    return 4 * int(words.size)


def _read_params(r: Reader, name: str) -> context.ContextParams:
    weights = tuple(int(v) for v in np.frombuffer(r.raw(3), dtype=np.int8))
    lo = r.svarint(MAX_SPAN)
    span = r.varint(MAX_SPAN)
    if span == 0:
        raise StreamError(f"malformed vcm NeRV bitstream (residual range of {name})")
    ms = tuple(int(v) for v in r.array("<u2", context.BUCKETS)) if span >= 2 else (context.UNUSED_M,) * context.BUCKETS
    if not all(1 <= m < laplace.S_ONE for m in ms):
        raise StreamError(f"malformed vcm NeRV bitstream (entropy model of {name})")
    return context.ContextParams(weights, lo, span, ms)


def _decode_context(coder, shape: tuple[int, ...], p: context.ContextParams, name: str,
                    decoded: list) -> np.ndarray:
    """The coded values (``int64``, ``shape``) of a context-coded tensor, row by row (or wave by wave); each
    chunk read is appended to ``decoded`` for the exactness check."""
    if len(p.weights) == context.WAVES:
        return _decode_waves(coder, shape, p, name, decoded)
    values = np.zeros(shape, dtype=np.int64)
    models = {}
    above = np.zeros(shape[:-2] + shape[-1:], dtype=np.int64)
    for h in range(shape[-2]):
        bucket, row = context.row_context(above, p.weights)
        row = _decode_group(coder, bucket, row, p, models, name, decoded)
        values[..., h, :] = row
        above = row
    return values


def _decode_group(coder, bucket: np.ndarray, pred: np.ndarray, p: context.ContextParams, models: dict, name: str,
                  decoded: list) -> np.ndarray:
    """The values of one group of cells decoded together (a row, or a wave): their predictions ``pred`` plus lo
    plus each bucket's residuals (read bucket by bucket, in C order within a bucket), bounded. ``models`` caches
    each bucket's table; every chunk read is appended to ``decoded``."""
    values = pred + p.lo
    if p.span >= 2:
        for k in range(context.BUCKETS):
            where = bucket == k
            n = int(where.sum())
            if n:
                if k not in models:
                    models[k] = _model(p.ms[k], p.lo, p.lo + p.span - 1)
                symbols = np.asarray(coder.decode(models[k], n), dtype=np.int32)
                decoded.append((symbols, models[k]))
                values[where] += symbols
    # A difference of two symbols within the limit stays within twice it; bounding every group also keeps the
    # next groups' predictions far from overflow.
    if values.size and int(np.abs(values).max()) > 2 * SYMBOL_LIMIT:
        raise StreamError(f"malformed vcm NeRV bitstream (symbols of {name} out of range)")
    return values


def _decode_waves(coder, shape: tuple[int, ...], p: context.ContextParams, name: str, decoded: list) -> np.ndarray:
    """:func:`_decode_context` of the wave model: slice by slice, in each slice wave by wave, every channel's
    cells of a wave at once (their neighbours all lie on earlier waves or the slice before)."""
    rows, cols = shape[-2:]
    channels = int(np.prod(shape[1:-2]))
    values = np.zeros((shape[0], channels, rows, cols), dtype=np.int64)
    padded = np.zeros((channels, rows + 1, cols + 2), dtype=np.int64)  # the slice being decoded, zero-bordered
    before = np.zeros((channels, rows, cols), dtype=np.int64)
    models = {}
    cells = context.waves(rows, cols)
    for t in range(shape[0]):
        padded[:] = 0
        for i, j in cells:
            bucket, pred = context.wave_context(padded, before, i, j, p.weights)
            padded[:, i + 1, j + 1] = _decode_group(coder, bucket, pred, p, models, name, decoded)
        values[t] = padded[:, 1:, 1:-1]
        before = values[t]
    return values.reshape(shape)


def _read_record(r: Reader, name: str, shape: tuple[int, ...], with_mode: bool):
    """One tensor's record of part 2: ``ContextParams`` (mode 1) or (lo, span, m) (its one Laplace)."""
    count = int(np.prod(shape))
    if with_mode:
        mode = r.raw(1)[0]
        if mode not in (PLAIN, CONTEXT) or (mode == CONTEXT and not (count and context_capable(shape, True))):
            raise StreamError(f"malformed vcm NeRV bitstream (coding mode of {name})")
        if mode == CONTEXT:
            return _read_params(r, name)
    lo = r.svarint(MAX_SPAN)
    span = r.varint(MAX_SPAN)
    if (span == 0) != (count == 0):
        raise StreamError(f"malformed vcm NeRV bitstream (symbol range of {name})")
    m = int.from_bytes(r.raw(2), "little") if span >= 2 else 0
    if span >= 2 and not 1 <= m < laplace.S_ONE:
        raise StreamError(f"malformed vcm NeRV bitstream (entropy model of {name})")
    return lo, span, m


def _read_code(br: BitReader, name: str) -> int:
    c = br.fixed(8)
    if c >= laplace.CODES:
        raise StreamError(f"malformed vcm NeRV bitstream (entropy model of {name})")
    return laplace.M_OF_CODE[c]


def _read_compact_record(br: BitReader, name: str, shape: tuple[int, ...], temporal: bool,
                         version: int = COMPACT_VERSION):
    """Version 5's record (and 6's, whose context-coded tensors name their model in one bit): ``ContextParams``
    (mode 1) or (lo, span, m); (0, 0, 0) for an empty tensor."""
    count = int(np.prod(shape))
    if not count:
        return 0, 0, 0
    if temporal and br.fixed(1) == CONTEXT:
        if not context_capable(shape, True):
            raise StreamError(f"malformed vcm NeRV bitstream (coding mode of {name})")
        lo_w, hi_w = context.WEIGHT_RANGE
        model = context.WAVES if version >= WAVE_VERSION and br.fixed(1) else context.ROWS
        weights = tuple(br.signed(-lo_w) for _ in range(model))
        if not all(lo_w <= v <= hi_w for v in weights):
            raise StreamError(f"malformed vcm NeRV bitstream (context weights of {name})")
        lo = br.signed(MAX_SPAN)
        span = br.exp_golomb(MAX_SPAN - 1) + 1
        ms = tuple(_read_code(br, name) for _ in range(context.BUCKETS)) if span >= 2 else (context.UNUSED_M,) * context.BUCKETS
        return context.ContextParams(weights, lo, span, ms)
    lo = br.signed(MAX_SPAN)
    span = br.exp_golomb(MAX_SPAN - 1) + 1
    return lo, span, (_read_code(br, name) if span >= 2 else 0)


def read(r: Reader, layout: list[tuple[str, tuple[int, ...], int]], temporal: frozenset[str] = frozenset(),
         version: int = LATEST) -> list[RDTensor]:
    """Tensors of ``layout`` = [(name, shape, channels)] from the payload of format ``version``
    (``temporal``: names coded along time; their channels must be 1); StreamError on any defect."""
    n_channels = sum(c for _, _, c in layout)
    codes = _read_step_codes(r, [c for _, _, c in layout]) if version >= CONTEXT_VERSION else decode_array(r, n_channels)
    lo_code, hi_code = STEP_CODE_RANGE
    if codes.size and (codes.min() < lo_code or codes.max() > hi_code):
        raise StreamError("malformed vcm NeRV bitstream (quantization step out of range)")
    if version >= COMPACT_VERSION:
        br = BitReader(r, MAX_RECORD_BYTES * len(layout))
        params = [_read_compact_record(br, name, shape, name in temporal, version) for name, shape, _ in layout]
        br.close()
    else:
        params = [_read_record(r, name, shape, version >= CONTEXT_VERSION and name in temporal) for name, shape, _ in layout]
    n_words = r.varint(limit=max(r.remaining() // 4, 0))
    words = r.array("<u4", n_words).astype(np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        tensors, decoded, c0 = [], [], 0
        keeps_coding = version == LATEST  # an older stream's choices were made for its own layout: re-encoding makes them afresh
        for (name, shape, channels), p in zip(layout, params):
            count = int(np.prod(shape))
            coding = None
            if isinstance(p, context.ContextParams):
                values = _decode_context(coder, shape, p, name, decoded)
                flat = values.ravel()
                if keeps_coding:
                    coding = TensorCoding(p, context.code_length(values, p))
            else:
                lo, span, m = p
                if span >= 2:
                    model = _model(m, lo, lo + span - 1)
                    decoded.append((np.asarray(coder.decode(model, count), dtype=np.int32), model))
                    flat = decoded[-1][0].astype(np.int64) + lo
                else:
                    flat = np.full(count, lo, dtype=np.int64)
                if keeps_coding:
                    coding = TensorCoding(None, laplace.model_bits(flat, m) if span >= 2 else 0.0, m)
            if name in temporal:
                flat = np.cumsum(flat.reshape(shape), axis=0).ravel()
                if flat.size and max(-int(flat.min()), int(flat.max())) > SYMBOL_LIMIT:
                    raise StreamError(f"malformed vcm NeRV bitstream (symbols of {name} out of range)")
            m = p[2] if isinstance(p, tuple) else 0
            tensors.append(RDTensor(name, shape, codes[c0:c0 + channels].astype(np.int64), m,
                                    flat.astype(np.int32).reshape(channels, -1), name in temporal, coding))
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
