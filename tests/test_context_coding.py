"""What ``.nerv`` v4 codes differently: the grids' causal context model (chosen where it pays, lossless,
refused when forged), step codes against a base per tensor, the header's preset dictionary."""

from __future__ import annotations

import numpy as np
import pytest

from vcm.bitstream.bits import Reader, StreamError, Writer
from vcm.codec import rd_coding
from vcm.codec.entropy import encode_array
from vcm.codec.rd_coding import RDTensor
from vcm.entropy_models import context, laplace

SHAPE = (4, 3, 12, 16)  # time, channels, rows, columns


def grid(correlated: bool, seed: int = 0) -> RDTensor:
    """A temporal grid of symbols; ``correlated``: neighbouring rows alike (as trained grids are)."""
    rng = np.random.default_rng(seed)
    if correlated:  # the changes along time drift slowly down the rows, in columns of their own size
        scale = rng.gamma(1.0, 3.0, size=SHAPE[:2] + (1, SHAPE[3]))
        d = np.round(np.cumsum(rng.laplace(0, 1, SHAPE), axis=2) * scale)
    else:
        d = np.round(rng.laplace(0, 2.0, SHAPE))
    q = np.cumsum(d, axis=0).astype(np.int32)
    m = laplace.s_code(float(np.log(np.abs(d).mean() + 0.5)))
    return RDTensor("grids.0", SHAPE, np.array([-10]), m, q.reshape(1, -1), temporal=True)


def round_trip(t: RDTensor) -> tuple[RDTensor, int]:
    w = Writer()
    payload = rd_coding.write([t], w)
    data = w.getvalue()
    (back,) = rd_coding.read(Reader(data, "test"), [(t.name, t.shape, 1)], frozenset([t.name]))
    return back, payload


def test_correlated_grids_are_context_coded_losslessly_in_fewer_bytes():
    t = grid(correlated=True)
    plain_bits = laplace.model_bits(t.coded_symbols(), t.m)
    coding = rd_coding.coding_of(t)
    assert coding.params is not None and coding.bits < 0.9 * plain_bits
    back, payload = round_trip(t)
    assert np.array_equal(back.symbols, t.symbols) and back.coding.params == coding.params
    assert back.coding.bits == pytest.approx(coding.bits)
    assert abs(8 * payload - coding.bits) < 64  # the words are the code length plus the coder's flush


def test_uncorrelated_grids_stay_plain_and_round_trip():
    t = grid(correlated=False)
    assert rd_coding.coding_of(t).params is None  # the model's parameters would cost more than it saves
    back, _ = round_trip(t)
    assert np.array_equal(back.symbols, t.symbols)


def test_older_layout_has_no_mode_byte():
    t = grid(correlated=True)
    w = Writer()
    rd_coding.write([t], w, version=3)
    (back,) = rd_coding.read(Reader(w.getvalue(), "test"), [(t.name, t.shape, 1)], frozenset([t.name]), version=3)
    assert np.array_equal(back.symbols, t.symbols) and back.coding is None


def forged(shape, mode: int, params: context.ContextParams | None) -> bytes:
    w = Writer()
    encode_array(np.array([-10]), w)  # the tensor's one step code (its base)
    encode_array(np.zeros(0, np.int64), w)  # no tensor of several channels: no deviations
    w.raw(bytes([mode]))
    if params is not None:
        rd_coding._write_params(params, w)
    w.varint(0)  # no ANS words
    return w.getvalue()


def test_forged_context_sections_are_refused():
    name = "grids.0"
    ok = context.ContextParams((0, 0, 0), 1, 1, (context.UNUSED_M,) * context.BUCKETS)
    cases = [
        (SHAPE, 2, ok, "coding mode"),  # an unknown mode
        ((4, 12), 1, ok, "coding mode"),  # a tensor without rows cannot be context-coded
        # every row predicted as ~12× the row above: it must stop at the symbol limit, not overflow
        (SHAPE, 1, context.ContextParams((127, 127, 127), 60_000, 1, ok.ms), "out of range"),
    ]
    for shape, mode, params, fragment in cases:
        with pytest.raises(StreamError, match=fragment):
            rd_coding.read(Reader(forged(shape, mode, params), "test"), [(name, shape, 1)], frozenset([name]))
    bad_m = forged(SHAPE, 1, context.ContextParams((0, 0, 0), -3, 7, (0,) * context.BUCKETS))
    with pytest.raises(StreamError, match="entropy model"):
        rd_coding.read(Reader(bad_m, "test"), [(name, SHAPE, 1)], frozenset([name]))


def test_contexts_row_by_row_equal_contexts_at_once():
    """The decoder's row-by-row contexts are the encoder's vectorised ones (same buckets, same predictions)."""
    d = grid(correlated=True).coded_values().reshape(SHAPE)
    weights = context.fit_weights(d)
    bucket, pred = context.contexts(d, weights)
    above = np.zeros(SHAPE[:2] + SHAPE[3:], dtype=np.int64)
    for h in range(SHAPE[2]):
        b, p = context.row_context(above, weights)
        assert np.array_equal(b, bucket[..., h, :]) and np.array_equal(p, pred[..., h, :])
        above = d[..., h, :]
    assert bucket.max() > bucket.min()  # the sample exercises several buckets


def test_step_codes_are_coded_against_a_base_and_dead_channels_cost_nothing():
    rng = np.random.default_rng(1)
    symbols = rng.integers(-3, 4, size=(6, 10)).astype(np.int32)
    symbols[2] = 0  # a channel pruned away: its weights are zero under any step
    codes = np.array([-30, -31, -77, -29, -30, -32])
    t = RDTensor("w", (6, 10), codes, 40_000, symbols)
    assert rd_coding.step_code_base(t) == -30  # the median of the live channels
    w = Writer()
    rd_coding.write([t], w)
    (back,) = rd_coding.read(Reader(w.getvalue(), "test"), [("w", (6, 10), 6)])
    assert np.array_equal(back.dequantize(), t.dequantize())
    assert back.step_codes[2] == -30 and np.array_equal(np.delete(back.step_codes, 2), np.delete(codes, 2))


def test_the_header_dictionary_shrinks_a_real_header_and_plain_zlib_still_reads():
    import json
    import zlib

    from vcm.bitstream import container
    from vcm.codec.nerv_stream import HEADER_DICT

    header = {"arch": "hinerv", "coding": "rd", "model": {"channels": [40, 30, 20, 10], "depths": [2, 2, 1, 0],
              "expansion": 2.0, "grid_channels": 5, "grid_frames": 10, "grid_h": 17, "grid_levels": 2, "grid_w": 40,
              "head": "pointwise", "height": 272, "kernel": 3, "local_frames": 5, "strides": [2, 2, 2, 2],
              "width": 640}, "video": {"fps": 30.0, "frames": 32, "name": "clip", "source_frames": [0, 32]}}
    with_dict, without = container.pack_header(header, HEADER_DICT), container.pack_header(header)
    assert len(with_dict) < 0.6 * len(without)
    assert container.read_header(with_dict, "test", HEADER_DICT) == header
    assert container.read_header(without, "test", HEADER_DICT) == header  # a header written without it
    with pytest.raises(StreamError, match="unreadable header"):
        container.read_header(with_dict, "test")  # the dictionary is part of the format
    assert without == zlib.compress(json.dumps(header, separators=(",", ":"), sort_keys=True).encode(), 9)
