import json
import re

import numpy as np
import pytest
import torch

from tests.conftest import run_cli, run_main
from vcm.errors import VcmError
from vcm.masks.edges import edge_mask, edges_from_labels, label_map
from vcm.masks.sam import build_tiny_sam, load_sam
from vcm.masks.store import load_masks, load_masks_for_video, save_masks
from vcm.video import open_video

LOOSE = """
alpha_param: pred_iou_thresh
generator:
  points_per_side: 4
  points_per_batch: 16
  stability_score_thresh: 0.0
edges:
  dilation: 0
"""


def test_edges_of_a_square_are_its_boundary():
    seg = np.zeros((20, 20), bool)
    seg[5:15, 6:16] = True
    edges = edge_mask([seg], (20, 20))
    ys, xs = np.nonzero(edges)
    # Canny marks the step between label 0 and 1: on or right next to the square's border.
    assert edges.sum() > 0
    assert ys.min() >= 4 and ys.max() <= 15 and xs.min() >= 5 and xs.max() <= 16
    assert not edges[8:12, 9:13].any()  # nothing inside
    assert not edges[:3].any() and not edges[:, :3].any()  # nothing far outside
    dilated = edge_mask([seg], (20, 20), dilation=1)
    assert dilated.sum() > edges.sum() and np.all(dilated[edges])


def test_overlapping_masks_smallest_on_top():
    big = np.zeros((16, 16), bool)
    big[2:14, 2:14] = True
    small = np.zeros((16, 16), bool)
    small[6:10, 6:10] = True
    labels = label_map([small, big])  # order of the list does not matter, area does
    assert labels[7, 7] != labels[3, 3] and labels[3, 3] != 0 and labels[0, 0] == 0
    edges = edges_from_labels(labels)
    assert edges[5:11, 5:11].any()  # the small square's outline is kept inside the big one
    assert np.array_equal(edge_mask([], (4, 5)), np.zeros((4, 5), bool))


def test_dilation_is_a_square_and_any_width_past_the_frame_is_the_whole_frame():
    """`--dilation 1000000` allocated a (2d+1)² kernel (4 TB) and failed on memory; past the frame's size
    every dilation gives the same mask, the frame covered from any edge pixel."""
    from vcm.masks.edges import dilate

    mask = np.zeros((12, 20), bool)
    mask[3, 4] = True
    wide = dilate(mask, 2)
    assert wide.sum() == 25 and wide[1:6, 2:7].all()  # a 5×5 square around the pixel
    assert dilate(mask, 10**6).all() and np.array_equal(dilate(mask, 10**6), dilate(mask, 20))
    assert not dilate(np.zeros((12, 20), bool), 10**6).any() and dilate(mask, 0) is mask


@pytest.fixture(scope="module")
def tiny_sam(tmp_path_factory):
    path = tmp_path_factory.mktemp("sam") / "tiny_sam.pth"
    torch.manual_seed(0)
    torch.save(build_tiny_sam().state_dict(), path)
    return path


def test_missing_and_wrong_checkpoints_are_clear(tmp_path, tiny_sam):
    with pytest.raises(VcmError, match=r"sam_vit_h_4b8939\.pth.*dl\.fbaipublicfiles\.com"):
        load_sam("vit_h", tmp_path / "nope.pth", "cpu")
    with pytest.raises(VcmError, match="does not hold SAM vit_b weights"):
        load_sam("vit_b", tiny_sam, "cpu")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(VcmError, match="cannot be read"):
        load_sam("tiny", junk, "cpu")


def test_vcm_masks_with_a_missing_checkpoint_is_one_line(tmp_path, carphone):
    """The weights' fingerprint is taken before SAM loads: a missing file was a FileNotFoundError traceback."""
    r = run_main("masks", carphone, "--sam-checkpoint", tmp_path / "nope.pth", "--frames", "0:2", "--out", tmp_path / "m.npz")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "SAM checkpoint" in r.stderr and "sam_vit_h_4b8939.pth" in r.stderr and not (tmp_path / "m.npz").exists()


