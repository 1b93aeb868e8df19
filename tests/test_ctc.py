import csv
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import moving_frames, plugin_package, progress_gaps, run_cli, tiny_ctc_config, run_main
from vcm import codecs, sequences
from vcm.ctc.bd import bd, monotone
from vcm.codecs import FITTED, network_ready
from vcm.errors import VcmError
from vcm.eval.gt import Box, GroundTruth, to_coco_json
from vcm.video.yuv import write_yuv420


def test_bd_rate_of_a_constant_rate_factor_is_that_factor():
    rates = np.array([100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0])
    quality = np.array([30.0, 33.0, 35.5, 37.5, 39.0, 40.0])
    r = bd(rates, quality, 0.8 * rates, quality)
    assert r["bd_rate"] == pytest.approx(-20.0, abs=1e-6) and r["bd_metric"] > 0
    same = bd(rates, quality, rates, quality)
    assert same["bd_rate"] == pytest.approx(0.0, abs=1e-9) and same["bd_metric"] == pytest.approx(0.0, abs=1e-9)
    assert bd(rates[:3], quality[:3], rates[:3], quality[:3])["error"] == "needs 4 points per curve"


def test_a_bd_figure_that_cannot_be_computed_says_why_even_without_a_message(monkeypatch):
    """An error with an empty message (as a 1-epoch demo's curves once raised inside bjontegaard) becomes
    the figure's reason, named by its type, not a crash of the report."""
    import bjontegaard

    def fails(*args, **kwargs):
        raise ValueError()

    monkeypatch.setattr(bjontegaard, "bd_rate", fails)
    rates = np.array([100.0, 200.0, 400.0, 800.0])
    quality = np.array([30.0, 33.0, 35.5, 37.5])
    r = bd(rates, quality, 0.8 * rates, quality)
    assert r["bd_rate"] is None and r["error"] == "BD-rate: ValueError" and r["bd_metric"] is not None


def test_curves_that_share_no_range_say_which_ranges_in_one_clause_each():
    from vcm.ctc.bd import bd

    # the tested curve sits below the anchor in quality and within its rates: no BD-rate, a BD-metric
    r = bd([10, 20, 40, 80], [27, 29, 31, 33], [15, 25, 35, 45], [22, 23, 24, 25])
    assert r["bd_rate"] is None and r["overlap_rate"] == 0 and r["bd_metric"] is not None
    assert r["error"] == "BD-rate: the quality ranges do not overlap (tested 22.00 to 25.00, anchor 27.00 to 33.00)"
    # and one far above the anchor's rates: neither figure
    r = bd([10, 20, 40, 80], [27, 29, 31, 33], [100, 200, 300, 400], [22, 23, 24, 25])
    assert r["bd_rate"] is None and r["bd_metric"] is None
    assert r["error"].endswith("BD-metric: the rate ranges do not overlap (tested 100.0 to 400.0 kbps, anchor 10.0 to "
                               "80.0 kbps)")
    assert "Curves do not overlap" not in r["error"] and ".;" not in r["error"]


def test_monotone_fit():
    assert np.allclose(monotone(np.array([1.0, 3.0, 2.0, 4.0])), [1.0, 2.5, 2.5, 4.0])
    assert np.allclose(monotone(np.array([1.0, 2.0, 3.0])), [1.0, 2.0, 3.0])


def test_a_saturating_map_curve_gets_a_bd_rate_once_made_monotone():
    """The demo's HEVC mAP curve (pseudo ground truth, a face detector at its ceiling) falls at its top
    point: raw, BD-rate cannot be computed; monotone, the flat top keeps its lowest-rate point."""
    rate = [8.7, 10.4, 12.9, 16.9, 22.6, 32.2]
    hevc_map = [35.36, 46.13, 59.62, 88.19, 90.08, 89.79]
    test_rate, test_map = [10.6, 18.9, 31.1, 45.4], [2.4, 78.5, 86.6, 92.2]
    assert bd(rate, hevc_map, test_rate, test_map)["bd_rate"] is None
    res = bd(rate, hevc_map, test_rate, test_map, use_monotone=True)
    assert res["bd_rate"] is not None and res["overlap_rate"] is not None


def test_a_curve_whose_quality_falls_gets_no_bd_rate_and_a_note_that_says_where_it_falls():
    """A point beaten outright by a cheaper one (33.0 dB at 30 kbps after 33.5 dB at 22 kbps) leaves no
    rising curve: the note names the two points instead of the interpolator's own message."""
    hevc = ([10, 20, 40, 80], [30.0, 33.0, 36.0, 39.0])
    res = bd(*hevc, [12, 22, 30, 70], [30.5, 33.5, 33.0, 38.5])
    assert res["bd_rate"] is None and res["bd_metric"] is not None
    assert "tested curve's quality does not rise with its rate (33.50 at 22.0 kbps, then 33.00 at 30.0 kbps)" \
        in res["error"] and "--monotone" in res["error"]
    assert bd(*hevc, [12, 22, 30, 70], [30.5, 33.5, 33.0, 38.5], use_monotone=True)["bd_rate"] is not None


def test_two_points_at_one_rate_get_a_bd_metric_note_that_names_the_rate():
    """Two streams of the same size (two λ coded to the same bytes) left BD-metric with the interpolator's own
    "`x` must be strictly increasing sequence"; BD-rate, over the quality axis, is still computed."""
    res = bd([10, 20, 40, 80], [30.0, 33.0, 36.0, 39.0], [12, 12, 30, 70], [30.5, 31.0, 34.0, 38.5])
    assert res["bd_rate"] is not None and res["bd_metric"] is None
    assert res["error"] == "BD-metric: the tested curve has two points at 12.0 kbps"


@pytest.mark.parametrize("codec", ["hevc", "vvc"])
def test_anchor_round_trip(tmp_path, codec):
    from vcm.anchors.ffmpeg import encode_decode, intra_period
    from vcm.quality import psnr_rgb
    from vcm.video import open_video

    frames = moving_frames(t=4, h=64, w=96, noise=0)
    write_yuv420(tmp_path / "A_96x64_30.yuv", frames)
    video = open_video(tmp_path / "A_96x64_30.yuv")
    from vcm.anchors.ffmpeg import planes_of

    planes, bit_depth = planes_of(video)
    lo = encode_decode(codec, planes, bit_depth, 96, 64, 30, 22, tmp_path / "hi.bin")
    hi = encode_decode(codec, planes, bit_depth, 96, 64, 30, 44, tmp_path / "lo.bin")
    assert lo.frames_u8.shape == frames.shape
    assert lo.bitstream.stat().st_size > hi.bitstream.stat().st_size > 0
    assert psnr_rgb(video.frames_u8, lo.frames_u8).mean() > 35
    assert intra_period(60) == 64 and intra_period(30) == 32


@pytest.mark.parametrize("codec", ["hevc", "vvc"])
def test_an_anchor_of_an_odd_size_is_coded_padded_and_cropped_back(tmp_path, codec):
    """x265 and vvenc refuse 4:2:0 pictures of an odd width or height; every anchor point of a 33x25 clip failed
    with "Nothing was written into output file"."""
    from vcm.anchors.ffmpeg import coded_size, encode_decode, padded_to, planes_of
    from vcm.quality import psnr_rgb
    from vcm.video import open_video

    frames = moving_frames(t=2, h=25, w=33, noise=0)
    write_yuv420(tmp_path / "A_33x25_30.yuv", frames)
    video = open_video(tmp_path / "A_33x25_30.yuv")
    planes, bit_depth = planes_of(video)
    assert coded_size(33, 25) == (34, 32) and coded_size(33, 25, 2) == (34, 26)
    y, u, v = padded_to(planes, 34, 32)
    assert y.shape == (2, 32, 34) and u.shape == v.shape == (2, 16, 17)
    assert np.array_equal(y[:, :25, :33], planes[0]) and np.array_equal(y[:, 25:, :33], planes[0][:, [24] * 7])
    assert np.array_equal(y[:, :25, 33], planes[0][:, :, 32]) and np.array_equal(u[:, :13], planes[1])
    result = encode_decode(codec, planes, bit_depth, 33, 25, 30, 22, tmp_path / "s.bin")
    assert result.frames_u8.shape == frames.shape and psnr_rgb(video.frames_u8, result.frames_u8).mean() > 30


@pytest.mark.parametrize("codec, preset", [("hevc", "medium"), ("hevc", "placebo"), ("vvc", "faster")])
def test_an_anchor_of_a_tiny_size_is_coded_padded_and_cropped_back(tmp_path, codec, preset):
    """x265 refuses a side under 16 ("Image size is too small (12x10)"), and under 32 at its placebo preset;
    vvenc refuses 16x16 and 48x8 but codes 8x48: every anchor point of such a clip failed."""
    from vcm.anchors.ffmpeg import encode_decode, planes_of
    from vcm.quality import psnr_rgb
    from vcm.video import open_video

    for width, height in ((12, 10), (48, 8), (16, 24)):
        name = f"A_{width}x{height}_30.yuv"
        frames = moving_frames(t=2, h=height, w=width, noise=0)
        write_yuv420(tmp_path / name, frames)
        video = open_video(tmp_path / name)
        planes, bit_depth = planes_of(video)
        result = encode_decode(codec, planes, bit_depth, width, height, 30, 22, tmp_path / f"{name}.bin", preset=preset)
        assert result.frames_u8.shape == frames.shape and psnr_rgb(video.frames_u8, result.frames_u8).mean() > 30


@pytest.mark.parametrize("config", ["ra", "ld", "ai"])
def test_every_x265_preset_codes_every_configuration(tmp_path, config):
    """x265's ultrafast preset looks 5 frames ahead, fewer than random access's 7 B frames: it refused every point
    ("Lookahead depth must be greater than the max consecutive bframe count")."""
    from vcm.anchors.ffmpeg import encode_decode, planes_of
    from vcm.codecs.anchors import Hevc
    from vcm.video import open_video

    write_yuv420(tmp_path / "A_48x32_30.yuv", moving_frames(t=9, h=32, w=48))
    planes, bit_depth = planes_of(open_video(tmp_path / "A_48x32_30.yuv"))
    for preset in Hevc.presets:
        result = encode_decode("hevc", planes, bit_depth, 48, 32, 30, 34, tmp_path / f"{preset}.hevc", preset=preset,
                               config=config)
        assert result.frames_u8.shape == (9, 3, 32, 48), preset


@pytest.mark.parametrize("codec", ["hevc", "vvc"])
def test_an_anchor_decodes_every_frame_at_any_frame_rate(tmp_path, codec):
    """ffmpeg fitted the decoded frames to the rate it read from the stream: a 240 fps clip's anchor decoded 2 of its
    4 frames, and the point failed ("frames 0:4 are outside rec.yuv, which has 2 frames")."""
    from vcm.anchors.ffmpeg import encode_decode, planes_of
    from vcm.video import open_video

    frames = moving_frames(t=4, h=32, w=48, noise=0)
    write_yuv420(tmp_path / "A_48x32_240.yuv", frames)
    planes, bit_depth = planes_of(open_video(tmp_path / "A_48x32_240.yuv"))
    assert encode_decode(codec, planes, bit_depth, 48, 32, 240, 30, tmp_path / "s.bin").frames_u8.shape == frames.shape


def test_a_failed_anchor_says_the_encoders_first_line_not_ffmpegs_last(tmp_path, monkeypatch):
    """A failed encode said ffmpeg's last line ("Nothing was written into output file, because at least one of its
    streams received no packets.") where the encoder's first said why ("Picture width must be …")."""
    from vcm.anchors.ffmpeg import encode_decode, planes_of
    from vcm.video import open_video

    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho '[vost#0:0/libx265 @ 0x55d4d282a600] [enc:libx265 @ 0x55d4] x265 [error]: the "
                    "cause' >&2\necho '[out#0/hevc @ 0x55d4d282a600] Nothing was written into output file.' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    write_yuv420(tmp_path / "A_48x32_30.yuv", moving_frames(t=1, h=32, w=48))
    planes, bit_depth = planes_of(open_video(tmp_path / "A_48x32_30.yuv"))
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    with pytest.raises(VcmError, match=r"^libx265 encoding failed: x265 \[error\]: the cause$"):
        encode_decode("hevc", planes, bit_depth, 48, 32, 30, 30, tmp_path / "s.bin")


def _ffmpeg_without_vvenc(folder: Path) -> Path:
    """A stand-in for a system ffmpeg built without libvvenc: the real one, with libvvenc left out of its
    ``-encoders`` listing and refused as ffmpeg refuses an encoder it lacks."""
    from vcm.video.ffmpeg_binary import ffmpeg_exe

    fake = folder / "ffmpeg"
    fake.write_text(f"#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = -encoders ]; then {ffmpeg_exe()} \"$@\" "
                    f"| grep -v libvvenc; exit 0; fi\n  if [ \"$a\" = libvvenc ]; then echo \"Unknown encoder "
                    f"'libvvenc'\" >&2; exit 8; fi\ndone\nexec {ffmpeg_exe()} \"$@\"\n")
    fake.chmod(0o755)
    return fake


def test_an_ffmpeg_without_the_anchors_encoder_is_named(tmp_path, monkeypatch):
    """A system ffmpeg set in IMAGEIO_FFMPEG_EXE, built without libvvenc, failed each VVC point with "Unknown encoder
    'libvvenc'", not saying which ffmpeg or what to do."""
    from vcm.anchors.ffmpeg import encode_decode, planes_of
    from vcm.video import open_video

    fake = _ffmpeg_without_vvenc(tmp_path)
    write_yuv420(tmp_path / "A_48x32_30.yuv", moving_frames(t=1, h=32, w=48))
    planes, bit_depth = planes_of(open_video(tmp_path / "A_48x32_30.yuv"))
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    assert encode_decode("hevc", planes, bit_depth, 48, 32, 30, 30, tmp_path / "s.bin").frames_u8.shape[0] == 1
    with pytest.raises(VcmError, match=rf"^the ffmpeg at {re.escape(str(fake))} \(IMAGEIO_FFMPEG_EXE=.*\) has no "
                                       r"libvvenc encoder; unset IMAGEIO_FFMPEG_EXE for the one imageio-ffmpeg ships$"):
        encode_decode("vvc", planes, bit_depth, 48, 32, 30, 30, tmp_path / "s.266")


def test_a_ctc_run_whose_ffmpeg_lacks_an_anchors_encoder_is_refused_before_any_point_runs(tmp_path, monkeypatch):
    """The encoder was looked up only when its first point encoded: a run of NeRV fits beside VVC anchors trained
    every network, then failed each VVC point."""
    from vcm.ctc.run import run

    cfg = tiny_ctc_config(tmp_path, "{steps: 4, batch: 2, lr: 3.0e-3}",
                          "  nerv:\n    fits: [{{preset: {preset}, points: [{{prune: 0.0, bits: 8}}]}}]\n"
                          "  hevc: {{qps: [40]}}\n  vvc: {{qps: [40]}}\n")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(_ffmpeg_without_vvenc(tmp_path)))
    with pytest.raises(VcmError, match=r"^codec vvc: the ffmpeg at .* has no libvvenc encoder; unset"):
        run(cfg, tmp_path / "out", jobs=1)
    assert not list((tmp_path / "out").rglob("result.json")) and not list((tmp_path / "out").rglob("*.pt"))
    # the same config without the VVC anchor runs, its HEVC anchor through the same ffmpeg
    cfg.write_text(cfg.read_text().replace("  vvc: {qps: [40]}\n", ""))
    assert run(cfg, tmp_path / "out", jobs=1)["failed"] == 0


