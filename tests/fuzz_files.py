"""Mutation fuzzing of the files vcm reads that a user writes, edits or brings: CTC configs, a results folder's
rows, COCO annotations, and the videos themselves (YUV4MPEG2 files and PNG frames).

    python -m tests.fuzz_files ctc-config|result-rows|coco|y4m|png|container|preset CASES SEED

Starts from real inputs (``configs/ctc/*.yaml`` and a config using every section; the rows of a results folder
with anchors, a HiNeRV curve with its byte breakdown, a rate-controlled point, provenance and ground truth; a COCO
JSON of two frames; the network presets ``configs/nerv/{nerv-xs,hinerv-xs,hinerv-demo}.yaml``; 3-frame 32×24
containers: H.264 in mp4, read by decord, and VVC in mp4 and AV1 in mkv, read by the ffmpeg vcm ships), replaces one
to three values anywhere in them with values of other types (numbers where text
goes, lists, mappings, NaN, infinities, words, frame spans), adds known keys with such values, deletes keys or
repeats list items, and reads each case through the library's entry points: ``vcm ctc run --dry-run``'s planner,
``vcm ctc report`` and ``vcm ctc compare``, both annotation loaders, and ``vcm fit --config`` (2 steps on a 6-frame
32×24 clip, in this process, 60 s at most). A video starts from a valid 3-frame
8×6 file; its header's fields get hostile values, are repeated or dropped, bytes anywhere in it are changed, it
is cut or grows (a PNG's checksums are recomputed, so that its header is read as declared), and it is read as
``vcm fit`` reads a clip (``vcm.video.open_video``). Outcomes: ``accepted``, ``refused`` (a
one-line VcmError) and ``crash`` (any other exception: a bug). Prints one JSON summary with each crash's case,
exception and the innermost frames of vcm's code.
"""

from __future__ import annotations

import copy
import json
import math
import random
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

HOSTILE = [None, -1, 0, 1, 2.5, float("nan"), float("inf"), 10 ** 30, True, False, "", "x", "all", "0:5", "5:0", "-3:",
           [], [1], [None], ["a", 1], {}, {"a": 1}, {"lambda": -1}, [{}], "sample:carphone", "/nonexistent", [[]],
           {"qps": [99]}, "1.5k", "416x240", "hevc", "ra", "canny", "yolov7", 1e9, "../../escaped",
           "<script>alert(1)</script>"]
ROW_TEXT = ["sequence", "codec", "point", "curve", "label", "experiment", "error", "class"]
HOSTILE_TEXT = ["../../escaped", "<script>alert(1)</script>", "clip", "hevc", "qp37", "l0", "a|b\nc", "[/x]", "",
                "[a link](http://elsewhere.example)", "my clip"]
KEYS = ["preset", "params", "width_scale", "epochs", "steps", "batch", "lr", "seed", "stage_seed", "points",
        "rate_aware", "chain", "compute", "prune", "bits", "lambda", "rd_steps", "step_lr", "temporal", "match", "qps",
        "config", "checkpoints", "arch", "fits", "masks", "size", "fps", "bit_depth", "frames", "name", "path",
        "detector", "reference", "every", "weights", "settings", "alpha", "sam_checkpoint", "source", "status", "curve",
        "kbps", "bytes", "psnr_y", "map", "breakdown", "share", "label", "width", "source_frames", "ground_truth",
        "rate_control", "provenance", "date", "bbox", "area", "iscrowd", "category_id", "image_id", "id", "file_name",
        "activation", "betas", "channels", "checkpoint_every", "depths", "embed", "expansion", "fc_dim", "grad_clip",
        "grid_channels", "grid_frame_ratio", "grid_levels", "grid_lr_scale", "head", "kernel", "local_frame_ratio",
        "loss", "lower_width", "max_epochs", "min_grid", "rd_chain", "rd_lr_scale", "rd_noise_fraction", "rd_step_lr",
        "reduction", "scene_cuts", "stem_dims", "warmup"]
