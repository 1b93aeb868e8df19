"""The CTC report from a results folder of known points (no encoding: fast and exact)."""

import csv
import html
import json
import os
import re
from pathlib import Path

import pytest

from tests.conftest import fails_after, run_cli, run_main
from vcm.ctc.report import make_report

PROV = {"vcm": "0.1.0", "commit": "abc", "torch": "2.x", "cuda": None, "python": "3.11", "device": "cpu (2 threads)",
        "host": "h", "platform": "Linux", "date": "2026-11-23T10:00:00+00:00", "command": "vcm ctc run x"}


def write_point(out, codec, point, kbps, psnr_y, qp=None, curve=None, settings=None, sequence="clip", **extra):
    row = {"status": "ok", "sequence": sequence, "class": None, "codec": codec, "curve": curve or codec, "point": point,
           "qp": qp, "fps": 30000 / 1001, "frames": 10, "source_frames": [0, 10], "width": 176, "height": 144,
           "bytes": int(kbps * 1000 / 8 * 10 / 29.97), "kbps": kbps, "bpp": kbps * 1000 / (29.97 * 176 * 144),
           "psnr": psnr_y - 1.5, "psnr_y": psnr_y, "psnr_yuv": psnr_y + 0.8, "ms_ssim": None, "map": None, "ap50": None,
           "detections": None, "encode_seconds": 3.0, "decode_seconds": 0.5, "bitstream": "x", "annotations": None,
           "settings": settings, "provenance": PROV, **extra}
    folder = out / "points" / row["sequence"] / codec / point
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(row))


@pytest.fixture
def results(tmp_path):
    hevc = {"encoder": "x265 (ffmpeg libx265)", "preset": "medium", "config": "random access", "intra_period": 32,
            "bit_depth": 10, "ffmpeg": "ffmpeg version 7"}
    for qp, kbps, q in ((37, 80.0, 34.0), (41, 45.0, 32.0), (45, 25.0, 30.0), (49, 14.0, 28.0)):
        write_point(tmp_path, "hevc", f"qp{qp}", kbps, q, qp=qp, settings=hevc)
    # Overlaps HEVC over most of its quality range: a figure to show.
    for i, (kbps, q) in enumerate(((100.0, 33.5), (60.0, 31.8), (33.0, 30.1), (19.0, 28.4))):
        write_point(tmp_path, "hinerv", f"s_rd_l{i + 1}", kbps, q, curve="hinerv-rd", fit_seconds=120.0,
                    compress_seconds=9.0, settings={"representation": "hinerv", "loss": "nerv", "fit": {"preset": "hinerv-s"},
                                                    "method": "rate-distortion"})
    # Barely overlaps: its BD-rate must be withheld.
    for i, (kbps, q) in enumerate(((300.0, 29.5), (200.0, 28.5), (150.0, 27.5), (100.0, 26.0))):
        write_point(tmp_path, "nerv", f"demo_pr{i}_b8", kbps, q, fit_seconds=100.0, compress_seconds=5.0)
    return tmp_path


def test_report_flags_low_overlap_and_leaves_out_empty_sections(results):
    r = make_report(results, anchor="hevc")
    by = {b["codec"]: b for b in r["bd"]}
    assert r["metric"] == "psnr_y"
    assert by["hinerv-rd"]["overlap_psnr_y"] > 0.75 and not by["hinerv-rd"]["withheld_psnr_y"]
    assert by["nerv"]["overlap_psnr_y"] < 0.75 and by["nerv"]["withheld_psnr_y"]
    md = (results / "report.md").read_text()
    nerv_line = next(line for line in md.splitlines() if line.startswith("| clip | nerv |"))
    assert "withheld (overlap" in nerv_line
    hinerv_line = next(line for line in md.splitlines() if line.startswith("| clip | hinerv-rd |"))
    assert "% (overlap" in hinerv_line and "withheld" not in hinerv_line
    assert "Table 1" not in md and "mAP %" not in md and "Failed points" not in md  # nothing to show there
    assert "without a result" not in md and r["unfinished"] == 0
    assert "x265 (ffmpeg libx265), preset medium, random access, intra period 32, 10-bit" in md
    assert "torch 2.x" in md and "commit abc" in md
    assert "| 3.0 | 120.0 | 0.5 |" in md  # encode seconds and the fit's share of them, side by side
    assert "MS-SSIM is left out (–) for frames under 161 px on a side" in md  # 176×144: too small for it
    page = (results / "report.html").read_text()
    assert page.count("<table>") >= 3 and "**" not in page and "`" not in page  # rendered, not pasted
    assert "data:image/png;base64," in page


