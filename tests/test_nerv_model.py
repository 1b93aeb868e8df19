import pytest
import torch

from vcm.errors import VcmError
from vcm.nerv.model import NeRV, NervShape, choose_strides, count_params, parse_param_count, solve_for_params


@pytest.mark.parametrize("h,w", [(480, 832), (240, 416), (144, 176), (33, 45), (97, 101), (17, 64)])
def test_output_size_equals_input_size(h, w):
    cfg = NervShape(fc_dim=8, stem_dims=(16,), lower_width=4).config(h, w)
    ph, pw = cfg.padded_size
    assert ph >= h and pw >= w
    with torch.no_grad():
        out = NeRV(cfg)(torch.tensor([0.0, 0.5]))
    assert out.shape == (2, 3, h, w)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_reference_geometry_for_sfu_and_720p():
    assert choose_strides(480, 832) == ((2, 2, 2, 2, 2), 15, 26)
    assert choose_strides(240, 416) == ((2, 2, 2, 2), 15, 26)
    assert choose_strides(720, 1280) == ((5, 2, 2, 2, 2), 9, 16)


def test_param_count_formula_matches_module():
    cfg = NervShape(fc_dim=12, stem_dims=(32, 24), lower_width=6, expansion=2).config(48, 64)
    assert count_params(cfg) == sum(p.numel() for p in NeRV(cfg).parameters())


@pytest.mark.parametrize("budget", [50_000, 300_000, 1_000_000])
def test_solve_for_params_stays_close_under_budget(budget):
    cfg = solve_for_params(NervShape(), 240, 416, budget)
    n = count_params(cfg)
    assert 0.85 * budget <= n <= budget


def test_parse_param_count():
    assert parse_param_count("0.3M") == 300_000 and parse_param_count("50k") == 50_000
    with pytest.raises(VcmError):
        parse_param_count("lots")
    for text, message in (("nan", "must look like"), ("inf", "more than a .nerv stream holds"),  # were a
                          ("0.2G", "more than a .nerv stream holds")):  # ValueError and an OverflowError
        with pytest.raises(VcmError, match=message):
            parse_param_count(text)
    assert parse_param_count("134217728") == 1 << 27  # the most a stream holds


def test_width_scale_shrinks_every_nerv_width():
    from vcm.nerv.run import plan

    full, _ = plan("nerv-xs")
    half, _ = plan("nerv-xs", width_scale=0.5)
    big, small = full.build(144, 176, 8), half.build(144, 176, 8)
    assert small.fc_dim == max(1, round(big.fc_dim * 0.5)) and small.lower_width == max(1, round(big.lower_width * 0.5))
    assert small.stem_dims == tuple(max(1, round(d * 0.5)) for d in big.stem_dims) and small.strides == big.strides
    assert count_params(small) < 0.5 * count_params(big)
    assert NeRV(small)(torch.tensor([0.0])).shape == (1, 3, 144, 176)
