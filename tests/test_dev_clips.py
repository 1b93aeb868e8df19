"""The development-clip benchmark's configs: the demo's sections unchanged, or with K times their schedule."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def dev_clips():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("dev_clips")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _fits(cfg: dict) -> list[dict]:
    return cfg["codecs"]["hinerv"]["fits"]


def test_compute_scales_the_capped_fit_and_every_stage(dev_clips):
    from vcm.nerv.config import load_preset
    from vcm.nerv.run import plan

    _, preset = load_preset("hinerv-demo")
    # the test's premise: the crop's 48 frames are capped by the preset's passes, carphone's 120 are not
    assert preset.total_steps(48) < preset.total_steps(120)
    plain = dev_clips.clip_config("bikes416", "x.yuv", "all", ["hinerv"])
    assert all("steps" not in fit for fit in _fits(plain))  # without --compute: the demo's sections as they are
    for frames in (48, 120):
        capped = preset.total_steps(frames)
        scaled = dev_clips.clip_config("clip", "x.yuv", "all", ["hinerv"], compute=4, num_frames=frames)
        assert len(_fits(scaled)) == len(_fits(plain))
        for fit, before in zip(_fits(scaled), _fits(plain)):
            assert fit["steps"] == 4 * capped
            # what the fit then runs: its explicit steps in full, the preset's cap on passes lifted
            _, train = plan(fit["preset"], width_scale=fit.get("width_scale"), steps=fit["steps"])
            assert train.total_steps(frames) == 4 * capped
            assert {k: v for k, v in fit.items() if k not in ("steps", "points")} == \
                   {k: v for k, v in before.items() if k != "points"}
            assert [p["rd_steps"] for p in fit["points"]] == [4 * preset.rd_steps] * len(before["points"])
            assert [p["lambda"] for p in fit["points"]] == [p["lambda"] for p in before["points"]]


def test_compute_scales_a_fits_own_steps(dev_clips):
    fit = {"preset": "hinerv-demo", "steps": 100, "points": [{"lambda": 1, "rd_steps": 30}, {"prune": 0.4, "bits": 8}]}
    scaled = dev_clips._scaled(fit, 2.5, num_frames=8, codec="hinerv")
    assert scaled["steps"] == 250  # an explicit count has no cap on passes to apply first
    assert scaled["points"] == [{"lambda": 1, "rd_steps": 75}, {"prune": 0.4, "bits": 8}]
    assert fit["steps"] == 100 and fit["points"][0]["rd_steps"] == 30  # the demo's own sections are left alone


def test_compute_counts_a_stage_as_the_stage_would(dev_clips):
    from vcm.nerv.config import load_preset

    _, preset = load_preset("hinerv-demo")
    fit = {"preset": "hinerv-demo", "rate_aware": False, "points": [{"lambda": 1, "rd_epochs": 2}]}
    scaled = dev_clips._scaled(fit, 3, num_frames=8, codec="hinerv")
    # two passes over 8 frames become steps (epochs would no longer scale with the schedule), then three times them
    assert scaled["points"] == [{"lambda": 1, "rd_steps": 3 * 2 * preset.steps_per_epoch(8)}]
    # a rate-aware fit codes its own quantizers: its stage runs no steps, and K times none is still none
    rate_aware = dev_clips._scaled({"preset": "hinerv-demo", "points": [{"lambda": 1}]}, 3, num_frames=8,
                                   codec="hinerv")
    assert rate_aware["points"] == [{"lambda": 1}]
