"""Stops no Ctrl-C handler sees. A disk that takes no more: each command stops with one line naming the file it could
not write, leaves nothing half-written, and the same command again (with room) finishes. A process killed outright
(kill -9, a lost machine): the same command again finishes, or says how to.

The disk is made full by a limit on file sizes (``RLIMIT_FSIZE``, as ``ulimit -f`` sets): a write beyond it fails with
EFBIG as a write onto a full disk fails with ENOSPC, through the same code (Python ignores the SIGXFSZ that comes with
it), and no test needs a file system of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import moving_frames, run_main, tiny_ctc_config

TINY_NERV = ("model: {arch: nerv, fc_dim: 8, stem_dims: [24], lower_width: 6, embed: '1.25_8'}\n"
             "train: {steps: 4, batch: 2, lr: 3.0e-3}\n")


# ``python -m vcm ARGS`` that first limits its own file sizes (and those of the processes it starts): set in the
# child itself, not through subprocess's preexec_fn, which is not safe in a process with threads (torch's).
LIMITED = ("import resource, runpy, sys\n"
           "limit = int(sys.argv.pop(1))\n"
           "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
           "runpy.run_module('vcm', run_name='__main__', alter_sys=True)\n")


def run_limited(limit: int, *args, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m vcm ARGS`` where no file may grow beyond ``limit`` bytes (nor in the processes it starts)."""
    return subprocess.run([sys.executable, "-c", LIMITED, str(limit), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def one_line_error(proc) -> str:
    """The error line of a refused command (a failure of the test when it crashed instead)."""
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    return " ".join(proc.stderr[proc.stderr.index("error:"):].split())


def temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*.tmp")]


@pytest.fixture
def tiny_clip(tmp_path):
    from vcm.video.yuv import write_yuv420

    write_yuv420(tmp_path / "Tiny_32x24_25.yuv", moving_frames(t=4, h=24, w=32))
    (tmp_path / "tiny.yaml").write_text(TINY_NERV)
    return tmp_path / "Tiny_32x24_25.yuv"


def test_a_checkpoint_the_disk_cannot_take_is_one_line_naming_it(tmp_path, tiny_clip):
    """torch.save reported the failed write as a RuntimeError of its own ("unexpected pos …"): a traceback."""
    args = ("fit", tiny_clip, "--config", tmp_path / "tiny.yaml", "--out", tmp_path / "run", "--device", "cpu")
    said = one_line_error(run_limited(64 << 10, *args, cwd=tmp_path))
    assert said.startswith(f"error: File too large: {tmp_path / 'run' / 'checkpoint.pt'};"), said
    assert "write elsewhere" in said and temporaries(tmp_path) == []
    assert run_main(*args, cwd=tmp_path).returncode == 0 and (tmp_path / "run" / "checkpoint.pt").is_file()


def test_the_first_write_of_a_command_names_its_file(tmp_path, tiny_clip):
    """With no byte to spare, the first write is the pid into an output's lock: it failed unnamed (a traceback)."""
    fitted = run_main("fit", tiny_clip, "--config", tmp_path / "tiny.yaml", "--out", tmp_path / "run", cwd=tmp_path)
    assert fitted.returncode == 0, fitted.stderr[-2000:]
    said = one_line_error(run_limited(0, "compress", tmp_path / "run", "--bits", "8", "--out", tmp_path / "x.nerv",
                                      cwd=tmp_path))
    assert said.startswith(f"error: File too large: {tmp_path / '.x.nerv.lock'};"), said


def test_edge_masks_the_disk_cannot_take_are_one_line(tmp_path, tiny_clip):
    """numpy's archive, left open by the failed write, printed a traceback of its own when it was collected."""
    said = one_line_error(run_limited(0, "masks", tiny_clip, "--source", "canny", "--out", tmp_path / "m.npz",
                                      cwd=tmp_path))
    assert said.startswith(f"error: File too large: {tmp_path / 'm.npz'};"), said
    assert temporaries(tmp_path) == [] and not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_sweep_stops_at_a_write_the_disk_cannot_take(tmp_path, jobs):
    """Each point recorded the failure as its own and the next one did its work again only to fail the same way;
    the sweep now stops at once, records nothing, and continues when run again."""
    cfg = tiny_ctc_config(tmp_path, "{steps: 4, batch: 2, lr: 3.0e-3}",
                          "  nerv:\n    fits: [{{preset: {preset}, points: [{{prune: 0.0, bits: 8}}, "
                          "{{prune: 0.0, bits: 6}}]}}]\n")
    args = ("ctc", "run", cfg, "--out", tmp_path / "out", "--jobs", jobs)
    said = one_line_error(run_limited(64 << 10, *args, cwd=tmp_path))
    assert said.startswith("error: File too large: ") and said.split(";")[0].endswith("checkpoint.pt"), said
    assert list((tmp_path / "out").rglob("result.json")) == [] and temporaries(tmp_path / "out") == []
    again = run_main(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    rows = [json.loads(p.read_text()) for p in (tmp_path / "out" / "points").rglob("result.json")]
    assert [r["status"] for r in rows] == ["ok", "ok"]


def test_an_evaluation_writes_both_outputs_or_neither(tmp_path):
    """detections.json was written before scores.json failed: the folder then held a file no vcm eval had
    finished, and the same command again was refused."""
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({
        "images": [{"id": k, "width": 176, "height": 144, "file_name": f"clip_176x144_30_val_{f:03d}.png"}
                   for k, f in enumerate(range(0, 12, 3))],
        "annotations": [{"id": k + 1, "image_id": k, "category_id": 1, "bbox": [20, 30, 50, 60], "area": 3000,
                         "iscrowd": 0} for k in range(4)],
        "categories": [{"id": 1, "name": "person"}]}))
    args = ("eval", "sample:carphone", "--annotations", gt, "--detector", "oracle", "--out", tmp_path / "e")
    said = one_line_error(run_limited(1000, *args, cwd=tmp_path))  # detections.json takes ~600 B, scores ~1.5 kB
    assert said.startswith(f"error: File too large: {tmp_path / 'e' / 'scores.json'};"), said
    assert sorted(p.name for p in (tmp_path / "e").iterdir() if not p.name.startswith(".")) == []
    again = run_main(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert {p.name for p in (tmp_path / "e").iterdir()} >= {"detections.json", "scores.json"}


def test_files_written_together_appear_only_when_all_are_written(tmp_path):
    from vcm.fsutil import write_together

    (tmp_path / "a").write_bytes(b"old")
    with pytest.raises(TypeError):  # the second file's data cannot be written
        write_together([(tmp_path / "a", b"new"), (tmp_path / "b", "not bytes")])
    assert (tmp_path / "a").read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    write_together([(tmp_path / "a", b"new"), (tmp_path / "b", b"b")])
    assert (tmp_path / "a").read_bytes() == b"new" and (tmp_path / "b").read_bytes() == b"b"


def test_a_report_is_replaced_whole_or_not_at_all(tmp_path):
    """report.md and the plots of the new report were written beside the last report's bd.json, from which a
    report made again (``vcm demo``) takes its settings."""
    cfg = tiny_ctc_config(tmp_path, "{steps: 4, batch: 2, lr: 3.0e-3}",
                          "  nerv:\n    fits: [{{preset: {preset}, points: [{{prune: 0.0, bits: 8}}, "
                          "{{prune: 0.0, bits: 6}}]}}]\n")
    assert run_main("ctc", "run", cfg, "--out", tmp_path / "out", cwd=tmp_path).returncode == 0
    assert run_main("ctc", "report", tmp_path / "out", cwd=tmp_path).returncode == 0
    names = ("summary.csv", "report.md", "report.html", "bd.json", "plots/tiny.png")
    before = {name: (tmp_path / "out" / name).read_bytes() for name in names}
    largest = max(len(b) for b in before.values())
    said = one_line_error(run_limited(largest - 1, "ctc", "report", tmp_path / "out", "--metric", "psnr",
                                      cwd=tmp_path))
    assert "File too large" in said
    assert {name: (tmp_path / "out" / name).read_bytes() for name in names} == before
    assert temporaries(tmp_path / "out") == []


def test_a_fit_killed_before_its_first_checkpoint_says_how_to_start_it(tmp_path, tiny_clip):
    """A fit killed (kill -9, a lost machine) before its first checkpoint leaves its folder and lock only: --resume
    said the checkpoint did not exist, and not that the same command without it starts the fit."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").write_text("12345\n")
    args = ("fit", tiny_clip, "--config", tmp_path / "tiny.yaml", "--out", tmp_path / "run")
    said = " ".join(run_main(*args, "--resume", cwd=tmp_path).stderr.split())
    assert "(a run stopped before its first checkpoint saved none); the same command without --resume starts it" in said
    assert run_main(*args, cwd=tmp_path).returncode == 0
    absent = " ".join(run_main(*args[:-1], tmp_path / "elsewhere", "--resume", cwd=tmp_path).stderr.split())
    assert f"nothing to resume: {tmp_path / 'elsewhere'} does not exist; name the run's folder with --out" in absent


def test_an_output_that_cannot_be_made_is_named_not_its_temporary(tmp_path, monkeypatch):
    """On a read-only folder, vcm ctc report said 'Read-only file system: …/.bd.json.25312.tp87p4c_.tmp'."""
    import errno
    import tempfile

    from vcm.fsutil import write_bytes

    def read_only(prefix, suffix, dir):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(dir, f"{prefix}x1y2z3{suffix}"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OSError) as caught:
        write_bytes(tmp_path / "bd.json", b"{}")
    assert caught.value.errno == errno.EROFS and caught.value.filename == str(tmp_path / "bd.json")
