"""The README's VTM plug-in (`vtm: {encoder, decoder, config}` on an anchor): stand-in EncoderApp and
DecoderApp scripts check the arguments vcm passes and play a lossless codec, so the whole path runs
without a VTM build: arguments, 10-bit raw files, the stream, the decoded frames, the settings."""

import json
import stat
import sys
import textwrap

import numpy as np
import pytest

from tests.conftest import moving_frames
from vcm.anchors.ffmpeg import encode_decode, settings
from vcm.errors import VcmError
from vcm.video.color import rgb_to_yuv420

ENCODER = """
    import json, os, sys
    args = sys.argv[1:]
    opt = {{args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("-") and not args[i].startswith("--")}}
    flags = [a for a in args if a.startswith("--")]
    w, h, n = int(opt["-wdt"]), int(opt["-hgt"]), int(opt["-f"])
    raw = open(opt["-i"], "rb").read()
    assert len(raw) == n * w * h * 3 // 2 * 2, "input is not n frames of 10-bit 4:2:0"
    assert os.path.exists(opt["-c"]), "config file missing"
    json.dump({{"opt": opt, "flags": flags}}, open({log!r}, "w"))
    if {write_stream}:
        open(opt["-b"], "wb").write(b"VTM!" + raw)  # a lossless 'stream'
"""

DECODER = """
    import sys
    args = sys.argv[1:]
    opt = {args[i]: args[i + 1] for i in range(0, len(args) - 1, 2)}
    assert opt["-d"] == "10", "output bit depth"
    data = open(opt["-b"], "rb").read()
    assert data[:4] == b"VTM!"
    open(opt["-o"], "wb").write(data[4:])
"""


def _script(path, body: str):
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def fake_vtm(tmp_path):
    def make(write_stream: bool = True) -> dict:
        log = tmp_path / "encoder-args.json"
        enc = _script(tmp_path / "EncoderApp", ENCODER.format(log=str(log), write_stream=write_stream))
        dec = _script(tmp_path / "DecoderApp", DECODER)
        cfg = tmp_path / "encoder_randomaccess_vtm.cfg"
        cfg.write_text("# stand-in\n")
        return {"encoder": str(enc), "decoder": str(dec), "config": str(cfg), "log": log}
    return make


def test_vtm_plugin_gets_the_ctc_arguments_and_its_stream_decodes(tmp_path, fake_vtm):
    vtm = fake_vtm()
    rgb = moving_frames(t=3, h=16, w=24)
    planes = rgb_to_yuv420(rgb, 8)
    r = encode_decode("vvc", planes, 8, 24, 16, 30.0, 37, tmp_path / "out" / "stream.266",
                      vtm={k: vtm[k] for k in ("encoder", "decoder", "config")})
    args = json.loads(vtm["log"].read_text())
    opt = args["opt"]
    assert (opt["-wdt"], opt["-hgt"], opt["-f"], opt["-q"], opt["-fr"]) == ("24", "16", "3", "37", "30")
    assert opt["-c"] == vtm["config"] and opt["-b"] == str(tmp_path / "out" / "stream.266")
    assert {"--InputBitDepth=10", "--InternalBitDepth=10", "--OutputBitDepth=10", "--IntraPeriod=32"} <= set(args["flags"])
    assert (tmp_path / "out" / "stream.266").stat().st_size == 4 + 3 * 24 * 16 * 3 // 2 * 2
    # the stand-in is lossless, so the decoded frames are the source through one 4:2:0 round trip
    from vcm.video.color import yuv420_to_rgb

    assert np.array_equal(r.frames_u8, yuv420_to_rgb(*planes, bit_depth=8))
    assert settings("vvc", 30.0, vtm=vtm)["encoder"] == "VTM (external)"
    assert not list((tmp_path / "out").glob("*anchor*"))  # its scratch folder is gone


def test_a_vtm_encoder_that_writes_nothing_is_one_clear_error(tmp_path, fake_vtm):
    vtm = fake_vtm(write_stream=False)
    planes = rgb_to_yuv420(moving_frames(t=2, h=16, w=24), 8)
    with pytest.raises(VcmError, match="VTM encoder exited without writing a stream at QP 40"):
        encode_decode("hevc", planes, 8, 24, 16, 25.0, 40, tmp_path / "s.bin",
                      vtm={k: vtm[k] for k in ("encoder", "decoder", "config")})
