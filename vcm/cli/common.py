"""Options and printing shared by several commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from vcm import progress

out = Console(highlight=False, markup=False, emoji=False)  # tables hold paths and names: plain text (vcm.progress)

SizeOpt = typer.Option(None, "--size", help="Frame size WxH of a raw .yuv (default: what its name says; given, it wins).")
FpsOpt = typer.Option(None, "--fps", help="Frame rate (default: what the file name, header or container says; given, it wins).")
# for a command that reads no frame rate (it works frame by frame), which refuses it in one line: a raw file without
# a rate in its name was refused until --fps gave one that nothing then read
UnreadFpsOpt = typer.Option(None, "--fps", hidden=True)
BitDepthOpt = typer.Option(None, "--bit-depth", help="Sample bit depth of a raw .yuv (8, 10; default from the name or 8).")
SOURCE_FRAMES_HELP = "ctc | all | auto | A:B (source frames, B exclusive); auto, the default, is ctc for an SFU-HW sequence and all for any other video."
SourceFramesOpt = typer.Option("auto", "--frames", help=SOURCE_FRAMES_HELP)
DeviceOpt = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda[:N].")
OverwriteOpt = typer.Option(False, "--overwrite", metavar="", help="Replace the output if it exists (it is refused otherwise: a video or JSON carries no mark of who wrote it).")
# Points run at once, at most: far above any machine's cores, below the C int that --jobs 1e20 overflowed.
JOBS_MAX = 4096
JsonOpt = typer.Option(False, "--json", metavar="", help="Print machine-readable JSON on stdout (progress stays on stderr; VCM_PROGRESS=0 silences it).")


def probe_input(path: Path, size: Optional[str], fps: Optional[float], bit_depth: Optional[int], need_fps: bool = True):
    from vcm.video import probe
    from vcm.video.naming import parse_size

    return probe(path, size=parse_size(size) if size else None, fps=fps, bit_depth=bit_depth, need_fps=need_fps)


def check_frames_output(out: Optional[Path], inputs: list, overwrite: bool, json_out: bool) -> bool:
    """Check a decoder's ``--out`` before any frame is decoded: a name no writer takes, an output that would
    replace an input or an existing file without ``--overwrite``; ``-`` (Y4M on stdout) with ``--json``, which
    prints there too. True when the frames go to stdout (the summary then goes to stderr)."""
    from vcm.outputs import check_output, check_replaceable
    from vcm.video.writer import check_writable, to_stdout

    if out is None or to_stdout(out):  # it was ignored without a word
        refuse_unused([("--overwrite", overwrite)], "--out -" if out is not None else "a decode without --out",
                      "it lets --out replace a file")
    if to_stdout(out):
        if json_out:
            from vcm.errors import VcmError

            raise VcmError("--out - writes the frames to stdout, where --json would print; give one of them")
        return True
    if out is not None:
        check_output(out, inputs=inputs, kind="any")
        check_replaceable(out, overwrite)
        check_writable(out)
    return False


def exit_stopped(what: str) -> None:
    """End a stopped training (``what``: where it stopped and where its checkpoint is) with the command that
    continues it, and exit code 130 (reported here: typer's Exit(130) means an unhandled Ctrl-C)."""
    import shlex
    import sys

    from vcm.progress import console

    # the command as typed (a sample's name, --frames, the preset and schedule options), so that the resumed
    # run is the same training; on one line, whatever the terminal's width, to be copied whole
    again = shlex.join(["vcm", *sys.argv[1:]] + ([] if "--resume" in sys.argv else ["--resume"]))
    console.print(f"{what}. Continue with: {again}", style="yellow", soft_wrap=True)
    raise SystemExit(130)


def refuse_unused(options: list[tuple[str, object]], context: str, why: str) -> None:
    """One line for the first of ``options`` — ``(name, value)``, None when not given — that was given where
    ``context`` (e.g. ``--source canny``) makes no use of it: such options used to be ignored without a word."""
    given = next((name for name, value in options if value is not None and value is not False), None)
    if given is not None:
        from vcm.errors import VcmError

        raise VcmError(f"{given} does not apply to {context} ({why})")


def start() -> None:
    """Per-command setup. ``--json`` keeps stdout machine-readable; progress stays on stderr (a
    cluster job can keep both: ``vcm fit ... --json > result.json 2> fit.log``)."""
    progress.set_quiet(False)


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def table(title: str, rows: list[tuple[str, str]], stderr: bool = False) -> None:
    """A two-column table on stdout (``stderr``: on stderr, where stdout carries data, as ``vcm decode --out -``)."""
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for k, v in rows:
        t.add_row(k, v)
    (progress.console if stderr else out).print(t)


def fmt_ms_ssim(value: float | None, height: int, width: int) -> str:
    """An MS-SSIM cell for frames of ``height`` × ``width``: the value, or why there is none where the frames are
    too small for its five scales (a value missing for another reason stays "–")."""
    from vcm.quality import MS_SSIM_MIN_SIDE, ms_ssim_measurable

    if value is None and not ms_ssim_measurable(height, width):
        return f"n/a (needs frames of {MS_SSIM_MIN_SIDE} px or more on each side)"
    return fmt(value, 4)


def decoded_frames_text(selected: range, total: int, first_source: int) -> str:
    """A decode table's frames cell: how many, which of the stream's ``total``, and which source frames they are
    (the stream's first frame is source frame ``first_source``)."""
    return (f"{len(selected)} (stream {selected.start}:{selected.stop} of {total}, source "
            f"{first_source + selected.start}:{first_source + selected.stop})")


def quality_rows(r: dict, height: int, width: int, psnr_label: str = "PSNR (decoded)") -> list[tuple[str, str]]:
    """The quality rows of a table, by default a coded stream's, measured on its decoded frames (a fit's says
    ``psnr_label="PSNR"``): ``r`` holds ``psnr``, ``psnr_y``, ``ms_ssim`` (as :func:`vcm.quality.summarize` gives
    them) and, for an SA-NeRV fit's, ``edge_psnr``."""
    return [(psnr_label, fmt(r["psnr"], 2, " dB")), ("PSNR-Y", fmt(r["psnr_y"], 2, " dB")),
            ("MS-SSIM", fmt_ms_ssim(r["ms_ssim"], height, width)),
            *([("PSNR on edges", fmt(r["edge_psnr"], 2, " dB"))] if "edge_psnr" in r else [])]


def fmt(value, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"
