"""Scene cuts: found in a clip, and no HiNeRV grid blends across one."""

import numpy as np
import pytest
import torch

from vcm.codec import nerv_stream
from vcm.nerv.hinerv import HinervConfig, HinervShape, HiNeRV, _grid_frames_per_shot, _interpolate
from vcm.video.shots import shot_lengths

SHAPE = HinervShape(grid_channels=4, channels=(8, 6), depths=(1, 0), grid_frame_ratio=0.5, local_frame_ratio=0.25,
                    min_grid=4, scene_cuts=True)


def _clip_with_cut(t: int = 12, cut: int = 7) -> np.ndarray:
    """A panning gradient (a few grey levels per frame) that jumps to another picture at ``cut``."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 200, 40)[None, None, None, :] + np.arange(t)[:, None, None, None] * 3
    frames = np.broadcast_to(x, (t, 3, 24, 40)).copy()
    frames[cut:] = 255 - frames[cut:] + rng.integers(0, 4, frames[cut:].shape)
    return frames.clip(0, 255).astype(np.uint8)


def test_a_cut_splits_the_clip_and_motion_does_not():
    assert shot_lengths(_clip_with_cut(12, 7)) == (7, 5)
    still_moving = _clip_with_cut(12, 12)  # the same pan with no cut
    assert shot_lengths(still_moving) == ()
    assert shot_lengths(_clip_with_cut(12, 11)) == ()  # a one-frame shot at the end is not split off
    assert shot_lengths(_clip_with_cut(1, 1)) == ()


def test_grid_frames_are_shared_in_proportion_with_one_at_least_each():
    assert _grid_frames_per_shot(12, (30, 18)) == (7, 5) or _grid_frames_per_shot(12, (30, 18)) == (8, 4)
    assert sum(_grid_frames_per_shot(6, (40, 1, 7))) == 6 and min(_grid_frames_per_shot(6, (40, 1, 7))) == 1
    assert _grid_frames_per_shot(1, (3, 3)) is None and _grid_frames_per_shot(8, ()) is None


def test_one_shot_interpolates_exactly_as_before():
    grid = torch.randn(5, 3)
    t = torch.linspace(0, 0.99, 17)
    assert torch.equal(_interpolate(grid, t, ()), _interpolate(grid, t))


def test_no_frame_depends_on_the_other_shots_grid_frames():
    """The gradient of every output frame reaches only the grid frames of its own shot."""
    cfg = SHAPE.config(24, 40, 12, shots=(7, 5))
    assert cfg.shots == (7, 5)
    model = HiNeRV(cfg)
    counts = {g.shape[0]: _grid_frames_per_shot(g.shape[0], cfg.shots) for g in model.grids}
    for frame in range(12):
        model.zero_grad()
        model(torch.tensor([frame / 12])).sum().backward()
        in_first_shot = frame < 7
        for g in model.grids:
            first = counts[g.shape[0]][0]
            touched = g.grad.flatten(1).abs().sum(1) > 0
            assert not touched[first:].any() if in_first_shot else not touched[:first].any(), (frame, g.shape)
        for stage in model.stages:
            first = _grid_frames_per_shot(stage.local.shape[0], cfg.shots)[0]
            touched = stage.local.grad.flatten(1).abs().sum(1) > 0
            assert not touched[first:].any() if in_first_shot else not touched[:first].any()


def test_shots_round_trip_through_the_stream_and_old_configs_still_load():
    cfg = SHAPE.config(24, 40, 12, shots=(7, 5))
    assert HinervConfig.from_dict(cfg.to_dict()) == cfg
    plain = HinervShape(min_grid=4).config(24, 40, 12)
    assert "shots" not in plain.to_dict()  # a clip without cuts is described (and coded) as before
    assert HinervConfig.from_dict(plain.to_dict()) == plain
    assert SHAPE.config(24, 40, 12, shots=()).shots == ()
    assert HinervShape(min_grid=4).config(24, 40, 12, shots=(7, 5)).shots == ()  # the shape does not follow cuts


@pytest.mark.parametrize("shots", [[12], [0, 12], [-3, 15]])
def test_a_stream_with_impossible_shots_is_refused(shots):
    d = SHAPE.config(24, 40, 12, shots=(7, 5)).to_dict()
    d["shots"] = shots
    with pytest.raises(ValueError):
        HiNeRV.check_config(HinervConfig.from_dict(d), nerv_stream.LIMITS)
