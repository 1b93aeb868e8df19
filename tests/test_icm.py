import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import fails_after, moving_frames, run_blocked, run_main
from vcm.errors import VcmError
from vcm.icm.models import create, load_checkpoint
from vcm.icm.archs import TINY, TCMConfig
from vcm.icm.tcm import TCM


def test_full_tcm_parameter_counts_match_the_reference():
    assert sum(p.numel() for p in TCM(TCMConfig(N=128)).parameters()) == 76_568_148
    assert sum(p.numel() for p in TCM(TCMConfig(N=64)).parameters()) == 45_180_752


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("icm")
    torch.manual_seed(0)
    model = TCM(TINY)
    model.update(force=True)
    path = root / "tiny.pth.tar"
    torch.save({"arch": "tcm-tiny", "config": TINY.to_dict(), "state_dict": model.state_dict()}, path)
    return path


def test_encode_decode_equals_the_encoders_reconstruction(tmp_path, tiny_ckpt):
    from vcm.icm.codec import decode_icm_file, encode_frames
    from vcm.video import write_video

    frames = moving_frames(t=2, h=40, w=56)  # odd sizes: padded to 64 and cropped back
    model, _, _ = load_checkpoint(tiny_ckpt)
    _, recon, _ = encode_frames(model, frames, "cpu")
    write_video(tmp_path / "clip", frames, 25)
    proc = run_main("icm", "encode", tmp_path / "clip", "--checkpoint", tiny_ckpt, "--out", tmp_path / "c.icm", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["bytes"] == (tmp_path / "c.icm").stat().st_size and r["frames"] == 2
    info = run_main("info", tmp_path / "c.icm", "--json")  # what the header declares, no checkpoint needed
    assert info.returncode == 0, info.stderr
    declared = json.loads(info.stdout)
    assert (declared["frames"], declared["bytes"], declared["checkpoint"]) == (2, r["bytes"], "tiny.pth.tar")
    decoded, header = decode_icm_file(tmp_path / "c.icm", "cpu", checkpoint=tiny_ckpt)
    assert decoded.shape == frames.shape and header["arch"] == "tcm-tiny"
    assert np.array_equal(decoded, recon)
    # the encode reports the quality of what the file decodes to, as vcm compress does (it gave the rate alone)
    from vcm.quality import psnr_rgb, psnr_y

    assert r["psnr"] == pytest.approx(float(psnr_rgb(frames, decoded).mean()))
    assert r["psnr_y"] == pytest.approx(float(psnr_y(frames, decoded).mean())) and r["ms_ssim"] is None  # 56x40
    shown = run_main("icm", "encode", tmp_path / "clip", "--checkpoint", tiny_ckpt, "--out", tmp_path / "c2.icm")
    assert f"PSNR-Y         │ {r['psnr_y']:.2f} dB" in shown.stdout, shown.stdout
    # a raw output named for another size is refused; one named for none says how to read it back
    wrong = run_main("icm", "decode", tmp_path / "c.icm", "--checkpoint", tiny_ckpt, "--out", tmp_path / "d_28x20_25.yuv")
    assert wrong.returncode == 1 and "says 28x20, but the frames are 56x40" in wrong.stderr
    assert not (tmp_path / "d_28x20_25.yuv").exists()
    nameless = run_main("icm", "decode", tmp_path / "c.icm", "--checkpoint", tiny_ckpt, "--out", tmp_path / "d.yuv")
    assert nameless.returncode == 0 and "--size 56x40 --fps 30" in " ".join(nameless.stdout.split())  # a PNG folder is 30 fps
    # its table says what vcm decode's says, in words (it printed the JSON keys and Python lists)
    assert "2 (stream 0:2 of 2, source 0:2)" in nameless.stdout and "stream_frames" not in nameless.stdout
    assert "tcm-tiny (checkpoint tiny.pth.tar)" in nameless.stdout and "decode speed" in nameless.stdout
    import subprocess
    import sys

    piped = subprocess.run([sys.executable, "-m", "vcm", "icm", "decode", str(tmp_path / "c.icm"), "--checkpoint",
                            str(tiny_ckpt), "--out", "-"], capture_output=True)  # Y4M on stdout, the summary on stderr
    assert piped.returncode == 0 and piped.stdout.startswith(b"YUV4MPEG2 W56 H40 F30:1 ") and b"stdout" in piped.stderr
    from vcm.video import open_video
    from vcm.video.y4m import read_header, read_rgb

    (tmp_path / "piped.y4m").write_bytes(piped.stdout)
    assert np.array_equal(read_rgb(tmp_path / "piped.y4m", read_header(tmp_path / "piped.y4m"), 0, 2),
                          open_video(tmp_path / "d.yuv", "all", size=(56, 40), fps=30).frames_u8)
    data = bytearray((tmp_path / "c.icm").read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "bad.icm").write_bytes(bytes(data))
    bad = run_main("icm", "decode", tmp_path / "bad.icm", "--checkpoint", tiny_ckpt)
    assert bad.returncode == 1 and "checksum" in bad.stderr and "Traceback" not in bad.stderr


def test_some_frames_of_a_stream_decode_alone(tmp_path, tiny_ckpt, monkeypatch):
    """Intra frames: `vcm icm decode --frames A:B` and `vcm eval x.icm --frames` decode only those (every frame
    was decoded and the others dropped); the rest are parsed, and a range outside the stream is refused."""
    from vcm.icm.codec import decode_icm_file, encode_video
    from vcm.video import open_video
    from vcm.video.yuv import write_yuv420

    write_yuv420(tmp_path / "clip_56x40_25.yuv", moving_frames(t=3, h=40, w=56))
    encode_video(open_video(tmp_path / "clip_56x40_25.yuv", "all"), tiny_ckpt, tmp_path / "c.icm", "cpu")
    every, _ = decode_icm_file(tmp_path / "c.icm", "cpu", checkpoint=tiny_ckpt)
    calls = []
    original = TCM.decompress
    monkeypatch.setattr(TCM, "decompress", lambda self, *a: calls.append(1) or original(self, *a))
    some, _ = decode_icm_file(tmp_path / "c.icm", "cpu", checkpoint=tiny_ckpt, select=lambda header: range(1, 3))
    assert np.array_equal(some, every[1:3]) and len(calls) == 2
    proc = run_main("icm", "decode", tmp_path / "c.icm", "--checkpoint", tiny_ckpt, "--frames", "2:3",
                    "--out", tmp_path / "png", "--json")  # PNGs: the decoded RGB as it is
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert (r["frames"], r["stream_frames"], r["source_frames"]) == (1, [2, 3], [2, 3]) and len(calls) == 3
    assert np.array_equal(open_video(tmp_path / "png", "all").frames_u8, every[2:3])
    bad = run_main("icm", "decode", tmp_path / "c.icm", "--checkpoint", tiny_ckpt, "--frames", "2:9")
    assert bad.returncode == 1 and "--frames must be A:B with 0 <= A < B <= 3" in bad.stderr
    scored = run_main("eval", tmp_path / "c.icm", "--checkpoint", tiny_ckpt, "--original", tmp_path / "clip_56x40_25.yuv",
                      "--reference", "original", "--detector", "opencv-face", "--frames", "1:2", "--out", tmp_path / "e",
                      "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["frames"] == 1 and len(calls) == 4


def test_official_layout_with_module_prefix_loads(tmp_path):
    torch.manual_seed(1)
    model = TCM(TINY)
    state = {"module." + k: v for k, v in model.state_dict().items()}
    path = tmp_path / "icm_93.pth.tar"
    torch.save({"epoch": 10, "state_dict": state}, path)  # no arch or config: as published
    loaded, arch, config = load_checkpoint(path, arch="tcm-tiny")
    assert arch == "tcm-tiny" and config["N"] == TINY.N and config["M"] == TINY.M
    params = dict(loaded.named_parameters())
    for k, v in model.named_parameters():  # every weight (entropy tables are rebuilt by update())
        assert torch.equal(params[k], v), k


def _touch(path):
    Path(path).write_text("code from the checkpoint ran")
    return 0


class _RunsCodeWhenUnpickled:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return _touch, (str(self.path),)


def test_a_checkpoint_is_unpickled_only_as_tensors_and_numbers_unless_trusted(tmp_path, monkeypatch):
    """A .icm stream names its checkpoint and is decoded with the one beside it: the pair may come from anyone,
    and the checkpoint was unpickled in full (weights_only=False), running any code it named."""
    from collections import Counter

    torch.manual_seed(1)
    model = TCM(TINY)
    opt = torch.optim.Adam(model.parameters())
    official = {"epoch": 3, "state_dict": {"module." + k: v for k, v in model.state_dict().items()},
                "loss": np.float64(0.25), "optimizer": opt.state_dict(),
                "lr_scheduler": {"milestones": Counter({450: 1, 550: 1}), "gamma": 0.1, "last_epoch": 3}}
    torch.save(official, tmp_path / "icm_93.pth.tar")  # the official training script's layout: loads as it is
    assert load_checkpoint(tmp_path / "icm_93.pth.tar", arch="tcm-tiny")[1] == "tcm-tiny"
    marker = tmp_path / "ran.txt"
    torch.save({**official, "extra": _RunsCodeWhenUnpickled(marker)}, tmp_path / "hostile.pth.tar")
    monkeypatch.delenv("VCM_TRUST_CHECKPOINTS", raising=False)
    with pytest.raises(VcmError, match="holds Python objects beyond tensors and numbers .*VCM_TRUST_CHECKPOINTS=1"):
        load_checkpoint(tmp_path / "hostile.pth.tar", arch="tcm-tiny")
    assert not marker.exists()
    monkeypatch.setenv("VCM_TRUST_CHECKPOINTS", "1")  # the user's word that the file is theirs
    assert load_checkpoint(tmp_path / "hostile.pth.tar", arch="tcm-tiny")[1] == "tcm-tiny" and marker.exists()


def test_bad_checkpoints_are_one_line_errors(tmp_path, tiny_ckpt):
    with pytest.raises(VcmError, match="not a multiple of its attention head size"):
        TCMConfig(N=16)  # head sizes 8…32 cannot split 16 channels into 32-wide heads
    with pytest.raises(VcmError, match="icm_78.pth.tar"):
        load_checkpoint(tmp_path / "missing.pth.tar")
    other = create("mbt2018-mean", quality=1)
    torch.save({"state_dict": other.state_dict()}, tmp_path / "other.pth.tar")
    with pytest.raises(VcmError, match="not a TCM network|does not fit"):
        load_checkpoint(tmp_path / "other.pth.tar")
    frames_dir = tmp_path / "f"
    from vcm.video import write_video

    write_video(frames_dir, moving_frames(t=1, h=32, w=32), 25)
    proc = run_main("icm", "encode", frames_dir, "--checkpoint", tmp_path / "other.pth.tar", "--arch", "tcm")
    assert proc.returncode == 1 and proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1


def test_a_checkpoint_codes_as_the_architecture_it_records(tmp_path, tiny_ckpt):
    """A CTC sa-icm section without ``arch`` built every checkpoint as ``tcm``: vcm icm train's tcm-tiny ones coded
    streams labelled tcm (the report's codec misnamed), its cheng2020-attn ones failed to load in every point. An
    architecture named against the checkpoint's own was taken too (vcm icm encode --arch)."""
    from vcm import codecs
    from vcm.icm.stream_header import read_header
    from vcm.video import open_video, write_video

    sa_icm = codecs.get("sa-icm")
    [(_, point)] = sa_icm.points({"checkpoints": [str(tiny_ckpt)]}, {"name": "clip"})
    write_video(tmp_path / "clip", moving_frames(t=1, h=32, w=32), 25)
    video = open_video(tmp_path / "clip")
    coded = sa_icm.encode_decode({"workdir": str(tmp_path), "point": point}, video, "cpu")
    header, _ = read_header(Path(coded["bitstream"]).read_bytes())
    assert header["arch"] == "tcm-tiny" and coded["frames_u8"].shape == (1, 3, 32, 32)
    [(_, named)] = sa_icm.points({"checkpoints": [str(tiny_ckpt)], "arch": "tcm"}, {"name": "clip"})
    with pytest.raises(VcmError, match="tiny.pth.tar holds a tcm-tiny network, not tcm: an architecture is named "
                                       "only for a checkpoint that records none"):
        sa_icm.encode_decode({"workdir": str(tmp_path / "w"), "point": named}, video, "cpu")
    proc = run_main("icm", "encode", tmp_path / "clip", "--checkpoint", tiny_ckpt, "--arch", "tcm", "--out",
                    tmp_path / "c.icm")
    assert proc.returncode == 1 and "holds a tcm-tiny network, not tcm" in proc.stderr, proc.stderr
    assert not (tmp_path / "c.icm").exists()


@pytest.mark.parametrize("edit, said", [
    ({"config": [1, 1]}, "a TCM config has 6 stages"),
    ({"config": [100_000, 1, 1, 1, 1, 1]}, "TCM blocks per stage (0…32)"),
    ({"N": 8 * 4096 * 4}, "TCM N=131072 is outside 1…4096"),
])
def test_a_checkpoint_whose_config_no_tcm_has_is_refused_before_it_is_built(tmp_path, tiny_ckpt, edit, said):
    """The checkpoint's config is built before its weights are loaded: two stages where TCM has six were an IndexError
    traceback, 100,000 blocks in a stage ran for minutes, and only the allocator stopped 131,072 channels."""
    ckpt = torch.load(tiny_ckpt, weights_only=True)
    torch.save({**ckpt, "config": {**ckpt["config"], **edit}}, tmp_path / "edited.pth")
    with fails_after(60, "still building"), pytest.raises(VcmError, match=re.escape(said)):
        load_checkpoint(tmp_path / "edited.pth")


@pytest.mark.slow
def test_icm_train_lowers_the_masked_loss_and_resumes(tmp_path):
    from PIL import Image

    from vcm.masks.sam import build_tiny_sam

    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(3):
        Image.fromarray(moving_frames(t=1, h=80, w=96, seed=i)[0].transpose(1, 2, 0)).save(images / f"im{i}.png")
    torch.manual_seed(0)
    torch.save(build_tiny_sam().state_dict(), tmp_path / "sam.pth")
    args = ["icm", "train", "--images", images, "--val", images, "--sam-checkpoint", tmp_path / "sam.pth",
            "--sam-model", "tiny", "--alpha", "0.0", "--arch", "tcm-tiny", "--batch", "2", "--crop", "64",
            "--steps-per-epoch", "4", "--lr", "1e-3", "--out", tmp_path / "run", "--json", "--device", "cpu"]
    proc = run_main(*args, "--epochs", "3")
    assert proc.returncode == 0, proc.stderr
    hist = json.loads(proc.stdout)["history"]
    assert hist[-1]["loss"] < hist[0]["loss"] and "masked_mse" in hist[0]
    assert hist[-1]["val"]["bpp"] is not None and hist[-1]["val"]["psnr"] is not None
    assert len(list((tmp_path / "run" / "masks").glob("*.npy"))) == 3  # made once, cached
    again = run_main(*args, "--epochs", "4", "--resume")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["epochs"] == 4 and len(json.loads(again.stdout)["history"]) == 4
    # resumed on other images (one replaced: the same count, so the same steps) it went on as another codec
    kept_image = (images / "im1.png").read_bytes()
    Image.fromarray(moving_frames(t=1, h=80, w=96, seed=9)[0].transpose(1, 2, 0)).save(images / "im1.png")
    other = run_main(*args, "--epochs", "5", "--resume")
    assert other.returncode == 1 and "was trained on other images" in other.stderr, other.stderr[-500:]
    assert len(list((tmp_path / "run" / "masks").glob("*.npy"))) == 3  # refused before a mask was made for it
    (images / "im1.png").write_bytes(kept_image)
    # resumed with other SAM weights: the cached masks were used for seen images, the new weights for the rest
    torch.manual_seed(1)
    torch.save(build_tiny_sam().state_dict(), tmp_path / "sam.pth")
    swapped = run_main(*args, "--epochs", "5", "--resume")
    assert swapped.returncode == 1 and "were made with other SAM weights" in swapped.stderr, swapped.stderr[-500:]
    torch.manual_seed(0)
    torch.save(build_tiny_sam().state_dict(), tmp_path / "sam.pth")
    (tmp_path / "run" / "masks" / "made_with.json").write_text("{damaged")
    damaged = run_main(*args, "--epochs", "5", "--resume")
    assert damaged.returncode == 1 and "made_with.json cannot be read" in damaged.stderr, damaged.stderr[-500:]
    (tmp_path / "run" / "masks" / "made_with.json").unlink()  # a run from before the record: taken as it is
    # the record, or a cached mask, as a named pipe (waited on forever) or a mask cut short (padded with zeros: its
    # edges lost without a word): one line each, the run untouched
    os.mkfifo(tmp_path / "run" / "masks" / "made_with.json")
    with fails_after(60, "the record of the masks' weights was waited on"):
        piped = run_main(*args, "--epochs", "5", "--resume")
    assert piped.returncode == 1 and "made_with.json is not a regular file" in piped.stderr, piped.stderr[-500:]
    (tmp_path / "run" / "masks" / "made_with.json").unlink()
    cached = sorted((tmp_path / "run" / "masks").glob("*.npy"))[1]
    kept = cached.read_bytes()
    np.save(cached, np.load(cached)[:-1])
    short = run_main(*args, "--epochs", "5", "--resume")
    assert short.returncode == 1 and f"{cached} is a damaged cached edge mask" in short.stderr, short.stderr[-500:]
    cached.unlink()
    os.mkfifo(cached)
    with fails_after(60, "a cached mask was waited on"):
        piped = run_main(*args, "--epochs", "5", "--resume")
    assert piped.returncode == 1 and f"{cached} is not a regular file" in piped.stderr, piped.stderr[-500:]
    cached.unlink()
    cached.write_bytes(kept)
    refused = run_blocked(["torch", "compressai"], *args, "--epochs", "4")  # at once, before the libraries load
    assert refused.returncode == 1 and "--resume" in refused.stderr, refused.stderr[-500:]
    # resumed as another codec (another λ here), or with fewer epochs than done: refused, the run untouched
    other = run_main(*args, "--epochs", "5", "--resume", "--lambda", "0.5")
    assert other.returncode == 1 and "was trained with --lambda 0.05, now 0.5" in other.stderr
    shorter = run_main(*args, "--epochs", "2", "--resume")
    assert shorter.returncode == 1 and "has trained 4 epochs, more than the 2 now asked for" in shorter.stderr
    assert torch.load(tmp_path / "run" / "checkpoint.pth.tar", weights_only=True)["epoch"] == 4
    # the folder as the argument, as `vcm fit VIDEO` takes its video
    plain = run_main("icm", "train", images, "--masks", "none", "--arch", "tcm-tiny", "--batch", "2",
                     "--crop", "64", "--steps-per-epoch", "2", "--epochs", "1", "--out", tmp_path / "plain", "--json",
                     "--device", "cpu")
    assert plain.returncode == 0, plain.stderr
    assert "mse" in json.loads(plain.stdout)["history"][0]  # eq. (1): no SAM needed


def test_icm_train_takes_its_images_once_as_the_argument_or_with_images(tmp_path):
    neither = run_main("icm", "train", "--out", tmp_path / "run")
    assert neither.returncode == 1 and "needs a folder of training images: vcm icm train FOLDER (or --images" \
        in neither.stderr
    both = run_main("icm", "train", tmp_path / "a", "--images", tmp_path / "b", "--out", tmp_path / "run")
    assert both.returncode == 1 and "the training images are given twice" in both.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, message", [
    (["--crop", "48"], "--crop 48 must be a multiple of 64 for --arch tcm-tiny"),  # a reshape error in its windows
    (["--lambda", "-1"], "--lambda must be a positive number"),  # trained on
    (["--lr", "-1"], "--lr must be a positive number"),  # a ValueError from torch
    (["--alpha", "0.5"], "--alpha does not apply to --masks none"),  # SAM's threshold, ignored by the plain loss
    (["--sam-checkpoint", "sam.pth"], "--sam-checkpoint does not apply to --masks none"),
    (["--sam-model", "vit_b"], "--sam-model does not apply to --masks none"),  # it names the weights' model
    (["--arch", "tcm-huge"], "unknown codec architecture 'tcm-huge'"),
    (["--masks", "both"], "--masks must be sam or none"),
    (["--masks", "sam", "--sam-model", "vit_x"], "unknown SAM model 'vit_x'"),  # once it had made run/masks
])
def test_icm_train_refuses_values_no_training_can_use(tmp_path, option, message):
    """At once: torch and CompressAI (about ten seconds of imports) are not loaded to refuse an option."""
    from PIL import Image

    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(moving_frames(t=1, h=80, w=96)[0].transpose(1, 2, 0)).save(images / "im.png")
    proc = run_blocked(["torch", "compressai"], "icm", "train", "--images", images, "--masks", "none", "--arch",
                       "tcm-tiny", "--crop", "64", "--epochs", "1", "--out", tmp_path / "run", *option)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert not (tmp_path / "run").exists()


