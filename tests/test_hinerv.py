"""HiNeRV: shapes at odd sizes, grid interpolation, budgets, both compression methods, SA loss, resume."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import head_json, moving_frames, run_cli, tiny_video, run_main
from vcm.codec import nerv_stream
from vcm.errors import VcmError
from vcm.codec.compress import CompressOptions, RDOptions, compress_many, decode_file
from vcm.nerv import registry
from vcm.nerv.config import TrainConfig, load_preset
from vcm.nerv.hinerv import ConvNeXtBlock, HinervShape, HiNeRV, _interpolate, solve_for_params
from vcm.nerv.train import fit, load_run, reconstruct
from vcm.video import open_video
from vcm.video.yuv import write_yuv420

CPU = torch.device("cpu")
TINY = HinervShape(grid_channels=4, channels=(8, 6), depths=(1, 1), grid_frame_ratio=0.5, local_frame_ratio=0.5)


@pytest.mark.parametrize("h,w,t", [(24, 32, 4), (31, 45, 5), (37, 50, 3), (240, 416, 2), (144, 176, 7)])
def test_output_has_the_frame_size_at_odd_sizes(h, w, t):
    cfg = TINY.config(h, w, t)
    model = HiNeRV(cfg)
    out = model(torch.tensor([0.0, 0.5, 0.99])).detach()
    assert out.shape == (3, 3, h, w) and float(out.min()) >= 0 and float(out.max()) <= 1
    assert HiNeRV.count_params(cfg) == sum(p.numel() for p in model.parameters())


def test_grid_interpolation_between_and_at_grid_frames():
    grid = torch.arange(4, dtype=torch.float32).view(4, 1) * 10  # values 0, 10, 20, 30 at t = 0, .25, .5, .75
    assert _interpolate(grid, torch.tensor([0.25, 0.5])).flatten().tolist() == [10.0, 20.0]
    between = _interpolate(grid, torch.tensor([0.3125, 0.9]))  # between frames 1 and 2; past the last frame
    assert between.flatten().tolist() == pytest.approx([12.5, 30.0])


def test_a_grids_gradient_is_the_same_on_every_run_on_two_threads():
    """grid[index]'s gradient sums the frames of a batch that share a grid frame with atomic adds in the order the
    threads run, once a batch's rows are large enough to be split between them: a fit was not repeatable."""
    torch.manual_seed(0)
    grid = torch.randn(30, 16, 30, 40, requires_grad=True)  # rows of 19,200 values
    upstream = torch.randn(4, 16, 30, 40)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        grads = []
        for _ in range(8):
            grid.grad = None
            (_interpolate(grid, torch.tensor([0.2, 0.2, 0.201, 0.202])) * upstream).sum().backward()
            grads.append(grid.grad.clone())
    finally:
        torch.set_num_threads(threads)
    assert grads[0].abs().sum() > 0 and all(torch.equal(grads[0], g) for g in grads[1:])


def test_unseen_frame_times_decode_smoothly():
    torch.manual_seed(0)
    cfg = TINY.config(24, 32, 4)
    model = HiNeRV(cfg).eval()
    for g in model.grids:
        torch.nn.init.normal_(g)
    with torch.no_grad():
        a, mid, b = model(torch.tensor([0.25, 0.3125, 0.375]))
    # Halfway between two grid frames the output lies between theirs far more often than not.
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    assert ((mid >= lo - 1e-3) & (mid <= hi + 1e-3)).float().mean() > 0.5


