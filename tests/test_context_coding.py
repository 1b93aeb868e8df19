"""What ``.nerv`` v4, v5 and v6 code differently: the grids' causal context model (chosen where it pays,
lossless, refused when forged), step codes against a base per tensor, the header's preset dictionary;
v5's bit-packed records with 8-bit Laplace codes; v6's wave model (left and earlier-slice neighbours)."""

from __future__ import annotations

import numpy as np
import pytest

from vcm.bitstream.bits import BitWriter, Reader, StreamError, Writer
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


def round_trip(t: RDTensor, version: int = rd_coding.LATEST) -> tuple[RDTensor, int]:
    """``t`` written alone in format ``version`` and read back: (the decoded tensor, the ANS payload's bytes)."""
    w = Writer()
    payload = rd_coding.write([t], w, version=version)
    (back,) = rd_coding.read(Reader(w.getvalue(), "test"), [(t.name, t.shape, 1)], frozenset([t.name]), version=version)
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


def test_version_4_still_reads_and_its_choices_are_made_afresh_on_re_encoding():
    t = grid(correlated=True)
    back, _ = round_trip(t, version=4)
    assert np.array_equal(back.symbols, t.symbols) and back.coding is None
    assert rd_coding.coding_of(back).params is not None  # re-encoding in the latest version chooses again
    assert rd_coding.coding_of(back, 4).params.ms != rd_coding.coding_of(back).params.ms  # 16-bit laws, then 8-bit


def test_older_layout_has_no_mode_byte():
    t = grid(correlated=True)
    back, _ = round_trip(t, version=3)
    assert np.array_equal(back.symbols, t.symbols) and back.coding is None


def forged(shape, mode: int, params: context.ContextParams | None) -> bytes:
    """A version-4 payload of one temporal tensor with this mode byte and these parameters."""
    w = Writer()
    encode_array(np.array([-10]), w)  # the tensor's one step code (its base)
    encode_array(np.zeros(0, np.int64), w)  # no tensor of several channels: no deviations
    w.raw(bytes([mode]))
    if params is not None:
        rd_coding._write_params(params, w)
    w.varint(0)  # no ANS words
    return w.getvalue()


def test_forged_context_sections_are_refused():  # version 4
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
            rd_coding.read(Reader(forged(shape, mode, params), "test"), [(name, shape, 1)], frozenset([name]), version=4)
    bad_m = forged(SHAPE, 1, context.ContextParams((0, 0, 0), -3, 7, (0,) * context.BUCKETS))
    with pytest.raises(StreamError, match="entropy model"):
        rd_coding.read(Reader(bad_m, "test"), [(name, SHAPE, 1)], frozenset([name]), version=4)


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


def test_the_8_bit_laplace_codes_are_exact_and_ordered():
    m = laplace.M_OF_CODE
    assert len(m) == laplace.CODES == 248
    assert (m[0], m[8], m[119], m[120], m[200], m[247]) == (1, 2, 30048, 32768, 65536 - 32, 65535)
    assert all(a <= b for a, b in zip(m, m[1:])) and 1 <= min(m) and max(m) < laplace.S_ONE
    assert all(laplace.M_OF_CODE[laplace.CODE_OF_M[v]] == v for v in m)
    with pytest.raises(ValueError):
        laplace.m_of_code(248)


@pytest.mark.parametrize("scale", [0.05, 0.6, 4.0, 40.0])
def test_an_8_bit_code_costs_next_to_nothing_against_the_best_16_bit_law(scale):
    s = np.round(np.random.default_rng(2).laplace(0, scale, 20_000)).astype(np.int64)
    lo, hi = int(s.min()), int(s.max())
    _, bits16 = context.best_m(s, lo, hi, compact=False)
    m8, bits8 = context.best_m(s, lo, hi)
    assert m8 in laplace.CODE_OF_M and bits8 <= 1.002 * bits16 + 1


