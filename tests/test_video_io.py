import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from vcm.errors import VcmError
from vcm.video import open_video, probe, resolve_frames, write_video
from vcm.video.yuv import frame_bytes, read_yuv420, write_yuv420
from tests.conftest import moving_frames, run_cli, run_main


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_yuv_file_round_trip_and_ranges(tmp_path, bit_depth):
    frames = moving_frames(t=5, h=16, w=20)
    path = tmp_path / f"Clip_20x16_25_{bit_depth}bit.yuv"
    write_yuv420(path, frames, bit_depth)
    assert path.stat().st_size == 5 * frame_bytes(20, 16, bit_depth)
    info = probe(path)
    assert (info.width, info.height, info.fps, info.num_frames, info.bit_depth) == (20, 16, 25.0, 5, bit_depth)
    whole = open_video(path, "all").frames_u8
    part = open_video(path, "2:4").frames_u8
    assert np.array_equal(part, whole[2:4])
    from vcm.video.color import rgb_to_yuv420, yuv420_to_rgb

    assert np.array_equal(whole, yuv420_to_rgb(*rgb_to_yuv420(frames, bit_depth), bit_depth=bit_depth))
    y, u, v = read_yuv420(path, 20, 16, bit_depth, 4, 5)
    assert y.dtype == (np.uint8 if bit_depth == 8 else np.uint16) and y.shape == (1, 16, 20)


def test_ten_bit_samples_are_scaled_not_truncated(tmp_path):
    frames = moving_frames(t=1, h=8, w=8)
    p8, p10 = tmp_path / "A_8x8_30.yuv", tmp_path / "A_8x8_30_10bit.yuv"
    write_yuv420(p8, frames, 8)
    write_yuv420(p10, frames, 10)
    y8 = read_yuv420(p8, 8, 8, 8, 0, 1)[0].astype(int)
    y10 = read_yuv420(p10, 8, 8, 10, 0, 1)[0].astype(int)
    assert np.abs(y10 - 4 * y8).max() <= 2


def test_bad_sizes_and_ranges_are_clear_errors(tmp_path):
    path = tmp_path / "Foo_832x480_60.yuv"
    path.write_bytes(b"\0" * 1000)
    with pytest.raises(VcmError, match="not a whole number"):
        probe(path)
    unknown = tmp_path / "mystery.yuv"
    unknown.write_bytes(b"\0" * 96)
    with pytest.raises(VcmError, match="unknown frame size"):
        probe(unknown)
    ok = tmp_path / "Bar_8x8_30.yuv"
    write_yuv420(ok, moving_frames(t=3, h=8, w=8))
    with pytest.raises(VcmError, match="outside"):
        open_video(ok, "1:9")
    with pytest.raises(VcmError, match="needs an SFU-HW sequence"):
        open_video(ok, "ctc")
    with pytest.raises(VcmError, match="A:B"):
        open_video(ok, "3-4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is no video")
    with pytest.raises(VcmError, match="cannot read"):
        probe(broken)


def test_container_and_png_folder(tmp_path, carphone):
    info = probe(carphone)
    assert (info.width, info.height, info.num_frames) == (176, 144, 120)
    assert abs(info.fps - 29.97) < 0.01
    clip = open_video(carphone, "10:14")
    assert clip.frames_u8.shape == (4, 3, 144, 176) and clip.source_frames == range(10, 14)
    write_video(tmp_path / "frames", clip.frames_u8, clip.fps)
    again = open_video(tmp_path / "frames")
    assert np.array_equal(again.frames_u8, clip.frames_u8)
    write_video(tmp_path / "lossless.mp4", clip.frames_u8, clip.fps)
    assert np.array_equal(open_video(tmp_path / "lossless.mp4").frames_u8, clip.frames_u8)
    (tmp_path / "frames" / "notes.txt").write_text("mine")
    write_video(tmp_path / "frames", clip.frames_u8[:2], clip.fps)  # fewer frames into the same folder: only those
    assert np.array_equal(open_video(tmp_path / "frames").frames_u8, clip.frames_u8[:2])  # (it read 2 new + 2 old)
    assert (tmp_path / "frames" / "notes.txt").read_text() == "mine"
    write_video(tmp_path / "frames", clip.frames_u8, clip.fps)
    write_video(tmp_path / "frames" / "x", clip.frames_u8[:1, :, :100], clip.fps)  # a frame of another size: a traceback
    (tmp_path / "frames" / "x" / "frame_00000.png").rename(tmp_path / "frames" / "frame_00002b.png")
    with pytest.raises(VcmError, match="frame_00002b.png is 176x100, the folder's first frame 176x144"):
        open_video(tmp_path / "frames")


