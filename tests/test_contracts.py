"""Contracts over every registry entry (as timm tests every registered model): a representation or codec
added to a registry gets these tests for free. And the proof that adding a representation is one
module plus one registry entry: a throwaway one, registered inside a test, runs the whole product."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from vcm import codecs
from vcm.codec import nerv_stream
from vcm.errors import VcmError
from vcm.codec.quant import quantize
from vcm.nerv import registry
from vcm.nerv.config import load_preset
from vcm.nerv.limits import limits_of

ENTRIES = registry.entries()


def _small(entry, height: int, width: int, frames: int):
    """The entry's default preset at a small budget for an H×W clip."""
    spec, _ = load_preset(entry.default_preset)
    return entry.model_cls.config_for(spec.shape, height, width, frames, 6000)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
@pytest.mark.parametrize("size", [(24, 32), (31, 45), (37, 50)])
def test_every_representation_builds_at_odd_sizes_and_bounds_its_activations(entry, size):
    h, w = size
    cfg = _small(entry, h, w, 5)
    model = registry.create_representation(entry.name, cfg).eval()
    assert entry.model_cls.count_params(cfg) == sum(p.numel() for p in model.parameters()) <= 6000
    largest = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: largest.append(out.numel() * 4)
                                     if isinstance(out, torch.Tensor) else None) for m in model.modules()]
    with torch.no_grad():
        out = model(torch.tensor([0.0]))
    for hook in hooks:
        hook.remove()
    assert out.shape == (1, 3, h, w) and 0 <= float(out.min()) and float(out.max()) <= 1
    assert max(largest) <= entry.model_cls.frame_bytes(cfg)  # the decoder's memory check is an upper bound
    assert entry.model_cls.frame_macs(cfg) > 0


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_every_representation_round_trips_through_a_stream_within_its_limits(entry):
    cfg = _small(entry, 24, 32, 4)
    model = registry.create_representation(entry.name, cfg)
    entry.model_cls.check_config(cfg, limits_of(entry))
    tensors = [quantize(n, p.detach().numpy(), 8, model.quant_channels(n, tuple(p.shape)))
               for n, p in model.named_parameters()]
    video = {"name": "t", "width": 32, "height": 24, "fps": 25.0, "frames": 4, "source_frames": [0, 4]}
    data = nerv_stream.encode(nerv_stream.NervStream(cfg, video, tensors, entry.name, "affine")).data
    stream = nerv_stream.decode(data)
    assert stream.arch == entry.name and stream.model == cfg
    rebuilt = stream.build_model()
    for (name, p), q in zip(rebuilt.named_parameters(), tensors):
        assert name == q.name and np.allclose(p.detach().numpy(), q.dequantize())


@pytest.mark.parametrize("name", codecs.names())
def test_every_codec_lists_points_from_a_sample_section(name):
    codec = codecs.get(name)
    samples = {"fits": [{"points": [{"lambda": 1}, {"prune": 0.4, "bits": 8}]}], "qps": [37, 42],
               "checkpoints": ["a/ckpt.pth.tar"], "masks": {"source": "canny"}}
    section = {k: v for k, v in samples.items() if k in codec.section_keys}
    points = codec.points(section, {"name": "BQMall"})
    assert points and all(isinstance(pid, str) for pid, _ in points)
    assert len({pid for pid, _ in points}) == len(points)  # ids are unique within a section
    for _, point in points:
        json.dumps(point)  # points travel to worker processes as JSON
        assert codec.curve(point)


