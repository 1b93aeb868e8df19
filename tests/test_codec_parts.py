import numpy as np
import pytest
import torch

from vcm.bitstream.bits import Reader, StreamError, Writer, exp_golomb_pack, exp_golomb_unpack
from vcm.codec.entropy import decode_array, encode_array
from vcm.codec.prune import magnitude_masks
from vcm.codec.quant import fake_quantize, levels, quantize
from vcm.nerv.model import NeRV, NervShape


@pytest.mark.parametrize("bits", [2, 4, 8, 12])
def test_quantizer_levels_zero_and_error(bits):
    rng = np.random.default_rng(bits)
    w = rng.normal(0, 0.1, (6, 40)).astype(np.float32)
    w[:, :10] = 0.0  # pruned weights
    w[5] = 0.0  # an all-zero channel
    q = quantize("x.weight", w, bits, channels=6)
    symbols = q.centered + q.zero[:, None]
    assert symbols.min() >= 0 and symbols.max() <= levels(bits) - 1 == 2**bits - 2
    deq = q.dequantize()
    assert np.all(deq[:, :10] == 0.0) and np.all(deq[5] == 0.0)  # zero is exact
    assert np.all(np.abs(deq - w) <= q.scale[:, None] / 2 + 1e-7)
    fq = fake_quantize(torch.from_numpy(w), bits, 6).numpy()
    assert np.allclose(fq, deq, atol=1e-6)


def test_fake_quantize_passes_gradients_straight_through():
    w = torch.randn(4, 9, requires_grad=True)
    fake_quantize(w, 4, 4).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


@pytest.mark.parametrize("symbols", [
    np.zeros(0, int), np.array([7]), np.full(500, -3), np.array([0, 1] * 50),
    np.clip(np.rint(np.random.default_rng(0).laplace(0, 6, 20000)), -254, 254).astype(int),
    np.random.default_rng(1).integers(-32767, 32767, 3000),
])
def test_entropy_round_trip(symbols):
    w = Writer()
    encode_array(symbols, w)
    w.raw(b"tail")
    r = Reader(w.getvalue())
    out = decode_array(r, symbols.size)
    assert np.array_equal(out, symbols) and r.raw(4) == b"tail"


def test_entropy_coder_is_close_to_the_empirical_entropy():
    x = np.clip(np.rint(np.random.default_rng(2).laplace(0, 8, 100000)), -254, 254).astype(int)
    w = Writer()
    encode_array(x, w)
    _, counts = np.unique(x, return_counts=True)
    p = counts / counts.sum()
    entropy_bytes = -(counts * np.log2(p)).sum() / 8
    assert len(w.getvalue()) < 1.01 * entropy_bytes + 64


def test_exp_golomb_and_truncation():
    values = [0, 1, 2, 3, 100, 65535, 0]
    packed = exp_golomb_pack(values)
    assert exp_golomb_unpack(packed, len(values))[0] == values
    with pytest.raises(StreamError):
        exp_golomb_unpack(packed[:3], len(values))
    with pytest.raises(StreamError):
        Reader(b"\x80\x80").varint()


def test_global_pruning_counts_and_targets():
    model = NeRV(NervShape(fc_dim=8, stem_dims=(16,), lower_width=4).config(32, 32))
    masks = magnitude_masks(model, 0.4)
    assert set(masks) == {n for n, _ in model.named_parameters()
                          if n.endswith(".weight") and not n.startswith("head")}
    total = sum(m.numel() for m in masks.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned == round(0.4 * total)
    params = dict(model.named_parameters())
    threshold = max(float(params[n].detach().abs()[~m].max()) for n, m in masks.items() if (~m).any())
    assert all(float(params[n].detach().abs()[m].min()) >= threshold for n, m in masks.items())


@pytest.mark.parametrize("options, message", [
    ({"qat": True, "finetune_epochs": 0}, "--qat fine-tunes through quantization"),  # reported "QAT yes", no QAT step
    ({"finetune_epochs": 5}, "nothing to fine-tune without --prune or --qat"),  # skipped without a word
])
def test_the_paper_pipeline_refuses_a_fine_tune_that_cannot_run(options, message):
    from vcm.codec.affine import CompressOptions
    from vcm.errors import VcmError

    with pytest.raises(VcmError, match=message):
        CompressOptions(**options).check()
    CompressOptions(prune=0.4, finetune_epochs=5).check()
    CompressOptions(qat=True, finetune_epochs=1).check()
    CompressOptions(finetune_epochs=0).check()


def test_group_bits_name_each_group_once():
    from vcm.codec.affine import parse_group_bits
    from vcm.errors import VcmError

    assert parse_group_bits("head=10,bias=12") == {"head": 10, "bias": 12}
    with pytest.raises(VcmError, match="gives stem twice"):  # the last one used to win
        parse_group_bits("stem=4,stem=6")