def test_an_anchor_in_a_relative_folder_named_with_a_colon_is_coded(tmp_path, monkeypatch):
    """ffmpeg took ``T10:00`` of a results folder ``T10:00/…`` for a protocol: every anchor point of
    ``vcm ctc run --out T10:00`` failed with "Error opening input files: Protocol not found"."""
    from vcm.anchors.ffmpeg import encode_decode, planes_of
    from vcm.video import open_video

    frames = moving_frames(t=2, h=32, w=48, noise=0)
    write_yuv420(tmp_path / "A_48x32_30.yuv", frames)
    planes, bit_depth = planes_of(open_video(tmp_path / "A_48x32_30.yuv"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "T10:00").mkdir()
    result = encode_decode("hevc", planes, bit_depth, 48, 32, 30, 30, Path("T10:00/qp30.mp4"))
    assert result.frames_u8.shape == frames.shape and (tmp_path / "T10:00" / "qp30.mp4").stat().st_size > 0


@pytest.mark.parametrize("file", ["BQSquare_416x240_60.yuv", "BQSquare_416x240_60_val.yuv", "BQSquare.yuv",
                                  "BQSquare_416x240_60Hz_8bit_P420.yuv", "BQSquare_416x240_60.y4m", "BQSquare.y4m"])
def test_data_finds_a_sequence_by_any_of_its_names_as_yuv_or_y4m(tmp_path, file):
    """--data found SFU-HW sequences kept as raw .yuv only: the same samples kept as .y4m were "no
    BQSquare_416x240_60.yuv (or BQSquare.yuv) in DIR"."""
    from vcm.ctc.config import find_source

    (tmp_path / file).write_bytes(b"")
    (tmp_path / "BQMall.y4m").write_bytes(b"")
    assert find_source("BQSquare", tmp_path) == tmp_path / file
    (tmp_path / file).unlink()
    with pytest.raises(VcmError, match=r"^BQSquare: no BQSquare_416x240_60.yuv \(or BQSquare.yuv, or a .y4m of either "):
        find_source("BQSquare", tmp_path)


def test_data_finds_sequences_kept_in_class_or_sequence_folders_below_it(tmp_path):
    """--data DIR found a sequence only in DIR itself: the JCT-VC sequences kept as ClassC/ and ClassD/, or one
    folder per sequence, were "no BQSquare_416x240_60.yuv … in DIR"."""
    from vcm.ctc.config import find_source

    for path in ("ClassD/BQSquare_416x240_60.yuv", "ClassC/BQMall_832x480_60.yuv",
                 "seqs/PartyScene/PartyScene_832x480_50.yuv", "a/b/c/BasketballPass_416x240_50.yuv",
                 ".trash/BlowingBubbles_416x240_50.yuv", "ClassD/BQSquare.yuv"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"")
    assert find_source("BQSquare", tmp_path) == tmp_path / "ClassD/BQSquare_416x240_60.yuv"
    assert find_source("BQMall", tmp_path) == tmp_path / "ClassC/BQMall_832x480_60.yuv"
    assert find_source("PartyScene", tmp_path) == tmp_path / "seqs/PartyScene/PartyScene_832x480_50.yuv"
    for name in ("BasketballPass", "BlowingBubbles"):  # three levels down; a hidden folder
        with pytest.raises(VcmError, match=rf"^{name}: no .* in {re.escape(str(tmp_path))} or the folders 2 levels "
                                           r"below it$"):
            find_source(name, tmp_path)
    # a name two folders hold: neither is picked by the order folders are listed in
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup/BQSquare_416x240_60.yuv").write_bytes(b"")
    with pytest.raises(VcmError, match=r"^BQSquare: BQSquare_416x240_60.yuv is in .*/ClassD and in .*/backup; name the "
                                       r"folder that holds the one to use$"):
        find_source("BQSquare", tmp_path)
    (tmp_path / "BQSquare_416x240_60_val.yuv").write_bytes(b"")  # one in DIR itself is taken, as before
    assert find_source("BQSquare", tmp_path) == tmp_path / "BQSquare_416x240_60_val.yuv"


def test_an_external_vtms_programs_and_cfg_are_part_of_its_points_inputs(tmp_path):
    """A VTM build or .cfg replaced under the same name is another anchor: its finished points run again."""
    from vcm.ctc.run import inputs_key

    for name in ("EncoderApp", "DecoderApp", "encoder_randomaccess_vtm.cfg"):
        (tmp_path / name).write_text(name)
    vtm = {k: str(tmp_path / n) for k, n in (("encoder", "EncoderApp"), ("decoder", "DecoderApp"),
                                            ("config", "encoder_randomaccess_vtm.cfg"))}
    (_, point), = codecs.get("vvc").points({"qps": [30], "vtm": vtm}, {"name": "A"})
    spec = {"codec": "vvc", "point": point}
    before = inputs_key(spec)
    assert inputs_key(spec) == before and inputs_key({"codec": "vvc", "point": {"qp": 30}}) != before
    (tmp_path / "encoder_randomaccess_vtm.cfg").write_text("GOPSize : 16")
    assert inputs_key(spec) != before
    (tmp_path / "encoder_randomaccess_vtm.cfg").unlink()
    with pytest.raises(VcmError, match="codec vvc: vtm config .*encoder_randomaccess_vtm.cfg does not exist"):
        inputs_key(spec)


FAKE_VTM = """#!{python}
# Stands in for VTM's EncoderApp / DecoderApp with their command lines, coding through ffmpeg's libvvenc.
import subprocess, sys
from vcm.anchors.ffmpeg import ffmpeg_exe
args = sys.argv[1:]
open({log!r}, "a").write(" ".join(args) + "\\n")
opt = {{a: b for a, b in zip(args, args[1:]) if a.startswith("-")}}
base = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
if "-i" in opt:
    period = [a.split("=")[1] for a in args if a.startswith("--IntraPeriod=")][0]
    subprocess.run(base + ["-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", opt["-wdt"] + "x" + opt["-hgt"],
                           "-i", opt["-i"], "-frames:v", opt["-f"], "-c:v", "libvvenc", "-qp", opt["-q"],
                           "-vvenc-params", "IntraPeriod=" + period, "-f", "vvc", opt["-b"]], check=True)
else:
    subprocess.run(base + ["-i", opt["-b"], "-f", "rawvideo", "-pix_fmt", "yuv420p10le", opt["-o"]], check=True)
"""


def test_an_external_vtm_is_run_with_its_command_line_and_the_configurations_intra_period(tmp_path):
    import os
    import stat

    from vcm.anchors.ffmpeg import encode_decode, planes_of
    from vcm.quality import psnr_rgb
    from vcm.video import open_video

    log = tmp_path / "argv.txt"
    for name in ("EncoderApp", "DecoderApp"):
        (tmp_path / name).write_text(FAKE_VTM.format(python=sys.executable, log=str(log)))
        os.chmod(tmp_path / name, stat.S_IRWXU)
    (tmp_path / "encoder_lowdelay_vtm.cfg").write_text("")
    vtm = {"encoder": str(tmp_path / "EncoderApp"), "decoder": str(tmp_path / "DecoderApp"),
           "config": str(tmp_path / "encoder_lowdelay_vtm.cfg")}
    write_yuv420(tmp_path / "A_96x64_30.yuv", moving_frames(t=5, h=64, w=96, noise=0))
    video = open_video(tmp_path / "A_96x64_30.yuv")
    planes, bit_depth = planes_of(video)
    r = encode_decode("vvc", planes, bit_depth, 96, 64, 30, 27, tmp_path / "s.266", vtm=vtm, config="ld")
    assert r.frames_u8.shape == video.frames_u8.shape and r.bitstream.stat().st_size > 0
    assert psnr_rgb(video.frames_u8, r.frames_u8).mean() > 30  # its 10-bit output read back as the frames
    encoder, decoder = log.read_text().splitlines()
    assert f"-c {vtm['config']}" in encoder and "-wdt 96 -hgt 64 -fr 30 -f 5 -q 27" in encoder
    assert "--InternalBitDepth=10" in encoder and "--IntraPeriod=-1" in encoder
    assert decoder.startswith(f"-b {tmp_path / 's.266'} -o ") and decoder.endswith(" -d 10")


def coded_structure(path) -> list[tuple[bool, int]]:
    """(intra, picture order count) of each picture of an HEVC or VVC stream, in decoding order, from ffmpeg's
    trace of its headers (x265's one slice per picture; VVC's picture headers)."""
    import re
    import subprocess

    from vcm.anchors.ffmpeg import ffmpeg_exe

    trace = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-c", "copy", "-bsf:v",
                            "trace_headers", "-f", "null", "-"], capture_output=True, text=True).stderr
    pictures: list[list] = []
    for name, value in re.findall(r"\]\s+\d+\s+(\w+)\s+[01]+ = (-?\d+)", trace):
        if (name == "first_slice_segment_in_pic_flag" and value == "1") or name == "ph_inter_slice_allowed_flag":
            pictures.append([name == "ph_inter_slice_allowed_flag" and value == "0", 0])
        elif name == "slice_type" and pictures:
            pictures[-1][0] = value == "2"
        elif name in ("slice_pic_order_cnt_lsb", "ph_pic_order_cnt_lsb") and pictures:
            pictures[-1][1] = int(value)
    return [tuple(p) for p in pictures]


@pytest.mark.parametrize("codec", ["hevc", "vvc"])
def test_anchor_configs_code_the_ctcs_three_structures(tmp_path, codec):
    """config: ld and ai were read only for the manifest's QPs, and every anchor coded random access."""
    from vcm.anchors.ffmpeg import encode_decode, intra_period, planes_of, settings
    from vcm.video import open_video

    write_yuv420(tmp_path / "A_96x64_30.yuv", moving_frames(t=17, h=64, w=96, noise=0))
    video = open_video(tmp_path / "A_96x64_30.yuv")
    planes, bit_depth = planes_of(video)
    coded = {}
    for config in ("ra", "ld", "ai"):
        r = encode_decode(codec, planes, bit_depth, 96, 64, 30, 37, tmp_path / f"{config}.bin", config=config)
        assert r.frames_u8.shape == video.frames_u8.shape
        coded[config] = coded_structure(r.bitstream)
        assert len(coded[config]) == 17
    ra_order = [poc for _, poc in coded["ra"]]
    assert ra_order != sorted(ra_order)  # random access reorders (hierarchical B frames)
    assert [poc for _, poc in coded["ld"]] == list(range(17))  # low delay: display order
    assert [intra for intra, _ in coded["ld"]] == [True] + [False] * 16
    assert all(intra for intra, _ in coded["ai"])  # (x265 makes each an IDR picture, of order count 0)
    assert (intra_period(30, "ld"), intra_period(30, "ai"), intra_period(30)) == (-1, 1, 32)
    assert "low delay" in settings(codec, 30, config="ld")["config"]
    with pytest.raises(VcmError, match=r"config must be one of ra, ld, ai \(random access, low delay, all intra\)"):
        intra_period(30, "lowdelay")
    # in a CTC config: the point carries the configuration, except random access (finished points keep their keys)
    anchor, seq = codecs.get(codec), {"name": "A"}
    assert anchor.points({"qps": [40]}, seq) == anchor.points({"qps": [40], "config": "ra"}, seq) == \
        [("qp40", {"qp": 40, "preset": None, "vtm": None})]
    assert anchor.points({"qps": [40], "config": "ai"}, seq)[0][1]["config"] == "ai"
    assert anchor.points({"qps": "manifest", "config": "ai"}, {"name": "RaceHorsesD"})[0][1] == \
        {"qp": 12, "preset": None, "vtm": None, "config": "ai"}


TINY = """
sequences:
  - {{name: carphone, path: {carphone}, frames: "0:6"}}
  - {{name: RaceHorsesD, path: {race}, frames: "240:244"}}
  - {{name: Missing, path: {missing}, frames: all}}
device: cpu
detector: {{name: oracle}}
annotations: {ann}
codecs:
  nerv:
    fits:
      - preset: nerv-xs
        params: 8k
        epochs: 3
        batch: 2
        points:
          - {{prune: 0.0, bits: 8, finetune_epochs: 0}}
          - {{prune: 0.2, bits: 7, finetune_epochs: 1}}
          - {{prune: 0.4, bits: 6, finetune_epochs: 1}}
          - {{prune: 0.6, bits: 5, finetune_epochs: 1}}
  hevc: {{qps: [28, 34, 40, 46]}}
  vvc: {{qps: [28, 34, 40, 46]}}
"""


@pytest.fixture(scope="module")
def ctc_inputs(tmp_path_factory, carphone):
    root = tmp_path_factory.mktemp("ctc")
    seq = sequences.lookup("RaceHorsesD")
    race = root / "RaceHorsesD.yuv"  # the CTC clip: 65 frames, source 235..299
    write_yuv420(race, moving_frames(t=seq.ctc_count, h=seq.height, w=seq.width))
    gt = GroundTruth(seq.name, seq.width, seq.height,
                     {f: [Box(40 + f % 7, 30, 120, 90, 0), Box(250, 100, 60, 60, 2)] for f in range(235, 300)})
    (root / "ann").mkdir()
    (root / "ann" / seq.annotations).write_text(json.dumps(to_coco_json(gt, 235)))
    cfg = root / "tiny.yaml"
    cfg.write_text(TINY.format(carphone=carphone, race=race, missing=root / "nope.mp4", ann=root / "ann"))
    return root, cfg


@pytest.mark.slow
def test_ctc_run_and_report_end_to_end(ctc_inputs):
    root, cfg = ctc_inputs
    out = root / "out"
    first = run_main("ctc", "run", cfg, "--out", out, "--json")
    assert first.returncode == 1  # the Missing sequence fails; the others run on
    r = json.loads(first.stdout)
    assert r["points"] == 3 * 12 and r["failed"] == 12 and r["ran"] == 36
    failed = json.loads((out / "points" / "Missing" / "hevc" / "qp28" / "result.json").read_text())
    assert failed["status"] == "failed" and "does not exist" in failed["error"]
    # One fit serves the four NeRV points of a sequence.
    assert len(list((out / "fits" / "carphone" / "nerv").glob("*/checkpoint.pt"))) == 1
    again = run_main("ctc", "run", cfg, "--out", out, "--json", "--only", "carphone,RaceHorsesD")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["reused"] == 24 and json.loads(again.stdout)["ran"] == 0
    plain = run_main("ctc", "run", cfg, "--out", out, "--only", "carphone")
    assert plain.returncode == 0 and "reusing 12 finished points from" in plain.stderr  # never a silent skip

    rep = run_main("ctc", "report", out, "--anchor", "hevc", "--json")
    assert rep.returncode == 0, rep.stderr
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 and {"Dataset", "bitrate (kbps)", "end_accuracy", "nn_task", "qp"} <= set(rows[0])
    race = [row for row in rows if row["Dataset"] == "RaceHorsesD"]
    assert all(float(row["end_accuracy"]) == pytest.approx(100.0) for row in race)  # oracle detector
    assert all(row["end_accuracy"] == "" for row in rows if row["Dataset"] == "carphone")  # no ground truth
    bdj = json.loads((out / "bd.json").read_text())
    carphone_vvc = next(b for b in bdj["sequences"] if b["sequence"] == "carphone" and b["codec"] == "vvc")
    assert -60 < carphone_vvc["bd_rate_psnr_y"] < 0  # VVC saves bits over HEVC at equal Y-PSNR
    assert 0 < carphone_vvc["overlap_psnr_y"] <= 1 and bdj["metric"] == "psnr_y"
    assert carphone_vvc["note_map"] == "not measured"  # carphone has no ground truth
    assert (out / "plots" / "carphone.png").stat().st_size > 1000
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "BD-rate" in page and "Failed points" in page
    assert "class D" in (out / "report.md").read_text()


