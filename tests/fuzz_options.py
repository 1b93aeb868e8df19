"""Every option of every vcm command given values no one should give, one option at a time or several at once.

    python -m tests.fuzz_options [COMMAND ...] [--few] [--pairs N] [--seed S] [--limit SECONDS]

Each command starts from a command line that works on tiny inputs made here (a 6-frame 32×24 clip, a NeRV fitted on
it and its stream, a CTC config and its results, SFU-HW labels, a COCO JSON, tiny SA-ICM and SAM checkpoints). Then
each option (and argument) in turn gets each value of its kind: numbers that overflow, NaN, infinities, zero and
negatives; words, frame spans, devices torch knows but vcm does not run on; paths to a folder, a binary file, a
symbolic link that leads back to itself, a name too long for the file system, a named pipe. ``--few`` takes four values of each
kind; ``--pairs N`` instead draws N command lines per command, each with one to three options set at random from
those values and some valid edge values (a frame, a preset name, 1, 0.5). Every case runs the real entry point in
this process (``vcm.cli.main``), in a folder of its own.

Outcomes: ``accepted`` (exit 0), ``refused`` (exit 1 or 2 and no traceback), ``slow`` (still working after
``--limit`` seconds: a value that asks for that much work, such as ``--epochs 99999999999999999999``) and ``crash``
(an exception ``main`` let through, a traceback on stderr, another exit code: a bug). Prints one JSON summary with
each crash's command line and exception, and exits 1 when there is one. Commands are ``fit``, ``ctc run``, ... as
typed; ``masks-sam`` is ``vcm masks`` with the tiny SAM, and ``vcm demo`` is left out (it runs worker processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path


# The command line each command starts from; {name} is a fixture, {out} the case's own folder, {results} a copy of
# the CTC results made for the case.
COMMANDS = {
    "compress": ["{run}", "--bits", "8", "--finetune-epochs", "0", "--out", "{out}/x.nerv", "--device", "cpu"],
    "decode": ["{stream}", "--out", "{out}/d.y4m"],
    "eval": ["sample:carphone", "--annotations", "{coco}", "--detector", "oracle", "--out", "{out}/e"],
    "fit": ["{clip}", "--config", "{preset}", "--out", "{out}/run", "--device", "cpu"],
    "info": ["{clip}"],
    "masks": ["{y4m}", "--source", "canny", "--out", "{out}/m.npz"],
    "masks-sam": ["{y4m}", "--sam-model", "tiny", "--sam-checkpoint", "{sam}", "--out", "{out}/m.npz",
                  "--device", "cpu"],
    "ctc run": ["{ctc_config}", "--out", "{out}/c", "--dry-run"],
    "ctc report": ["{results}"],
    "ctc compare": ["{results}", "{results2}"],
    "gt convert": ["{labels}", "--sequence", "BQSquare", "--frames", "471:474", "--out", "{out}/gt.json"],
    "icm train": ["{images}", "--masks", "none", "--arch", "tcm-tiny", "--batch", "2", "--crop", "64",
                  "--steps-per-epoch", "1", "--epochs", "1", "--out", "{out}/r", "--device", "cpu"],
    "icm encode": ["{y4m}", "--checkpoint", "{icm}", "--out", "{out}/c.icm"],
    "icm decode": ["{icm_stream}", "--checkpoint", "{icm}", "--out", "{out}/d.y4m"],
    "config list": [],
    "config copy": ["ctc/sfu-cd", "--out", "{out}/c.yaml"],
}

NUMBERS = ["99999999999999999999", "nan", "-1", "1e308", "0", "inf", "-inf", "1e-320", "abc", ""]
WORDS = ["", "mps", "1:0", "x" * 300, " ", "nan", "0", "-1", "abc", "0:0", "-3:", "::", "a=b", "∞", "1e400", "5:",
         ":3", "0:99999999999", "boxes:", "sam:x", "cuda:7", "meta", "1,2,,", "{}", "[1"]
EDGE_NUMBERS = ["1", "2", "3", "0.5", "1e-3", "1000", "0.999", "-0"]
EDGE_WORDS = ["0:1", "5:6", "1:3", "all", "ctc", "auto", "cpu", "4", "1k", "0.1", "hevc", "none", "tiny", "tcm-tiny",
              "nerv", "hinerv", "sa-nerv", "canny", "boxes:opencv-face", "opencv-face", "oracle", "original", "psnr",
              "map", "BQSquare", "carphone", "2x2", "32x24", "1:2", "0:6"]


def paths(fx: dict) -> list[str]:
    """Path values: a folder, files of the wrong kind, a link loop, a name too long, a file given as a folder."""
    return [str(fx["root"]), fx["junk"], fx["loop"], str(Path(fx["root"]) / ("n" * 300)), fx["y4m"] + "/",
            str(Path(fx["root"]) / "absent" / "x.y4m"), "", fx["clip"], fx["stream"], fx["coco"], fx["run"],
            "/proc/version", fx["labels"], fx["fifo"]]


def kind_of(param) -> str:
    name = param.type.name
    return "number" if ("float" in name or "int" in name) else "path" if name == "path" else "word"


def values(param, fx: dict, few: bool) -> list[str]:
    chosen = {"number": NUMBERS, "word": WORDS, "path": paths(fx)}[kind_of(param)]
    return chosen[:4] if few else chosen


def fixtures(root: Path) -> dict:
    """Make the tiny inputs every command starts from in ``root``; their paths by name."""
    import numpy as np
    import torch
    from PIL import Image

    from tests.conftest import moving_frames, run_main, tiny_ctc_config
    from vcm.icm.archs import TINY
    from vcm.icm.tcm import TCM
    from vcm.masks.sam import build_tiny_sam
    from vcm.video import write_video
    from vcm.video.yuv import write_yuv420

    def ok(proc):
        if proc.returncode != 0:
            raise RuntimeError(f"a fixture's command failed: {proc.args}\n{proc.stderr[-2000:]}")

    frames = moving_frames(t=6, h=24, w=32)
    write_yuv420(root / "Tiny_32x24_25.yuv", frames)
    write_video(root / "tiny.y4m", frames, 25)
    (root / "junk.bin").write_bytes(b"\x00\xffjunk" * 50)
    (root / "loop").symlink_to(root / "loop")
    os.mkfifo(root / "pipe")  # an input vcm cannot seek in: opening it waited for a writer
    (root / "preset.yaml").write_text("model: {arch: nerv, fc_dim: 8, stem_dims: [24], lower_width: 6, "
                                      "embed: '1.25_8'}\ntrain: {steps: 6, batch: 2, lr: 3.0e-3}\n")
    ok(run_main("fit", root / "Tiny_32x24_25.yuv", "--config", root / "preset.yaml", "--out", root / "run",
                "--device", "cpu"))
    ok(run_main("compress", root / "run", "--bits", "8", "--finetune-epochs", "0", "--out", root / "tiny.nerv"))
    (root / "ctc").mkdir()
    config = tiny_ctc_config(root / "ctc", "{steps: 6, batch: 2, lr: 3.0e-3}",
                             "  nerv:\n    fits: [{{preset: {preset}, points: [{{prune: 0.0, bits: 8}}, "
                             "{{prune: 0.0, bits: 6}}]}}]\n")
    ok(run_main("ctc", "run", config, "--out", root / "results"))
    shutil.copytree(root / "results", root / "results2")
    (root / "labels").mkdir()
    (root / "labels" / "BQSquare_416x240_60_seq_471.txt").write_text("0 0.5 0.5 0.25 0.5\n56 0.1 0.2 0.1 0.1\n")
    (root / "labels" / "BQSquare_416x240_60_seq_473.txt").write_text("2 0.5 0.5 0.5 0.5\n")
    (root / "gt.json").write_text(json.dumps({
        "images": [{"id": k, "width": 176, "height": 144, "file_name": f"clip_176x144_30_val_{f:03d}.png"}
                   for k, f in enumerate(range(0, 12, 3))],
        "annotations": [{"id": k + 1, "image_id": k, "category_id": 1, "bbox": [20, 30, 50, 60], "area": 3000,
                         "iscrowd": 0} for k in range(4)],
        "categories": [{"id": 1, "name": "person"}]}))
    torch.manual_seed(0)
    model = TCM(TINY)
    model.update(force=True)
    torch.save({"arch": "tcm-tiny", "config": TINY.to_dict(), "state_dict": model.state_dict()}, root / "icm.pth.tar")
    ok(run_main("icm", "encode", root / "tiny.y4m", "--checkpoint", root / "icm.pth.tar", "--out", root / "c.icm"))
    (root / "images").mkdir()
    for i in range(3):
        image = moving_frames(t=1, h=80, w=96, seed=i)[0].transpose(1, 2, 0)
        Image.fromarray(np.ascontiguousarray(image)).save(root / "images" / f"i{i}.png")
    torch.save(build_tiny_sam().state_dict(), root / "tiny_sam.pth")
    names = {"clip": "Tiny_32x24_25.yuv", "y4m": "tiny.y4m", "junk": "junk.bin", "loop": "loop",
             "preset": "preset.yaml",
             "run": "run", "stream": "tiny.nerv", "ctc_config": "ctc/ctc.yaml", "results": "results",
             "results2": "results2", "labels": "labels", "coco": "gt.json", "icm": "icm.pth.tar", "icm_stream": "c.icm",
             "images": "images", "sam": "tiny_sam.pth", "fifo": "pipe"}
    return {"root": str(root), **{k: str(root / v) for k, v in names.items()}}


def click_command(name: str):
    """The click command behind ``vcm NAME`` (``masks-sam`` is ``masks``)."""
    import typer

    from vcm.cli import app

    cmd = typer.main.get_command(app)
    for word in name.removesuffix("-sam").split():
        cmd = cmd.commands[word]
    return cmd


def with_value(argv: list[str], param, value: str) -> list[str]:
    """``argv`` with ``param`` set to ``value``: an option's value replaced (or the option added), the first
    argument replaced, or a flag added."""
    argv, value = list(argv), value.replace("{", "{{").replace("}", "}}")  # the case fills in {out} and the fixtures
    if type(param).__name__.endswith("Argument"):
        return [value] + argv[1:]
    if getattr(param, "is_flag", False):
        return argv + [param.opts[0]]
    for i, word in enumerate(argv):
        if word in param.opts:
            argv[i + 1] = value
            return argv
    return argv + [param.opts[0], value]


class _Slow(BaseException):  # not an Exception: code that catches those does not take it for its own error
    pass


_alarm_fired = False


def _alarm(*_):
    global _alarm_fired
    _alarm_fired = True
    raise _Slow()


def run_case(command: str, argv: list[str], fx: dict, work: Path, limit: int) -> tuple[str, str]:
    """One command line in a folder of its own: (outcome, what to report)."""
    from tests.conftest import run_main

    out = Path(tempfile.mkdtemp(prefix="case", dir=work))
    shutil.copytree(fx["results"], out / "results")
    fill = {**fx, "out": str(out), "results": str(out / "results")}
    argv = [a.format(**fill) for a in argv]
    global _alarm_fired
    _alarm_fired = False
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(limit)
    try:
        proc = run_main(*command.removesuffix("-sam").split(), *argv, cwd=out)
        if _alarm_fired:  # stopped at the limit, whatever the interruption then made the code do
            raise _Slow()
        if "Traceback" in proc.stderr or proc.returncode not in (0, 1, 2, 130):
            outcome, detail = "crash", proc.stderr[-600:]
        else:
            outcome = "accepted" if proc.returncode == 0 else "refused"
            detail = (proc.stderr.strip().splitlines() or [""])[-1][:200]
    except _Slow:
        outcome, detail = "slow", ""
    except BaseException as err:  # noqa: BLE001  (anything main lets through is what this looks for)
        from tests.fuzz_files import where

        # the limit's exception may come out wrapped in, or replaced by, an error of the code it interrupted
        outcome, detail = ("slow", "") if _alarm_fired else ("crash", f"{type(err).__name__}: {str(err)[:200]} at "
                                                                      f"{where(err)}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        shutil.rmtree(out, ignore_errors=True)
    return outcome, detail


def cases(command: str, fx: dict, few: bool, pairs: int, rng: random.Random) -> list[list[str]]:
    """The command lines to try for ``command``."""
    base = COMMANDS[command]
    params = [p for p in click_command(command).params if p.name != "help"]
    if not pairs:
        return [with_value(base, p, v) for p in params if not getattr(p, "is_flag", False) for v in values(p, fx, few)]
    edge = {"number": EDGE_NUMBERS, "word": EDGE_WORDS, "path": []}
    lines = []
    for _ in range(pairs):
        argv = list(base)
        for p in rng.sample(params, min(len(params), rng.randint(1, 3))):
            argv = with_value(argv, p, rng.choice(values(p, fx, few) + edge[kind_of(p)] * 2))
        lines.append(argv)
    return lines


@contextlib.contextmanager
def _restored(setter, value):
    try:
        yield
    finally:
        setter(value)


def run(commands: list[str], few: bool = False, pairs: int = 0, seed: int = 1, limit: int = 40) -> dict:
    """Fuzz ``commands``; the summary (``crashes``: the command lines that were neither run nor refused in one line)."""
    from vcm import progress

    outcomes = {"accepted": 0, "refused": 0, "slow": 0, "crash": 0}
    crashes, slow = [], []
    started, quiet = time.time(), progress._quiet
    progress.set_quiet(True)
    with tempfile.TemporaryDirectory(prefix="vcm-fuzz-options-") as tmp, _restored(progress.set_quiet, quiet):
        (Path(tmp) / "fixtures").mkdir()
        fx = fixtures(Path(tmp) / "fixtures")
        work = Path(tmp) / "work"
        work.mkdir()
        for command in commands:
            base, detail = run_case(command, COMMANDS[command], fx, work, max(limit, 120))
            if base != "accepted":
                raise RuntimeError(f"vcm {command}'s starting command line did not run ({base}): {detail}")
            for argv in cases(command, fx, few, pairs, random.Random(f"{seed}:{command}")):
                outcome, detail = run_case(command, argv, fx, work, limit)
                outcomes[outcome] += 1
                line = f"vcm {command.removesuffix('-sam')} " + " ".join(argv)
                if outcome == "crash":
                    crashes.append({"command": line, "error": detail})
                elif outcome == "slow":
                    slow.append(line)
    return {"commands": commands, "seed": seed, "pairs": pairs, "outcomes": outcomes, "crashes": crashes,
            "slow": slow, "seconds": round(time.time() - started)}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.fuzz_options", description=__doc__.split("\n\n")[0])
    parser.add_argument("commands", nargs="*", default=list(COMMANDS), help=f"of: {', '.join(COMMANDS)}")
    parser.add_argument("--few", action="store_true", help="four values of each kind instead of all")
    parser.add_argument("--pairs", type=int, default=0, help="N random command lines per command instead")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=int, default=40, help="seconds a case may run before it counts as slow")
    args = parser.parse_args()
    unknown = [c for c in args.commands if c not in COMMANDS]
    if unknown:
        parser.error(f"unknown command {unknown[0]!r}; use one of: {', '.join(COMMANDS)}")
    os.environ.setdefault("VCM_PROGRESS", "0")
    summary = run(args.commands, args.few, args.pairs, args.seed, args.limit)
    print(json.dumps(summary, indent=1))
    sys.exit(1 if summary["crashes"] else 0)


if __name__ == "__main__":
    main()
