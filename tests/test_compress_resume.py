"""An interrupted `vcm compress` continues: a stopped rate–distortion stage from the step it stopped at, a
command with several λ from the first stream it had not written, to the bytes of a run never stopped."""

import json
import shutil

import pytest
import torch

from tests.conftest import run_cli
from tests.test_interaction import interrupt_when, start_cli
from vcm.cli.run_info import describe_run, run_rows
from vcm.codec import stage_state
from vcm.codec.compress import RDOptions, compress_many

CPU = torch.device("cpu")


class StopAt:
    """``should_stop``: True after the ``at``-th step trained (counting every stage's), and a count of them
    (a stage polls after every step, and once more after the last step of an epoch)."""

    def __init__(self, at: int | None = None):
        self.at, self.polls, self.last = at, 0, None

    def __call__(self, step: int) -> bool:
        if step != self.last:
            self.polls, self.last = self.polls + 1, step
        return self.polls == self.at


def test_a_stopped_stage_continues_from_its_step_to_the_same_bytes(tiny_run, tmp_path):
    root, _ = tiny_run
    # 12 steps of 2 frames on 6 frames: the stop at step 5 falls inside an epoch and inside the noise steps,
    # so the continued stage must restore the epoch's order, Adam's moments and the noise generator
    opts = RDOptions(lam=0.05, steps=12, noise_fraction=0.8)
    whole = compress_many(root / "run", [opts], CPU, outs=[tmp_path / "whole.nerv"])[0]
    out = tmp_path / "stopped.nerv"
    with pytest.raises(KeyboardInterrupt):
        compress_many(root / "run", [opts], CPU, outs=[out], should_stop=StopAt(5))
    partial = stage_state.partial_path(out)
    assert not out.exists() and not out.with_suffix(".json").exists() and partial.is_file()
    assert torch.load(partial, weights_only=True)["step"] == 5

    rest = StopAt()
    report = compress_many(root / "run", [opts], CPU, outs=[out], should_stop=rest)[0]
    assert rest.polls == 7  # only the steps it had not trained
    assert report["resumed"]["step"] == 5 and report["rd_steps"] == 12
    assert out.read_bytes() == (tmp_path / "whole.nerv").read_bytes()
    assert [h["epoch"] for h in report["rd_history"]] == [h["epoch"] for h in whole["rd_history"]]
    assert not partial.exists()  # the stream is written: nothing left to continue


def test_a_state_saved_by_another_stage_is_never_continued(tiny_run, tmp_path, capsys):
    root, _ = tiny_run
    out = tmp_path / "a.nerv"
    with pytest.raises(KeyboardInterrupt):
        compress_many(root / "run", [RDOptions(lam=0.05, steps=12)], CPU, outs=[out], should_stop=StopAt(4))
    partial = stage_state.partial_path(out)
    assert partial.is_file()
    other = StopAt()
    report = compress_many(root / "run", [RDOptions(lam=1.0, steps=12)], CPU, outs=[out], should_stop=other)[0]
    assert other.polls == 12 and "resumed" not in report and not partial.exists()
    assert "holds another stage's state" in capsys.readouterr().err

    partial.write_bytes(b"not a state")  # damaged: the stage starts afresh and replaces it
    again = StopAt()
    compress_many(root / "run", [RDOptions(lam=1.0, steps=12)], CPU, outs=[out], should_stop=again)
    assert again.polls == 12 and not partial.exists()


