import json
import os
import shlex
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROW_MEASURES, moving_frames, run_cli, run_main
from vcm.video.yuv import frame_bytes, write_yuv420


def assert_one_line_error(proc, fragment):
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and fragment in lines[0], lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_user_errors_are_one_line(tmp_path):
    assert_one_line_error(run_main("info", tmp_path / "missing.yuv"), "does not exist")
    assert_one_line_error(run_main("info", tmp_path / "[run 1]" / "a.yuv"), "[run 1]/a.yuv")  # no rich markup
    bad = tmp_path / "Foo_832x480_60.yuv"
    bad.write_bytes(b"\0" * 1000)
    assert_one_line_error(run_main("info", bad), "not a whole number")
    ok = tmp_path / "Bar_16x16_30.yuv"
    write_yuv420(ok, moving_frames(t=2, h=16, w=16))
    assert_one_line_error(run_main("fit", ok, "--frames", "0:9"), "outside")
    assert_one_line_error(run_main("fit", ok, "--preset", "nope"), "unknown preset")
    assert_one_line_error(run_main("fit", ok, "--params", "lots"), "--params")
    assert_one_line_error(run_main("fit", ok, "--arch", "hinerv", "--params", "50"), "too small for a network")
    assert_one_line_error(run_main("fit", ok, "--epochs", "zero"), "--epochs")
    assert_one_line_error(run_main("fit"), "'input'")


def test_paths_and_declared_names_with_brackets_are_shown_as_they_are(tmp_path):
    """Tables, progress and messages are plain text: `vcm info d[/x]/clip.yuv` and `vcm fit` of it ended in a
    rich MarkupError traceback, `d[bold]/clip.yuv` lost its brackets, and a stream declaring the name
    "[/bold]" broke `vcm info` the same way."""
    for folder in ("d[/x]", "d[bold]", "e:car:"):  # and no emoji code: "e:car:" was shown with a car in it
        (tmp_path / folder).mkdir(parents=True)  # "d[/x]" is the folder x] in the folder d[
        write_yuv420(tmp_path / folder / "a_16x16_30.yuv", moving_frames(t=2, h=16, w=16))
        shown = run_main("info", f"{folder}/a_16x16_30.yuv", cwd=tmp_path)
        assert shown.returncode == 0 and f"{folder}/a_16x16_30.yuv" in shown.stdout, shown.stderr[-800:]
    fitted = run_main("fit", "d[/x]/a_16x16_30.yuv", "--steps", "2", "--out", "o[/x]", cwd=tmp_path,
                      env={"VCM_PROGRESS": "lines"})
    assert fitted.returncode == 0 and "o[/x]" in fitted.stdout, fitted.stderr[-800:]
    streamed = run_main("compress", "o[/x]", "--out", "s.nerv", cwd=tmp_path)
    assert streamed.returncode == 0, streamed.stderr[-800:]
    from tests.test_hardening import with_header

    (tmp_path / "named.nerv").write_bytes(with_header((tmp_path / "s.nerv").read_bytes(),
                                                      lambda h: h["video"].update(name="[/bold]")))
    shown = run_main("info", "named.nerv", cwd=tmp_path)
    assert shown.returncode == 0 and "[/bold]" in shown.stdout, shown.stderr[-800:]


def test_progress_bars_show_a_description_and_a_status_as_plain_text(monkeypatch):
    from vcm import progress

    monkeypatch.setenv("VCM_PROGRESS", "bars")
    monkeypatch.setattr(progress, "_quiet", False)
    with progress.console.capture() as shown:
        with progress.progress("fit d[/x] (steps)", 2, status="[/y]") as bar:
            bar.advance(2, status="loss [bold]1")
        progress.log("reading d[/z]/a.yuv", style="yellow")
    text = shown.get()
    assert "fit d[/x] (steps)" in text and "loss [bold]1" in text and "reading d[/z]/a.yuv" in text


def test_info_json_for_a_bare_sfu_name(tmp_path):
    path = tmp_path / "BQSquare.yuv"
    path.write_bytes(np.zeros(frame_bytes(416, 240, 8) * 129, np.uint8).tobytes())
    proc = run_main("info", path, "--json", "--md5")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["sequence"] == "BQSquare" and info["class"] == "D" and info["is_ctc_clip"]
    assert info["source_frames"] == [471, 600] and info["md5_match"] is False
    # a Y4M of the same frames is checked as the raw file is (its planes are the same bytes): it was "not applicable"
    y4m = tmp_path / "BQSquare.y4m"
    y4m.write_bytes(b"YUV4MPEG2 W416 H240 F60:1 Ip C420jpeg\n" + b"".join(
        b"FRAME\n" + bytes(frame_bytes(416, 240, 8)) for _ in range(129)))
    proc = run_main("info", y4m, "--json", "--md5")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["clip_md5"] == info["clip_md5"] is not None
    from vcm.video.source import clip_md5, probe

    walked = tmp_path / "walked" / "BQSquare.y4m"  # frame lines with parameters: each frame found by a walk
    walked.parent.mkdir()
    walked.write_bytes(y4m.read_bytes().replace(b"FRAME\n", b"FRAME Xa=1\n"))
    assert clip_md5(probe(walked)) == info["clip_md5"]


