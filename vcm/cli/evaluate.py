from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vcm.cli import app
from vcm.cli.common import BitDepthOpt, DeviceOpt, FpsOpt, JsonOpt, SizeOpt, fmt, print_json, resolve_input, start, table

gt_app = typer.Typer(help="SFU-HW ground truth utilities.", no_args_is_help=True)
app.add_typer(gt_app, name="gt")


@app.command("eval")
def eval_command(
    input: Path = typer.Argument(..., help="Decoded video (any format vcm reads), a .nerv/.icm bitstream, or the original."),
    sequence: Optional[str] = typer.Option(None, "--sequence", help="SFU-HW sequence (default: from the input)."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Ground truth: a CTC JSON, a folder of them, or a folder of SFU-HW txt labels."),
    detector: str = typer.Option("yolov7", "--detector", help="yolov7, or oracle (the ground truth itself: a pipeline check)."),
    weights: Path = typer.Option(Path("yolov7.pt"), "--weights", help="YOLOv7 checkpoint."),
    yolov7_repo: Optional[Path] = typer.Option(None, "--yolov7-repo", help="Local clone of WongKinYiu/yolov7 (offline); default torch.hub."),
    frames: str = typer.Option("auto", "--frames", help="For video inputs: ctc | all | A:B."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="For .icm inputs: the codec checkpoint (default: beside the file)."),
    batch: int = typer.Option(8, "--batch", min=1, help="Frames per detector call."),
    half: bool = typer.Option(False, "--half", metavar="", help="fp16 inference on CUDA."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for detections.json and scores.json (default eval/<input file name>/)."),
    device: str = DeviceOpt,
    size: Optional[str] = SizeOpt,
    fps: Optional[float] = FpsOpt,
    bit_depth: Optional[int] = BitDepthOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Detect objects on decoded frames and score them (COCO mAP) against SFU-HW ground truth."""
    from vcm.device import resolve_device
    from vcm.eval.detect import create_detector
    from vcm.eval.gt import load_ground_truth
    from vcm.eval.run import decode_any, input_name, score, write_outputs
    from vcm.errors import VcmError
    from vcm.outputs import check_output
    from vcm.provenance import file_fingerprint, provenance
    from vcm.video.naming import parse_size

    start(json_out)
    input = resolve_input(input)  # sample:NAME → the bundled clip
    if not input.exists():
        raise VcmError(f"{input} does not exist")
    folder = out or default_folder(input)
    check_output(folder, inputs=[input, annotations, checkpoint], kind="dir")
    dev = resolve_device(device)
    # Ground truth and detector first: a missing annotation or weight file is reported before decoding.
    gt = load_ground_truth(sequence or input_name(input, size, fps, bit_depth), annotations)
    det = create_detector(detector, gt=gt, weights=weights, yolov7_repo=yolov7_repo, device=dev, batch=batch, half=half)
    decoded = decode_any(input, dev, frames, parse_size(size) if size else None, fps, bit_depth, checkpoint)
    clip, scores = score(decoded, gt, det, batch)
    scores.update(input=str(input.resolve()), input_fingerprint=file_fingerprint(input),
                  detector_settings={"name": detector, "weights": str(weights) if detector == "yolov7" else None,
                                     "half": half}, provenance=provenance(dev))
    write_outputs(folder, clip, scores)
    if json_out:
        print_json(scores)
        return
    table(f"vcm eval: {gt.sequence} ({detector})", [
        ("frames", f"{scores['frames']} (source {scores['source_frames'][0]}:{scores['source_frames'][1]})"),
        ("objects / detections", f"{scores['objects']} / {scores['detections']}"),
        ("mAP@[.5:.95]", fmt(scores["map"], 2, " %")), ("AP50", fmt(scores["ap50"], 2, " %")),
        ("detection speed", f"{scores['detect_frames_per_second']:.1f} frames/s"),
        ("written to", str(folder)),
    ])


def default_folder(input: Path) -> Path:
    """``eval/<input file name>/``; when that folder holds the scores of another file of the same
    name, ``eval/<name>_2/`` and so on (never a silent overwrite of another input's results)."""
    import json

    base = Path("eval") / input.name.replace(".", "_")
    for i in range(1, 1000):
        folder = base if i == 1 else base.with_name(f"{base.name}_{i}")
        try:
            recorded = json.loads((folder / "scores.json").read_text()).get("input")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if not (folder / "scores.json").exists() or recorded == str(input.resolve()):
            return folder
    return base


@gt_app.command("convert")
def gt_convert(
    labels: Path = typer.Argument(..., help="Folder of SFU-HW label files <Seq>_<W>x<H>_<fps>_seq_NNN.txt."),
    sequence: str = typer.Option(..., "--sequence", help="SFU-HW sequence name (e.g. BQMall)."),
    frames: str = typer.Option("ctc", "--frames", help="ctc | all | A:B (source frames, B exclusive)."),
    out: Path = typer.Option(..., "--out", help="COCO JSON to write (the CTC m59143 layout)."),
) -> None:
    """Write COCO JSON (CTC layout) from the original per-frame SFU-HW txt labels."""
    from vcm import sequences
    from vcm.errors import VcmError
    from vcm.eval.gt import load_yolo_labels, to_coco_json
    from vcm.fsutil import write_json

    seq = sequences.lookup(sequence)
    if seq is None:
        raise VcmError(f"{sequence!r} is not an SFU-HW class C/D sequence")
    if frames == "ctc":
        rng = range(seq.ctc_first, seq.ctc_last + 1)
    elif frames == "all":
        rng = range(0, seq.frames)
    else:
        a, _, b = frames.partition(":")
        try:
            rng = range(int(a or 0), int(b or seq.frames))
        except ValueError:
            raise VcmError(f"--frames must be ctc, all or A:B, got {frames!r}") from None
    gt = load_yolo_labels(labels, seq.name, rng)
    write_json(out, to_coco_json(gt, first_frame=rng.start))
    n = sum(len(v) for v in gt.frames.values())
    table("vcm gt convert", [("sequence", seq.name), ("frames", f"{rng.start}:{rng.stop}"), ("objects", str(n)), ("written to", str(out))])