def test_a_stopped_chain_keeps_its_written_streams_and_continues_the_stopped_stage(tiny_run, tmp_path):
    root, _ = tiny_run
    lams = [RDOptions(lam=5.0, steps=6), RDOptions(lam=0.05, steps=6)]  # the chain runs λ 0.05 first
    whole = compress_many(root / "run", lams, CPU, outs=[tmp_path / "w5.nerv", tmp_path / "w005.nerv"], chain=True)
    outs = [tmp_path / "c5.nerv", tmp_path / "c005.nerv"]
    with pytest.raises(KeyboardInterrupt):
        compress_many(root / "run", lams, CPU, outs=outs, chain=True, should_stop=StopAt(6 + 2))
    assert outs[1].is_file() and not outs[0].exists()
    assert stage_state.end_path(outs[1]).is_file() and stage_state.partial_path(outs[0]).is_file()

    rest = StopAt()
    reports = compress_many(root / "run", lams, CPU, outs=outs, chain=True, should_stop=rest)
    assert rest.polls == 4  # λ 0.05's stream is kept, λ 5's stage goes on from its step 2
    assert reports[0]["start"] == {"lambda": 0.05} and reports[0]["resumed"]["step"] == 2
    assert reports[1]["bytes"] == whole[1]["bytes"]
    for mine, theirs in zip(outs, ["w5.nerv", "w005.nerv"]):
        assert mine.read_bytes() == (tmp_path / theirs).read_bytes()
        assert not stage_state.end_path(mine).exists() and not stage_state.partial_path(mine).exists()
    # finished, the same command runs again from the start: nothing was left to skip
    again = StopAt()
    compress_many(root / "run", lams, CPU, outs=outs, chain=True, should_stop=again)
    assert again.polls == 12


def test_ctrl_c_in_vcm_compress_says_how_to_continue_and_the_same_command_does(tiny_run, tmp_path):
    root, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)  # its streams go into the run folder, as by default
    args = ["compress", run, "--lambda", "0.05", "--rd-steps", "200"]
    proc = start_cli(*args, cwd=tmp_path)
    _, err = interrupt_when(proc, "(steps): 2")
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "the same command again continues" in err and not list(run.glob("*.nerv"))
    assert "λ=0.05 (steps): stopped at " in err and "λ=0.05 (steps): done" not in err  # not done: stopped
    (partial,) = run.glob("*" + stage_state.PARTIAL)
    step = torch.load(partial, weights_only=True)["step"]
    assert 2 <= step < 200
    info = describe_run(run)  # what vcm info RUN shows
    assert info["stopped_stages"] == [{"file": partial.name[:-len(stage_state.PARTIAL)], "what": "rate-distortion λ=0.05",
                                       "step": step, "steps": 200}]
    assert any(label == "stopped stage" and f"step {step} of 200" in text for label, text in run_rows(info))

    done = run_cli(*args, "--json", cwd=tmp_path, env={"VCM_PROGRESS": "lines"})
    assert done.returncode == 0, done.stderr
    assert f"continuing from step {step} of 200" in done.stderr
    assert f"λ=0.05 (steps): continuing at {step}/200 ({200 - step} to do)" in done.stderr  # not "started (200 to do)"
    assert json.loads(done.stdout)["resumed"]["step"] == step
    info = describe_run(run)
    assert info["stopped_stages"] == [] and len(info["streams"]) == 1


def test_a_stopped_rate_control_search_goes_on_from_its_trials_to_the_same_stream(tiny_run, tmp_path):
    from vcm.codec.rate_control import Target, compress_to_target

    root, _ = tiny_run
    first = compress_many(root / "run", [RDOptions(lam=1.0, steps=12)], CPU, outs=[tmp_path / "a.nerv"])[0]
    target = Target(kbps=0.9 * first["kbps"])  # the first trial (λ 1) misses it: a search of several trials
    opts = RDOptions(lam=1.0, steps=12)
    whole = StopAt()
    report = compress_to_target(root / "run", tmp_path / "whole.nerv", target, opts, CPU, should_stop=whole)
    trials = report["rate_control"]["trials"]
    assert len(trials) >= 2  # the stop below falls in the second trial
    out = tmp_path / "t.nerv"
    with pytest.raises(KeyboardInterrupt):
        compress_to_target(root / "run", out, target, opts, CPU, should_stop=StopAt(12 + 3))
    assert not out.exists() and (tmp_path / "t.nerv.trial0.pt").is_file()
    assert stage_state.partial_path(out).is_file()

    rest = StopAt()
    again = compress_to_target(root / "run", out, target, opts, CPU, should_stop=rest)
    assert rest.polls == whole.polls - 12 - 3  # neither the first trial nor the second's first steps again
    assert again["rate_control"]["trials"] == trials
    assert out.read_bytes() == (tmp_path / "whole.nerv").read_bytes()
    assert not list(tmp_path.glob("t.nerv.*.pt"))  # written: nothing kept