def test_info_on_a_yaml_file_of_vcms_names_the_command_that_reads_it(tmp_path):
    """It said "unknown video type '.yaml'" for a CTC config, a preset or a mask generator's settings."""
    from vcm.resources import data_dir

    configs = data_dir("configs")
    ctc, preset = configs / "ctc" / "demo.yaml", configs / "nerv" / "hinerv-demo.yaml"
    for path, said in ((ctc, f"demo.yaml is a CTC config: vcm ctc run {ctc} --dry-run lists its points"),
                       (preset, f"hinerv-demo.yaml is a fit preset: vcm fit VIDEO --preset {preset} fits it; its curve"),
                       (configs / "nerv" / "nerv-s.yaml", "fits it"),
                       (configs / "masks" / "default.yaml", "SAM mask generator's settings: vcm masks VIDEO --config")):
        r = run_main("info", path)
        assert r.returncode == 1 and said in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "its curve" not in run_main("info", configs / "nerv" / "nerv-s.yaml").stderr
    (tmp_path / "other.yaml").write_text("a: [\n")
    r = run_main("info", tmp_path / "other.yaml")
    assert r.returncode == 1 and "vcm info reads videos, .nerv/.icm streams" in r.stderr
    # a config vcm ships, by the name the commands take it by (it said "sfu-cd does not exist")
    for name, said in (("sfu-cd", "error: sfu-cd is a CTC config vcm ships: vcm ctc run sfu-cd --dry-run lists"),
                       ("hinerv-xs", "error: hinerv-xs is a fit preset vcm ships: vcm fit VIDEO --preset hinerv-xs")):
        r = run_main("info", name, cwd=tmp_path)
        assert r.returncode == 1 and r.stderr.startswith(said) and r.stderr.count("\n") == 1
        assert r.stderr.endswith(f"; vcm config copy {'ctc' if name == 'sfu-cd' else 'nerv'}/{name} writes it out to "
                                 f"edit\n")
    assert run_main("info", "sfu_cd", cwd=tmp_path).stderr == "error: sfu_cd does not exist\n"