PRESETS = ("nerv-xs.yaml", "hinerv-xs.yaml", "hinerv-demo.yaml")
PRESET_LIMIT = 60  # seconds a fuzzed preset's 2-step fit may take

# A config that uses every section (the planner reads them all before anything runs).
RICH_CONFIG = {
    "sequences": [{"name": "clip", "path": "sample:carphone", "frames": "0:8", "size": "176x144", "fps": 30,
                   "bit_depth": 8, "detector": {"name": "yolov7", "weights": "yolov7.pt", "batch": 2, "every": 2},
                   "reference": "original", "reference_score": 0.25},
                  {"path": "sample:bikes", "frames": "0:4"}],
    "frames": "auto", "device": "cpu",
    "detector": {"name": "yolov7", "weights": "yolov7.pt", "batch": 8, "settings": {"conf_thres": 0.001}},
    "codecs": {
        "hinerv": {"fits": [{"preset": "hinerv-demo", "params": "20k", "width_scale": 0.5, "steps": 10, "batch": 2,
                             "lr": 0.01, "seed": 1, "stage_seed": 2, "rate_aware": False, "chain": True, "compute": 0.5,
                             "points": [{"lambda": 1, "rd_steps": 5, "step_lr": 0.1, "temporal": True}, {"lambda": 4}]},
                            {"preset": "hinerv-demo", "epochs": 2, "rate_aware": False,
                             "points": [{"match": "hevc", "rd_steps": 5}]}]},
        "sa-nerv": {"masks": {"source": "canny", "alpha": 0.9},
                    "fits": [{"preset": "demo", "epochs": 1, "points": [{"prune": 0.4, "bits": 8}, {"lambda": 2}]}]},
        "sa-icm": {"checkpoints": ["a.pth", "b.pth"], "arch": "tcm"},
        "hevc": {"qps": [40, 44], "config": "ld", "preset": "medium"},
        "vvc": {"qps": [40], "config": "ai"}}}