def test_icm_train_without_sams_weights_is_refused_and_leaves_no_run_folder(tmp_path):
    """--masks sam (the default) without --sam-checkpoint and no cached masks was refused once the run folder and
    its masks folder had been made, left behind empty."""
    from PIL import Image

    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(moving_frames(t=1, h=80, w=96)[0].transpose(1, 2, 0)).save(images / "im.png")
    proc = run_main("icm", "train", images, "--arch", "tcm-tiny", "--crop", "64", "--epochs", "1", "--out",
                    tmp_path / "run")
    assert proc.returncode == 1 and proc.stderr == ("error: --masks sam needs --sam-checkpoint PATH (or --masks none "
                                                    "for the plain loss)\n"), proc.stderr
    assert not (tmp_path / "run").exists()


def test_icm_train_never_replaces_a_summary_it_did_not_write(tmp_path):
    """`vcm icm train --out mydata` replaced the user's own mydata/train.json at the end of training."""
    from PIL import Image

    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(moving_frames(t=1, h=80, w=96)[0].transpose(1, 2, 0)).save(images / "im.png")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "train.json").write_text('{"mine": 1}')
    proc = run_blocked(["torch", "compressai"], "icm", "train", "--images", images, "--masks", "none", "--arch",
                       "tcm-tiny", "--crop", "64", "--epochs", "1", "--out", tmp_path / "mine")
    assert proc.returncode == 1 and "holds a train.json that no vcm icm train wrote" in proc.stderr, proc.stderr[-500:]
    resumed = run_blocked(["torch", "compressai"], "icm", "train", "--images", images, "--masks", "none", "--arch",
                          "tcm-tiny", "--crop", "64", "--epochs", "1", "--out", tmp_path / "new", "--resume")
    assert resumed.returncode == 1 and "nothing to resume" in resumed.stderr, resumed.stderr[-500:]
    assert (tmp_path / "mine" / "train.json").read_text() == '{"mine": 1}'
    assert not (tmp_path / "mine" / "checkpoint.pth.tar").exists()