def test_summary_csv_is_clean(results):
    make_report(results, anchor="hevc")
    with open(results / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    hevc = [r for r in rows if r["codec"] == "hevc"]
    nerv = [r for r in rows if r["codec"] == "nerv"]
    assert all(r["qp"].isdigit() for r in hevc) and all(r["qp"] == "" for r in nerv)
    assert {r["rate_point"] for r in nerv} == {f"demo_pr{i}_b8" for i in range(4)}
    assert {r["fps"] for r in rows} == {"29.97"}
    assert all(float(r["psnr_yuv"]) > 0 for r in rows)


def test_rd_plot_is_large_and_every_curve_has_its_own_marker(results):
    from PIL import Image

    from vcm.ctc.plots import curve_styles

    make_report(results, anchor="hevc")
    with Image.open(results / "plots" / "clip.png") as im:
        assert im.size[0] >= 1000 and im.size[1] >= 700
    styles = curve_styles(["hevc", "nerv", "hinerv-rd", "vvc"])
    assert len({(s["marker"], s["linestyle"]) for s in styles.values()}) == 4


def test_other_quality_metrics_and_a_bad_one(results):
    assert make_report(results, anchor="hevc", metric="psnr")["metric"] == "psnr"
    proc = run_main("ctc", "report", results, "--anchor", "hevc", "--metric", "ssim")
    assert proc.returncode == 1 and "--metric must be one of" in proc.stderr


def test_annotations_for_results_that_pool_no_class_map_are_refused(results, tmp_path):
    """--annotations is the SFU-HW ground truth class mAP is pooled from: given to results without a point that
    scored an SFU-HW sequence's detections, it was ignored without a word (tests/test_pooled.py: where it is read)."""
    proc = run_main("ctc", "report", results, "--annotations", tmp_path)
    assert proc.returncode == 1 and proc.stderr == ("error: --annotations does not apply to these results (it is the "
                                                    "SFU-HW ground truth that class mAP is pooled from, and no point "
                                                    "scored an SFU-HW sequence's detections)\n"), proc.stderr
    assert not (results / "report.md").exists()


def test_a_results_folder_that_is_missing_or_empty_is_named_as_such(tmp_path):
    """A mistyped folder was reported as "holds no CTC results; run vcm ctc run first"."""
    from vcm.errors import VcmError

    with pytest.raises(VcmError, match="nope does not exist; name the folder vcm ctc run wrote"):
        make_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VcmError, match="empty holds no CTC results; run vcm ctc run first"):
        make_report(tmp_path / "empty")


def test_an_anchor_the_results_do_not_hold_is_refused_and_the_default_is_one_they_hold(results):
    """`--anchor foo` replaced the last report with one against foo, without a single BD figure; with no
    --anchor, a results folder that holds HEVC but not VVC gets its BD figures against HEVC."""
    make_report(results, anchor="hevc")
    before = (results / "report.md").read_text()
    proc = run_main("ctc", "report", results, "--anchor", "foo")
    assert proc.returncode == 1 and "--anchor foo: the results hold no such curve (curves: " in proc.stderr
    assert "hevc" in proc.stderr and "Traceback" not in proc.stderr
    assert (results / "report.md").read_text() == before
    assert make_report(results)["bd"]  # the fixture's anchor is HEVC alone: measured against it, not against no VVC
    assert json.loads((results / "bd.json").read_text())["anchor"] == "hevc"


def test_report_renders_in_headless_chromium(results, tmp_path):
    from vcm.ctc.screenshot import find_chromium

    if find_chromium() is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    proc = run_main("ctc", "report", results, "--anchor", "hevc", "--screenshot", tmp_path / "shot.png", "--json")
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    with Image.open(tmp_path / "shot.png") as im:
        assert im.size == (1500, 2400)
        colours = len(set(im.convert("RGB").resize((150, 240)).getdata()))
    assert colours > 50  # a rendered page with a plot, not a blank or error screen


def test_a_damaged_result_row_is_listed_as_failed_and_run_again_not_a_traceback(results):
    """A result.json cut short, replaced by something else or holding text where a rate goes stopped
    `vcm ctc report` with a JSON or type traceback; it is now a failed point naming the file and the fault,
    and `vcm ctc run` treats it as not run."""
    from vcm.ctc.points import read_result

    points = results / "points" / "clip"
    cut = points / "hevc" / "qp37" / "result.json"
    cut.write_text(cut.read_text()[:40])
    (points / "hevc" / "qp41" / "result.json").write_text("[]")
    wrong = points / "nerv" / "demo_pr0_b8" / "result.json"
    wrong.write_text(json.dumps({**json.loads(wrong.read_text()), "kbps": "abc"}))
    r = make_report(results, anchor="hevc")
    assert r["points"] == 9 and r["failed"] == 3
    md = (results / "report.md").read_text()
    assert "qp37/result.json is damaged (not readable JSON" in md and "qp41/result.json is damaged (not an object)" in md
    assert "demo_pr0_b8/result.json is damaged (field 'kbps' is not a number above 0)" in md
    assert read_result(cut.parent) is None and read_result(wrong.parent) is None  # ctc run runs them again
    assert read_result(points / "hevc" / "qp45")["kbps"] == 25.0