def test_the_paper_pipelines_fine_tunes_continue_too(tiny_run, tmp_path):
    from vcm.codec.compress import CompressOptions

    root, _ = tiny_run
    opts = CompressOptions(prune=0.4, bits=8, finetune_epochs=2, qat=True)  # two phases of 6 steps each
    compress_many(root / "run", [opts], CPU, outs=[tmp_path / "whole.nerv"])
    out = tmp_path / "paper.nerv"
    with pytest.raises(KeyboardInterrupt):
        compress_many(root / "run", [opts], CPU, outs=[out], should_stop=StopAt(6 + 2))  # in QAT's third step
    assert sorted(p.name for p in tmp_path.glob("paper.nerv.*")) == ["paper.nerv.prune.partial.pt",
                                                                     "paper.nerv.qat.partial.pt"]
    rest = StopAt()
    report = compress_many(root / "run", [opts], CPU, outs=[out], should_stop=rest)[0]
    assert rest.polls == 6 - 2  # the pruning's fine-tune is done, QAT's goes on from its step 2
    assert report["resumed"]["phases"] == {"prune": 6, "qat": 2} and report["resumed"]["seconds"] > 0
    assert report["encode_seconds"] >= report["resumed"]["seconds"]  # the time before the stop counts too
    assert out.read_bytes() == (tmp_path / "whole.nerv").read_bytes()
    assert not list(tmp_path.glob("paper.nerv.*.pt"))


def test_a_second_compress_into_the_same_stream_is_refused_while_the_first_runs(tiny_run, tmp_path):
    """Two commands writing one stream would each continue and overwrite the other's saved state."""
    import os

    from vcm.errors import VcmError
    from vcm.fsutil import output_lock

    root, _ = tiny_run
    out = tmp_path / "s.nerv"
    with output_lock(out):  # as a first vcm compress holds it
        with pytest.raises(VcmError, match=f"being written by another vcm command \\(pid {os.getpid()}\\)"):
            compress_many(root / "run", [RDOptions(lam=1.0, steps=3)], CPU, outs=[out])
        assert not out.exists() and not stage_state.partial_path(out).exists()
    compress_many(root / "run", [RDOptions(lam=1.0, steps=3)], CPU, outs=[out])  # free again
    assert out.is_file() and not list(tmp_path.glob(".*lock"))
    nested = tmp_path / "new" / "folder" / "s.nerv"  # an output in a folder not made yet
    compress_many(root / "run", [RDOptions(lam=1.0, steps=3)], CPU, outs=[nested])
    assert nested.is_file() and not list(nested.parent.glob(".*lock"))


def test_a_stage_killed_outright_continues_from_its_last_periodic_save(tiny_run, tmp_path, monkeypatch):
    """kill -9 (a CTC worker, a cluster's time limit) leaves no time to save: the periodic saves are what
    is left, and they are enough to continue to the same bytes."""
    root, _ = tiny_run
    opts = RDOptions(lam=0.05, steps=12, noise_fraction=0.8)
    compress_many(root / "run", [opts], CPU, outs=[tmp_path / "whole.nerv"])
    monkeypatch.setattr(stage_state, "SAVE_EVERY_S", 0.0)  # save after every step

    def killed(step):
        if step == 7:
            raise SystemExit("killed")  # not the Ctrl-C path: nothing is saved on the way out

    out = tmp_path / "killed.nerv"
    with pytest.raises(SystemExit):
        compress_many(root / "run", [opts], CPU, outs=[out], should_stop=killed)
    assert torch.load(stage_state.partial_path(out), weights_only=True)["step"] == 7
    report = compress_many(root / "run", [opts], CPU, outs=[out])[0]
    assert report["resumed"]["step"] == 7
    assert out.read_bytes() == (tmp_path / "whole.nerv").read_bytes()
