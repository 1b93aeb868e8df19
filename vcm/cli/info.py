from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vcm.cli.app import app
from vcm.samples import resolve
from vcm.cli.common import BitDepthOpt, FpsOpt, JsonOpt, SizeOpt, print_json, probe_input, start, table


@app.command()
def info(
    input: Path = typer.Argument(..., help="A .yuv file, a video container, a folder of frames, a .nerv/.icm stream, a vcm masks file, a vcm fit's or vcm icm train's run folder, a vcm eval's output folder or a vcm ctc run's."),
    size: Optional[str] = SizeOpt,
    fps: Optional[float] = FpsOpt,
    bit_depth: Optional[int] = BitDepthOpt,
    md5: bool = typer.Option(False, "--md5", metavar="", help="Check the CTC frames against the manifest's md5."),
    json_out: bool = JsonOpt,
) -> None:
    """What vcm understands about a video, what a .nerv/.icm stream declares, or what a run folder holds.

    For a video: size, fps, frames, SFU-HW class and CTC range.

    For a stream: its video, rate and decoder, read without decoding a frame; for a .nerv of the latest format also how its grids are coded and where its bytes go.

    For a mask file: its video, source and edge share, or how far a stopped vcm masks got.

    For a run (runs/NAME, runs/latest): its video, network, schedule, how far it trained and its streams.

    For a vcm icm train run: its codec, λ and how far it trained.

    For a vcm eval's folder: its scores, or how far a stopped evaluation got.

    For a vcm ctc run's folder: its points, finished, failed or not, and its report.
    """
    from vcm.cli.stream_info import STREAM_SUFFIXES, describe_stream, stream_rows
    from vcm.errors import VcmError
    from vcm.video.source import clip_md5, rate_note

    start()
    input = resolve(input)  # sample:NAME → the bundled clip
    from vcm.cli.ctc_info import ctc_rows, describe_ctc_results, is_ctc_results
    from vcm.cli.eval_info import describe_evaluation, evaluation_rows, is_evaluation
    from vcm.cli.icm_info import describe_icm_run, icm_run_rows, is_icm_run
    from vcm.cli.mask_info import describe_masks, is_masks, mask_rows
    from vcm.cli.run_info import describe_run, is_run, run_rows

    said = (("a stream", describe_stream, stream_rows) if input.suffix.lower() in STREAM_SUFFIXES and input.is_file()
            else ("a run folder", describe_run, run_rows) if is_run(input)
            else ("an SA-ICM training folder", describe_icm_run, icm_run_rows) if is_icm_run(input)
            else ("an evaluation folder", describe_evaluation, evaluation_rows) if is_evaluation(input)
            else ("a CTC results folder", describe_ctc_results, ctc_rows) if is_ctc_results(input)
            else ("a mask file", describe_masks, mask_rows) if is_masks(input) else None)
    if said is not None:  # it says what it holds: read it, nothing to probe
        what, describe, rows_of = said
        if size or fps or bit_depth or md5:
            raise VcmError(f"--size, --fps, --bit-depth and --md5 are for videos; {what} says what it holds")
        r = describe(input)
        if json_out:
            print_json(r)
        else:
            table(f"vcm info: {input.name}", rows_of(r))
        return
    if input.suffix.lower() in (".yaml", ".yml") and input.is_file():
        raise VcmError(_config_hint(input))
    if not input.exists():  # a config vcm ships, named as `vcm ctc run` and `--preset` take it
        from vcm.resources import shipped_config

        shipped = shipped_config("ctc", input) or shipped_config("nerv", input)
        if shipped is not None:
            raise VcmError(_config_hint(shipped, named=str(input)))
    try:
        vi = probe_input(input, size, fps, bit_depth, need_fps=False)  # info shows what it can without a rate
    except VcmError as err:
        if not input.is_dir():
            raise
        raise VcmError(f"{err}; nor is it a vcm fit's run folder, a vcm icm train's, a vcm eval's output folder or "
                       "a vcm ctc run's results folder") from None
    seq = vi.sequence
    result = {
        "path": str(vi.path), "kind": vi.kind, "name": vi.name, "width": vi.width, "height": vi.height,
        "fps": vi.fps, "fps_assumed": vi.fps_assumed, "frames": vi.num_frames, "bit_depth": vi.bit_depth,
        "reading_note": vi.reading_note,
        "source_frames": [vi.source_range.start, vi.source_range.stop],
        "sequence": seq.name if seq else None, "class": seq.seq_class if seq else None,
        "ctc_frames": [seq.ctc_first, seq.ctc_last] if seq else None,
        "is_ctc_clip": vi.is_ctc_clip,
        "holds": ("CTC clip" if vi.is_ctc_clip else "full sequence" if seq and vi.num_frames == seq.frames
                  else "partial sequence" if seq else "video"),
    }
    if md5:
        got = clip_md5(vi)
        result["clip_md5"] = got
        result["md5_match"] = None if got is None else got == seq.clip_md5
    if json_out:
        print_json(result)
        return
    rows = [
        ("file", str(vi.path)), ("type", vi.kind), ("name", vi.name),
        ("size", f"{vi.width}x{vi.height}"),
        ("fps", f"{vi.fps:g} {rate_note(vi)}".strip() if vi.fps is not None else "unknown (pass --fps F" +
         (", or name the file Name_WxH_fps.yuv)" if vi.kind == "yuv" else "; its header has no F)")),
        ("frames", str(vi.num_frames)),
        ("bit depth", str(vi.bit_depth) + (f" ({vi.reading_note})" if vi.reading_note else "")),
        ("source frames", f"{vi.source_range.start}:{vi.source_range.stop}"),
        ("holds", result["holds"]),
    ]
    if seq:
        rows += [("SFU-HW class", seq.seq_class), ("CTC frames", f"{seq.ctc_first}–{seq.ctc_last} ({seq.ctc_count})"),
                 ("RA QPs", ", ".join(map(str, seq.qps("ra"))))]
    if md5:
        rows.append(("CTC md5", "not applicable" if result["clip_md5"] is None else
                     f"{result['clip_md5']} ({'matches' if result['md5_match'] else 'DIFFERS from'} the CTC clip)"))
    table(f"vcm info: {input.name}", rows)


def _config_hint(path: Path, named: str | None = None) -> str:
    """What to run on a YAML file of vcm's instead of ``vcm info`` (which reads videos, streams and folders);
    ``named``: the name of a config vcm ships, by which the commands take it."""
    from vcm.errors import VcmError
    from vcm.nerv.presets import read_preset

    try:
        raw = read_preset(path)
    except (VcmError, OSError, UnicodeDecodeError):  # not YAML: no command of vcm's reads it
        raw = None
    keys = set(raw) if isinstance(raw, dict) else set()
    what, how, ships = (named, named, " vcm ships") if named else (path.name, path, "")

    def copy(kind: str) -> str:
        return f"; vcm config copy {kind}/{named} writes it out to edit" if named else ""

    if keys & {"sequences", "codecs"}:
        return (f"{what} is a CTC config{ships}: vcm ctc run {how} --dry-run lists its points and what each would "
                f"run{copy('ctc')}")
    if keys & {"model", "train"}:
        curve = "; its curve is what a CTC codec section without fits runs" if "curve" in keys else ""
        return f"{what} is a fit preset{ships}: vcm fit VIDEO --preset {how} fits it{curve}{copy('nerv')}"
    if keys & {"generator", "alpha_param"}:
        return f"{path.name} is a SAM mask generator's settings: vcm masks VIDEO --config {path} uses them"
    return f"{path.name}: vcm info reads videos, .nerv/.icm streams, mask files and vcm's run and results folders"