def test_sa_icm_is_a_ctc_codec(tmp_path, tiny_ckpt, carphone):
    cfg = tmp_path / "icm.yaml"
    cfg.write_text(f"""
sequences:
  - {{name: carphone, path: {carphone}, frames: "0:2"}}
device: cpu
detector: null
codecs:
  sa-icm: {{checkpoints: [{tiny_ckpt}]}}
""")
    proc = run_main("ctc", "run", cfg, "--out", tmp_path / "out", "--json")
    assert proc.returncode == 0, proc.stderr
    row = json.loads((tmp_path / "out" / "points" / "carphone" / "sa-icm" / "tiny" / "result.json").read_text())
    assert row["status"] == "ok" and row["bytes"] > 0 and row["psnr"] > 0


def test_sa_icm_checkpoints_with_one_file_name_in_two_folders_are_two_points():
    """q1/model.pth and q2/model.pth were one point id, refused as 'the same point twice' (with a hint about
    rd_steps, a NeRV key); they are two rates of one codec, as trained checkpoints are often laid out."""
    from vcm import codecs

    pts = codecs.get("sa-icm").points({"checkpoints": ["q1/model.pth", "q2/model.pth", "icm_78.pth.tar"]}, {})
    assert [pid for pid, _ in pts] == ["q1_model", "q2_model", "icm_78"]
    assert [p["checkpoint"] for _, p in pts] == ["q1/model.pth", "q2/model.pth", "icm_78.pth.tar"]


