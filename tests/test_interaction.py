"""How the CLI behaves with a person (or a cluster log) at the other end: progress in pipes,
argument errors before any frame is read, Ctrl-C at every stage."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROW_MEASURES, moving_frames, progress_gaps, run_cli, run_main, tiny_ctc_config

ROOT = Path(__file__).resolve().parents[1]


def start_cli(*args, cwd, env=None, preexec_fn=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1", VCM_PROGRESS="lines", VCM_PROGRESS_INTERVAL="0", **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "vcm", *map(str, args)], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=preexec_fn)


def interrupt_when(proc, needle: str, timeout: float = 300, signum=signal.SIGINT, before=None) -> tuple[str, str]:
    """Read stderr until a line contains ``needle``, call ``before``, send ``signum`` (SIGINT) to ``proc`` alone,
    and collect the rest."""
    seen, deadline = [], time.time() + timeout
    for line in proc.stderr:
        seen.append(line)
        if needle in line:
            if before is not None:
                before()
            proc.send_signal(signum)
            break
        assert time.time() < deadline, "".join(seen)[-2000:]
    out, err = proc.communicate(timeout=timeout)
    return out, "".join(seen) + err


def test_fit_progress_in_a_pipe_is_timestamped_and_steady(tmp_path):
    proc = run_cli("fit", "sample:carphone", "--preset", "demo", "--epochs", "6", "--frames", "0:24", "--out",
                   tmp_path / "run", "--json", cwd=tmp_path, env={"VCM_PROGRESS": "", "VCM_PROGRESS_INTERVAL": "1"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["epochs"] == 6  # stdout stays machine-readable
    lines = [line for line in proc.stderr.splitlines() if "(steps)" in line]
    assert lines[0].endswith("started (36 to do)") and "done 36/36" in lines[-1]  # steps, not epochs
    assert any("ETA" in line and "PSNR" in line for line in lines)
    assert max(progress_gaps("\n".join(lines))) <= 3  # the training stage reports at its 1 s cadence
    assert max(progress_gaps(proc.stderr)) <= 15  # and no phase of the command is silent for long


@pytest.mark.parametrize("args, message", [
    (("fit", "sample:carphone", "--preset", "nope"), "unknown preset"),
    (("fit", "sample:carphone", "--loss", "sa-nerf"), "unknown loss"),
    (("fit", "sample:carphone", "--loss", "sa-nerv"), "needs edge masks"),
    (("fit", "sample:carphone", "--masks", "missing.npz"), "does not exist"),
    (("fit", "sample:carphone", "--resume", "--out", "nowhere"), "nothing to resume"),
    (("fit", "sample:carphone", "--frames", "9:3"), "frames"),
    (("fit", "sample:carphone", "--out", "afile"), "is a file"),
    (("compress", "runs/nope"), "does not exist"),
    (("eval", "sample:carphone"), "SFU-HW"),
    (("eval", "sample:carphone", "--reference", "orig"), "--reference must be one of annotations, original"),
    (("eval", "sample:carphone", "--reference", "original", "--reference-score", "1.5"), "between 0 and 1"),
    (("eval", "sample:carphone", "--annotations", "afile", "--frame-mapping", "name2"), "--frame-mapping must be"),
    (("eval", "sample:carphone", "--annotations", "afile", "--category-ids", "coco90"), "--category-ids must be"),
    (("ctc", "run", "bad.yaml"), "unknown key"),
    # each was ignored without a word
    (("fit", "sample:carphone", "--loss-impl", "torch"), "--loss-impl does not apply to --loss nerv (it picks the "
                                                        "SA-NeRV loss's implementation)"),
    (("fit", "sample:carphone", "--overwrite"), "--overwrite does not apply to a fit without --save-video"),
    (("fit", "sample:carphone", "--preset", "nerv-xs", "--config", "afile"), "--preset and --config both name"),
    (("fit", "sample:carphone", "--arch", "hinerv", "--config", str(ROOT / "configs" / "nerv" / "nerv-xs.yaml")),
     "nerv-xs.yaml is a nerv preset, not hinerv; drop --arch or pick a hinerv preset"),
    (("decode", "afile", "--overwrite"), "--overwrite does not apply to a decode without --out (it lets --out"),
    (("masks", "sample:carphone", "--sam-checkpoint", "afile", "--sam-model", "vit_q"), "unknown SAM model 'vit_q'"),
    (("icm", "decode", "afile", "--out", "-", "--overwrite"), "--overwrite does not apply to --out - (it lets --out"),
])
def test_argument_errors_come_before_any_frame_is_read(tmp_path, args, message):
    """The video reader is replaced by one that fails loudly: an argument error must come first."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "bad.yaml").write_text("sequences: [{name: c, path: 'sample:carphone'}]\ncodecs: {hevc: {qp: [30]}}\n")
    script = ("import sys, vcm.video.source as s\n"
              "def boom(*a, **k):\n    raise SystemExit('FRAMES WERE READ')\n"
              "s.load = boom\nimport vcm.video as v; v.load = boom\n"
              "from vcm.cli import main\nmain(sys.argv[1:])\n")
    proc = subprocess.run([sys.executable, "-c", script, *args], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert proc.returncode not in (0, None) and "FRAMES WERE READ" not in proc.stderr, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("code, said", [("ENOSPC", "No space left on device"), ("EACCES", "Permission denied")])
def test_a_full_disk_or_a_folder_it_may_not_write_is_one_line(tmp_path, code, said):
    """An OSError of the place a command writes was a traceback; it is one line that says what and where."""
    script = ("import errno, os, pathlib, sys\n"
              "real = pathlib.Path.mkdir\n"
              "def mkdir(self, *a, **k):\n"
              f"    if self.name == 'blocked':\n        raise OSError(errno.{code}, os.strerror(errno.{code}), str(self))\n"
              "    return real(self, *a, **k)\n"
              "pathlib.Path.mkdir = mkdir\n"
              "from vcm.cli import main\nmain(sys.argv[1:])\n")
    proc = subprocess.run([sys.executable, "-c", script, "fit", "sample:carphone", "--frames", "0:2", "--preset", "demo",
                           "--steps", "1", "--out", tmp_path / "blocked"], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert f"error: {said}: {tmp_path / 'blocked'};" in " ".join(proc.stderr.split())


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("vcm ")


def test_ctrl_c_before_training_says_so_and_leaves_no_run(tmp_path):
    proc = start_cli("fit", "sample:carphone", "--preset", "demo", "--epochs", "50", "--out", tmp_path / "run", cwd=tmp_path)
    _, err = interrupt_when(proc, "reading")
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_ctrl_c_after_training_keeps_the_checkpoint(tmp_path):
    proc = start_cli("fit", "sample:carphone", "--preset", "demo", "--epochs", "1", "--frames", "0:8", "--out",
                     tmp_path / "run", cwd=tmp_path)
    _, err = interrupt_when(proc, "measuring the fitted network")
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert (tmp_path / "run" / "checkpoint.pt").exists()


def test_ctrl_c_in_a_sweep_records_no_interrupted_point(tmp_path):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text("sequences: [{name: carphone, path: 'sample:carphone', frames: '0:8'}]\n"
                   "device: cpu\ncodecs:\n  nerv:\n    fits: [{preset: demo, epochs: 200, points: [{bits: 8}]}]\n")
    proc = start_cli("ctc", "run", cfg, "--out", tmp_path / "out", cwd=tmp_path)
    _, err = interrupt_when(proc, "(steps): 2/")
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    results = list((tmp_path / "out" / "points").rglob("result.json"))
    assert all(json.loads(r.read_text()).get("status") != "ok" for r in results)
    assert list((tmp_path / "out" / "fits").rglob("checkpoint.pt"))  # the fit's progress is kept for a re-run
    assert "vcm ctc run" in (tmp_path / "out" / "ctc.log").read_text()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` now (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_sigterm_to_a_parallel_sweep_stops_its_workers_and_keeps_their_work(tmp_path):
    """`kill` (or a scheduler's time limit) on `vcm ctc run --jobs 2` ended the runner alone: its worker went on
    training outside any run, holding its fit's lock and a core. Now SIGTERM stops the workers as Ctrl-C
    does, each fit saving its checkpoint, and the runner says so."""
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text("sequences: [{name: carphone, path: 'sample:carphone', frames: '0:8'}]\n"
                   "device: cpu\ncodecs:\n  nerv:\n    fits: [{preset: demo, epochs: 400, points: [{bits: 8}]}]\n"
                   "  hevc: {qps: [40]}\n")
    proc = start_cli("ctc", "run", cfg, "--out", tmp_path / "out", "--jobs", "2", cwd=tmp_path)
    workers: list[int] = []
    _, err = interrupt_when(proc, "/800  (", signum=signal.SIGTERM,  # a worker's relayed step line: it trains
                            before=lambda: workers.extend(_children(proc.pid)))
    assert proc.returncode == 130 and "interrupted (SIGTERM)" in err and "Traceback" not in err, err[-2000:]
    deadline = time.time() + 30
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert workers and not any(_alive(w) for w in workers)  # the pool's workers (and its resource tracker) ended
    log = (tmp_path / "out" / "points" / "carphone" / "nerv").rglob("point.log")
    assert any("SIGTERM: finishing this step and saving a checkpoint" in p.read_text() for p in log)
    assert list((tmp_path / "out" / "fits").rglob("checkpoint.pt"))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_a_killed_worker_runs_its_point_once_more_then_fails_it_and_the_sweep_goes_on(tmp_path):
    """A worker killed (the system out of memory, SIGKILL) ended `vcm ctc run --jobs 2` with a BrokenProcessPool
    traceback and left the other points unrun; then every point of the broken pool was recorded as failed, those
    beside the one killed too. Now a point whose worker dies runs once more on a new one (its fit from its
    checkpoint); killed again, it is recorded as failed, run again next time, and the others run on."""
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text("sequences: [{name: carphone, path: 'sample:carphone', frames: '0:8'}]\n"
                   "device: cpu\ncodecs:\n  nerv:\n    fits: [{preset: demo, epochs: 400, points: [{bits: 8}]}]\n"
                   "  hevc: {qps: [40]}\n")
    proc = start_cli("ctc", "run", cfg, "--out", tmp_path / "out", "--jobs", "2", cwd=tmp_path)

    def kill_the_worker():
        workers = [pid for pid in _children(proc.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 1  # the lone fit runs alone, the anchor waits for its network
        os.kill(workers[0], signal.SIGKILL)

    seen, kills, again = [], 0, False
    for line in proc.stderr:
        seen.append(line)
        again = again or "running it again on a new one" in line
        if "/800  (" in line and (kills == 0 or again):  # the worker's fit is training (again, after the first kill)
            kill_the_worker()
            kills += 1
            if kills == 2:
                break
    _, rest = proc.communicate(timeout=300)
    err = " ".join(("".join(seen) + rest).split())
    assert proc.returncode == 1 and "Traceback" not in err, err[-2000:]
    assert "carphone nerv demo_e400_pr0p0_b8: its worker process ended abruptly (killed: the system out of memory, " \
           "or a signal); running it again on a new one" in err
    assert "failed carphone nerv demo_e400_pr0p0_b8: its worker process ended abruptly while it ran, twice" in err
    points = tmp_path / "out" / "points" / "carphone"
    assert json.loads((points / "hevc" / "qp40" / "result.json").read_text())["status"] == "ok"
    assert json.loads((points / "nerv" / "demo_e400_pr0p0_b8" / "result.json").read_text())["status"] == "failed"


def test_sigterm_to_a_fit_saves_its_checkpoint_as_ctrl_c_does(tmp_path):
    proc = start_cli("fit", "sample:carphone", "--preset", "demo", "--epochs", "400", "--frames", "0:8", "--out",
                     tmp_path / "run", cwd=tmp_path)
    _, err = interrupt_when(proc, "(steps): 2/", signum=signal.SIGTERM)
    assert proc.returncode == 130 and "SIGTERM: finishing this step" in err and "Traceback" not in err, err[-2000:]
    assert "Continue with: " in err and (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_schedulers_warning_signal_saves_a_fit_and_an_ignored_hangup_stays_ignored(tmp_path):
    """Slurm's warning before a time limit (--signal=USR1@120) ended a fit where it stood: SIGUSR1's default action
    kills the process, losing what it had trained since its last checkpoint. It now stops as SIGTERM does. SIGHUP
    too, but not under nohup, which starts the process with SIGHUP ignored."""
    proc = start_cli("fit", "sample:carphone", "--preset", "demo", "--epochs", "400", "--frames", "0:8", "--out",
                     tmp_path / "run", cwd=tmp_path)
    _, err = interrupt_when(proc, "(steps): 2/", signum=signal.SIGUSR1)
    assert proc.returncode == 130 and "SIGUSR1: finishing this step" in err and "Traceback" not in err, err[-2000:]
    assert "Continue with: " in err and (tmp_path / "run" / "checkpoint.pt").exists()

    def as_nohup():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = start_cli("fit", "sample:carphone", "--preset", "demo", "--epochs", "400", "--frames", "0:8", "--out",
                     tmp_path / "run2", cwd=tmp_path, preexec_fn=as_nohup)
    for line in proc.stderr:
        if "(steps): 2/" in line:
            proc.send_signal(signal.SIGHUP)
            break
    for line in proc.stderr:  # the hangup changed nothing: the fit trains on
        if "(steps): 4/" in line:
            break
    assert proc.poll() is None
    _, err = interrupt_when(proc, "(steps): ", signum=signal.SIGTERM)
    assert proc.returncode == 130 and "SIGTERM: finishing this step" in err and "SIGHUP" not in err, err[-2000:]


def test_a_stage_waiting_on_workers_keeps_a_piped_log_alive(monkeypatch, capsys):
    """Parallel CTC workers print nothing while they load their clips; the waiting stage's heartbeat
    fills the silence, and stays quiet while other lines flow."""
    from vcm import progress

    monkeypatch.setenv("VCM_PROGRESS", "lines")
    monkeypatch.setenv("VCM_PROGRESS_INTERVAL", "1")  # long enough that no stall between two lines reaches it
    with progress.progress("ctc points", 4) as bar:
        capsys.readouterr()
        bar.heartbeat()  # a line was just printed (the stage's start): nothing to fill
        assert capsys.readouterr().err == ""
        time.sleep(1.1)
        bar.heartbeat()
        assert capsys.readouterr().err.count("ctc points: 0/4") == 1
        time.sleep(1.1)
        progress.log("a worker's line")
        bar.heartbeat()
        assert "ctc points" not in capsys.readouterr().err
        time.sleep(1.1)
        bar.heartbeat()
        err = capsys.readouterr().err
    assert "ctc points: 0/4" in err and "elapsed" in err, err


def test_the_points_stage_shows_no_estimate_from_its_mean_point(monkeypatch, capsys):
    """A sweep's points take very different times (a network's fit, then its other λ points in
    seconds; an x265 encode): an ETA from the mean point was six times off, so the stage shows its
    count and elapsed time only, while a stage of uniform steps keeps its ETA."""
    from vcm import progress
    from vcm.ctc import run

    monkeypatch.setenv("VCM_PROGRESS", "lines")
    monkeypatch.setenv("VCM_PROGRESS_INTERVAL", "0")
    monkeypatch.setattr(run, "safe_run_point", lambda spec: {"sequence": spec["sequence"], "codec": spec["codec"], "point": spec["point_id"],
                                                            "status": "failed", "error": "stand-in"})
    specs = [{"sequence": "S", "codec": "x265", "point_id": f"qp{q}"} for q in (22, 27, 32)]
    capsys.readouterr()
    run.execute(specs, jobs=1, backend="local", ray_address=None)
    err = capsys.readouterr().err
    assert "ctc points: 2/3" in err and "elapsed" in err, err
    assert "ETA" not in err, err
    with progress.progress("steps", 3) as bar:
        bar.advance(1)
        time.sleep(0.01)
        bar.advance(1)
    assert "ETA" in capsys.readouterr().err


def test_the_run_log_relays_every_line_a_worker_wrote_not_only_its_newest(tmp_path):
    """A quiet worker's point.log is relayed into the run's log: it used to show only the newest line of each
    10 s look, so a stage's "started" line was dropped or stamped up to 10 s late."""
    from vcm import progress
    from vcm.ctc.run import _Relay

    workdir = tmp_path / "points" / "c" / "hinerv" / "p"
    workdir.mkdir(parents=True)
    (workdir / "point.log").write_text("2026-01-01 00:00:00 left by an earlier run\n")
    relay = _Relay({"workdir": str(workdir), "sequence": "c", "codec": "hinerv", "point_id": "p"})
    log = workdir.parent / "run.log"
    with progress.log_to(log):
        relay.show()  # the worker has not started: nothing of the earlier run (or of another command's) is shown
    assert (workdir / "point.log").exists()  # nor is that log removed: it may be another run's, still being written
    (workdir / "point.log").unlink()  # the worker starts its own afresh
    with progress.log_to(log), open(workdir / "point.log", "a") as f:
        f.write("2026-01-01 10:00:00 fit (steps): started (900 to do)\n"
                "2026-01-01 10:00:04 fit (steps): done\n2026-01-01 10:00:05 rate-distortion λ=1 (steps): sta")
        f.flush()
        relay.show()
        f.write("rted (360 to do)\n")
        f.flush()
        relay.show()
        relay.show()  # nothing new: nothing shown again
    shown = [line.split(" ", 2)[2] for line in log.read_text().splitlines()]
    assert shown == ["  [c hinerv p] fit (steps): started (900 to do)", "  [c hinerv p] fit (steps): done",
                     "  [c hinerv p] rate-distortion λ=1 (steps): started (360 to do)"]


def test_a_second_sweep_on_the_same_results_leaves_a_running_point_to_the_first(tmp_path):
    """Two `vcm ctc run` on one results folder (another --only, another machine on a shared disk): the second
    waited for the first's fit, then failed the point ("stream.nerv is being written by another vcm command"),
    recording a failure over a point that was about to finish, after clearing the first one's point.log."""
    from tests.conftest import tiny_ctc_config

    cfg = tiny_ctc_config(tmp_path, "{steps: 3000, batch: 2, lr: 3.0e-3}",
                          "  nerv:\n    fits: [{{preset: {preset}, points: [{{prune: 0.0, bits: 8}}]}}]\n")
    import threading

    first = start_cli("ctc", "run", cfg, "--out", tmp_path / "out", cwd=tmp_path)
    seen, training = [], threading.Event()

    def drain():  # read the first one's log all along: a full pipe would stall it while the second one waits
        for line in first.stderr:
            seen.append(line)
            if "/3000  (" in line:  # its fit is training
                training.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    assert training.wait(timeout=120), "".join(seen)[-1500:]
    # in parallel, whose runner relays each point's log: it removed the log of a point it was about to start
    second = run_cli("ctc", "run", cfg, "--out", tmp_path / "out", "--jobs", "2", cwd=tmp_path, timeout=120)
    said = " ".join(second.stderr.split())
    assert second.returncode == 0 and f"(pid {first.pid}) is running it; left to it" in said, second.stderr[-1500:]
    assert "left 1 point to the other vcm command that was running it; its result joins" in said, said[-800:]
    point = tmp_path / "out" / "points" / "tiny" / "nerv" / "tiny_pr0p0_b8"
    assert not (point / "result.json").exists()
    first.wait(timeout=300)
    reader.join(timeout=10)
    assert first.returncode == 0, "".join(seen)[-1500:]
    assert json.loads((point / "result.json").read_text())["status"] == "ok"
    assert "(steps): started (3000 to do)" in (point / "point.log").read_text()  # its log was left alone


def test_a_point_another_run_finished_after_this_one_planned_is_taken_not_run_again(tmp_path):
    """Two `vcm ctc run` on one results folder: a point that neither held when the second one planned (an anchor
    the first finished a moment later) was coded again by the second once it got the point's lock."""
    from vcm.ctc.run import safe_run_point

    # (not "quiet": a worker's setting, it would silence the progress lines of later tests in this process)
    workdir = tmp_path / "points" / "s" / "no-such-codec" / "p"  # where vcm ctc run puts the point
    workdir.mkdir(parents=True)
    spec = {"sequence": "s", "codec": "no-such-codec", "point_id": "p", "workdir": str(workdir), "device": "cpu",
            "point_key": "settings", "inputs_key": "inputs"}
    theirs = {"status": "ok", "sequence": "s", "codec": "no-such-codec", "curve": "c", "point": "p", "kbps": 1.0,
              "bytes": 10, "fps": 25.0, "frames": 2, "point_key": "settings", "inputs_key": "inputs", **ROW_MEASURES}
    (workdir / "result.json").write_text(json.dumps(theirs))
    assert safe_run_point(spec) == theirs  # running it would fail: its codec does not exist
    assert json.loads((workdir / "result.json").read_text()) == theirs
    for asked in ({**spec, "force": True}, {**spec, "point_key": "other settings"}):  # --force, or a changed point
        (workdir / "result.json").write_text(json.dumps(theirs))
        assert safe_run_point(asked)["status"] == "failed"


def test_a_chained_point_whose_previous_point_runs_elsewhere_is_left_there_too(tmp_path):
    """Two `vcm ctc run` (two `vcm demo`) on one results folder: the second left a λ point to the first, then
    started the point chained after it, which found no state to start from and failed ("run the curve again with
    --force"). It is left to the first command too, and runs where the previous point has ended."""
    from vcm.codec.chain import STATE
    from vcm.ctc.run import safe_run_point
    from vcm.fsutil import output_lock

    points = tmp_path / "points" / "s" / "no-such-codec"
    (points / "l0p1").mkdir(parents=True)
    spec = {"sequence": "s", "codec": "no-such-codec", "point_id": "l1p0_from_l0p1", "device": "cpu",
            "workdir": str(points / "l1p0_from_l0p1"), "point": {"warm_from": "l0p1"}}
    with output_lock(points / "l0p1" / "result.json"):  # the other command runs the previous point
        row = safe_run_point(spec)
    assert row == {"status": "elsewhere", "sequence": "s", "codec": "no-such-codec", "point": "l1p0_from_l0p1",
                   "pid": os.getpid(), "after": "l0p1"}
    assert not (points / "l1p0_from_l0p1" / "result.json").exists()
    (points / "l0p1" / STATE).write_bytes(b"its end state")  # ended: the chained point runs here (its codec fails)
    with output_lock(points / "l0p1" / "result.json"):
        assert safe_run_point(spec)["status"] == "failed"


def test_a_ray_task_whose_worker_died_fails_its_point_and_the_sweep_goes_on(tmp_path, monkeypatch):
    """With --backend ray, a point whose worker died beyond Ray's own retries (out of memory, a signal, a lost node)
    raised out of ray.get and ended the whole sweep with a traceback. Ray is stood in for here, so that the worker's
    death is certain: its exception types are the real ones."""
    import types

    from ray.exceptions import WorkerCrashedError

    from vcm.ctc import run as ctc_run

    class Ref:
        def __init__(self, spec):
            self.spec = spec

    def get(ref):
        if ref.spec["point_id"] == "died":
            raise WorkerCrashedError()
        return {"status": "ok", "sequence": "s", "codec": "c", "point": ref.spec["point_id"], "bytes": 10,
                "kbps": 1.0, "psnr": 30.0}

    task = types.SimpleNamespace(options=lambda **kw: types.SimpleNamespace(remote=lambda spec, *after: Ref(spec)))
    fake = types.ModuleType("ray")
    fake.is_initialized, fake.remote, fake.get = (lambda: True), (lambda fn: task), get
    fake.wait = lambda pending, num_returns, timeout: (pending[:1], pending[1:])
    fake.cluster_resources = lambda: {"CPU": 2.0}
    monkeypatch.setitem(sys.modules, "ray", fake)
    specs = [{"sequence": "s", "codec": "c", "point_id": name, "workdir": str(tmp_path / name)} for name in ("died", "ok")]
    rows = ctc_run.execute(specs, 2, "ray", None)
    assert [r["status"] for r in rows] == ["failed", "ok"]
    assert "its Ray task failed (WorkerCrashedError" in rows[0]["error"] and "runs it again" in rows[0]["error"]
    assert json.loads((tmp_path / "died" / "result.json").read_text())["status"] == "failed"


def test_a_ray_node_without_the_sweeps_folder_fails_its_points_saying_so(tmp_path, monkeypatch):
    """A Ray task runs its point in the folder `vcm ctc run` was started in; a node that lacks it (no shared disk)
    fails the point with that reason, in one line, recorded in the driver's folder. Ray is stood in for (a task's
    exception reaches ray.get wrapped as Ray wraps it, a RayTaskError that is also the exception's type)."""
    import types

    from ray.exceptions import RayTaskError

    from vcm.ctc import run as ctc_run

    here = os.getcwd()

    class Ref:
        def __init__(self, spec, folder):
            self.spec, self.folder = spec, folder

    def get(ref):
        try:
            return ctc_run._run_after(ref.spec, ref.folder)
        except Exception as err:
            raise RayTaskError("_run_after", "Traceback (most recent call last): …", err).as_instanceof_cause()

    gone = tmp_path / "gone"  # the driver's folder as the node sees it: not there
    sent = []
    task = types.SimpleNamespace(options=lambda **kw: types.SimpleNamespace(
        remote=lambda spec, folder, *after: sent.append(folder) or Ref(spec, str(gone))))
    fake = types.ModuleType("ray")
    fake.is_initialized, fake.remote, fake.get = (lambda: True), (lambda fn: task), get
    fake.wait = lambda pending, num_returns, timeout: (pending[:1], pending[1:])
    fake.cluster_resources = lambda: {"CPU": 2.0}
    real = sys.modules["ray"]
    fake.__getattr__ = lambda name: getattr(real, name)  # the rest (what Ray's wrapping of an exception reads)
    monkeypatch.setitem(sys.modules, "ray", fake)
    spec = {"sequence": "s", "codec": "c", "point_id": "p", "workdir": str(tmp_path / "p")}
    rows = ctc_run.execute([spec], 1, "ray", None)
    assert sent == [os.getcwd()] and os.getcwd() == here  # the task is handed the driver's folder; the driver stays
    assert rows[0]["status"] == "failed" and rows[0]["error"] == (
        f"this Ray node has no folder {gone} (No such file or directory): vcm ctc run's points run in the folder it "
        f"was started in, which every node of the cluster needs at the same path")
    assert json.loads((tmp_path / "p" / "result.json").read_text())["error"] == rows[0]["error"]


def test_a_ray_sweep_on_cuda_says_when_its_cluster_has_no_gpu(tmp_path, monkeypatch):
    """Points on CUDA wait for a GPU on a cluster that has none (an autoscaling one may add it): said at the start,
    where the sweep only showed 0/N for as long as it ran. A point on ``auto`` asks for a GPU where the cluster has
    one: it asked for none, so Ray showed it every GPU of its node and it took the first, beside every other point
    of that node. A point that asks for a GPU runs on the one Ray gives it, as ``cuda`` (``cuda:1`` failed: Ray
    shows a task its own GPU alone). Ray is stood in for; the points here finish at once."""
    import types

    pytest.importorskip("ray.exceptions")  # the real one, which the sweep reads its errors from
    from vcm.ctc import run as ctc_run

    class Ref:
        def __init__(self, spec):
            self.spec = spec

    task = types.SimpleNamespace(options=lambda **kw: types.SimpleNamespace(
        remote=lambda spec, folder, *after: Ref({**spec, "gpus": kw["num_gpus"]})))
    fake = types.ModuleType("ray")
    fake.is_initialized, fake.remote = (lambda: True), (lambda fn: task)
    fake.get = lambda ref: {"status": "ok", "sequence": "s", "codec": "c", "point": ref.spec["point_id"], "bytes": 10,
                            "kbps": 1.0, "psnr": 30.0, "gpus": ref.spec["gpus"], "device": ref.spec["device"]}
    fake.wait = lambda pending, num_returns, timeout: (pending[:1], pending[1:])
    monkeypatch.setitem(sys.modules, "ray", fake)
    said = []
    monkeypatch.setattr(ctc_run.progress, "log", lambda message, style=None: said.append(message))
    for resources, device in (({"CPU": 8.0}, "cuda"), ({"CPU": 8.0, "GPU": 1.0}, "cuda"), ({"CPU": 8.0}, "cpu")):
        fake.cluster_resources = lambda: resources
        said.clear()
        spec = {"sequence": "s", "codec": "c", "point_id": "p", "workdir": str(tmp_path / "p"), "device": device}
        rows = ctc_run.execute([spec], 1, "ray", None)
        assert rows[0]["gpus"] == (device == "cuda")
        warned = [m for m in said if "no GPU" in m]
        assert warned == (["the Ray cluster has no GPU now: its points on CUDA wait until a node with one joins "
                           "(Ctrl-C stops the sweep)"] if device == "cuda" and "GPU" not in resources else [])
    for resources, device, gpus, runs_on in (({"CPU": 8.0, "GPU": 2.0}, "auto", 1, "cuda"),
                                             ({"CPU": 8.0}, "auto", 0, "auto"),
                                             ({"CPU": 8.0, "GPU": 2.0}, "cuda:1", 1, "cuda")):
        fake.cluster_resources = lambda: resources
        said.clear()
        spec = {"sequence": "s", "codec": "c", "point_id": "p", "workdir": str(tmp_path / "p"), "device": device}
        row = ctc_run.execute([spec], 1, "ray", None)[0]
        assert (row["gpus"], row["device"]) == (gpus, runs_on)
        assert any("cuda:1 read as cuda" in m for m in said) == (device == "cuda:1")


def test_parallel_points_spread_over_the_machines_gpus(tmp_path, monkeypatch):
    """`vcm ctc run --jobs N` on a machine with several GPUs: a point on ``auto`` or ``cuda`` starts on the GPU the
    fewest running points use, where every worker took cuda:0 and the other GPUs stood idle; a point on ``cuda:N``
    keeps its GPU and counts on it; a GPU is free again once its point has finished. torch's CUDA is stood in
    for (three GPUs), and so are the workers (each point finishes as it starts)."""
    import concurrent.futures

    import torch

    from vcm.ctc import run as ctc_run
    from vcm.ctc.gpu_share import GpuShare

    given = []

    class Pool:
        def submit(self, fn, spec):
            given.append(spec["device"])
            done = concurrent.futures.Future()
            done.set_result({"status": "ok", "sequence": "s", "codec": "c", "point": spec["point_id"], "bytes": 10,
                             "kbps": 1.0, "psnr": 30.0})
            return done

        def shutdown(self, **kw):
            pass

    class Workers:
        def __init__(self, jobs):
            self.pool = Pool()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(ctc_run, "_Workers", Workers)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    said = []
    monkeypatch.setattr(ctc_run.progress, "log", lambda message, style=None: said.append(message))
    devices = ["auto", "cuda:0", "cuda", "auto", "cpu", "auto"]
    specs = [{"sequence": "s", "codec": "c", "point_id": f"p{i}", "workdir": str(tmp_path / f"p{i}"), "device": d}
             for i, d in enumerate(devices)]
    rows = ctc_run.execute(specs, 4, "local", None)
    assert [r["status"] for r in rows] == ["ok"] * 6
    # four at once (cuda:0 twice: the pinned point counts), then the last two once those four have finished
    assert given == ["cuda:0", "cuda:0", "cuda:1", "cuda:2", "cpu", "cuda:0"]
    assert sum("spread over this machine's 3 CUDA GPUs" in m for m in said) == 1
    assert GpuShare.for_points(specs, 1) is None and GpuShare.for_points(specs[4:5], 4) is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert GpuShare.for_points(specs, 4) is None


@pytest.mark.slow
def test_sigterm_to_a_ray_sweep_stops_its_points_as_ctrl_c_does(tmp_path):
    """`vcm ctc run --backend ray` took SIGTERM (a cluster scheduler's time limit, Ray's main use here) as Ray's
    driver does: a C++ stack dump, no word of vcm's, and the local Ray instance shut down under the fit, which lost
    what it had trained since its last checkpoint. Now the sweep stops as any command does: each running point gets
    its Ctrl-C, its fit finishes the step in progress and saves, and the run ends with vcm's line and code 130."""
    import threading

    pytest.importorskip("ray")
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text("sequences: [{name: c, path: 'sample:carphone', frames: '0:4'}]\ndevice: cpu\ncodecs:\n"
                   "  hinerv:\n    fits: [{preset: hinerv-demo, steps: 100000, rate_aware: false, points: [{lambda: 1}]}]\n")
    proc = start_cli("ctc", "run", cfg, "--out", tmp_path / "out", "--backend", "ray", cwd=tmp_path)
    err: list[str] = []
    drain = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)  # a full pipe would stall it
    drain.start()
    log = None
    deadline = time.time() + 240
    while log is None or "/100000  (" not in log.read_text():  # the point's fit is training in its Ray worker
        assert time.time() < deadline and proc.poll() is None, "".join(err)[-2000:]
        time.sleep(0.5)
        log = next((tmp_path / "out" / "points").rglob("point.log"), None) if (tmp_path / "out" / "points").exists() else None
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    drain.join(timeout=10)
    text = "".join(err)
    assert proc.returncode == 130 and "interrupted (SIGTERM): stopped" in text, text[-2000:]
    assert "SIGTERM received" not in text and "Traceback" not in text
    stopped = [line for line in log.read_text().splitlines() if "(steps): stopped at " in line]
    assert stopped, log.read_text()[-2000:]  # the fit saved where it stopped, not at its last periodic checkpoint
    step = int(stopped[0].split("stopped at ")[1].split("/")[0])
    import torch

    (ckpt,) = (tmp_path / "out" / "fits").rglob("checkpoint.pt")
    assert torch.load(ckpt, weights_only=False)["step"] == step


@pytest.mark.parametrize("value, seconds", [("5", 5.0), ("0", 0.0), ("", 10.0), ("-3", 10.0), ("soon", 10.0),
                                            ("nan", 10.0), ("inf", 10.0)])
def test_the_progress_interval_reads_what_it_can_and_keeps_the_default_otherwise(monkeypatch, value, seconds):
    """nan was taken as 0 seconds: a progress line at every update of every stage. What the command line refuses
    (vcm.progress.check_settings) is the default here, for a library caller."""
    from vcm import progress

    monkeypatch.setenv("VCM_PROGRESS_INTERVAL", value)
    assert progress.interval() == seconds


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_terminal_that_cannot_write_every_character_gets_question_marks(tmp_path, encoding):
    """λ, ≥ and – in help, progress and tables ended the command in a UnicodeEncodeError (PYTHONIOENCODING=ascii, a
    Latin-1 locale)."""
    def vcm(*args):
        proc = subprocess.run([sys.executable, "-m", "vcm", *map(str, args)], cwd=tmp_path, capture_output=True,
                              timeout=300, env=dict(os.environ, PYTHONIOENCODING=encoding, COLUMNS="200"))
        return proc.returncode, proc.stdout.decode(encoding), proc.stderr.decode(encoding)

    code, out, err = vcm("compress", "--help")
    assert code == 0 and "Traceback" not in err, err[-1500:]
    assert "Rate?distortion" in out
    code, _, err = vcm("fit", "sample:carphone", "--frames", "9:3")
    assert code == 1 and "Traceback" not in err and "error:" in err


def test_a_results_folder_whose_name_is_not_utf8_is_run_and_reported(tmp_path):
    """A Latin-1 folder name (b'r\\xe9s', as Python hands it on: 'r\\udce9s') ended ``vcm ctc run`` in a
    UnicodeEncodeError when its first progress line was written to ctc.log."""
    from tests.conftest import tiny_ctc_config

    config = tiny_ctc_config(tmp_path, "{steps: 2, batch: 2}", "  hevc: {{qps: [40]}}\n")
    out = os.fsdecode(b"r\xe9s")
    run = subprocess.run([sys.executable, "-m", "vcm", "ctc", "run", config, "--out", out], cwd=tmp_path,
                         capture_output=True, text=True, errors="replace", timeout=300)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-1500:]
    assert "r\\udce9s" in (tmp_path / out / "ctc.log").read_text()
    report = subprocess.run([sys.executable, "-m", "vcm", "ctc", "report", out], cwd=tmp_path, capture_output=True,
                            text=True, errors="replace", timeout=300)
    assert report.returncode == 0 and (tmp_path / out / "report.md").is_file(), report.stderr[-1500:]


def test_a_file_name_that_is_not_utf8_is_written_as_its_bytes_on_a_utf8_terminal(tmp_path):
    """Under a UTF-8 locale (here PYTHONIOENCODING=utf-8: stdout's errors 'strict'), the first table naming a Latin-1
    file name ended the command in a UnicodeEncodeError; Python's C locale writes such a name's own bytes, as ls
    does, and so does vcm now."""
    from vcm.video.yuv import write_yuv420

    write_yuv420(tmp_path / os.fsdecode(b"caf\xe9_32x24_25.yuv"), moving_frames(t=2, h=24, w=32))
    proc = subprocess.run([sys.executable, "-m", "vcm", "info", os.fsdecode(b"caf\xe9_32x24_25.yuv")], cwd=tmp_path,
                          capture_output=True, timeout=300, env=dict(os.environ, PYTHONIOENCODING="utf-8"))
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert b"caf\xe9_32x24_25.yuv" in proc.stdout


def test_a_working_folder_removed_under_the_shell_is_one_line(tmp_path):
    """torch's libraries failed to load there ('Intel oneMKL FATAL ERROR: Cannot load libtorch_cpu.so'), exit 2."""
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = subprocess.run(["sh", "-c", 'cd "$1" && rmdir "$1" && exec "$2" -m vcm fit sample:carphone --frames 0:2',
                           "sh", str(gone), sys.executable], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert "the current folder no longer exists" in proc.stderr


@pytest.mark.parametrize("variable, value, said", [
    ("VCM_MEMORY_BUDGET", "abc", "VCM_MEMORY_BUDGET='abc' is not a size such as 2G or 512M"),
    ("VCM_WORK_BUDGET", "-1", "VCM_WORK_BUDGET='-1' is not an amount such as 50T"),
    ("VCM_PROGRESS", "bar", "VCM_PROGRESS='bar': use bars, lines or 0 (off)"),
    ("VCM_PROGRESS_INTERVAL", "1m", "VCM_PROGRESS_INTERVAL='1m': give the seconds between progress lines")])
def test_a_limit_mistyped_in_the_environment_is_refused_before_any_work(tmp_path, variable, value, said):
    """Read where a stream is decoded, a typo failed every CTC point after its network had trained; a progress setting
    vcm does not know was taken for its default without a word (VCM_PROGRESS=bar gave lines in a log)."""
    cfg = tiny_ctc_config(tmp_path, "{steps: 4, batch: 2, lr: 3.0e-3}",
                          "  nerv:\n    fits: [{{preset: {preset}, points: [{{prune: 0.0, bits: 8}}]}}]\n")
    proc = run_main("ctc", "run", cfg, "--out", tmp_path / "out", cwd=tmp_path, env={variable: value})
    assert proc.returncode == 1 and said in " ".join(proc.stderr.split()), proc.stderr[-1500:]
    assert not (tmp_path / "out").exists()
    assert run_main("--help", env={variable: value}).returncode == 0


@pytest.mark.parametrize("entry, said", [
    ("reference: original, detector: {name: 'no_such_module:Detector'}", "could not import no_such_module"),
    ("annotations: absent.json, detector: {name: opencv-face}", "absent.json does not exist"),
    ("annotations: preset.yaml, detector: {name: opencv-face}", "preset.yaml is not JSON"),
    ("reference: original, detector: {name: oracle}", "the oracle detector needs ground truth")])
def test_what_a_point_is_scored_with_is_checked_before_any_network_trains(tmp_path, entry, said):
    """A detector that does not import (or weights that are not there) and an annotation file that is missing or
    not COCO's failed every point after its network had trained; a point that scores nothing needs neither."""
    cfg = tiny_ctc_config(tmp_path, "{steps: 4, batch: 2, lr: 3.0e-3}",
                          "  nerv:\n    fits: [{{preset: {preset}, points: [{{prune: 0.0, bits: 8}}]}}]\n")
    (tmp_path / "preset.yaml").write_text("not: coco\n")
    cfg.write_text(cfg.read_text().replace("frames: all}", f"frames: all, {entry}}}"))
    proc = run_main("ctc", "run", cfg, "--out", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 1 and "error: sequence tiny: " in proc.stderr, proc.stderr[-1500:]
    assert said in " ".join(proc.stderr.split())
    assert not (tmp_path / "out" / "fits").exists() and not list((tmp_path / "out").rglob("result.json"))
    cfg.write_text(cfg.read_text().replace(entry, "detector: {name: 'no_such_module:Detector'}"))
    assert run_main("ctc", "run", cfg, "--out", tmp_path / "out", cwd=tmp_path).returncode == 0  # scores nothing


def test_a_ray_of_vcms_own_checks_what_its_points_are_scored_with_as_the_local_backend_does(tmp_path):
    """Its points run on this machine too: a detector that does not import failed each of them after its training
    (the check ran for the local backend only). A cluster's nodes may hold what this machine does not: unchecked."""
    pytest.importorskip("ray")
    cfg = tiny_ctc_config(tmp_path, "{steps: 4, batch: 2, lr: 3.0e-3}",
                          "  nerv:\n    fits: [{{preset: {preset}, points: [{{prune: 0.0, bits: 8}}]}}]\n")
    cfg.write_text(cfg.read_text().replace("frames: all}", "frames: all, reference: original, detector: "
                                                           "{name: 'no_such_module:Detector'}}"))
    proc = run_main("ctc", "run", cfg, "--out", tmp_path / "out", "--backend", "ray", cwd=tmp_path)
    assert proc.returncode == 1 and "error: sequence tiny: " in proc.stderr, proc.stderr[-1500:]
    assert "could not import no_such_module" in " ".join(proc.stderr.split())
    assert not (tmp_path / "out" / "fits").exists() and not list((tmp_path / "out").rglob("result.json"))