def test_convnext_block_folds_the_norm_affine_exactly():
    """The block runs LayerNorm without its affine and folds γ, β into the first 1×1: same function."""
    torch.manual_seed(0)
    block = ConvNeXtBlock(6, 2.0, 3)
    with torch.no_grad():
        block.norm.norm.weight.uniform_(0.5, 2.0)
        block.norm.norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(2, 9, 7, 6)  # [B, H, W, C]

    def plain(weight, bias):
        y = block.dw(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        y = F.layer_norm(y, (6,), weight, bias, block.norm.norm.eps)
        return x + F.linear(F.gelu(F.linear(y, block.pw1.weight, block.pw1.bias)), block.pw2.weight, block.pw2.bias)

    with torch.no_grad():
        assert torch.allclose(block(x), plain(block.norm.norm.weight, block.norm.norm.bias), atol=1e-5)
        assert not torch.allclose(block(x), plain(None, None), atol=1e-3)  # γ and β matter here: the check can fail


def test_head_moves_ahead_of_a_blockless_last_stage_exactly():
    """A last stage without blocks takes the 1×1 head into its projection (upsampling only the head's
    channels): the same frames and the same gradients as the stage followed by the head."""

    torch.manual_seed(0)
    cfg = HinervShape(grid_channels=4, channels=(6, 5), depths=(1, 0), local_frame_ratio=0.5, expansion=2.0,
                      min_grid=4).config(16, 24, 6)
    assert HiNeRV.folds_head(cfg) and cfg.local_frames
    model = HiNeRV(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)  # local grids start at zero: give every path a say
    t = torch.tensor([0.1, 0.55, 0.9])

    def unfolded():
        x = torch.cat([_interpolate(g, t) for g in model.grids], dim=1).permute(0, 2, 3, 1)
        for stage in model.stages:
            x = stage(x, t)
        x = model.head(x).permute(0, 3, 1, 2)[:, :, :16, :24]
        return (torch.tanh(x) + 1) * 0.5

    folded_out, plain_out = model(t), unfolded()
    assert torch.allclose(folded_out, plain_out, atol=1e-6)
    grads = []
    for out in (folded_out, plain_out):
        model.zero_grad()
        out.square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        assert model.stages[-1].local.grad.abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)
    # the decoder's work as counted: 6 grid channels on 4×6, stage 1's 1×1 (6→6) and its block on 8×12,
    # then the head at stage 2's input (3·6 per pixel of 8×12), not 6→5 there plus 5→3 on 16×24
    assert HiNeRV.frame_macs(cfg) == 6 * 6 * 24 + (9 * 6 + 2 * 6 * 12) * 96 + 3 * 6 * 96


@pytest.mark.parametrize("preset", ["hinerv-xs", "hinerv-demo", "hinerv-s", "hinerv-m"])
def test_budget_is_filled_and_grid_frames_stay_within_the_video(preset):
    spec, cfg = load_preset(preset)
    assert spec.arch == "hinerv" and cfg.grad_clip == 1.0
    for h, w, t, budget in [(144, 176, 120, 80_000), (240, 416, 48, 300_000), (480, 832, 64, 1_000_000)]:
        mcfg = solve_for_params(spec.shape, h, w, t, budget)
        # a grid channel alone can be a tenth of the budget: frames and then stage widths fill the rest
        assert 0.98 * budget <= HiNeRV.count_params(mcfg) <= budget
        assert mcfg.grid_frames * 2 ** (mcfg.grid_levels - 1) <= t and mcfg.local_frames <= t


def test_stages_widen_only_when_grid_frames_are_spent():
    half_rate = HinervShape(grid_channels=22, grid_frame_ratio=0.5, min_grid=16, depths=(2, 2, 1, 0), expansion=2)
    cfg = solve_for_params(half_rate, 240, 416, 48, 300_000)
    # both grids already have the video's 48 frames at their finest level: only wider stages can fill
    assert cfg.grid_frames == 24 and cfg.local_frames == 48
    assert 0.98 * 300_000 <= HiNeRV.count_params(cfg) <= 300_000
    quarter = solve_for_params(replace(half_rate, grid_frame_ratio=0.25), 240, 416, 48, 300_000)
    assert quarter.grid_frames > 12 and quarter.channels[0] < cfg.channels[0]  # frames before widths


def test_width_scale_shrinks_widths_not_grid_frames_so_the_size_follows_the_clip():
    from vcm.nerv.run import plan

    spec, _ = plan("hinerv-demo", width_scale=0.45)
    full, _ = plan("hinerv-demo")
    shares = {}
    for h, w, t in [(144, 176, 120), (240, 416, 48)]:
        big, small = full.build(h, w, t), spec.build(h, w, t)
        assert small.grid_frames == big.grid_frames and small.local_frames == big.local_frames
        assert small.channels == tuple(max(1, round(c * 0.45)) for c in big.channels)
        assert small.grid_channels == max(1, round(big.grid_channels * 0.45))
        shares[t] = HiNeRV.count_params(small) / HiNeRV.count_params(big)
    # many grid frames (120) hold most of the parameters: the same scale keeps more of them there
    assert shares[120] > shares[48] + 0.1
    for bad in (0, -1, 9, "wide", True):
        with pytest.raises(VcmError, match="width_scale"):
            plan("hinerv-demo", width_scale=bad)