@pytest.mark.parametrize("edit, fault", [  # each was read unchecked (most stopped vcm ctc report with a traceback)
    ({"breakdown": [{"part": "grids", "bytes": "many", "share": 0.5}]}, "field 'breakdown' is not a list of parts"),
    ({"ground_truth": "sfu-hw"}, "field 'ground_truth' is not a mapping with its source and kind as text"),
    ({"provenance": {"vcm": "0.1", "date": 5}}, "field 'provenance' has no date as text"),
    ({"encode_seconds": None}, "field 'encode_seconds' is not a number"),
    ({"label": ["l1"]}, "field 'label' is not text"),
    ({"source_key": ["a"]}, "field 'source_key' is not text"),  # vcm ctc compare made a set of them
    ({"width": None}, "field 'width' is not a whole number above 0"),
    ({"source_frames": [0, "end"]}, "field 'source_frames' is not [first, end]"),
    ({"rate_control": {"target": {"kbps": 20.0}, "lambda": 1.0, "trials": [{"lambda": "x"}]}},
     "field 'rate_control' is not a search's record"),
    ({"rate_control": {"target": {"kbps": 20.0}, "lambda": 1.0, "hit": False, "trials": [{"lambda": 1.0, "bytes": 9}]}},
     "field 'rate_control' is not a search's record"),  # a search's verdict without the goal it was against
])
def test_a_result_row_is_damaged_when_any_field_the_report_reads_has_another_type(results, edit, fault):
    from vcm.ctc.points import read_result

    row = results / "points" / "clip" / "hinerv" / "s_rd_l1" / "result.json"
    row.write_text(json.dumps({**json.loads(row.read_text()), **edit}))
    r = make_report(results, anchor="hevc")
    assert r["failed"] == 1 and f"s_rd_l1/result.json is damaged ({fault}" in md_words(results / "report.md")
    assert read_result(row.parent) is None
    from vcm.ctc.tables import collect

    assert [r["point"] for r in collect(results)[1]] == ["s_rd_l1"]  # vcm ctc compare reads rows through it too


def test_points_without_a_result_are_listed_not_silently_left_out_of_the_curves(results):
    """A point stopped mid-stage (its state kept) and one killed before any state: the curves leave them out,
    and the report and `vcm ctc report` say so instead of showing a curve that looks whole."""

    stopped = results / "points" / "clip" / "hinerv" / "s_rd_l5"
    stopped.mkdir()
    (stopped / "stream.nerv.partial.pt").write_bytes(b"state")
    (results / "points" / "clip" / "hinerv" / "s_rd_l6").mkdir()
    r = make_report(results, anchor="hevc")
    assert r["points"] == 12 and r["failed"] == 0 and r["unfinished"] == 2
    md = (results / "report.md").read_text()
    assert "## Points without a result yet" in md
    assert "| clip | hinerv | s_rd_l5 | a stage stopped in it |" in md and "| clip | hinerv | s_rd_l6 | no result |" in md
    proc = run_main("ctc", "report", results, "--anchor", "hevc")
    assert proc.returncode == 0 and "12 (0 failed, 2 without a result yet)" in " ".join(proc.stdout.split())
    from vcm.errors import VcmError

    (results / "fresh" / "points" / "clip" / "hevc" / "qp37").mkdir(parents=True)
    with pytest.raises(VcmError, match="holds no finished CTC point yet \\(1 without a result"):
        make_report(results / "fresh")


def test_a_report_made_again_keeps_the_last_reports_settings_unless_told_otherwise(results):
    """`vcm ctc report runs/demo` after the demo wrote a report against VVC with no curve made monotone, where
    the demo's was against HEVC with its mAP curves monotone: the same folder, two different reports."""
    write_point(results, "vvc", "qp40", 30.0, 31.0, qp=40)  # a VVC curve, the default anchor when held
    make_report(results, anchor="hevc", monotone_map=True)  # as vcm demo makes its report
    first = json.loads((results / "bd.json").read_text())
    proc = run_main("ctc", "report", results)
    assert proc.returncode == 0, proc.stderr
    said = " ".join(proc.stderr.split())
    assert "as the last report of" in said and "anchor hevc" in said and "mAP curves made monotone" in said
    again = json.loads((results / "bd.json").read_text())
    assert (again["anchor"], again["monotone"], again["metric"]) == ("hevc", ["map"], "psnr_y") == \
        (first["anchor"], first["monotone"], first["metric"])
    # an option given changes that setting alone; the others stay as they were
    assert run_main("ctc", "report", results, "--metric", "psnr", "--no-monotone").returncode == 0
    changed = json.loads((results / "bd.json").read_text())
    assert (changed["anchor"], changed["monotone"], changed["metric"]) == ("hevc", [], "psnr")
    proc = run_main("ctc", "report", results, "--monotone-map", "--monotone")
    assert proc.returncode == 1 and "goes with neither --monotone nor --no-monotone" in proc.stderr
    # an edited bd.json is no last report (a list for the anchor was a TypeError): the defaults
    (results / "bd.json").write_text(json.dumps({**changed, "anchor": ["hevc"]}))
    assert run_main("ctc", "report", results).returncode == 0
    assert json.loads((results / "bd.json").read_text())["anchor"] == "vvc"
    # a folder with no report of its own gets the defaults
    (results / "bd.json").unlink()
    assert run_main("ctc", "report", results).returncode == 0
    assert json.loads((results / "bd.json").read_text())["anchor"] == "vvc"


@pytest.mark.parametrize("options, message", [
    (("--monotone", "--monotone-map"), "--monotone-map fits only the mAP curves; --monotone fits every curve; give one"),
    (("--points", "--json"), "--points does not apply to --json (the JSON holds each curve's base_points and "
                             "new_points)"),
])
def test_ctc_compare_refuses_an_option_the_other_makes_unread(results, tmp_path_factory, options, message):
    """Each pair was accepted and one of the two did nothing (vcm ctc report refused the first already)."""
    import shutil

    new = shutil.copytree(results, tmp_path_factory.mktemp("new"), dirs_exist_ok=True)
    r = run_main("ctc", "compare", results, new, *options)
    assert r.returncode == 1 and r.stderr == f"error: {message}\n", r.stderr