def test_a_stopped_icm_encode_keeps_its_coded_frames_and_continues_to_the_same_bytes(tmp_path, tiny_ckpt, monkeypatch):
    """Ctrl-C while the third of five frames is coded keeps two; the same encode then codes only the three left
    and writes the bytes of an encode never stopped. Kept frames of another checkpoint are never used."""
    from vcm.icm.codec import encode_video
    from vcm.video import open_video, write_video

    write_video(tmp_path / "clip", moving_frames(t=5, h=40, w=56), 25)
    video = open_video(tmp_path / "clip")
    calls, real = [], TCM.compress

    def compress(self, x):
        calls.append(1)
        if len(calls) == stop_at:
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(TCM, "compress", compress)
    stop_at = 0
    encode_video(video, tiny_ckpt, tmp_path / "whole.icm", "cpu")
    stop_at, calls[:] = 3, []
    with pytest.raises(KeyboardInterrupt):
        encode_video(video, tiny_ckpt, tmp_path / "c.icm", "cpu")
    assert (tmp_path / "c.icm.partial.pt").is_file() and not (tmp_path / "c.icm").exists()
    stop_at, calls[:] = 0, []
    r = encode_video(video, tiny_ckpt, tmp_path / "c.icm", "cpu")
    assert len(calls) == 3 and not (tmp_path / "c.icm.partial.pt").exists()
    assert (r["frames"], r["frames_coded"], r["frames_continued"]) == (5, 3, 2)  # its speed is over the 3 it coded
    assert (tmp_path / "c.icm").read_bytes() == (tmp_path / "whole.icm").read_bytes()
    # frames kept with another checkpoint: coded again from the first
    other = tmp_path / "other.pth.tar"
    other.write_bytes(tiny_ckpt.read_bytes() + b"\0")  # same network, other bytes
    stop_at, calls[:] = 3, []
    with pytest.raises(KeyboardInterrupt):
        encode_video(video, tiny_ckpt, tmp_path / "d.icm", "cpu")
    stop_at, calls[:] = 0, []
    encode_video(video, other, tmp_path / "d.icm", "cpu")
    assert len(calls) == 5