def test_an_ffmpeg_that_is_not_there_or_fails_silently_is_named(tmp_path, carphone, monkeypatch):
    """IMAGEIO_FFMPEG_EXE naming no program failed as "No such file or directory: /nonexistent" (what, not said), and
    an ffmpeg that ended without a word as "ffmpeg could not write x.mp4: " (nothing after it)."""
    frames = open_video(carphone, "0:2").frames_u8
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "nonexistent"))
    with pytest.raises(VcmError, match=rf"^no ffmpeg program at {re.escape(str(tmp_path))}/nonexistent "
                                       rf"\(IMAGEIO_FFMPEG_EXE=.*/nonexistent\): name an ffmpeg binary"):
        write_video(tmp_path / "a.mp4", frames, 30.0)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", shutil.which("false"))
    with pytest.raises(VcmError, match=r"^ffmpeg could not write b.mp4: it ended with code 1 and no message$"):
        write_video(tmp_path / "b.mp4", frames, 30.0)
    assert not list(tmp_path.glob("*.mp4"))


def test_relative_names_with_a_colon_are_files_not_protocols(tmp_path, carphone, monkeypatch):
    """libav reads the letters before a first colon as a protocol: a container named ``T10:00/x.mp4`` or ``a:b.mp4``
    relative to the working folder was refused as "cannot read this video container (Error reading …)"."""
    clip = open_video(carphone, "0:2")
    monkeypatch.chdir(tmp_path)
    for name in ("T10:00/x.mkv", "a:b.mp4"):
        write_video(name, clip.frames_u8, clip.fps)
        assert np.array_equal(open_video(name).frames_u8, clip.frames_u8)


def test_without_decord_an_h264_clip_is_read_by_the_shipped_ffmpeg(carphone, monkeypatch):
    """decord is installed only where it has a wheel (Linux x86-64; macOS before Python 3.12, pyproject.toml): elsewhere
    the same H.264 clip is read by the shipped ffmpeg, the same frames."""
    from vcm.video import container

    with_decord = open_video(carphone, "2:5").frames_u8
    monkeypatch.setitem(sys.modules, "decord", None)  # `import decord` raises ImportError, as where it is not installed
    container._opened.cache_clear()
    try:
        assert not isinstance(container.open_container(Path(carphone)), container._Decord)
        without = open_video(carphone, "2:5").frames_u8
    finally:
        container._opened.cache_clear()
    assert without.shape == with_decord.shape and np.abs(without.astype(int) - with_decord).max() <= 2

@pytest.mark.parametrize("encoder", ["libvvenc", "libaom-av1"])
def test_a_container_decords_libav_cannot_decode_is_read_by_ffmpeg(tmp_path, encoder, monkeypatch):
    """decord's libav decodes no VVC or AV1: such an mp4 was refused as "cannot read this video container (…
    Check failed: st_nb >= 0 …)"; the ffmpeg vcm ships reads it, every frame once and in order. Its frames are
    counted (a decode of the whole file) once per video opened, not again when it is read."""
    import subprocess

    from vcm.quality import psnr_rgb
    from vcm.video.container import _Decord, open_container
    from vcm.video.ffmpeg_binary import ffmpeg_exe

    frames = moving_frames(t=5, h=48, w=64, noise=0)
    write_yuv420(tmp_path / "src.yuv", frames)
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "64x48", "-r",
                    "25", "-i", str(tmp_path / "src.yuv"), "-c:v", encoder, "-qp" if encoder == "libvvenc" else "-crf",
                    "10", str(tmp_path / "c.mp4")], check=True, capture_output=True)
    assert not isinstance(open_container(tmp_path / "c.mp4"), _Decord)
    calls = tmp_path / "calls.txt"  # the shipped ffmpeg, each command line it runs written down
    (tmp_path / "ffmpeg").write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {ffmpeg_exe()} "$@"\n')
    (tmp_path / "ffmpeg").chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "ffmpeg"))
    os.utime(tmp_path / "c.mp4", ns=(1, 1))  # another file as far as vcm knows: opened afresh
    assert open_video(tmp_path / "c.mp4", "1:3").frames_u8.shape == (2, 3, 48, 64)
    assert calls.read_text().count("-f null") == 1, calls.read_text()
    info = probe(tmp_path / "c.mp4")
    assert (info.width, info.height, info.num_frames, info.fps) == (64, 48, 5, 25.0)
    whole = open_video(tmp_path / "c.mp4").frames_u8
    assert whole.shape == frames.shape and psnr_rgb(frames, whole).min() > 25
    mse = ((whole[:, None].astype(float) - frames[None]) ** 2).mean(axis=(2, 3, 4))  # [decoded, source]
    assert list(mse.argmin(axis=1)) == list(range(5))  # each decoded frame is nearest its own source frame
    assert np.array_equal(open_video(tmp_path / "c.mp4", "2:4").frames_u8, whole[2:4])