def test_vcm_masks_with_tiny_sam_writes_resumes_and_validates(tmp_path, tiny_sam, carphone):
    cfg = tmp_path / "loose.yaml"
    cfg.write_text(LOOSE)
    out = tmp_path / "m.npz"
    args = ["masks", carphone, "--sam-checkpoint", tiny_sam, "--sam-model", "tiny", "--frames", "0:3",
            "--alpha", "0.0", "--config", cfg, "--out", out, "--json", "--device", "cpu"]
    # Simulate an interrupted run: one frame already done in the partial folder.
    from vcm.masks import make

    video = open_video(carphone, "0:3")
    with pytest.raises(VcmError, match="stopped"):
        from vcm.masks.sam import load_settings

        make.make_masks(video, "tiny", tiny_sam, [0.0], load_settings(cfg), out, "cpu", should_stop=lambda i: i == 1)
    assert (tmp_path / "m.npz.partial" / "frame_000000.npy").exists() and not out.exists()
    info = run_main("info", out, "--json")  # how far the stopped run got
    assert info.returncode == 0 and json.loads(info.stdout)["stopped"] == {"made": 1, "frames": 3}, info.stderr
    meta_file = tmp_path / "m.npz.partial" / "meta.json"
    kept = meta_file.read_text()
    for span in (["0", 3], [0, 2.7]):  # int() read them as frames 0:3 and 0:2
        meta_file.write_text(json.dumps({**json.loads(kept), "source_frames": span}))
        edited = run_main("info", out)
        assert edited.returncode == 1 and "m.npz.partial/ is not readable" in edited.stderr, edited.stderr
    meta_file.write_text(kept)
    proc = run_main(*args)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)[0]
    assert result["frames"] == 3 and result["edge_fraction"] > 0
    assert result["reused_frames"] == 1
    masks, meta = load_masks(out)
    assert masks.shape == (3, 1, 144, 176) and masks.dtype == np.uint8 and set(np.unique(masks)) <= {0, 1}
    assert meta["alpha"] == 0.0 and meta["sam_model"] == "tiny" and meta["source_frames"] == [0, 3]
    assert not (tmp_path / "m.npz.partial").exists()
    assert load_masks_for_video(out, video).shape[0] == 3
    # the same command again keeps the finished file (SAM takes minutes a frame on a CPU: it was all made again);
    # another α into it is refused, unless --overwrite
    made = out.read_bytes()
    proc = run_main(*args)
    assert proc.returncode == 0 and json.loads(proc.stdout)[0]["cached"] and out.read_bytes() == made, proc.stderr
    other = [a if a != "0.0" else "0.5" for a in args]
    proc = run_main(*other)
    assert proc.returncode == 1 and "m.npz holds edge masks made with other α; pass --overwrite" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and out.read_bytes() == made
    proc = run_main(*other, "--overwrite")
    assert proc.returncode == 0 and load_masks(out)[1]["alpha"] == 0.5, proc.stderr
    save_masks(out, masks[:, 0].astype(bool), meta)  # the α 0 file again, for what follows
    info = run_main("info", out)  # what the file holds, without a video to probe
    assert info.returncode == 0 and "sam (tiny), α 0" in info.stdout and "source frames 0:3" in info.stdout, info.stderr
    assert f"{masks.mean() * 100:.2f} %" in info.stdout
    damaged = tmp_path / "d.npz"
    with np.load(out) as z:
        np.savez(damaged, packed=z["packed"][:2], meta=z["meta"])
    info = run_main("info", damaged)
    assert info.returncode == 1 and "is damaged (mask array does not match its metadata)" in info.stderr
    assert len(info.stderr.strip().splitlines()) == 1
    # a consistent file whose masks would not fit the memory budget is refused before they are read
    big = tmp_path / "big.npz"
    save_masks(big, np.zeros((40, 480, 640), bool), {**meta, "source_frames": [0, 40]})
    assert load_masks(big)[0].shape == (40, 1, 480, 640)
    info = run_main("info", big, env={"VCM_MEMORY_BUDGET": "8M"})
    assert info.returncode == 1 and "declares 40 masks of 640x480, which would need 13.2 MiB" in info.stderr, info.stderr
    with pytest.raises(VcmError, match="source frames"):
        load_masks_for_video(out, open_video(carphone, "1:4"))