def test_icm_training_that_diverges_stops_with_one_line_and_saves_nothing(tmp_path):
    """At lr 1e30 the codec's weights turned NaN in the first epoch and training went on, saving NaN
    checkpoints and a summary with exit code 0."""
    from PIL import Image

    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(2):
        Image.fromarray(moving_frames(t=1, h=80, w=96, seed=i)[0].transpose(1, 2, 0)).save(images / f"im{i}.png")
    proc = run_main("icm", "train", "--images", images, "--masks", "none", "--arch", "tcm-tiny", "--batch", "2",
                    "--crop", "64", "--steps-per-epoch", "2", "--lr", "1e30", "--epochs", "2", "--out", tmp_path / "run",
                    "--device", "cpu")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert "error: training diverged: the loss was nan in epoch 1; lower the learning rate" in proc.stderr
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_icm_training_stopped_mid_epoch_resumes_to_the_same_codec(tmp_path):
    """Ctrl-C (or SIGTERM) in `vcm icm train` lost the epoch in progress: checkpoints were written only at the
    end of an epoch, and a resumed run began the next one from the seed's random state, not the run's. A stop now
    saves after the step in progress, with where it was in its epoch, and the resumed run ends where an
    uninterrupted one does, bit for bit."""
    from PIL import Image

    from vcm.icm.train import train
    from vcm.icm.train_config import IcmTrainConfig

    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(2):
        Image.fromarray(moving_frames(t=1, h=80, w=96, seed=i)[0].transpose(1, 2, 0)).save(images / f"im{i}.png")
    cfg = IcmTrainConfig(arch="tcm-tiny", lmbda=0.05, epochs=2, batch=2, crop=64, lr=1e-3, masks="none",
                         steps_per_epoch=3)
    cpu = torch.device("cpu")
    whole = train(images, tmp_path / "whole", cfg, cpu)
    stopped = train(images, tmp_path / "parts", cfg, cpu, should_stop=lambda step: step == 4)  # epoch 2, its 1st step
    assert stopped["stopped"] == {"epoch": 2, "step": 1, "steps": 3}
    assert not (tmp_path / "parts" / "train.json").exists()
    info = run_main("info", tmp_path / "parts", "--json")  # it was "not a run folder"
    assert info.returncode == 0, info.stderr[-500:]
    said = json.loads(info.stdout)
    assert said["kind"] == "icm run" and said["stopped"] == {"epoch": 2, "step": 1, "steps": 3}
    assert said["epochs"] == 1 and not said["finished"] and said["loss"] == whole["history"][0]["loss"]
    resumed = train(images, tmp_path / "parts", cfg, cpu, resume=True)
    assert resumed["history"] == whole["history"] and resumed["epochs"] == 2
    from vcm.cli.icm_info import describe_icm_run

    assert describe_icm_run(tmp_path / "parts")["finished"] and describe_icm_run(tmp_path / "parts")["stopped"] is None
    a = torch.load(tmp_path / "whole" / "checkpoint.pth.tar", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "parts" / "checkpoint.pth.tar", weights_only=False)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # stopped between epochs: the next one starts from the run's random state too
    again = train(images, tmp_path / "epochs", cfg, cpu, should_stop=lambda step: step == 3)
    assert again["stopped"] == {"epoch": 2, "step": 0, "steps": 3}
    assert train(images, tmp_path / "epochs", cfg, cpu, resume=True)["history"] == whole["history"]