# A throwaway representation: a grid per frame, upsampled by 4, and a 1×1 head to RGB.
TINYGRID = textwrap.dedent('''
    from dataclasses import asdict, dataclass
    import torch
    import torch.nn.functional as F
    from torch import nn
    from vcm.nerv.registry import Representation, register_representation
    from vcm.schema import strict_from_dict

    @dataclass(frozen=True)
    class TinyConfig:
        height: int
        width: int
        frames: int
        channels: int
        def to_dict(self):
            return asdict(self)
        @classmethod
        def from_dict(cls, d):
            return strict_from_dict(cls, d, defaults=False)

    @dataclass(frozen=True)
    class TinyShape:
        channels: int = 4

    @register_representation("tinygrid", TinyConfig, codec_order=80)
    class TinyGrid(Representation):
        GROUPS = ("grid", "head", "bias")
        PRUNABLE = ("head",)

        def __init__(self, cfg):
            super().__init__()
            self.cfg = cfg
            self.grid = nn.Parameter(torch.randn(cfg.frames, cfg.channels, -(-cfg.height // 4), -(-cfg.width // 4)) * 0.1)
            self.head = nn.Conv2d(cfg.channels, 3, 1)

        def forward(self, t):
            i = (t * self.cfg.frames).round().long().clamp(0, self.cfg.frames - 1)
            x = F.interpolate(self.grid[i], scale_factor=4, mode="bilinear")[:, :, : self.cfg.height, : self.cfg.width]
            return torch.sigmoid(self.head(x))

        @staticmethod
        def param_group(name):
            return "grid" if name == "grid" else "bias" if name.endswith(".bias") else "head"

        @staticmethod
        def quant_channels_of(cfg, name, shape):
            return 1 if len(shape) < 2 or name.endswith(".bias") else shape[0]

        @staticmethod
        def temporal_of(cfg, name, shape):
            return name == "grid"

        @staticmethod
        def count_params(cfg):
            return cfg.frames * cfg.channels * -(-cfg.height // 4) * -(-cfg.width // 4) + 4 * cfg.channels * 0 + 3 * cfg.channels + 3

        @staticmethod
        def check_config(cfg, limits):
            if not (1 <= cfg.height <= limits["side"] and 1 <= cfg.width <= limits["side"] and 1 <= cfg.channels <= 64
                    and 1 <= cfg.frames <= limits["frames"]):
                raise ValueError("sizes")

        @staticmethod
        def frame_bytes(cfg):
            return 4 * (cfg.channels + 3) * cfg.height * cfg.width * 2

        @staticmethod
        def frame_macs(cfg):
            return 3 * cfg.channels * cfg.height * cfg.width

        @staticmethod
        def shape_from_preset(d):
            return TinyShape(**d)

        @staticmethod
        def config_for(shape, height, width, frames, params, shots=()):
            return TinyConfig(height, width, frames, shape.channels)
''')

THROWAWAY = TINYGRID + textwrap.dedent('''
    import json, sys
    from pathlib import Path
    import torch

    root, clip = Path(sys.argv[1]), sys.argv[2]
    preset = root / "tinygrid.yaml"
    preset.write_text("model: {arch: tinygrid, channels: 4}\\ntrain: {steps: 6, batch: 2, lr: 1.0e-2}\\n")
    from vcm.codec.compress import CompressOptions, RDOptions, compress_many, decode_file
    from vcm.nerv.run import plan
    from vcm.nerv.train import fit
    from vcm.video import open_video

    video = open_video(clip, "all")
    spec, train = plan(str(preset))
    fit(video, spec.build_for(video), train, root / "run", torch.device("cpu"))
    reports = compress_many(root / "run", [CompressOptions(bits=8), RDOptions(lam=1.0, steps=3)], torch.device("cpu"),
                            outs=[root / "a.nerv", root / "r.nerv"])
    frames = [decode_file(root / name, torch.device("cpu"))[0].shape for name in ("a.nerv", "r.nerv")]
    cfg = root / "ctc.yaml"
    cfg.write_text(json.dumps({"sequences": [{"name": "tiny", "path": clip, "frames": "all"}], "device": "cpu",
                               "codecs": {"tinygrid": {"fits": [{"preset": str(preset), "rate_aware": False,
                                                                  "points": [{"lambda": 1, "rd_steps": 3}]}]},
                                          "hevc": {"qps": [40]}}}))
    from vcm.ctc.report import make_report
    from vcm.ctc.run import run

    result = run(cfg, root / "ctc", jobs=1)
    make_report(root / "ctc", anchor="hevc")
    print(json.dumps({"reports": [r["coding"] for r in reports], "frames": [list(f) for f in frames],
                      "ctc": [(r["codec"], r["status"], r.get("label")) for r in result["rows"]],
                      "report": (root / "ctc" / "report.md").read_text()}))
''')