def paths_in(obj, path=()):
    """Every path (a tuple of keys and list indices) into parsed JSON ``obj``, the empty one first."""
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths_in(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths_in(v, path + (i,))


def mutate(doc, rng: random.Random):
    """``doc`` (parsed JSON/YAML) with one to three values replaced, keys added or deleted, or list items repeated."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice([p for p in paths_in(doc) if p] or [()])
        if not path:
            break
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        r = rng.random()
        if r < 0.7:
            parent[path[-1]] = copy.deepcopy(rng.choice(HOSTILE))
        elif r < 0.8 and isinstance(parent[path[-1]], dict):
            parent[path[-1]][rng.choice(KEYS)] = copy.deepcopy(rng.choice(HOSTILE))
        elif r < 0.88 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
    return doc


def _row(codec: str, point: str, kbps: float, psnr_y: float, **extra) -> dict:
    return {"status": "ok", "sequence": "clip", "class": None, "codec": codec, "curve": extra.pop("curve", codec),
            "point": point, "label": None, "qp": extra.pop("qp", None), "fps": 30.0, "frames": 10,
            "source_frames": [0, 10], "width": 176, "height": 144, "bytes": int(kbps * 1000 / 8 / 3), "kbps": kbps,
            "bpp": kbps / 7603, "psnr": psnr_y - 1.5, "psnr_y": psnr_y, "psnr_yuv": psnr_y + 0.8, "ms_ssim": None,
            "map": 40.0, "ap50": 60.0, "detections": None, "encode_seconds": 3.0, "decode_seconds": 0.5,
            "ground_truth": {"kind": "pseudo", "source": "the detector on the original frames"},
            "source_key": "0123abcd",
            "provenance": {"vcm": "0.1.0", "commit": "abc", "date": "2026-12-06T00:00:00+00:00", "device": "cpu",
                           "cores": 2, "host": "h", "platform": "p"}, **extra}


def results_folder(out: Path) -> Path:
    """A results folder with HEVC and VVC anchors, a HiNeRV curve with its byte breakdown and a rate-controlled
    point: the rows ``vcm ctc report`` and ``compare`` read."""
    breakdown = [{"part": "base grids", "bytes": 600.0, "params": 2000, "bits_per_param": 2.4, "share": 0.6},
                 {"part": "weights", "bytes": 400.0, "params": 1500, "bits_per_param": 2.1, "share": 0.4}]
    rows = [_row(codec, f"qp{qp}", kbps * scale, q, qp=qp)
            for codec, scale in (("hevc", 1.0), ("vvc", 0.8))
            for qp, kbps, q in ((37, 80.0, 34.0), (41, 45.0, 32.0), (45, 25.0, 30.0), (49, 14.0, 28.0))]
    rows += [_row("hinerv", f"l{i}", kbps, q, curve="hinerv-rd", breakdown=breakdown, params=3500,
                  bits_per_param=2.3, estimate_bytes=1000.0, settings={"representation": "hinerv"})
             for i, (kbps, q) in enumerate(((100.0, 33.5), (60.0, 31.8), (33.0, 30.1)))]
    rows.append(_row("hinerv", "match_qp49", 15.0, 28.2, curve="hinerv-rd", label="λ8 (≈ hevc QP49)",
                     rate_control={"target": {"kbps": 14.0}, "goal": 5250, "tolerance": 0.05, "hit": False,
                                   "lambda": 8.0, "beyond": None,
                                   "trials": [{"lambda": 4.0, "steps": 5, "start": "fit", "bytes": 7000},
                                              {"lambda": 8.0, "steps": 5, "start": "warm", "bytes": 5625}]}))
    for r in rows:
        folder = out / "points" / r["sequence"] / r["codec"] / r["point"]
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(r))
    return out


def coco_json() -> dict:
    """A COCO JSON of the first two frames of a 176×144 clip, in COCO-80 category ids."""
    images = [{"id": i, "file_name": f"clip_{i:03d}.png", "width": 176, "height": 144} for i in range(2)]
    anns = [{"id": k, "image_id": k % 2, "category_id": 0, "bbox": [10.0 + k, 12.0, 30.0, 40.0], "area": 1200.0,
             "iscrowd": 0} for k in range(4)]
    return {"images": images, "annotations": anns, "categories": [{"id": 0, "name": "person"}]}


def _case_ctc_config(doc, work: Path) -> None:
    from vcm.ctc.run import preview

    (work / "c.yaml").write_text(yaml.safe_dump(doc))
    preview(work / "c.yaml", work / "out")


class Escaped(Exception):
    """A case whose text reached where it must not: a file written outside the results folder, or a script into
    report.html (a results folder can be someone else's)."""


def _case_result_rows(doc, work: Path) -> None:
    from vcm.ctc.compare import compare
    from vcm.ctc.report import make_report

    base, folder = doc
    try:
        make_report(folder, None, None, None, None)
        compare(base, folder)
    finally:
        outside = [str(p.relative_to(work)) for p in work.rglob("*") if folder not in p.parents and p != folder]
        if outside:
            raise Escaped(f"wrote {outside[:3]} outside the results folder")
        page = folder / "report.html"
        if page.is_file() and "<script" in page.read_text():
            raise Escaped("a row's <script> is in report.html")
        if page.is_file() and "href=" in page.read_text():  # the report links nowhere; a row's text made links
            raise Escaped("a row's text is a link in report.html")


def _case_coco(doc, work: Path) -> None:
    from vcm.eval.annotations import load_annotations

    (work / "gt.json").write_text(json.dumps(doc, allow_nan=True))
    load_annotations(work / "gt.json", "clip", 176, 144, 120, ("person",))


Y4M_VALUES = ["0", "1", "-4", "8", "7", "99999", "16385", "x", "", "25:0", "0:1", "1e400:1", "30000:1001", "p",
              "t", "?", "420", "420p10", "420p17", "444", "mono", "1:1", "0:0", "VCM_FIRST_FRAME=3",
              "VCM_FIRST_FRAME=-1", "VCM_FIRST_FRAME=99999999999", "VCM_FIRST_FRAME=", "VCM_FIRST_FRAME=٣"]


class _Slow(Exception):
    pass


def _case_preset(doc, work: Path, clip: Path) -> None:
    """``vcm fit CLIP --config PRESET --steps 2`` in this process: a refusal is exit code 1 (raised as VcmError
    here), a traceback or an exception out of ``main`` a crash, and a fit past ``PRESET_LIMIT`` seconds slow."""
    import signal

    from tests.conftest import run_main
    from vcm.errors import VcmError

    (work / "preset.yaml").write_text(yaml.safe_dump(doc))

    def stop(*_):
        raise _Slow()

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(PRESET_LIMIT)
    try:
        proc = run_main("fit", clip, "--config", work / "preset.yaml", "--steps", "2", "--out", work / "run",
                        "--device", "cpu", cwd=work)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    if "Traceback" in proc.stderr or proc.returncode not in (0, 1):
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr[-400:]}")
    if proc.returncode == 1:
        raise VcmError((proc.stderr.strip().splitlines() or [""])[-1])


def _y4m_bytes(rng: random.Random) -> bytes:
    """A 3-frame 8×6 YUV4MPEG2 file, mutated."""
    tokens = ["W8", "H6", "F25:1", "Ip", "A1:1", "C420jpeg"]
    frame = b"FRAME\n" + bytes(range(72))
    for _ in range(rng.randint(1, 3)):
        r, i = rng.random(), rng.randrange(len(tokens))
        if r < 0.5:
            tokens[i] = tokens[i][0] + rng.choice(Y4M_VALUES)
        elif r < 0.7:
            tokens.append(rng.choice("WHFIACX") + rng.choice(Y4M_VALUES))
        elif tokens:
            del tokens[i]
    data = bytearray(b"YUV4MPEG2 " + " ".join(tokens).encode() + b"\n" + frame * 3)
    r = rng.random()
    if not _damaged(data, rng, r, (0.3, 0.45, 0.55), 4, lambda g: bytes(g.randrange(200))) and r < 0.65:
        data = data.replace(b"FRAME\n", b"FRAME " + rng.choice([b"Ib", b"Ip", b"Xa=b", b"x" * 300]) + b"\n", 1)
    return bytes(data)


def _damaged(data: bytearray, rng: random.Random, r: float, below: tuple[float, float, float], most_changed: int,
             grown) -> bool:
    """``data`` damaged in place as ``r`` (uniform in [0, 1)) picks against ``below``: 1 to ``most_changed`` bytes
    changed anywhere, cut short, or grown by ``grown(rng)``'s bytes; False where ``r`` picks none of them."""
    if r < below[0]:
        for _ in range(rng.randint(1, most_changed)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif r < below[1]:
        del data[rng.randrange(len(data)):]
    elif r < below[2]:
        data += grown(rng)
    else:
        return False
    return True


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_bytes(rng: random.Random | None) -> bytes:
    """An 8×6 RGB PNG whose header fields (size, depth, colour type) or data are mutated, at times with an EXIF
    orientation, checksums recomputed (``rng`` None: the sound one)."""
    import struct
    import zlib

    fields = [8, 6, 8, 2, 0, 0, 0]  # width, height, bit depth, colour type, compression, filter, interlace
    if rng is None:
        return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", *fields))
                + _png_chunk(b"IDAT", zlib.compress((b"\0" + bytes(range(24))) * 6)) + _png_chunk(b"IEND", b""))
    for _ in range(rng.randint(1, 2)):
        i = rng.randrange(len(fields))
        fields[i] = rng.choice([0, 1, 2, 3, 4, 6, 16, 255, 16385, 20000, 1 << 20, (1 << 31) - 1] if i < 2
                               else [0, 1, 2, 3, 4, 6, 8, 16, 255])
    raw = bytearray((b"\0" + bytes(range(24))) * 6)
    if rng.random() < 0.4:
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
    data = zlib.compress(bytes(raw))
    if rng.random() < 0.2:
        data = data[:rng.randrange(len(data))]
    exif = _png_chunk(b"eXIf", _exif_bytes(rng)) if rng.random() < 0.3 else b""
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", *fields)) + exif
            + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b""))