def test_ctc_compare_gives_each_curve_of_a_change_against_the_same_curve_before(tmp_path):
    """How every codec change in docs/ was judged, by one-off scripts: the same codec's curve on the same clip,
    before and after, as a BD-rate with its overlap. `vcm ctc compare BASE NEW` does it for every curve."""
    from vcm.ctc.compare import compare
    from vcm.errors import VcmError

    base, new = tmp_path / "base", tmp_path / "new"
    points = ((80.0, 34.0, 0.61), (45.0, 32.0, 0.60), (25.0, 30.0, 0.52), (14.0, 28.0, 0.40))
    for i, (kbps, q, m) in enumerate(points):
        write_point(base, "hinerv", f"p{i}", kbps, q, curve="hinerv-rd", map=m)
        write_point(new, "hinerv", f"p{i}", kbps * 0.8, q, curve="hinerv-rd", map=m)  # the same pictures in 20 % fewer bits
        write_point(base, "hevc", f"qp{i}", kbps, q)
        write_point(new, "hevc", f"qp{i}", kbps, q, source_key="bbbb")  # the base's rows, from before it: compared
        write_point(new, "vvc", f"qp{i}", kbps, q)  # a curve the base has not
        write_point(base, "nerv", f"n{i}", kbps, q, source_frames=[0, 10])
        write_point(new, "nerv", f"n{i}", kbps, q, source_frames=[5, 15])  # another clip: not compared
        write_point(base, "nerv-rd", f"r{i}", kbps, q, curve="nerv-rd", source_key="aaaa")
        write_point(new, "nerv-rd", f"r{i}", kbps * 0.8, q, curve="nerv-rd", source_key="bbbb")  # another file too
        write_point(base, "hinerv", f"other{i}", kbps, q, curve="hinerv-rd", sequence="clip2")
        write_point(new, "hinerv", f"other{i}", kbps * 1.1, q, curve="hinerv-rd", sequence="clip2")  # 10 % more here
    r = compare(base, new)
    by = {c["curve"]: c for c in r["curves"] if c["sequence"] == "clip"}
    assert by["hinerv-rd"]["bd_rate_psnr_y"] == pytest.approx(-20.0, abs=0.01)
    assert by["hinerv-rd"]["bd_rate_map"] == pytest.approx(-20.0, abs=0.01)
    assert by["hinerv-rd"]["overlap_psnr_y"] == 1.0 and not by["hinerv-rd"]["withheld_psnr_y"]
    assert by["hevc"]["bd_rate_psnr_y"] == pytest.approx(0.0, abs=1e-9) and by["hevc"]["note_map"] == "not measured"
    assert by["vvc"]["note"] == "only in new" and by["vvc"]["only_in"] == "new"
    assert by["nerv"]["note"] == "other frames (base 176x144 frames 0:10, new 176x144 frames 5:15)"
    assert by["nerv-rd"]["note"] == "another video file of the same name, size and frames (its fingerprint differs)"
    assert by["hinerv-rd"]["new_points"][0] == [pytest.approx(11.2), 28.0]  # by rate, as the curves
    proc = run_main("ctc", "compare", base, new, "--points")
    text = " ".join(proc.stdout.split())
    assert proc.returncode == 0 and "hinerv-rd │ -20.0 % (overlap 100 %) │ -20.0 % (overlap 100 %)" in text, proc.stdout
    assert "clip hinerv-rd, new: 11.20 @ 28.00 · 20.00 @ 30.00 · 36.00 @ 32.00 · 64.00 @ 34.00" in text
    # a curve one side lacks is one line under the table, not a row each (JSON keeps the row)
    assert "not compared, only in NEW: vvc (on clip)" in text and "│ only in new" not in text
    # per curve, over the sequences: where NEW needs fewer bits, and the mean of the figures shown
    summary = {c["curve"]: c for c in r["summary"]}
    assert set(summary) == {"hinerv-rd", "hevc"}
    assert (summary["hinerv-rd"]["fewer_bits"], summary["hinerv-rd"]["sequences"]) == (1, 2)
    assert summary["hinerv-rd"]["mean_bd_rate"] == pytest.approx(-5.0, abs=0.01) and summary["hevc"]["fewer_bits"] == 0
    assert "hinerv-rd: fewer bits (psnr_y) on 1 of 2 sequences, mean -5.0 %" in text
    with pytest.raises(VcmError, match="are one folder"):
        compare(base, base)
    with pytest.raises(VcmError, match="holds no CTC results"):
        compare(base, tmp_path)
    with pytest.raises(VcmError, match="--metric must be one of"):
        compare(base, new, metric="ssim")


