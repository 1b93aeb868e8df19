"""YUV4MPEG2 files: read with vcm's own colour conversion (as a raw .yuv), written by `vcm decode`, refused in
one line when they are not what they declare."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from tests.conftest import moving_frames, run_cli, run_main
from vcm.errors import VcmError
from vcm.video import y4m
from vcm.video.source import open_video
from vcm.video.writer import write_video


def _ffmpeg(*args) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *map(str, args)],
                   check=True)


def test_a_y4m_reads_as_the_raw_yuv_of_the_same_samples(tmp_path):
    """A .y4m went through the container reader (ffmpeg's own YUV→RGB): its frames differed from the same
    samples read as a raw .yuv by up to 3 levels, so a sequence kept as .y4m was fitted and scored on other
    pixels, and its anchors coded a converted copy instead of its own samples."""
    frames = moving_frames(5, 32, 48)
    raw = write_video(tmp_path / "clip_48x32_25.yuv", frames, 25.0)
    _ffmpeg("-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "48x32", "-r", "30000/1001", "-i", raw, tmp_path / "clip.y4m")
    as_raw, as_y4m = open_video(raw, "all"), open_video(tmp_path / "clip.y4m", "all")
    assert np.array_equal(as_y4m.frames_u8, as_raw.frames_u8)
    info = as_y4m.info
    assert (info.kind, info.width, info.height, info.num_frames, info.bit_depth) == ("y4m", 48, 32, 5, 8)
    assert info.fps == pytest.approx(30000 / 1001)
    part = open_video(tmp_path / "clip.y4m", "2:4").frames_u8  # a frame range reads only its frames
    assert np.array_equal(part, as_raw.frames_u8[2:4])
    from vcm.anchors.ffmpeg import planes_of

    (y, u, v), depth = planes_of(as_y4m)  # the anchors code the file's own samples
    (ry, ru, rv), _ = planes_of(as_raw)
    assert depth == 8 and all(np.array_equal(a, b) for a, b in ((y, ry), (u, ru), (v, rv)))
    # 10-bit: C420p10, little-endian 16-bit samples, read as the raw 10-bit file of the same samples
    raw10 = write_video(tmp_path / "clip_48x32_25_10bit.yuv", frames, 25.0, bit_depth=10)
    _ffmpeg("-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", "48x32", "-r", "25", "-i", raw10, "-strict", "-1",
            tmp_path / "clip10.y4m")
    ten = open_video(tmp_path / "clip10.y4m", "all")
    assert ten.info.bit_depth == 10 and np.array_equal(ten.frames_u8, open_video(raw10, "all").frames_u8)


def test_vcm_writes_y4m_that_ffmpeg_and_vcm_read_back(tmp_path):
    frames = moving_frames(4, 24, 40)
    out = write_video(tmp_path / "dec.y4m", iter([frames[:3], frames[3:]]), 29.97)  # in chunks, as decode writes
    assert out.read_bytes().startswith(b"YUV4MPEG2 W40 H24 F30000:1001 Ip A1:1 C420jpeg\n")
    back = open_video(out, "all")
    raw = open_video(write_video(tmp_path / "dec_40x24_29.97.yuv", frames, 29.97), "all")
    assert np.array_equal(back.frames_u8, raw.frames_u8) and back.info.fps == pytest.approx(30000 / 1001)
    _ffmpeg("-i", out, "-f", "rawvideo", "-pix_fmt", "yuv420p", tmp_path / "via_ffmpeg.yuv")  # a standard file
    assert (tmp_path / "via_ffmpeg.yuv").read_bytes() == (tmp_path / "dec_40x24_29.97.yuv").read_bytes()
    assert y4m.header_line(8, 8, 25.0) == b"YUV4MPEG2 W8 H8 F25:1 Ip A1:1 C420jpeg\n"
    assert b" F60000:1001 " in y4m.header_line(8, 8, 59.94) and b" F24:1 " in y4m.header_line(8, 8, 24)


def test_vcm_decode_writes_a_y4m_that_needs_no_size_or_rate(tmp_path, tiny_run):
    root, video = tiny_run
    stream = tmp_path / "s.nerv"
    assert run_main("compress", root / "run", "--bits", "6", "--out", stream).returncode == 0
    assert run_main("decode", stream, "--out", tmp_path / "dec.yuv").returncode == 0
    proc = run_main("decode", stream, "--out", tmp_path / "dec.y4m")
    assert proc.returncode == 0 and "--size" not in proc.stdout, proc.stderr
    info = json.loads(run_main("info", tmp_path / "dec.y4m", "--json").stdout)
    assert (info["width"], info["height"], info["frames"]) == (32, 24, 6)
    assert info["fps"] == pytest.approx(video.info.fps, abs=1e-3)
    raw = open_video(tmp_path / "dec.yuv", "all", size=(32, 24), fps=video.info.fps).frames_u8
    assert np.array_equal(open_video(tmp_path / "dec.y4m", "all").frames_u8, raw)


def test_vcm_decode_pipes_y4m_to_stdout(tmp_path, tiny_run):
    """`vcm decode s.nerv --out - | ffplay -` (or into x265 --y4m --input -): the frames on stdout as YUV4MPEG2,
    the summary on stderr; a reader that stops early is one line, not a silent exit."""
    import sys

    root, _ = tiny_run
    stream = tmp_path / "s.nerv"
    assert run_main("compress", root / "run", "--bits", "6", "--out", stream).returncode == 0
    assert run_main("decode", stream, "--out", tmp_path / "dec.y4m").returncode == 0
    piped = subprocess.run([sys.executable, "-m", "vcm", "decode", str(stream), "--out", "-"], capture_output=True)
    assert piped.returncode == 0 and piped.stdout == (tmp_path / "dec.y4m").read_bytes()
    assert b"stdout (YUV4MPEG2)" in piped.stderr
    proc = run_cli("decode", stream, "--out", "-", "--json")
    assert proc.returncode == 1 and "--out - writes the frames to stdout, where --json would print" in proc.stderr
    # a reader that stops early: the writer's error is one line, and nothing is left to fail at exit. The tiny
    # stream fits in a pipe's buffer, so the writer is driven with more frames than a pipe holds.
    script = ("import numpy as np, sys\nfrom vcm.errors import VcmError\nfrom vcm.video.writer import open_writer\n"
              "try:\n    with open_writer('-', 25.0) as write:\n        for _ in range(40):\n"
              "            write(np.zeros((4, 3, 240, 416), np.uint8))\n"
              "except VcmError as err:\n    print(err, file=sys.stderr)\n    sys.exit(1)\n")
    reader = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout.read(60).startswith(b"YUV4MPEG2 W416 H240 F25:1")
    reader.stdout.close()
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=60) == 1, err
    assert "the program reading stdout closed it before the last frame" in err and "Exception ignored" not in err, err


def _y4m(tmp_path, header: bytes, frames: int = 2, frame_line: bytes = b"FRAME\n", w: int = 4, h: int = 2,
         cut: int = 0) -> str:
    body = (frame_line + bytes(w * h * 3 // 2)) * frames
    path = tmp_path / "bad.y4m"
    path.write_bytes(header + body[:len(body) - cut])
    return path


@pytest.mark.parametrize("header, kwargs, message", [
    (b"YUV4MPEG W4 H2 F25:1\n", {}, "not a YUV4MPEG2 file"),
    (b"YUV4MPEG2 W4 F25:1\n", {}, "gives no frame size"),
    (b"YUV4MPEG2 W4 H2 F25:0\n", {}, "frame rate F25:0"),
    (b"YUV4MPEG2 W4 H2 F25:1 C444\n", {}, "colour space C444; vcm reads 4:2:0"),
    (b"YUV4MPEG2 W4 H2 F25:1 It\n", {}, "interlaced YUV4MPEG2 (It)"),
    (b"YUV4MPEG2 W99999 H2 F25:1\n", {}, "declares frames of 99999x2 pixels; vcm reads frames of 2 to 16384"),
    (b"YUV4MPEG2 W4 H2 F25:1", {"frames": 0}, "header line does not end within 4096 bytes"),  # was 'not a Y4M'
    (b"YUV4MPEG2 W4 H1 F25:1\n", {}, "declares frames of 4x1 pixels"),  # its fit failed in SSIM with a traceback
    (b"YUV4MPEG2 W4 H2 F25:1 W8\n", {}, "gives W twice (W4 and W8)"),  # ffmpeg reads the last: 8x2, not 4x2
    (b"YUV4MPEG2 W4 H2 F25:1 C420jpeg C444\n", {}, "gives C twice (C420jpeg and C444)"),
    (b"YUV4MPEG2 W4 H2 F25:1\n", {"cut": 3}, "frame 1 is cut short (9 of its 12 bytes of planes): a cut file"),
    (b"YUV4MPEG2 W4 H2 F25:1\n", {"frames": 0}, "holds no frames"),
    # ffmpeg's yuvj420p (phone and MJPEG sources): read as limited range, its colours were 7.7 levels off on average
    (b"YUV4MPEG2 W4 H2 F25:1 C420jpeg XYSCSS=420JPEG XCOLORRANGE=FULL\n", {}, "says full-range samples"),
    (b"YUV4MPEG2 W4 H2 F25:1\n", {"frame_line": b"FRAME Itii\n"}, "frame 0 is interlaced (Itii)"),
    (b"YUV4MPEG2 W4 H2 F25:1\n", {"frame_line": b"FRAMX\n"}, "frame 0 does not start with a FRAME line"),
    (b"YUV4MPEG2 W4 H2 F25:1\n", {"frame_line": b"FRAME" + b"X" * 2000}, "frame 0 does not start with a FRAME line"),
    (b"YUV4MPEG2 W4 H2 F25:1 XVCM_FIRST_FRAME=-3\n", {}, "gives XVCM_FIRST_FRAME=-3 (need one whole number"),
    (b"YUV4MPEG2 W4 H2 F25:1 XVCM_FIRST_FRAME=2000000000\n", {}, "from 0 to 1,000,000,000)"),
    (b"YUV4MPEG2 W4 H2 F25:1 XVCM_FIRST_FRAME=2 XVCM_FIRST_FRAME=5\n", {}, "gives XVCM_FIRST_FRAME=2 and 5"),
])
def test_a_y4m_that_is_not_what_it_declares_is_one_clear_line(tmp_path, header, kwargs, message):
    path = _y4m(tmp_path, header, **kwargs)
    with pytest.raises(VcmError, match="bad.y4m") as err:
        open_video(path, "all")
    assert message in str(err.value)


def test_a_y4m_that_says_limited_range_or_other_parameters_is_read(tmp_path):
    path = _y4m(tmp_path, b"YUV4MPEG2 W4 H2 F25:1 XYSCSS=420JPEG XCOLORRANGE=LIMITED Xcustom=1\n")
    assert open_video(path, "all").frames_u8.shape == (2, 3, 2, 4)


def test_a_y4m_that_says_its_first_source_frame_holds_those_frames(tmp_path):
    """vcm's decoders write where the frames start; an SFU-HW name no longer puts them elsewhere."""
    path = _y4m(tmp_path, b"YUV4MPEG2 W4 H2 F25:1 XVCM_FIRST_FRAME=7\n", frames=3)
    video = open_video(path, "8:10")
    assert video.source_frames == range(8, 10) and video.info.source_range == range(7, 10)
    assert b"XVCM_FIRST_FRAME=7\n" in y4m.header_line(4, 2, 25, first_frame=7)
    assert b"XVCM" not in y4m.header_line(4, 2, 25)  # a writer that does not know says nothing


def test_a_bad_y4m_given_to_a_command_is_one_line_and_exit_1(tmp_path):
    path = _y4m(tmp_path, b"YUV4MPEG2 W4 H2 F25:1\n", frame_line=b"FRAMX\n")  # its header is sound: the frames are not
    proc = run_main("fit", path, "--steps", "1", "--out", tmp_path / "run")
    assert proc.returncode == 1 and "frame 0 does not start with a FRAME line" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


def test_frames_whose_lines_carry_parameters_read_as_bare_ones(tmp_path):
    """Frame lines may carry parameters (``FRAME Ip Xkey=value``; the spec allows them, some tools write them): such
    a file was refused ("frames that carry parameters, which vcm does not read"). Its frames are found line by line
    now, and read as the same file with bare frame lines, whole or in part."""
    from vcm.video.yuv import frame_bytes

    frames = moving_frames(t=4, h=16, w=24)
    bare = tmp_path / "bare.y4m"
    write_video(bare, frames, 25.0)
    header = y4m.read_header(bare)
    record = frame_bytes(24, 16, 8)
    data = bare.read_bytes()
    planes = [data[header.data_offset + i * (6 + record) + 6:header.data_offset + (i + 1) * (6 + record)] for i in range(4)]
    lines = [b"FRAME Ip Xa=1\n", b"FRAME\n", b"FRAME X\n", b"FRAME I1pp\n"]
    tagged = tmp_path / "tagged.y4m"
    tagged.write_bytes(data[:header.data_offset] + b"".join(line + p for line, p in zip(lines, planes)))
    assert y4m.count_frames(tagged, y4m.read_header(tagged)) == 4
    assert np.array_equal(open_video(tagged, "all").frames_u8, open_video(bare, "all").frames_u8)
    assert np.array_equal(open_video(tagged, "2:3").frames_u8, open_video(bare, "2:3").frames_u8)


def test_a_file_whose_frame_lines_carry_parameters_is_walked_once_until_it_changes(tmp_path, monkeypatch):
    """Opening such a file walked its frame lines twice (the probe counted the frames, the read found them
    again); a long file paid that walk twice. Now its index is kept while the file is unchanged."""
    from vcm.video.yuv import frame_bytes

    frames = moving_frames(t=3, h=8, w=8)
    bare = tmp_path / "bare.y4m"
    write_video(bare, frames, 25.0)
    header = y4m.read_header(bare)
    tagged = tmp_path / "tagged.y4m"
    tagged.write_bytes(bare.read_bytes().replace(b"FRAME\n", b"FRAME Ip\n"))
    walks = []
    real_walk = y4m._walk
    monkeypatch.setattr(y4m, "_walk", lambda *a: walks.append(a[0]) or real_walk(*a))
    expected = open_video(bare, "all").frames_u8  # bare frame lines are found by arithmetic: no walk
    assert np.array_equal(open_video(tagged, "all").frames_u8, expected) and len(walks) == 1
    assert np.array_equal(open_video(tagged, "1:3").frames_u8, expected[1:3]) and len(walks) == 1
    with open(tagged, "ab") as f:  # a frame more: the file changed, so it is walked again
        f.write(b"FRAME Ip\n" + bare.read_bytes()[header.data_offset + 6:][:frame_bytes(8, 8, 8)])
    assert open_video(tagged, "all").num_frames == 4 and len(walks) == 2


def test_a_y4m_without_a_frame_rate_is_asked_for_one_as_a_raw_file_is(tmp_path):
    """A header without F was read at 25 fps without a word, so every rate figure of the clip (kbps, BD-rate)
    was off by the true rate's ratio. Now its rate is unknown as a raw file's is: `vcm info` shows the rest and
    says so, a command that needs the rate asks for --fps, and --fps gives it."""
    path = _y4m(tmp_path, b"YUV4MPEG2 W4 H2 Ip C420jpeg\n", frames=3)
    with pytest.raises(VcmError, match=r"bad.y4m: its YUV4MPEG2 header gives no frame rate \(F\); pass --fps F"):
        open_video(path, "all")
    assert open_video(path, "all", fps=24).fps == 24
    proc = run_main("info", path, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["fps"] is None, proc.stderr
    assert "unknown (pass --fps F; its header has no F)" in " ".join(run_main("info", path).stdout.split())
    proc = run_main("fit", path, "--steps", "1", "--out", tmp_path / "run")
    assert proc.returncode == 1 and "gives no frame rate (F); pass --fps F" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_changed_y4m_under_a_run_is_named_as_such_and_the_reader_note_only_for_runs_before_it(tmp_path):
    """`vcm compress` on a run whose .y4m no longer holds its frames blamed vcm's own Y4M reader (before it, vcm read
    them through ffmpeg) for every run, a file edited since a fit of today included. The note is for the runs fitted
    before that change now; the message says first that the file changed."""
    from vcm.codec.compress import _fit_date, source_video

    path = tmp_path / "clip.y4m"
    write_video(path, moving_frames(t=3, h=16, w=24), fps=25)
    video = open_video(path, "all")
    config = {"video": {"source": str(path), "width": 24, "height": 16, "fps": 25.0, "source_frames": [0, 3],
                        "bit_depth": 8, "fingerprint": video.fingerprint()}}
    assert source_video(config).fingerprint() == video.fingerprint()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(VcmError, match="fingerprint differs: the file changed since, or is another") as err:
        source_video(config, fitted="2026-12-04T22:30:02+00:00")
    assert "ffmpeg" not in str(err.value)
    with pytest.raises(VcmError, match="read it through ffmpeg's"):  # a run fitted when vcm read a .y4m through ffmpeg
        source_video(config, fitted="2026-11-20T10:00:00+00:00")
    # the date comes from the run's config.json, "" (before any date) when it does not say
    (tmp_path / "run").mkdir()
    assert _fit_date(tmp_path / "run") == ""
    (tmp_path / "run" / "config.json").write_text(json.dumps({"provenance": {"date": "2026-12-04T22:30:02+00:00"}}))
    assert _fit_date(tmp_path / "run") == "2026-12-04T22:30:02+00:00"
