"""vcm tried as a hostile user would: mutated streams, wrong command lines, kills. Each test here
names a defect it guards against; every data-loss case checks that the input is untouched."""

import hashlib
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import head_json, moving_frames, reseal, section, run_main
from vcm.bitstream.bits import StreamError
from vcm.codec import nerv_stream
from vcm.codec.compress import CompressOptions, compress_run
from vcm.errors import VcmError

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(proc) -> bool:
    """Non-zero exit, no traceback, and the error is one line (progress lines may come before it)."""
    lines = proc.stderr.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    return proc.returncode not in (0, None) and "Traceback" not in proc.stderr and errors == [len(lines) - 1]


def with_header(data: bytes, edit) -> bytes:
    header = head_json(section(data, b"HEAD"))
    edit(header)
    return reseal(data, b"HEAD", zlib.compress(json.dumps(header).encode()))


# ------------------------------------------------------------------ fuzzing both stream formats


@pytest.mark.slow
def test_structure_aware_fuzz_of_both_formats_never_crashes_hangs_or_balloons(tmp_path):
    """≥ 1000 mutated streams per format, checksums recomputed, each decoded whole by the real entry
    points in a forked worker that a crash or a hang replaces (both formats at once, one per core)."""
    scratch = tmp_path / "scratch"  # the fuzzers' temporary folders, which they remove
    scratch.mkdir()
    # torch makes its compiler's cache folder in TMPDIR when an optimizer is first built, unless this names one (which
    # it then sets for the rest of the process: the test passed after another test had built one, and failed alone)
    env = dict(os.environ, OMP_NUM_THREADS="1", VCM_MEMORY_BUDGET="1G", VCM_WORK_BUDGET="3G", PYTHONWARNINGS="ignore",
               TMPDIR=str(scratch), TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "torch-cache"))
    procs = {kind: subprocess.Popen([sys.executable, "-m", "tests.fuzz_streams", kind, "1000", "7", "--report",
                                     str(tmp_path / f"{kind}.json")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
             for kind in ("nerv", "icm")}
    for kind, proc in procs.items():
        out, err = proc.communicate(timeout=1200)
        assert proc.returncode == 0, f"{kind} fuzzer died (last case in {kind}.json): {err[-1500:]}"
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["cases"] == 1000 and not summary["crashes"], summary["crashes"]
        assert set(summary["outcomes"]) <= {"decoded", "rejected"}, summary["outcomes"]  # no crash, signal or slow case
        assert summary["outcomes"].get("rejected", 0) > 300  # the mutations do reach the checks
        assert summary["slowest_case_seconds"] < 5
        assert summary["peak_case_rss_mib"] < 2048  # no decode far above the 1 GB budget
        classes = summary["by_mutation"]
        if kind == "nerv":
            for cls in ("junk_words", "shape"):  # every one would otherwise decode to other frames
                assert classes[cls].get("rejected", 0) > 20 and set(classes[cls]) == {"rejected"}, (cls, classes[cls])
            for cls in ("declared.frames", "declared.size", "declared.strides", "declared.widths", "records"):
                assert sum(classes[cls].values()) > 10, cls
        else:
            assert sum(classes["resize"].values()) > 100
            # the consistent-size rewrites that crashed CompressAI's decoder, under the default budgets
            fixed = summary["fixed"]
            assert set(fixed) == {f"resize:{w}x{h}" for w, h in ((1024, 1024), (2048, 2048), (2048, 1024), (16384, 1), (1, 16384))}
            assert all(r["outcome"] in ("decoded", "rejected") for r in fixed.values()), fixed
            assert fixed["resize:1024x1024"]["outcome"] == "decoded"  # padded strings decode what they declare
    assert not list(scratch.iterdir())  # nothing left behind (a run used to leave ~5 MB of decoded files)


def _harness_decode(data: bytes, folder) -> None:
    """A stand-in decoder for the fuzzer's worker: each case's bytes say what goes wrong."""
    import signal as signals

    if data == b"segv":
        os.kill(os.getpid(), signals.SIGSEGV)
    if data == b"hang":
        time.sleep(60)
    if data == b"bug":
        raise IndexError("a bug")
    if data == b"poison":
        os.environ["VCM_FUZZ_POISONED"] = "1"  # harmless alone; kills a later case in the same worker
    if data == b"victim" and os.environ.get("VCM_FUZZ_POISONED"):
        os.kill(os.getpid(), signals.SIGSEGV)


def test_importing_the_stream_fuzzer_changes_no_environment_variable():
    """Importing a helper from tests.fuzz_streams set its budgets for the whole pytest worker: a later demo test in
    it decoded under a 3 GMAC work budget and failed its points."""
    code = "import os; before = dict(os.environ); import tests.fuzz_streams; print(dict(os.environ) == before)"
    env = {k: v for k, v in os.environ.items() if k not in ("VCM_MEMORY_BUDGET", "VCM_WORK_BUDGET", "OMP_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stdout + proc.stderr[-500:]


def test_the_fuzzers_worker_reports_crashes_signals_and_hangs_and_survives_them(tmp_path):
    from tests.fuzz_streams import Worker, run_case

    worker = Worker(_harness_decode, tmp_path)
    try:
        outcomes = [worker.run(case, "case", 2.0)[0]["outcome"] for case in (b"ok", b"bug", b"ok", b"segv", b"ok")]
        assert outcomes == ["decoded", "crash", "decoded", "signal", "decoded"]
        result, seconds = worker.run(b"hang", "case", 1.0)
        assert result["outcome"] == "slow" and seconds < 5
        assert worker.run(b"ok", "case", 2.0)[0]["outcome"] == "decoded"  # a fresh worker after the kill
        assert run_case(worker, b"segv", "case", 2.0)[0]["outcome"] == "signal"  # alone too
        assert run_case(worker, b"poison", "case", 2.0)[0]["outcome"] == "decoded"
        result, _ = run_case(worker, b"victim", "case", 2.0)  # dies after the poison, survives alone
        assert result["outcome"] == "crash" and "only after earlier cases" in result["error"], result
    finally:
        worker.close()


# ------------------------------------------------------------------ .nerv decoder


@pytest.fixture(scope="module")
def nerv_bytes(tiny_run):
    root, _ = tiny_run
    compress_run(root / "run", root / "h.nerv", CompressOptions(bits=8, finetune_epochs=0), CPU)
    return (root / "h.nerv").read_bytes()


def test_a_tiny_stream_declaring_16384_squared_is_refused_before_allocating(nerv_bytes):
    def huge(h):
        m = h["model"]
        m.update(height=16384, width=16384, grid_h=1, grid_w=1, strides=[8, 8, 8, 8, 4])  # a tiny network
    with pytest.raises(StreamError, match="memory budget"):
        nerv_stream.decode(with_header(nerv_bytes, huge))


def test_declared_parameters_must_fit_in_the_bytes_present():
    def wide(h):
        h["model"]["stem_dims"] = [4096, 4096]  # 21M parameters from 13 KB of tensor data
    started = time.monotonic()
    with pytest.raises(StreamError, match="truncated"):  # their per-channel scales are not there
        nerv_stream.decode(with_header((DATA / "v1_tiny.nerv").read_bytes(), wide))
    assert time.monotonic() - started < 5


def test_a_network_coded_in_next_to_no_bytes_is_a_stream_its_decoder_reads():
    """A network whose symbols are zeros but one per tensor (as a HiNeRV fitted for 3 steps came out of
    `vcm compress --lambda 1`: 76,104 parameters in 91 bytes of tensor data) costs next to no bits: its
    decoder must read it, not take its size for a forgery."""
    from vcm.codec.compress import decode_file
    from vcm.codec.rd_coding import RDTensor
    from vcm.nerv import registry
    from vcm.nerv.config import load_preset

    _, template, _ = decode_file(DATA / "v4_rd_hinerv.nerv", CPU)
    spec, _ = load_preset("hinerv-demo")
    cfg = spec.build(template.model.height, template.model.width, template.video["frames"])
    model_cls, code, m = registry.entry("hinerv").model_cls, template.tensors[0].step_codes[0], template.tensors[0].m
    tensors = []
    for name, shape in nerv_stream._shape_model("hinerv", cfg):
        temporal = len(shape) >= 2 and shape[0] >= 2 and model_cls.temporal_of(cfg, name, shape)
        channels = 1 if temporal else model_cls.quant_channels_of(cfg, name, shape)
        symbols = np.zeros((channels, int(np.prod(shape)) // channels), np.int32)
        symbols[0, 0] = 1
        tensors.append(RDTensor(name, shape, np.full(channels, code), m, symbols, temporal))
    stream = nerv_stream.NervStream(cfg, template.video, tensors, "hinerv", "rd")
    encoded = nerv_stream.encode(stream)
    params = sum(int(np.prod(t.shape)) for t in tensors)
    assert params > 70_000 and 8 * encoded.data_bytes < params / 64  # under 1/64 bit a parameter
    decoded = nerv_stream.decode(encoded.data)
    assert [t.symbols.tolist() for t in decoded.tensors] == [t.symbols.tolist() for t in tensors]
    assert nerv_stream.encode(decoded).data == encoded.data


def test_memory_budget_is_configurable_and_states_itself(nerv_bytes, monkeypatch):
    monkeypatch.setenv("VCM_MEMORY_BUDGET", "1K")
    with pytest.raises(StreamError, match="VCM_MEMORY_BUDGET"):
        nerv_stream.decode(nerv_bytes)
    monkeypatch.setenv("VCM_MEMORY_BUDGET", "lots")
    with pytest.raises(VcmError, match="not a size"):
        nerv_stream.decode(nerv_bytes)
    for value in ("nan", "inf", "1e400", "-1", "0", "0.5"):  # NaN and inf were tracebacks; -1 refused every stream
        monkeypatch.setenv("VCM_MEMORY_BUDGET", value)
        with pytest.raises(VcmError, match=f"VCM_MEMORY_BUDGET='{value}' is not a size such as 2G"):
            nerv_stream.decode(nerv_bytes)
    monkeypatch.setenv("VCM_MEMORY_BUDGET", "1.5g")
    from vcm.bitstream.budget import memory_budget

    assert memory_budget() == 3 << 29


@pytest.mark.parametrize("edit, fragment", [
    (lambda h: h["model"].update(activation=[]), "model"),
    (lambda h: h["model"].update(embed_base=3.0, embed_levels=1024), "model"),
    (lambda h: h.update(extra=1), "unknown header field"),
    (lambda h: h["video"].update(sequence=5), "sequence"),
    # source frames that no file has: `vcm info` showed -5:3 or a 31-digit range, as declared
    (lambda h: h["video"].update(source_frames=[-5, h["video"]["frames"] - 5]), "source frame range"),
    (lambda h: h["video"].update(source_frames=[False, h["video"]["frames"]]), "source frame range"),
    (lambda h: h["video"].update(source_frames=[10**30, 10**30 + h["video"]["frames"]]), "source frame range"),
    (lambda h: h["video"].update(source_frames=[0, h["video"]["frames"] + 1]), "source frame range"),
    (lambda h: h["video"].update(fps=0), "fps"),
    (lambda h: h["video"].update(name=5), "video name"),
    (lambda h: h["video"].update(name="x" * 257), "video name"),  # vcm info printed a name of any length
    (lambda h: h["video"].update(colour="bt709"), "unknown video field"),
])
def test_header_fields_are_typed_and_checked(nerv_bytes, edit, fragment):
    with pytest.raises(StreamError, match=fragment):
        nerv_stream.decode(with_header(nerv_bytes, edit))


@pytest.mark.parametrize("blob, fragment", [
    (lambda head: head[:-3], "truncated"),
    (lambda head: head + b"junk", "junk"),
    (lambda head: zlib.compress(b"[" * 100_000 + b"]" * 100_000), "nested"),
    (lambda head: zlib.compress(b"0" * (3 << 20)), "larger than"),
])
def test_headers_are_one_complete_bounded_zlib_stream(nerv_bytes, blob, fragment):
    bad = reseal(nerv_bytes, b"HEAD", blob(section(nerv_bytes, b"HEAD")))
    with pytest.raises(StreamError, match=fragment):
        nerv_stream.decode(bad)


def test_a_table_coded_array_with_span_one_is_a_stream_error():
    from vcm.bitstream.bits import Reader, Writer
    from vcm.codec.entropy import MODE_TABLE, decode_array

    w = Writer()
    w.svarint(0)
    w.varint(1)  # span 1 ...
    w.raw(bytes([MODE_TABLE, 1, 0x80]))  # ... in table mode (the encoder writes constant mode for it)
    w.varint(0)
    with pytest.raises(StreamError):
        decode_array(Reader(w.getvalue(), "t"), 4)


def _coded_array(span: int, body: bytes, symbols=None) -> bytes:
    """One coded array as ``encode_array`` lays it out: lo 0, ``span``, the mode and table ``body``, then
    the ANS words of ``symbols`` under that body's model (none when ``symbols`` is None)."""
    import constriction

    from vcm.bitstream.bits import Writer, exp_golomb_unpack, unzigzag
    from vcm.codec.entropy import MODE_TABLE, _model

    w = Writer()
    w.svarint(0)
    w.varint(span)
    w.raw(body)
    words = np.zeros(0, np.uint32)
    if symbols is not None:
        if body[0] == MODE_TABLE:
            diffs, _ = exp_golomb_unpack(body[2:] + bytes(16), span)
            model = _model(np.cumsum([unzigzag(d) for d in diffs]), body[1])
        else:
            model = constriction.stream.model.Uniform(span)
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(np.asarray(symbols, np.int32), model)
        words = coder.get_compressed()
    w.varint(int(words.size))
    w.raw(words.astype("<u4").tobytes())
    return w.getvalue()


def _table(entries) -> bytes:
    from vcm.bitstream.bits import exp_golomb_pack, zigzag

    return exp_golomb_pack([zigzag(int(d)) for d in np.diff(entries, prepend=0)])


@pytest.mark.parametrize("span, body, symbols", [
    (3, bytes([1, 1]) + _table([5, 0, 0]), [0, 0, 0, 0]),  # one usable symbol: the encoder writes constant mode
    (3, bytes([1, 1]) + _table([0, 5, 5]), [1, 2, 1, 2]),  # a lowest symbol that cannot occur (lo is the minimum)
    (3, bytes([1, 1]) + _table([5, 5, 0]), [0, 1, 1, 0]),  # a highest one that cannot occur
    (3, bytes([1, 1]) + _table([5, 5, 5]), [0, 2, 2, 0]),  # a table weighting a symbol that never occurs
    (3, bytes([2]), [0, 1, 1, 0]),  # uniform over 0..2, where 2 never occurs
], ids=["one-symbol", "lowest-absent", "highest-absent", "inner-absent", "uniform-beyond"])
def test_a_coded_array_the_encoder_could_not_have_written_is_a_stream_error(span, body, symbols):
    """The table of a coded array lists exactly the symbols that occur, from the least to the greatest
    (``encode_array`` builds it from their counts): these crafted arrays decoded, to symbols whose
    re-encoding would be other bytes."""
    from vcm.bitstream.bits import Reader
    from vcm.codec.entropy import decode_array

    with pytest.raises(StreamError, match="symbols that do not occur"):
        decode_array(Reader(_coded_array(span, body, symbols), "t"), len(symbols))


@pytest.mark.parametrize("symbols", [[0, 1, 2, 1, 0, 2], [-3, 4] * 40, list(range(-20, 20)) * 3])
def test_every_array_the_encoder_writes_still_decodes(symbols):
    from vcm.bitstream.bits import Reader, Writer
    from vcm.codec.entropy import decode_array, encode_array

    w = Writer()
    encode_array(np.array(symbols), w)
    assert decode_array(Reader(w.getvalue(), "t"), len(symbols)).tolist() == symbols


def test_decode_streams_frames_to_the_writer(tiny_run, tmp_path, nerv_bytes):
    """A stream declaring many frames is decoded chunk by chunk: memory does not grow with them."""
    many = with_header(nerv_bytes, lambda h: h["video"].update(frames=12_000, source_frames=[0, 12_000]))
    (tmp_path / "many.nerv").write_bytes(many)
    script = ("import resource, sys; from vcm.cli import main\n"
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "try:\n    main(['decode', sys.argv[1], '--out', sys.argv[2], '--json', '--allow-large'])\n"
              "except SystemExit:\n    pass\n"
              "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "many.nerv"), str(tmp_path / "many.yuv")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    held = 12_000 * 3 * 24 * 32 / 2**20  # MiB the old decoder held as uint8 (4× that as float first)
    assert int(proc.stdout.strip().splitlines()[-1]) < held / 2
    assert (tmp_path / "many.yuv").stat().st_size == 12_000 * (24 * 32 * 3 // 2)


# ------------------------------------------------------------------ .icm decoder


@pytest.fixture(scope="module")
def icm_stream(tmp_path_factory):
    from tests.fuzz_streams import icm_seed

    folder = tmp_path_factory.mktemp("icm_hard")
    data, ckpt = icm_seed(folder)
    return folder, data, ckpt


def _icm_decode(folder, data):
    from vcm.icm.codec import decode_icm_file

    path = folder / "case.icm"
    path.write_bytes(data)
    return decode_icm_file(path, "cpu")


def test_eval_selects_the_frames_asked_of_an_icm_stream_too(icm_stream):
    """`vcm eval x.icm --frames A:B` scored every frame of the stream, the selection dropped without a word."""
    from vcm.eval.run import decode_any

    folder, data, ckpt = icm_stream
    path = folder / "frames.icm"
    path.write_bytes(data)
    assert decode_any(path, CPU, frames="0:1", checkpoint=ckpt).source_frames == range(0, 1)
    with pytest.raises(VcmError, match="frames 1:2 are outside frames.icm"):
        decode_any(path, CPU, frames="1:2", checkpoint=ckpt)


def test_icm_latent_shape_is_checked_against_the_header(icm_stream):
    folder, data, _ = icm_stream
    payload = bytearray(section(data, b"DATA"))
    payload[0] = 100  # the first frame's latent height (was 1)
    with pytest.raises(StreamError, match="latent"):
        _icm_decode(folder, reseal(data, b"DATA", bytes(payload)))
    payload[0] = 0x80  # latent height 65536 as a varint
    payload[1:1] = bytes([0x80, 0x04])
    with pytest.raises(StreamError):
        _icm_decode(folder, reseal(data, b"DATA", bytes(payload)))


@pytest.mark.parametrize("edit, fragment", [
    (lambda h: h.update(height=h["height"] + 25), "latent"),  # 40 → 65: another padded size
    (lambda h: h.update(width=50_000, height=50_000), "'width'"),
    (lambda h: h.update(width=10**6), "'width'"),
    (lambda h: h.pop("arch"), "'arch' missing"),
    (lambda h: h.pop("checkpoint_fingerprint"), "'checkpoint_fingerprint' missing"),
    (lambda h: h.update(checkpoint=7), "'checkpoint'"),
    (lambda h: h.update(checkpoint="../../etc/passwd"), "'checkpoint'"),
    (lambda h: h["config"].update(N=64), "configuration"),
    (lambda h: h.update(extra=1), "unknown header field 'extra'"),
    (lambda h: h.update(source_frames=[0, h["frames"] + 1]), "source frame range does not match the frame count"),
    (lambda h: h.update(frames=50_000, source_frames=[0, 50_000]), "declares 50,000 frames in"),
    (lambda h: h.update(source_frames=[10**30, 10**30 + h["frames"]]), "'source_frames' is invalid"),
])
def test_icm_header_is_a_schema(icm_stream, edit, fragment):
    folder, data, _ = icm_stream
    with pytest.raises(StreamError, match=fragment):
        _icm_decode(folder, with_header(data, edit))


def test_icm_header_must_be_an_object_and_is_capped(icm_stream):
    folder, data, _ = icm_stream
    for blob, fragment in ((zlib.compress(b"[1, 2]"), "not an object"), (zlib.compress(b"0" * (3 << 20)), "larger than"),
                           (zlib.compress(b"[" * 100_000 + b"]" * 100_000), "nested")):
        with pytest.raises(StreamError, match=fragment):
            _icm_decode(folder, reseal(data, b"HEAD", blob))


def test_decoding_a_folder_says_so_and_names_the_streams_it_holds(tmp_path):
    """`vcm decode runs/clip` (the run folder, not its stream) said only "name a .nerv file": the user then had
    to list the folder to find what vcm compress had written there."""
    proc = run_main("icm", "decode", tmp_path)
    assert one_line_error(proc) and "is a directory; name a .icm file" in proc.stderr
    (tmp_path / "a_p0_b8.nerv").write_bytes(b"VCMN")
    (tmp_path / "b.icm").write_bytes(b"VCMI")
    for argv, stream in ((["decode"], "a_p0_b8.nerv"), (["icm", "decode"], "b.icm")):
        proc = run_main(*argv, tmp_path)
        assert one_line_error(proc) and f"is a directory; name one of its {Path(stream).suffix} streams: " \
            f"{tmp_path / stream}" in " ".join(proc.stderr.split())


# ------------------------------------------------------------------ never destroy the user's data


def test_outputs_that_would_destroy_an_input_are_refused(tmp_path, tiny_run, icm_stream):
    root, _ = tiny_run
    clip = tmp_path / "clip_32x24_25.yuv"
    from vcm.video.yuv import write_yuv420

    write_yuv420(clip, moving_frames(t=3, h=24, w=32))
    run = root / "run"
    before = {p: digest(p) for p in (clip, run / "checkpoint.pt", run / "config.json")}
    (tmp_path / "afile").write_text("x")
    _, _, ckpt = icm_stream
    cases = [
        ("fit", clip, "--save-video", clip, "--epochs", "1"),
        ("fit", clip, "--out", tmp_path / "afile", "--epochs", "1"),
        ("icm", "encode", clip, "--checkpoint", ckpt, "--out", clip),
        ("icm", "encode", clip, "--checkpoint", ckpt, "--out", tmp_path),
        ("compress", run, "--out", run / "checkpoint.pt"),
        ("compress", run, "--out", tmp_path / "x.json"),
        ("compress", run, "--out", run / "metrics.nerv"),  # its report would replace metrics.json
        ("compress", run, "--out", tmp_path / "afile" / "x.nerv"),
        ("decode", DATA / "v1_tiny.nerv", "--out", tmp_path / "afile" / "x.yuv"),
        ("decode", DATA / "v1_tiny.nerv", "--out", DATA / "v1_tiny.nerv"),
        ("decode", tmp_path),
    ]
    for args in cases:
        proc = run_main(*args, cwd=tmp_path)
        assert one_line_error(proc), (args, proc.stderr[-500:])
    assert {p: digest(p) for p in before} == before
    assert (tmp_path / "afile").read_text() == "x"


def test_a_video_output_that_exists_is_replaced_only_with_overwrite(tmp_path):
    """A raw .yuv carries no mark of who wrote it: `vcm decode s.nerv --out BQMall_832x480_60.yuv` beside the
    source replaced the original sequence. Every video output is now refused when it exists, unless --overwrite."""
    from vcm.video.yuv import write_yuv420

    original = tmp_path / "Tiny_32x24_25.yuv"
    write_yuv420(original, moving_frames(t=3, h=24, w=32))
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "frame_00000.png").write_bytes(b"mine")
    (tmp_path / "x.icm").write_bytes(b"VCMI")  # refused before it is read
    (tmp_path / "earlier.yuv").write_bytes(b"an earlier result")
    before = {p: digest(p) for p in (original, frames / "frame_00000.png", tmp_path / "earlier.yuv")}
    for args in (("decode", DATA / "v1_tiny.nerv", "--out", original),
                 ("decode", DATA / "v1_tiny.nerv", "--out", frames),
                 ("icm", "decode", tmp_path / "x.icm", "--out", original),
                 ("fit", original, "--epochs", "1", "--save-video", tmp_path / "earlier.yuv", "--out", tmp_path / "run")):
        proc = run_main(*args, cwd=tmp_path)
        assert one_line_error(proc) and "pass --overwrite" in proc.stderr, (args, proc.stderr[-500:])
    assert {p: digest(p) for p in before} == before and not (tmp_path / "run").exists()
    out = tmp_path / "decoded.yuv"
    for _ in range(2):  # asked: the second decode replaces the first
        proc = run_main("decode", DATA / "v1_tiny.nerv", "--out", out, "--overwrite", cwd=tmp_path)
        assert proc.returncode == 0 and out.stat().st_size > 0, proc.stderr[-500:]


def test_unwritable_output_folder_is_refused_before_work(tmp_path, monkeypatch):
    """The permission check itself (os.access says no: a read-only mount, another user's folder;
    root writes anywhere, so chmod cannot stage it here)."""
    from vcm.outputs import check_output

    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked)
    with pytest.raises(VcmError, match="folder .*locked is not writable"):
        check_output(locked / "sub" / "x.yuv")
    check_output(tmp_path / "x.yuv")


def test_output_guard_resolves_symlinks(tmp_path):
    from vcm.outputs import check_output

    src = tmp_path / "clip.yuv"
    src.write_bytes(b"x")
    (tmp_path / "alias.yuv").symlink_to(src)
    with pytest.raises(VcmError, match="input"):
        check_output(tmp_path / "alias.yuv", inputs=[src])
    (tmp_path / "frames").mkdir()
    with pytest.raises(VcmError, match="inside the input folder"):
        check_output(tmp_path / "frames" / "out.yuv", inputs=[tmp_path / "frames"])
    check_output(tmp_path / "other.yuv", inputs=[src])  # a new name is fine


def test_a_folder_output_named_like_a_file_is_refused(tmp_path):
    """`vcm fit --out run.nerv` (or compress with several λ and `--out s.nerv`, eval `--out scores.json`) made a
    folder of that name, which `vcm decode run.nerv` then found to be no stream."""
    for args, option in ((("fit", "sample:carphone", "--steps", "1", "--out", tmp_path / "run.nerv"), "--out"),
                         (("eval", "sample:carphone", "--reference", "original", "--detector", "opencv-face",
                           "--out", tmp_path / "scores.json"), "--out")):
        proc = run_main(*args, cwd=tmp_path)
        assert proc.returncode == 1 and proc.stderr == (f"error: {option} {args[-1]} names a {args[-1].suffix} file, "
                                                        f"but a folder is written there; name a folder (without "
                                                        f"{args[-1].suffix})\n"), proc.stderr
    assert not list(tmp_path.iterdir())
    from vcm.outputs import check_output

    (tmp_path / "kept.nerv").mkdir()  # a folder that is there already is the user's choice
    assert check_output(tmp_path / "kept.nerv", kind="dir") == tmp_path / "kept.nerv"
    assert check_output(tmp_path / "lam0.3", kind="dir") == tmp_path / "lam0.3"  # a dot that is no file's suffix


def test_demo_out_keeps_foreign_folders_and_user_files(tmp_path):
    from vcm.demo import MARKER, prepare_out

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    proc = run_main("demo", "--out", foreign, "--epochs", "1")
    assert one_line_error(proc) and "not an earlier demo" in proc.stderr
    assert (foreign / "notes.txt").read_text() == "keep"
    earlier = tmp_path / "demo"
    (earlier / "points").mkdir(parents=True)
    (earlier / MARKER).write_text("{}")
    (earlier / "report.md").write_text("old")
    (earlier / "notes.txt").write_text("keep")
    prepare_out(earlier)
    assert sorted(p.name for p in earlier.iterdir()) == ["notes.txt"]


def test_failed_resume_leaves_runs_latest_alone(tmp_path, tiny_run):
    root, _ = tiny_run
    clip = tmp_path / "other_32x24_25.yuv"
    from vcm.video.yuv import write_yuv420

    write_yuv420(clip, moving_frames(t=3, h=24, w=32, seed=5))
    (tmp_path / "runs").mkdir()
    os.symlink(root / "run", tmp_path / "runs" / "latest")
    proc = run_main("fit", clip, "--resume", "--out", root / "run", "--preset", "nerv-xs", "--params", "4k", cwd=tmp_path)
    assert one_line_error(proc)
    assert os.path.realpath(tmp_path / "runs" / "latest") == str((root / "run").resolve())


def test_truncated_checkpoint_on_resume_is_one_line(tmp_path, tiny_run):
    root, video = tiny_run
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes((root / "run" / "checkpoint.pt").read_bytes()[:500])
    proc = run_main("fit", video.info.path, "--resume", "--out", run, "--preset", "nerv-xs", "--params", "4k", cwd=tmp_path)
    assert one_line_error(proc) and "damaged" in proc.stderr


def test_masks_file_without_source_frames_is_one_line(tmp_path, tiny_run):
    from vcm.masks.store import load_masks

    path = tmp_path / "m.npz"
    meta = {"format": "vcm-edge-masks/1", "width": 32, "height": 24, "video_fingerprint": "x"}
    np.savez(path, packed=np.zeros((1, 96), np.uint8), meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(VcmError, match="source_frames"):
        load_masks(path)


def test_identical_fits_write_identical_checkpoints(tmp_path):
    from vcm.nerv.config import TrainConfig
    from vcm.nerv.model import NervShape
    from vcm.nerv.train import fit
    from vcm.video import open_video
    from vcm.video.yuv import write_yuv420

    src = tmp_path / "Same_32x24_25.yuv"
    write_yuv420(src, moving_frames(t=2, h=24, w=32))
    cfg = NervShape(fc_dim=4, stem_dims=(8,), lower_width=4, embed_levels=4).config(24, 32)
    for name in ("a", "b"):
        fit(open_video(src), cfg, TrainConfig(epochs=1, batch=2), tmp_path / name, CPU)
    assert (tmp_path / "a" / "checkpoint.pt").read_bytes() == (tmp_path / "b" / "checkpoint.pt").read_bytes()
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert {"vcm", "commit", "torch", "command", "device", "date"} <= set(config["provenance"])


def test_stale_temp_files_of_killed_processes_are_swept(tmp_path):
    from vcm.fsutil import scratch_dir, write_bytes

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".out.nerv.{pid}.abc123.tmp"
    stale.write_bytes(b"half")
    other = tmp_path / ".out.nerv.json.tmp"  # not ours: left alone
    other.write_bytes(b"x")
    (tmp_path / f".anchor.{pid}.xyz.tmp").mkdir()
    write_bytes(tmp_path / "out.nerv", b"whole")
    with scratch_dir(tmp_path, "anchor") as scratch:
        assert scratch.is_dir()
    assert not stale.exists() and other.exists() and not (tmp_path / f".anchor.{pid}.xyz.tmp").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.nerv.json.tmp", "out.nerv"]


@pytest.mark.parametrize("name", ["s" * 236 + ".nerv", "\udce9" * 225 + ".nerv.partial.pt"])
def test_an_output_whose_name_fits_is_written_even_where_its_temporary_names_would_not(tmp_path, name):
    """A file is written to ``.<name>.<pid>.<random>.tmp`` beside it, then renamed. For a name within 22 bytes of
    the 255-byte limit (a clip named near it: its stream ``<name>_hinerv_rd_l1.nerv`` and that stream's stage state
    ``….partial.pt``) the temporary name was too long: `vcm compress` trained its stage, then failed with "File
    name too long" and lost it. The temporary names of such an output are cut and marked with a hash of the whole
    name; a killed process's are still swept. Also a Latin-1 name (undecodable bytes), 2 bytes a character in UTF-8
    but one on disk."""
    from vcm.fsutil import scratch_dir, write_bytes

    write_bytes(tmp_path / name, b"first")
    with scratch_dir(tmp_path, name) as scratch:
        assert scratch.is_dir()
    from vcm.fsutil import temp_prefix

    prefix = temp_prefix(tmp_path, name)
    assert prefix != f".{name}." and len(os.fsencode(prefix)) + 20 <= 255
    assert temp_prefix(tmp_path, name[:-1]) != prefix and temp_prefix(tmp_path, "out.nerv") == ".out.nerv."
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{prefix}{int(dead.stdout)}.abc12345.tmp"
    stale.write_bytes(b"half")
    from vcm import fsutil

    fsutil._swept.clear()  # swept once per output and process: as a new command would
    write_bytes(tmp_path / name, b"whole")
    assert (tmp_path / name).read_bytes() == b"whole" and not stale.exists()
    assert os.listdir(tmp_path) == [name]


def test_an_output_name_beyond_the_limit_is_one_line_that_says_what_to_do(tmp_path):
    r = run_main("fit", "sample:carphone", "--frames", "0:2", "--steps", "1", "--out", tmp_path / ("d" * 300))
    assert r.returncode == 1 and r.stderr.startswith("error: File name too long: ") and r.stderr.count("\n") == 1
    assert r.stderr.endswith("; name a shorter output (--out), or give the input a shorter name: vcm names what it "
                             "writes after it\n")


def test_eval_writes_one_folder_per_input_and_records_it(tmp_path):
    from tests.test_eval import write_indexed_yuv
    from vcm import sequences
    from vcm.eval.gt import Box, GroundTruth, to_coco_json

    seq = sequences.lookup("RaceHorsesD")
    gt = GroundTruth(seq.name, seq.width, seq.height, {f: [Box(150, 85, 120, 70, 0)] for f in range(240, 244)})
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / seq.annotations).write_text(json.dumps(to_coco_json(gt, seq.ctc_first)))
    inputs = [tmp_path / "a" / "RaceHorsesD.yuv", tmp_path / "b" / "RaceHorsesD.yuv", tmp_path / "a" / "RaceHorsesD.yuv"]
    for clip in inputs:
        clip.parent.mkdir(exist_ok=True)
        write_indexed_yuv(clip, seq.ctc_first, seq.ctc_count)
        proc = run_main("eval", clip, "--frames", "240:244", "--annotations", tmp_path / "ann", "--detector", "oracle",
                        "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    # Same file name, two files: two folders; the same file again: its own folder again.
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["RaceHorsesD_yuv", "RaceHorsesD_yuv_2"]
    scores = json.loads((tmp_path / "eval" / "RaceHorsesD_yuv_2" / "scores.json").read_text())
    assert scores["input"] == str(inputs[1].resolve()) and len(scores["input_fingerprint"]) == 16
    assert scores["detector"] == "oracle" and "provenance" in scores


def test_a_file_system_without_locks_runs_unguarded_and_says_so_once(tmp_path, monkeypatch):
    """flock raises ENOSYS on Lustre mounted noflock (ENOLCK, EOPNOTSUPP on some NFS, SMB and FUSE mounts): every
    command that locks its output (fit, compress, ctc run) ended in a traceback there."""
    import errno
    import fcntl

    real = fcntl.flock
    monkeypatch.setattr(fcntl, "flock", lambda f, op: (_ for _ in ()).throw(OSError(errno.ENOSYS, "no locks")))
    out = tmp_path / "run"
    env = {"VCM_PROGRESS": "lines"}
    fit = run_main("fit", "sample:carphone", "--preset", "hinerv-demo", "--steps", "2", "--frames", "0:2", "--out", out,
                   env=env)
    assert fit.returncode == 0, fit.stderr[-400:]
    said = f"{out}: its file system takes no file locks (Function not implemented): a second vcm command"
    assert fit.stderr.count("takes no file locks") == 1 and said in " ".join(fit.stderr.split())
    compress = run_main("compress", out, "--lambda", "1", "--rd-steps", "1", "--out", out / "s.nerv", env=env)
    assert compress.returncode == 0 and (out / "s.nerv").stat().st_size > 0, compress.stderr[-400:]
    assert "takes no file locks" not in compress.stderr  # said once for the folder
    # any other error of flock is not taken for a missing lock
    monkeypatch.setattr(fcntl, "flock", lambda f, op: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    from vcm.fsutil import run_lock

    with pytest.raises(OSError, match="I/O error"), run_lock(tmp_path / "other"):
        pass
    monkeypatch.setattr(fcntl, "flock", real)


def test_the_cores_vcm_divides_are_those_this_process_may_use(tmp_path, monkeypatch):
    """os.cpu_count() counts the machine's cores: in a Slurm job or a container given 4 of 64 cores, vcm ctc run gave
    each point 64 / jobs threads, and two threads on one core made a training step 1.4x as long."""
    from vcm import cgroups, cpus, demo

    monkeypatch.setattr(cgroups, "MEMBERSHIP", tmp_path / "no-membership")  # the mount's root is the process's cgroup
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(cpus.os, "cpu_count", lambda: 64)
    none = tmp_path / "none"
    assert cpus.usable_cores(none) == 1
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    v2 = tmp_path / "v2"
    v2.mkdir()
    for text, cores in (("max 100000\n", 8), ("250000 100000\n", 3), ("50000 100000\n", 1), ("1600000 100000", 8),
                        ("garbage", 8), ("100000 0", 8)):
        (v2 / "cpu.max").write_text(text)
        assert cpus.usable_cores(v2) == cores, text
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    for quota, cores in (("-1\n", 8), ("200000\n", 2)):
        (v1 / "cpu.cfs_quota_us").write_text(quota)
        assert cpus.usable_cores(v1.parent) == cores
    monkeypatch.setattr(cgroups, "CGROUP", v2)  # a quota of one core, eight in the CPU set
    (v2 / "cpu.max").write_text("100000 100000")
    assert demo.default_jobs() == 1  # two lanes on one core: each waits on the other
    # a plain command (vcm fit) under that quota: torch, imported after, starts one thread, not eight
    from vcm.cli import _threads_within_quota

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delitem(sys.modules, "torch")
    _threads_within_quota()
    assert os.environ["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own setting stays
    _threads_within_quota()
    assert os.environ["OMP_NUM_THREADS"] == "3"


def test_provenance_names_the_code_and_the_command():
    from vcm.cpus import usable_cores
    from vcm.provenance import provenance

    p = provenance(CPU)
    assert p["vcm"] and p["torch"] == torch.__version__ and p["device"].startswith("cpu")
    assert p["commit"] is None or len(p["commit"].split("+")[0]) == 40
    assert p["cpu"] and p["cpu"] != "unknown" and p["cores"] == usable_cores()  # another CPU trains other networks


def test_solving_a_small_budget_terminates():
    """Widening a width that adds no parameters (lower_width under the block widths) looped forever."""
    from vcm.nerv.config import load_preset
    from vcm.nerv.model import count_params, solve_for_params

    spec, _ = load_preset("nerv-xs")
    cfg = solve_for_params(spec.shape, 24, 32, 4000)
    assert 3000 < count_params(cfg) <= 4000


# ------------------------------------------------------------------ what a decode costs, checked first


def test_rd_reader_refuses_junk_words_and_headers_that_reshape_the_network():
    from tests.fuzz_streams import junk_words, nerv_seeds, shape_edits

    rng = np.random.default_rng(0)
    for data in nerv_seeds()[1:]:  # rate–distortion NeRV and HiNeRV streams
        header = head_json(section(data, b"HEAD"))
        nerv_stream.decode(data)
        for _ in range(3):
            with pytest.raises(StreamError, match="entropy-coded"):
                nerv_stream.decode(junk_words(data, rng)[0])
        for name in shape_edits(header):
            edited = json.loads(json.dumps(header))
            shape_edits(edited)[name]()
            with pytest.raises(StreamError):
                nerv_stream.decode(reseal(data, b"HEAD", zlib.compress(json.dumps(edited).encode())))


def test_a_stream_declaring_a_million_frames_is_refused_at_once_naming_size_and_space(nerv_bytes, tmp_path):
    import time

    from vcm.codec.compress import decode_stream

    many = with_header(nerv_bytes, lambda h: h["video"].update(frames=10**6, source_frames=[0, 10**6]))
    (tmp_path / "many.nerv").write_bytes(many)
    start = time.time()
    with pytest.raises(StreamError, match="1,000,000 frames"):
        decode_stream(tmp_path / "many.nerv")
    assert time.time() - start < 1
    proc = run_main("decode", tmp_path / "many.nerv", "--out", tmp_path / "many.yuv")
    assert one_line_error(proc) and "1,000,000 frames" in proc.stderr
    assert "1.1 GiB to write" in proc.stderr and "free on" in proc.stderr  # 10⁶ × 32×24 × 1.5 bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.nerv"]  # nothing written, not even a temporary file


def test_an_output_larger_than_the_free_space_is_refused_before_decoding(nerv_bytes, tmp_path, monkeypatch):
    from collections import namedtuple

    from vcm.bitstream import decode_plan

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(decode_plan.shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    plan = nerv_stream.decode(nerv_bytes).plan(len(nerv_bytes))
    with pytest.raises(VcmError, match="only 1000 B are free"):
        plan.check(tmp_path / "x.yuv")
    plan.check(None)  # nothing written: nothing to fit


@pytest.mark.slow
def test_frames_a_b_decode_exactly_those_frames(nerv_bytes, tmp_path):
    twelve = with_header(nerv_bytes, lambda h: h["video"].update(frames=12, source_frames=[0, 12]))
    (tmp_path / "s.nerv").write_bytes(twelve)
    full = run_main("decode", tmp_path / "s.nerv", "--out", tmp_path / "all.yuv", "--json")
    part = run_main("decode", tmp_path / "s.nerv", "--out", tmp_path / "part.yuv", "--frames", "0:10", "--json")
    assert full.returncode == 0 and part.returncode == 0, part.stderr
    assert json.loads(part.stdout)["frames"] == 10 and json.loads(part.stdout)["source_frames"] == [0, 10]
    frame = 32 * 24 * 3 // 2  # bytes of one 4:2:0 frame
    whole = (tmp_path / "all.yuv").read_bytes()
    assert len(whole) == 12 * frame and (tmp_path / "part.yuv").read_bytes() == whole[:10 * frame]
    late = run_main("decode", tmp_path / "s.nerv", "--out", tmp_path / "late.yuv", "--frames", "7:", "--json")
    assert late.returncode == 0 and (tmp_path / "late.yuv").read_bytes() == whole[7 * frame:]
    bad = run_main("decode", tmp_path / "s.nerv", "--frames", "5:50")
    assert one_line_error(bad) and "0 <= A < B <= 12" in bad.stderr


def _hinerv_demo_stream(height: int, width: int, frames: int) -> bytes:
    """A well-formed rd stream of hinerv-demo's carphone network (at a larger size, with larger
    strides and so larger local grids): zero weights, small biases, a few hundred bytes in all,
    declaring ``frames`` of ``height``×``width``."""
    from vcm.codec.rd_coding import RDTensor
    from vcm.nerv.config import load_preset
    from vcm.nerv.registry import create_representation

    from dataclasses import replace

    spec, _ = load_preset("hinerv-demo")
    cfg = spec.build(144, 176, 120)  # 76,546 parameters
    if (height, width) != (144, 176):  # the same grids, upsampled further: 2048² from 18×22 takes strides 8·4·4
        cfg = replace(cfg, height=height, width=width, strides=(8, 4, 4))
    model = create_representation("hinerv", cfg)
    rng, tensors = np.random.default_rng(0), []
    for n, p in model.named_parameters():
        channels = model.quant_channels(n, tuple(p.shape))
        symbols = np.zeros((channels, p.numel() // channels), np.int32)
        if p.numel() <= 64:  # biases and norms: small random values, a few hundred bytes in all
            symbols = rng.integers(-1, 2, symbols.shape).astype(np.int32)
        tensors.append(RDTensor(n, tuple(p.shape), np.zeros(channels, np.int64), 30000, symbols))
    video = {"name": "big", "fps": 30, "frames": frames, "source_frames": [0, frames]}
    return nerv_stream.encode(nerv_stream.NervStream(cfg, video, tensors, "hinerv", "rd")).data


@pytest.mark.parametrize("height, width, frames", [(2048, 2048, 64), (144, 176, 50_000)])
def test_work_out_of_proportion_is_refused_by_default_and_decodes_when_allowed(height, width, frames, monkeypatch):
    import time

    from vcm.codec.compress import iter_frames

    monkeypatch.setenv("VCM_MEMORY_BUDGET", "8G")  # a 2048² frame of this network: ~4 GiB by the estimate
    data = _hinerv_demo_stream(height, width, frames)
    assert len(data) < 1500
    start = time.time()
    with pytest.raises(StreamError, match="allow-large"):
        nerv_stream.decode(data)
    assert time.time() - start < 1
    stream = nerv_stream.decode(data, allow_large=True)
    frame = next(iter_frames(stream, CPU, range(0, 1)))
    assert frame.shape == (1, 3, height, width)
    monkeypatch.setenv("VCM_WORK_BUDGET", "unlimited")  # the same, for library callers and CTC runs
    nerv_stream.decode(data)
    monkeypatch.setenv("VCM_WORK_BUDGET", "1G")  # a fixed cap on the work; the frame rule stays
    with pytest.raises(StreamError, match="the work budget of 1 GMAC" if frames < 1000 else "bytes per frame"):
        nerv_stream.decode(data)
    for value in ("lots", "nan", "-1", "0.5"):
        monkeypatch.setenv("VCM_WORK_BUDGET", value)
        with pytest.raises(VcmError, match=f"VCM_WORK_BUDGET='{value}' is not an amount"):
            nerv_stream.decode(data)


def test_decode_states_its_cost_up_front(nerv_bytes, tmp_path):
    (tmp_path / "s.nerv").write_bytes(nerv_bytes)
    proc = run_main("decode", tmp_path / "s.nerv", "--out", tmp_path / "s.yuv", env={"VCM_PROGRESS": "lines"})
    assert proc.returncode == 0, proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert "frames of 32x24" in first and "to write" in first and "MAC" in first and "CPU cores" in first


def test_every_representation_estimates_its_work():
    from vcm.nerv.config import load_preset
    from vcm.nerv.registry import entry

    spec, _ = load_preset("hinerv-demo")
    cfg = spec.build(144, 176, 120)
    per_pixel = entry("hinerv").model_cls.frame_macs(cfg) / (144 * 176)
    assert 2000 < per_pixel < 3000  # the demo's network: about 2.5 kMAC per pixel
    spec, _ = load_preset("demo")
    nerv = spec.build(144, 176, 120)
    assert entry("nerv").model_cls.frame_macs(nerv) > 0
    bigger = type(nerv).from_dict({**nerv.to_dict(), "fc_dim": nerv.fc_dim * 2})
    assert entry("nerv").model_cls.frame_macs(bigger) > entry("nerv").model_cls.frame_macs(nerv)


def test_eval_decodes_only_the_frames_it_scores(nerv_bytes, tmp_path):
    from vcm.codec.compress import decode_file
    from vcm.eval.gt import Box, GroundTruth
    from vcm.eval.run import decode_any, frames_to_score

    path = tmp_path / "s.nerv"
    path.write_bytes(with_header(nerv_bytes, lambda h: h["video"].update(frames=12, source_frames=[100, 112])))
    gt = GroundTruth("Tiny", 32, 24, {f: [Box(1, 1, 5, 5, 0)] for f in (103, 104, 106, 107, 110)})
    full, _, _ = decode_file(path, CPU)
    every_second = decode_any(path, CPU, gt=gt, every=2)  # scores 104, 106, 110 (even offsets from frame 100)
    assert every_second.source_frames == range(104, 111) and np.array_equal(every_second.frames_u8, full[4:11])
    assert frames_to_score(gt, every_second.source_frames, 2) == [104, 106, 110]  # the same frames as after a full decode
    whole = decode_any(path, CPU)  # no ground truth known yet (pseudo ground truth): every frame
    assert whole.source_frames == range(100, 112) and np.array_equal(whole.frames_u8, full)
    # --frames A:B on a stream selects among its source frames (it was dropped without a word: every frame scored)
    part = decode_any(path, CPU, frames="105:109")
    assert part.source_frames == range(105, 109) and np.array_equal(part.frames_u8, full[5:9])
    assert decode_any(path, CPU, frames="105:109", gt=gt, every=2).source_frames == range(107, 108)  # even offsets from 105
    for frames, message in (("109:105", "selects no frame"), ("90:105", "outside s.nerv"), ("ctc", "needs an SFU-HW")):
        with pytest.raises(VcmError, match=message):
            decode_any(path, CPU, frames=frames)


def test_damaged_checkpoint_on_compress_is_one_line(tmp_path, tiny_run):
    """Compressing reads the fit's quantizers from the checkpoint too: a damaged one is one clear line."""
    import shutil

    root, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    from vcm.nerv.train import load_quantizers

    assert load_quantizers(run) is None  # a plain fit has none
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(__import__("vcm.errors", fromlist=["VcmError"]).VcmError, match="damaged"):
        load_quantizers(run)
    proc = run_main("compress", run, "--lambda", "1", "--out", tmp_path / "x.nerv", cwd=tmp_path)
    assert one_line_error(proc) and "damaged" in proc.stderr


@pytest.mark.parametrize("edit, said", [
    ({"embed_levels": 10 ** 7}, "does not describe a network a .nerv stream can hold (widths); the file is damaged"),
    ({"fc_dim": 512}, "declares a network of 14,259,251 parameters and holds 119,751 values"),  # within the limits
])
def test_a_checkpoint_whose_config_declares_another_network_is_refused_before_it_is_built(tmp_path, tiny_run, edit,
                                                                                          said):
    """A run's checkpoint carries the config its network is rebuilt from: an edited one was built before it failed to
    load (a HiNeRV run with a million blocks hung `vcm info` and `vcm compress`; grid frames declaring 5·10⁹ parameters
    took 79 s and 20 GB before the refusal). Its sizes are now held to what a stream holds, and its parameters to the
    values the file holds."""
    import shutil

    import torch

    root, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    ckpt["config"]["model"].update(edit)
    torch.save(ckpt, run / "checkpoint.pt")
    for args in (("compress", run, "--lambda", "1", "--out", tmp_path / "x.nerv"), ("info", run)):
        proc = run_main(*args, cwd=tmp_path)
        assert one_line_error(proc) and said in proc.stderr, proc.stderr[-300:]
    assert not (tmp_path / "x.nerv").exists()


@pytest.mark.parametrize("edit, said", [
    ({"fps": "fast"}, "its fps is not a rate above 0 and at most 1000"),
    ({"width": 33}, "its size is not the network's"),
    ({"source_frames": [0]}, "its frames are not a source frame range of that many frames"),
    ({"source": ["a", 1]}, "its name, source or sequence is not text"),
])
def test_a_checkpoint_whose_video_section_is_edited_is_one_line_and_a_streams_edited_report_is_left_out(
        tmp_path, tiny_run, edit, said):
    """`vcm info RUN` showed the checkpoint's video section as it read it: fps as text, a one-number frame span or a
    list where the source goes were tracebacks (12 kinds in 150 mutations, a one-off fuzz), and so were the figures
    of a stream's report beside it."""
    import shutil

    import torch

    root, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    (run / "s.nerv").write_bytes(b"0123456789")
    (run / "s.json").write_text(json.dumps({"bytes": 10, "kbps": "fast", "psnr_y": [30], "method": "rate-distortion",
                                            "lambda": {}}))
    proc = run_main("info", run)
    assert proc.returncode == 0 and "s.nerv: 10 bytes" in proc.stdout and "fast" not in proc.stdout, proc.stderr
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    ckpt["config"]["video"].update(edit)
    torch.save(ckpt, run / "checkpoint.pt")
    for args in (("info", run), ("compress", run, "--lambda", "1", "--out", tmp_path / "x.nerv")):
        proc = run_main(*args, cwd=tmp_path)
        assert one_line_error(proc) and f"describes its video wrongly ({said})" in proc.stderr, proc.stderr[-300:]


def test_a_network_too_large_to_train_here_is_refused_before_it_is_built(tmp_path, monkeypatch):
    """`vcm fit --params 1G` built the network first: torch's allocator failed with a traceback (or the
    machine swapped for minutes). The training state is now checked against the free memory."""
    from vcm.nerv import train_memory
    from vcm.nerv.hinerv import HiNeRV, HinervShape
    from vcm.nerv.train import fit
    from tests.test_fit import make_video

    cfg = HinervShape(grid_channels=2, channels=(8, 6), depths=(1, 0), min_grid=4).config(16, 16, 2)
    need = train_memory.training_bytes("hinerv", cfg, batch=2)
    assert need >= 16 * HiNeRV.count_params(cfg)
    assert need > train_memory.training_bytes("hinerv", cfg, batch=1)
    train_memory.check_training_memory("hinerv", cfg, 2, CPU, available=need)  # enough: nothing to say
    with pytest.raises(VcmError, match=r"needs at least .* to train at batch 2 on 16x16 frames .* \(--params\)"):
        train_memory.check_training_memory("hinerv", cfg, 2, CPU, available=need - 1)
    monkeypatch.setattr(train_memory, "available_bytes", lambda device: 1 << 10)
    from vcm.nerv.config import TrainConfig

    with pytest.raises(VcmError, match="needs at least"):
        fit(make_video(moving_frames(t=2, h=16, w=16)), cfg, TrainConfig(steps=1), tmp_path / "run", CPU)
    assert not (tmp_path / "run").exists()
    # a batch above the clip's frames holds the clip: --batch 100000 on 2 frames was refused as a TiB to train
    monkeypatch.setattr(train_memory, "available_bytes", lambda device: need)
    fit(make_video(moving_frames(t=2, h=16, w=16)), cfg, TrainConfig(steps=1, batch=100_000), tmp_path / "wide", CPU)
    assert (tmp_path / "wide" / "metrics.json").is_file()
    if Path("/proc/meminfo").is_file():  # Linux: what the machine has free, read as the check reads it
        assert 0 < train_memory.available_bytes(CPU) < 1 << 50


def test_limits_of_the_cgroup_the_process_runs_in_are_found_below_the_mount(tmp_path, monkeypatch):
    """A Slurm job's --mem and --cpus, or a systemd slice's limits, sit in a cgroup below /sys/fs/cgroup that
    /proc/self/cgroup names; only the mount's root was read, so a clip too large for the job passed the memory check
    and the kernel killed the fit. The page cache a cgroup holds (a clip just read) counted as used, and refused
    loads that fit."""
    from vcm import cgroups, cpus, memory
    from vcm.errors import VcmError
    from vcm.video.source import load, probe

    gib = 1 << 30
    mount = tmp_path / "cgroup"
    job = mount / "system.slice" / "slurmstepd.scope" / "job_7"
    step = job / "step_0"
    step.mkdir(parents=True)
    membership = tmp_path / "self-cgroup"
    membership.write_text("0::/system.slice/slurmstepd.scope/job_7/step_0\n")
    (step / "memory.max").write_text("max\n")
    (step / "memory.current").write_text(f"{gib}\n")
    (job / "memory.max").write_text(f"{4 * gib}\n")  # the job's --mem 4G
    (job / "memory.current").write_text(f"{3 * gib}\n")
    (job / "memory.stat").write_text(f"anon {gib}\nfile {2 * gib}\ninactive_file {gib // 2}\nactive_file {gib}\n")
    assert memory.cgroup_room(mount, membership) == gib + gib // 2  # 4 − 3 GiB, and the inactive cache back
    (job / "cpu.max").write_text("200000 100000\n")  # --cpus-per-task 2 as a quota
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert cpus.usable_cores(mount, membership) == 2
    # where /proc/self/cgroup names a folder the mount does not show (a container's own mount), its root is read
    other = tmp_path / "elsewhere"
    other.write_text("0::/docker/0123abcd\n")
    assert cgroups.own_folders("", mount, other) == [mount] and memory.cgroup_room(mount, other) is None
    assert cpus.usable_cores(mount, other) == 16
    # cgroup v1, as this machine's own: the memory controller's folder of the process, a limit above it
    v1 = tmp_path / "v1"
    own = v1 / "memory" / "process_api" / "8b84"
    own.mkdir(parents=True)
    (own / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # no limit
    (own / "memory.usage_in_bytes").write_text(f"{gib}\n")
    (own.parent / "memory.limit_in_bytes").write_text(f"{2 * gib}\n")
    (own.parent / "memory.usage_in_bytes").write_text(f"{gib + gib // 4}\n")
    (own.parent / "memory.stat").write_text(f"inactive_file 0\ntotal_inactive_file {gib // 4}\n")
    membership_v1 = tmp_path / "self-cgroup-v1"
    membership_v1.write_text("9:name=systemd:/\n4:memory:/process_api/8b84\n2:cpu,cpuacct:/\n0::/\n")
    assert memory.cgroup_room(v1, membership_v1) == gib
    (own.parent / "memory.usage_in_bytes").write_text(f"{3 * gib}\n")  # over its limit: no room, not a negative one
    assert memory.cgroup_room(v1, membership_v1) == 0
    # the limit reaches the checks: a clip of two 4096x4096 frames (48 MiB each as RGB) refused under 20 MiB of room
    (own.parent / "memory.stat").write_text("total_inactive_file 0\n")
    (own.parent / "memory.usage_in_bytes").write_text(f"{2 * gib - 20 * (1 << 20)}\n")
    monkeypatch.setattr(cgroups, "CGROUP", v1)
    monkeypatch.setattr(cgroups, "MEMBERSHIP", membership_v1)
    assert memory.free_host_bytes() <= 20 * (1 << 20)
    clip = tmp_path / "clip.y4m"
    w, h = 4096, 4096
    clip.write_bytes(f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg\n".encode()
                     + b"".join(b"FRAME\n" + bytes(w * h * 3 // 2) for _ in range(2)))
    with pytest.raises(VcmError, match=r"take .*, and this machine has .* free"):
        load(probe(clip))
    (own.parent / "memory.usage_in_bytes").write_text(f"{gib // 2}\n")
    assert load(probe(clip)).num_frames == 2

def test_gpu_memory_this_process_holds_cached_counts_as_free(monkeypatch):
    """The driver counts the blocks torch's allocator keeps cached as taken: a CTC worker's second fit on a GPU, after
    a first that left gigabytes cached in the same process, was refused for want of memory it held itself."""
    from vcm.nerv import train_memory

    gib = 1 << 30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 6 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2 * gib)
    assert train_memory.available_bytes(torch.device("cuda", 0)) == 5 * gib  # 1 free + 4 cached, unused

def test_a_fit_step_counts_its_loss_maps_against_the_free_memory():
    """A folder of two 9000×9000 images: the check counted one batch's network activations (6.6 GB for the NeRV
    that ran), the step needed about 28 GB, and the kernel killed the fit. Eq. (4)'s maps and their gradients take
    ~250 bytes a pixel of each frame, eq. (6)'s ~466 (vcm.nerv.train_memory): they are counted now."""
    from vcm.nerv import registry, train_memory
    from vcm.nerv.model import NervConfig

    cfg = NervConfig(height=9000, width=9000, strides=(5, 5, 5, 2), grid_h=36, grid_w=36, fc_dim=1, stem_dims=(13,),
                     lower_width=2)
    activations_only = 16 * registry.entry("nerv").model_cls.count_params(cfg) + registry.frame_memory("nerv", cfg)
    with pytest.raises(VcmError, match="on 9000x9000 frames .* or smaller frames"):
        train_memory.check_training_memory("nerv", cfg, 1, CPU, available=activations_only)
    plain, edge = (train_memory.training_bytes("nerv", cfg, 1, loss) for loss in ("nerv", "sa-nerv"))
    assert plain >= 224 * 9000 * 9000 and edge - plain >= 190 * 9000 * 9000


@pytest.mark.parametrize("failure", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
                 "to allocate 3030141312 bytes. Error code 12 (Cannot allocate memory)"),
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79 GiB"),
    MemoryError(),
])
def test_an_allocation_that_fails_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys, failure):
    """An allocation failure anywhere (here: building the network) ends as one line and exit code 1."""
    from vcm.cli import main
    from vcm.nerv import registry
    from vcm.video.yuv import write_yuv420

    clip = tmp_path / "Clip_16x16_30.yuv"
    write_yuv420(clip, moving_frames(t=2, h=16, w=16))

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(registry, "create_representation", fail)
    with pytest.raises(SystemExit) as exited:
        main(["fit", str(clip), "--steps", "1", "--out", str(tmp_path / "run")])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert exited.value.code == 1 and len(lines) == 1 and lines[0].startswith("error: out of memory")
    assert ("could not allocate 2.8 GiB" in lines[0]) == ("3030141312" in str(failure))
    assert ("could not allocate 20.00 GiB" in lines[0]) == ("CUDA" in str(failure))


def test_a_runtime_error_that_is_not_about_memory_is_not_called_one(tmp_path, monkeypatch):
    from vcm.cli import main
    from vcm.nerv import registry
    from vcm.video.yuv import write_yuv420

    clip = tmp_path / "Clip_16x16_30.yuv"
    write_yuv420(clip, moving_frames(t=2, h=16, w=16))
    monkeypatch.setattr(registry, "create_representation", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("bug")))
    with pytest.raises(RuntimeError, match="bug"):
        main(["fit", str(clip), "--steps", "1", "--out", str(tmp_path / "run")])


def test_a_new_fit_never_replaces_a_config_or_metrics_file_it_did_not_write(tmp_path):
    """`vcm fit clip --out mydata` replaced the user's own mydata/config.json and metrics.json without a word.
    Now refused before anything is read; the fit's own config.json from an attempt that died before its first
    checkpoint is replaced as before, and other files in the folder stay."""
    from vcm.video.yuv import write_yuv420

    clip = tmp_path / "Clip_16x16_30.yuv"
    write_yuv420(clip, moving_frames(t=2, h=16, w=16))
    mine = tmp_path / "mydata"
    mine.mkdir()
    for name in ("config.json", "metrics.json"):
        (mine / name).write_text('{"mine": 1}')
        before = digest(mine / name)
        proc = run_main("fit", clip, "--steps", "1", "--out", mine)
        assert one_line_error(proc) and f"holds a {name} that no unfinished vcm fit wrote" in proc.stderr
        assert digest(mine / name) == before and not (mine / "checkpoint.pt").exists()
        (mine / name).unlink()
    (mine / "notes.txt").write_text("kept")
    from vcm.nerv.config import TrainConfig
    from vcm.nerv.model import NervShape
    from vcm.nerv.train import fit
    from vcm.video import open_video

    video, mcfg = open_video(clip), NervShape(fc_dim=8, stem_dims=(16,), lower_width=4, embed_levels=8).config(16, 16)
    fit(video, mcfg, TrainConfig(steps=1), mine, CPU)
    (mine / "checkpoint.pt").unlink()
    (mine / "metrics.json").unlink()  # as a fit killed before its first checkpoint leaves it: its config.json
    fit(video, mcfg, TrainConfig(steps=1), mine, CPU)
    assert (mine / "notes.txt").read_text() == "kept" and (mine / "checkpoint.pt").exists()
    (mine / "config.json").write_text('{"mine": 1}')
    (mine / "checkpoint.pt").unlink()
    with pytest.raises(VcmError, match="holds a config.json that no unfinished vcm fit wrote"):  # the library too
        fit(video, mcfg, TrainConfig(steps=1), mine, CPU)


def test_a_stream_never_replaces_a_file_that_is_not_a_stream_or_its_report(tmp_path, tiny_run):
    """`vcm compress RUN --out x.nerv` replaced whatever file was named x.nerv (or x.json beside it), and
    `vcm icm encode --out x.icm` likewise; an earlier stream of the same name (and its report) is replaced as before."""
    root, _ = tiny_run
    theirs = tmp_path / "x.nerv"
    theirs.write_bytes(b"mine")
    proc = run_main("compress", root / "run", "--bits", "6", "--out", theirs)
    assert one_line_error(proc) and "exists and is not a vcm NeRV bitstream" in proc.stderr
    assert theirs.read_bytes() == b"mine"
    theirs.unlink()
    (tmp_path / "x.json").write_text('{"mine": 1}')
    proc = run_main("compress", root / "run", "--bits", "6", "--out", theirs)
    assert one_line_error(proc) and "x.json exists and is not a stream's report" in proc.stderr
    assert (tmp_path / "x.json").read_text() == '{"mine": 1}' and not theirs.exists()
    (tmp_path / "x.json").unlink()
    for _ in range(2):  # the second time over its own stream and report
        assert run_main("compress", root / "run", "--bits", "6", "--out", theirs).returncode == 0
    (tmp_path / "y.icm").write_bytes(b"VCMN" + b"\0" * 10)  # a stream, but not of this kind
    proc = run_main("icm", "encode", root / "Tiny_32x24_25.yuv", "--checkpoint", tmp_path / "none.pth",
                    "--out", tmp_path / "y.icm")
    assert one_line_error(proc) and "exists and is not a vcm ICM bitstream" in proc.stderr


def test_a_stopped_demo_continues_with_what_it_kept_and_a_finished_or_other_one_starts_afresh(tmp_path, monkeypatch, capsys):
    """Ctrl-C in a 10-minute demo, then `vcm demo` again: the demo folder was replaced and every fit started from
    step 0, though the message had said its checkpoints were kept. The CTC runner reuses finished points and
    resumes fits, so the demo now keeps a stopped demo's files when its config and vcm are the same."""
    from vcm import demo, progress

    monkeypatch.setenv("VCM_DEMO_DETECTOR", "none")
    monkeypatch.setenv("VCM_PROGRESS", "lines")
    progress.set_quiet(False)
    out = tmp_path / "demo"
    kept = out / "points" / "carphone" / "hinerv" / "p" / "result.json"
    seen = []

    def stopped_run(config, out_, **kw):  # a run stopped after one point had finished
        seen.append(kept.exists())
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run", stopped_run)
    for epochs in (None, None, 1):
        with pytest.raises(KeyboardInterrupt):
            demo.run_demo(out, epochs=epochs)
    # the second run found the first one's point; the third (another --epochs) started afresh
    assert seen == [False, True, False]
    err = " ".join(capsys.readouterr().err.split())
    assert err.count(f"continuing the demo stopped in {out}") == 1 and "delete" in err
    # a finished demo is replaced: each demo that got to its report is a fresh run
    marker = json.loads((out / demo.MARKER).read_text())
    (out / demo.MARKER).write_text(json.dumps({**marker, "finished": True}))
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(out, epochs=1)
    assert seen == [False, True, False, False]
    with pytest.raises(KeyboardInterrupt):  # stopped, then asked for other frames: another experiment
        demo.run_demo(out, epochs=1, frames="0:24")
    assert seen == [False, True, False, False, False]
    for bad, message in (("5:2", "selects no frame"), ("0:200", "outside"), ("ctc", "needs an SFU-HW sequence")):
        with pytest.raises(VcmError, match=message):  # refused before the folder is touched
            demo.run_demo(out, epochs=1, frames=bad)
    assert seen == [False, True, False, False, False] and (out / "points").is_dir()


def test_the_demos_table_names_the_frames_it_ran_on(monkeypatch):
    """The table `vcm demo` prints at its end (after minutes of work: a slip there loses the run's summary)."""
    from vcm import demo

    point = {"codec": "hevc", "curve": "hevc", "point": "qp36", "label": "QP36", "qp": 36, "bytes": 1000, "kbps": 10.0,
             "psnr": 30.0, "psnr_y": 32.0, "psnr_yuv": 33.0, "map": 50.0, "ap50": 70.0}
    bd = {"bd_rate": -3.8, "overlap": 0.92, "withheld": False, "note": None}
    summary = {"clip": "carphone", "frames": [0, 24], "points": [point], "bd_metric": "psnr_y",
               "fits": {"hinerv/hinerv-demo": {"params": 76546, "epochs": 30, "seconds": 300.0, "psnr": 30.1}},
               "bd_rate": {"hinerv-rd": {"hevc": bd}}, "bd_rate_map": {"hinerv-rd": {"hevc": bd}},
               "detector": {"name": "opencv-face", "ground_truth": "pseudo ground truth: x", "every": 2},
               "table1": [{"comparison": "sa-hinerv-rd vs hinerv-rd", "bd_rate_map": "+1.0 %", "bd_rate_psnr": "-1.0 %"}],
               "report_html": "runs/demo/report.html", "seconds": 600.0}
    monkeypatch.setattr(demo, "run_demo", lambda *a, **k: summary)
    proc = run_main("demo")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "vcm demo: carphone frames 0:24" in text and "76,546 params" in text and "QP36" in text
    assert "hinerv-rd BD-rate (psnr_y) vs HEVC: -3.8 %" in text and "Table 1, sa-hinerv-rd vs hinerv-rd" in text
    monkeypatch.setattr(demo, "run_demo", lambda *a, **k: {**summary, "compute": 2.5})
    assert "vcm demo: carphone frames 0:24, 2.5 times the training" in " ".join(run_main("demo").stdout.split())


@pytest.mark.parametrize("argv, continues", [(["demo"], True), (["ctc", "run", "c.yaml"], True),
                                             (["masks", "x.yuv"], True), (["ctc", "report"], False),
                                             (["decode", "x.nerv"], False)])
def test_ctrl_c_says_the_same_command_continues_where_it_does(monkeypatch, argv, continues):
    import io

    from rich.console import Console

    from vcm import cli

    monkeypatch.setattr(sys, "argv", ["vcm", *argv])
    buf = io.StringIO()
    cli._interrupted(Console(file=buf, width=300))
    said = buf.getvalue()
    assert "interrupted (Ctrl-C)" in said and ("the same command again continues from there" in said) == continues


def test_the_test_suite_removes_its_own_cache_folder(tmp_path):
    """Every pytest process makes a cache folder for the tests; it must not outlive the process
    (a thousand runs had left a thousand folders in the temporary directory)."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    env.pop("VCM_CACHE", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "--collect-only",
                           "tests/test_color.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert "test_" in proc.stdout  # it did collect, so the conftest ran
    assert not list(tmp_path.glob("vcm-test-cache-*"))


@pytest.mark.parametrize("kind, cases", [("ctc-config", 60), ("result-rows", 40), ("coco", 100), ("y4m", 150),
                                         ("png", 150), ("preset", 40)])
def test_fuzzed_configs_result_rows_annotations_and_videos_are_read_or_refused_in_one_line(kind, cases):
    """tests/fuzz_files.py at a fixed seed: each case is read, or refused with one line; none is a traceback. At
    this seed the code before gave 4, 6 and 20 tracebacks in 60 cases of each kind (a path or preset given as a
    number, an area given as text, a row's breakdown or provenance edited), and at 53843cb 10 in 400 PNG frames
    (Pillow's DecompressionBombError for a header declaring billions of pixels). At b068a20 the 40 result-rows cases
    put a row's script into report.html."""
    from tests.fuzz_files import run

    summary = run(kind, cases, 1)
    assert summary["crashes"] == [], json.dumps(summary["crashes"][:3], indent=1)
    assert summary["outcomes"]["accepted"] > 0 and sum(summary["outcomes"].values()) == cases


def test_fuzzed_containers_are_read_or_refused_in_one_line_and_their_decoders_say_nothing(capfd):
    """tests/fuzz_files.py's containers (H.264 read by decord, VVC and AV1 by the shipped ffmpeg), bytes changed, cut
    or grown: each read or refused in one line. Damaged H.264 that decord decoded printed libav's own lines
    ("[h264 @ 0x…] error while decoding MB 1 0") on the terminal."""
    from tests.fuzz_files import run

    summary = run("container", 60, 1)
    assert summary["crashes"] == [], json.dumps(summary["crashes"][:3], indent=1)
    assert summary["outcomes"]["accepted"] > 0 and summary["outcomes"]["refused"] > 0
    assert " @ 0x" not in capfd.readouterr().err


def test_a_fit_of_frames_under_the_ssim_window_prints_no_library_warning(tmp_path):
    """On frames under 11 px a side SSIM (eq. 4) blurs along the other side only; pytorch-msssim said so in four lines
    naming its own file, on every fit of such a clip."""
    clip = tmp_path / "small.y4m"
    clip.write_bytes(b"YUV4MPEG2 W8 H12 F25:1 Ip A1:1 C420jpeg\n"
                     + b"".join(b"FRAME\n" + bytes(range(i, i + 96)) + bytes(48) for i in range(2)))
    proc = subprocess.run([sys.executable, "-m", "vcm", "fit", str(clip), "--steps", "2", "--out", "run"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)  # runs/latest goes there too
    assert proc.returncode == 0, proc.stderr[-600:]
    assert "UserWarning" not in proc.stderr and "pytorch_msssim" not in proc.stderr, proc.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 2


def test_on_windows_the_command_says_in_one_line_where_it_runs():
    """vcm takes file locks (fcntl) and POSIX signals: on Windows its first import ended in a traceback about
    fcntl."""
    code = "import os; os.name = 'nt'; from vcm.cli import main; main(['--version'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().startswith("error: vcm needs Linux or macOS") and "WSL" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""
