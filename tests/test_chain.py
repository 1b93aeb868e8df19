"""λ points chained on one fit: each stage starts where the next-smaller λ's stage ended."""

import pytest
import torch

from vcm.codec.chain import STATE, StageEnd, chain_order
from vcm.codec.compress import RDOptions, compress_many, compress_stage, decode_file, prepare
from vcm.errors import VcmError

CPU = torch.device("cpu")


def test_a_chain_runs_from_the_smallest_lambda_up():
    assert chain_order([4.0, 0.1, 20.0, 1.0]) == [1, 3, 0, 2]


def test_chained_points_start_where_the_previous_lambda_ended(tiny_run, tmp_path):
    """The chain's first stream is the one a stage from the fit gives; the next starts from its end (a
    state that survives being saved and loaded, as CTC points hand it on), not from the fit."""
    root, video = tiny_run
    lams = [RDOptions(lam=5.0, steps=6), RDOptions(lam=0.05, steps=6)]
    high, low = compress_many(root / "run", lams, CPU, outs=[tmp_path / "c5.nerv", tmp_path / "c005.nerv"], chain=True)
    assert high["start"] == {"lambda": 0.05} and "start" not in low  # reports in the order asked
    assert high["chain_encode_seconds"] > high["encode_seconds"]
    plain = compress_many(root / "run", lams, CPU, outs=[tmp_path / "p5.nerv", tmp_path / "p005.nerv"], chain=False)
    assert "start" not in plain[0]
    assert (tmp_path / "c005.nerv").read_bytes() == (tmp_path / "p005.nerv").read_bytes()
    assert (tmp_path / "c5.nerv").read_bytes() != (tmp_path / "p5.nerv").read_bytes()
    assert decode_file(tmp_path / "c5.nerv", CPU)[0].shape == video.frames_u8.shape

    prep = prepare(root / "run")
    _, end = compress_stage(prep, tmp_path / "m005.nerv", lams[1], CPU)
    end.save(tmp_path / STATE)
    again = StageEnd.load(tmp_path / STATE, prep.fresh_model())
    assert again.lam == 0.05 and again.seconds == pytest.approx(end.seconds)
    report, _ = compress_stage(prep, tmp_path / "m5.nerv", lams[0], CPU, start=again)
    assert report["rd_steps"] == 6  # a chained stage runs a stage's steps, not the none of a warm rate-aware start
    assert (tmp_path / "m5.nerv").read_bytes() == (tmp_path / "c5.nerv").read_bytes()


def test_a_missing_or_foreign_state_is_one_clear_error(tiny_run, tmp_path):
    root, _ = tiny_run
    prep = prepare(root / "run")
    with pytest.raises(VcmError, match="--force"):
        StageEnd.load(tmp_path / "gone" / STATE, prep.fresh_model())
    torch.save({"model": {"nothing": torch.zeros(1)}, "quantizers": {}, "lambda": 1.0, "seconds": 1.0}, tmp_path / STATE)
    with pytest.raises(VcmError, match="does not hold the end state"):
        StageEnd.load(tmp_path / STATE, prep.fresh_model())
    (tmp_path / STATE).write_bytes(b"not a torch file")
    with pytest.raises(VcmError):
        StageEnd.load(tmp_path / STATE, prep.fresh_model())


def test_ctc_points_of_a_chained_fit_link_in_lambda_order():
    """A plain fit's λ points form a chain when its preset says (hinerv-demo) or its section does: the
    smallest λ first (it trains the fit), each later one naming the one it starts from in its own id; an
    affine or a match point stays outside the chain."""
    from vcm import codecs

    hinerv = codecs.get("hinerv")
    seq = {"name": "carphone"}
    fit = {"preset": "hinerv-demo", "rate_aware": False, "chain": True,
           "points": [{"lambda": 4}, {"prune": 0.4}, {"lambda": 0.1}, {"match": "hevc"}, {"lambda": 1}]}
    pts = hinerv.points({"fits": [fit]}, seq)
    ids = [pid for pid, _ in pts]
    assert ids == ["hinerv-demo_rd_l0p1", "hinerv-demo_rd_l1p0_from_l0p1", "hinerv-demo_rd_l4p0_from_l1p0",
                   "hinerv-demo_pr0p4_b8", "hinerv-demo_rd_match_hevc"]
    assert [p.get("warm_from") for _, p in pts] == [None, ids[0], ids[1], None, None]
    assert [p.get("keeps_state", False) for _, p in pts] == [True, True, False, False, False]
    assert all("chain" not in p["fit"] for _, p in pts)
    unchained = hinerv.points({"fits": [{**fit, "chain": False}]}, seq)
    assert [pid for pid, _ in unchained][0] == "hinerv-demo_rd_l4p0"
    assert not any(p.get("warm_from") for _, p in unchained)
    from_preset = hinerv.points({"fits": [{k: v for k, v in fit.items() if k != "chain"}]}, seq)  # hinerv-demo's rd_chain
    assert [pid for pid, _ in from_preset] == ids
    one = {k: v for k, v in fit.items() if k != "chain"}
    single = hinerv.points({"fits": [{**one, "points": [{"lambda": 1}]}]}, seq)  # one λ: nothing to chain
    assert single[0][1].get("keeps_state") is None
    with pytest.raises(VcmError, match="chain: true runs two or more λ points one after another; this fit has 1$"):
        hinerv.points({"fits": [{**fit, "points": [{"lambda": 1}, {"prune": 0.4}]}]}, seq)  # asked, and ignored
    with pytest.raises(VcmError, match="rate_aware: false"):
        hinerv.points({"fits": [{**fit, "rate_aware": True}]}, seq)
    with pytest.raises(VcmError, match="chain must be true or false"):
        hinerv.points({"fits": [{**fit, "chain": "yes"}]}, seq)