@pytest.mark.slow
def test_ctc_ray_backend(ctc_inputs):
    pytest.importorskip("ray")
    root, cfg = ctc_inputs
    proc = run_main("ctc", "run", cfg, "--out", root / "ray", "--json", "--only", "carphone", "--codecs", "hevc",
                    "--backend", "ray", "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["ran"] == 4 and r["failed"] == 0
    assert json.loads((root / "ray" / "points" / "carphone" / "hevc" / "qp34" / "result.json").read_text())["status"] == "ok"
    import ray

    assert not ray.is_initialized()  # the Ray it started ended with the sweep (a library caller goes on without it)


def _ray_sweep_here(folder: Path, cfg: Path, *args: str, prefix: tuple[str, ...] = (), env: dict | None = None):
    """``vcm ctc run CFG --out out`` (a path relative to ``folder``, where it runs) on carphone's HEVC points with
    the Ray backend → the finished process."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {"PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([*prefix, sys.executable, "-m", "vcm", "ctc", "run", str(cfg), "--out", "out", "--only",
                           "carphone", "--codecs", "hevc", "--backend", "ray", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


def _points_in(folder: Path) -> list[str]:
    return sorted(p.parent.name for p in folder.glob("out/points/carphone/hevc/*/result.json"))


@pytest.mark.slow
def test_a_ray_sweep_under_uv_run_writes_its_points_where_it_was_asked(ctc_inputs, tmp_path):
    """Under `uv run` (the README's way), Ray copied the folder vcm ran in to /tmp/ray (a checkout's .venv
    included: 6 GB a sweep) and ran the points in the copy: a relative --out got its points there, and the
    user's folder none."""
    import shutil

    pytest.importorskip("ray")
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("no uv on this machine")
    _, cfg = ctc_inputs
    done = _ray_sweep_here(tmp_path, cfg, prefix=(uv, "run", "--no-project", "--python", sys.executable))
    assert done.returncode == 0, done.stderr[-2000:]
    assert _points_in(tmp_path) == ["qp28", "qp34", "qp40", "qp46"]


@pytest.mark.slow
def test_a_ray_sweep_on_a_cluster_started_elsewhere_runs_its_points_in_its_own_folder(ctc_inputs, tmp_path):
    """A cluster's workers start in the folder `ray start` ran in: a relative --out put the points there."""
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import tempfile
    import time

    pytest.importorskip("ray")
    _, cfg = ctc_inputs
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="vr")  # short: Ray's sockets live there; the cluster's address file too
    env = {"RAY_AUTH_MODE": "disabled"}  # no token in ~/.ray to make or read
    cluster = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--port", str(port),
                                "--num-cpus", "2", "--include-dashboard", "false", "--temp-dir", temp, "--block"],
                               cwd=theirs, env=os.environ | env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.time() < deadline and cluster.poll() is None, "the cluster did not start"
            time.sleep(0.5)
        done = _ray_sweep_here(mine, cfg, "--ray-address", f"127.0.0.1:{port}", env=env)
    finally:  # the whole cluster (its GCS, raylet and workers share the session)
        os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait()
        shutil.rmtree(temp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _points_in(mine) == ["qp28", "qp34", "qp40", "qp46"] and _points_in(theirs) == []


def test_a_ray_address_nothing_answers_at_is_one_line_at_once(ctc_inputs, tmp_path):
    """Ray retried such an address for minutes (a warning every few seconds, in its C++ client: a process of its
    own, so that the test fails instead of waiting); RAY_ADDRESS, which Ray reads too, met vcm's CPU count with a
    traceback."""
    import socket

    pytest.importorskip("ray")
    _, cfg = ctc_inputs
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens
    for how, env in ((("--ray-address", f"127.0.0.1:{port}"), {}), ((), {"RAY_ADDRESS": f"127.0.0.1:{port}"})):
        done = run_cli("ctc", "run", cfg, "--out", tmp_path / "out", "--only", "carphone", "--codecs", "hevc",
                       "--backend", "ray", *how, env=env, timeout=120)
        named = f"--ray-address 127.0.0.1:{port}" if how else f"RAY_ADDRESS=127.0.0.1:{port}"
        assert done.returncode == 1 and done.stderr.strip().splitlines() == [
            f"error: {named}: nothing answers there (Connection refused); start the cluster (ray start --head), or "
            f"leave the address out for a local Ray"], done.stderr
        assert not (tmp_path / "out").exists()  # refused before the results folder is made


def test_a_ray_address_with_the_local_backend_is_refused(tmp_path):
    """The points ran in the local process pool and the cluster named went unused, without a word."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"sequences": [_SEQ], "detector": None, "codecs": {"hevc": {"qps": [44]}}}))
    for dry in ((), ("--dry-run",)):
        r = run_main("ctc", "run", cfg, "--out", tmp_path / "o", "--ray-address", "127.0.0.1:6379", *dry)
        assert r.returncode == 1 and r.stderr == ("error: --ray-address does not apply to --backend local (it names a "
                                                  "Ray cluster; add --backend ray)\n"), r.stderr
    assert not (tmp_path / "o").exists()


def test_a_ray_sweep_of_vcms_own_on_a_device_this_machine_lacks_is_refused_at_once(ctc_inputs, tmp_path):
    """A Ray of vcm's own runs its points on this machine: --device cuda without a GPU left every point waiting for
    one, the sweep showing 0/N for ever (the local backend refused it already)."""
    import torch

    pytest.importorskip("ray")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    _, cfg = ctc_inputs
    for dry in ((), ("--dry-run",)):
        done = run_main("ctc", "run", cfg, "--out", tmp_path / "out", "--only", "carphone", "--codecs", "hevc",
                        "--backend", "ray", "--device", "cuda", *dry)
        assert done.returncode == 1 and done.stderr.strip().splitlines() == [
            "error: --device cuda was asked for but no CUDA GPU is available; use --device cpu or auto"], done.stderr
        assert not (tmp_path / "out").exists()


def test_a_ray_that_does_not_start_is_one_line(monkeypatch):
    import types

    import vcm.ctc.run as runner

    def refuse(**kwargs):
        raise ConnectionError("Could not find any running Ray instance.\nmore")

    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: False, init=refuse))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(VcmError, match=r"^Ray did not start \(--ray-address auto\): Could not find any running Ray "
                                       r"instance\.$"):
        runner._execute_ray([{}], 1, "auto")
    with pytest.raises(VcmError, match=r"^Ray did not start: Could not"):
        runner._execute_ray([{}], 1, None)


def test_a_ray_sweep_ends_only_the_ray_it_started_and_gives_back_the_signal_handlers(monkeypatch):
    import signal
    import types

    import vcm.ctc.run as runner

    calls = []
    fake = types.SimpleNamespace(is_initialized=lambda: "caller" in calls, init=lambda **kw: calls.append("init"),
                                 shutdown=lambda: calls.append("shutdown"))
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(runner, "_sweep_on_ray", lambda ray, specs: calls.append("sweep") or [])
    mine = lambda signum, frame: None  # noqa: E731
    monkeypatch.setattr(signal, "getsignal", lambda s: mine)
    restored = []
    monkeypatch.setattr(signal, "signal", lambda s, h: restored.append((s, h)))
    assert runner._execute_ray([], 1, None) == [] and calls == ["init", "sweep", "shutdown"]
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP)
    assert restored[-5:] == [(s, mine) for s in stops]  # after vcm's own, during the sweep
    calls[:] = ["caller"]  # Ray already up: the caller's, used and left running
    assert runner._execute_ray([], 1, None) == [] and calls == ["caller", "sweep"]


def test_a_ray_imported_before_the_sweep_still_starts_its_workers_in_the_drivers_environment(monkeypatch):
    """Ray reads RAY_ENABLE_UV_RUN_RUNTIME_ENV once, when first imported: a Ray a script (or pytest.importorskip)
    imported before vcm's sweep started its workers under `uv run --python X.Y.Z` in a copy of the folder, and on a
    pyenv Python 3.10, where uv found no such interpreter, every point failed after minutes of retries."""
    uv_runtime_env_hook = pytest.importorskip("ray._private.runtime_env.uv_runtime_env_hook",
                                              reason="this Ray has no `uv run` hook to opt out of")
    from ray._private import ray_constants, worker

    import vcm.ctc.run as runner

    monkeypatch.setenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "")  # recorded, so that the test leaves it as it was
    monkeypatch.delenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV")
    monkeypatch.setattr(ray_constants, "RAY_ENABLE_UV_RUN_RUNTIME_ENV", True)  # Ray's reading of it unset
    monkeypatch.setattr(uv_runtime_env_hook, "_get_uv_run_cmdline", lambda: ["uv", "run", "pytest"])
    assert "py_executable" in worker._maybe_modify_runtime_env(None, False)  # Ray's own decision, under `uv run`
    runner._ray_without_uv_workers()
    assert not worker._maybe_modify_runtime_env(None, False)
    monkeypatch.setenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "1")  # the user's own setting stays
    runner._ray_without_uv_workers()
    assert "py_executable" in worker._maybe_modify_runtime_env(None, False)


@pytest.mark.slow
def test_demo_runs_end_to_end_with_hinerv_and_sa_hinerv(tmp_path):
    """The README's first command on one epoch of carphone's first 24 frames: every codec of the demo, the
    report, both BD-rates and Table 1 (SA-HiNeRV vs HiNeRV); with a detector (here a cheap one of the user's,
    as a machine with weights would have YOLOv7), pseudo-ground-truth mAP on every point, and mAP BD-rates."""
    blob = Path(__file__).with_name("blob_detector.py")
    proc = run_cli("demo", "--epochs", "1", "--frames", "0:24", "--out", tmp_path / "demo", "--json", cwd=tmp_path,
                   timeout=900, env={"VCM_PROGRESS": "lines", "VCM_PROGRESS_INTERVAL": "5", "VCM_DEMO_DETECTOR": f"{blob}:make"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "carphone (176x144, frames 0:24 of 120, not the demo's figures)" in proc.stderr
    gaps = progress_gaps(proc.stderr)  # piped, as in a cluster log: never silent for long
    assert len(gaps) > 20 and max(gaps) <= 15, (max(gaps), proc.stderr[-3000:])
    summary = json.loads(proc.stdout)
    assert summary["frames"] == [0, 24]
    curves = {p["curve"] for p in summary["points"]}
    assert curves == {"hinerv-rd", "sa-hinerv-rd", "hevc", "vvc"}
    assert set(summary["bd_rate"]) == {"hinerv-rd", "sa-hinerv-rd"} and summary["bd_metric"] == "psnr_y"
    assert all(set(v) == {"hevc", "vvc"} for v in summary["bd_rate"].values())
    assert all("overlap" in b for v in summary["bd_rate"].values() for b in v.values())
    # a network per rate range: the preset's network for the upper points, a smaller one for the lower
    assert set(summary["fits"]) == {f"{codec}/hinerv-demo{size}_e1" for codec in ("hinerv", "sa-hinerv") for size in ("", "_w0p5")}
    assert summary["fits"]["hinerv/hinerv-demo_w0p5_e1"]["params"] < summary["fits"]["hinerv/hinerv-demo_e1"]["params"]
    html = (tmp_path / "demo" / "report.html").read_text()
    assert "hinerv-rd" in html and "sa-hinerv-rd" in html and "the paper's Table 1" in html
    assert [row["comparison"] for row in summary["table1"]] == ["sa-hinerv-rd vs hinerv-rd"]
    fit_config = next((tmp_path / "demo" / "fits" / "carphone" / "sa-hinerv").glob("*/config.json"))
    assert json.loads(fit_config.read_text())["masks"]["source"] == "boxes:opencv-face"  # the edge loss ran, without SAM
    streams = sorted((tmp_path / "demo" / "points" / "carphone" / "hinerv").glob("*/stream.nerv"))
    assert len(streams) == 4 and all(s.read_bytes()[4] == 6 for s in streams)
    results = [json.loads(r.read_text()) for r in (tmp_path / "demo" / "points").glob("*/*/*/result.json")]
    assert len(results) == 20 and {r["frames"] for r in results} == {24}  # every codec coded the frames asked for
    assert summary["detector"]["ground_truth"].startswith("pseudo ground truth: ") and summary["detector"]["every"] == 12
    assert all(p["map"] is not None for p in summary["points"])
    assert {p["label"] for p in summary["points"] if p["curve"] == "hinerv-rd"} == {"λ0.1", "λ1.0", "λ4.0", "λ20.0"}
    assert set(summary["bd_rate_map"]) == {"hinerv-rd", "sa-hinerv-rd"} and "BD-rate (mAP)" in html
    assert "no detector weights" not in proc.stderr


def test_lambda_points_get_their_own_rate_aware_fit_unless_told_to_share():
    from vcm import codecs

    hinerv = codecs.get("hinerv")
    seq = {"name": "carphone"}
    fit = {"preset": "hinerv-demo", "epochs": 5, "points": [{"lambda": 0.3}, {"lambda": 1}, {"prune": 0.4, "bits": 8}]}
    own = hinerv.points({"fits": [fit]}, seq)
    keys = [p["fit_key"] for _, p in own]
    assert keys[0] != keys[1] and keys[2] == "hinerv-demo_e5"  # one rate-aware fit per λ; the affine point shares none
    assert [p["fit"].get("rate_lambda") for _, p in own] == [0.3, 1.0, None]
    shared = hinerv.points({"fits": [{**fit, "rate_aware": False}]}, seq)
    assert len({p["fit_key"] for _, p in shared}) == 1 and all("rate_lambda" not in p["fit"] for _, p in shared)


def test_a_fit_sections_seed_keys_its_folder_and_seeds_the_fit_and_its_stages(tmp_path, monkeypatch):
    """The same section from another start (a run-to-run spread): its own fit folder, the fit's seed in
    training, and the same seed in each point's rate–distortion or fine-tuning stage."""
    import vcm.codec.compress as compress
    import vcm.nerv.train as train
    from tests.conftest import tiny_video
    from vcm import codecs

    hinerv = codecs.get("hinerv")
    seq = {"name": "carphone"}
    fit = {"preset": "hinerv-demo", "rate_aware": False, "points": [{"lambda": 4}, {"prune": 0.4}]}
    plain = hinerv.points({"fits": [fit]}, seq)
    seeded = hinerv.points({"fits": [{**fit, "seed": 3}]}, seq)
    assert [p["fit_key"] for _, p in plain] == ["hinerv-demo"] * 2
    assert [p["fit_key"] for _, p in seeded] == ["hinerv-demo_seed3"] * 2
    assert all(p["fit"]["seed"] == 3 for _, p in seeded) and "seed" not in plain[0][1]["fit"]
    for bad in (-1, "1", 1.5, True, 2**63):  # 2^63: torch's generators overflowed deep in the fit
        with pytest.raises(VcmError, match="seed must be a whole number"):
            hinerv.points({"fits": [{**fit, "seed": bad}]}, seq)
    assert hinerv.points({"fits": [{**fit, "seed": 2**63 - 1}]}, seq)[0][1]["fit"]["seed"] == 2**63 - 1
    scaled = hinerv.points({"fits": [{**fit, "width_scale": 0.45}]}, seq)
    assert [p["fit_key"] for _, p in scaled] == ["hinerv-demo_w0p45"] * 2  # its own folder: another network
    with pytest.raises(VcmError, match="width_scale"):
        hinerv.points({"fits": [{**fit, "width_scale": "half"}]}, seq)

    class Stop(Exception):
        pass

    def caught(name):
        def record(*args, **kwargs):
            raise Stop(name, args, kwargs)
        return record

    monkeypatch.setattr(train, "fit", caught("fit"))
    video = tiny_video(tmp_path, t=4)
    (pid, point), = [seeded[0]]
    spec = {"point": point, "out": str(tmp_path / "out"), "sequence": "carphone", "workdir": str(tmp_path / "w")}
    with pytest.raises(Stop) as fitted:
        hinerv.encode_decode(spec, video, "cpu")
    assert fitted.value.args[0] == "fit" and fitted.value.args[1][2].seed == 3  # fit(video, model, cfg, ...)
    monkeypatch.setattr(type(hinerv), "_fit", lambda self, spec, video, device: (tmp_path, 0.0))
    monkeypatch.setattr(compress, "compress_run", caught("compress"))
    for (_, point), expected in ((seeded[0], 3), (seeded[1], 3), (plain[0], 0)):
        with pytest.raises(Stop) as stage:
            hinerv.encode_decode({**spec, "point": point}, video, "cpu")
        assert stage.value.args[1][2].seed == expected  # compress_run(fit_dir, out, opts, device)


def test_a_stage_seed_reseeds_the_stages_alone_and_names_its_points(tmp_path, monkeypatch):
    """``stage_seed``: the same fit (same folder, same fit seed), its points under their own names (a chain's
    links too) and their stages seeded with it; refused unless a whole number ≥ 0."""
    import vcm.codec.compress as compress
    from tests.conftest import tiny_video
    from vcm import codecs

    hinerv = codecs.get("hinerv")
    seq = {"name": "carphone"}
    fit = {"preset": "hinerv-demo", "rate_aware": False, "seed": 2, "points": [{"lambda": 1}, {"lambda": 4}, {"prune": 0.4}]}
    plain = hinerv.points({"fits": [fit]}, seq)
    restaged = hinerv.points({"fits": [{**fit, "stage_seed": 5}]}, seq)
    assert [p["fit_key"] for _, p in restaged] == [p["fit_key"] for _, p in plain] == ["hinerv-demo_seed2"] * 3
    assert [pid for pid, _ in restaged] == ["hinerv-demo_seed2_rd_l1p0_ss5", "hinerv-demo_seed2_rd_l4p0_ss5_from_l1p0",
                                            "hinerv-demo_seed2_pr0p4_b8_ss5"]
    assert restaged[1][1]["warm_from"] == restaged[0][0]  # the chain follows its own links, not the plain ones
    assert all("stage_seed" not in p and "stage_seed" not in p["fit"] for _, p in plain)
    for bad in (-1, "1", 1.5, True, 2**63):
        with pytest.raises(VcmError, match="stage_seed must be a whole number"):
            hinerv.points({"fits": [{**fit, "stage_seed": bad}]}, seq)
    for points in ([{"bits": 8}], [{"prune": 0.4, "finetune_epochs": 0}, {"bits": 6}]):  # every seed, the same bytes
        with pytest.raises(VcmError, match="hinerv fit: stage_seed 5 seeds no stage: its points draw nothing at"):
            hinerv.points({"fits": [{**fit, "stage_seed": 5, "points": points}]}, seq)
    assert len(hinerv.points({"fits": [{**fit, "stage_seed": 5, "points": [{"bits": 8}, {"qat": True}]}]}, seq)) == 2
    # a rate-aware fit's λ point codes the fit's own quantizers, training nothing, unless it asks for steps
    aware = {**fit, "rate_aware": True, "stage_seed": 5, "points": [{"lambda": 1}, {"lambda": 4}]}
    with pytest.raises(VcmError, match="a rate-aware fit's λ points train no stage unless they set rd_steps"):
        hinerv.points({"fits": [aware]}, seq)
    assert len(hinerv.points({"fits": [{**aware, "points": [{"lambda": 1}, {"lambda": 4, "rd_steps": 9}]}]}, seq)) == 2
    with pytest.raises(VcmError, match="seeds no stage"):  # pruned, as vcm compress --prune codes it: no stage either
        hinerv.points({"fits": [{**aware, "points": [{"lambda": 1}, {"lambda": 4, "prune": 0.4}]}]}, seq)

    class Stop(Exception):
        pass

    def caught(*args, **kwargs):
        raise Stop(args, kwargs)

    monkeypatch.setattr(type(hinerv), "_fit", lambda self, spec, video, device: (tmp_path, 0.0))
    monkeypatch.setattr(compress, "compress_run", caught)
    video = tiny_video(tmp_path, t=4)
    spec = {"out": str(tmp_path / "out"), "sequence": "carphone", "workdir": str(tmp_path / "w")}
    for points, expected in ((restaged, 5), (plain, 2)):
        for _, point in points:
            with pytest.raises(Stop) as stage:
                hinerv.encode_decode({**spec, "point": point}, video, "cpu")
            assert stage.value.args[0][2].seed == expected  # compress_run(fit_dir, out, opts, device)


@pytest.mark.parametrize("edit, message", [
    ({"codecs": {"nerv": {"fits": [{"preset": "demo", "points": [{"prun": 0.4}]}]}}}, "prun"),
    ({"codecs": {"hevc": {"qp": [22]}}}, "codec hevc: unknown key qp"),
    ({"detector": {"name": "oracle", "weight": "x.pt"}}, "weight"),
    ({"sequence": ["x"]}, "unknown key sequence"),
    ({"codecs": {"nerv": {"fits": [{"preset": "demo", "epoch": 3}]}}}, "epoch"),
    ({"codecs": {"hinerv": {"fits": [{"preset": "hinerv-demo", "rd_steps": 6, "points": [{"lambda": 1}]}]}}},
     "unknown key rd_steps; valid: batch, chain, compute, epochs, lr, params, points, preset, rate_aware, seed, stage_seed, "
     "steps, width_scale (rd_steps is a key of each point: points: [{rd_steps: ..., ...}])"),
    ({"codecs": {"sa-hinerv": {"masks": {"source": "sobel"}, "fits": [{"preset": "hinerv-demo"}]}}}, "mask source 'sobel'"),
])
def test_a_typo_anywhere_in_a_ctc_config_is_refused_with_the_valid_keys(tmp_path, edit, message):
    from vcm.ctc.run import run

    base = {"sequences": [{"name": "c", "path": "sample:carphone", "frames": "0:2"}], "codecs": {"hevc": {"qps": [40]}}}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({**base, **edit}))
    with pytest.raises(VcmError) as err:
        run(cfg, tmp_path / "o")
    assert message in str(err.value) and "valid:" in str(err.value)
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_a_config_may_keep_yaml_anchors_under_x_keys(tmp_path):
    """A section shared by several codecs or sequences (a YAML anchor) had nowhere to live: every top-level key but
    vcm's was refused. Keys starting with x- are the user's, as in Compose files; any other is still refused."""
    from vcm.ctc.run import preview

    cfg = tmp_path / "c.yaml"
    cfg.write_text("x-seq: &seq {path: 'sample:carphone', frames: '0:2'}\n"
                   "x-anchor: &anchor {qps: [40, 44]}\n"
                   "sequences: [{<<: *seq, name: a}, {<<: *seq, name: b, frames: '2:4'}]\n"
                   "codecs: {hevc: *anchor, vvc: *anchor}\n")
    plan = preview(cfg, tmp_path / "out")
    assert sorted((p["sequence"], p["codec"], p["point"]) for p in plan["plan"]) == [
        (s, c, f"qp{q}") for s in "ab" for c in ("hevc", "vvc") for q in (40, 44)]
    cfg.write_text(cfg.read_text().replace("x-anchor", "anchor"))
    with pytest.raises(VcmError, match=r"unknown key anchor; valid: .* \(and x-NAME, yours: for YAML anchors\)$"):
        preview(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


_SEQ = {"name": "c", "path": "sample:carphone", "frames": "0:2"}


# each was a traceback (TypeError, ValueError, OverflowError) in the planner
@pytest.mark.parametrize("edit, message", [
    ({"sequences": [{**_SEQ, "path": ["a.yuv"]}]},
     "sequence c: path must be a video's path or sample:NAME (a string), got"),
    ({"codecs": {"hinerv": {"fits": [{"preset": True, "points": [{"lambda": 1}]}]}}}, "preset must be a preset's name"),
    ({"codecs": {"hinerv": {"fits": [{"params": "inf", "points": [{"lambda": 1}]}]}}},
     "params inf is more than a .nerv"),
    ({"codecs": {"hevc": {"qps": [40], "config": {"ra": 1}}}}, "config must be one of ra, ld, ai"),
    ({"codecs": {"sa-hinerv": {"masks": {"source": "canny", "config": ["x.yaml"]}}}},
     "sa-hinerv masks: config must be a string"),
    ({"codecs": {"sa-hinerv": {"masks": {"source": "canny", "alpha": "high"}}}},
     "masks: alpha must be a number in [0, 1]"),
    ({"codecs": {"hinerv": {"fits": [{"rate_aware": False, "points": [{"lambda": 1}, {"lambda": "2:5"}]}]}}},
     "lambda must be a number, got '2:5'"),
])
def test_a_value_of_the_wrong_type_in_a_ctc_config_is_one_line_not_a_traceback(tmp_path, edit, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"sequences": [_SEQ], "codecs": {"hevc": {"qps": [40]}}, **edit}))
    r = run_main("ctc", "run", cfg, "--out", tmp_path / "o", "--dry-run")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and message in r.stderr and r.stderr.count("\n") == 1, r.stderr


