"""Command-line values no one should give (found by giving every option of every command such values): each is
refused in one line before any work, or run as asked; none is a traceback."""

import pytest

from tests.conftest import run_main
from tests.test_hardening import one_line_error
from vcm.errors import VcmError


def test_a_device_torch_knows_but_vcm_does_not_run_on_is_refused_in_one_line(monkeypatch):
    """``--device mps`` (torch without MPS) or ``meta`` failed inside the network's first ``.to()``."""
    import torch

    from vcm.device import resolve_device

    for name in ("mps", "meta", "xpu", "cpu:1", "cuda:x", "cuda:-1"):
        with pytest.raises(VcmError, match=f"unknown device '{name}'; use auto, cpu or cuda"):
            resolve_device(name)
    assert resolve_device("CPU").type == resolve_device("cpu:0").type == "cpu"
    # a GPU index this machine lacks (torch.device("cuda:7") is made without a word; the first tensor fails)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(VcmError, match=r"--device cuda:7: this machine has 2 CUDA GPUs \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:7")
    assert resolve_device("cuda:1") == torch.device("cuda:1")


def test_decode_on_a_device_torch_was_built_without_is_one_line(tiny_run, tmp_path):
    import torch

    from vcm.codec.compress import CompressOptions, compress_run

    root, _ = tiny_run
    compress_run(root / "run", tmp_path / "s.nerv", CompressOptions(bits=8, finetune_epochs=0), torch.device("cpu"))
    proc = run_main("decode", tmp_path / "s.nerv", "--out", tmp_path / "d.y4m", "--device", "mps")
    assert one_line_error(proc) and "unknown device 'mps'" in proc.stderr, proc.stderr[-800:]
    assert not (tmp_path / "d.y4m").exists()