def network_tensors() -> list[RDTensor]:
    """A small network as the encoder hands it over: a context-coded grid, weights with per-channel
    steps, a bias, a constant tensor and an empty one."""
    rng = np.random.default_rng(3)
    weights = np.round(rng.laplace(0, 1.5, (6, 20))).astype(np.int32)
    return [grid(correlated=True),
            RDTensor("w", (6, 20), np.array([-30, -31, -30, -29, -30, -33]), 40_000, weights),
            RDTensor("b", (6,), np.array([-20]), 30_000, np.array([[3, -1, 0, 2, 0, 1]], np.int32)),
            RDTensor("zero", (4, 5), np.array([-12]), 1_000, np.zeros((1, 20), np.int32)),
            RDTensor("empty", (0, 5), np.array([-12]), 1_000, np.zeros((1, 0), np.int32))]


def layout_of(tensors):
    return [(t.name, t.shape, len(t.step_codes)) for t in tensors]


@pytest.mark.parametrize("version", [5, 6])
def test_compact_records_are_smaller_lossless_and_re_encode_to_the_same_bytes(version):
    tensors = network_tensors()
    v4, written = Writer(), Writer()
    rd_coding.write(tensors, v4, version=4)
    rd_coding.write(network_tensors(), written, version=version)
    assert len(written.getvalue()) < len(v4.getvalue()) - 12  # 16-bit laws and byte-aligned records cost more
    back = rd_coding.read(Reader(written.getvalue(), "test"), layout_of(tensors), frozenset(["grids.0"]), version)
    assert rd_coding.coding_of(back[0], version).params is not None
    for a, b in zip(tensors, back):
        assert np.array_equal(a.dequantize(), b.dequantize()), a.name
    again = Writer()
    rd_coding.write(back, again, version=version)
    assert again.getvalue() == written.getvalue()


def compact_payload(records: BitWriter) -> bytes:
    """A version-5 payload of the one temporal tensor ``grids.0`` (shape ``SHAPE``) with these records."""
    w = Writer()
    encode_array(np.array([-10]), w)
    encode_array(np.zeros(0, np.int64), w)
    w.raw(records.getvalue())
    w.varint(0)
    return w.getvalue()


@pytest.mark.parametrize("version", [5, 6])
def test_forged_compact_records_are_refused(version):
    rows = (0,) * (3 if version == 5 else 5)  # the context model's weights: the row model's 3, the wave model's 5

    def record(mode: int, weights=rows, lo=-1, span_minus_1=2, code=100, padding=False) -> BitWriter:
        bw = BitWriter()
        bw.fixed(mode, 1)
        if mode:
            if version == 6:
                bw.fixed(int(len(weights) == 5), 1)  # the model: rows or waves
            for v in weights:
                bw.signed(v)
        bw.signed(lo)
        bw.exp_golomb(span_minus_1)
        for _ in range((context.BUCKETS if mode else 1) if span_minus_1 else 0):
            bw.fixed(code, 8)
        if padding:
            bw.fixed(1, 1)
        return bw

    layout = [("grids.0", SHAPE, 1)]
    cases = [
        (record(1, code=250), layout, "entropy model"),  # codes 248 … 255 are no law
        (record(0, code=255), layout, "entropy model"),
        (record(1, weights=(0, 128) + rows[2:]), layout, "context weights"),  # beyond a signed byte
        (record(1, weights=(0, 200) + rows[2:]), layout, "out of range"),
        (record(1), [("grids.0", (4, 12), 1)], "coding mode"),  # no rows to predict from
        (record(0, padding=True), layout, "padding"),
        (record(0, lo=3, span_minus_1=1 << 20), layout, "out of range"),
    ]
    if version == 6:  # a T weight of 127 with every difference at its limit: stopped at the limit, never overflowing
        cases.append((record(1, weights=(127, 127, 127, 127, 127), lo=60_000, span_minus_1=0), layout, "out of range"))
    for bits, lay, fragment in cases:
        with pytest.raises(StreamError, match=fragment):
            rd_coding.read(Reader(compact_payload(bits), "test"), lay, frozenset(["grids.0"]), version)
    truncated = compact_payload(record(1))[:-6]
    with pytest.raises(StreamError, match="truncated|malformed"):
        rd_coding.read(Reader(truncated, "test"), layout, frozenset(["grids.0"]), version)