def test_a_representation_is_one_module_and_one_registry_entry(tmp_path):
    """A representation registered from inside a script (no vcm file touched) fits, compresses by both
    methods, decodes, runs as a CTC codec (its two codecs registered from the representation registry)
    and appears in the report."""
    from tests.conftest import moving_frames
    from vcm.video.yuv import write_yuv420

    clip = tmp_path / "Tiny_32x24_25.yuv"
    write_yuv420(clip, moving_frames(t=4, h=24, w=32))
    proc = subprocess.run([sys.executable, "-c", THROWAWAY, str(tmp_path), str(clip)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["reports"] == ["affine", "rd"] and out["frames"] == [[4, 3, 24, 32]] * 2
    assert ("tinygrid", "ok", "λ1.0") in [tuple(r) for r in out["ctc"]]
    assert "tinygrid-rd" in out["report"]


def test_a_representation_of_another_package_runs_through_its_entry_point(tmp_path):
    """A lab's own representation joins vcm without an edit to it: its package names its module in the entry-point
    group ``vcm.representations``. Stood in for by a distribution on PYTHONPATH holding the throwaway above: the real
    commands fit it from a preset that names it, code it, decode the stream, and run its CTC codec on worker processes
    (--jobs 2), which load the plugin as the command does. Without the package, its stream is one line that names
    the representation it needs and how one is installed."""
    from tests.conftest import moving_frames, plugin_package, run_cli, run_main
    from vcm.video.yuv import write_yuv420

    site = tmp_path / "site"
    plugin_package(site, "lab-repr", "vcm.representations", "tinygrid", "lab_repr", TINYGRID)
    env = {"PYTHONPATH": str(site)}
    clip = tmp_path / "Tiny_32x24_25.yuv"
    write_yuv420(clip, moving_frames(t=4, h=24, w=32))
    preset = tmp_path / "tinygrid.yaml"
    preset.write_text("model: {arch: tinygrid, channels: 4}\ntrain: {steps: 6, batch: 2, lr: 1.0e-2}\n")
    r = run_cli("fit", clip, "--preset", preset, "--out", tmp_path / "run", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli("fit", clip, "--arch", "tinygrid", "--out", tmp_path / "r2", cwd=tmp_path, env=env)
    assert r.returncode == 1 and r.stderr == ("error: --arch tinygrid: that representation has no default preset; fit "
                                              "a preset whose model names it (--preset FILE.yaml)\n")
    stream = tmp_path / "t.nerv"
    r = run_cli("compress", tmp_path / "run", "--lambda", "1", "--rd-steps", "3", "--out", stream, cwd=tmp_path,
                env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli("decode", stream, "--out", tmp_path / "t.y4m", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "t.y4m").read_bytes().startswith(b"YUV4MPEG2 W32 H24 ")
    cfg = tmp_path / "ctc.yaml"
    cfg.write_text(json.dumps({"sequences": [{"name": "tiny", "path": str(clip), "frames": "all"}], "device": "cpu",
                               "codecs": {"tinygrid": {"fits": [{"preset": str(preset), "rate_aware": False,
                                                                  "points": [{"lambda": 1, "rd_steps": 3},
                                                                             {"lambda": 20, "rd_steps": 3}]}]}}}))
    r = run_cli("ctc", "run", cfg, "--out", tmp_path / "ctc", "--jobs", "2", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(p.read_text()) for p in (tmp_path / "ctc" / "points").glob("*/tinygrid/*/result.json")]
    assert len(rows) == 2 and all(row["status"] == "ok" for row in rows)
    hint = "known: nerv, hinerv (another package's representation is known once installed with an entry point in " \
           "vcm.representations)\n"
    r = run_main("fit", clip, "--arch", "tinygrid", "--out", tmp_path / "r3", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr == f"error: --arch 'tinygrid' is no representation installed here; {hint}"
    r = run_main("info", stream, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.endswith(
        f"this vcm NeRV bitstream needs the representation 'tinygrid', which is not installed; {hint}")
    r = run_main("compress", tmp_path / "run", "--lambda", "1", "--out", tmp_path / "u.nerv", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr == f"error: unknown representation 'tinygrid'; {hint}"
    assert not (tmp_path / "u.nerv").exists()


def test_every_registry_says_where_another_packages_entries_come_from():
    """The hint is the shared registry's, not each caller's: an unknown codec asked for by name said only
    "known: nerv, ...", where an unknown representation named its entry-point group."""
    from vcm.detectors import registry as detectors

    for get, group in ((codecs.get, "vcm.codecs"), (registry.entry, "vcm.representations"),
                       (detectors.entry, "vcm.detectors")):
        with pytest.raises(VcmError, match=rf"known: .* is known once installed with an entry point in {group}\)$"):
            get("nope")


def test_a_stream_file_finds_its_decoder_in_the_codec_registry():
    """Evaluation asks the registry which codec reads a file (no suffix lists elsewhere); videos have none."""
    assert codecs.for_stream("x/a.nerv").name == "nerv" and codecs.for_stream("b.icm").name == "sa-icm"
    assert codecs.for_stream("clip.mp4") is None and codecs.for_stream("BQMall_832x480_60.yuv") is None
    with_suffix = [codecs.get(n) for n in codecs.names() if codecs.get(n).suffix]
    assert with_suffix and all(type(c).read_stream is not codecs.Codec.read_stream for c in with_suffix)


def test_every_detector_entry_describes_itself_and_the_buildable_ones_report_json_settings():
    """Each detector entry has a description and family, and a probe that says JSON or nothing; every one
    whose weights are here (the OpenCV-shipped ones, or what a probe found) reports JSON-able settings
    and one Detections per frame. Nothing is downloaded."""
    from vcm.detectors import registry as detector_registry
    from vcm.detectors.factory import create_detector

    frames = np.zeros((2, 3, 48, 64), np.uint8)
    built = 0
    for name in detector_registry.names():
        if name == "oracle":
            continue
        e = detector_registry.entry(name)
        assert e.description and e.family
        section = e.local() if e.local else None
        assert section is None or json.loads(json.dumps(section)) == section
        if section is None and e.family != "opencv":  # weights not here: building would fetch them
            continue
        det = create_detector(name, **({"weights": section["weights"]} if section and section.get("weights") else {}))
        json.dumps(det.settings())
        assert len(det.detect(frames, [0, 1])) == 2
        built += 1
    assert built >= 2  # the OpenCV-shipped detectors always build


def test_a_file_fingerprint_is_read_once_and_again_once_the_file_is_written(tmp_path, monkeypatch):
    """A CTC plan fingerprints one checkpoint or mask file for each of its points (and the encoder once more):
    the file is hashed once, and again as soon as it is rewritten, even in place at the same size."""
    import hashlib

    from vcm import provenance

    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 4096)
    reads = []
    real = provenance._hash_into
    monkeypatch.setattr(provenance, "_hash_into", lambda h, p: (reads.append(p), real(h, p)))
    first = provenance.file_fingerprint(path)
    assert provenance.file_fingerprint(path) == first and len(reads) == 1
    with open(path, "r+b") as f:
        f.write(b"b")
    second = provenance.file_fingerprint(path)
    assert second != first and len(reads) == 2
    assert second == hashlib.sha256(b"b" + b"a" * 4095).hexdigest()[:16]


def test_a_sam_checkpoints_fingerprint_is_read_once_per_plan(tmp_path, monkeypatch):
    """SA-NeRV points on SAM masks each name the weights (2.4 GB for vit_h): their head and tail are read once
    while the file stays, through the same cache as any file's fingerprint, and again once it is replaced."""
    from vcm.masks import sam

    path = tmp_path / "sam.pth"
    path.write_bytes(b"a" * 4096)
    reads = []
    real = sam._head_and_tail_digest
    monkeypatch.setattr(sam, "_head_and_tail_digest", lambda p: (reads.append(p), real(p))[1])
    first = sam.checkpoint_fingerprint(path)
    assert sam.checkpoint_fingerprint(path) == first and len(reads) == 1
    path.write_bytes(b"b" * 4096)
    assert sam.checkpoint_fingerprint(path) != first and len(reads) == 2