def test_ctc_compare_gives_no_map_figure_for_curves_scored_against_other_truth_or_by_another_detector(tmp_path):
    """Two curves' mAP scored against other ground truth (a corrected annotation file, pseudo ground truth at another
    score) or by another detector setting made a BD-rate that measured that change as if it were the codec's."""
    from vcm.ctc.compare import compare

    base, new = tmp_path / "base", tmp_path / "new"
    yolo = {"name": "yolov7", "weights": "/data/w/yolov7.pt", "img_size": 640, "conf_thres": 0.001}
    sfu = {"kind": "sfu-hw", "source": "SFU-HW ground truth BQSquare_416x240_60_val.json"}
    pseudo = {"kind": "pseudo", "source": "pseudo ground truth: yolov7 on the original clip.yuv, detections with "
                                          "score ≥ 0.5"}
    cases = {  # curve: (base's scoring, new's scoring, the note; None: compared)
        "same": ({}, {"detector_settings": {**yolo, "weights": "/elsewhere/yolov7.pt"}}, None),
        "old-rows": ({"truth_key": None}, {}, None),
        "annotations": ({}, {"truth_key": "bbbb"}, "scored against other ground truth (the annotations' fingerprint "
                                                   "differs)"),
        "kind": ({}, {"ground_truth": pseudo}, "scored against other ground truth (sfu-hw, now pseudo)"),
        "threshold": ({"ground_truth": pseudo}, {"ground_truth": {**pseudo, "source": pseudo["source"][:-3] + "0.3"}},
                      "scored against other pseudo ground truth (another detector or score threshold on the "
                      "original)"),
        "detector": ({}, {"detector_settings": {**yolo, "img_size": 1280}},
                     "scored by other detector settings (img_size 640, now 1280)"),
    }
    points = ((80.0, 34.0, 0.61), (45.0, 32.0, 0.60), (25.0, 30.0, 0.52), (14.0, 28.0, 0.40))
    for curve, (was, now, _) in cases.items():
        for i, (kbps, q, m) in enumerate(points):
            common = {"map": m, "ground_truth": sfu, "truth_key": "aaaa", "detector_settings": yolo}
            write_point(base, curve, f"p{i}", kbps, q, **{**common, **was})
            write_point(new, curve, f"p{i}", kbps * 0.8, q, **{**common, **now})
    by = {c["curve"]: c for c in compare(base, new)["curves"]}
    for curve, (_, _, note) in cases.items():
        assert by[curve]["bd_rate_psnr_y"] == pytest.approx(-20.0, abs=0.01), curve  # the picture's figure stays
        if note is None:
            assert by[curve]["bd_rate_map"] == pytest.approx(-20.0, abs=0.01) and by[curve]["note_map"] is None, curve
        else:
            assert by[curve]["bd_rate_map"] is None and by[curve]["note_map"] == note, curve
    text = " ".join(run_cli("ctc", "compare", base, new, env={"COLUMNS": "250"}).stdout.split())  # a line a row
    row = "│ detector │ -20.0 % (overlap 100 %) │ n/a (scored by other detector settings (img_size 640, now 1280))"
    assert row in text, text