def test_bit_fields_round_trip_and_refuse_what_no_writer_produces():
    from vcm.bitstream.bits import BitReader, BitWriter

    bw = BitWriter()
    values = [0, 1, 2, 7, 1000, 2**30]
    for v in values:
        bw.exp_golomb(v)
    bw.signed(-5)
    bw.fixed(201, 8)
    data = bw.getvalue() + b"\xff"  # what follows the records is not theirs
    r = Reader(data, "test")
    br = BitReader(r, 64)
    assert [br.exp_golomb() for _ in values] == values and br.signed() == -5 and br.fixed(8) == 201
    br.close()
    assert r.pos == len(data) - 1 and 8 * (r.pos - 1) < bw.bit_length() <= 8 * r.pos
    with pytest.raises(StreamError, match="malformed integer"):
        BitReader(Reader(bytes(8), "test"), 8).exp_golomb()  # 64 zero bits: no code of vcm's
    with pytest.raises(StreamError, match="out of range"):
        bw2 = BitWriter()
        bw2.exp_golomb(99)
        BitReader(Reader(bw2.getvalue(), "test"), 8).exp_golomb(limit=98)


def test_wave_contexts_decoded_wave_by_wave_equal_contexts_at_once_and_see_no_later_value():
    """The decoder's wave-by-wave contexts (version 6) are the encoder's vectorised ones, and causal: a value
    changed anywhere moves no context of a value decoded before it (slice by slice, wave by wave)."""
    d = wave_grid().coded_values().reshape(SHAPE)
    weights = context.fit_weights(d, context.WAVES)
    assert len(weights) == 5 and all(weights[3:])  # the left and earlier-slice neighbours are used
    bucket, pred = context.contexts(d, weights)
    cells = context.waves(*SHAPE[-2:])
    order = np.full(SHAPE[-2:], -1)
    for k, (i, j) in enumerate(cells):
        order[i, j] = k
    assert sorted(order.ravel()) == sorted(np.repeat(np.arange(len(cells)), [len(i) for i, _ in cells]))
    d4 = d.reshape(SHAPE[0], -1, *SHAPE[-2:])
    before = np.zeros(d4.shape[1:], np.int64)
    for t in range(SHAPE[0]):
        padded = np.zeros((d4.shape[1], SHAPE[2] + 1, SHAPE[3] + 2), np.int64)
        for i, j in cells:
            b, p = context.wave_context(padded, before, i, j, weights)
            assert np.array_equal(b, bucket.reshape(d4.shape)[t][:, i, j])
            assert np.array_equal(p, pred.reshape(d4.shape)[t][:, i, j])
            padded[:, i + 1, j + 1] = d4[t][:, i, j]
        before = d4[t]
    rng = np.random.default_rng(5)
    for _ in range(20):  # causality: change one value, and nothing decoded before it sees the change
        t, c, i, j = (int(rng.integers(n)) for n in SHAPE)
        changed = d.copy()
        changed[t, c, i, j] += 7
        b2, p2 = context.contexts(changed, weights)
        earlier = np.zeros(SHAPE, bool)
        earlier[:t] = True
        earlier[t, :, 2 * np.arange(SHAPE[2])[:, None] + np.arange(SHAPE[3]) < 2 * i + j] = True
        earlier[t, :c, 2 * np.arange(SHAPE[2])[:, None] + np.arange(SHAPE[3]) == 2 * i + j] = True  # same wave, earlier channel
        earlier[t, c, (2 * np.arange(SHAPE[2])[:, None] + np.arange(SHAPE[3]) == 2 * i + j)
                & (np.arange(SHAPE[2])[:, None] < i)] = True  # same wave and channel, earlier row
        assert np.array_equal(b2[earlier], bucket[earlier]) and np.array_equal(p2[earlier], pred[earlier])
        assert not np.array_equal(p2, pred) or not np.array_equal(b2, bucket)  # the change does move a later one