@pytest.mark.slow
def test_fit_sa_nerv_trains_on_masks_and_refuses_mismatches(tmp_path, tiny_sam, carphone):
    cfg = tmp_path / "loose.yaml"
    cfg.write_text(LOOSE)
    masks = tmp_path / "m.npz"
    assert run_main("masks", carphone, "--sam-checkpoint", tiny_sam, "--sam-model", "tiny", "--frames", "0:4",
                    "--alpha", "0.0", "--config", cfg, "--out", masks).returncode == 0
    fit = run_main("fit", carphone, "--frames", "0:4", "--loss", "sa-nerv", "--masks", masks, "--preset", "nerv-xs",
                   "--params", "20k", "--epochs", "30", "--batch", "2", "--lr", "5e-3", "--out", tmp_path / "run",
                   "--json", "--device", "cpu")
    assert fit.returncode == 0, fit.stderr
    hist = json.loads(fit.stdout)["history"]
    assert hist[-1]["loss"] < 0.7 * hist[0]["loss"]  # measured: 0.457 → 0.239
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["loss"] == "sa-nerv" and config["masks"]["alpha"] == 0.0
    wrong = run_main("fit", carphone, "--frames", "1:5", "--loss", "sa-nerv", "--masks", masks, "--out", tmp_path / "r2")
    assert wrong.returncode == 1 and "source frames" in wrong.stderr and "Traceback" not in wrong.stderr
    none = run_main("fit", carphone, "--frames", "0:4", "--loss", "sa-nerv", "--out", tmp_path / "r3")
    assert none.returncode == 1 and "--masks" in none.stderr
    unused = run_main("fit", carphone, "--frames", "0:4", "--masks", masks, "--out", tmp_path / "r4")  # the plain loss
    assert unused.returncode == 1 and "only the SA-NeRV loss uses" in unused.stderr and not (tmp_path / "r4").exists()


# ------------------------------------------------------------------ mask sources without SAM's weights


def test_canny_and_box_masks_have_the_frame_shape_and_mark_what_they_say(carphone):
    from vcm.masks.sources import box_mask, canny_edges

    video = open_video(carphone, "0:2")
    frame = video.frames_u8[0]
    edges = canny_edges(frame)
    assert edges.shape == (video.height, video.width) and edges.dtype == bool and 0.01 < edges.mean() < 0.5
    assert not canny_edges(np.full_like(frame, 128)).any()  # a flat frame has no edges
    outline = box_mask(np.array([[10, 20, 50, 60]]), (video.height, video.width))
    assert outline.sum() == 2 * (40 + 40) - 4 and outline[20, 10:50].all() and not outline[21:59, 11:49].any()
    filled = box_mask(np.array([[10, 20, 50, 60]]), (video.height, video.width), fill=True)
    assert filled.sum() == 40 * 40
    assert box_mask(np.array([[-5, -5, 1000, 1000]]), (video.height, video.width)).any()  # clipped, not an error