def _exif_bytes(rng: random.Random) -> bytes:
    """EXIF (a big-endian TIFF directory) holding one orientation, any value, with bytes changed or cut at times:
    the image is read turned by it, or as stored where it cannot be read."""
    import struct

    blob = bytearray(b"MM\x00*" + struct.pack(">IHHHIHHI", 8, 1, 0x0112, 3, 1, rng.randrange(11), 0, 0))
    for _ in range(rng.choice([0, 0, 1, 3])):
        blob[rng.randrange(len(blob))] = rng.randrange(256)
    return bytes(blob[:rng.randrange(len(blob) + 1)] if rng.random() < 0.2 else blob)


def containers(tmp: Path) -> list[tuple[str, bytes]]:
    """(suffix, bytes) of 3-frame 32×24 videos: H.264 in mp4, VVC in mp4, AV1 in mkv."""
    import subprocess

    from tests.conftest import moving_frames
    from vcm.video.ffmpeg_binary import ffmpeg_exe
    from vcm.video.yuv import write_yuv420

    write_yuv420(tmp / "src.yuv", moving_frames(t=3, h=24, w=32))
    made = []
    for suffix, encoder in ((".mp4", "libx264"), (".mp4", "libvvenc"), (".mkv", "libaom-av1")):
        out = tmp / f"c_{encoder}{suffix}"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "32x24", "-r",
                        "25", "-i", str(tmp / "src.yuv"), "-c:v", encoder, str(out)], check=True, capture_output=True)
        made.append((suffix, out.read_bytes()))
    return made