@pytest.mark.parametrize("detector, message", [
    ({"name": "oracle", "settings": {"conf": 1}}, "the oracle detector has no settings"),
    ({"name": "opencv-face", "settings": {"scale_fator": 1.2}}, "unknown key scale_fator; valid: max_size"),
    ({"name": "opencv-face", "settings": {"scale_factor": 0.5}}, "scale_factor must be above 1"),
    ({"name": "yolov7", "settings": {"img_size": "big"}}, "yolov7 setting img_size must be int, got 'big'"),
    ({"name": "fasterrcnn_mobilenet_v3_large_fpn", "settings": {"score_threshold": float("nan")}},
     "score_threshold must be a number of at least 0"),
    ({"name": "fasterrcnn_mobilenet_v3_large_fpn", "settings": ["score_threshold=0.5"]}, "settings must be a mapping"),
])
def test_a_detectors_settings_are_checked_before_any_point_is_coded(tmp_path, detector, message):
    """Each ran the anchors' encoder and failed every point at its evaluation."""
    from vcm.ctc.run import run

    for where in ("config", "sequence"):
        cfg = tmp_path / f"{where}.yaml"
        seq = {**_SEQ, "reference": "original"}
        cfg.write_text(json.dumps({"sequences": [{**seq, "detector": detector} if where == "sequence" else seq],
                                   "codecs": {"hevc": {"qps": [40]}},
                                   **({"detector": detector, "reference": "original"} if where == "config" else {})}))
        with pytest.raises(VcmError, match=re.escape(message)):
            run(cfg, tmp_path / "o")
        assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("point, message", [
    ({"lambda": "abc"}, "lambda must be a number, got 'abc'"),  # was a traceback
    ({"lambda": -1}, "lambda must be a positive number"),  # each was refused only once its fit had trained
    ({"lambda": 1, "prune": 1.5}, "prune must be in [0, 1)"),
    ({"lambda": 1, "rd_steps": 2.5}, "rd_steps must be a whole number"),
    ({"match": "hevc", "lambda": 0}, "lambda must be a positive number"),
    ({"prune": 0.4, "bits": 1}, "bits must be in 2..16"),
    ({"prune": 0.4, "bits": "8"}, "bits must be a whole number"),
])
def test_a_points_values_are_checked_before_anything_is_fitted(tmp_path, point, message):
    from vcm.ctc.run import run

    codec = "nerv" if "bits" in point else "hinerv"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"sequences": [{"name": "c", "path": "sample:carphone", "frames": "0:2"}],
                               "codecs": {codec: {"fits": [{"rate_aware": False, "points": [point]}]},
                                          "hevc": {"qps": [40]}}}))
    with pytest.raises(VcmError) as err:
        run(cfg, tmp_path / "o")
    assert message in str(err.value) and str(err.value).startswith(f"{codec} point ")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("fit, message", [
    ({"steps": "abc"}, "steps must be a whole number, got 'abc'"),  # was a TypeError from the fit
    ({"steps": -5}, "steps must be from 1 to 1,000,000,000, got -5"),  # each was refused only when its fit started,
    ({"batch": 0}, "batch"),  # after every fit before it in the config had trained
    ({"params": "abc"}, "params must look like"),
    ({"preset": "nope"}, "unknown preset 'nope'"),
    ({"steps": 2 * 10**9}, "steps must be from 1 to 1,000,000,000"),  # trained on without end
])
def test_a_fits_values_are_checked_before_anything_is_fitted(tmp_path, fit, message):
    from vcm.ctc.run import run

    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"sequences": [{"name": "c", "path": "sample:carphone", "frames": "0:2"}],
                               "codecs": {"hinerv": {"fits": [{"points": [{"lambda": 1}]},
                                                              {**fit, "points": [{"lambda": 2}]}]}}}))
    with pytest.raises(VcmError) as err:
        run(cfg, tmp_path / "o")
    assert message in str(err.value) and str(err.value).startswith("hinerv fit ")
    assert not (tmp_path / "o").exists()


def test_a_fit_of_more_epochs_than_any_run_finishes_is_named_with_its_sequence_in_a_dry_run(tmp_path):
    """Epochs become steps on each sequence's frames: a fit past 10^9 optimiser steps on one of them is named, with
    that sequence, by `vcm ctc run --dry-run` (the run itself records its points as failed with the same line)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"sequences": [{"name": "c", "path": "sample:carphone", "frames": "0:8"}],
                               "codecs": {"hinerv": {"fits": [{"epochs": 10**9, "points": [{"lambda": 2}]}]}}}))
    proc = run_main("ctc", "run", cfg, "--out", tmp_path / "o", "--dry-run")
    assert proc.returncode == 1 and "hinerv fit {" in proc.stderr and " on c: 1,000,000,000 epochs of 8 frames" in \
        proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("sequence, codecs, message", [
    ({}, {"hevc": {"qps": ["abc"]}}, "qps must be a list of whole numbers from 0 to 51"),  # was a traceback
    ({}, {"hevc": {"qps": 30}}, "qps must be a list"),  # a traceback too
    ({}, {"hevc": {"qps": [-1]}}, "from 0 to 51"),  # x265 crashed (exit code -11)
    ({}, {"vvc": {"qps": [30.5]}}, "from 0 to 63"),  # ran as QP 30
    ({"frames": 5}, {"hevc": {"qps": [40]}}, "sequence c: frames must be"),  # an AttributeError in each point
    # each failed in every point, named as a command's --frames
    ({"frames": "9:4"}, {"hevc": {"qps": [40]}}, "sequence c: frames 9:4 selects no frame (A:B is A up to B, B exclusive)"),
    ({"frames": "1:2:3"}, {"hevc": {"qps": [40]}}, "sequence c: frames must be ctc, all, auto or A:B (source frame indices, B exclusive), got '1:2:3'"),
    ({"frames": "a:b"}, {"hevc": {"qps": [40]}}, "sequence c: frames A:B needs integers, got 'a:b'"),
    ({"frames": "-3:5"}, {"hevc": {"qps": [40]}}, "sequence c: frames -3:5 starts before frame 0"),
    ({"frames": "ctc"}, {"hevc": {"qps": [40]}},  # failed in every point, each saying so
     "sequence c: frames ctc needs an SFU-HW sequence, and carphone_pristine.mp4 is not one; give the entry frames: "
     "all, auto or A:B"),
    ({"frames": None, "top": {"frames": "ctc"}}, {"hevc": {"qps": [40]}},
     "sequence c: frames ctc (the config's frames, which every entry without its own takes) needs an SFU-HW"),
    ({"detector": {"name": "yolo7"}}, {"hevc": {"qps": [40]}}, "unknown detector 'yolo7'"),  # no mAP, no word
    ({"detector": {"name": "opencv-face", "every": 0}}, {"hevc": {"qps": [40]}}, "every must be a whole number"),
    ({"reference_score": 7, "reference": "original", "detector": {"name": "opencv-face"}}, {"hevc": {"qps": [40]}},
     "reference_score must be a number between 0 and 1"),
    # each unread, without a word
    ({"reference_score": 0.3}, {"hevc": {"qps": [40]}},
     "sequence c: reference_score is unread: no detector scores it (detector: null); leave it out"),
    ({"category_map": ["car=truck"], "reference": "original", "detector": {"name": "opencv-face"}},
     {"hevc": {"qps": [40]}}, "sequence c: category_map is unread: reference: original scores it against the "
                              "detector's own detections on the original; leave it out"),
    ({"reference_score": 0.3, "detector": {"name": "opencv-face"}}, {"hevc": {"qps": [40]}},
     "sequence c: reference_score is unread: it is the score of pseudo ground truth (reference: original)"),
    ({"top": {"annotations": "ann"}}, {"hevc": {"qps": [40]}}, "annotations ann is unread: no sequence is scored "
                                                               "against annotations (each has detector: null or"),
    ({"top": {"reference": "original"}}, {"hevc": {"qps": [40]}},
     "reference original is unread: no sequence has a detector (detector: null); leave it out"),
    ({"top": {"reference_score": 0.2, "detector": {"name": "opencv-face"}}}, {"hevc": {"qps": [40]}},
     "reference_score 0.2 is unread: no sequence is scored against pseudo ground truth (reference: original)"),
    # sections of the wrong shape: each was a TypeError or AttributeError traceback
    ({}, 3, "codecs must be a mapping of codec name: its section, got 3"),
    ({}, {"hinerv": {"fits": 3}}, "hinerv fits must be a list of fits"),
    ({}, {"hinerv": {"fits": [3]}}, "hinerv fits must be a list of fits"),
    ({}, {"hinerv": {"fits": [{"points": 3}]}}, "hinerv fit: points must be a list of points"),
    ({}, {"hinerv": {"fits": [{"points": [3]}]}}, "hinerv fit: points must be a list of points"),
    ({}, {"sa-hinerv": {"masks": 3}}, "sa-hinerv masks must be a mapping such as {source: canny}, got 3"),
    ({}, {"sa-icm": {"checkpoints": 3}}, "sa-icm checkpoints must be a list of checkpoint paths"),
    ({}, {"sa-icm": {"checkpoints": ["m.pth"], "arch": "foo"}}, "unknown codec architecture 'foo'"),
    ({}, {"sa-icm": {"checkpoints": ["m.pth"]}}, "sa-icm checkpoint m.pth not found"),  # failed in every point
    # sections of no points: each ran as a curve of none, silently
    ({}, {"hevc": {"qps": [40], "config": "lowdelay"}}, "codec hevc: config must be one of ra, ld, ai"),
    # each failed in every point: ffmpeg's "Nothing was written", a TypeError, a KeyError
    ({}, {"hevc": {"qps": [40], "preset": "warp"}}, "codec hevc: preset must be one of ultrafast, superfast"),
    ({}, {"vvc": {"qps": [40], "preset": 7}}, "codec vvc: preset must be one of faster, fast, medium, slow, slower, "
                                              "got 7"),
    ({}, {"hevc": {"qps": [40], "vtm": {"encoder": "EncoderApp"}}}, "codec hevc: vtm must be {encoder: EncoderApp"),
    ({}, {"vvc": {"qps": [40], "vtm": 3}}, "codec vvc: vtm must be {encoder: EncoderApp"),
    ({}, {"vvc": {"qps": [40], "vtm": {"encoder": "no-such-EncoderApp", "decoder": "d", "config": "c.cfg"}}},
     "codec vvc: vtm encoder no-such-EncoderApp is neither a file nor a command on PATH"),
    ({}, {"vvc": {"qps": [40], "preset": "slow", "vtm": {"encoder": "e", "decoder": "d", "config": "c.cfg"}}},
     "codec vvc: preset slow is the ffmpeg encoder's, and vtm codes with an external encoder, whose settings are in "
     "its config file; leave preset out"),  # ignored without a word
    ({}, {}, "no codecs (a mapping such as {hinerv: {}, hevc: {qps: [37, 42]}}; known: nerv, sa-nerv, hinerv"),
    ({}, {"sa-icm": {}}, "sa-icm needs checkpoints: [a list of SA-ICM checkpoint paths]"),
    ({}, {"sa-icm": {"checkpoints": []}}, "sa-icm needs checkpoints"),
    ({}, {"hinerv": {"fits": []}}, "hinerv: fits is an empty list, a curve of no points"),
    ({}, {"hinerv": {"fits": [{"preset": "hinerv-demo"}]}}, "hinerv fit {'preset': 'hinerv-demo'}: no points; give"),
    ({}, {"nerv": {"fits": [{"points": []}]}}, "nerv fit {}: no points"),
    ({}, {"nerv": {"fits": [{"steps": 10, "epochs": 2, "points": [{"prune": 0.4, "bits": 8}]}]}},
     "nerv fit {'steps': 10, 'epochs': 2}: steps and epochs both set the fit's length; give one of them"),
    # each point failed on it, after a dry run that listed them to run
    ({}, {"hinerv": {"fits": [{"preset": "nerv-s", "points": [{"lambda": 1}]}]}},
     "codec hinerv fits hinerv networks; preset 'nerv-s' is a nerv one: put that fit under the nerv codec"),
    ({}, {"nerv": None}, "nerv needs fits ({preset: ..., points: [...]}): its default preset nerv-s has no curve"),
    ({}, {"sa-hinerv": {"masks": {"masks": "gone.npz"}, "fits": [{"points": [{"lambda": 1}]}]}},
     "mask file gone.npz does not exist"),
    # the file, or the other source, made the masks and the rest was ignored without a word
    ({}, {"sa-hinerv": {"masks": {"masks": "m.npz", "sam_checkpoint": "s.pth"}, "fits": [{"points": [{"lambda": 1}]}]}},
     "sa-hinerv masks: masks and sam_checkpoint both name edge masks (a file, and weights to make them); pass one"),
    ({}, {"sa-hinerv": {"masks": {"source": "canny", "alpha": 0.5}, "fits": [{"points": [{"lambda": 1}]}]}},
     "sa-hinerv masks: alpha does not apply to a fit without sam_checkpoint (SAM's threshold α applies to"),
    # each point failed on it once the anchors had run, in words of vcm fit's options, or it was ignored: the
    # rules of vcm fit's mask options (vcm.masks.choice) hold for a config's masks section
    ({}, {"sa-hinerv": {"fits": [{"points": [{"lambda": 1}]}]}}, "sa-hinerv needs edge masks: masks: {source: canny}"),
    ({}, {"sa-nerv": {"masks": {}, "fits": [{"points": [{"prune": 0.4, "bits": 8}]}]}}, "sa-nerv needs edge masks"),
    ({}, {"sa-hinerv": {"masks": {"alpha": 0.5}}}, "sa-hinerv masks: alpha does not apply to a fit without sam_chec"),
    ({}, {"sa-hinerv": {"masks": {"source": "sam"}}}, "sa-hinerv masks: source sam needs sam_checkpoint PATH"),
    ({}, {"sa-hinerv": {"masks": {"sam_checkpoint": "s.pth", "sam_model": "vit_q"}}},
     "sa-hinerv masks: sam_model: unknown SAM model 'vit_q'; choose one of vit_h, vit_l, vit_b, tiny"),
    ({}, {"sa-hinerv": {"masks": {"masks": "m.npz", "source": "canny"}}},
     "sa-hinerv masks: masks and source both name edge masks; pass one"),
    ({}, {"sa-hinerv": {"masks": {"source": "boxes:opencv-face", "sam_checkpoint": "s.pth"}}},
     "sa-hinerv masks: sam_checkpoint does not apply to source boxes:opencv-face (SAM's weights make masks only"),
    ({}, {"hinerv": {"masks": {"source": "canny"}}},
     "codec hinerv: unknown key masks; valid: fits (masks is a key of sa-nerv, sa-hinerv)"),
    ({}, {"nerv": {"qps": [37]}}, "codec nerv: unknown key qps; valid: fits (qps is a key of hevc, vvc)"),
    ({"top": {"device": [1]}}, {"hevc": {"qps": [40]}}, "device must be auto, cpu or cuda[:N] (a string), got [1]"),
    # "no sequences", of sequences written as one
    ({"top": {"sequences": "sample:carphone"}}, {"hevc": {"qps": [40]}}, "sequences must be a list of SFU-HW names "
                                                                          "or {name, path} entries, got 'sample:carph"
                                                                          "one'; one is written [sample:carphone]"),
    ({"fps": 0}, {"hevc": {"qps": [40]}}, "sequence c: fps must be a frame rate above 0 and at most 1000, got 0"),
    ({"fps": "25"}, {"hevc": {"qps": [40]}}, "sequence c: fps must be a frame rate"),
    ({"size": "416"}, {"hevc": {"qps": [40]}}, "sequence c: size must look like WIDTHxHEIGHT"),
    ({"bit_depth": 9}, {"hevc": {"qps": [40]}}, "sequence c: bit_depth must be 8, 10, 12 or 16, got 9"),
])
def test_anchor_and_sequence_values_are_checked_before_any_point_runs(tmp_path, sequence, codecs, message):
    from vcm.ctc.run import run

    cfg = tmp_path / "c.yaml"
    top = sequence.pop("top", {})
    seq = {k: v for k, v in {"name": "c", "path": "sample:carphone", "frames": "0:2", **sequence}.items()
           if v is not None}
    cfg.write_text(json.dumps({"sequences": [seq], "codecs": codecs, **top}))
    with pytest.raises(VcmError) as err:
        run(cfg, tmp_path / "o")
    assert message in str(err.value)
    assert not (tmp_path / "o").exists()


def test_a_sequence_entry_gives_the_size_and_rate_its_file_does_not_say(tmp_path):
    """A raw file not named Name_WxH_fps.yuv, or a .y4m without a rate, could not run in a CTC config at all: the
    commands' --size and --fps had no place in it, and the failed point said to pass them. An entry now gives
    size, fps and bit_depth; the points read the file with them, and the rate figures follow the given fps."""
    from vcm.ctc.run import point_key, run

    frames = moving_frames(t=2, h=32, w=48)
    write_yuv420(tmp_path / "clip.yuv", frames)
    y4m = tmp_path / "norate.y4m"
    raw = (tmp_path / "clip.yuv").read_bytes()
    y4m.write_bytes(b"YUV4MPEG2 W48 H32 Ip C420jpeg\n" + b"".join(
        b"FRAME\n" + raw[i * len(raw) // 2:(i + 1) * len(raw) // 2] for i in range(2)))
    seqs = [{"name": "raw", "path": str(tmp_path / "clip.yuv"), "size": "48x32", "fps": 12.5, "frames": "all"},
            {"name": "y4m", "path": str(y4m), "fps": 12.5, "frames": "all"},
            {"name": "asks", "path": str(y4m), "frames": "all"}]
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"sequences": seqs, "codecs": {"hevc": {"qps": [45]}}}))
    rows = {r["sequence"]: r for r in run(config, tmp_path / "o")["rows"]}
    for name in ("raw", "y4m"):
        assert rows[name]["status"] == "ok" and (rows[name]["fps"], rows[name]["width"]) == (12.5, 48), rows[name]
        assert rows[name]["kbps"] == pytest.approx(rows[name]["bytes"] * 8 * 12.5 / 2 / 1000)
    assert rows["asks"]["status"] == "failed"
    assert "gives no frame rate (F); pass --fps F (in a CTC config: frames, size, fps or bit_depth" in rows["asks"]["error"]
    from vcm.ctc.config import sequence_entries

    (entry,) = sequence_entries({"sequences": [{"path": str(tmp_path / "clip.yuv"), "size": "48x32"}]}, None, None)
    assert (entry["name"], entry["video"]) == ("clip", {"size": (48, 32)}) and "size" not in entry  # named as vcm info does
    # a point's key holds the entry's video settings (another fps runs it again), and nothing where none is given
    spec = {"codec": "hevc", "point": {"qp": 45}, "source": str(y4m), "frames": "all"}
    assert point_key({**spec, "video": {"fps": 12.5}}) != point_key({**spec, "video": {"fps": 25.0}})
    assert point_key({**spec, "video": {}}) == point_key(spec)


def test_a_fit_reused_after_the_entrys_fps_changed_codes_streams_that_declare_the_new_rate(tmp_path):
    """An entry's fps corrected after its fit: the frames are the same, so the fit is reused, but its streams
    declared the rate the fit had recorded (a decoded .y4m played at it) while the point's kbps used the new one."""
    from vcm.codec.nerv_stream import peek_video
    from vcm.ctc.run import run

    write_yuv420(tmp_path / "clip.yuv", moving_frames(t=4, h=32, w=48))
    (tmp_path / "tiny.yaml").write_text("model: {arch: nerv, fc_dim: 8, stem_dims: [24], lower_width: 6, embed: '1.25_8'}\n"
                                        "train: {epochs: 2, batch: 2, lr: 0.003}\n")
    config = tmp_path / "c.yaml"
    rows = {}
    for fps in (25, 12.5):
        config.write_text(json.dumps({
            "sequences": [{"name": "raw", "path": str(tmp_path / "clip.yuv"), "size": "48x32", "fps": fps, "frames": "all"}],
            "device": "cpu", "codecs": {"nerv": {"fits": [{"preset": str(tmp_path / "tiny.yaml"),
                                                           "points": [{"prune": 0, "bits": 8}]}]}}}))
        (row,) = run(config, tmp_path / "o")["rows"]
        assert row["status"] == "ok", row
        rows[fps] = row
    fit = next((tmp_path / "o" / "fits").glob("raw/nerv/*/config.json"))
    assert json.loads(fit.read_text())["video"]["fps"] == 25  # the fit of the first run, reused
    assert peek_video((tmp_path / "o" / "points" / "raw" / "nerv").glob("*/stream.nerv").__next__().read_bytes())["fps"] == 12.5
    assert abs(rows[12.5]["bytes"] - rows[25]["bytes"]) <= 4  # the same network; only the header's rate differs
    assert rows[12.5]["kbps"] == pytest.approx(rows[12.5]["bytes"] * 8 * 12.5 / 4 / 1000)