@pytest.mark.parametrize("source", ["canny", "boxes:opencv-face"])
def test_vcm_masks_from_a_source_feed_the_sa_nerv_loss(tmp_path, carphone, source):
    from vcm.nerv.sa_loss import sa_nerv_loss

    out = tmp_path / "m.npz"
    proc = run_main("masks", carphone, "--source", source, "--frames", "0:4", "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    masks, meta = load_masks(out)
    video = open_video(carphone, "0:4")
    assert masks.shape == (4, 1, video.height, video.width) and meta["source"] == source and masks.any()
    assert np.array_equal(load_masks_for_video(out, video), masks)
    x = torch.from_numpy(video.frames_u8).float() / 255
    loss = sa_nerv_loss(x * 0.9, x, torch.from_numpy(masks).float())
    assert torch.isfinite(loss) and loss > 0


def test_a_box_sources_detector_runs_on_the_device_asked_for(tmp_path, carphone, monkeypatch):
    """vcm masks --source boxes:DETECTOR --device D (and a fit's --mask-source) built the detector on the CPU
    whatever D was."""
    from vcm.detectors import factory

    built = []
    real = factory.create_detector
    monkeypatch.setattr(factory, "create_detector", lambda name, **kw: built.append(kw.get("device")) or real(name, **kw))
    proc = run_main("masks", carphone, "--source", "boxes:opencv-face", "--frames", "0:2", "--device", "cpu", "--out",
                    tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    assert [str(d) for d in built] == ["cpu"]


def test_vcm_masks_never_writes_over_its_input_or_a_file_of_another_kind(tmp_path):
    """`--out clip.yuv` replaced the input video with the masks, and `--out s.nerv` a stream."""
    from tests.conftest import moving_frames
    from vcm.video.yuv import write_yuv420

    clip = tmp_path / "clip_44x36_25.yuv"
    write_yuv420(clip, moving_frames())
    stream = tmp_path / "s.nerv"
    stream.write_bytes(b"stream")
    before = clip.read_bytes()
    for out, message in ((clip, "must end in .npz"), (stream, "must end in .npz"),
                         (tmp_path / "clip_44x36_25.npz", None)):
        proc = run_main("masks", clip, "--source", "canny", "--out", out)
        if message is None:
            assert proc.returncode == 0, proc.stderr
        else:
            assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert clip.read_bytes() == before and stream.read_bytes() == b"stream"
    # an .npz that is not a mask file (the user's own arrays) is refused too; a mask file is made again
    np.savez(tmp_path / "mine.npz", a=np.arange(3))
    theirs = (tmp_path / "mine.npz").read_bytes()
    proc = run_main("masks", clip, "--source", "canny", "--out", tmp_path / "mine.npz")
    assert proc.returncode == 1 and "exists and is not a vcm edge-mask file" in proc.stderr
    assert (tmp_path / "mine.npz").read_bytes() == theirs
    mask_file = tmp_path / "clip_44x36_25.npz"  # made above: the same command keeps it, other settings are refused
    made = mask_file.read_bytes()
    proc = run_main("masks", clip, "--source", "canny", "--out", mask_file)
    assert proc.returncode == 0 and "cached" in proc.stdout and mask_file.read_bytes() == made, proc.stderr
    proc = run_main("masks", clip, "--source", "canny", "--dilation", "1", "--out", mask_file)
    assert proc.returncode == 1 and "made with other settings; pass --overwrite" in proc.stderr
    proc = run_main("masks", clip, "--source", "canny", "--dilation", "1", "--out", mask_file, "--overwrite")
    assert proc.returncode == 0 and load_masks(mask_file)[1]["settings"]["dilation"] == 1, proc.stderr
    from vcm.masks.make import make_masks
    from vcm.masks.sam import load_settings
    from vcm.video import open_video

    with pytest.raises(VcmError, match="exists and is not a vcm edge-mask file"):  # before SAM is even loaded
        make_masks(open_video(clip), "tiny", tmp_path / "no-weights.pth", [0.5], load_settings(), tmp_path / "mine.npz",
                   torch.device("cpu"))
    assert (tmp_path / "mine.npz").read_bytes() == theirs


@pytest.mark.parametrize("source, option", [("canny", ["--alpha", "0.5"]), ("boxes:opencv-face", ["--alpha", "0.5"]),
                                            ("canny", ["--config", "x.yaml"]), ("canny", ["--fill"]),
                                            ("sam", ["--fill"]), ("canny", ["--sam-model", "vit_b"]),
                                            ("canny", ["--device", "cuda"])])  # Canny runs on the CPU
def test_vcm_masks_refuses_an_option_its_source_does_not_use(tmp_path, source, option):
    """`--source canny --alpha 2` used to make Canny masks without a word about α."""
    from tests.conftest import moving_frames
    from vcm.video.yuv import write_yuv420

    clip = tmp_path / "clip_44x36_25.yuv"
    write_yuv420(clip, moving_frames())
    proc = run_main("masks", clip, "--source", source, *option, "--out", tmp_path / "m.npz")
    assert proc.returncode == 1 and f"{option[0]} does not apply to --source {source}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "m.npz").exists()


def test_edge_psnr_measures_the_masks_pixels_alone():
    """PSNR over R, G, B on each frame's edge pixels; a frame without one has none, and the clip's figure is the
    mean over the frames that have them."""
    from vcm.quality import edge_psnr, summarize

    ref = np.full((3, 3, 8, 8), 100, np.uint8)
    test = ref.copy()
    test[:, :, :, 4:] = 110  # every frame off by 10 on its right half
    masks = np.zeros((3, 1, 8, 8), np.uint8)
    masks[0, 0, :, :4] = 1  # frame 0: edges on the exact half; frame 1: on the wrong half; frame 2: none
    masks[1, 0, :, 4:] = 1
    got = edge_psnr(ref, test, masks)
    assert got[0] == 100.0 and got[1] == pytest.approx(10 * np.log10(255 ** 2 / 100)) and np.isnan(got[2])
    figures = summarize(ref, test, masks)
    assert figures["edge_psnr"] == pytest.approx((got[0] + got[1]) / 2) and "edge_psnr" not in summarize(ref, test)
    assert summarize(ref, test, np.zeros_like(masks))["edge_psnr"] is None


def test_fit_sa_nerv_makes_its_masks_from_a_source_without_sam(tmp_path, carphone):
    fit = run_main("fit", carphone, "--frames", "0:4", "--loss", "sa-nerv", "--mask-source", "canny", "--preset", "nerv-xs",
                   "--params", "20k", "--epochs", "10", "--batch", "2", "--out", tmp_path / "run", "--json", "--device", "cpu")
    assert fit.returncode == 0, fit.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["loss"] == "sa-nerv" and config["masks"]["source"] == "canny"
    assert len(list((tmp_path / "run").glob("*_0-4_canny.npz"))) == 1  # cached beside the run, as SAM's masks are
    # the fit, its streams and `vcm info` measure the pixels SA-NeRV's loss weighs as well as the whole frame
    edges = json.loads(fit.stdout)["edge_psnr"]
    assert isinstance(edges, float) and abs(edges - json.loads(fit.stdout)["psnr"]) > 0.01
    coded = run_main("compress", tmp_path / "run", "--lambda", "1", "--rd-steps", "2", "--json", "--device", "cpu")
    assert coded.returncode == 0 and isinstance(json.loads(coded.stdout)["edge_psnr"], float), coded.stderr
    info = run_cli("info", tmp_path / "run", cwd=tmp_path, env={"COLUMNS": "250"})
    assert f"PSNR on edges {edges:.2f} dB" in info.stdout, info.stdout
    bad = run_main("fit", carphone, "--frames", "0:4", "--loss", "sa-nerv", "--mask-source", "sobel", "--out", tmp_path / "r2")
    assert bad.returncode == 1 and "mask source 'sobel'" in bad.stderr and "Traceback" not in bad.stderr


def test_an_sa_nerv_fit_whose_masks_mark_nothing_says_so(tmp_path, carphone):
    """Masks that mark no pixel (a box detector that found nothing, Canny on flat frames) make eq. (6)'s masked term
    zero: the fit is the plain one, and it ran as SA-NeRV without a word."""
    from vcm.video.yuv import write_yuv420

    write_yuv420(tmp_path / "Flat_32x24_25.yuv", np.full((3, 3, 24, 32), 90, np.uint8))
    args = ("--loss", "sa-nerv", "--mask-source", "canny", "--preset", "hinerv-demo", "--steps", "1")
    flat = run_main("fit", tmp_path / "Flat_32x24_25.yuv", *args, "--out", tmp_path / "flat")
    assert flat.returncode == 0, flat.stderr[-500:]
    said = " ".join((flat.stdout + flat.stderr).split())
    assert "mark no pixel in any of these 3 frames: the SA-NeRV loss adds nothing to the plain loss" in said
    edged = run_main("fit", carphone, "--frames", "0:2", *args, "--out", tmp_path / "edged")
    assert edged.returncode == 0 and "mark no pixel" not in edged.stdout + edged.stderr


@pytest.mark.parametrize("text, message", [
    ("generator: 3\n", "generator must be a mapping of SAM generator option: value, got 3"),  # a TypeError
    ("edges: {dilation: x}\n", "edges: dilation must be a whole number of pixels ≥ 0, got 'x'"),  # a ValueError
    ("generator: {points_per_side: x}\n", "generator: points_per_side must be a whole number, got 'x'"),
    ("generator: {points_per_side: null}\n", "points_per_side must be a whole number, got None"),
    ("generator: {crop_n_layers: 1.5}\n", "generator: crop_n_layers must be a whole number, got 1.5"),
    ("generator: {pred_iou_thresh: high}\n", "generator: pred_iou_thresh must be a number, got 'high'"),
])
def test_a_masks_config_with_a_value_sam_cannot_take_is_one_line_before_sam_loads(tmp_path, text, message):
    """Each failed inside SAM after its weights had loaded, or was a traceback while reading the file."""
    from vcm.masks.sam import load_settings

    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(VcmError, match=re.escape(message)):
        load_settings(path)
    assert load_settings(None).generator["points_per_side"] == 32  # the shipped config passes


def test_a_runs_sam_masks_are_reused_only_for_the_same_weights_and_settings(tmp_path, tiny_sam, carphone):
    """``vcm fit --sam-checkpoint`` keeps the masks it makes in the run's folder; another checkpoint at a resume
    went on with the old masks without a word. Now the same inputs reuse them and other ones are refused."""
    from vcm.masks.provide import masks_for_fit

    video = open_video(carphone, "0:2")
    cfg = tmp_path / "loose.yaml"
    cfg.write_text(LOOSE)
    args = dict(masks=None, alpha=0.0, run_dir=tmp_path / "run", device="cpu", sam_model="tiny", settings_path=cfg)
    first, meta = masks_for_fit(video, sam_checkpoint=tiny_sam, **args)
    made = tmp_path / "run" / "masks_tiny_a0.npz"
    assert made.is_file() and len(meta["checkpoint_fingerprint"]) == 16
    stamp = made.stat().st_mtime_ns
    again, _ = masks_for_fit(video, sam_checkpoint=tiny_sam, **args)
    assert np.array_equal(first, again) and made.stat().st_mtime_ns == stamp
    other = tmp_path / "other.pth"
    torch.manual_seed(1)
    torch.save(build_tiny_sam().state_dict(), other)
    with pytest.raises(VcmError, match=r"made with other SAM weights; .*start a new run with --out"):
        masks_for_fit(video, sam_checkpoint=other, **args)
    cfg.write_text(LOOSE.replace("points_per_side: 4", "points_per_side: 3"))
    with pytest.raises(VcmError, match="made with other settings; .*start a new run"):
        masks_for_fit(video, sam_checkpoint=tiny_sam, **args)
    assert made.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("args, message", [
    (["masks", "CLIP", "--sam-checkpoint", "EMPTY", "--alpha", "0.5", "--alpha", "2"],
     "--alpha must be a number in [0, 1], got 2.0"),
    (["fit", "CLIP", "--loss", "sa-nerv", "--sam-checkpoint", "EMPTY", "--alpha", "nan"],
     "--alpha must be a number in [0, 1], got nan"),
    (["fit", "CLIP", "--loss", "sa-nerv", "--masks", "EMPTY", "--alpha", "0.5"],
     "--alpha does not apply to a fit without --sam-checkpoint"),
    # each ignored without a word: the mask file or the other source made the masks
    (["fit", "CLIP", "--loss", "sa-nerv", "--mask-source", "canny", "--sam-model", "vit_b"],
     "--sam-model does not apply to a fit without --sam-checkpoint (it names the model of SAM's weights)"),
    (["fit", "CLIP", "--loss", "sa-nerv", "--mask-source", "canny", "--sam-checkpoint", "EMPTY"],
     "--sam-checkpoint does not apply to --mask-source canny"),
    (["fit", "CLIP", "--loss", "sa-nerv", "--masks", "EMPTY", "--sam-checkpoint", "EMPTY"],
     "--masks and --sam-checkpoint both name edge masks (a file, and weights to make them); pass one"),
    # refused once the frames were read
    (["fit", "CLIP", "--loss", "sa-nerv", "--sam-checkpoint", "EMPTY", "--sam-model", "vit_q"],
     "--sam-model: unknown SAM model 'vit_q'; choose one of vit_h, vit_l, vit_b, tiny"),
    (["masks", "CLIP", "--sam-checkpoint", "EMPTY", "--sam-model", "vit_q"], "unknown SAM model 'vit_q'; choose one"),
])
def test_sams_options_are_checked_before_the_weights_load_and_refused_where_unused(tmp_path, args, message):
    """An α out of range was refused only once SAM's weights were loaded (a 2.4 GB checkpoint: here the empty
    file's read error came first); `vcm fit --masks FILE --alpha 0.5` ignored α without a word, as SAM's options
    beside a mask file or another source were ignored."""
    from tests.conftest import moving_frames
    from tests.test_cli import assert_one_line_error
    from vcm.video.yuv import write_yuv420

    clip = tmp_path / "clip_44x36_25.yuv"
    write_yuv420(clip, moving_frames())
    (tmp_path / "empty").write_bytes(b"")
    names = {"CLIP": clip, "EMPTY": tmp_path / "empty"}
    out = tmp_path / ("out.npz" if args[0] == "masks" else "out")
    assert_one_line_error(run_main(*[names.get(a, a) for a in args], "--out", out), message)
    assert not out.exists()


@pytest.mark.parametrize("edit", [{"alpha": "ra"}, {"source": 1e9}, {"source": {"a": 1}, "settings": "x"},
                                  {"sam_model": ["tiny"], "source": None}, {"settings": {"dilation": "2"}}])
def test_vcm_info_shows_what_an_edited_mask_file_says_in_the_types_vcm_masks_writes(tmp_path, edit):
    """`vcm info MASKS.npz` formatted α and the source as it found them: α as text was a ValueError, a number as the
    source a TypeError (a one-off fuzz of the metadata found 3 kinds in 200 cases). Fields of another type are now
    left out of the table (the masks themselves are checked as before)."""
    meta = {"source": "canny", "alpha": None, "sam_model": None, "settings": {"dilation": 0}, "video": "clip",
            "source_frames": [0, 2], "video_fingerprint": "f"}
    path = tmp_path / "m.npz"
    save_masks(path, np.zeros((2, 8, 8), bool), {**meta, **edit})
    info = run_main("info", path)
    assert info.returncode == 0 and "source frames 0:2" in info.stdout, info.stderr
    assert "α ra" not in info.stdout and "1000000000" not in info.stdout and "dilated 2" not in info.stdout


def test_vcm_masks_reads_a_raw_file_without_a_rate_and_refuses_fps(tmp_path, carphone):
    """A raw file whose name gives no rate was refused until --fps gave one, which no mask then read (nor did
    --fps on a file that says its rate)."""
    from vcm.video.yuv import write_yuv420

    raw = tmp_path / "clip_176x144.yuv"
    write_yuv420(raw, open_video(carphone, "0:2").frames_u8)
    proc = run_main("masks", raw, "--source", "canny", "--out", tmp_path / "m.npz", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert load_masks(tmp_path / "m.npz")[0].shape == (2, 1, 144, 176)
    proc = run_main("masks", carphone, "--source", "canny", "--frames", "0:2", "--fps", "30", "--out",
                    tmp_path / "n.npz", cwd=tmp_path)
    assert proc.returncode == 1 and "--fps does not apply to vcm masks" in proc.stderr
    assert not (tmp_path / "n.npz").exists()


def test_a_fit_resumed_with_other_edge_masks_is_refused(tmp_path, carphone):
    """`vcm fit --loss sa-nerv --masks b.npz --resume` on a run trained with a.npz went on with b's masks, and its
    config.json named b.npz alone for every step."""
    for name, dilation in (("a.npz", "0"), ("b.npz", "3")):
        made = run_main("masks", carphone, "--source", "canny", "--dilation", dilation, "--frames", "0:4", "--out",
                        tmp_path / name, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
    fit = ["fit", carphone, "--frames", "0:4", "--loss", "sa-nerv", "--steps", "2", "--out", tmp_path / "run"]
    assert run_main(*fit, "--masks", tmp_path / "a.npz", cwd=tmp_path).returncode == 0
    proc = run_main(*fit, "--masks", tmp_path / "b.npz", "--resume", cwd=tmp_path)
    assert proc.returncode == 1 and "was trained with other edge masks (a.npz, now b.npz" in proc.stderr, proc.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["masks"]["path"].endswith("a.npz")
    assert run_main(*fit, "--masks", tmp_path / "a.npz", "--resume", cwd=tmp_path).returncode == 0