def _container_bytes(rng: random.Random, sources: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    """One of ``sources`` with bytes changed anywhere, cut, grown, or a span repeated."""
    suffix, data = rng.choice(sources)
    data = bytearray(data)
    if not _damaged(data, rng, rng.random(), (0.5, 0.7, 0.8), 8,
                    lambda g: bytes(g.randrange(256) for _ in range(g.randrange(400)))):
        a = rng.randrange(len(data))
        data[a:a] = data[a:a + rng.randrange(1, 200)]
    return suffix, bytes(data)


def _case_video(doc: bytes, work: Path, name: str) -> None:
    from vcm.video.source import open_video

    path = work / name
    if name.endswith(".png"):  # a folder of frames: the mutated one after a sound one
        path = work / "frames"
        path.mkdir()
        (path / "0.png").write_bytes(_png_bytes(None))
        (path / "1.png").write_bytes(doc)
    else:
        path.write_bytes(doc)
    open_video(path, "all")


def where(err: BaseException) -> list[str]:
    """The innermost three frames of vcm's own code that ``err`` passed through, as ``path:line function``."""
    return [f"{Path(f.filename).relative_to(ROOT)}:{f.lineno} {f.name}"
            for f in traceback.extract_tb(err.__traceback__) if str(ROOT / "vcm") in f.filename][-3:]


def run(kind: str, cases: int, seed: int) -> dict:
    """Fuzz ``kind`` for ``cases`` cases from ``seed``; the summary (``crashes``: what was not a one-line refusal)."""
    from vcm.errors import VcmError

    rng = random.Random(seed)
    outcomes = {"accepted": 0, "refused": 0, "crash": 0}
    crashes = []
    with tempfile.TemporaryDirectory(prefix="vcm-fuzz-") as tmp:
        tmp = Path(tmp)
        base = results_folder(tmp / "base") if kind == "result-rows" else None
        videos = containers(tmp) if kind == "container" else None
        clip = None
        if kind == "preset":
            from tests.conftest import moving_frames
            from vcm.video.yuv import write_yuv420

            clip = tmp / "Tiny_32x24_25.yuv"
            write_yuv420(clip, moving_frames(t=6, h=24, w=32))
        sources = {"ctc-config": [yaml.safe_load((ROOT / "configs" / "ctc" / n).read_text())
                                  for n in ("demo.yaml", "sfu-cd.yaml")] + [RICH_CONFIG],
                   "coco": [coco_json()],
                   "preset": [yaml.safe_load((ROOT / "configs" / "nerv" / n).read_text()) for n in PRESETS]}
        for i in range(cases):
            work = tmp / f"case{i}"
            work.mkdir()
            if kind == "result-rows":
                folder = shutil.copytree(base, work / "results")
                rows = sorted(folder.rglob("result.json"))
                edited = rng.sample(rows, rng.randint(1, 2))
                for path in edited:
                    row = mutate(json.loads(path.read_text()), rng)
                    if rng.random() < 0.3 and isinstance(row, dict):  # text the report writes out or names files by
                        row[rng.choice(ROW_TEXT)] = rng.choice(HOSTILE_TEXT)
                    path.write_text(json.dumps(row))
                doc, case, what = (base, folder), _case_result_rows, [p.read_text()[:300] for p in edited]
            elif kind == "container":
                suffix, doc = _container_bytes(rng, videos)
                case, what = (lambda d, w, name=f"clip{suffix}": _case_video(d, w, name)), doc[:120].hex()
            elif kind in ("y4m", "png"):
                doc = _y4m_bytes(rng) if kind == "y4m" else _png_bytes(rng)
                case, what = (lambda d, w, name=f"clip.{kind}": _case_video(d, w, name)), doc[:120].hex()
            elif kind == "preset":
                doc = mutate(rng.choice(sources[kind]), rng)
                case, what = (lambda d, w: _case_preset(d, w, clip)), json.dumps(doc, default=str)[:600]
            else:
                doc = mutate(rng.choice(sources[kind]), rng)
                case = _case_ctc_config if kind == "ctc-config" else _case_coco
                what = json.dumps(doc, default=str)[:600]
            try:
                case(doc, work)
                outcomes["accepted"] += 1
            except VcmError:
                outcomes["refused"] += 1
            except _Slow:
                outcomes["slow"] = outcomes.get("slow", 0) + 1
                crashes.append({"case": i, "error": f"slow: over {PRESET_LIMIT} s", "where": [], "input": what})
            except Exception as err:  # noqa: BLE001  (any other exception is what this looks for)
                outcomes["crash"] += 1
                crashes.append({"case": i, "error": f"{type(err).__name__}: {str(err)[:200]}", "where": where(err),
                                "input": what})
            shutil.rmtree(work, ignore_errors=True)
    return {"kind": kind, "cases": cases, "seed": seed, "outcomes": outcomes, "crashes": crashes}


KINDS = ("ctc-config", "result-rows", "coco", "y4m", "png", "container", "preset")


def main() -> None:
    args = sys.argv[1:]
    if len(args) != 3 or args[0] not in KINDS or not all(a.isdigit() for a in args[1:]):
        sys.exit(f"usage: python -m tests.fuzz_files {'|'.join(KINDS)} CASES SEED")
    from vcm import progress

    progress.set_quiet(True)  # the planner's and the report's progress lines are not what this reports
    summary = run(args[0], int(args[1]), int(args[2]))
    print(json.dumps(summary, indent=1, default=lambda v: None if isinstance(v, float) and not math.isfinite(v) else v))
    sys.exit(1 if summary["crashes"] else 0)


if __name__ == "__main__":
    main()
