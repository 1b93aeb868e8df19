"""``compute: K`` (``vcm ctc run --compute``, ``vcm demo --compute``): K times the steps a fit and its points'
rate–distortion stages would run on the clip, nothing else changed."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from tests.conftest import run_main, tiny_ctc_config
from vcm import codecs
from vcm.codec.compress import CompressOptions
from vcm.codec.rd import RDOptions
from vcm.codecs.compute import stage_options
from vcm.codecs.nerv_family import fit_plan, run_plan
from vcm.ctc.run import with_compute
from vcm.errors import VcmError
from vcm.nerv.config import load_preset


def test_a_fits_steps_are_k_times_what_its_schedule_gives_the_clip():
    _, preset = load_preset("hinerv-demo")
    # the premise: the preset's cap on passes shortens a 48-frame clip's fit, not a 120-frame one's
    assert preset.total_steps(48) < preset.total_steps(120)
    for frames in (48, 120):
        fit = {"preset": "hinerv-demo", "compute": 4}
        _, train = run_plan(fit, "hinerv-demo", "nerv", frames)
        assert train.total_steps(frames) == 4 * preset.total_steps(frames)
        _, plain = run_plan({"preset": "hinerv-demo"}, "hinerv-demo", "nerv", frames)
        assert plain.total_steps(frames) == preset.total_steps(frames)  # no compute: the preset as it is
    # a fit's own steps or epochs are what is multiplied
    _, train = run_plan({"preset": "hinerv-demo", "steps": 100, "compute": 2.5}, "hinerv-demo", "nerv", 8)
    assert train.total_steps(8) == 250
    _, train = run_plan({"preset": "hinerv-demo", "epochs": 3, "compute": 2}, "hinerv-demo", "nerv", 8)
    assert train.total_steps(8) == 2 * 3 * preset.steps_per_epoch(8)


def test_a_stage_runs_k_times_the_steps_it_would_run_on_that_fit():
    _, train = fit_plan({"preset": "hinerv-demo"}, "hinerv-demo")
    assert stage_options(RDOptions(lam=1), train, 4, 48, False).steps == 4 * train.rd_steps
    assert stage_options(RDOptions(lam=1, steps=30), train, 2.5, 48, False).steps == 75
    by_passes = stage_options(RDOptions(lam=1, epochs=2), train, 3, 8, False)
    assert (by_passes.steps, by_passes.epochs) == (3 * 2 * train.steps_per_epoch(8), None)
    # a rate-aware fit codes its own quantizers at its λ: no stage, and K times none is still none; at another λ
    # its quantizers are where a stage of the usual length starts
    aware = fit_plan({"preset": "hinerv-demo", "rate_lambda": 1}, "hinerv-demo")[1]
    assert stage_options(RDOptions(lam=1), aware, 3, 8, True) == RDOptions(lam=1)
    assert stage_options(RDOptions(lam=4), aware, 3, 8, True).steps == 3 * aware.rd_steps
    # the paper's pipeline: its fine-tuning epochs (10 % of the fit's by default, or its own), none without one
    nerv_train = fit_plan({"preset": "demo"}, "demo")[1]
    assert stage_options(CompressOptions(prune=0.4, bits=8), nerv_train, 3, 8, False).finetune_epochs == \
        3 * max(1, round(0.1 * nerv_train.epochs))
    assert stage_options(CompressOptions(prune=0.4, finetune_epochs=2), nerv_train, 3, 8, False).finetune_epochs == 6
    quantized_only = CompressOptions(bits=8)
    assert stage_options(quantized_only, nerv_train, 3, 8, False) is quantized_only


def test_a_fit_with_more_compute_has_its_own_folder_and_a_bad_factor_is_one_line():
    hinerv, seq = codecs.get("hinerv"), {"name": "c"}
    fit = {"preset": "hinerv-demo", "rate_aware": False, "points": [{"lambda": 1}, {"lambda": 4}]}
    assert {p["fit_key"] for _, p in hinerv.points({"fits": [{**fit, "compute": 4}]}, seq)} == {"hinerv-demo_x4"}
    assert {p["fit_key"] for _, p in hinerv.points({"fits": [{**fit, "compute": 2.5}]}, seq)} == {"hinerv-demo_x2p5"}
    # K = 1 is the schedule as it is: the same points, so that finished ones are kept
    assert hinerv.points({"fits": [{**fit, "compute": 1}]}, seq) == hinerv.points({"fits": [fit]}, seq)
    for bad in (0, -1, "2", True, 1e9, math.nan, math.inf):
        with pytest.raises(VcmError, match=r"hinerv fit: compute must be a factor above 0 and at most 1000"):
            hinerv.points({"fits": [{**fit, "compute": bad}]}, seq)


def test_compute_reaches_every_fit_that_sets_none_and_no_anchor():
    shared = [{"preset": "hinerv-demo", "points": [{"lambda": 1}]}, {"preset": "hinerv-demo", "compute": 2},
              {"preset": "hinerv-demo", "compute": None}]  # `compute:` left empty in YAML sets none
    cfg = {"sequences": [], "codecs": {"hinerv": {"fits": shared}, "sa-hinerv": {"fits": shared},  # a YAML alias
                                       "hevc": {"qps": [30]}}}
    scaled = with_compute(cfg, 3)
    for codec in ("hinerv", "sa-hinerv"):
        assert [f["compute"] for f in scaled["codecs"][codec]["fits"]] == [3, 2, 3]
    assert scaled["codecs"]["hevc"] == {"qps": [30]}
    assert "compute" not in shared[0]  # the config it was given is left as it was
    with pytest.raises(VcmError, match="--compute must be a factor above 0"):
        with_compute(cfg, 0)


def test_ctc_run_compute_trains_each_network_and_stage_k_times_longer(tmp_path):
    cfg = tiny_ctc_config(tmp_path, "{steps: 6, batch: 2, lr: 3.0e-3}",
                          "  nerv:\n    fits: [{{preset: {preset}, rate_aware: false, points: [{{lambda: 1, rd_steps: 3}}]}}]\n")
    assert run_main("ctc", "run", cfg, "--out", tmp_path / "o", "--compute", "2").returncode == 0
    metrics, = (tmp_path / "o" / "fits").glob("tiny/nerv/*_x2/metrics.json")
    assert json.loads(metrics.read_text())["steps"] == 12
    report, = (tmp_path / "o" / "points").glob("tiny/nerv/*/stream.json")
    assert json.loads(report.read_text())["rd_steps"] == 6
    refused = run_main("ctc", "run", cfg, "--out", tmp_path / "o2", "--compute", "-1")
    assert refused.returncode == 1 and "--compute must be a factor above 0" in refused.stderr
    assert not (tmp_path / "o2").exists()


def test_the_demo_writes_its_compute_into_the_config_it_runs(tmp_path, monkeypatch):
    import vcm.demo as demo

    class Ran(Exception):
        pass

    def run(config, out, **kwargs):
        raise Ran(yaml.safe_load(config.read_text()))

    monkeypatch.setattr(demo, "run", run)
    monkeypatch.setenv("VCM_DEMO_DETECTOR", "none")
    with pytest.raises(Ran) as ran:
        demo.run_demo(tmp_path / "d", device="cpu", compute=3)
    sections = ran.value.args[0]["codecs"]
    for codec in ("hinerv", "sa-hinerv"):
        assert [f["compute"] for f in sections[codec]["fits"]] == [3, 3]
    assert "compute" not in json.dumps(sections["hevc"])
    refused = run_main("demo", "--compute", "0", "--out", tmp_path / "e")
    assert refused.returncode == 1 and "--compute must be a factor above 0" in refused.stderr
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("frames, compute, hinted", [("0:24", None, True), ("0:24", 0.25, False), ("all", None, False)])
def test_the_demo_on_fewer_frames_says_how_to_make_it_quicker(tmp_path, monkeypatch, capsys, frames, compute, hinted):
    """`vcm demo --frames 0:24`, offered as a quicker look, took 403 s where the whole clip takes 427 s: fewer frames
    shorten the fits, not the rate points' stages; with --compute 0.25 it took 113 s."""
    import vcm.demo as demo

    class Ran(Exception):
        pass

    def run(config, out, **kwargs):
        raise Ran()

    monkeypatch.setattr(demo, "run", run)
    monkeypatch.setenv("VCM_DEMO_DETECTOR", "none")
    with pytest.raises(Ran):
        demo.run_demo(tmp_path / "d", device="cpu", frames=frames, compute=compute)
    err = " ".join(capsys.readouterr().err.split())
    assert ("fewer frames shorten the fits only" in err and "add --compute 0.25" in err) is hinted
