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


def test_compute_goes_on_every_fit_of_the_demos_sections(dev_clips):
    plain = dev_clips.clip_config("bikes416", "x.yuv", "all", ["hinerv"])
    assert all("compute" not in fit for fit in _fits(plain))  # without --compute: the demo's sections as they are
    scaled = dev_clips.clip_config("bikes416", "x.yuv", "all", ["hinerv"], compute=4)
    assert [fit["compute"] for fit in _fits(scaled)] == [4] * len(_fits(plain))
    # nothing else changes: what K times does to the steps is vcm.codecs.compute's (tests/test_compute.py)
    assert [{k: v for k, v in fit.items() if k != "compute"} for fit in _fits(scaled)] == _fits(plain)


@pytest.mark.parametrize("script", sorted(p.stem for p in BENCHMARKS.glob("*.py")))
def test_every_benchmark_script_imports(script):
    """A benchmark is run by hand, not by the suite: `benchmarks/icm_speed.py` imported helpers of vcm.icm.codec
    under names a change had made public, and failed at its first line for as long as nobody ran it."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        importlib.import_module(script)
    finally:
        sys.path.remove(str(BENCHMARKS))
        for name in (script, "_common"):
            sys.modules.pop(name, None)
