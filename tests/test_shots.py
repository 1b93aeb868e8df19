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
    assert _grid_frames_per_shot(12, (30, 18)) in ((7, 5), (8, 4))
    assert sum(_grid_frames_per_shot(6, (40, 1, 7))) == 6 and min(_grid_frames_per_shot(6, (40, 1, 7))) == 1
    assert _grid_frames_per_shot(5, (9,)) == (5,)
    assert _grid_frames_per_shot(1, (3, 3)) is None and _grid_frames_per_shot(8, ()) is None


@pytest.mark.parametrize("shots", [(12,), (7, 5)])
def test_each_shot_spans_its_grid_frames_from_first_to_last_frame(shots):
    """A shot's first frame lands on its first grid frame and its last frame on its last one (without
    shots the last frames of a clip lie beyond the last grid frame and repeat it)."""
    grid = torch.arange(6, dtype=torch.float32).view(6, 1)
    counts = _grid_frames_per_shot(6, shots)
    t = torch.arange(12) / 12
    values = _interpolate(grid, t, shots).flatten().tolist()
    start = 0
    for n_frames, first in zip(shots, [0, *torch.tensor(counts).cumsum(0).tolist()]):
        run = values[start:start + n_frames]
        assert run[0] == pytest.approx(first) and run[-1] == pytest.approx(first + counts[shots.index(n_frames)] - 1)
        assert run == sorted(run) and len(set(run)) == n_frames  # every frame its own point, in order
        start += n_frames
    legacy = _interpolate(grid, t).flatten().tolist()
    assert legacy[-1] == legacy[-2] == 5.0  # the frames past the last grid frame repeat it


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
    assert SHAPE.config(24, 40, 12, shots=()).shots == ()  # no cut: grid frames placed as always
    assert HinervShape(min_grid=4).config(24, 40, 12, shots=(7, 5)).shots == ()  # the shape does not follow cuts


@pytest.mark.parametrize("shots", [[0], [0, 12], [-3, 15]])
def test_a_stream_with_impossible_shots_is_refused(shots):
    d = SHAPE.config(24, 40, 12, shots=(7, 5)).to_dict()
    d["shots"] = shots
    with pytest.raises(ValueError):
        HiNeRV.check_config(HinervConfig.from_dict(d), nerv_stream.LIMITS)