def test_ctc_compare_judges_a_change_over_several_starts_against_their_spread(tmp_path):
    """A change was kept only with a gain on every clip beyond that clip's spread between starts, worked out by
    one-off scripts from runs at two or three seeds. `vcm ctc compare B1 N1 B2 N2` pairs the runs of each start,
    takes folders of results folders as benchmarks/dev_clips.py writes them, and says it per curve."""
    from vcm.ctc.compare import compare
    from vcm.ctc.judge import judge
    from vcm.errors import VcmError

    points = ((80.0, 34.0), (45.0, 32.0), (25.0, 30.0), (14.0, 28.0))
    rates = {"gains": ((1.0, 1.04), (0.80, 0.83)),  # (base at starts 0, 1), (new at starts 0, 1)
             "noise": ((1.0, 1.10), (0.95, 1.02)),  # a 5–7 % gain inside a 10 % spread
             "far": ((1.0, 1.0), (0.5, 0.5)),
             "apart": ((1.0, 1.0), (0.8, 0.8))}  # the starts' curves 1.2 dB apart: their own figures withheld
    for clip, ((b0, b1), (n0, n1)) in rates.items():
        for i, (kbps, q) in enumerate(points):
            for side, start, factor in (("base", 0, b0), ("base", 1, b1), ("new", 0, n0), ("new", 1, n1)):
                shift = 6.0 if (clip, side, start) == ("far", "new", 0) else 0.0  # overlap too small to judge
                shift += 1.2 if (clip, start) == ("apart", 1) else 0.0
                write_point(tmp_path / f"{side}{start}" / clip, "hinerv", f"p{i}", kbps * factor, q + shift,
                            curve="hinerv-rd")
                if side == "base" and clip != "far":  # anchors run with the base only (a run with --codecs hinerv)
                    write_point(tmp_path / f"{side}{start}" / clip, "hevc", f"qp{i}", kbps, q)
    pairs = [(tmp_path / "base0", tmp_path / "new0"), (tmp_path / "base1", tmp_path / "new1")]
    r = judge(pairs)
    by = {c["set"]: c for c in r["curves"] if c["curve"] == "hinerv-rd"}
    assert [f["bd_rate"] for f in by["gains"]["pairs_psnr_y"]] == [pytest.approx(-20.0, abs=0.01),
                                                                   pytest.approx(-20.19, abs=0.01)]
    assert (by["gains"]["spread_base"], by["gains"]["spread_new"]) == (pytest.approx(4.0, abs=0.01),
                                                                       pytest.approx(3.75, abs=0.01))
    assert by["gains"]["verdict"] == "fewer bits beyond the spread" and by["gains"]["spread"] == pytest.approx(4.0, abs=0.01)
    assert by["noise"]["verdict"] == "within the spread" and by["noise"]["spread"] == pytest.approx(10.0, abs=0.01)
    assert by["far"]["verdict"] == "not judged" and by["far"]["pairs_psnr_y"][0]["withheld"]
    # a start's curve withheld against the first start's still measures the spread (its extrapolation: it can only
    # widen it), instead of leaving the curve unjudged; here it is wider than the 20 % gain
    own = compare(tmp_path / "base0" / "apart", tmp_path / "base1" / "apart")["curves"][0]
    assert own["withheld_psnr_y"] and own["bd_rate_psnr_y"] < -25
    assert by["apart"]["spread"] == pytest.approx(abs(own["bd_rate_psnr_y"]))
    assert "withheld" in by["apart"]["spread_note"]
    assert by["apart"]["verdict"] == "within the spread" and by["apart"]["pairs_psnr_y"][1]["withheld"] is False
    (summary,) = r["summary"]
    assert (summary["judged"], summary["fewer bits beyond the spread"], summary["within the spread"],
            summary["not judged"]) == (4, 1, 2, 1)
    proc = run_main("ctc", "compare", *(f for pair in pairs for f in pair))
    text = " ".join(proc.stdout.split())
    assert proc.returncode == 0 and "-20.0 %" in text and "-20.2 %" in text and "±4.0 %" in text, proc.stdout
    assert "hinerv-rd: fewer bits beyond the spread on 1 of 4 curves judged (0 more bits beyond it, 2 within it, " \
           "1 not judged)" in text and "±29.5 %" in text and "(counts a" in text
    assert "not compared, only in BASE: hevc (on apart, gains, noise)" in text, proc.stdout
    assert "│ only in base" not in text
    assert {(c["note"], c["only_in"]) for c in r["curves"] if c["curve"] == "hevc"} == {("only in base", "base")}
    one = run_main("ctc", "compare", tmp_path / "base0", tmp_path / "new0")  # a folder of results folders, one pair
    said = " ".join(one.stdout.split())
    assert one.returncode == 0 and "one start" in said and "one pair gives no spread to judge against" in said, said
    listed = run_main("ctc", "compare", *(f for pair in pairs for f in pair), "--points")  # it printed a table, then
    assert listed.returncode == 1 and "--points lists the curves of one pair" in listed.stderr  # a note that it had not
    odd = run_main("ctc", "compare", tmp_path / "base0", tmp_path / "new0", tmp_path / "base1")
    assert odd.returncode == 1 and "compare takes folders in pairs, BASE NEW [BASE NEW ...]; got 3 folders" in odd.stderr
    (tmp_path / "empty").mkdir()
    with pytest.raises(VcmError, match="holds no CTC results, nor folders that do"):
        judge([(tmp_path / "base0", tmp_path / "empty")])
    (tmp_path / "elsewhere" / "other").mkdir(parents=True)
    (tmp_path / "elsewhere" / "other" / "points").mkdir()
    with pytest.raises(VcmError, match="share no results folder by name"):
        judge([(tmp_path / "base0", tmp_path / "elsewhere")])


def test_the_experiment_table_names_each_way_a_curves_points_were_made():
    """A curve may take its points from several networks (a network per rate range): each way gets its line with
    the points made so, where only the first point's settings were shown; an SA curve names its edge masks."""
    from vcm import codecs
    from vcm.ctc.tables import experiment_lines

    sa = codecs.get("sa-hinerv")
    large, half = {"preset": "hinerv-demo"}, {"preset": "hinerv-demo", "width_scale": 0.5}

    def row(codec, label, kbps, settings):
        describe = codecs.get(codec).describe
        return {"sequence": "c", "codec": codec, "point": label, "label": label, "kbps": kbps, "settings": settings,
                "experiment": describe(settings)}

    def rd(fit, head=False):
        return {"representation": "hinerv", "loss": "sa-nerv", "masks": {"source": "boxes:opencv-face"}, "fit": fit,
                "method": "rate-distortion" if head else "rate-distortion, from λ 4's stage", "chained": True}

    rows = [row("sa-hinerv", "λ0.1", 50, rd(large, head=True)), row("sa-hinerv", "λ1.0", 27, rd(large)),
            row("sa-hinerv", "λ4.0", 12, rd(half, head=True)), row("sa-hinerv", "λ20.0", 6, rd(half)),
            *(row("hevc", f"QP{q}", 40 - q / 2, {"encoder": "x265", "preset": "medium"}) for q in (36, 42))]
    lines = experiment_lines(rows, "hevc", "psnr_y", frozenset())
    ways = [v for k, v in lines if k == "sa-hinerv"]
    assert ways == [sa.describe(rd(half)) + " (λ20.0, λ4.0)", sa.describe(rd(large)) + " (λ1.0, λ0.1)"]
    assert "width_scale 0.5" in ways[0] and "width_scale" not in ways[1]
    assert "edge masks: source boxes:opencv-face" in ways[0] and "its λ points chained" in ways[0]
    assert [k for k, _ in lines].count("hevc") == 1 and "QP" not in dict(lines)["hevc"]  # one way: one line, as before