def test_a_second_icm_training_into_a_folder_being_trained_is_refused(tmp_path):
    """Two `vcm icm train --resume` into one folder (two terminals, a resubmitted job) both trained, each saving
    its checkpoints over the other's. The folder is locked while one trains."""
    import os

    from vcm.fsutil import run_lock
    from vcm.icm.train import train
    from vcm.icm.train_config import IcmTrainConfig

    cfg = IcmTrainConfig(arch="tcm-tiny", epochs=1, batch=2, crop=64, masks="none")
    with run_lock(tmp_path / "run", who="vcm icm train"):  # this process stands for the first training
        with pytest.raises(VcmError, match=f"being written by another vcm icm train \\(pid {os.getpid()}\\)"):
            train(tmp_path / "no-images", tmp_path / "run", cfg, torch.device("cpu"))
        torch.save({"arch": "tcm-tiny", "epoch": 0, "history": [], "train": {"epochs": 1, "lmbda": 0.05, "masks": "none"}},
                   tmp_path / "run" / "checkpoint.pth.tar")
        from vcm.cli.icm_info import describe_icm_run, icm_run_rows

        said = describe_icm_run(tmp_path / "run")  # vcm info names the training that runs in it
        assert said["training_pid"] == os.getpid()
        assert f"training now (pid {os.getpid()})" in dict(icm_run_rows(said))["trained"]