def test_registry_knows_both_representations():
    assert {"nerv", "hinerv"} <= set(registry.names())
    cfg = TINY.config(24, 32, 4)
    model = registry.create_representation("hinerv", cfg.to_dict())
    assert isinstance(model, HiNeRV) and registry.arch_of_config(cfg) == "hinerv"
    with pytest.raises(ValueError):
        registry.config_from_dict("hinerv", {**cfg.to_dict(), "channels": "8"})
    with pytest.raises(ValueError):
        HiNeRV.check_config(type(cfg)(**{**cfg.__dict__, "grid_levels": 30}), nerv_stream.LIMITS)


@pytest.mark.parametrize("arch, preset, key, value, message", [
    ("hinerv", "hinerv-demo", "grid_levels", 0, "grid_levels must be a whole number from 1 to 8, got 0"),
    ("hinerv", "hinerv-demo", "grid_channels", -1, "grid_channels must be a whole number from 1 to 4096"),
    ("hinerv", "hinerv-demo", "channels", [], "channels must be 1 to 8 widths"),
    ("hinerv", "hinerv-demo", "kernel", 4, "kernel must be 1, 3, 5 or 7"),
    ("hinerv", "hinerv-demo", "depths", [1.5, 1], "'depths' must be an integer"),
    ("hinerv", "hinerv-demo", "scene_cuts", "yes", "'scene_cuts' must be true or false"),
    ("nerv", "nerv-s", "stem_dims", [0], "stem_dims must be 1 to 8 widths"),
    ("nerv", "nerv-s", "embed", "0.5_80", "embed_base must be above 1"),
    ("nerv", "nerv-s", "reduction", 0, "reduction must be from 1 to 16")])
def test_a_presets_model_values_are_checked_before_a_budget_is_solved(arch, preset, key, value, message):
    """Before, with grid_levels 0 grid channels cost nothing and the budget solver added them one at a time up
    to the budget (a hang of minutes), and a negative grid_channels fitted a network of one channel without
    a word."""
    import yaml

    from vcm.nerv.config import model_spec_from_dict
    from vcm.nerv.presets import preset_path

    model = yaml.safe_load(preset_path(preset).read_text())["model"]
    assert model_spec_from_dict(model).arch == arch  # the preset itself is valid
    with pytest.raises(VcmError, match=message.replace("(", r"\(")):
        model_spec_from_dict({**model, key: value})


def test_a_preset_that_hung_the_solver_is_one_line_at_once(tmp_path):
    import yaml

    from tests.test_cli import assert_one_line_error
    from vcm.nerv.presets import preset_path

    preset = yaml.safe_load(preset_path("hinerv-demo").read_text())
    preset["model"]["grid_levels"] = 0
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(preset))
    proc = run_cli("fit", "sample:carphone", "--config", tmp_path / "bad.yaml", "--frames", "0:2", "--steps", "1",
                   "--out", tmp_path / "run", timeout=60)
    assert_one_line_error(proc, "grid_levels must be a whole number from 1 to 8")
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def hinerv_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hinerv")
    video = tiny_video(root, t=4)
    cfg = TrainConfig(epochs=12, batch=2, lr=5e-3, grad_clip=1.0, checkpoint_every=12)
    result = fit(video, TINY.config(24, 32, 4), cfg, root / "run", CPU)
    return root, video, result


def test_fit_learns_and_both_methods_round_trip(hinerv_run):
    root, video, result = hinerv_run
    history = result.metrics["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    reports = compress_many(root / "run", [CompressOptions(bits=8), RDOptions(lam=0.5, epochs=2)], CPU,
                            outs=[root / "a.nerv", root / "r.nerv"])
    for r, name, version in zip(reports, ("a.nerv", "r.nerv"), (3, 6)):
        frames, stream, _ = decode_file(root / name, CPU)
        assert stream.arch == "hinerv" and (root / name).read_bytes()[4] == version
        assert frames.shape == video.frames_u8.shape
        # The encoder's view of its quantized weights equals what the decoder rebuilt from the file.
        assert np.array_equal(frames, reconstruct(stream.build_model(), 4, CPU))
        assert nerv_stream.encode(stream).data == (root / name).read_bytes()
    assert reports[0]["coding"] == "affine" and reports[1]["coding"] == "rd"
    # 8-bit affine quantization of every tensor, grids included, stays close to the float network.
    model, _ = load_run(root / "run")
    float_frames = reconstruct(model, 4, CPU)
    assert np.abs(float_frames.astype(int) - decode_file(root / "a.nerv", CPU)[0].astype(int)).mean() < 3