def test_two_points_that_would_share_a_results_folder_are_refused(tmp_path):
    """They ran into one folder: one point's results, run twice (its second run chained onto the first)."""
    from vcm.ctc.run import run

    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"sequences": [{"name": "c", "path": "sample:carphone", "frames": "0:2"}],
                                  "codecs": {"hinerv": {"fits": [{"points": [{"lambda": 1}, {"lambda": 1, "rd_steps": 9}]}]}}}))
    with pytest.raises(VcmError, match="two points would share the results folder hinerv-demo_rd_l1p0"):
        run(config, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_fits_that_differ_train_into_folders_of_their_own(tmp_path):
    """Two fits of one preset at two learning rates or batches, or a preset and an edited copy of the same name,
    trained into one fit folder, each over the other in turn (and the points of the first were coded from the
    second's network once it had): lr and batch name the folder now, and a name that still collides is refused
    unless both say the same network and schedule."""
    hinerv, seq = codecs.get("hinerv"), {"name": "c"}
    fit = {"preset": "hinerv-demo", "rate_aware": False, "steps": 2}
    fits = [{**fit, "lr": 0.01, "points": [{"lambda": 1}]}, {**fit, "lr": 0.02, "points": [{"lambda": 4}]},
            {**fit, "batch": 2, "points": [{"lambda": 8}]}, {**fit, "points": [{"lambda": 20}]}]
    keys = [p["fit_key"] for _, p in hinerv.points({"fits": fits}, seq)]
    assert keys == ["hinerv-demo_s2_lr0p01", "hinerv-demo_s2_lr0p02", "hinerv-demo_s2_batch2", "hinerv-demo_s2"]
    shared = [{**fit, "points": [{"lambda": 1}]}, {**fit, "chain": False, "points": [{"lambda": 4}]}]
    assert {p["fit_key"] for _, p in hinerv.points({"fits": shared}, seq)} == {"hinerv-demo_s2"}  # one fit, as before
    from vcm.nerv.presets import preset_path

    shipped = preset_path("hinerv-demo").read_text()
    (tmp_path / "hinerv-demo.yaml").write_text(shipped)
    copy = [{**fit, "points": [{"lambda": 1}]}, {**fit, "preset": str(tmp_path / "hinerv-demo.yaml"),
                                                 "points": [{"lambda": 4}]}]
    alike = [{**fit, "width_scale": "0.5", "points": [{"lambda": 1}]},
             {**fit, "width_scale": 0.5, "points": [{"lambda": 4}]}]
    for same in (copy, alike):  # said another way, the same network and schedule: one fit
        assert len({p["fit_key"] for _, p in hinerv.points({"fits": same}, seq)}) == 1
    assert "lr: 2.0e-2" in shipped
    (tmp_path / "hinerv-demo.yaml").write_text(shipped.replace("lr: 2.0e-2", "lr: 1.0e-2"))  # edited: another fit
    with pytest.raises(VcmError, match=r"hinerv: two fits would train into one folder, hinerv-demo_s2, and differ "
                                       r"\(first to second: preset 'hinerv-demo', now '.*/hinerv-demo.yaml'\); "
                                       r".* rename the file"):
        hinerv.points({"fits": copy}, seq)


def test_sequence_names_are_plain_unique_folder_names_taken_from_the_file_when_not_given(tmp_path):
    """A name is a folder of the results: "../../escape" wrote its points outside --out, and two sequences of one
    name shared one folder (the second reused the first's results, or was refused as "two points would share")."""
    from vcm.ctc.config import sequence_entries
    from vcm.ctc.run import run

    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        write_yuv420(tmp_path / sub / "Clip_48x32_25.yuv", moving_frames(t=2, h=32, w=48))
    named = sequence_entries({"sequences": [{"path": str(tmp_path / "a" / "Clip_48x32_25.yuv")},
                                            {"name": "mine", "path": str(tmp_path / "b" / "Clip_48x32_25.yuv")}]}, None, None)
    assert [e["name"] for e in named] == ["Clip", "mine"]  # as vcm info names the file
    for sequences_, message in (
            ([{"name": "../../escape", "path": "sample:carphone"}], "must be a plain folder name"),
            ([{"name": ".hidden", "path": "sample:carphone"}], "must be a plain folder name"),
            ([{"name": 7, "path": "sample:carphone"}], "must be a plain folder name"),
            ([{"path": str(tmp_path / "a" / "Clip_48x32_25.yuv")}, {"name": "clip", "path": "sample:carphone"}],
             "two sequences are named 'clip'"),
            ([{"path": str(tmp_path / "nothere.mp4")}], "no name given, and none can be taken from the file")):
        config = tmp_path / "c.yaml"
        config.write_text(json.dumps({"sequences": sequences_, "codecs": {"hevc": {"qps": [45]}}}))
        with pytest.raises(VcmError, match=message):
            run(config, tmp_path / "o" / "results")
    assert not (tmp_path / "o").exists() and not (tmp_path / "escape").exists()


def test_a_sequence_given_as_a_path_or_sample_string_is_that_video_and_an_sfu_name_stays_a_name(tmp_path, monkeypatch):
    """`sequences: [sample:carphone]` or `[clips/mine.yuv]` was refused as "not an SFU-HW sequence", though
    `{path: ...}` took the same string: a string that names a file is now that file."""
    from vcm.ctc.config import sequence_entries

    (tmp_path / "clips").mkdir()
    write_yuv420(tmp_path / "clips" / "Clip_48x32_25.yuv", moving_frames(t=2, h=32, w=48))
    monkeypatch.chdir(tmp_path)
    got = sequence_entries({"sequences": ["sample:carphone", "clips/Clip_48x32_25.yuv"]}, None, None)
    assert [(e["name"], Path(e["path"]).name, e["frames"]) for e in got] == [
        ("carphone_pristine", "carphone_pristine.mp4", "auto"), ("Clip", "Clip_48x32_25.yuv", "auto")]
    sfu = tmp_path / "sfu"
    sfu.mkdir()
    (sfu / "BQMall_832x480_60.yuv").write_bytes(b"")
    for name in ("BQMall", "BQMall.yuv"):  # SFU-HW names, with or without the suffix, are found in --data
        (entry,) = sequence_entries({"sequences": [name]}, sfu, None)
        assert (entry["name"], entry["frames"]) == ("BQMall", "ctc") and entry["path"] == str(sfu / "BQMall_832x480_60.yuv")
    with pytest.raises(VcmError, match="not an SFU-HW sequence; for another video give its path"):
        sequence_entries({"sequences": ["BQMal"]}, sfu, None)


def test_a_config_path_that_starts_with_a_tilde_is_in_the_home_folder(tmp_path):
    """`path: ~/clips/x.yuv` named a folder called `~` (YAML leaves `~/` as it is): the dry run listed the points
    to run, and each then failed, "~/clips/… does not exist"; the string entry `~/clips/x.yuv` was refused."""
    home = tmp_path / "home"
    (home / "clips").mkdir(parents=True)
    for name in ("Clip_48x32_25.yuv", "Other_48x32_25.yuv"):
        write_yuv420(home / "clips" / name, moving_frames(t=2, h=32, w=48))
    config = tmp_path / "c.yaml"
    config.write_text("sequences: [{path: ~/clips/Clip_48x32_25.yuv, frames: all}, ~/clips/Other_48x32_25.yuv]\n"
                      "codecs: {hevc: {qps: [45]}}\n")
    proc = run_main("ctc", "run", config, "--out", tmp_path / "out", cwd=tmp_path, env={"HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    rows = {p.parts[-4]: json.loads(p.read_text()) for p in (tmp_path / "out" / "points").glob("*/*/*/result.json")}
    assert sorted(rows) == ["Clip", "Other"] and all(r["status"] == "ok" for r in rows.values()), rows


def test_ctc_results_folder_that_is_a_file_is_one_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"sequences": [{"name": "c", "path": "sample:carphone", "frames": "0:2"}],
                                  "codecs": {"hevc": {"qps": [40]}}}))
    for out in (tmp_path / "taken.yuv", config):  # a FileExistsError, with a traceback
        if out != config:
            out.write_bytes(b"keep")
        proc = run_main("ctc", "run", config, "--out", out)
        assert proc.returncode == 1 and "is a file; name a folder" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "taken.yuv").read_bytes() == b"keep"


def test_a_device_this_machine_lacks_is_refused_before_any_point_runs(tmp_path):
    """`vcm ctc run --device tpu` (and `vcm demo --device tpu`) ran every point, each failing on the device,
    then reported them all failed."""
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"sequences": [{"name": "c", "path": "sample:carphone", "frames": "0:2"}],
                                  "codecs": {"hevc": {"qps": [40]}}}))
    proc = run_main("ctc", "run", config, "--out", tmp_path / "out", "--device", "tpu")
    assert proc.returncode == 1 and "unknown device 'tpu'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
    demo = run_main("demo", "--device", "tpu", "--out", tmp_path / "demo")
    assert demo.returncode == 1 and "unknown device 'tpu'" in demo.stderr and not (tmp_path / "demo").exists()


@pytest.mark.parametrize("args, message", [
    (["--only", "c,nope"], "--only names no sequence of the config: nope (sequences: c, d)"),  # nope was dropped
    (["--data", "/nonexistent"], "--data /nonexistent does not exist"),  # unread by a sequence with its own path
    (["--data", "/dev/null"], "--data /dev/null is not a folder"),  # each sequence said "no … in /dev/null"
    (["--data", "."], "--data . is unread: every sequence of the config names its own path"),  # ignored without a word
    (["--annotations", "/nonexistent"], "--annotations /nonexistent does not exist"),
    (["--annotations", "."], "--annotations . is unread: no sequence is scored against annotations"),  # no detector
    (["--backend", "foo"], "--backend must be local or ray"),  # refused only after the folder and its log were written
])
def test_ctc_run_options_are_checked_before_anything_is_written(tmp_path, args, message):
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"sequences": [{"name": n, "path": "sample:carphone", "frames": "0:2"} for n in "cd"],
                                  "codecs": {"hevc": {"qps": [40]}}}))
    proc = run_main("ctc", "run", config, "--out", tmp_path / "out", *args)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-500:]
    assert not (tmp_path / "out").exists()