def test_a_chained_point_waits_for_the_point_before_it_not_only_for_the_network():
    from vcm.ctc.run import Schedule

    def spec(pid, fit, after=None):
        return {"sequence": "s", "codec": "hinerv", "point_id": pid, "point": {"fit_key": fit, "warm_from": after}}

    specs = [spec("L1", "large"), spec("L2", "large", "L1"), spec("S1", "small"), spec("S2", "small", "S1"),
             {"sequence": "s", "codec": "hevc", "point_id": "q1", "point": {}}]
    sched = Schedule(specs, jobs=2)
    large, small = sched.take(1), sched.take(1)
    assert (large["point_id"], small["point_id"]) == ("L1", "S1")
    sched.fitted(large)
    sched.fitted(small)
    assert sched.take(1)["point_id"] == "q1" and sched.take(1) is None  # L2 and S2 wait for L1 and S1's stages
    sched.finished(small)
    assert sched.take(1)["point_id"] == "S2" and sched.take(1) is None
    sched.finished(large)
    assert sched.take(1)["point_id"] == "L2" and sched.take(1) is None


def test_cli_chain_flag(tiny_run, tmp_path):
    """--chain on several --lambda: the larger λ's report names the stage it started from, as does the
    table; --chain has no meaning with rate control and is refused in one line."""
    import json

    from tests.conftest import run_main

    root, _ = tiny_run
    proc = run_main("compress", root / "run", "--lambda", "1", "--lambda", "0.1", "--rd-steps", "3", "--chain",
                    "--out", tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    one, tenth = json.loads(proc.stdout)
    assert one["start"] == {"lambda": 0.1} and "start" not in tenth
    from vcm.cli.compress import _report_rows

    rows = dict(_report_rows(one))
    assert "from λ 0.1's stage" in rows["method"] and "earlier stages" in rows["encode time"]
    assert "pruned" not in rows["method"]
    assert "40% pruned" in dict(_report_rows({**one, "prune": 0.4}))["method"]  # --prune composes with --lambda
    # a file far from the training's estimate (a stage too short for its λ) says what to do about it
    far, near = ({**one, "estimate_bytes": one["bytes"] / (1 + e), "estimate_error": e} for e in (-0.4, -0.02))
    hint = [text for _, text in _report_rows(far) if "more --rd-steps" in text]
    assert len(hint) == 1 and not any("more --rd-steps" in text for _, text in _report_rows(near))
    refused = run_main("compress", root / "run", "--target-kbps", "5", "--chain", "--out", tmp_path / "t.nerv")
    assert refused.returncode == 1 and "--chain" in refused.stderr and "Traceback" not in refused.stderr


def test_streams_of_other_options_never_share_a_default_file(tiny_run, tmp_path):
    """`vcm compress RUN --lambda 2 --rd-steps 10` and then `--lambda 2 --rd-steps 20` wrote one file, the second
    replacing the first without a word, and so did a chained λ and the same λ from the fit. A default name now
    carries every option given that changes the stream, and a chained stream the λ it started from."""
    import shutil

    from tests.conftest import run_main

    root, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    for args in (["--lambda", "2", "--rd-steps", "2"], ["--lambda", "2", "--rd-steps", "3"],
                 ["--lambda", "2", "--rd-steps", "2", "--seed", "1"], ["--lambda", "0.5", "--lambda", "2",
                                                                      "--rd-steps", "2", "--chain"],
                 ["--prune", "0.2", "--bits", "6", "--finetune-epochs", "1"], ["--prune", "0.2", "--bits", "6",
                                                                               "--group-bits", "head=8"]):
        proc = run_main("compress", run, *args)
        assert proc.returncode == 0, proc.stderr[-2000:]
    streams = sorted(p.name.split("_", 1)[1] for p in run.glob("*.nerv"))  # less the clip's name
    assert streams == ["p20_b6_ft1.nerv", "p20_b6_head8.nerv", "rd_l0p5_s2.nerv", "rd_l2_s2.nerv",
                       "rd_l2_s2_from_l0p5.nerv", "rd_l2_s2_seed1.nerv", "rd_l2_s3.nerv"], streams
    proc = run_main("compress", run, "--lambda", "0.5", "--lambda", "2", "--rd-steps", "2", "--chain",
                    "--out", tmp_path / "both")  # the same names in a folder of the user's
    assert proc.returncode == 0 and sorted(p.name for p in (tmp_path / "both").glob("*.nerv")) == [
        "run_rd_l0p5_s2.nerv", "run_rd_l2_s2_from_l0p5.nerv"]


def test_a_chained_point_whose_previous_point_ran_before_starts_at_once():
    """A curve run again where only a later link is left to do (the one before it reused from disk):
    nothing is left waiting for a point that this run will never finish."""
    from vcm.ctc.run import Schedule

    specs = [{"sequence": "s", "codec": "hinerv", "point_id": pid, "point": {"fit_key": "f", "warm_from": after}}
             for pid, after in [("L1", None), ("L3", "L2")]]  # L2 finished in an earlier run
    sched = Schedule(specs, jobs=2)
    first = sched.take(2)
    sched.fitted(first)
    assert sched.take(1)["point_id"] == "L3"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "ray"])