def test_config_copy_writes_a_shipped_config_out_to_edit_and_list_shows_every_one(tmp_path):
    """Installed from a wheel, the configs vcm ships lie inside the package: `vcm ctc run sfu-cd` found one by name,
    but nothing gave a user the file to edit. `vcm config list` names each with the command that reads it;
    `vcm config copy` writes one, comments and all, into the working folder, and the copy runs where the name went."""
    from vcm.resources import data_dir

    configs = data_dir("configs")
    r = run_main("config", "list", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    listed = {row["name"]: row for row in json.loads(r.stdout)}
    assert set(listed) == {f"{p.parent.name}/{p.stem}" for p in configs.glob("*/*.yaml")}
    assert listed["ctc/sfu-cd"]["used_by"] == "vcm ctc run sfu-cd"
    assert listed["nerv/hinerv-demo"]["about"] == ("HiNeRV for rate-distortion coding: vcm's own codec, and the "
                                                   "default of `vcm fit --arch hinerv`.")
    assert listed["ctc/demo"]["about"].endswith("carphone clip (176x144, 120 frames)")  # to the colon before a list
    r = run_main("config", "copy", "sfu-cd", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    copied = tmp_path / "sfu-cd.yaml"
    assert copied.read_bytes() == (configs / "ctc" / "sfu-cd.yaml").read_bytes()
    assert "vcm ctc run sfu-cd.yaml" in r.stdout
    # edited, the copy is what runs
    copied.write_text(copied.read_text().replace("sequences: [BasketballDrill, BQMall,", "sequences: [BQMall,"))
    r = run_main("ctc", "run", copied, "--out", tmp_path / "plan", "--dry-run", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "BasketballDrill" not in r.stdout and "BQMall" in r.stdout
    # what the user already has is kept; a name of two kinds, none, or a file vcm would not read as a config: one line
    edited = copied.read_bytes()
    for args, said in ((("sfu-cd",), "--out sfu-cd.yaml exists; pass --overwrite to replace it"),
                       (("demo",), "'demo' names 2 shipped configs, ctc/demo and nerv/demo: name one of them"),
                       (("sfu",), "vcm ships no config 'sfu'; vcm config list shows those it does"),
                       (("nerv/demo", "--out", "demo"), "--out demo: a config's file name must end in .yaml or .yml")):
        r = run_main("config", "copy", *args, cwd=tmp_path)
        assert r.returncode == 1 and r.stderr.startswith(f"error: {said}") and r.stderr.count("\n") == 1, r.stderr
    assert copied.read_bytes() == edited and not (tmp_path / "demo").exists()
    r = run_main("config", "copy", "nerv/demo", "-o", tmp_path / "mine.yml", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "mine.yml").read_bytes() == (configs / "nerv" / "demo.yaml").read_bytes()
    assert run_main("config", "copy", "sfu-cd", "--overwrite", cwd=tmp_path).returncode == 0
    assert copied.read_bytes() == (configs / "ctc" / "sfu-cd.yaml").read_bytes()


def test_info_shows_a_raw_file_whose_rate_nothing_says_and_fit_still_asks_for_it(tmp_path):
    """`vcm info clip_16x16.yuv` refused the file over its unknown frame rate, though size, frames and depth were
    known: info is where a user looks to learn what to pass. It shows them and says the rate is unknown; a command
    that needs the rate (fit records it in the stream) still refuses."""
    path = tmp_path / "clip_16x16.yuv"
    write_yuv420(path, moving_frames(t=3, h=16, w=16))
    proc = run_main("info", path, "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert (info["width"], info["height"], info["frames"], info["fps"]) == (16, 16, 3, None)
    proc = run_main("info", path)
    assert proc.returncode == 0 and "unknown (pass --fps F" in " ".join(proc.stdout.split())
    assert json.loads(run_main("info", path, "--fps", "25", "--json").stdout)["fps"] == 25
    assert_one_line_error(run_main("fit", path, "--epochs", "1"), "unknown frame rate")


@pytest.mark.slow
def test_fit_bqmall_named_file_writes_resumable_run(tmp_path):
    """`vcm fit BQMall.yuv --params 0.05M` on a BQMall-sized file (CTC-clip length, 3 frames used)."""
    path = tmp_path / "BQMall.yuv"
    clip = moving_frames(t=3, h=480, w=832)
    write_yuv420(path, clip)
    with open(path, "ab") as f:  # pad to the CTC clip's 129 frames so the name resolves as the clip
        f.write(np.zeros(frame_bytes(832, 480, 8) * 126, np.uint8).tobytes())
    args = ["fit", path, "--frames", "471:474", "--epochs", "1", "--params", "0.05M", "--json", "--device", "cpu"]
    proc = run_main(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["params"] <= 50_000 and "per_frame" not in result  # per-frame figures live in metrics.json
    run = tmp_path / "runs" / "BQMall"
    assert len(json.loads((run / "metrics.json").read_text())["per_frame"]["psnr_y"]) == 3
    assert (run / "checkpoint.pt").exists() and (tmp_path / "runs" / "latest").resolve() == run.resolve()
    config = json.loads((run / "config.json").read_text())
    assert config["video"]["source_frames"] == [471, 474] and config["model"]["grid_h"] == 15
    again = run_main(*args, cwd=tmp_path)
    assert_one_line_error(again, "--resume")
    resumed = run_main("fit", path, "--frames", "471:474", "--epochs", "2", "--params", "0.05M", "--resume",
                       "--json", "--device", "cpu", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["epochs"] == 2
    # The run remembers where its source is, so it compresses from any working directory.
    comp = run_main("compress", run, "--finetune-epochs", "0", "--out", tmp_path / "b.nerv", "--json")
    assert comp.returncode == 0, comp.stderr
    assert json.loads(comp.stdout)["frames"] == 3 and (tmp_path / "b.nerv").exists()


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "Clip_64x48_25.yuv"
    write_yuv420(path, moving_frames(t=8, h=48, w=64))
    args = [sys.executable, "-m", "vcm", "fit", str(path), "--preset", "nerv-xs", "--params", "20k", "--epochs", "150",
            "--batch", "1", "--checkpoint-every", "1000", "--out", str(tmp_path / "run"), "--device", "cpu"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    config = tmp_path / "run" / "config.json"
    deadline = time.time() + 120
    while not config.exists() and time.time() < deadline:  # training has started
        time.sleep(0.2)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in out + err and "Traceback" not in err
    assert (tmp_path / "run" / "checkpoint.pt").exists() and not (tmp_path / "run" / "metrics.json").exists()
    import torch

    saved_step = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"]
    assert 0 < saved_step < 150 * 8  # stopped mid-run, between checkpoints (every 1000 epochs)
    # where it stopped, in the schedule's steps (it said 'after epoch 0' for a stop within the first epoch)
    assert f"stopped at step {saved_step} of 1200;" in " ".join((out + err).split())
    # coding the unfinished network says so
    early = run_main("compress", tmp_path / "run", "--lambda", "1", "--rd-steps", "1", "--out", tmp_path / "early.nerv")
    assert early.returncode == 0 and "holds an unfinished fit" in " ".join(early.stderr.split()), early.stderr[-1000:]
    # the command it suggests is the one typed plus --resume, on one line
    suggested = shlex.split((out + err).split("Continue with: ", 1)[1].splitlines()[0])
    assert suggested == ["vcm", *args[3:], "--resume"]
    done = run_main(*suggested[1:], "--json")
    assert done.returncode == 0, done.stderr
    late = run_main("compress", tmp_path / "run", "--lambda", "1", "--rd-steps", "1", "--out", tmp_path / "late.nerv")
    assert late.returncode == 0 and "unfinished" not in late.stderr
    assert json.loads(done.stdout)["epochs"] == 150 and (tmp_path / "run" / "metrics.json").exists()


def test_fit_help_lists_every_preset_and_each_representations_default():
    """The preset list comes from the files; the defaults it names are the registry's."""
    import inspect
    import re

    from vcm.cli import fit as fit_cli
    from vcm.nerv import registry
    from vcm.nerv.presets import list_presets, presets_by_arch

    help_text = inspect.signature(fit_cli.fit).parameters["preset"].default.help
    assert list_presets() and all(re.search(rf"[ (]{re.escape(n)}[,;)]", help_text) for n in list_presets())
    assert set(presets_by_arch()) == {"nerv", "hinerv"} and "hinerv-demo" in presets_by_arch()["hinerv"]
    assert f"Default {registry.entry('nerv').default_preset}, or {registry.entry('hinerv').default_preset} " in help_text


@pytest.mark.parametrize("command", ["decode", "icm"])
def test_decode_refuses_an_output_name_no_writer_takes_before_reading_the_stream(tmp_path, command):
    """`vcm decode s.nerv --out x.jpg` read and decoded the stream, then failed on the name; the name is
    now refused first (here the stream is not even a stream, and the answer is about the name)."""
    stream = tmp_path / ("s.nerv" if command == "decode" else "s.icm")
    stream.write_bytes(b"not a stream")
    args = ("decode",) if command == "decode" else ("icm", "decode")
    assert_one_line_error(run_main(*args, stream, "--out", tmp_path / "x.jpg"),
                          "cannot write x.jpg: use .yuv, .y4m, .mp4")
    assert not (tmp_path / "x.jpg").exists()


def test_one_decoded_frame_is_written_as_an_image_and_more_are_refused_before_decoding(tmp_path):
    """A stream of one picture (vcm fit reads a single image) could be decoded only into a folder: a .png output
    was refused by its name. It now takes exactly one frame, the same pixels as the folder's."""
    from vcm.codec.compress import decode_stream
    from vcm.video import open_video

    stream = Path(__file__).parent / "data" / "v1_tiny.nerv"
    frames = decode_stream(stream, allow_large=True).video["frames"]
    many = run_main("decode", stream, "--out", tmp_path / "all.png")
    assert_one_line_error(many, f"cannot write {frames} frames to all.png, an image of one: name a folder for PNG "
                                "frames (all), or decode one frame (--frames K:K+1)")
    assert not (tmp_path / "all.png").exists()
    assert run_main("decode", stream, "--out", tmp_path / "one.png", "--frames", "2:3").returncode == 0
    assert run_main("decode", stream, "--out", tmp_path / "folder").returncode == 0
    one, every = open_video(tmp_path / "one.png").frames_u8, open_video(tmp_path / "folder").frames_u8
    assert one.shape[0] == 1 and np.array_equal(one[0], every[2])
    from vcm.errors import VcmError
    from vcm.video.writer import write_video

    with pytest.raises(VcmError, match="cannot write more than one frame to two.png"):  # past the decoders' check
        write_video(tmp_path / "two.png", [every[:1], every[1:2]], 30)
    assert not (tmp_path / "two.png").exists()  # not its first frame alone, as if that were the output


def test_video_options_a_file_contradicts_or_no_rate_can_be_are_refused(tmp_path, carphone):
    """`--fps nan` was recorded as the run's frame rate (every kbps after it NaN); `--size` and `--bit-depth`
    on a container that says its own were ignored without a word."""
    for args, fragment in ((["--fps", "nan"], "--fps must be a frame rate above 0"),
                           (["--fps", "0"], "--fps must be a frame rate above 0"),
                           (["--size", "10x10"], "holds 176x144 frames (--size is for a raw .yuv)"),
                           (["--bit-depth", "10"], "holds 8-bit frames (--bit-depth is for a raw .yuv)")):
        assert_one_line_error(run_main("info", carphone, *args), fragment)
    ok = run_main("info", carphone, "--size", "176x144", "--bit-depth", "8", "--fps", "25", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["fps"] == 25
    clip = tmp_path / "Bar_16x16_30.yuv"
    write_yuv420(clip, moving_frames(t=2, h=16, w=16))
    assert_one_line_error(run_main("fit", clip, "--fps", "nan", "--out", tmp_path / "r"), "--fps must be")
    # --bit-depth 0 on a raw file was taken for no --bit-depth (read as 8-bit), as -3 was not
    assert_one_line_error(run_main("info", clip, "--bit-depth", "0"), "--bit-depth must be 8, 10, 12 or 16, got 0")
    assert not (tmp_path / "r").exists()


def test_info_on_a_stream_reports_what_its_header_declares(tmp_path, tiny_run):
    """`vcm info s.nerv` was "unknown video type '.nerv'": a stream now reports its video, its rate and
    its decoder (the same figures vcm compress reported when it wrote it), without decoding a frame."""
    root, _ = tiny_run
    made = run_main("compress", root / "run", "--bits", "6", "--out", tmp_path / "s.nerv", "--json")
    assert made.returncode == 0, made.stderr[-800:]
    written = json.loads(made.stdout)
    proc = run_main("info", tmp_path / "s.nerv", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert (r["width"], r["height"], r["frames"], r["bytes"]) == (32, 24, 6, written["bytes"])
    assert r["kbps"] == pytest.approx(written["kbps"]) and r["params"] == written["params"]
    assert r["kmac_per_pixel"] == pytest.approx(written["decoder_kmac_per_pixel"], rel=1e-3)
    assert "nerv, prune–quantize coding" in r["codec"]
    assert_one_line_error(run_main("info", tmp_path / "s.nerv", "--md5"), "a stream says what it holds")
    broken = tmp_path / "b.nerv"
    broken.write_bytes((tmp_path / "s.nerv").read_bytes()[:40])
    assert_one_line_error(run_main("info", broken), "truncated vcm NeRV bitstream")


def test_info_on_a_stream_names_its_format_version_and_how_its_grids_are_coded(tmp_path):
    """A codec engineer could not tell a stream's format, nor which context model coded each grid, nor where its
    bytes go (only `vcm compress`'s report had that) without a script: `vcm info` now says all three (the grids'
    coding and the bytes by part for the latest format, whose choices are kept)."""
    from vcm.codec import nerv_stream
    from vcm.codec.rd_coding import TensorCoding, context_capable
    from vcm.entropy_models import context

    from pathlib import Path

    old = Path(__file__).parent / "data" / "v5_rd_hinerv.nerv"
    shown = run_main("info", old)
    assert shown.returncode == 0 and "│ format        │ version 5 " in shown.stdout, shown.stdout
    stream = nerv_stream.decode(old.read_bytes())
    (grid,) = [t for t in stream.tensors if context_capable(t.shape, t.temporal)]  # this tiny network has one
    for model, words in ((context.WAVES, "1 in waves"), (context.ROWS, "1 row by row"), (None, "1 plain")):
        grid.coding = None if model is None else TensorCoding(*context.fit(grid.coded_values(), model=model))
        (tmp_path / "v6.nerv").write_bytes(nerv_stream.encode(stream).data)
        r = json.loads(run_main("info", tmp_path / "v6.nerv", "--json").stdout)
        assert r["format_version"] == 6 and sum(r["grid_coding"].values()) == 1
        said = " ".join(run_main("info", tmp_path / "v6.nerv").stdout.split())
        assert f"version 6; grids: {words}" in said, said
        # where its bytes go, as vcm compress reports it: the parts sum to the file and to the network
        parts = {row["part"]: row for row in r["breakdown"]}
        size = (tmp_path / "v6.nerv").stat().st_size
        assert sum(row["bytes"] for row in r["breakdown"]) == pytest.approx(size, abs=0.5)
        assert sum(row["params"] for row in r["breakdown"]) == r["params"] and parts["base grids"]["params"] > 0
        assert list(parts)[-2:] == ["side information", "header"] and "│ side information │" in run_main(
            "info", tmp_path / "v6.nerv").stdout
    assert "breakdown" not in json.loads(run_main("info", old, "--json").stdout)  # its sizes are not what v6 writes


def test_decode_refuses_a_raw_name_that_says_another_format_and_says_how_to_read_a_nameless_one(tmp_path, tiny_run):
    """`vcm decode s.nerv --out Foo_16x12_25.yuv` wrote 32×24 frames under a name that vcm reads back as 16×12
    (four times as many wrong frames); `--out dec.yuv` wrote a file no vcm command could read without the
    size and rate, which nothing named."""
    root, video = tiny_run
    stream = tmp_path / "s.nerv"
    assert run_main("compress", root / "run", "--bits", "6", "--out", stream).returncode == 0
    from vcm.errors import VcmError
    from vcm.video.writer import check_raw_name

    fps = f"{video.info.fps:g}"
    for name, fragment in ((f"Foo_16x12_{fps}.yuv", "says 16x12, but the frames are 32x24"),
                           ("Foo_32x24_7.yuv", f"says 7 fps, but the video is at {fps} fps"),
                           (f"Foo_32x24_{fps}_10bit.yuv", "says 10-bit"), ("BQMall.yuv", "says 832x480")):
        with pytest.raises(VcmError, match=fragment) as refused:
            check_raw_name(tmp_path / name, 32, 24, video.info.fps)
        assert "name it Foo_32x24_" in str(refused.value) or "name it BQMall_32x24_" in str(refused.value)
    proc = run_main("decode", stream, "--out", tmp_path / "BQMall.yuv")  # refused before a frame is written
    assert_one_line_error(proc, "says 832x480, but the frames are 32x24")
    assert not (tmp_path / "BQMall.yuv").exists()
    nameless = run_main("decode", stream, "--out", tmp_path / "dec.yuv")
    assert nameless.returncode == 0 and f"--size 32x24 --fps {fps}" in " ".join(nameless.stdout.split())
    back = run_main("info", tmp_path / "dec.yuv", "--size", "32x24", "--fps", fps, "--json")
    assert back.returncode == 0 and json.loads(back.stdout)["frames"] == 6
    assert check_raw_name(tmp_path / f"dec_32x24_{fps}.yuv", 32, 24, video.info.fps) == ""  # says all: no hint


def test_decoded_frames_read_back_as_the_source_frames_they_are(tmp_path, tiny_run):
    """`vcm decode --frames 2:5 --out d.y4m` wrote frames that read back as source frames 0:3: evaluated against
    the original (or a JSON's annotations) they were scored against the wrong frames without a word. A .y4m now
    says where they start; a kind of file that cannot say so is named on stderr."""
    root, video = tiny_run
    stream = tmp_path / "s.nerv"
    assert run_main("compress", root / "run", "--bits", "6", "--out", stream).returncode == 0
    fps = f"{video.info.fps:g}"
    assert run_main("decode", stream, "--frames", "2:5", "--out", tmp_path / "d.y4m").returncode == 0
    assert json.loads(run_main("info", tmp_path / "d.y4m", "--json").stdout)["source_frames"] == [2, 5]
    proc = run_main("eval", tmp_path / "d.y4m", "--reference", "original", "--original", video.info.path,
                    "--detector", "opencv-face", "--out", tmp_path / "e", "--json", cwd=tmp_path,
                    env={"VCM_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0 and json.loads(proc.stdout)["source_frames"] == [2, 5], proc.stderr
    raw = tmp_path / f"d_32x24_{fps}.yuv"
    proc = run_main("decode", stream, "--frames", "2:5", "--out", raw)
    said = " ".join(proc.stderr.split())
    assert proc.returncode == 0 and (f"d_32x24_{fps}.yuv holds source frames 2:5, but vcm reads it back as frames "
                                     "0:3 (a raw .yuv does not say where its frames start)") in said
    whole = run_main("decode", stream, "--out", tmp_path / f"w_32x24_{fps}.yuv", "--overwrite")
    assert whole.returncode == 0 and "reads it back" not in whole.stderr
    fit = run_main("fit", video.info.path, "--frames", "1:3", "--steps", "1", "--save-video", tmp_path / "f.y4m",
                   "--out", tmp_path / "run", cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr
    assert json.loads(run_main("info", tmp_path / "f.y4m", "--json").stdout)["source_frames"] == [1, 3]


def test_info_on_a_run_folder_says_what_it_trained_how_far_and_what_was_compressed(tmp_path, tiny_run):
    """`vcm info runs/NAME` answered "holds no PNG/JPEG frames": a run folder now reports its video, network,
    schedule, whether it finished (or where it stopped) and the streams compressed from it."""
    import shutil

    import torch

    from vcm.nerv.config import TrainConfig
    from vcm.nerv.model import NervShape
    from vcm.nerv.train import fit, load_run

    root, video = tiny_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    assert run_main("compress", run, "--bits", "6").returncode == 0
    proc = run_main("info", run, "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    model, config = load_run(run)
    assert (r["kind"], r["arch"], r["frames"], r["width"], r["height"]) == ("run", "nerv", 6, 32, 24)
    assert r["params"] == sum(p.numel() for p in model.parameters()) and r["kmac_per_pixel"] > 0
    assert r["finished"] and r["step"] == r["total_steps"] == 60 and r["psnr"] is not None  # 20 epochs of 3 steps
    (stream,) = r["streams"]
    assert stream["file"].endswith(".nerv") and stream["bytes"] == (run / stream["file"]).stat().st_size
    assert stream["kbps"] > 0
    stopped = tmp_path / "stopped"
    mcfg = NervShape(fc_dim=12, stem_dims=(48,), lower_width=8, embed_levels=16).config(24, 32)
    fit(video, mcfg, TrainConfig(epochs=4, batch=2, checkpoint_every=1), stopped, torch.device("cpu"),
        should_stop=lambda step: step == 4)
    table = " ".join(run_main("info", stopped).stdout.split())
    assert "interrupted at step 4 of 12" in table and "--resume" in table and "none yet" in table
    from vcm.fsutil import run_lock

    with run_lock(stopped):  # as while a vcm fit trains it: --resume would be refused
        table = " ".join(run_main("info", stopped).stdout.split())
    assert f"training now (pid {os.getpid()}): step 4 of 12 at its last checkpoint" in table and "--resume" not in table
    assert_one_line_error(run_main("info", run, "--size", "32x24"), "a run folder says what it holds")
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "psnr_y": "high"}))  # was a ValueError of a format
    assert_one_line_error(run_main("info", run), "metrics.json is damaged (field 'psnr_y' is not a number)")


def test_info_on_a_ctc_results_folder_says_which_points_finished_failed_or_stopped(tmp_path):
    """A CTC folder read back: finished points with their rate range, a failed one with its error, one left
    with a stopped stage, one with a damaged result; and that no report is written yet."""
    ok = {"status": "ok", "sequence": "clip", "codec": "hinerv", "curve": "hinerv-rd", "bytes": 900, "fps": 30.0,
          "frames": 8, **ROW_MEASURES}
    points = tmp_path / "out" / "points" / "clip"
    for name, row in (("l1", {**ok, "point": "l1", "kbps": 12.5}), ("l4", {**ok, "point": "l4", "kbps": 7.25}),
                      ("l20", {"status": "failed", "sequence": "clip", "codec": "hinerv", "point": "l20",
                               "error": "out of memory"})):
        (points / "hinerv" / name).mkdir(parents=True)
        (points / "hinerv" / name / "result.json").write_text(json.dumps(row))
    (points / "hinerv" / "l0p1").mkdir()
    (points / "hinerv" / "l0p1" / "stream.nerv.partial.pt").write_bytes(b"state")
    (points / "hevc" / "qp37").mkdir(parents=True)
    (points / "hevc" / "qp37" / "result.json").write_text("{not json")
    (tmp_path / "out" / "ctc.log").write_text("")
    proc = run_main("info", tmp_path / "out", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["kind"] == "ctc results" and r["points"] == {"ok": 2, "failed": 2, "unfinished": 1} and r["report"] == []
    hinerv = next(c for c in r["curves"] if c["codec"] == "hinerv")
    assert hinerv["curves"] == ["hinerv-rd"] and hinerv["kbps"] == [7.25, 12.5]
    assert hinerv["unfinished"] == [{"point": "l0p1", "stopped_stage": True}]
    table = " ".join(run_cli("info", tmp_path / "out", env={"COLUMNS": "250"}).stdout.split())  # COLUMNS: read at start
    assert "l20 failed: out of memory" in table and "result.json is damaged" in table
    assert "a stage stopped in it" in table and "none yet: vcm ctc report" in table
    (tmp_path / "empty").mkdir()
    nothing = run_main("info", tmp_path / "empty")
    assert nothing.returncode == 1 and "holds no PNG/JPEG frames; nor is it a vcm fit's run folder, a vcm icm " \
        "train's, a vcm eval's output folder or a vcm ctc run's results folder" in " ".join(nothing.stderr.split()), \
        nothing.stderr


def _command_paths(command, path=()):
    """Every command and group of the CLI, as the argument paths that reach them."""
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*path, name))


def test_every_paragraph_of_a_commands_help_is_one_line():
    """Help screens keep a docstring's line breaks: `vcm ctc --help` broke compare's summary after "on quality
    and", mid-sentence, across its table. Each paragraph of a command's help is written on one line."""
    import typer

    from vcm.cli import app

    root = typer.main.get_command(app)
    paths = list(_command_paths(root))
    for path in paths:
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        paragraphs = [p.strip() for p in (cmd.help or "").strip().split("\n\n")]
        assert paragraphs[0] and not [p for p in paragraphs if "\n" in p], (path, paragraphs)


def test_no_help_screen_shows_a_value_for_a_flag():
    """typer 0.29 showed ``--help <bool>`` on every help screen, as if the flag took a value; vcm's own
    flags hide theirs, and the dependency range leaves that typer out."""
    import typer

    from vcm.cli import app

    paths = list(_command_paths(typer.main.get_command(app)))
    assert len(paths) > 15 and ("ctc", "run") in paths
    for path in paths:
        shown = run_main(*path, "--help")
        assert shown.returncode == 0 and "--help" in shown.stdout, (path, shown.stderr[-500:])
        assert "<bool>" not in shown.stdout, (path, [line for line in shown.stdout.splitlines() if "<bool>" in line])


def _options_named(flag: str) -> dict:
    """Every command's option that answers to ``flag``, by the command's path."""
    import typer

    from vcm.cli import app

    root = typer.main.get_command(app)
    found = {}
    for path in _command_paths(root):
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        found.update({path: param for param in getattr(cmd, "params", []) if flag in getattr(param, "opts", ())})
    return found


def test_every_command_that_reads_source_frames_says_the_same_of_frames():
    """`vcm masks --help` listed ``ctc | all | A:B`` for a ``--frames`` whose default, ``auto``, it never
    explained, where `vcm fit` and `vcm icm encode` did. Every command that selects a video's source frames
    (default ``auto``) names all four specs and says what ``auto`` picks, in one wording (`vcm eval` then adds
    what it does with a stream)."""
    helps = {path: param.help for path, param in _options_named("--frames").items() if param.default == "auto"}
    assert {("fit",), ("masks",), ("icm", "encode"), ("eval",)} <= set(helps), sorted(helps)
    said = helps["fit",]
    assert all(spec in said for spec in ("ctc", "all", "auto", "A:B", "SFU-HW")), said
    assert all(h.startswith(said) for h in helps.values()), helps


def test_every_output_option_has_the_short_o(tmp_path):
    """`vcm compress RUN -o a.nerv` was "No such option: -o": every command that writes to --out takes -o too."""
    outs = {path: param.opts for path, param in _options_named("--out").items()}
    assert {("fit",), ("compress",), ("decode",), ("eval",), ("masks",), ("demo",), ("ctc", "run")} <= set(outs)
    assert all("-o" in opts for opts in outs.values()), outs
    proc = run_main("ctc", "run", tmp_path / "none.yaml", "-o", tmp_path / "o")
    assert proc.returncode == 1 and "No such option" not in proc.stderr and "none.yaml" in proc.stderr, proc.stderr


def test_the_fit_and_stream_tables_say_why_a_small_clip_has_no_ms_ssim(tmp_path):
    """MS-SSIM's five scales need frames of 161 px or more: the demo's own clip (176×144) has none, and
    `vcm fit` and `vcm compress` showed a bare "–" in its row. They now say what it needs."""
    write_yuv420(tmp_path / "a_32x24_30.yuv", moving_frames(t=2, h=24, w=32))
    fitted = run_main("fit", tmp_path / "a_32x24_30.yuv", "--steps", "2", "--out", tmp_path / "run")
    streamed = run_main("compress", tmp_path / "run", "--out", tmp_path / "s.nerv")
    for shown in (fitted, streamed):
        assert shown.returncode == 0, shown.stderr[-800:]
        row = next(line for line in shown.stdout.splitlines() if "MS-SSIM" in line)
        assert "n/a (needs frames of 161 px or more on each side)" in row, shown.stdout
    from vcm.cli.common import fmt_ms_ssim

    # the reason is given only where it is the reason: a value missing on frames large enough stays "–"
    assert fmt_ms_ssim(None, 240, 416) == "–" and fmt_ms_ssim(0.98765, 144, 176) == "0.9877"
    assert fmt_ms_ssim(None, 144, 176).startswith("n/a (needs frames of 161 px")


def test_the_installed_versions_are_read_against_what_vcm_declares(monkeypatch):
    """A torch installed after vcm (`pip install torch==2.4.1` for a cluster's CUDA; pip warns and installs it)
    lacks functions vcm calls: every checkpoint then read as "damaged". The declared versions are read back from
    vcm's own metadata, extras and other platforms' markers left out."""
    from importlib import metadata

    from vcm import installed

    installed.unmet_requirements.cache_clear()
    assert installed.unmet_requirements() == () and installed.unmet_requirements_line() == ""  # this environment
    declared = ["torch>=2.6", "numpy<2,>=1.24", "ray>=2.9; extra == 'ray'", "gone>=1; sys_platform == 'nowhere'",
                "absent>=1.0"]
    have = {"torch": "2.4.1+cu121", "numpy": "1.26.4", "ray": "1.0"}

    def version(name):
        if name not in have:
            raise metadata.PackageNotFoundError(name)
        return have[name]

    monkeypatch.setattr(metadata, "requires", lambda dist: declared)
    monkeypatch.setattr(metadata, "version", version)
    installed.unmet_requirements.cache_clear()
    try:
        assert installed.unmet_requirements() == (("torch 2.4.1+cu121 where vcm needs torch>=2.6", "torch>=2.6"),
                                                  ("absent is not installed", "absent>=1.0"))
        assert installed.unmet_requirements_line().endswith("install them (pip install 'torch>=2.6' 'absent>=1.0', "
                                                            "or uv sync in a checkout of vcm)")
    finally:
        installed.unmet_requirements.cache_clear()

    def unreadable():
        raise ModuleNotFoundError("No module named 'packaging'")

    monkeypatch.setattr(installed, "unmet_requirements", unreadable)
    assert installed.unmet_requirements_line() == ""  # said beside an error, never in its place


def test_an_error_names_the_dependencies_installed_at_versions_vcm_does_not_declare(monkeypatch, tmp_path):
    """The error a too-old torch gave did not say so: after an error vcm names them in a second line (checked only
    then: reading them costs ~90 ms, a third of a quick command's time); a command that succeeds says nothing."""
    from vcm import installed

    line = "vcm's dependencies are not the versions it needs: torch 2.4.1 where vcm needs torch>=2.6; install them"
    monkeypatch.setattr(installed, "unmet_requirements_line", lambda: line)
    failed = run_main("info", tmp_path / "absent.y4m")
    assert failed.returncode == 1 and failed.stderr.splitlines()[-1] == f"note: {line}", failed.stderr
    assert failed.stderr.splitlines()[0].startswith("error: "), failed.stderr
    write_yuv420(tmp_path / "a_32x24_30.yuv", moving_frames(t=2, h=24, w=32))
    fine = run_main("info", tmp_path / "a_32x24_30.yuv")
    assert fine.returncode == 0 and "note:" not in fine.stderr, fine.stderr
    usage = run_main("info", "--no-such-option")
    assert usage.returncode == 2 and "note:" not in usage.stderr, usage.stderr
    version = run_main("--version")
    assert version.returncode == 0 and version.stderr.splitlines() == [f"note: {line}"], version.stderr
    import vcm.cli

    def crash(argv, console):  # what torch 2.4 gave in a fit: a function vcm calls is not there
        raise AttributeError("module 'torch.nn.utils' has no attribute 'get_total_norm'")

    monkeypatch.setattr(vcm.cli, "_run", crash)
    crashed = run_main("fit", tmp_path / "a_32x24_30.yuv")
    said = crashed.stderr.splitlines()
    assert crashed.returncode == 1 and said[0] == "Traceback (most recent call last):", crashed.stderr
    assert said[-2:] == ["AttributeError: module 'torch.nn.utils' has no attribute 'get_total_norm'", f"note: {line}"]


def test_an_empty_argument_is_refused_before_anything_is_written(tmp_path):
    """`vcm fit clip --out "$RUN"` with RUN unset: click read the empty value as the current folder, and the fit
    wrote its checkpoint, config and metrics among the files there."""
    (tmp_path / "notes.txt").write_text("mine")
    for args, said in ((("fit", "sample:carphone", "--steps", "1", "--out", ""), "an empty argument after --out"),
                       (("fit", "sample:carphone", "--steps", "1", "--out="), "--out= gives no value"),
                       (("decode", ""), "an empty argument after decode")):
        proc = run_main(*args, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr == (f"error: {said} (a shell variable that was never set?); give "
                                                        f"a value, or leave it out\n"), proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
