from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vcm.cli.app import app
from vcm.samples import resolve
from vcm.cli.common import (SOURCE_FRAMES_HELP, BitDepthOpt, DeviceOpt, JsonOpt, OverwriteOpt, SizeOpt, UnreadFpsOpt,
                            fmt, print_json, refuse_unused, start, table)

gt_app = typer.Typer(help="SFU-HW ground truth utilities.", no_args_is_help=True)
app.add_typer(gt_app, name="gt")


@app.command("eval")
def eval_command(
    input: Path = typer.Argument(..., help="Decoded video (any format vcm reads), a .nerv/.icm bitstream, or the original."),
    sequence: Optional[str] = typer.Option(None, "--sequence", help="SFU-HW sequence (default: from the input)."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Ground truth: for any video a COCO JSON; for SFU-HW also a folder of CTC JSONs or of txt labels."),
    reference: str = typer.Option("annotations", "--reference", help="annotations (ground truth) or original (pseudo ground truth: the detector's confident detections on the uncompressed frames)."),
    original: Optional[Path] = typer.Option(None, "--original", help="With --reference original: the uncompressed video (default: the input, when it is a video)."),
    reference_score: Optional[float] = typer.Option(None, "--reference-score", help="With --reference original: detections on the original with at least this score are the ground truth (default 0.5)."),
    frame_mapping: str = typer.Option("auto", "--frame-mapping", help="How COCO images match frames: auto, field (frame_index), name0 / name1 (number in the file name from 0 / 1), order (with --frames A:B)."),
    category_ids: str = typer.Option("auto", "--category-ids", help="How COCO categories match the detector's classes: auto, names, coco80 (0-based), coco91 (1-based COCO ids)."),
    category_map: Optional[list[str]] = typer.Option(None, "--category-map", help="NAME=CLASS: rename an annotation category to a detector class (repeatable)."),
    detector: str = typer.Option("yolov7", "--detector", help="Task network: yolov7, a torchvision detector (fasterrcnn_resnet50_fpn_v2, retinanet_resnet50_fpn_v2, …), oracle (the ground truth itself), or MODULE:ATTR / FILE.py:ATTR."),
    weights: Optional[str] = typer.Option(None, "--weights", help="yolov7: checkpoint (default $VCM_YOLOV7_WEIGHTS, torch.hub's checkpoints/yolov7.pt, ./yolov7.pt); torchvision: default, random or a state_dict file."),
    yolov7_repo: Optional[Path] = typer.Option(None, "--yolov7-repo", help="Local clone of WongKinYiu/yolov7 (offline); default $VCM_YOLOV7_REPO or torch.hub."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Detector setting KEY=VALUE (repeatable), e.g. min_size=480, img_size=640, score_threshold=0.05."),
    every: int = typer.Option(1, "--every", min=1, help="Score every N-th frame that has ground truth (detection is the slow part on a CPU)."),
    frames: str = typer.Option("auto", "--frames", help=SOURCE_FRAMES_HELP + " Of a .nerv/.icm stream: among the frames it holds, all by default; with --frame-mapping order: the frames the images stand for."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="For .icm inputs: the codec checkpoint (default: beside the file)."),
    batch: int = typer.Option(8, "--batch", min=1, help="Frames per detector call."),
    half: bool = typer.Option(False, "--half", metavar="", help="fp16 inference on CUDA (yolov7)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for detections.json and scores.json (default eval/<input file name>/)."),
    device: str = DeviceOpt,
    size: Optional[str] = SizeOpt,
    fps: Optional[float] = UnreadFpsOpt,
    bit_depth: Optional[int] = BitDepthOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Detect objects on decoded frames and score them (COCO mAP) against ground truth.

    The ground truth is SFU-HW's, a COCO JSON of any video, or the detector's own detections on the original (--reference original).
    """
    from vcm.device import resolve_device
    from vcm.detectors.factory import parse_set
    from vcm.eval.reference import settings_key
    from vcm.eval.run import (KEPT, TruthSpec, check_output_folder, complete, decode_any, input_name, score,
                              truth_and_detector, write_outputs)
    from vcm.fsutil import require_input
    from vcm.outputs import check_output
    from vcm.provenance import file_fingerprint, provenance
    from vcm.video.naming import parse_size

    start()
    refuse_unused([("--fps", fps)], "vcm eval", "detection is frame by frame; no frame rate is read")
    input = resolve(input)  # sample:NAME → the bundled clip
    require_input(input, folder_ok=True)
    if checkpoint is not None:  # before frames are decoded and detected: it is fingerprinted after them
        _check_checkpoint_read(input)
        require_input(checkpoint, "--checkpoint")
    if reference == "annotations":  # options of the other kind of reference
        refuse_unused([("--original", original), ("--reference-score", reference_score)], "--reference annotations",
                      "it is for --reference original")
    elif reference == "original":
        refuse_unused([("--annotations", annotations), ("--category-map", category_map),
                       ("--frame-mapping", None if frame_mapping == "auto" else frame_mapping),
                       ("--category-ids", None if category_ids == "auto" else category_ids)],
                      "--reference original", "it reads ground-truth annotations")
    reference_score = 0.5 if reference_score is None else reference_score
    stream = _is_stream(input)
    if original is not None:
        original = resolve(original)
    elif reference == "original" and not stream:
        original = input  # the input is the original: a check of the pipeline (mAP 100)
    if stream:  # the stream says its frames: they were ignored without a word where nothing else reads them
        if original is None:
            refuse_unused([("--size", size), ("--bit-depth", bit_depth)], f"{input.name}, a stream",
                          "a stream says its frames; it is for a video read here: the input or --original")
        elif Path(original).suffix.lower() != ".yuv":
            refuse_unused([("--size", size), ("--bit-depth", bit_depth)], f"--original {Path(original).name}",
                          "it is for a raw .yuv; any other video says it")
    folder = out or default_folder(input)
    check_output(folder, inputs=[input, annotations, checkpoint, original], kind="dir")
    check_output_folder(folder)
    spec = TruthSpec(reference, str(annotations) if annotations else None, str(original) if original else None,
                     reference_score, frame_mapping, category_ids, list(category_map or []),
                     frames if ":" in frames else None)
    dev = resolve_device(device)
    # Ground truth and detector first: a missing annotation or weight file is reported before decoding.
    gt, det = truth_and_detector(spec, input_name(input, size, bit_depth=bit_depth), detector, sequence,
                                 weights=weights, repo=yolov7_repo, device=dev, batch=batch, half=half,
                                 options=parse_set(set_))
    if half and dev.type != "cuda":  # the detector's settings (scores.json) record half: false
        from vcm import progress

        progress.log(f"--half: fp16 runs on CUDA only; {detector} detects in fp32 on {dev.type}", style="yellow")
    video_options = {"size": parse_size(size) if size else None, "bit_depth": bit_depth}
    decoded = decode_any(input, dev, frames, video_options["size"], None, bit_depth, checkpoint, gt, every)
    gt, det = complete(spec, decoded, gt, det, every, batch, video_options)
    fingerprint = file_fingerprint(input)
    # what the detections depend on besides the frames: a stopped evaluation continues only with all of it unchanged
    key = {"input": fingerprint, "checkpoint": file_fingerprint(checkpoint) if checkpoint else None,
           "detector": settings_key(det.settings()), "device": dev.type, "video": video_options}
    clip, scores = score(decoded, gt, det, batch, every, folder / KEPT, key)
    scores.update(input=str(input.resolve()), input_fingerprint=fingerprint, truth=spec.to_dict(),
                  provenance=provenance(dev))
    write_outputs(folder, clip, scores)
    if json_out:
        print_json(scores)
        return
    table(f"vcm eval: {gt.sequence} ({det.name})", [
        ("frames", f"{scores['frames']} (source {scores['source_frames'][0]}:{scores['source_frames'][1]}"
                   f"{', every ' + str(every) if every > 1 else ''})"),
        ("ground truth", gt.source or gt.kind),
        ("objects / detections", f"{scores['objects']} / {scores['detections']}"),
        ("mAP@[.5:.95]", fmt(scores["map"], 2, " %")), ("AP50", fmt(scores["ap50"], 2, " %")),
        ("detection speed", fmt(scores["detect_seconds_per_frame"], 3, " s/frame")
         + (f" (over the {scores['frames'] - scores['detections_continued']} frames detected in this run; "
            f"{scores['detections_continued']} were kept from a stopped one)" if scores.get("detections_continued") else "")),
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
    out: Path = typer.Option(..., "--out", "-o", help="COCO JSON to write (the CTC m59143 layout)."),
    overwrite: bool = OverwriteOpt,
) -> None:
    """Write COCO JSON (CTC layout) from the original per-frame SFU-HW txt labels."""
    from vcm import sequences
    from vcm.errors import VcmError
    from vcm.eval.gt import label_files, load_yolo_labels, to_coco_json
    from vcm.fsutil import write_json

    from vcm.outputs import check_output, check_replaceable
    from vcm.video.source import parse_span

    if out.suffix.lower() != ".json":  # `--out clip.yuv` replaced a video with the JSON
        raise VcmError(f"--out {out}: a COCO JSON file name must end in .json")
    check_output(out, inputs=[labels], kind="file")
    check_replaceable(out, overwrite)  # the official annotations have the same layout
    seq = sequences.lookup(sequence)
    if seq is None:
        raise VcmError(f"{sequence!r} is not an SFU-HW class C/D sequence")
    if frames == "ctc":
        rng = range(seq.ctc_first, seq.ctc_last + 1)
    elif frames == "all":
        rng = range(0, seq.frames)
    else:
        try:
            rng = parse_span(frames, range(0, seq.frames))
        except ValueError:
            raise VcmError(f"--frames must be ctc, all or A:B, got {frames!r}") from None
        if not 0 <= rng.start < rng.stop <= seq.frames:  # 5:3 wrote an empty ground truth
            raise VcmError(f"--frames {frames} is not a range within {seq.name}'s frames 0:{seq.frames}")
    gt = load_yolo_labels(labels, seq.name, rng)
    write_json(out, to_coco_json(gt, first_frame=rng.start))
    n = sum(len(v) for v in gt.frames.values())
    found = sum(f in rng for f in label_files(labels, seq))
    # said, not silent: --frames all on a folder holding part of the labels wrote hundreds of empty frames
    files = f"{found} of the {len(rng)} frames" + (f" (the other {len(rng) - found} count as frames without objects)"
                                                   if found < len(rng) else "")
    table("vcm gt convert", [("sequence", seq.name), ("frames", f"{rng.start}:{rng.stop}"), ("label files", files),
                             ("objects", str(n)), ("written to", str(out))])


def _check_checkpoint_read(input: Path) -> None:
    """Refuse ``--checkpoint`` for an input whose decoding reads none (a video, a ``.nerv`` stream, which holds
    its network): it was ignored without a word."""
    from vcm import codecs
    from vcm.errors import VcmError

    codec = codecs.for_stream(input)
    if codec is None or not codec.reads_checkpoint:
        what = f"a {codec.suffix} stream, which holds its decoder" if codec is not None else "a video"
        needing = sorted({codecs.get(n).suffix for n in codecs.names() if codecs.get(n).reads_checkpoint})
        raise VcmError(f"--checkpoint does not apply to {input.name}: it is {what} (--checkpoint is for "
                       f"{', '.join(needing)} streams, whose decoder's weights are a file of their own)")


def _is_stream(path: Path) -> bool:
    """Whether ``path`` is a codec's stream file (decoded for evaluation) rather than a video."""
    from vcm import codecs

    return codecs.for_stream(path) is not None