def test_a_folder_or_a_device_named_as_the_config_is_not_said_to_be_missing(tmp_path):
    """`vcm ctc run runs/ctc` (the results folder, which vcm ctc report takes) said the config "does not exist"."""
    (tmp_path / "results").mkdir()
    folder = run_main("ctc", "run", tmp_path / "results", "--out", tmp_path / "out")
    assert folder.returncode == 1 and "is a folder: name the config's YAML file" in folder.stderr
    device = run_main("ctc", "run", "/dev/null", "--out", tmp_path / "out")
    assert device.returncode == 1 and "CTC config /dev/null is not a regular file" in device.stderr
    missing = run_main("ctc", "run", tmp_path / "c.yaml", "--out", tmp_path / "out")
    assert missing.returncode == 1 and "c.yaml does not exist" in missing.stderr
    assert not (tmp_path / "out").exists()


def test_parallel_workers_start_on_different_fits():
    """Two workers train two networks at once instead of one waiting on the other's fit lock; a fit's
    other points follow once it exists, ahead of anchors (single points); a point whose fit is still
    training is taken only when nothing else is left."""
    from vcm.ctc.run import Schedule

    def spec(codec, pid, fit=None):
        return {"sequence": "s", "codec": codec, "point_id": pid, "point": {"fit_key": fit} if fit else {}}

    specs = [spec("hinerv", "h1", "f"), spec("hinerv", "h2", "f"), spec("hinerv", "h3", "f"),
             spec("sa-hinerv", "s1", "f"), spec("sa-hinerv", "s2", "f"), spec("hevc", "q1"), spec("hevc", "q2")]
    sched = Schedule(specs)
    taken = [sched.take()["point_id"], sched.take()["point_id"], sched.take()["point_id"]]
    assert taken == ["h1", "s1", "q1"]
    sched.finished(specs[0])  # h1 done: the hinerv network is on disk
    assert [sched.take()["point_id"] for _ in range(3)] == ["h2", "h3", "q2"]
    assert sched.take()["point_id"] == "s2"  # nothing else left: it may wait for s1's fit
    assert sched.take() is None
    assert Schedule(specs, jobs=2).slots(specs[0]) == 1  # two networks on two slots: one slot each


def test_a_lone_fit_takes_every_core_and_the_rest_waits_for_it():
    """With one network to train and two slots, its first point runs on both and nothing starts beside
    it; then the points share the slots one each."""
    from vcm.ctc.run import Schedule

    specs = [{"sequence": "s", "codec": "hinerv", "point_id": f"h{i}", "point": {"fit_key": "f"}} for i in range(3)]
    specs += [{"sequence": "s", "codec": "hevc", "point_id": "q1", "point": {}}]
    sched = Schedule(specs, jobs=2)
    first = sched.take(2)
    assert first["point_id"] == "h0" and sched.slots(first) == 2
    assert sched.take(0) is None  # both slots are taken: the anchor waits
    sched.finished(first)
    taken = [sched.take(2), sched.take(1), sched.take(1)]
    assert [t["point_id"] for t in taken] == ["h1", "h2", "q1"] and {sched.slots(t) for t in taken} == {1}
    assert sched.take(2) is None
    # once the network is on disk (before its point has finished) the point keeps one slot and the
    # group's other points take the one it gave back, still ahead of the anchor
    sched = Schedule(specs, jobs=2)
    first = sched.take(2)
    sched.fitted(first)
    assert sched.slots(first) == 1 and sched.take(1)["point_id"] == "h1"
    sched.finished(first)  # nothing is released twice
    assert [sched.take(1)["point_id"] for _ in range(2)] == ["h2", "q1"] and sched.take(1) is None


def test_a_fit_of_one_point_is_a_network_to_train_too():
    """Beside a fit of two points, a fit of one point is the second network on two slots: each takes one
    slot and both start at once (not the first on both slots while the other waits). Alone with an
    anchor, a fit of one point takes both slots until its network is on disk."""
    from vcm.ctc.run import Schedule

    def spec(pid, fit=None):
        return {"sequence": "s", "codec": "hinerv" if fit else "hevc", "point_id": pid,
                "point": {"fit_key": fit} if fit else {}}

    specs = [spec("L1", "large"), spec("L2", "large"), spec("S1", "small"), spec("q1")]
    sched = Schedule(specs, jobs=2)
    first = sched.take(2)
    second = sched.take(2 - sched.slots(first))
    assert (first["point_id"], second["point_id"]) == ("L1", "S1")
    assert sched.slots(first) == sched.slots(second) == 1
    sched = Schedule([spec("q1"), spec("S1", "small")], jobs=2)  # the network goes first whatever the order
    lone = sched.take(2)
    assert lone["point_id"] == "S1" and sched.slots(lone) == 2 and sched.take(0) is None
    sched.fitted(lone)
    assert sched.slots(lone) == 1 and sched.take(1)["point_id"] == "q1"


def test_a_networks_other_points_start_once_it_is_on_disk_the_last_trained_first():
    """Two networks on two slots (a large and a small one, as the demo's sections): the small one is on
    disk first and its point goes on with its stage; when the large one lands, its other point goes
    ahead of the small one's, so that it runs beside the large network's first stage."""
    from vcm.ctc.run import Schedule

    specs = [{"sequence": "s", "codec": "hinerv", "point_id": pid, "point": {"fit_key": fit}}
             for pid, fit in [("L1", "large"), ("L2", "large"), ("S1", "small"), ("S2", "small")]]
    sched = Schedule(specs, jobs=2)
    large, small = sched.take(1), sched.take(1)
    assert (large["point_id"], small["point_id"]) == ("L1", "S1") and sched.take(0) is None
    assert sched.holds_back(large) and sched.holds_back(small)
    sched.fitted(small)
    sched.fitted(large)
    assert not sched.holds_back(large) and not sched.holds_back(small)
    sched.finished(small)  # S1's stage done: nothing is released twice
    assert [sched.take(1)["point_id"] for _ in range(2)] == ["L2", "S2"] and sched.take(1) is None


def test_a_lone_fit_gives_its_cores_back_once_the_network_is_on_disk(tmp_path):
    """Run for real on two workers: the fitting point trains on both slots' threads, then goes on with
    one thread (its marker left) while the network's other points start in the slot it gave back."""
    cfg = tmp_path / "lone.yaml"
    cfg.write_text(json.dumps({
        "sequences": [{"name": "carphone", "path": "sample:carphone", "frames": "0:4"}], "device": "cpu",
        "detector": None, "codecs": {
            "nerv": {"fits": [{"preset": "nerv-xs", "params": "8k", "epochs": 2, "batch": 2, "points": [
                {"prune": 0.2, "bits": 8, "finetune_epochs": 60},  # the first point works on after the fit
                {"prune": 0.2, "bits": 7, "finetune_epochs": 0}, {"prune": 0.4, "bits": 6, "finetune_epochs": 0}]}]},
            "hevc": {"qps": [40]}}}))
    proc = run_main("ctc", "run", cfg, "--out", tmp_path / "o", "--jobs", "2", "--json",
                    env={"VCM_PROGRESS": "lines", "VCM_PROGRESS_INTERVAL": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["failed"] == 0
    assert "network on disk; its other points start beside it" in proc.stderr
    markers = list((tmp_path / "o" / "points" / "carphone" / "nerv").glob(f"*/{FITTED}"))
    assert len(markers) == 3  # every point whose network is on disk says so (the runner reads the first's)


def test_more_jobs_than_cores_is_said_since_the_points_times_count_the_sharing(tmp_path, monkeypatch):
    """--jobs above the usable cores ran without a word, and each point's encode and decode times in the report
    counted the sharing; as many jobs as points and cores says nothing."""
    import vcm.cpus

    monkeypatch.setattr(vcm.cpus, "usable_cores", lambda *args, **kwargs: 1)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"sequences": [_SEQ], "detector": None, "codecs": {"hevc": {"qps": [44, 48]}}}))
    shared = run_main("ctc", "run", cfg, "--out", tmp_path / "o", "--jobs", "3", env={"VCM_PROGRESS": "lines"})
    assert shared.returncode == 0, shared.stderr[-2000:]
    assert "2 points at once on 1 usable core: they share the cores, and each point's encode and decode times " \
           "count the sharing (for timings to compare, --jobs 1 or fewer)" in shared.stderr
    monkeypatch.setattr(vcm.cpus, "usable_cores", lambda *args, **kwargs: 2)
    alone = run_main("ctc", "run", cfg, "--out", tmp_path / "o2", "--jobs", "3", env={"VCM_PROGRESS": "lines"})
    assert alone.returncode == 0 and "running 2 points" in alone.stderr and "at once on" not in alone.stderr