def test_a_rotated_container_read_by_ffmpeg_is_read_upright_without_a_word(tmp_path):
    """A phone's portrait video (a rotation in its metadata) read by the shipped ffmpeg printed imageio-ffmpeg's
    warning "The frame size for reading (48, 64) is different from the source frame size (64, 48)." on the
    terminal."""
    import subprocess

    from vcm.video.ffmpeg_binary import ffmpeg_exe

    write_yuv420(tmp_path / "src.yuv", moving_frames(t=2, h=48, w=64, noise=0))
    base = [ffmpeg_exe(), "-loglevel", "error"]
    subprocess.run(base + ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "64x48", "-i", str(tmp_path / "src.yuv"),
                           "-c:v", "libaom-av1", str(tmp_path / "a.mp4")], check=True, capture_output=True)
    subprocess.run(base + ["-display_rotation", "90", "-i", str(tmp_path / "a.mp4"), "-c", "copy",
                           str(tmp_path / "portrait.mp4")], check=True, capture_output=True)
    assert open_video(tmp_path / "portrait.mp4").frames_u8.shape == (2, 3, 64, 48)
    proc = run_cli("info", tmp_path / "portrait.mp4", timeout=120)  # in a process of its own: logging's last resort
    assert proc.returncode == 0 and "48x64" in proc.stdout and proc.stderr == "", proc.stderr