def test_the_machine_line_names_the_cpu_and_every_device_the_points_ran_on(tmp_path):
    """The same seed trains other networks on another CPU, and a parallel run gives each point its share of the
    threads: the report named the first point's device alone ("cpu (1 thread)" for a demo that ran on two cores)
    and no CPU. It now names the CPU and its cores, and every device its points ran on."""
    prov = {**PROV, "cpu": "Some CPU 9000", "cores": 2}
    for qp, kbps, q in ((37, 80.0, 34.0), (41, 45.0, 32.0), (45, 25.0, 30.0), (49, 14.0, 28.0)):
        write_point(tmp_path, "hevc", f"qp{qp}", kbps, q, qp=qp, provenance={**prov, "device": "cpu (1 thread)"})
    for i, (kbps, q) in enumerate(((100.0, 33.5), (60.0, 31.8), (33.0, 30.1), (19.0, 28.4))):
        write_point(tmp_path, "hinerv", f"s_rd_l{i + 1}", kbps, q, curve="hinerv-rd", provenance=prov)
    make_report(tmp_path, anchor="hevc")
    md = (tmp_path / "report.md").read_text()
    line = next(line for line in md.splitlines() if line.startswith("| machine |"))
    assert "Some CPU 9000, 2 cores (h, Linux)" in line, line
    assert "points ran on cpu (1 thread) or cpu (2 threads)" in line, line


def test_text_from_a_result_row_is_shown_as_text_in_the_html_report_never_run(results):
    """report.html rendered the Markdown with raw HTML passed through, so a row's label or ground-truth source (a
    results folder shared between labs) put a script into the page that ran when the report was opened."""
    row = results / "points" / "clip" / "hinerv" / "s_rd_l1" / "result.json"
    row.write_text(json.dumps({**json.loads(row.read_text()), "label": "<script>alert(1)</script>",
                               "ground_truth": {"kind": "pseudo", "source": "<img src=x onerror=alert(2)>"}}))
    make_report(results, anchor="hevc")
    assert "<script>alert(1)</script>" in md_words(results / "report.md")  # the row's words, kept
    page = (results / "report.html").read_text()
    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(2)&gt;" in page


def md_words(path) -> str:
    """A Markdown file's text with its backslash escapes taken out: the words a reader sees."""
    return re.sub(r"\\(.)", r"\1", path.read_text())


def test_a_rows_words_are_shown_as_written_never_as_links_emphasis_or_code(results):
    """A row's text was Markdown in report.html: a curve named with a link became a link to anywhere, with
    asterisks bold type, with backticks code."""
    words = "x [go](http://elsewhere.example) **b** `c` _d_ &amp; ~~e~~ ![i](http://elsewhere.example/i.png)"
    for point in ("s_rd_l1", "s_rd_l2", "s_rd_l3", "s_rd_l4"):
        row = results / "points" / "clip" / "hinerv" / point / "result.json"
        row.write_text(json.dumps({**json.loads(row.read_text()), "curve": words}))
    make_report(results, anchor="hevc")
    page = (results / "report.html").read_text()
    assert "href" not in page and "elsewhere.example/i.png\"" not in page and "<code>" not in page
    assert page.count("<strong>") == 2 and "<em>" not in page  # the report's own bold words only
    cells = re.findall(r"<td>([^<]*elsewhere[^<]*)</td>", page)
    assert cells and {html.unescape(c) for c in cells} == {words}
    assert words in md_words(results / "report.md") and "s_rd_l1" in (results / "report.md").read_text()