def test_sa_loss_trains_hinerv(tmp_path):
    src = tmp_path / "Tiny_32x24_25.yuv"
    frames = moving_frames(t=4, h=24, w=32)
    write_yuv420(src, frames)
    video = open_video(src)
    masks = np.zeros((4, 1, 24, 32), np.uint8)
    masks[:, :, 6:18, 8:24] = 1
    cfg = TrainConfig(epochs=6, batch=2, lr=5e-3, loss="sa-nerv", checkpoint_every=6)
    result = fit(video, TINY.config(24, 32, 4), cfg, tmp_path / "run", CPU, masks_u8=masks, masks_meta={"path": "m"})
    assert result.metrics["history"][-1]["loss"] < result.metrics["history"][0]["loss"]


def test_resume_is_bit_identical(tmp_path):
    src = tmp_path / "Tiny_32x24_25.yuv"
    write_yuv420(src, moving_frames(t=4, h=24, w=32))
    video = open_video(src)
    cfg = TrainConfig(epochs=4, batch=2, lr=5e-3, grad_clip=1.0, checkpoint_every=2)
    mcfg = TINY.config(24, 32, 4)
    fit(video, mcfg, cfg, tmp_path / "whole", CPU)
    stopped = fit(video, mcfg, cfg, tmp_path / "parts", CPU, should_stop=lambda step: step == 3)
    assert stopped.interrupted
    fit(video, mcfg, cfg, tmp_path / "parts", CPU, resume=True)
    a, _ = load_run(tmp_path / "whole")
    b, _ = load_run(tmp_path / "parts")
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)


def test_cli_fit_arch_hinerv(tmp_path):
    src = tmp_path / "Tiny_32x24_25.yuv"
    write_yuv420(src, moving_frames(t=4, h=24, w=32))
    proc = run_main("fit", src, "--arch", "hinerv", "--params", "5k", "--epochs", "1", "--out", tmp_path / "run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"params"' in proc.stdout
    scaled = run_main("fit", src, "--arch", "hinerv", "--params", "5k", "--width-scale", "0.5", "--epochs", "1",
                      "--out", tmp_path / "half", "--json")
    assert scaled.returncode == 0, scaled.stderr
    assert json.loads(scaled.stdout)["params"] < json.loads(proc.stdout)["params"]
    refused = run_main("fit", src, "--arch", "hinerv", "--width-scale", "0", "--out", tmp_path / "none")
    assert refused.returncode == 1 and "width_scale" in refused.stderr and "Traceback" not in refused.stderr
    bad = run_main("fit", src, "--arch", "hinerv", "--preset", "nerv-s")
    assert bad.returncode == 1 and "not hinerv" in bad.stderr


# --- grids coded along time (rate–distortion coding) -----------------------------------------

def test_temporal_quantizer_rates_the_differences_along_time():
    from vcm.entropy_models.learned import RateDistortionModel
    from tests.test_rd import Tensors

    torch.manual_seed(0)
    walk = torch.randn(12, 2, 3, 4).cumsum(dim=0) * 0.1  # neighbouring frames alike
    rd = RateDistortionModel(Tensors(grid=walk.clone()))
    assert rd.quantizer("grid").temporal and rd.quantizer("grid").log2_step.shape == (1,)
    assert RateDistortionModel(Tensors(flat=walk.clone())).quantizer("flat").log2_step.shape == (12,)
    # Under one step and entropy model: a still grid costs less than the walk, which costs less
    # than frames drawn independently with the walk's spread.
    cost = []
    for grid in (walk[:1].repeat(12, 1, 1, 1), walk, torch.randn(12, 2, 3, 4) * walk.std()):
        rd.model.grid.data.copy_(grid)
        cost.append(float(rd.quantized_params("hard")[1].detach()))
    assert cost[0] < cost[1] < cost[2], cost


def test_temporal_tensors_round_trip_and_cost_less_than_flat_coding():
    from vcm.bitstream.bits import Reader, Writer
    from vcm.codec import rd_coding
    from vcm.entropy_models import laplace

    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.integers(-2, 3, size=(30, 2, 5, 6)), axis=0).astype(np.int32)  # |Δ| ≤ 2, values wander

    def coded(temporal: bool):
        s = walk.reshape(1, -1) if temporal else walk.reshape(30, -1)
        spread = np.abs(walk if not temporal else np.diff(walk, axis=0)).mean() + 0.5
        t = rd_coding.RDTensor("grids.0", walk.shape, np.zeros(s.shape[0], np.int64), laplace.s_code(np.log(spread)), s,
                               temporal)
        w = Writer()
        rd_coding.write([t], w, version=3)  # no mode bytes: the same bytes are read both ways below
        return w.getvalue(), s.shape[0]

    (along, _), (flat, _) = coded(True), coded(False)
    assert len(along) < 0.75 * len(flat)
    back = rd_coding.read(Reader(along, "t"), [("grids.0", walk.shape, 1)], frozenset({"grids.0"}), version=3)[0]
    assert back.temporal and np.array_equal(back.symbols.reshape(walk.shape), walk)
    # The same bytes read without the temporal flag are the differences, not the grid.
    plain = rd_coding.read(Reader(along, "t"), [("grids.0", walk.shape, 1)], version=3)[0]
    assert not np.array_equal(plain.symbols.reshape(walk.shape), walk)