def wave_grid(seed: int = 7) -> RDTensor:
    """A temporal grid whose differences run on along each row (left to right) and repeat one slice to the next:
    what the row model cannot see."""
    rng = np.random.default_rng(seed)
    first = np.cumsum(rng.laplace(0, 1.5, SHAPE[1:]), axis=-1)
    d = np.round(np.stack([first * 0.8 ** k + rng.laplace(0, 0.7, SHAPE[1:]) for k in range(SHAPE[0])]))
    q = np.cumsum(d, axis=0).astype(np.int32)
    return RDTensor("grids.0", SHAPE, np.array([-10]), laplace.s_code(1.0), q.reshape(1, -1), temporal=True)


def test_version_6_takes_more_off_a_grid_whose_rows_continue_left_to_right_and_along_time():
    """The wave model sees the left and the earlier-slice neighbours: on a grid correlated along its rows and
    along time (which the row model cannot see) it codes in fewer bits, losslessly; where the row model codes a
    grid in fewer bits (rows alike), version 6 keeps it, at one bit more than version 5."""
    t = wave_grid()
    v5, v6 = rd_coding.coding_of(t, 5), rd_coding.coding_of(t, 6)
    assert len(v6.params.weights) == 5 and v6.bits < 0.8 * v5.bits
    back, _ = round_trip(t)
    assert np.array_equal(back.symbols, t.symbols) and back.coding.params == v6.params
    rows_alike = grid(correlated=True)
    row5, row6 = rd_coding.coding_of(rows_alike, 5), rd_coding.coding_of(rows_alike, 6)
    five, six = (rd_coding._record_bits(rows_alike, c, v) + c.bits for c, v in ((row5, 5), (row6, 6)))
    assert six <= five + 1
    back, _ = round_trip(rows_alike)
    assert np.array_equal(back.symbols, rows_alike.symbols)


def test_training_buckets_are_the_coders_buckets():
    """The rate–distortion stage weighs each coded grid value by the scale of the bucket the stream's
    context model will put it in: the same buckets, from the values rounded as the coder sees them."""
    import torch

    d = grid(correlated=True).coded_values().reshape(SHAPE)
    bucket, _ = context.contexts(d, context.fit_weights(d))
    noisy = torch.from_numpy(d).double() + torch.empty(SHAPE, dtype=torch.float64).uniform_(-0.49, 0.49)
    assert torch.equal(context.buckets_torch(noisy), torch.from_numpy(bucket))
    assert bucket.min() == 0 and bucket.max() >= 4


def test_quantizers_saved_before_context_scales_load_with_each_bucket_at_the_grids_scale():
    import torch

    from vcm.entropy_models.learned import RateDistortionModel
    from vcm.nerv.hinerv import HinervShape
    from vcm.nerv.registry import create_representation

    model = create_representation("hinerv", HinervShape(grid_channels=2, channels=(8, 6), depths=(1, 0),
                                                        min_grid=4).config(24, 32, 4))
    rd = RateDistortionModel(model)
    contextual = [k for k, q in rd.quantizers.items() if q.contextual]
    assert contextual and any(not q.contextual for q in rd.quantizers.values())
    old = {k: v for k, v in rd.quantizers.state_dict().items() if not k.endswith("log_b_context")}
    old[f"{contextual[0]}.log_b"] = torch.tensor(1.25)
    fresh = RateDistortionModel(model)
    fresh.quantizers.load_state_dict(fresh.complete_state(old))
    assert torch.equal(fresh.quantizers[contextual[0]].log_b_context, torch.full((context.BUCKETS,), 1.25))
    assert fresh.complete_state(rd.quantizers.state_dict()).keys() == rd.quantizers.state_dict().keys()