def test_training_images_that_would_not_fit_in_memory_are_refused_before_any_is_decoded(tmp_path, monkeypatch):
    """Every training image is held decoded for the whole training: a folder larger than the machine's memory was
    read until the kernel ended the process. The sizes in the images' headers are counted against what is free."""
    from PIL import Image

    import vcm.icm.train as icm_train
    import vcm.memory as memory

    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(3):
        Image.fromarray(moving_frames(t=1, h=80, w=96, seed=i)[0].transpose(1, 2, 0)).save(images / f"im{i}.png")
    decoded = []
    monkeypatch.setattr(icm_train, "_read_image", lambda p, real=icm_train._read_image: decoded.append(p) or real(p))
    monkeypatch.setattr(memory, "free_host_bytes", lambda: 3 * 4 * 96 * 80 - 1)
    args = ["icm", "train", images, "--masks", "none", "--arch", "tcm-tiny", "--batch", "2", "--crop", "64",
            "--steps-per-epoch", "1", "--epochs", "1", "--device", "cpu"]
    proc = run_main(*args, "--out", tmp_path / "run")
    said = "the 3 training and validation images, decoded with their edge masks, take 90.0 KiB"
    assert proc.returncode == 1 and said in proc.stderr, proc.stderr[-500:]
    assert "train on fewer or smaller images" in proc.stderr and not decoded and not (tmp_path / "run").exists()
    monkeypatch.setattr(memory, "free_host_bytes", lambda: 3 * 4 * 96 * 80)  # just enough: trains
    assert run_main(*args, "--out", tmp_path / "run").returncode == 0 and len(decoded) == 3


