"""Files vcm keeps for itself (locks, logs) or finds inside a folder (frames, images) that are named pipes: each
was opened and waited on forever (or a lock in one raised a traceback); now each is one line, at once."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.conftest import fails_after, moving_frames, run_main, tiny_ctc_config
from vcm.errors import VcmError
from vcm.fsutil import open_regular


@pytest.mark.parametrize("mode", ["r", "rb", "a", "a+", "w"])
def test_a_pipe_is_refused_without_waiting_for_its_other_end(tmp_path, mode):
    pipe = tmp_path / "p"
    os.mkfifo(pipe)
    with fails_after(20, f"opening a pipe for {mode!r} waited"):
        with pytest.raises(VcmError, match=r"p is not a regular file .*where vcm keeps its log; remove it"):
            open_regular(pipe, mode, kept="log")


def test_a_regular_file_opens_as_open_would(tmp_path):
    path = tmp_path / "f.txt"
    with open_regular(path, "a", encoding="utf-8") as f:
        f.write("one\n")
    with open_regular(path, "a+") as f:
        f.write("two\n")
        f.seek(0)
        assert f.read() == "one\ntwo\n"
    with open_regular(path, "rb") as f:
        assert f.read() == b"one\ntwo\n" and not f.closed
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "missing")


def test_a_runs_lock_that_is_a_pipe_is_one_line_on_resume(tmp_path, tiny_run):
    root, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    (run / ".lock").unlink(missing_ok=True)
    os.mkfifo(run / ".lock")
    with fails_after(60, "vcm fit --resume waited on the run's lock"):
        proc = run_main("fit", root / "Tiny_32x24_25.yuv", "--out", run, "--resume", "--device", "cpu")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{run / '.lock'} is not a regular file" in proc.stderr and "remove it" in proc.stderr


def test_an_outputs_lock_that_is_a_pipe_is_one_line(tmp_path, tiny_run):
    root, _ = tiny_run
    os.mkfifo(tmp_path / ".x.nerv.lock")
    with fails_after(60, "vcm compress waited on its output's lock"):
        proc = run_main("compress", root / "run", "--bits", "8", "--finetune-epochs", "0", "--out", tmp_path / "x.nerv")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert "x.nerv.lock is not a regular file" in proc.stderr and not (tmp_path / "x.nerv").exists()


def test_a_ctc_log_that_is_a_pipe_is_refused_before_any_point_runs(tmp_path):
    config = tiny_ctc_config(tmp_path, "{steps: 2, batch: 2, lr: 3.0e-3}",
                             "  nerv:\n    fits: [{{preset: {preset}, points: [{{prune: 0.0, bits: 8}}]}}]\n")
    out = tmp_path / "results"
    out.mkdir()
    os.mkfifo(out / "ctc.log")
    with fails_after(60, "vcm ctc run waited to write its log"):
        proc = run_main("ctc", "run", config, "--out", out)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "ctc.log is not a regular file" in proc.stderr and not (out / "points").exists()


def _images(folder, count=3, size=(96, 80)):
    folder.mkdir()
    for i in range(count):
        frame = moving_frames(t=1, h=size[1], w=size[0], seed=i)[0].transpose(1, 2, 0)
        Image.fromarray(np.ascontiguousarray(frame)).save(folder / f"i{i}.png")
    return folder


@pytest.mark.parametrize("command", ["fit", "info", "icm train"])
def test_a_frame_of_a_folder_that_is_a_pipe_is_one_line(tmp_path, command):
    images = _images(tmp_path / "frames")
    (images / "i1.png").unlink()
    os.mkfifo(images / "i1.png")
    argv = {"fit": ["fit", images, "--arch", "nerv", "--steps", "1", "--out", tmp_path / "run", "--device", "cpu"],
            "info": ["info", images],
            "icm train": ["icm", "train", images, "--masks", "none", "--arch", "tcm-tiny", "--batch", "2",
                          "--crop", "64", "--steps-per-epoch", "1", "--epochs", "1", "--out", tmp_path / "icm",
                          "--device", "cpu"]}[command]
    with fails_after(60, f"vcm {command} waited on a frame"):
        proc = run_main(*argv)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert f"{images / 'i1.png'} is not a regular file" in proc.stderr


def test_frames_that_would_not_fit_in_memory_are_refused_before_any_is_read(tmp_path, monkeypatch):
    """A clip is read whole before a fit: one larger than the memory free was read until the kernel ended vcm."""
    import vcm.memory as memory
    from vcm.video.yuv import write_yuv420

    clip = tmp_path / "Tiny_32x24_25.yuv"
    write_yuv420(clip, moving_frames(t=6, h=24, w=32))
    need = 6 * (3 * 32 * 24 + 32 * 24 * 3 // 2)  # the RGB frames and the file's own samples
    monkeypatch.setattr(memory, "free_host_bytes", lambda: need - 1)
    argv = ["fit", clip, "--arch", "nerv", "--steps", "1", "--out", tmp_path / "run", "--device", "cpu"]
    proc = run_main(*argv)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"frames 0:6 of Tiny_32x24_25.yuv (6 of 32x24), decoded, take {need / 1024:.1f} KiB" in proc.stderr
    assert "ask for fewer frames" in proc.stderr and not (tmp_path / "run").exists()
    monkeypatch.setattr(memory, "free_host_bytes", lambda: 1 << 40)
    assert run_main(*argv).returncode == 0