def test_a_sequence_named_with_a_space_has_its_plot_in_the_page(tmp_path):
    """`![my clip](plots/my clip.png)` is no image in CommonMark: the page showed the line as text, without its plot."""
    for qp, kbps, q in ((37, 80.0, 34.0), (41, 45.0, 32.0), (45, 25.0, 30.0), (49, 14.0, 28.0)):
        write_point(tmp_path, "hevc", f"qp{qp}", kbps, q, qp=qp, sequence="my clip")
    make_report(tmp_path, anchor="hevc")
    assert (tmp_path / "plots" / "my clip.png").is_file()
    page = (tmp_path / "report.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 1 and "plots/my clip.png" not in page
    assert "![my clip](<plots/my clip.png>)" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("key, value", [("sequence", "../../outside"), ("codec", "hevc"), ("point", "s_rd_l2")])
def test_a_row_that_names_another_points_folder_is_damaged_and_nothing_is_written_outside(results, key, value):
    """The report names each plot after its row's sequence: a row naming `../../outside` wrote outside.png two
    folders above the report's own plots/ folder."""
    from vcm.ctc.points import read_result

    row = results / "points" / "clip" / "hinerv" / "s_rd_l1" / "result.json"
    row.write_text(json.dumps({**json.loads(row.read_text()), key: value}))
    r = make_report(results, anchor="hevc")
    assert r["failed"] == 1 and not (results.parent / "outside.png").exists()
    assert sorted(p.name for p in (results / "plots").iterdir()) == ["clip.png"]
    md = (results / "report.md").read_text()
    assert "s_rd_l1/result.json is damaged (it names the point " in md and "not the folders it lies in" in md
    assert read_result(row.parent) is None  # vcm ctc run runs it again


def test_a_result_or_detections_file_that_is_a_pipe_is_damaged_not_waited_on(results):
    """`vcm ctc report` opened a named pipe in place of a result.json and waited for a writer forever; a row's
    detections were read from whatever path it named (class pooling), pipes included."""
    import os

    from vcm.ctc.tables import collect
    from vcm.errors import VcmError
    from vcm.eval.pooled import _read_detections

    pipe = results / "points" / "clip" / "hevc" / "qp37" / "result.json"
    pipe.unlink()
    os.mkfifo(pipe)
    dets = results / "points" / "clip" / "hevc" / "qp41" / "detections.json"
    os.mkfifo(dets)
    (results / "elsewhere.json").write_text("[]")
    row = dets.parent / "result.json"
    row.write_text(json.dumps({**json.loads(row.read_text()), "detections": str(results / "elsewhere.json")}))
    with fails_after(60, "waited on the pipe"):
        r = make_report(results, anchor="hevc")
        kept = next(r for r in collect(results)[0] if r["point"] == "qp41")
        with pytest.raises(VcmError, match="qp41/detections.json: is not a regular file"):
            _read_detections(Path(kept["detections"]), kept)
    md = (results / "report.md").read_text()
    assert r["failed"] == 1 and "qp37/result.json is damaged (not a regular file)" in md
    assert kept["detections"] == str(dets)  # the point's own file, not the one the row named


def test_settings_or_a_search_record_edited_into_shapes_the_codec_never_wrote_are_reported_not_a_traceback(results):
    """An HEVC row's settings without their encoder, a HiNeRV row's fit settings as text, and a missed rate-control
    search with a trial whose bytes are null (which a sound row may hold) each stopped `vcm ctc report` with a
    KeyError, AttributeError or TypeError traceback."""
    points = results / "points" / "clip"
    for folder, edit in ((points / "hevc" / "qp37", {"settings": {"preset": "medium"}}),
                         (points / "hinerv" / "s_rd_l1", {"settings": {"representation": "hinerv", "fit": "hinerv-s"}}),
                         (points / "hinerv" / "s_rd_l2", {"rate_control": {
                             "target": {"kbps": 50.0}, "goal": 1000, "tolerance": 0.05, "hit": False, "lambda": 2.0,
                             "beyond": None, "trials": [{"lambda": 1.0, "bytes": None},
                                                        {"lambda": 2.0, "bytes": 900}]}})):
        row = folder / "result.json"
        row.write_text(json.dumps({**json.loads(row.read_text()), **edit}))
    r = make_report(results, anchor="hevc")
    assert r["failed"] == 0
    md = (results / "report.md").read_text()
    assert "representation hinerv, fit hinerv-s" in md and "preset medium" in md  # the settings as they are
    assert "## Rate control" in md and "target missed: no trial of 1 came within ±5 %" in md


@pytest.mark.parametrize("text", ["x [go](http://e.example) **b** `c` _d_ &amp; &#65; ~~e~~ ![i](http://e.example/i.png)",
                                  "<http://e.example> <b>t</b> a>b", "> q", "# h", "- l", "+ l", "1234. w", "3) y",
                                  "a|b\\c"])
def test_a_rows_text_renders_as_itself_in_a_cell_and_at_the_start_of_a_note(text):
    """What md_text escapes: nothing a row's text holds may become a link, emphasis, code, a tag or entity, or (where
    the text starts a note's line) a quote, heading or list; vcm's own words and ids are left as they are."""
    from markdown_it import MarkdownIt

    from vcm.ctc.render import md_text

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    cell = md.render(f"| a |\n|---|\n| {md_text(text)} |")
    assert re.search(r"<td>(.*)</td>", cell).group(1) == html.escape(text, quote=False)
    note = md.render(f"- {md_text(text, starts_line=True)}: hint.")
    assert note == f"<ul>\n<li>{html.escape(text, quote=False)}: hint.</li>\n</ul>\n"
    for own in ("overlap 72 % < 75 %", "s_rd_l1", "-0.45", "+7.4 % (overlap 91 %)"):
        assert md_text(own) == own


def test_matplotlib_is_given_a_folder_it_can_write_where_home_is_not(tmp_path):
    """A container's user with a read-only or no home folder: matplotlib (imported by the plots and by bjontegaard
    behind every BD figure) printed two lines of warnings in every report and built its font cache anew each time."""
    import subprocess
    import sys

    code = "from vcm.matplotlib_home import matplotlib_config_dir; matplotlib_config_dir(); import matplotlib.pyplot"
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    (tmp_path / "home").write_text("a file where the home folder should be")
    env.update(HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Matplotlib created a temporary" not in proc.stderr, proc.stderr
    assert proc.stderr == "" and any(p.name.startswith("vcm-matplotlib-") for p in tmp_path.iterdir())
    plain = subprocess.run([sys.executable, "-c", "import matplotlib.pyplot"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert "Matplotlib created a temporary" in plain.stderr  # what it said without the folder