def test_validation_measures_each_whole_image_as_the_encoder_pads_it():
    """Validation cropped each image to the model's multiple of 64: a 70x70 image was measured on its top-left 64x64
    (a change in its last rows went unseen), and a 40x40 one was left out, leaving the figures empty."""
    from vcm.icm.models import create
    from vcm.icm.train import validate

    torch.manual_seed(0)
    model = create("tcm-tiny")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, 70, 70), dtype=np.uint8)
    base = validate(model, [image], [None], "cpu")
    changed = image.copy()
    changed[:, 64:] = 255 - changed[:, 64:]
    after = validate(model, [changed], [None], "cpu")
    assert base["psnr"] is not None and after["psnr"] != base["psnr"] and after["bpp"] != base["bpp"]
    small = validate(model, [rng.integers(0, 256, (3, 40, 40), dtype=np.uint8)], [np.ones((40, 40), bool)], "cpu")
    assert all(isinstance(small[k], float) and math.isfinite(small[k]) for k in ("bpp", "psnr", "masked_psnr"))


def test_an_encode_without_out_writes_into_the_working_folder(tmp_path, tiny_ckpt, monkeypatch):
    """The default stream went beside the input: into a read-only dataset's folder (refused) or, for sample:NAME,
    into the installed package's data, without a word."""
    from vcm.video import write_video

    data, work = tmp_path / "data", tmp_path / "work"
    work.mkdir()
    write_video(data / "clip.y4m", moving_frames(t=2, h=32, w=32), 25)
    monkeypatch.chdir(work)
    proc = run_main("icm", "encode", data / "clip.y4m", "--checkpoint", tiny_ckpt, "--json")
    assert proc.returncode == 0, proc.stderr
    assert (work / "clip.icm").is_file() and not (data / "clip.icm").exists()
    assert Path(json.loads(proc.stdout)["bitstream"]).resolve() == (work / "clip.icm").resolve()