def test_a_chained_curve_runs_through_the_ctc_runner_in_order(tmp_path, backend):
    """A tiny chained curve through the CTC runner, on two jobs: every link runs after the one it starts
    from (its report names that λ), the chain's state is handed on on disk, and a rerun with the later link
    left to do starts it from the earlier link's saved end."""
    if backend == "ray":
        pytest.importorskip("ray")
    from tests.conftest import tiny_ctc_config
    from vcm.ctc.run import run

    cfg = tiny_ctc_config(tmp_path, "{steps: 8, batch: 2, lr: 3.0e-3, rd_steps: 3, rd_chain: true}",
                          "  nerv:\n    fits: [{{preset: {preset}, rate_aware: false, "
                          "points: [{{lambda: 4}}, {{lambda: 0.1}}, {{lambda: 1}}]}}]\n")
    result = run(cfg, tmp_path / "out", jobs=2, backend=backend)
    assert result["failed"] == 0, [r.get("error") for r in result["rows"]]
    rows = {r["point"]: r for r in result["rows"]}
    assert set(rows) == {"tiny_rd_l0p1", "tiny_rd_l1p0_from_l0p1", "tiny_rd_l4p0_from_l1p0"}
    assert rows["tiny_rd_l4p0_from_l1p0"]["settings"]["method"] == "rate-distortion, from λ 1's stage"
    assert rows["tiny_rd_l4p0_from_l1p0"]["encode_seconds"] > rows["tiny_rd_l4p0_from_l1p0"]["compress_seconds"]
    # the report's experiment table: a chain's points were all made one way, the head link included
    from vcm.ctc.tables import experiment_lines

    assert all(r["settings"].get("chained") for r in rows.values())
    assert [v for k, v in experiment_lines(result["rows"], "hevc", "psnr_y", frozenset()) if k == "nerv"] == \
        [rows["tiny_rd_l0p1"]["experiment"]]
    assert "its λ points chained" in rows["tiny_rd_l0p1"]["experiment"]
    points = tmp_path / "out" / "points" / "tiny" / "nerv"
    last = points / "tiny_rd_l4p0_from_l1p0"
    first_bytes = (last / "stream.nerv").read_bytes()
    (last / "result.json").unlink()  # the last link alone is left to do: it starts from λ 1's saved end
    again = run(cfg, tmp_path / "out", jobs=2, backend=backend)
    assert again["ran"] == 1 and again["failed"] == 0
    assert (last / "stream.nerv").read_bytes() == first_bytes
    # a link changed in place runs again, and so does every link after it, which starts from its end
    from vcm.ctc.run import preview

    edited = tmp_path / "edited.yaml"
    edited.write_text(cfg.read_text().replace("{lambda: 1}]", "{lambda: 1, rd_steps: 4}]"))
    states = {p["point"]: p["state"] for p in preview(edited, tmp_path / "out", backend=backend)["plan"]}
    assert states == {"tiny_rd_l0p1": "finished", "tiny_rd_l1p0_from_l0p1": "changed",
                      "tiny_rd_l4p0_from_l1p0": "changed"}