def test_temporal_sums_beyond_the_symbol_range_are_refused():
    from vcm.bitstream.bits import Reader, StreamError, Writer
    from vcm.codec import rd_coding

    big = np.full((1, 12), 60_000, np.int32)  # each value codable; summed over 3 frames: 180 000 > 2^17
    w = Writer()
    rd_coding.write([rd_coding.RDTensor("g", (3, 4), np.zeros(1, np.int64), 40_000, big)], w, version=3)  # coded flat, read as temporal
    with pytest.raises(StreamError, match="out of range"):
        rd_coding.read(Reader(w.getvalue(), "t"), [("g", (3, 4), 1)], frozenset({"g"}), version=3)
    with pytest.raises(ValueError, match="too large"):
        rd_coding.write([rd_coding.RDTensor("g", (3, 4), np.zeros(1, np.int64), 40_000, big * 3, True)], Writer())


def test_rd_stream_codes_every_grid_along_time(hinerv_run):
    import json
    import zlib

    from tests.conftest import reseal, section
    from vcm.bitstream.bits import StreamError

    root, video, _ = hinerv_run
    compress_many(root / "run", [RDOptions(lam=0.5, epochs=2), RDOptions(lam=0.5, epochs=2, temporal=False)],
                  CPU, outs=[root / "time.nerv", root / "flat.nerv"])
    data = (root / "time.nerv").read_bytes()
    header = head_json(section(data, b"HEAD"))
    model, _ = load_run(root / "run")
    grids = [n for n, _ in model.named_parameters() if n.startswith("grids.") or n.endswith(".local")]
    assert sorted(header["temporal"]) == sorted(grids) and len(grids) >= 3  # 2 base levels + local grids
    assert "temporal" not in head_json(section((root / "flat.nerv").read_bytes(), b"HEAD"))
    for name in ("time.nerv", "flat.nerv"):
        frames, stream, _ = decode_file(root / name, CPU)
        assert np.array_equal(frames, reconstruct(stream.build_model(), 4, CPU))
        assert nerv_stream.encode(stream).data == (root / name).read_bytes()
    for bad in (["grids.0", "grids.0"], ["nope"], ["head.bias"], "grids.0", [3]):
        broken = reseal(data, b"HEAD", zlib.compress(json.dumps({**header, "temporal": bad}, sort_keys=True).encode()))
        with pytest.raises(StreamError, match="temporal"):
            nerv_stream.decode(broken)


def test_rate_aware_quantizers_of_another_layout_are_not_loaded_silently(tmp_path):
    """A rate-aware HiNeRV fit saves quantizers whose grids have one step (coded along time); coding
    it with temporal coding off needs other quantizers: refused in one line without epochs, trained
    anew with them."""
    from vcm.errors import VcmError

    src = tmp_path / "Tiny_32x24_25.yuv"
    write_yuv420(src, moving_frames(t=4, h=24, w=32))
    video = open_video(src)
    cfg = TrainConfig(epochs=4, batch=2, lr=5e-3, grad_clip=1.0, checkpoint_every=4, rate_lambda=0.5)
    fit(video, TINY.config(24, 32, 4), cfg, tmp_path / "run", CPU)
    (ok,) = compress_many(tmp_path / "run", [RDOptions(lam=0.5)], CPU, outs=[tmp_path / "own.nerv"])
    assert ok["rd_epochs"] == 0  # coded with the fit's own quantizers
    with pytest.raises(VcmError, match="another layout"):
        compress_many(tmp_path / "run", [RDOptions(lam=0.5, temporal=False)], CPU, outs=[tmp_path / "flat.nerv"])
    (flat,) = compress_many(tmp_path / "run", [RDOptions(lam=0.5, temporal=False, epochs=1)], CPU,
                            outs=[tmp_path / "flat.nerv"])
    frames, stream, _ = decode_file(tmp_path / "flat.nerv", CPU)
    assert flat["rd_epochs"] == 1 and not any(t.temporal for t in stream.tensors)
    assert frames.shape == video.frames_u8.shape