def test_a_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    """Pillow's convert("RGB") clipped a 16-bit grayscale frame's values above 255: such a frame read as white."""
    from PIL import Image

    ramp = (np.arange(24 * 32).reshape(24, 32) % 256).astype(np.uint16) * 257  # 8-bit values k stored as k * 257
    (tmp_path / "gray16").mkdir()
    Image.fromarray(ramp).save(tmp_path / "gray16" / "f0.png")
    assert Image.open(tmp_path / "gray16" / "f0.png").mode.startswith("I")
    frames = open_video(tmp_path / "gray16").frames_u8
    assert frames.shape == (1, 3, 24, 32) and all(np.array_equal(frames[0, c], ramp // 257) for c in range(3))


@pytest.mark.parametrize("suffix", ["jpg", "png"])
def test_an_image_is_read_upright_as_its_exif_orientation_says(tmp_path, suffix):
    """A phone's portrait photo stores its pixels sideways and says so in its EXIF: vcm read it sideways (40x24 where
    every viewer shows 24x40), so boxes annotated on what a viewer shows missed its objects."""
    import warnings

    from PIL import Image

    stored = np.zeros((24, 40, 3), np.uint8)
    stored[:4] = 255  # a white band along the stored top
    for orientation, name in ((6, "turned"), (1, "as_stored")):
        exif = Image.Exif()
        exif[0x0112] = orientation  # 6: turn 90° clockwise to show
        Image.fromarray(stored).save(tmp_path / f"{name}.{suffix}", exif=exif.tobytes(), quality=95)
    turned = open_video(tmp_path / f"turned.{suffix}").frames_u8[0]
    assert turned.shape == (3, 40, 24) and turned[:, :, -4:].min() > 200 and turned[:, :, :-6].max() < 40
    assert open_video(tmp_path / f"as_stored.{suffix}").frames_u8.shape == (1, 3, 24, 40)
    # EXIF that cannot be read: the image as stored; cut short after its orientation: turned; never Pillow's warning
    cut = b"MM\x00*\x00\x00\x00\x08\x00\x02\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"  # 2nd entry cut
    (tmp_path / "cut.png").write_bytes(_png_with_exif(stored, cut))
    raw = (tmp_path / f"turned.{suffix}").read_bytes()
    at = raw.index(b"MM\x00*" if b"MM\x00*" in raw else b"II*\x00")
    damaged = tmp_path / f"damaged.{suffix}"
    damaged.write_bytes(raw[:at] + b"XX" + raw[at + 2:] if suffix == "jpg" else _png_with_exif(stored, b"XX\x00*\x00"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_video(damaged).frames_u8.shape == (1, 3, 24, 40)
        assert open_video(tmp_path / "cut.png").frames_u8.shape == (1, 3, 40, 24)


def _png_with_exif(rgb: np.ndarray, exif: bytes) -> bytes:
    """A PNG of ``rgb`` whose eXIf chunk holds ``exif`` as it is (Pillow would not write a damaged one)."""
    import io
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    png = buf.getvalue()
    chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif + struct.pack(">I", zlib.crc32(b"eXIf" + exif))
    return png[:33] + chunk + png[33:]  # after the 8-byte signature and the 25-byte IHDR chunk


def test_sfu_names_clip_recognition_and_ctc_frames(tmp_path):
    # RaceHorsesD is 416x240: its CTC clip (frames 235..299, 65 frames) as a bare alias name.
    per = frame_bytes(416, 240, 8)
    clip = tmp_path / "RaceHorsesD.yuv"
    clip.write_bytes(np.zeros(per * 65, np.uint8).tobytes())
    info = probe(clip)
    assert info.sequence.name == "RaceHorsesD" and info.is_ctc_clip and info.first_source_frame == 235
    assert resolve_frames(info, "auto") == range(235, 300)
    assert resolve_frames(info, "240:250") == range(240, 250)
    with pytest.raises(VcmError, match="outside"):
        resolve_frames(info, "0:10")
    for empty in ("250:250", "250:240"):  # an empty or reversed range is named as such, not as "outside"
        with pytest.raises(VcmError, match="selects no frame"):
            resolve_frames(info, empty)
    # Full sequence under its JCT-VC name: ctc selects the tail.
    full = tmp_path / "RaceHorses_416x240_30.yuv"
    full.write_bytes(np.zeros(per * 300, np.uint8).tobytes())
    info = probe(full)
    assert info.sequence.name == "RaceHorsesD" and not info.is_ctc_clip
    assert resolve_frames(info, "ctc") == range(235, 300) and resolve_frames(info, "all") == range(0, 300)
    # Same stem at the class C size is the other sequence.
    c = tmp_path / "RaceHorses_832x480_30_val.yuv"
    c.write_bytes(np.zeros(frame_bytes(832, 480, 8) * 65, np.uint8).tobytes())
    info = probe(c)
    assert info.sequence.name == "RaceHorsesC" and info.is_ctc_clip


def test_a_rate_vcm_assumes_is_said_where_the_clip_is_read_and_described(tmp_path):
    """A folder of PNG frames carries no frame rate: vcm reads it at 30 fps, and every kbps of the clip follows
    from that, but nothing said so (`vcm info` showed "30" as if the files gave it). It is said now, and a
    rate the user gives is theirs."""
    import json


    write_video(tmp_path / "frames", moving_frames(t=3, h=16, w=16), fps=30)
    info = probe(tmp_path / "frames")
    assert (info.fps, info.fps_assumed) == (30, True) and not probe(tmp_path / "frames", fps=24).fps_assumed
    shown = run_main("info", tmp_path / "frames")
    assert "30 (assumed: images carry no frame rate; pass --fps F)" in " ".join(shown.stdout.replace("│", " ").split())
    given = json.loads(run_main("info", tmp_path / "frames", "--fps", "24", "--json").stdout)
    assert (given["fps"], given["fps_assumed"]) == (24, False)
    fit = run_main("fit", tmp_path / "frames", "--arch", "hinerv", "--steps", "1", "--out", tmp_path / "run")
    assert fit.returncode == 0 and "at 30 fps (assumed: images carry no frame rate; pass --fps F)" in " ".join(fit.stderr.split())


def test_a_raw_name_that_says_another_chroma_format_is_refused_not_read_as_four_two_zero(tmp_path):
    """A 4:4:4 file's bytes divide into twice as many 4:2:0 frames, so `Clip_16x16_30_444.yuv` was read as garbage
    frames without an error; writing decoded 4:2:0 frames under such a name made a file that says what it is not."""
    import re

    from vcm.video.naming import parse_name
    from vcm.video.writer import check_raw_name

    frames = moving_frames(t=2, h=16, w=16)
    for name, chroma in (("Clip_16x16_30_444", "4:4:4"), ("Clip_16x16_30_8bit_yuv422p", "4:2:2"),
                         ("Clip_16x16_30_400", "4:0:0 (luma only)")):
        write_yuv420(tmp_path / f"{name}.yuv", frames)
        with pytest.raises(VcmError, match=re.escape(f"its name says {chroma} chroma; vcm reads raw 4:2:0")):
            probe(tmp_path / f"{name}.yuv")
        with pytest.raises(VcmError, match=re.escape(f"says {chroma} chroma")):
            check_raw_name(tmp_path / f"out_{name}.yuv", 16, 16, 30)
    write_yuv420(tmp_path / "Clip_16x16_30Hz_8bit_P420.yuv", frames)  # CompressAI-Vision's names say 4:2:0
    assert probe(tmp_path / "Clip_16x16_30Hz_8bit_P420.yuv").num_frames == 2
    assert parse_name("Clip_16x16_30_400frames").chroma is None  # a number in a word is not a chroma format


def test_a_ten_bit_file_whose_name_does_not_say_so_is_not_read_as_twice_as_many_8_bit_frames(tmp_path):
    """VTM writes its reconstructions at 10 bits by default, and `vcm eval rec.yuv --size 416x240 --fps 30` read one
    as 8-bit: twice as many frames of noise, scored without an error. Such samples are told by their bytes now;
    --bit-depth 10 reads them, --bit-depth 8 still forces 8-bit, and 8-bit files (or a frame of zeros) are untouched."""
    rng = np.random.default_rng(0)
    ten = rng.integers(64, 941, frame_bytes(16, 16, 8) * 3).astype("<u2")
    ten.tofile(tmp_path / "rec.yuv")
    with pytest.raises(VcmError, match=r"rec.yuv: its samples look like 10-bit little-endian.*--bit-depth 10"):
        probe(tmp_path / "rec.yuv", size=(16, 16), fps=30)
    assert probe(tmp_path / "rec.yuv", size=(16, 16), fps=30, bit_depth=10).num_frames == 3
    assert probe(tmp_path / "rec.yuv", size=(16, 16), fps=30, bit_depth=8).num_frames == 6  # as asked
    (tmp_path / "rec_16x16_30_10bit.yuv").write_bytes((tmp_path / "rec.yuv").read_bytes())
    assert probe(tmp_path / "rec_16x16_30_10bit.yuv").bit_depth == 10
    write_yuv420(tmp_path / "eight_16x16_30.yuv", moving_frames(t=2, h=16, w=16))
    assert probe(tmp_path / "eight_16x16_30.yuv").num_frames == 2
    (tmp_path / "black_16x16_30.yuv").write_bytes(bytes(frame_bytes(16, 16, 8) * 2))
    assert probe(tmp_path / "black_16x16_30.yuv").num_frames == 2
    # 12-bit samples (high bytes up to 15) were read as 8-bit without a word; 8-bit limited-range black is not 12-bit
    rng.integers(256, 3761, frame_bytes(16, 16, 8) * 3).astype("<u2").tofile(tmp_path / "twelve.yuv")
    with pytest.raises(VcmError, match=r"twelve.yuv: its samples look like 12-bit little-endian \(every second byte "
                                       r"is 0 to 15\): pass --bit-depth 12"):
        probe(tmp_path / "twelve.yuv", size=(16, 16), fps=30)
    assert probe(tmp_path / "twelve.yuv", size=(16, 16), fps=30, bit_depth=12).num_frames == 3
    limited_black = np.concatenate([np.full(16 * 16, 16), np.full(2 * 8 * 8, 128)]).astype(np.uint8)
    np.tile(limited_black, 2).tofile(tmp_path / "dark_16x16_30.yuv")
    assert probe(tmp_path / "dark_16x16_30.yuv").num_frames == 2


@pytest.mark.parametrize("name, size, is_sequence, may_be", [
    ("RaceHorsesD.yuv", (416, 240), True, True),
    ("RaceHorses_416x240_30.yuv", (416, 240), True, True),
    ("RaceHorses_416x240_30Hz_8bit_P420.yuv", (416, 240), True, True),
    ("BasketballPass_416x240_50_val.yuv", (416, 240), True, True),
    ("BQSquare_416x240_60.yuv", (416, 240), True, True),
    ("Clip_416x240_30.yuv", (416, 240), False, False),  # no sequence's name: refused up front
    ("BQSquare_208x120_60.yuv", (208, 120), False, True),  # a sequence's name at another size: the points decide
    ("carphone_pristine.y4m", (176, 144), False, False),
])
def test_a_name_refused_for_the_ctc_frames_is_never_one_read_as_a_sequence(tmp_path, name, size, is_sequence, may_be):
    """A CTC config refuses ``frames: ctc`` up front for a file no size could make an SFU-HW sequence; it must
    never refuse one that the reader does take for a sequence."""
    from vcm.video.source import may_name_a_sequence

    path = tmp_path / name
    if path.suffix == ".yuv":
        path.write_bytes(np.zeros(frame_bytes(*size, 8) * 2, np.uint8).tobytes())
        assert (probe(path).sequence is not None) == is_sequence
    assert may_name_a_sequence(path) == may_be and (may_be or not is_sequence)


def test_frames_of_a_one_pixel_side_or_too_many_pixels_are_refused_before_anything_reads_them(tmp_path):
    """A 1×24 raw file or 1×1 PNGs fitted until SSIM failed with a traceback; a PNG header declaring 20000×20000
    (a few hundred bytes on disk) stopped `vcm info` with Pillow's DecompressionBombError; a raw name's rate of a
    million frames a second was taken (a Y4M's or --fps's is refused above 1000)."""
    import struct
    import zlib

    from PIL import Image

    thin = tmp_path / "Thin_1x24_30.yuv"
    thin.write_bytes(bytes(48 * 3))  # three 1x24 frames (4:2:0 rounds the chroma up)
    with pytest.raises(VcmError, match="its name gives frames of 1x24 pixels; vcm reads frames of 2 to 16384"):
        probe(thin)
    with pytest.raises(VcmError, match="--size gives frames of 16x1 pixels"):
        probe(thin, size=(16, 1))
    dots = tmp_path / "dots"
    dots.mkdir()
    for i in range(2):
        Image.new("RGB", (1, 1)).save(dots / f"{i}.png")
    proc = run_main("fit", dots, "--steps", "1", "--out", tmp_path / "run")
    assert proc.returncode == 1 and "0.png: an image of 1x1 pixels" in proc.stderr and "Traceback" not in proc.stderr

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    side = 20000  # 1-bit grey: the header's size is all it takes
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes((side + 7) // 8 + 1) * side, 9)) + chunk(b"IEND", b""))
    (tmp_path / "bomb.png").write_bytes(bomb)
    proc = run_main("info", tmp_path / "bomb.png")
    assert proc.returncode == 1 and "bomb.png: an image of more pixels than Pillow decodes" in proc.stderr
    assert "Traceback" not in proc.stderr
    fast = tmp_path / "Fast_8x8_1000000.yuv"
    write_yuv420(fast, moving_frames(t=2, h=8, w=8))
    with pytest.raises(VcmError, match="its name gives the frame rate 1e"):
        probe(fast)
    assert probe(fast, fps=25).fps == 25  # --fps says what the name got wrong


def test_a_damaged_container_is_refused_without_the_decoders_own_lines(tmp_path, capfd):
    """libav and decord wrote their own lines from C ('moov atom not found', 'ERROR opening: ...') before vcm's
    one-line error; they are silenced while the container opens, and stderr works after it."""
    import sys

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"")
    with pytest.raises(VcmError, match="broken.mp4: cannot read this video container"):
        probe(broken)
    print("after", file=sys.stderr)
    assert capfd.readouterr().err == "after\n"


def test_writing_a_container_leaves_no_pipe_to_ffmpeg_open(tmp_path):
    """The pipe ffmpeg's messages came back on stayed open after each .mp4/.mkv written (a ResourceWarning under
    `python -X dev`), also when the frames stopped coming (an interrupted decode)."""
    import gc
    import warnings

    from vcm.video.writer import open_writer

    frames = moving_frames(t=3, h=16, w=32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        write_video(tmp_path / "a.mp4", frames, 25)
        with pytest.raises(KeyboardInterrupt), open_writer(tmp_path / "b.mkv", 25) as write:
            write(frames)
            raise KeyboardInterrupt
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]
    assert open_video(tmp_path / "a.mp4").num_frames == 3 and not (tmp_path / "b.mkv").exists()


@pytest.mark.parametrize("width", [24, 48, 72])
def test_a_narrow_clip_written_as_mp4_is_read_back_exactly(tmp_path, width):
    """At some narrow widths decord decodes frames with four channels and fails to copy a batch: vcm decode's own
    lossless .mp4 of a 24-px-wide clip was refused by every command that read it ("failed to decode frames 0:3 (…
    Check failed: from_size == to_size …)"). Such a file is read by the shipped ffmpeg, the same pixels."""
    frames = moving_frames(t=3, h=16, w=width)
    write_video(tmp_path / "narrow.mp4", frames, 25)
    assert np.array_equal(open_video(tmp_path / "narrow.mp4").frames_u8, frames)
    assert np.array_equal(open_video(tmp_path / "narrow.mp4", "1:3").frames_u8, frames[1:3])


@pytest.mark.parametrize("line, expected", [
    ("Stream #0:0[0x1](und): Video: hevc (Main 10) (hev1 / 0x31766568), yuv420p10le(tv, bt2020nc/bt2020/"
     "arib-std-b67, progressive), 176x144 [SAR 1:1 DAR 11:9], 129 kb/s, 30 fps", ("yuv420p10le", 10, "HLG", None)),
    ("Stream #0:0: Video: hevc (Main 10), yuv420p10le(tv, bt2020nc/bt2020/smpte2084), 3840x2160, 60 fps",
     ("yuv420p10le", 10, "PQ", None)),
    ("Stream #0:0[0x100]: Video: h264 (High) ([27][0][0][0] / 0x001B), yuv420p(tv, bt709, top coded first "
     "(swapped)), 1920x1080 [SAR 1:1 DAR 16:9], 25 fps", ("yuv420p", 8, None, "top coded first (swapped)")),
    ("Stream #0:0(eng): Video: h264 (High) (avc1 / 0x31637661), yuvj420p(pc, bt470bg/bt470bg/smpte170m), 1280x720, "
     "30 fps", ("yuvj420p", 8, None, None)),
    ("Stream #0:0: Video: ffv1 (FFV1 / 0x31564646), bgr0, 176x144, q=2-31, 25 fps", ("bgr0", 8, None, None)),
    ("Stream #0:0(und): Video: h264 (High 10), 1 reference frame (avc1 / 0x31637661), yuv420p10le(tv, bottom first, "
     "left), 720x576 (720x580)", ("yuv420p10le", 10, None, "bottom first")),  # an older ffmpeg's listing
    ("Stream #0:0: Video: prores (HQ) (apch / 0x68637061), yuv422p10le(bt709, progressive), 1920x1080, 24 fps",
     ("yuv422p10le", 10, None, None)),
])
def test_a_containers_pixel_format_transfer_and_field_order_are_read_from_ffmpegs_listing(line, expected):
    from vcm.video.stream_format import parse_stream_line

    fmt = parse_stream_line(f"Input #0, mov,mp4, from 'x.mp4':\n  Duration: 00:00:01.00\n  {line}\n"
                            f"  Stream #0:1: Video: png, rgb48be, 16x16\n")
    assert (fmt.pix_fmt, fmt.bits, fmt.transfer, fmt.field_order) == expected
    assert parse_stream_line("  Stream #0:0: Audio: aac (LC), 48000 Hz, stereo, fltp\n") is None
    # the stream the reader reads, told by its frames' size: not a thumbnail track listed first, nor a cover picture
    others = ("  Stream #0:0: Video: mjpeg (Baseline), yuvj420p(pc, bt470bg/unknown/unknown), 320x240, 90k tbr "
              "(attached pic)\n  Stream #0:1: Video: h264 (High 4:4:4 Predictive), yuv444p10le(progressive), 64x48, "
              "25 fps\n")
    size = (176, 144) if "176x144" in line else None
    if size:
        assert parse_stream_line(others + f"  {line}\n", size) == fmt
        assert parse_stream_line(others + f"  {line}\n", size[::-1]) == fmt  # a rotated video's frames
    assert parse_stream_line(others).pix_fmt == "yuv444p10le"  # no size given: the first but the cover


def test_what_reading_as_8_bit_rgb_loses_is_said_and_interlaced_video_is_refused(tmp_path):
    """vcm reads every video as 8-bit RGB frames. A 10-bit or HDR (PQ, HLG) container was listed by `vcm info` as
    "bit depth 8", with nothing said of its two low bits or of its transfer, read as coded; a 10-bit raw file
    likewise. An interlaced container was read as frames that weave two fields each, where a YUV4MPEG2 file that
    says it is interlaced is refused: now the same one line."""
    import subprocess

    from vcm.video.ffmpeg_binary import ffmpeg_exe

    def make(name, *codec):
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25",
                        "-frames:v", "4", *codec, str(tmp_path / name)], check=True)
        return tmp_path / name

    hlg = make("hlg.mp4", "-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params",
               "log-level=error:colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc")
    woven = make("woven.mp4", "-c:v", "libx264", "-flags", "+ildct+ilme", "-x264-params", "tff=1",
                 "-pix_fmt", "yuv420p")
    plain = make("plain.mp4", "-c:v", "libx264", "-pix_fmt", "yuv420p")
    assert probe(hlg).reading_note == ("its 10-bit samples read as 8-bit RGB, its HLG (HDR) transfer read as coded, "
                                       "not tone-mapped")
    assert probe(plain).reading_note is None and open_video(hlg, "all").frames_u8.shape == (4, 3, 48, 64)
    raw = tmp_path / "Clip_20x16_25_10bit.yuv"
    write_yuv420(raw, moving_frames(t=2, h=16, w=20), 10)
    assert probe(raw).reading_note == "its 10-bit samples read as 8-bit RGB"
    r = run_main("info", hlg)
    assert r.returncode == 0 and "8 (its 10-bit samples read as 8-bit RGB, its HLG (HDR)" in " ".join(r.stdout.split())
    r = run_main("info", woven)
    assert r.returncode == 1 and r.stderr == ("error: woven.mp4: interlaced video (top first); vcm reads progressive "
                                              "frames (deinterlace it first, e.g. ffmpeg -i woven.mp4 -vf yadif "
                                              "woven_p.y4m)\n")


def test_a_folder_of_frames_named_dot_or_dot_dot_is_named_after_the_folder(tmp_path, carphone):
    """``vcm fit .`` inside a folder of frames named its clip "" and put its run in ``runs/`` itself (``runs/latest``
    pointing at ``.``); ``vcm fit ..`` named it "..", and ``runs/..`` is the working folder. A SA-ICM stream of it is
    named after the folder too."""
    from tests.conftest import run_main

    clip = open_video(carphone, "0:2")
    write_video(tmp_path / "shots", clip.frames_u8, clip.fps)
    (tmp_path / "shots" / "sub").mkdir()
    assert probe(tmp_path / "shots" / "sub" / "..").name == "shots"
    fit = run_main("fit", ".", "--preset", "hinerv-demo", "--steps", "1", cwd=tmp_path / "shots")
    assert fit.returncode == 0, fit.stderr[-500:]
    assert (tmp_path / "shots" / "runs" / "shots" / "checkpoint.pt").is_file()
    assert not (tmp_path / "shots" / "runs" / "checkpoint.pt").exists()
    (tmp_path / "ck.pth").write_bytes(b"")  # `vcm icm encode .` ended in a traceback naming the stream after ""
    coded = run_main("icm", "encode", ".", "--checkpoint", tmp_path / "ck.pth", cwd=tmp_path / "shots")
    assert coded.returncode == 1 and coded.stderr.startswith("error: --out shots.icm lies inside the input folder .")
