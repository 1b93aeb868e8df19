"""One configuration for every clip: a NeRV-family codec section without ``fits`` runs the default curve of its
preset (``configs/nerv/hinerv-demo.yaml``, ``curve``), which the demo, the SFU-HW config and the development
clips all run."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from tests.conftest import run_main
from vcm import codecs
from vcm.ctc import config as ctc_config
from vcm.ctc.run import plan, with_compute
from vcm.errors import VcmError
from vcm.nerv.config import load_preset
from vcm.nerv.presets import preset_curve
from vcm.resources import data_dir

SEQUENCE = {"name": "cp", "path": "sample:carphone", "frames": "0:8"}


def write_config(tmp_path, codecs_yaml: str):
    path = tmp_path / "ctc.yaml"
    path.write_text(f"sequences:\n  - {{name: cp, path: 'sample:carphone', frames: '0:8'}}\ndetector: null\n"
                    f"codecs:\n{codecs_yaml}")
    return path


def test_a_section_without_fits_runs_the_presets_curve_written_out(tmp_path):
    curve = preset_curve("hinerv-demo")
    assert curve and all(fit["preset"] == "hinerv-demo" and fit["points"] for fit in curve)
    cfg = ctc_config.load(write_config(tmp_path, "  hinerv: {}\n  sa-hinerv:\n    masks: {source: canny}\n"))
    assert cfg["codecs"]["hinerv"] == {"fits": curve}
    assert cfg["codecs"]["sa-hinerv"] == {"masks": {"source": "canny"}, "fits": curve}
    specs = plan(cfg, tmp_path / "out", None, None, None, None, "cpu")
    lambdas = sorted(p["lambda"] for fit in curve for p in fit["points"])
    for codec in ("hinerv", "sa-hinerv"):
        assert sorted(s["point"]["lambda"] for s in specs if s["codec"] == codec) == lambdas
    # the same points as the curve written out by hand in the section
    hinerv = codecs.get("hinerv")
    assert hinerv.points({}, SEQUENCE) == hinerv.points({"fits": curve}, SEQUENCE)
    assert hinerv.points(None, SEQUENCE) == hinerv.points({"fits": curve}, SEQUENCE)


def test_the_demo_the_sfu_config_and_the_dev_clips_run_one_configuration():
    demo = ctc_config.load(data_dir("configs") / "ctc" / "demo.yaml")
    sfu = ctc_config.load(data_dir("configs") / "ctc" / "sfu-cd.yaml")
    for codec in ("hinerv", "sa-hinerv"):
        assert demo["codecs"][codec]["fits"] == sfu["codecs"][codec]["fits"] == preset_curve("hinerv-demo")
    benchmarks = str(Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, benchmarks)
    try:
        dev_clips = importlib.import_module("dev_clips")
    finally:
        sys.path.remove(benchmarks)
    dev = dev_clips.clip_config("bikes416", "x.yuv", "all", ["hinerv"])
    assert dev["codecs"]["hinerv"]["fits"] == preset_curve("hinerv-demo")


def test_compute_reaches_the_default_curves_fits():
    scaled = with_compute({"sequences": [], "codecs": {"hinerv": {}, "hevc": {"qps": [30]}}}, 2)
    fits = scaled["codecs"]["hinerv"]["fits"]
    assert len(fits) == len(preset_curve("hinerv-demo")) and all(fit["compute"] == 2 for fit in fits)


def test_a_section_with_no_curve_to_run_is_refused_in_one_line(tmp_path):
    empty = run_main("ctc", "run", write_config(tmp_path, "  hinerv: {fits: []}\n"), "--dry-run",
                     "--out", tmp_path / "o")
    assert empty.returncode == 1 and "hinerv: fits is an empty list, a curve of no points" in empty.stderr
    assert len(empty.stderr.strip().splitlines()) == 1
    none = run_main("ctc", "run", write_config(tmp_path, "  nerv: {}\n"), "--dry-run", "--out", tmp_path / "o")
    assert none.returncode == 1 and "nerv needs fits" in none.stderr and "nerv-s has no curve" in none.stderr
    assert not (tmp_path / "o").exists()


def test_a_presets_curve_is_read_checked_and_names_its_preset(tmp_path):
    preset = tmp_path / "mine.yaml"
    text = (data_dir("configs") / "nerv" / "hinerv-demo.yaml").read_text()
    preset.write_text(text)
    assert [fit["preset"] for fit in preset_curve(str(preset))] == [str(preset)] * len(preset_curve("hinerv-demo"))
    load_preset(str(preset))  # a fit reads a preset with a curve
    for bad in ("curve: 3\n", "curve: []\n", "curve: [1, 2]\n"):
        preset.write_text(text.split("\ncurve:")[0] + "\n" + bad)
        with pytest.raises(VcmError, match="curve must be a list of fits"):
            preset_curve(str(preset))
    preset.write_text(text.split("\ncurve:")[0] + "\n")
    assert preset_curve(str(preset)) is None
    preset.write_text(text + "rates: []\n")
    with pytest.raises(VcmError, match="'model' and 'train' only"):
        load_preset(str(preset))