def test_two_networks_on_two_workers_release_their_other_points_once_on_disk(tmp_path):
    """Run for real: each network's first point works on after its fit, and its other point starts then
    (one slot each, nothing wide), not once that first point has finished."""
    def fit(params):
        return {"preset": "nerv-xs", "params": params, "epochs": 2, "batch": 2, "points": [
            {"prune": 0.2, "bits": 8, "finetune_epochs": 60}, {"prune": 0.4, "bits": 6, "finetune_epochs": 0}]}

    cfg = tmp_path / "two.yaml"
    cfg.write_text(json.dumps({
        "sequences": [{"name": "carphone", "path": "sample:carphone", "frames": "0:4"}], "device": "cpu",
        "detector": None, "codecs": {"nerv": {"fits": [fit("8k"), fit("6k")]}}}))
    proc = run_main("ctc", "run", cfg, "--out", tmp_path / "o", "--jobs", "2", "--json",
                    env={"VCM_PROGRESS": "lines", "VCM_PROGRESS_INTERVAL": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["failed"] == 0
    assert proc.stderr.count("network on disk; its other points start beside it") == 2


def test_a_point_that_trained_wide_goes_on_with_fewer_threads(tmp_path):
    import torch

    before = torch.get_num_threads()
    try:
        network_ready({"workdir": str(tmp_path), "threads_after_fit": None})  # a one-slot point keeps its threads
        assert (tmp_path / FITTED).exists() and torch.get_num_threads() == before
        (tmp_path / FITTED).unlink()
        network_ready({"workdir": str(tmp_path), "threads_after_fit": 1})
        assert (tmp_path / FITTED).exists() and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_codecs_name_their_points_and_the_report_shows_those_names():
    """Each codec labels its own points when they run (stored in the row); the report never parses ids."""
    from vcm import codecs
    from vcm.ctc.tables import point_label

    hinerv, hevc = codecs.get("hinerv"), codecs.get("hevc")
    (_, lam), (_, affine) = hinerv.points({"fits": [{"preset": "hinerv-demo", "rate_aware": False, "points": [
        {"lambda": 0.3}, {"prune": 0.4, "bits": 6, "qat": True}]}]}, {"name": "carphone"})
    assert hinerv.label(lam, {}) == "λ0.3" and hinerv.label(affine, {}) == "prune 0.4, 6 bit QAT"
    assert hevc.label(hevc.points({"qps": [37]}, {"name": "x"})[0][1], {}) == "QP37"
    assert point_label({"point": "a_rd_l0p3", "label": "λ0.3"}) == "λ0.3"
    assert point_label({"point": "a_rd_l0p3"}) == "a_rd_l0p3"  # a row written before labels: its id, unparsed


def test_match_points_follow_the_anchor_and_run_after_it(tmp_path):
    """{match: hevc} becomes one point per HEVC QP of the sequence, aiming at that point's rate found by
    rate control; without the anchor the config is refused before anything runs."""
    from vcm.ctc.run import run

    cfg = tiny_ctc_config(tmp_path, "{epochs: 1, batch: 2, lr: 3.0e-3}",
                          "  nerv:\n    fits: [{{preset: {preset}, steps: 40, rate_aware: false, "
                          "points: [{{match: hevc, rd_steps: 10}}]}}]\n  hevc: {{qps: [30, 40]}}\n")
    from vcm.ctc.run import preview

    # --dry-run: what would run, in what order, with the networks to train, and nothing written
    plan = preview(cfg, tmp_path / "out")
    assert [(p["codec"], p["state"]) for p in plan["plan"]] == [("nerv", "after anchors")] * 2 + [("hevc", "to run")] * 2
    assert (plan["to_run"], plan["after_anchors"], plan["finished"], plan["networks_to_train"]) == (2, 2, 0, 1)
    # the shared fit's 40 steps; each search's trials are rate control's to decide
    assert (plan["fit_steps"], plan["stage_steps"], plan["stages_by_rate_control"]) == (40, 0, 2)
    proc = run_main("ctc", "run", cfg, "--out", tmp_path / "out", "--dry-run")
    said = " ".join(proc.stdout.split())
    assert proc.returncode == 0 and "4 points: 0 finished" in said, proc.stderr
    assert ("1 network to train: 40 optimiser steps of fits and 0 of the points' stages, besides the trials of 2 "
            "rate-control searches") in said and "fit 40 + rate" in said, said
    assert not (tmp_path / "out").exists()
    result = run(cfg, tmp_path / "out", jobs=1)
    plan = preview(cfg, tmp_path / "out")
    assert (plan["finished"], plan["to_run"], plan["networks_to_train"]) == (4, 0, 0)
    assert preview(cfg, tmp_path / "out", force=True)["to_run"] == 2
    assert result["failed"] == 0, [r.get("error") for r in result["rows"]]
    rows = {r["point"]: r for r in result["rows"]}
    hevc = {r["qp"]: r for r in rows.values() if r["codec"] == "hevc"}
    matched = [r for r in rows.values() if r["codec"] == "nerv"]
    assert len(matched) == 2 and {r["point"].rsplit("_", 1)[1] for r in matched} == {"qp30", "qp40"}
    for r in matched:
        aim = hevc[int(r["point"].rsplit("qp", 1)[1])]["kbps"]
        assert r["rate_control"]["target"]["kbps"] == pytest.approx(aim)
        assert r["rate_control"]["trials"]  # searched, and reported whether it landed
        qp = r["point"].rsplit("qp", 1)[1]
        assert r["label"] == f"λ{r['rate_control']['lambda']:.3g} (≈ hevc QP{qp})"  # named by its codec
    assert {r["label"] for r in hevc.values()} == {"QP30", "QP40"}
    from vcm.ctc.report import make_report

    make_report(tmp_path / "out", anchor="hevc")
    section = (tmp_path / "out" / "report.md").read_text().split("## Rate control", 1)[1]
    for r in matched:  # the report says what each search aimed at and what its stream gave
        assert f"| {r['label']} | {r['rate_control']['target']['kbps']:.2f} kbps | {r['kbps']:.2f} kbps |" in section
    # a setting the folder's name does not carry, changed in place: those points are not reused as they were
    edited = tmp_path / "edited.yaml"
    edited.write_text(cfg.read_text().replace("rd_steps: 10", "rd_steps: 12"))
    plan = preview(edited, tmp_path / "out")
    assert [(p["codec"], p["state"]) for p in plan["plan"]] == [("nerv", "changed")] * 2 + [("hevc", "finished")] * 2
    again = run(edited, tmp_path / "out", jobs=1)
    assert (again["ran"], again["reused"], again["failed"]) == (2, 2, 0)
    assert preview(edited, tmp_path / "out")["finished"] == 4
    # the anchor coded anew (another preset) moves its rates: the points that aimed at the old ones run again, as
    # they do where its result changed since they ran (another command ran it again)
    faster = tmp_path / "faster.yaml"
    faster.write_text(edited.read_text().replace("hevc: {qps: [30, 40]}", "hevc: {qps: [30, 40], preset: ultrafast}"))
    plan = preview(faster, tmp_path / "out")
    assert [(p["codec"], p["state"]) for p in plan["plan"]] == [("nerv", "changed")] * 2 + [("hevc", "changed")] * 2
    anchor = next((tmp_path / "out" / "points").glob("*/hevc/qp30")) / "result.json"
    anchor.write_text(json.dumps({**json.loads(anchor.read_text()), "kbps": hevc[30]["kbps"] * 1.5}))
    plan = preview(edited, tmp_path / "out")
    assert sorted((p["point"].rsplit("_", 1)[1], p["state"]) for p in plan["plan"] if p["codec"] == "nerv") == \
        [("qp30", "changed"), ("qp40", "finished")]
    cfg.write_text(cfg.read_text().replace("  hevc: {qps: [30, 40]}\n", ""))
    with pytest.raises(VcmError, match="matches hevc, which this run does not code"):
        run(cfg, tmp_path / "out2")


def test_an_encoder_that_writes_nothing_is_run_again_then_a_clear_failure(tmp_path, monkeypatch):
    """An encoder that exits 0 without a stream (libvvenc, about one encode in six when points run in
    parallel) is run again after a pause; one that never writes fails the point with one line instead of a confusing
    decoder error."""
    from vcm.anchors import ffmpeg

    real, calls = ffmpeg._run, []
    monkeypatch.setattr(ffmpeg, "RETRY_PAUSE", 0.0)
    monkeypatch.setattr(ffmpeg, "_run", lambda cmd, what: calls.append(what) or 0.0)  # "succeeds", writes nothing
    planes = (np.zeros((2, 64, 96), np.uint8), np.zeros((2, 32, 48), np.uint8), np.zeros((2, 32, 48), np.uint8))
    with pytest.raises(VcmError, match="exited without writing a stream at QP 37"):
        ffmpeg.encode_decode("vvc", planes, 8, 96, 64, 30, 37, tmp_path / "o.266")
    assert calls == ["libvvenc encoding"] * ffmpeg.ENCODE_TRIES  # never decoded

    flaky = iter([True, False])

    def first_try_writes_nothing(cmd, what):
        if what.endswith("encoding") and next(flaky):
            return 0.0
        return real(cmd, what)

    monkeypatch.setattr(ffmpeg, "_run", first_try_writes_nothing)
    r = ffmpeg.encode_decode("hevc", planes, 8, 96, 64, 30, 37, tmp_path / "o.hevc")
    assert (tmp_path / "o.hevc").stat().st_size > 0 and r.frames_u8.shape == (2, 3, 64, 96)


def test_the_report_names_a_target_beyond_every_trial():
    """A point whose every λ trial gave more bytes than its anchor's rate is listed with a line that says
    so and names what reaches further; one that landed has no such line."""
    from vcm.ctc.render import rate_control_section

    def row(point, kbps, beyond):
        return {"sequence": "clip", "codec": "hinerv", "curve": "hinerv-rd", "point": point, "label": point,
                "kbps": kbps, "psnr_y": 30.0, "rate_control": {"target": {"kbps": 10.0}, "lambda": 20.0,
                                                               "trials": [{}, {}, {}], "beyond": beyond}}

    lines = "\n".join(rate_control_section([row("far", 25.0, "above"), row("near", 10.2, None)]))
    assert "| far | 10.00 kbps | 25.00 kbps | +150.0 % | 3 | 20 |" in lines
    assert "| near | 10.00 kbps | 10.20 kbps | +2.0 % | 3 | 20 |" in lines
    notes = [line for line in lines.splitlines() if line.startswith("- ")]
    assert len(notes) == 1 and notes[0].startswith("- clip hinerv-rd far: target not reached: every trial gave more bytes")
    assert "width_scale: 0.5, or params, in the fit's section" in notes[0]  # said as a config says it
    assert rate_control_section([{**row("q", 9.0, None), "rate_control": None}]) == []


def test_a_target_the_trials_bracket_but_none_landed_on_is_named_with_the_two_lambdas():
    """A search that ran out of trials between two λ wrote its nearest stream 7 % off a ±3 % target and
    said nothing: the achieved figure alone did not tell the user the target was missed."""
    from vcm.codec.rate_control import achieved, missed_hint
    from vcm.ctc.render import rate_control_section

    trials = [{"lambda": 900.0, "bytes": 23435}, {"lambda": 27000.0, "bytes": 12846},
              {"lambda": 39696.0, "bytes": 9470}, {"lambda": 29428.0, "bytes": 9467}]
    control = {"target": {"kbps": 200.0}, "goal": 12000.0, "tolerance": 0.03, "hit": False, "lambda": 27000.0,
               "beyond": None, "trials": trials}
    row = {"sequence": "clip", "codec": "hinerv", "curve": "hinerv-rd", "point": "k200", "label": "k200",
           "kbps": 214.1, "psnr_y": 30.0, "rate_control": control}
    notes = [ln for ln in rate_control_section([row]) if ln.startswith("- ")]
    assert len(notes) == 1 and "target missed: no trial of 4 came within ±3 %" in notes[0]
    assert "between λ 2.7e+04 and 2.943e+04" in notes[0]  # the written λ and the closest one across the target
    # 36 % of the rate for 9 % of λ: trials whose stages had not settled, where no λ between them would help
    assert "whose trials came out 36 % apart" in notes[0] and "more steps (rd_steps in the point)" in notes[0]
    assert "(--rd-steps)" in missed_hint(achieved(row), control)
    settled = {**control, "trials": trials[:2] + [{"lambda": 40000.0, "bytes": 11000}]}
    hint = missed_hint(achieved({**row, "rate_control": settled}), settled)
    assert "between λ 2.7e+04 and 4e+04: a stage at a λ between them (--lambda) may land nearer" in hint
    assert missed_hint(achieved(row), {**control, "hit": True}) == ""
    far = {**control, "beyond": "above"}
    assert missed_hint(achieved({**row, "rate_control": far}), far) == ""  # beyond_hint's line says it
    quality = {**control, "target": {"psnr_y": 31.0}, "tolerance": 0.1, "goal": 31.0, "lambda": 1.0,
               "trials": [{"lambda": 1.0, "psnr_y": 30.7}, {"lambda": 0.5, "psnr_y": 31.6}]}
    hint = missed_hint(achieved({**row, "rate_control": quality}), quality)
    assert "within ±0.1 dB" in hint and "between λ 0.5 and 1" in hint


def test_a_missed_target_whose_written_lambda_was_tried_warm_and_cold_names_that_pair():
    """`vcm compress --target-psnr 20` on a 60-step fit wrote its cold trial at λ 68.18 (20.70 dB) and said the
    target "lies between λ 68.18 and 68.18": the hint took the warm trial at that λ (16.20 dB) for the written one,
    and then the cold one for the trial across the target."""
    from vcm.codec.rate_control import achieved, missed_hint

    trials = [{"lambda": 1.0, "psnr_y": 21.97}, {"lambda": 3.4332, "psnr_y": 22.01},
              {"lambda": 3.4332, "psnr_y": 21.59}, {"lambda": 68.18, "psnr_y": 16.20},
              {"lambda": 68.18, "psnr_y": 20.70}, {"lambda": 251.79, "psnr_y": 17.09}]
    control = {"target": {"psnr_y": 20.0}, "goal": 20.0, "tolerance": 0.1, "hit": False, "lambda": 68.18,
               "beyond": None, "trials": trials}
    report = {"kbps": 50.0, "psnr_y": 20.70, "rate_control": control}
    hint = missed_hint(achieved(report), control)
    assert "between λ 68.18 and 68.18" not in hint
    assert "two trials at λ 68.18 came out 4.50 dB apart, on either side of it" in hint and "(--rd-steps)" in hint
    # without the warm trial at its λ, the written trial's pair is the next λ across the target
    hint = missed_hint(achieved(report), {**control, "trials": trials[:3] + trials[4:]})
    assert "between λ 68.18 and 251.8: a stage at a λ between them (--lambda) may land nearer" in hint


def test_a_missed_target_whose_written_stream_is_unsettled_asks_for_more_steps_not_another_lambda():
    """A CTC match point (8 frames of carphone, an 80-step fit, rd_steps 30) wrote 873 B (−9.4 %) at λ 2.44e+05, a
    file 65 % under its estimate, and advised "a stage at a λ between [2.7e+04 and 2.44e+05] may land nearer",
    where λ 1.74e+05 had already given 530 B: its stages had not settled, and no λ would have helped."""
    from vcm.codec.rate_control import achieved, missed_hint

    trials = [{"lambda": 900.0, "bytes": 3856}, {"lambda": 27000.0, "bytes": 1662}, {"lambda": 243978.0, "bytes": 873},
              {"lambda": 173829.0, "bytes": 530}]
    control = {"target": {"kbps": 28.89}, "goal": 964.0, "tolerance": 0.03, "hit": False, "lambda": 243978.0,
               "beyond": None, "trials": trials}
    row = {"kbps": 26.16, "bytes": 873, "estimate_bytes": 2468.4, "rate_control": control}
    hint = missed_hint(achieved(row), control, "config")
    assert "between λ 2.7e+04 and 2.44e+05, but the written stage ended before its rate settled" in hint
    assert "more steps (rd_steps in the point) come first" in hint and "may land nearer" not in hint
    settled = missed_hint(achieved({**row, "estimate_bytes": 900.0}), control, "config")
    assert "a stage at a λ between them (a lambda point) may land nearer" in settled


def test_ctc_run_refuses_a_folder_whose_report_files_are_not_a_ctc_runs(tmp_path):
    """`vcm ctc run cfg --out results` into a folder of the user's own report.md (no CTC results there) let the
    report replace it; a CTC folder's own report files are replaced as before."""
    from vcm.ctc.run import _check_not_someone_elses

    cfg = tmp_path / "c.yaml"
    cfg.write_text("sequences:\n  - {name: clip, path: 'sample:carphone'}\ncodecs:\n  hevc: {qps: [40]}\n")
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "report.md").write_text("# mine")
    proc = run_main("ctc", "run", cfg, "--out", mine)
    assert proc.returncode == 1 and "holds report.md but no CTC results" in proc.stderr, proc.stderr
    assert (mine / "report.md").read_text() == "# mine" and sorted(p.name for p in mine.iterdir()) == ["report.md"]
    (mine / "points").mkdir()
    _check_not_someone_elses(mine)  # a CTC folder: its report is its own
    _check_not_someone_elses(tmp_path / "new")


def test_a_fit_made_from_another_config_under_the_same_name_is_trained_again_not_reused(tmp_path, monkeypatch, capsys):
    """A CTC fit is cached under fits/<sequence>/<codec>/<fit>/ by its preset's name: a sequence's frames changed,
    or the preset file edited, left the old network there: a point run again on it failed with "ValueError: shape
    mismatch (3, 3, 32, 48) vs (4, 3, 32, 48)", or compressed an old network as the new one. Such a fit is trained
    again; the same fit is reused."""
    from tests.conftest import tiny_ctc_config
    from vcm import progress
    from vcm.ctc.run import run

    monkeypatch.setenv("VCM_PROGRESS", "lines")
    progress.set_quiet(False)
    cfg = tiny_ctc_config(tmp_path, "{steps: 6, batch: 2, lr: 3.0e-3}",
                          "  nerv:\n    fits: [{{preset: {preset}, points: [{{prune: 0.0, bits: 8}}]}}]\n")
    fit_dir = tmp_path / "out" / "fits" / "tiny" / "nerv" / "tiny"
    assert run(cfg, tmp_path / "out")["failed"] == 0
    trained = (fit_dir / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert run(cfg, tmp_path / "out", force=True)["failed"] == 0  # the point again, on the same network
    assert (fit_dir / "checkpoint.pt").read_bytes() == trained and "training it again" not in capsys.readouterr().err
    cfg.write_text(cfg.read_text().replace("frames: all", "frames: '0:3'"))
    result = run(cfg, tmp_path / "out")
    assert result["failed"] == 0 and result["ran"] == 1 and result["rows"][0]["frames"] == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "holds a fit of other frames than this config asks for: training it again" in err
    assert json.loads((fit_dir / "config.json").read_text())["video"]["source_frames"] == [0, 3]
    preset = tmp_path / "tiny.yaml"  # the preset file edited in place: another network under the same name
    preset.write_text(preset.read_text().replace("fc_dim: 8", "fc_dim: 10"))
    result = run(cfg, tmp_path / "out")  # the finished point was reused as it was, the old network's result
    assert (result["failed"], result["ran"], result["reused"]) == (0, 1, 0)
    err = " ".join(capsys.readouterr().err.split())
    assert "running again 1 finished point whose config changed" in err and "holds a fit of another network" in err
    assert run(cfg, tmp_path / "out")["reused"] == 1
    # a fit stopped before its end, then its preset's lr edited: it was resumed, and refused in the point
    # ("cannot resume: training option 'lr' was 0.003, now 0.004 ... start a new run with --out")
    (fit_dir / "metrics.json").unlink()
    preset.write_text(preset.read_text().replace("lr: 3.0e-3", "lr: 4.0e-3"))
    result = run(cfg, tmp_path / "out")
    assert (result["failed"], result["ran"]) == (0, 1), [r.get("error") for r in result["rows"]]
    assert "holds a fit of other training options (lr) than this config asks for" in " ".join(capsys.readouterr().err.split())


def test_an_sa_nerv_fit_made_with_other_edge_masks_is_trained_again(tmp_path, monkeypatch, capsys):
    """The SA-NeRV loss weighs the edge masks: a fit trained on Canny edges was reused when the config then named
    another mask file (or source) under the same fit name, so the points said one thing and coded another."""
    from tests.conftest import tiny_ctc_config
    from vcm import progress
    from vcm.ctc.run import run
    from vcm.masks.sources import SourceSettings, make_source_masks
    from vcm.video import open_video

    monkeypatch.setenv("VCM_PROGRESS", "lines")
    progress.set_quiet(False)
    cfg = tiny_ctc_config(tmp_path, "{steps: 6, batch: 2, lr: 3.0e-3}",
                          "  sa-nerv:\n    masks: {{source: canny}}\n"
                          "    fits: [{{preset: {preset}, points: [{{prune: 0.0, bits: 8}}]}}]\n")
    assert run(cfg, tmp_path / "out")["failed"] == 0
    fit_config = tmp_path / "out" / "fits" / "tiny" / "sa-nerv" / "tiny" / "config.json"
    assert json.loads(fit_config.read_text())["masks"]["source"] == "canny"
    capsys.readouterr()
    assert run(cfg, tmp_path / "out", force=True)["failed"] == 0  # the same masks: the same fit
    assert "training it again" not in capsys.readouterr().err
    mine = tmp_path / "mine.npz"
    make_source_masks(open_video(tmp_path / "Tiny_48x32_25.yuv", "all"), "canny", mine, SourceSettings(dilation=1))
    cfg.write_text(cfg.read_text().replace("masks: {source: canny}", f"masks: {{masks: '{mine}'}}"))
    assert run(cfg, tmp_path / "out")["failed"] == 0
    assert "holds a fit of other edge masks than this config asks for" in " ".join(capsys.readouterr().err.split())
    assert json.loads(fit_config.read_text())["masks"]["path"] == str(mine.resolve())
    # the same mask file made again, other masks under the same name: the point and its fit run again
    mine.unlink()
    make_source_masks(open_video(tmp_path / "Tiny_48x32_25.yuv", "all"), "canny", mine, SourceSettings(dilation=2))
    result = run(cfg, tmp_path / "out")
    assert (result["failed"], result["ran"]) == (0, 1)
    assert "holds a fit of other edge masks than this config asks for" in " ".join(capsys.readouterr().err.split())
    # vcm compress on that fit with its mask file since replaced would fine-tune against other masks
    fit_dir = fit_config.parent
    mine.unlink()
    make_source_masks(open_video(tmp_path / "Tiny_48x32_25.yuv", "all"), "canny", mine, SourceSettings(dilation=3))
    proc = run_main("compress", fit_dir, "--prune", "0", "--bits", "8", "--out", tmp_path / "x.nerv")
    assert proc.returncode == 1 and "is not the mask file" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.nerv").exists()


def test_an_sa_nerv_fit_on_sam_masks_follows_the_weights_and_settings_not_their_names(tmp_path, monkeypatch, capsys):
    """Masks SAM makes for a CTC fit were cached in the fit's folder by model and α alone: weights replaced
    under the same path, or the masks config edited, left the old masks, fit and points in place. A fit
    recorded before the weights and settings were is taken as it is while its mask file says they match."""
    import torch

    from tests.conftest import tiny_ctc_config
    from tests.test_masks import LOOSE
    from vcm import progress
    from vcm.ctc.run import run
    from vcm.masks.sam import build_tiny_sam

    monkeypatch.setenv("VCM_PROGRESS", "lines")
    progress.set_quiet(False)
    weights, settings = tmp_path / "sam.pth", tmp_path / "loose.yaml"
    torch.manual_seed(0)
    torch.save(build_tiny_sam().state_dict(), weights)
    settings.write_text(LOOSE)
    cfg = tiny_ctc_config(tmp_path, "{steps: 4, batch: 2, lr: 3.0e-3}",
                          f"  sa-nerv:\n    masks: {{{{sam_checkpoint: '{weights}', sam_model: tiny, alpha: 0.0, "
                          f"config: '{settings}'}}}}\n"
                          "    fits: [{{preset: {preset}, points: [{{prune: 0.0, bits: 8}}]}}]\n")
    assert run(cfg, tmp_path / "out")["failed"] == 0
    fit_config = tmp_path / "out" / "fits" / "tiny" / "sa-nerv" / "tiny" / "config.json"
    record = json.loads(fit_config.read_text())["masks"]
    assert len(record["checkpoint_fingerprint"]) == 16 and record["settings"]["generator"]["points_per_side"] == 4
    # recorded before the weights and settings were: the mask file it names says what they were
    written = json.loads(fit_config.read_text())
    for key in ("checkpoint_fingerprint", "settings"):
        del written["masks"][key]
    fit_config.write_text(json.dumps(written))
    capsys.readouterr()
    assert run(cfg, tmp_path / "out", force=True)["failed"] == 0
    assert "training it again" not in capsys.readouterr().err
    for change in ("weights", "settings"):
        if change == "weights":
            torch.manual_seed(1)
            torch.save(build_tiny_sam().state_dict(), weights)
        else:
            settings.write_text(LOOSE.replace("points_per_side: 4", "points_per_side: 3"))
        result = run(cfg, tmp_path / "out")
        assert (result["failed"], result["ran"]) == (0, 1), [r.get("error") for r in result["rows"]]
        err = " ".join(capsys.readouterr().err.split())
        assert "holds a fit of other edge masks than this config asks for: training it again" in err
    assert json.loads(fit_config.read_text())["masks"]["settings"]["generator"]["points_per_side"] == 3
    assert run(cfg, tmp_path / "out")["reused"] == 1


def test_the_dry_run_counts_the_optimiser_steps_each_point_then_trains(tmp_path):
    """--dry-run said how many networks a run trains, not how long: each point it would run now gives the steps
    of the fit it is the first to train and of its own stage, and those are the steps the run then takes."""
    from vcm.ctc.run import preview, run

    cfg = tiny_ctc_config(tmp_path, "{epochs: 2, batch: 2, lr: 3.0e-3}",
                          "  nerv:\n    fits:\n"
                          "      - {{preset: {preset}, rate_aware: false, points: [{{lambda: 1, rd_steps: 3}}, "
                          "{{lambda: 4}}, {{prune: 0.4, bits: 8, finetune_epochs: 1}}]}}\n"
                          "      - {{preset: {preset}, compute: 1.5, points: [{{lambda: 2, rd_steps: 2}}]}}\n"
                          "  hevc: {{qps: [40]}}\n")
    plan = preview(cfg, tmp_path / "out")
    steps = {p["point"]: p.get("steps") for p in plan["plan"]}  # an anchor trains nothing: None
    # 4 frames at batch 2: 2 steps a pass; the shared fit's 4 steps counted once, on its first point
    # λ 4's stage: half the fit's passes; the fine-tune: one pass; compute 1.5: 6 fit steps and 1.5 × 2 stage steps
    assert {p: s and (s["fit"], s["stage"]) for p, s in steps.items()} == {
        "tiny_rd_l1p0": (4, 3), "tiny_rd_l4p0": (0, 2), "tiny_pr0p4_b8": (0, 2), "tiny_x1p5_rd_l2p0": (6, 3), "qp40": None}
    assert (plan["networks_to_train"], plan["fit_steps"], plan["stage_steps"]) == (2, 4 + 6, 3 + 2 + 2 + 3)
    result = run(cfg, tmp_path / "out", jobs=1)
    assert result["failed"] == 0, [r.get("error") for r in result["rows"]]
    for r in result["rows"]:
        if r["codec"] != "nerv":
            continue
        fit = json.loads((Path(json.loads(Path(r["bitstream"]).with_suffix(".json").read_text())["run"])
                          / "metrics.json").read_text())
        coded = json.loads(Path(r["bitstream"]).with_suffix(".json").read_text())
        ran = coded.get("rd_steps", coded.get("finetune_epochs", 0) * 2)
        want = steps[r["point"]]
        assert (want["stage"], want["fit"] in (0, fit["steps"])) == (ran, True), (r["point"], want, ran, fit["steps"])
    again = preview(cfg, tmp_path / "out")
    assert (again["fit_steps"], again["stage_steps"]) == (0, 0) and all("steps" not in p for p in again["plan"])
    # every point again (--force): the networks on disk are reused, only the stages train
    forced = preview(cfg, tmp_path / "out", force=True)
    assert (forced["networks_to_train"], forced["fit_steps"], forced["stage_steps"]) == (0, 0, 10)
    # a fit stopped at its first step (as Ctrl-C leaves it) resumes: its 3 steps left of 4
    import torch

    fit_dir = next(p for p in (tmp_path / "out" / "fits" / "tiny" / "nerv").iterdir() if p.name == "tiny")
    state = torch.load(fit_dir / "checkpoint.pt", weights_only=False)
    torch.save({**state, "step": 1}, fit_dir / "checkpoint.pt")
    (fit_dir / "metrics.json").unlink()
    stopped = preview(cfg, tmp_path / "out", force=True)
    assert (stopped["networks_to_train"], stopped["fit_steps"]) == (1, 3)
    assert {p["point"]: p["steps"]["fit_done"] for p in stopped["plan"] if p["steps"]}["tiny_rd_l1p0"] == 1
    shown = " ".join(run_main("ctc", "run", cfg, "--out", tmp_path / "out", "--dry-run", "--force").stdout.split())
    assert "fit 3 of 4 + 3" in shown and "1 network to train: 3 optimiser steps of fits" in shown, shown
    (tmp_path / "Tiny_48x32_25.yuv").unlink()  # a video the run could not read: its steps are not guessed
    gone = preview(cfg, tmp_path / "out", force=True)
    assert gone["fit_steps"] == 0 and gone["unread"] and "Tiny_48x32_25.yuv" in gone["unread"][0]
    proc = run_main("ctc", "run", cfg, "--out", tmp_path / "out", "--dry-run", "--force")
    assert proc.returncode == 0 and "steps not counted for tiny:" in " ".join(proc.stdout.split()), proc.stdout


def test_the_dry_run_plans_sfu_sequences_before_their_videos_and_weights_are_here(tmp_path):
    """`vcm ctc run sfu-cd.yaml --dry-run` stopped at the first thing missing ("where is BasketballDrill?", then the
    SAM checkpoint), so a lab could not see what a CTC run costs before fetching the SFU-HW YUVs: each point it
    cannot run yet now says so, its steps counted on the frames the manifest gives the sequence, and every missing
    input is listed; the run itself still refuses."""
    import os

    from vcm.ctc.run import preview

    cfg = tmp_path / "ctc.yaml"
    fit = "fits: [{preset: hinerv-demo, rate_aware: false, points: [{lambda: 1}]}]"
    sam = tmp_path / "sam_vit_h_4b8939.pth"
    cfg.write_text(f"sequences: [BQSquare]\nframes: ctc\ndevice: cpu\ncodecs:\n  hinerv: {{{fit}}}\n"
                   f"  sa-hinerv: {{masks: {{source: sam, sam_checkpoint: {sam}}}, {fit}}}\n  hevc: {{qps: [40]}}\n")
    data = tmp_path / "data"
    data.mkdir()
    without = preview(cfg, tmp_path / "out")
    assert {p["state"] for p in without["plan"]} == {"missing input"} and without["missing_input"] == 3
    assert without["missing"][0] == "where is BQSquare? pass --data DIR (the folder with the SFU-HW YUVs)"
    assert any("sam_vit_h_4b8939.pth" in why for why in without["missing"]), without["missing"]
    elsewhere = preview(cfg, tmp_path / "out", data=data)
    assert "BQSquare: no BQSquare_416x240_60.yuv" in " ".join(elsewhere["missing"])
    # the same steps as with the video there (a sparse file of the manifest's 600 frames)
    with open(data / "BQSquare_416x240_60.yuv", "wb") as f:
        os.truncate(f.fileno(), 600 * 416 * 240 * 3 // 2)
    here = preview(cfg, tmp_path / "out", data=data)
    steps = {p["point"]: p["steps"] for p in here["plan"]}
    assert steps == {p["point"]: p["steps"] for p in without["plan"]} and steps["qp40"] is None
    assert {p["codec"]: p["state"] for p in here["plan"]} == {"hinerv": "to run", "sa-hinerv": "missing input",
                                                               "hevc": "to run"}
    assert here["fit_steps"] == without["fit_steps"] > 0 and here["missing"] == without["missing"][1:]
    shown = run_main("ctc", "run", cfg, "--out", tmp_path / "out", "--dry-run")
    said = " ".join(shown.stdout.split())
    assert shown.returncode == 0 and "3 missing an input" in said and "where is BQSquare?" in said, said
    refused = run_main("ctc", "run", cfg, "--out", tmp_path / "out")
    assert refused.returncode == 1 and "where is BQSquare?" in refused.stderr
    assert not (tmp_path / "out").exists()
    # frames the manifest's sequence does not hold: no steps guessed for them
    cfg.write_text(cfg.read_text().replace("frames: ctc", "frames: '590:700'"))
    beyond = preview(cfg, tmp_path / "out")
    assert beyond["fit_steps"] == 0
    assert beyond["unread"] == ["BQSquare: frames 590:700 are not in the manifest's BQSquare"]


def test_a_ctc_config_vcm_ships_is_named_by_its_name_in_any_folder_and_from_a_wheel(tmp_path, monkeypatch):
    """`vcm ctc run sfu-cd`: the configs vcm ships are run by name, as presets are. Installed from a wheel they lie
    inside the package (``vcm/_data/configs``), where ``configs/ctc/sfu-cd.yaml`` named nothing in the user's
    folder. A bare name that is no shipped config is one line naming them; a file's path is still a file."""
    from vcm import resources
    from vcm.ctc.config import config_file

    r = run_main("ctc", "run", "demo", "--dry-run", "--out", tmp_path / "o", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "20 points" in r.stdout and not (tmp_path / "o").exists()
    r = run_main("ctc", "run", "sfu_cd", "--dry-run", "--out", tmp_path / "o", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr == "error: no CTC config 'sfu_cd': name a YAML file, or a config vcm ships: demo, sfu-cd\n"
    mine = tmp_path / "sweep.yaml"
    mine.write_text(json.dumps({"sequences": [_SEQ], "codecs": {"hevc": {"qps": [40]}}}))
    assert config_file(str(mine)) == mine and config_file("sweep.yaml") == Path("sweep.yaml")
    wheel = tmp_path / "site-packages" / "vcm"  # an installed package: its data under _data, no checkout above it
    (wheel / "_data" / "configs" / "ctc").mkdir(parents=True)
    (wheel / "_data" / "configs" / "ctc" / "lab.yaml").write_text(mine.read_text())
    monkeypatch.setattr(resources, "_PKG", wheel)
    assert config_file("lab") == wheel / "_data" / "configs" / "ctc" / "lab.yaml"
    with pytest.raises(VcmError, match="a config vcm ships: lab$"):
        config_file("sfu-cd")


LAB_CODEC = '''
import zlib
from pathlib import Path

from vcm.codecs import Codec, register_codec


@register_codec("lab", order=70)
class Lab(Codec):
    """Keeps every q-th grey level of each sample, coded with zlib."""

    section_keys = ("levels",)

    def points(self, section, sequence):
        return [(f"q{q}", {"q": q}) for q in section.get("levels", [4])]

    def label(self, point, coded):
        return f"Q{point['q']}"

    def encode_decode(self, spec, video, device):
        q = spec["point"]["q"]
        out = Path(spec["workdir"]) / "stream.lab"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(zlib.compress((video.frames_u8 // q).tobytes(), 9))
        frames = (video.frames_u8 // q) * q + q // 2
        return {"bitstream": str(out), "bytes": out.stat().st_size, "frames_u8": frames, "encode": 0.0,
                "decode": 0.0, "qp": None, "settings": {"levels": 256 // q}}
'''


def test_a_codec_of_another_package_runs_through_its_entry_point(tmp_path):
    """A lab's own codec joins `vcm ctc run` without an edit to vcm: its package names its module in the entry-point
    group ``vcm.codecs``, whose import registers the codec (``@register_codec``), as vcm's own codecs register. Stood
    in for by a distribution on PYTHONPATH whose codec keeps every q-th grey level; its points run in worker processes
    (--jobs 2), which load the plugin as the command does, and the report draws its curve."""
    site = tmp_path / "site"
    plugin_package(site, "lab-codec", "vcm.codecs", "lab", "lab_codec", LAB_CODEC)
    cfg = tmp_path / "lab.yaml"
    cfg.write_text(json.dumps({"sequences": [_SEQ], "device": "cpu", "codecs": {"lab": {"levels": [4, 16]}}}))
    env = {"PYTHONPATH": str(site)}
    r = run_cli("ctc", "run", cfg, "--out", tmp_path / "out", "--jobs", "2", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    points = tmp_path / "out" / "points" / "c" / "lab"
    rows = {p.parent.name: json.loads(p.read_text()) for p in points.glob("*/result.json")}
    assert sorted(rows) == ["q16", "q4"] and all(row["status"] == "ok" for row in rows.values())
    assert rows["q4"]["label"] == "Q4" and rows["q16"]["bytes"] < rows["q4"]["bytes"]
    assert rows["q16"]["psnr"] < rows["q4"]["psnr"] and rows["q4"]["experiment"] == "levels 64"
    r = run_cli("ctc", "report", tmp_path / "out", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "| c | lab |" in (tmp_path / "out" / "report.md").read_text().replace("  ", " ")
    # without the package, the codec is unknown, in one line that lists the ones there are
    r = run_main("ctc", "run", cfg, "--out", tmp_path / "out2", "--dry-run", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.endswith(": unknown codec lab; known: nerv, sa-nerv, hinerv, sa-hinerv, "
                                                   "sa-icm, hevc, vvc (another package's codec is known once installed "
                                                   "with an entry point in vcm.codecs, a representation's two in "
                                                   "vcm.representations)\n")


@pytest.mark.parametrize("source, message", [
    ("raise ImportError('No module named torchaudio')", "the codec plugin lab of lab-codec (vcm.codecs: broken) does "
                                                         "not load: ImportError: No module named torchaudio; fix or "
                                                         "uninstall that package"),
    (LAB_CODEC.replace('"lab", order=70', '"hevc", order=70'), "two codecs are named 'hevc': broken.Lab and "
                                                               "vcm.codecs.anchors.Hevc; rename one"),
])
def test_a_codec_plugin_that_fails_or_takes_a_name_of_vcms_is_one_line(tmp_path, source, message):
    site = tmp_path / "site"
    plugin_package(site, "lab-codec", "vcm.codecs", "lab", "broken", source)
    r = run_cli("ctc", "run", "demo", "--dry-run", "--out", tmp_path / "o", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert r.returncode == 1 and r.stderr == f"error: {message}\n"


def test_a_source_video_replaced_by_other_frames_of_the_same_size_runs_its_points_again(tmp_path):
    """A raw clip extracted again (other frames, the same name and size) kept every finished point: the points
    were known by the file's name and size only, and the report showed the old frames' figures as the new ones'."""
    from vcm.ctc.run import preview, run
    from vcm.video.yuv import write_yuv420

    cfg = tiny_ctc_config(tmp_path, "{epochs: 1}", "  hevc: {{qps: [40]}}\n")
    first = run(cfg, tmp_path / "out", jobs=1)
    assert (first["ran"], first["failed"]) == (1, 0)
    assert [p["state"] for p in preview(cfg, tmp_path / "out")["plan"]] == ["finished"]
    write_yuv420(tmp_path / "Tiny_48x32_25.yuv", 255 - moving_frames(t=4, h=32, w=48))  # the same size, other frames
    assert [p["state"] for p in preview(cfg, tmp_path / "out")["plan"]] == ["changed"]
    again = run(cfg, tmp_path / "out", jobs=1)
    assert (again["ran"], again["reused"]) == (1, 0) and again["rows"][0]["psnr_y"] != first["rows"][0]["psnr_y"]


def test_annotations_corrected_in_place_run_their_points_again(tmp_path):
    """A box corrected in the COCO JSON a sequence names (10.5 → 11.5: the file keeps its size) kept every finished
    point, scored against the old boxes."""
    from vcm.ctc.run import preview, run

    cfg = tiny_ctc_config(tmp_path, "{epochs: 1}", "  hevc: {{qps: [40]}}\n")
    box = [10.5, 8.0, 20.0, 12.0]
    coco = {"images": [{"id": i + 1, "file_name": f"f{i}.png", "frame_index": i, "width": 48, "height": 32}
                       for i in range(4)],
            "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": box, "area": 240.0,
                             "iscrowd": 0} for i in range(4)],
            "categories": [{"id": 1, "name": "person"}]}
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(coco))
    cfg.write_text(cfg.read_text().replace("frames: all}", f"frames: all, annotations: {gt}}}")
                   .replace("device: cpu", "device: cpu\ndetector: {name: oracle}"))
    first = run(cfg, tmp_path / "out", jobs=1)
    assert (first["ran"], first["failed"]) == (1, 0), [r.get("error") for r in first["rows"]]
    size = gt.stat().st_size
    gt.write_text(gt.read_text().replace("10.5", "11.5"))
    assert gt.stat().st_size == size
    assert [p["state"] for p in preview(cfg, tmp_path / "out")["plan"]] == ["changed"]


def test_sfu_hw_ground_truth_found_in_vcm_annotations_is_fingerprinted_too(tmp_path, monkeypatch):
    """A CTC JSON found for an SFU-HW sequence in $VCM_ANNOTATIONS (no annotations named) left ``truth_key`` empty:
    a box corrected in it kept every finished point, scored against the old boxes. Pseudo ground truth has none."""
    from vcm.ctc.run import plan

    seq = sequences.lookup("BQSquare")
    folder = tmp_path / "annotations"
    folder.mkdir()
    gt = GroundTruth("BQSquare", 416, 240, {seq.ctc_first: [Box(10.5, 8.0, 20.0, 12.0, 0)]})
    json_path = folder / seq.annotations
    json_path.write_text(json.dumps(to_coco_json(gt, seq.ctc_first)))
    monkeypatch.setenv("VCM_ANNOTATIONS", str(folder))
    write_yuv420(tmp_path / "BQSquare_416x240_60.yuv", moving_frames(t=2, h=240, w=416))
    cfg = {"sequences": [{"name": "BQSquare", "path": str(tmp_path / "BQSquare_416x240_60.yuv"), "frames": "0:2"}],
           "device": "cpu", "detector": {"name": "oracle"}, "codecs": {"hevc": {"qps": [40]}}}

    def key(config=cfg):
        return plan(config, tmp_path / "out", None, None, None, None, None)[0]["truth_key"]

    before = key()
    json_path.write_text(json_path.read_text().replace("10.5", "11.5"))
    assert before is not None and key() not in (None, before)
    assert key({**cfg, "reference": "original"}) is None
