"""``vcm ctc run``: every (sequence, codec, rate point) of a config, resumable and in parallel.

Layout of the output folder:
    points/<sequence>/<codec>/<point>/result.json   one result row (status ok or failed + error)
    points/<sequence>/<codec>/<point>/stream.*      the bitstream (its size is the rate)
    points/<sequence>/<codec>/<point>/detections.json, scores.json
    fits/<sequence>/<codec>/<fit>/                  NeRV runs shared by the points of one fit
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import socket
import traceback
from pathlib import Path

from vcm import progress
from vcm.codecs import FITTED
from vcm.ctc import config as ctc_config
from vcm.ctc.points import (ELSEWHERE, check_evaluations, check_programs, elsewhere_row, finished_as_asked, read_result,
                            run_point)
from vcm.ctc.result_row import RESULT
from vcm.device import device_kind
from vcm.errors import VcmError
from vcm.fsutil import open_regular
from vcm.words import counted, noun

LOG = "ctc.log"
BACKENDS = ("local", "ray")


def plan(cfg: dict, out: Path, data: Path | None, annotations: Path | None, only: list[str] | None,
         codecs: list[str] | None, device: str | None, missing_ok: bool = False) -> list[dict]:
    """Every point's spec; ``missing_ok``: SFU-HW sequences not in ``data`` are planned from the manifest (their
    specs carry ``missing_video``, why, and ``manifest_frames``), and a point whose other inputs (a checkpoint its
    masks need, say) are not at hand carries ``missing_inputs``, why, instead of refused, as ``--dry-run`` shows
    them."""
    ctc_config.check_truth_keys(cfg, annotations)
    seqs = ctc_config.sequence_entries(cfg, data, only, missing_ok)
    chosen = codecs or list((cfg.get("codecs") or {}).keys())
    unknown = set(chosen) - set(cfg.get("codecs") or {})
    if unknown:
        raise VcmError(f"--codecs names codecs the config does not define: {', '.join(sorted(unknown))}")
    specs, seen = [], set()
    for seq in seqs:
        for codec in chosen:
            for pid, point in ctc_config.points_for(codec, cfg["codecs"][codec] or {}, seq):
                if (seq["name"], codec, pid) in seen:  # they shared one folder: one point's results, run twice
                    raise VcmError(f"{codec} on {seq['name']}: two points would share the results folder {pid} (the same "
                                   f"point twice, or points that differ only in rd_steps, rd_epochs, step_lr or "
                                   f"finetune_epochs, which the folder's name does not carry)")
                seen.add((seq["name"], codec, pid))
                workdir = out / "points" / seq["name"] / codec / pid
                spec = {"sequence": seq["name"], "source": seq["path"], "frames": seq["frames"], "codec": codec,
                        "point_id": pid, "point": point, "workdir": str(workdir),
                        "detector": ctc_config.detector_of(cfg, seq),
                        "annotations": seq.get("annotations") or (str(annotations) if annotations else cfg.get("annotations")),
                        "truth": truth_of(cfg, seq, annotations),
                        "sequence_annotations": seq.get("annotations"),
                        "device": device or cfg.get("device", "auto"), "out": str(out)}
                if seq.get("video"):  # absent, not empty, where the file says it all: the keys of earlier runs hold
                    spec["video"] = seq["video"]
                if "missing" in seq:
                    spec.update(missing_video=seq["missing"], manifest_frames=seq["manifest_frames"])
                specs.append(spec)
    keyed, sources, truths = [], {}, {}  # a file or folder is found and hashed once a plan, not once a point
    for s in expand_matches(specs):
        try:
            keys = {"inputs_key": inputs_key(s)}
        except VcmError as err:
            if not missing_ok:
                raise
            keys = {"inputs_key": None, "missing_inputs": str(err)}
        asked = (s["sequence"], s["source"], s.get("annotations"), (s.get("truth") or {}).get("reference"))
        if asked not in truths:
            truths[asked] = truth_source(s)
        truth = truths[asked]
        for path in (s["source"], truth):
            if path and path not in sources:
                sources[path] = file_key(path)
        keyed.append({**s, "point_key": point_key(s), **keys, "source_key": sources[s["source"]],
                      "truth_key": sources.get(truth)})
    return keyed


def truth_source(spec: dict) -> str | None:
    """What ``truth_key`` fingerprints: the annotations a point names (a COCO JSON, a folder of CTC JSONs or txt
    labels: all of it), else for an SFU-HW sequence the CTC JSON found for it in $VCM_ANNOTATIONS or
    sequences/annotations/ (an edited one kept its points' old scores). None for pseudo ground truth (the
    original is the source: ``source_key``), and where none is found, which the point says when it runs."""
    from vcm import sequences
    from vcm.eval.gt import find_annotations

    if (spec.get("truth") or {}).get("reference") == "original":
        return None
    if spec.get("annotations"):
        return spec["annotations"]
    for name in (spec["sequence"], Path(spec["source"]).stem):  # the entry's name, else the file's, as a video's
        if sequences.lookup(name) is not None:
            try:
                return str(find_annotations(name))
            except VcmError:
                return None
    return None


def _missing(spec: dict) -> list[str]:
    """Why a planned point cannot run yet (:func:`plan` with ``missing_ok``): its video, its other inputs."""
    return [spec[k] for k in ("missing_video", "missing_inputs") if k in spec]


def point_key(spec: dict) -> str:
    """A digest of what the config says a point is: its codec and parameters, its video (file name and size),
    frames, detector and ground truth. A finished point whose key differs was made from another config (a
    frames range, a detector, a point's rd_steps changed in place): it runs again instead of being reused.
    Absolute paths enter by file name only, so a results or data folder moved elsewhere keeps its points."""

    def named(path) -> list | None:
        if not path:
            return None
        p = Path(str(path))
        return [p.name, p.stat().st_size if p.is_file() else None]

    point = {k: v for k, v in (spec.get("point") or {}).items() if k != "target_from"}  # the anchor's folder
    truth = {**(spec.get("truth") or {})}
    truth["annotations"], truth["original"] = named(truth.get("annotations")), named(truth.get("original"))
    video = {"video": spec["video"]} if spec.get("video") else {}  # size, fps, bit_depth the entry gives
    return _digest({"codec": spec["codec"], "point": point, "source": named(spec["source"]), "frames": spec["frames"],
                    "detector": spec.get("detector"), "truth": truth, **video})


def inputs_key(spec: dict) -> str:
    """A digest of what the presets and files a point names hold (its codec's ``point_inputs``): a preset
    edited in place, a checkpoint or mask file replaced under the same name. Kept beside ``point_key`` so
    that rows written before it was recorded are still taken as they are."""
    from vcm import codecs

    return _digest(codecs.get(spec["codec"]).point_inputs(spec["point"]))


def file_key(path) -> str | None:
    """The fingerprint of a file or folder a point reads, None where it is not at hand (its point says why, if it
    runs): its video as ``source_key``, the annotations it names as ``truth_key``. ``point_key`` knows a file by
    its name and size, and a raw clip extracted again holds other frames in both, as an annotation corrected in
    place (10.5 → 11.5) keeps its size: their finished points were kept with the old figures."""
    from vcm.fsutil import path_problem
    from vcm.provenance import file_fingerprint

    return None if path_problem(path, folder_ok=True) else file_fingerprint(path)


def _digest(what) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def expand_matches(specs: list[dict]) -> list[dict]:
    """A ``{match: ANCHOR}`` point becomes one point per point of that anchor on the same sequence, each
    aiming at the anchor point's rate (read from its result when it runs, so anchors run first)."""
    out = []
    for spec in specs:
        anchor = (spec.get("point") or {}).get("match")
        if anchor is None:
            out.append(spec)
            continue
        targets = [s for s in specs if s["sequence"] == spec["sequence"] and s["codec"] == anchor]
        if not targets:
            raise VcmError(f"{spec['codec']} point {spec['point_id']} matches {anchor}, which this run does not code "
                           f"on {spec['sequence']} (add the {anchor} section, or include it in --codecs)")
        for t in targets:
            pid = f"{spec['point_id']}_{t['point_id']}"
            out.append({**spec, "point_id": pid, "workdir": str(Path(spec["workdir"]).with_name(pid)),
                        "point": {**spec["point"], "target_from": t["workdir"], "target_point": t["point_id"]},
                        "after": t["workdir"]})
    return out


def truth_of(cfg: dict, seq: dict, annotations: Path | None) -> dict:
    """The ground truth of one sequence's points (``vcm.eval.run.TruthSpec`` as a dict)."""
    from vcm.eval.run import TruthSpec

    reference = ctc_config.reference_of(cfg, seq)
    if reference not in ("annotations", "original"):
        raise VcmError(f"sequence {seq['name']}: reference must be annotations or original, not {reference!r}")
    frames = str(seq.get("frames", ""))
    try:
        score = float(seq.get("reference_score", cfg.get("reference_score", 0.5)))
    except (TypeError, ValueError):
        score = float("nan")
    if not 0 <= score <= 1:  # 7 used to be taken: no detection scores that high, an empty ground truth
        raise VcmError(f"sequence {seq['name']}: reference_score must be a number between 0 and 1")
    return TruthSpec(
        reference=reference,
        annotations=seq.get("annotations") or (str(annotations) if annotations else cfg.get("annotations")),
        original=seq["path"] if reference == "original" else None,
        score=score,
        frame_mapping=seq.get("frame_mapping", "auto"), category_ids=seq.get("category_ids", "auto"),
        category_map=list(seq.get("category_map") or []), image_frames=frames if ":" in frames else None,
    ).to_dict()


def safe_run_point(spec: dict) -> dict:
    """run_point, with any failure recorded as a failed row instead of stopping the sweep; except a write the
    results folder's disk could not take (full, a quota, a file-size limit), which stops it: every point after
    would do its work again only to fail the same way."""
    from vcm.fsutil import WRITE_ERRNOS, Busy

    try:
        return run_point(spec)
    except Busy as err:  # another vcm command runs this point now: left to it, nothing recorded here
        return elsewhere_row(spec, err.pid)
    except BaseException as err:  # noqa: BLE001 - a failed point must not end the run
        if isinstance(err, KeyboardInterrupt) or (isinstance(err, OSError) and err.errno in WRITE_ERRNOS):
            raise
        msg = str(err) if isinstance(err, VcmError) else f"{type(err).__name__}: {err}"
        return failed_row(spec, msg.splitlines()[0] if msg else type(err).__name__,
                          None if isinstance(err, VcmError) else traceback.format_exc(limit=5))


def failed_row(spec: dict, error: str, trace: str | None = None) -> dict:
    """Record ``spec``'s point as failed (its result.json; run again by the next ``vcm ctc run``); the row."""
    from vcm.fsutil import write_json

    row = {"status": "failed", "sequence": spec["sequence"], "codec": spec["codec"], "point": spec["point_id"],
           "error": error, "traceback": trace}
    Path(spec["workdir"]).mkdir(parents=True, exist_ok=True)
    write_json(Path(spec["workdir"]) / RESULT, row)
    return row


def run(config_path: Path, out: Path, data: Path | None = None, annotations: Path | None = None,
        only: list[str] | None = None, codecs: list[str] | None = None, jobs: int = 1, backend: str = "local",
        ray_address: str | None = None, force: bool = False, device: str | None = None,
        compute: float | None = None) -> dict:
    """Every point of the config at ``config_path`` into ``out`` (see the module's docstring); ``compute``: K
    times the training of every fit that sets no ``compute`` of its own (:mod:`vcm.codecs.compute`)."""
    out, specs = _checked_plan(config_path, out, data, annotations, only, codecs, backend, device, compute,
                               ray_address=ray_address)
    if backend == "ray":
        _ray_address_answers(*_cluster_address(ray_address))
    out.mkdir(parents=True, exist_ok=True)
    with progress.log_to(out / LOG):  # the run's own record, beside its results
        from vcm.provenance import provenance

        progress.log(f"vcm ctc run {config_path} into {out}: {json.dumps(provenance())}")
        return _run(specs, out, jobs, backend, ray_address, force)


def preview(config_path: Path, out: Path, data: Path | None = None, annotations: Path | None = None,
            only: list[str] | None = None, codecs: list[str] | None = None, backend: str = "local",
            force: bool = False, device: str | None = None, compute: float | None = None,
            ray_address: str | None = None) -> dict:
    """What :func:`run` would do with the same arguments, checked as it checks them, with nothing run or written
    (``vcm ctc run --dry-run``): every point with its state and the networks its points would train, each
    shared by the points of one fit. States: ``finished`` (reused), ``changed`` (finished from another config:
    run again), ``failed`` (run again), ``to run``, ``after anchors`` (a point aiming at an anchor's rate,
    run once the anchors have) and ``missing input`` (an SFU-HW sequence not in ``data``, a checkpoint not found:
    the run refuses until they are there; ``missing`` says why, and a missing sequence's steps are counted on the
    frames the manifest gives it). Each point not finished gives its optimiser ``steps`` (:func:`_training_steps`),
    summed in ``fit_steps`` and ``stage_steps``; a network an earlier run left finished in ``fits/`` is not
    counted as to train, a stopped one by the steps it has left."""
    out, specs = _checked_plan(config_path, out, data, annotations, only, codecs, backend, device, compute,
                               missing_ok=True, ray_address=ray_address)
    points, fits, training, frames = [], set(), set(), {}
    for spec, (state, _) in zip(specs, _states(specs, force)):
        missing = _missing(spec)
        if missing:  # the run refuses until its inputs are there
            state = "missing input"
        elif state == "to run" and "after" in spec:
            state = "after anchors"
        row = {"sequence": spec["sequence"], "codec": spec["codec"], "point": spec["point_id"], "state": state,
               **({"missing": missing} if missing else {})}
        if state != "finished":
            fit = (spec["sequence"], spec["codec"], _fit_key(spec))
            row["steps"] = _training_steps(spec, frames, counts_fit=fit not in fits)
            fits.add(fit)
            if _fit_key(spec) and (row["steps"] or {}).get("fit", 1):  # a network on disk is not trained again
                training.add(fit)
        points.append(row)
    counts = {state: sum(p["state"] == state for p in points)
              for state in ("finished", "changed", "failed", "to run", "after anchors", "missing input")}
    steps = [p["steps"] for p in points if p.get("steps")]
    return {"out": str(out), "points": len(points), **{k.replace(" ", "_"): v for k, v in counts.items()},
            "networks_to_train": len(training),
            "fit_steps": sum(s.get("fit") or 0 for s in steps), "stage_steps": sum(s.get("stage") or 0 for s in steps),
            "stages_by_rate_control": sum("stage" in s and s["stage"] is None for s in steps),
            "unread": sorted({s["unread"] for s in steps if "unread" in s}),
            "missing": _missing_inputs(specs, data), "plan": points}


def _missing_inputs(specs: list[dict], data: Path | None) -> list[str]:
    """Why points of the plan cannot run yet, each reason once; without ``data`` the SFU-HW sequences it leaves
    unfound are one reason naming them all."""
    reasons = sorted({s["missing_inputs"] for s in specs if "missing_inputs" in s})
    if data is not None:
        return sorted({s["missing_video"] for s in specs if "missing_video" in s}) + reasons
    names = sorted({s["sequence"] for s in specs if "missing_video" in s})
    if not names:
        return reasons
    where = "where is" if len(names) == 1 else "where are"
    return [f"{where} {', '.join(names)}? pass --data DIR (the folder with the SFU-HW YUVs)"] + reasons


def _training_steps(spec: dict, frames: dict, counts_fit: bool) -> dict | None:
    """The optimiser steps a point would train (:meth:`vcm.codecs.Codec.training_steps`) on its sequence's frames,
    the fit's only where ``counts_fit`` (the first point of the plan that trains or shares it, 0 on the others);
    None for a codec that trains nothing, ``{unread: why}`` where the video cannot be read (the point would fail
    on it). ``frames`` caches each sequence's frame count."""
    from vcm import codecs
    from vcm.ctc.points import frame_count

    codec = codecs.get(spec["codec"])
    if type(codec).training_steps is codecs.Codec.training_steps:
        return None
    key = (spec["source"], spec["frames"], json.dumps(spec.get("video") or {}, sort_keys=True))
    if key not in frames and "manifest_frames" in spec:  # counted by the manifest (None: frames it does not hold)
        frames[key] = spec["manifest_frames"] if spec["manifest_frames"] is not None else \
            f"{spec['sequence']}: frames {spec['frames']} are not in the manifest's {spec['sequence']}"
    if key not in frames:
        try:
            frames[key] = frame_count(spec)
        except VcmError as err:
            frames[key] = f"{spec['sequence']}: {err}"
    if isinstance(frames[key], str):
        return {"unread": frames[key]}
    steps = codec.training_steps(spec, frames[key])
    return steps if counts_fit else {**steps, "fit": 0, "fit_done": 0}


def _state(spec: dict, force: bool) -> tuple[str, dict | None]:
    """The point's state, ``finished`` (a result of status ok, reused unless ``force``), ``changed`` (a result
    made from another config: run again), ``failed`` (run again) or ``to run``, and its result row if any."""
    old = read_result(Path(spec["workdir"]))
    if old is not None and old.get("status") == "ok" and not force:
        return ("finished" if finished_as_asked(old, spec) else "changed"), old
    return ("failed" if old is not None and old.get("status") == "failed" else "to run"), old


def _states(specs: list[dict], force: bool) -> list[tuple[str, dict | None]]:
    """:func:`_state` of every spec, where a point that starts from another's result is finished only while that
    one is: a point aiming at an anchor's rate (``after``), at the rate it aimed at (an anchor coded anew moved
    its rates, and the point kept the old ones), and a chain's λ point (``warm_from``), while the point before
    it does not run again (it trained from that point's old end state)."""
    states = [_state(s, force) for s in specs]
    while True:
        by_folder = {s["workdir"]: state for s, state in zip(specs, states)}
        stale = [i for i, (spec, (state, row)) in enumerate(zip(specs, states))
                 if state == "finished" and not _starts_as_it_did(row, spec, by_folder)]
        if not stale:
            return states
        for i in stale:
            states[i] = ("changed", states[i][1])


def _starts_as_it_did(row: dict, spec: dict, by_folder: dict[str, tuple[str, dict | None]]) -> bool:
    """Whether what the finished ``row``'s point started from is as it was (``by_folder``: every point's state and
    row by its folder): the point before it in a chain is finished, and an anchor it aimed at is finished at the
    rate it aimed at (a row that does not say its target is taken as it is)."""
    before = (spec.get("point") or {}).get("warm_from")
    if before and by_folder.get(str(Path(spec["workdir"]).with_name(before)), ("finished",))[0] != "finished":
        return False  # (a link before it that is not in this plan has run before)
    target = ((row.get("rate_control") or {}).get("target") or {}).get("kbps")
    if "after" not in spec or target is None:
        return True
    state, anchor = by_folder[spec["after"]]
    return state == "finished" and anchor["kbps"] == target


def _checked_plan(config_path: Path, out: Path, data: Path | None, annotations: Path | None, only: list[str] | None,
                  codecs: list[str] | None, backend: str, device: str | None,
                  compute: float | None = None, missing_ok: bool = False,
                  ray_address: str | None = None) -> tuple[Path, list[dict]]:
    """The results folder and every point's spec, after every check that needs no point to run (``missing_ok``:
    as :func:`plan` takes it; ``ray_address``: as :func:`run` takes it)."""
    from vcm.outputs import check_output

    if backend not in BACKENDS:  # it was refused only once the results folder and its log were written
        raise VcmError(f"--backend must be local or ray, got {backend!r}")
    for option, folder in (("--data", data), ("--annotations", annotations)):
        if folder is not None and not Path(folder).exists():  # a sequence with its own path never read it: no word
            raise VcmError(f"{option} {folder} does not exist")
    if data is not None and not Path(data).is_dir():  # each sequence said "no BQMall_832x480_60.yuv … in clip.yuv"
        raise VcmError(f"--data {data} is not a folder: name the folder that holds the SFU-HW sequences")
    config_path = ctc_config.config_file(config_path)
    cfg = ctc_config.load(config_path)
    if compute is not None:
        cfg = with_compute(cfg, compute)
    out = check_output(Path(out), inputs=[config_path], kind="dir")  # an existing file was a FileExistsError
    _check_not_someone_elses(out)
    specs = plan(cfg, out, data, annotations, only, codecs, device, missing_ok)
    if _points_run_here(backend, ray_address):  # a device this machine lacks failed every point, one after another,
        # or left them waiting on a Ray of vcm's own for ever
        from vcm.device import resolve_device

        resolve_device(device or cfg.get("device") or "auto")
    return out, specs


def with_compute(cfg: dict, factor: float) -> dict:
    """The config with ``factor`` times the training of every fit that sets no ``compute`` of its own (each
    codec scales its own section: anchors train nothing)."""
    from vcm import codecs
    from vcm.codecs.compute import check_factor

    factor = check_factor(factor, "--compute")
    return {**cfg, "codecs": {name: codecs.get(name).with_compute(section, factor)
                              for name, section in (cfg.get("codecs") or {}).items()}}


def _check_not_someone_elses(out: Path) -> None:
    """Refuse a folder that holds a report's files (report.md, summary.csv, …) but no CTC results: its report
    would replace files that no vcm ctc report wrote."""
    from vcm.ctc.report import REPORT_FILES

    if not out.is_dir() or (out / "points").is_dir() or (out / LOG).exists():
        return
    theirs = [name for name in REPORT_FILES if (out / name).exists()]
    if theirs:
        raise VcmError(f"--out {out} holds {', '.join(theirs)} but no CTC results: the report would replace "
                       f"{'them' if len(theirs) > 1 else 'it'}; name a new or empty folder")


def _run(specs: list[dict], out: Path, jobs: int, backend: str, ray_address: str | None, force: bool) -> dict:
    todo, reused, retried, changed = [], [], 0, 0
    for spec, (state, old) in zip(specs, _states(specs, force)):
        if state == "finished":
            reused.append(old)
        else:
            retried += state == "failed"
            changed += state == "changed"
            # with --force the point runs even when another run finishes it first (else its result is taken)
            todo.append({**spec, "force": True} if force else spec)
    if reused:
        progress.log(f"reusing {counted(len(reused), 'finished point')} from {out} (--force redoes them)")
    if retried:
        progress.log(f"retrying {counted(retried, 'point')} that failed before")
    if changed:
        progress.log(f"running again {counted(changed, 'finished point')} whose config changed since they ran "
                     f"(frames, detector, ground truth, the point's settings, a preset or file it names, or the "
                     f"anchor's rate it aims at)")
    if _points_run_here(backend, ray_address):
        check_programs(todo)
        check_evaluations(todo)
    progress.log(f"running {counted(len(todo), 'point')} with backend {backend}, {counted(jobs, 'job')}")
    if _points_run_here(backend, ray_address):
        _note_shared_cores(min(jobs, len(todo)))
    # points that aim at another point's rate run once every other point has
    rows = execute([s for s in todo if "after" not in s], jobs, backend, ray_address)
    rows += execute([s for s in todo if "after" in s], jobs, backend, ray_address)
    failed = [r for r in rows if r.get("status") not in ("ok", ELSEWHERE)]
    for r in failed:
        progress.log(f"failed {r['sequence']} {r['codec']} {r['point']}: {r['error']}", style="red")
    elsewhere = [r for r in rows if r.get("status") == ELSEWHERE]
    if elsewhere:
        n = len(elsewhere)
        progress.log(f"left {counted(n, 'point')} to the other vcm command that was running {noun(n, 'it', 'them')}; "
                     f"{noun(n, 'its result joins', 'their results join')} {out} when that command ends "
                     f"(vcm ctc report then shows {noun(n, 'it', 'them')})")
    return {"out": str(out), "points": len(specs), "ran": len(todo) - len(elsewhere), "reused": len(reused),
            "failed": len(failed), "elsewhere": len(elsewhere),
            "rows": reused + [r for r in rows if r.get("status") != ELSEWHERE]}


def _note_shared_cores(at_once: int) -> None:
    """Say so where more points run at once on this machine (the local backend or a Ray of vcm's own) than this
    process has cores: each runs slower than alone, and the encode and decode times the report gives count that
    (they ran without a word, and a timing compared with another run's misled)."""
    from vcm.cpus import usable_cores

    cores = usable_cores()
    if at_once > cores:
        progress.log(f"{counted(at_once, 'point')} at once on {counted(cores, 'usable core')}: they share the cores, "
                     f"and each point's encode and decode times count the sharing (for timings to compare, "
                     f"--jobs {cores} or fewer)", style="yellow")


def execute(specs: list[dict], jobs: int, backend: str, ray_address: str | None) -> list[dict]:
    if not specs:
        return []
    if backend == "ray":  # run() has refused any backend but local and ray
        return _execute_ray(specs, jobs, ray_address)
    if jobs <= 1:
        rows = []
        with progress.progress("ctc points", len(specs), eta=False) as bar:
            for spec in specs:
                rows.append(safe_run_point(spec))
                _log_point(rows[-1])
                bar.advance(1, status=f"{spec['sequence']} {spec['codec']} {spec['point_id']}")
        return rows
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    from vcm.cpus import usable_cores
    from vcm.ctc.gpu_share import GpuShare

    threads = max(1, usable_cores() // jobs)  # the cores this process may use: a CPU set or quota leaves fewer
    rows, schedule, gpus = [], Schedule(specs, jobs), GpuShare.for_points(specs, jobs)
    with _Workers(jobs) as workers, progress.progress("ctc points", len(specs), eta=False) as bar:
        running: dict = {}  # future → (spec, relay, pool); the slots a point holds are the schedule's to say
        broken: set[int] = set()  # points whose worker died under them once (each runs once more)
        while True:
            for spec, relay, _ in list(running.values()):
                if schedule.holds_back(spec) and (Path(spec["workdir"]) / FITTED).exists():
                    schedule.fitted(spec)
                    progress.log(f"{relay.what}: network on disk; its other points start beside it")
            free = jobs - sum(schedule.slots(spec) for spec, *_ in running.values())
            while (spec := schedule.take(free)) is not None:
                slots = schedule.slots(spec)
                free -= slots
                (Path(spec["workdir"]) / FITTED).unlink(missing_ok=True)  # a marker left by an earlier run
                relay = _Relay(spec)  # before the worker starts its log
                placed = {"device": gpus.place(spec)} if gpus else {}
                fut = workers.pool.submit(safe_run_point, {**spec, **placed, "threads": threads * slots, "quiet": True,
                                                           "threads_after_fit": threads if slots > 1 else None})
                running[fut] = (spec, relay, workers.pool)
            if not running:
                break
            done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)  # the relays look once a second
            for fut in done:
                spec, relay, pool = running.pop(fut)
                if gpus:
                    gpus.release(spec)
                relay.show()  # its last lines, ahead of its result
                try:
                    row = fut.result()
                except BrokenProcessPool:  # a worker was killed (the system out of memory, a signal): every point
                    # of that pool ends here, the rest run on a new one
                    workers.replace(pool)
                    if id(spec) not in broken:  # the points beside the one killed lost their workers too
                        broken.add(id(spec))
                        progress.log(f"{relay.what}: its worker process ended abruptly (killed: the system out of "
                                     f"memory, or a signal); running it again on a new one, a fit from its last "
                                     f"checkpoint")
                        schedule.again(spec)
                        continue
                    row = failed_row(spec, "its worker process ended abruptly while it ran, twice (killed: the "
                                           "system out of memory, or a signal); vcm ctc run runs it again, a fit "
                                           "from its last checkpoint")
                schedule.finished(spec)
                rows.append(row)
                _log_point(rows[-1])
                bar.advance(1)
            for _, relay, _ in running.values():
                relay.show()
            bar.heartbeat()  # workers still loading their clips print nothing yet
    return rows


class _Workers:
    """The worker processes of a parallel run: a pool, replaced when a worker of it dies (``replace``), and
    stopped with this process (Ctrl-C, SIGTERM, a point's write that stops the sweep: each worker saves its work
    as a command of its own would; the pool then waits for them and starts nothing more)."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.pool = self._new()

    def _new(self):
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"))

    def replace(self, broken) -> None:
        if broken is self.pool:
            broken.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new()

    def __enter__(self) -> "_Workers":
        return self

    def __exit__(self, kind, err, tb) -> None:
        stopped = kind is not None  # Ctrl-C, SIGTERM, or a point's write the disk could not take: all stop
        if stopped:
            from vcm.stopping import stop_workers

            stop_workers(multiprocessing.active_children())
        self.pool.shutdown(wait=True, cancel_futures=stopped)


class Schedule:
    """The order in which free parallel workers take points. Points sharing a fit (a network trained
    once, under a lock) form a group: the first point of every group goes first, so that different
    networks train at once; then single points (an anchor's QP); a group's other points as soon as its
    network is on disk (they start at once, beside its first point's own stage), ahead of single points,
    being longer, the group released last first: the network that finished training last has the most
    work left (two networks of different sizes on two slots, each point from its network: the large
    one's second stage runs beside its first, the small one's last stage fills the end); a point whose fit is
    still training only when nothing else is left (it waits on the lock, as an idle worker would).

    A point takes one of the ``jobs`` slots (``cores / jobs`` threads), except that when fewer networks are
    to train than there are slots (a fit of one point counts as one, as a fit of several does), each fitting
    point takes an equal share of them all and starts alone: one HiNeRV fit on 2 threads runs 1.8× as fast
    as on one (bikes 640×272), while the anchors it would otherwise share the cores with wait only as long.
    Once its network is on disk the point goes on with one slot's threads and gives the others back
    (``fitted``), and its group's other points start beside it: four λ points after a fit run as two pairs,
    where the first used to run alone on both slots and the last alone on one, the other slot idle when no
    anchor was left (two stages on one thread each take about as long as one after the other on two). The
    shares and thread counts follow from the config alone (never from timing), so a run's bytes do not
    depend on which point happened to finish first.

    A chained λ point (``warm_from``: :mod:`vcm.codec.chain`, as the demo's sections) starts from where the
    previous point of its chain ended, so it waits for that point to finish, not only for the network:
    each chain runs on one slot, one stage after another."""

    def __init__(self, specs: list[dict], jobs: int = 1):
        groups: dict[tuple, list[dict]] = {}
        for s in specs:
            key = (s["sequence"], s["codec"], _fit_key(s) or s["point_id"])
            groups.setdefault(key, []).append(s)
        shared = [g for g in groups.values() if len(g) > 1]
        # every group with a fit trains a network: one of several points, or of one alone (a fit with one
        # point, or a rate-aware fit's λ, which is its own network); a lone one starts ahead of the anchors
        networks = [g for g in groups.values() if _fit_key(g[0])]
        lone = [g[0] for g in groups.values() if len(g) == 1]
        self.ready = [g[0] for g in shared] + sorted(lone, key=lambda s: not _fit_key(s))  # sorted() keeps ties in order
        self.held = {id(g[0]): g[1:] for g in shared}
        share = jobs // len(networks) if networks else 1
        self.wide = {id(g[0]): share for g in networks} if share > 1 else {}
        self.waiting: list[dict] = []  # released points whose chain's previous point has not finished
        self.done: set[tuple] = set()
        self.planned = {_chain_key(s, s["point_id"]) for s in specs}  # a previous point not among them has run before

    def slots(self, spec: dict) -> int:
        """Slots (shares of the cores) the point runs on."""
        return self.wide.get(id(spec), 1)

    def take(self, free: int = 1) -> dict | None:
        """The next point to start when ``free`` slots are free (None: wait for a point to finish)."""
        if self.ready:
            return self.ready.pop(0) if self.slots(self.ready[0]) <= free else None
        if free < 1:
            return None
        return next((rest.pop(0) for rest in self.held.values() if rest), None)

    def holds_back(self, spec: dict) -> bool:
        """Whether ``spec`` (running) still holds slots or points that its network on disk would release."""
        return id(spec) in self.wide or bool(self.held.get(id(spec)))

    def fitted(self, spec: dict) -> None:
        """``spec`` (running) has its network on disk: its group's other points may start (a chained one
        once its chain's previous point has finished), and it keeps one slot."""
        self.wide.pop(id(spec), None)
        self._release(self.held.pop(id(spec), []))

    def again(self, spec: dict) -> None:
        """``spec`` (running) lost its worker: it starts again first, with what it held (its group's points that
        wait for its network, its slots until then)."""
        self.ready.insert(0, spec)

    def finished(self, spec: dict) -> None:
        """``spec`` has finished: its group's other points may start, and the chained point after it."""
        self.done.add(_chain_key(spec, spec["point_id"]))
        self._release(self.held.pop(id(spec), []))
        self._release(self.waiting)

    def _release(self, specs: list[dict]) -> None:
        """``specs`` may start, those whose chain's previous point is still to finish once it has."""
        waits = {id(s) for s in specs if self._waits(s)}
        self.ready[:0] = [s for s in specs if id(s) not in waits]
        kept = [s for s in self.waiting if all(s is not t for t in specs)]
        self.waiting = [s for s in specs if id(s) in waits] + kept

    def _waits(self, spec: dict) -> bool:
        before = (spec.get("point") or {}).get("warm_from")
        key = _chain_key(spec, before)
        return before is not None and key in self.planned and key not in self.done


def _fit_key(spec: dict) -> str | None:
    """The network a point trains or shares (a NeRV-family point's ``fit_key``); None for a point without one."""
    return (spec.get("point") or {}).get("fit_key") or None


def _chain_key(spec: dict, point_id: str) -> tuple:
    return spec["sequence"], spec["codec"], point_id


class _Relay:
    """Shows what a quiet worker's point is doing: every line its ``point.log`` gained since the last look (the
    runner looks about once a second, so the run's log says when a stage started to within that, where it
    used to show the newest line of each 10 s and drop the rest); a log that grew by more than a screenful at
    once shows its last lines."""

    SHOWN = 8  # lines at most per look

    def __init__(self, spec: dict):
        from vcm.ctc.points import POINT_LOG

        self.path = Path(spec["workdir"]) / POINT_LOG
        self.what = f"{spec['sequence']} {spec['codec']} {spec['point_id']}"
        # A log there now is an earlier run's, or another command's that runs the point (and keeps it): never
        # removed here, never shown. The worker starts its own afresh under the point's lock, and a log is told
        # from another by its first line (a new file may get the old one's inode).
        self.head, self.offset = self._head(), 0  # offset: where the last look ended, in the log of that head
        if self.head is not None:
            self.offset = self.path.stat().st_size

    def _head(self, f=None) -> bytes | None:
        """The log's first line (a complete one, or b"" while there is none yet); None without a log."""
        try:
            with open_regular(self.path, "rb") if f is None else contextlib.nullcontext(f) as g:
                g.seek(0)
                line = g.readline(1024)
        except (OSError, VcmError):
            return None
        return line if line.endswith(b"\n") else b""

    def show(self) -> None:
        try:
            with open_regular(self.path, "rb") as f:
                head = self._head(f)
                if not head:
                    return  # no complete line yet
                if head != self.head:  # the point's own log, started afresh
                    self.head, self.offset = head, 0
                end = f.seek(0, os.SEEK_END)
                f.seek(max(self.offset, end - 64 * 1024))
                text = f.read()
        except (OSError, VcmError):
            return  # not started yet (the worker refuses a log it cannot keep)
        complete = text.rfind(b"\n") + 1  # a line still being written is shown next time
        self.offset = end - len(text) + complete
        for line in text[:complete].decode("utf-8", "replace").splitlines()[-self.SHOWN:]:
            message = line.split(" ", 2)[-1]  # a log line is "YYYY-MM-DD HH:MM:SS message"
            if message.strip():
                progress.log(f"  [{self.what}] {message}")  # plain text, as every message


def _log_point(row: dict) -> None:
    what = f"{row['sequence']} {row['codec']} {row['point']}"
    if row.get("status") == ELSEWHERE:
        from vcm.fsutil import pid_note

        running = f"{row['after']}, the point it starts from" if row.get("after") else "it"
        progress.log(f"point {what}: another vcm command{pid_note(row.get('pid'))} is running {running}; left to it")
    elif row.get("status") == "ok":
        progress.log(f"point {what}: {row['bytes']:,} bytes, {row['kbps']:.2f} kbps, PSNR {row['psnr']:.2f} dB")
    else:
        progress.log(f"point {what}: failed ({row.get('error')})")


def _run_after(spec: dict, folder: str, *earlier) -> dict:
    """``safe_run_point`` as a Ray task that starts once the points it is handed (as results) have finished, in
    ``folder``, the one ``vcm ctc run`` was started in: a spec's paths are the user's, relative ones included, and
    a Ray worker starts wherever its node puts it (a copy of the folder under ``/tmp/ray`` where Ray ships one, the
    folder ``ray start`` ran in on a cluster)."""
    try:
        os.chdir(folder)
    except OSError as err:
        raise VcmError(f"this Ray node has no folder {folder} ({err.strerror}): vcm ctc run's points run in the "
                       f"folder it was started in, which every node of the cluster needs at the same path") from None
    return safe_run_point(spec)


RAY_STOP_GRACE = 60.0  # seconds the stopped points have to save their work before the sweep ends without them
RAY_CONNECT_TIMEOUT = 5.0  # seconds a cluster's address has to answer


def _stop_ray_tasks(ray, pending: list) -> None:
    """Cancel the sweep's unfinished Ray tasks: one running gets a KeyboardInterrupt, which its stage takes as
    Ctrl-C (it finishes the step in progress and saves, as `vcm fit` does); one waiting never starts. Waits for
    them up to ``RAY_STOP_GRACE`` (a second Ctrl-C ends the wait), so that the local Ray instance is not shut
    down under a save: a point's workers were killed where they stood, its fit losing what it had trained
    since its last checkpoint."""
    for ref in pending:
        ray.cancel(ref, force=False)
    progress.log(f"stopping {counted(len(pending), 'Ray task')}: each saves its work (Ctrl-C again to end at once)")
    ray.wait(pending, num_returns=len(pending), timeout=RAY_STOP_GRACE)


def _cluster_address(option: str | None) -> tuple[str | None, str]:
    """(address, its name in a message) of the cluster a Ray sweep joins: ``--ray-address``, else ``RAY_ADDRESS``
    as Ray reads it; (None, "") for a local Ray of vcm's own."""
    if option:
        return option, f"--ray-address {option}"
    env = os.environ.get("RAY_ADDRESS")
    return (env, f"RAY_ADDRESS={env}") if env else (None, "")


def _points_run_here(backend: str, ray_address: str | None) -> bool:
    """Whether the points run on this machine (the local backend, or a Ray of vcm's own), so that what they need
    (a device, weights, annotations) can be checked here before any runs; a cluster's nodes may hold what this
    machine does not."""
    return backend == "local" or _cluster_address(ray_address)[0] is None


def _ray_address_answers(address: str | None, named: str) -> None:
    """Refuse at once a ``host:port`` (or ``ray://host:port``) address where nothing listens: Ray retries one for
    minutes, a word at a time. Other forms (``auto``, ``local``, a port-less name) are Ray's to read."""
    host, sep, port = (address or "").removeprefix("ray://").rpartition(":")
    if not (sep and host and port.isdigit()):
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_TIMEOUT).close()
    except OSError as err:
        raise VcmError(f"{named}: nothing answers there ({err.strerror or err}); start the cluster (ray start "
                       f"--head), or leave the address out for a local Ray") from None


def _start_ray(ray, jobs: int, option: str | None) -> None:
    """A local Ray of ``jobs`` CPUs, or the cluster :func:`_cluster_address` names; a Ray that does not start is
    one line, not Ray's traceback."""
    address, named = _cluster_address(option)
    # "local": without an address Ray would join the cluster a `ray start` on this machine left its address for
    # (a dead one too), refusing then the CPU count
    kwargs = {"address": address} if address else {"address": "local", "num_cpus": max(jobs, 1)}
    try:
        ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False, **kwargs)
    except Exception as err:  # noqa: BLE001 - ConnectionError (no cluster), ValueError (ray:// without its client)
        why = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise VcmError(f"Ray did not start{f' ({named})' if named else ''}: {why}") from None


def _ray_without_uv_workers():
    """Ray, its workers to start in the driver's own environment → the ``ray`` module.

    Under `uv run` (any ancestor process), Ray would copy the folder vcm runs in to every session under /tmp/ray
    and start its workers in the copy with `uv run --python X.Y.Z` again: a second environment built per sweep,
    relative paths read in the copy, and no worker at all where uv finds no interpreter of that exact version
    (a pyenv install: Ray retried for minutes, then failed every point). vcm sets
    ``RAY_ENABLE_UV_RUN_RUNTIME_ENV=0`` unless the user set it. Ray reads it once, when it is first imported, so
    a Ray a script (or a test) imported before vcm's sweep is given the same reading."""
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    import ray

    try:
        from ray._private import ray_constants
    except ImportError:  # a Ray without the module: it reads the variable where it reads it
        return ray
    if hasattr(ray_constants, "RAY_ENABLE_UV_RUN_RUNTIME_ENV"):
        ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = ray_constants.env_bool("RAY_ENABLE_UV_RUN_RUNTIME_ENV", True)
    return ray


def _execute_ray(specs: list[dict], jobs: int, address: str | None) -> list[dict]:
    try:
        ray = _ray_without_uv_workers()
    except ImportError:
        raise VcmError("--backend ray needs Ray: pip install 'vcm[ray]'") from None
    if ray.is_initialized():  # the caller's Ray (a notebook, a script): used and left as it was
        return _sweep_on_ray(ray, specs)
    import signal

    from vcm import stopping

    handlers = {s: signal.getsignal(s) for s in stopping.stop_signals()}
    _start_ray(ray, jobs, address)
    # Ray's driver takes SIGTERM for itself (a stack dump, then exit): a scheduler's time limit stops a Ray
    # sweep as it stops any vcm command, its points saving their work (below)
    stopping.install()
    try:
        return _sweep_on_ray(ray, specs)
    finally:  # the Ray vcm started ends with the sweep, not with the process (a caller that goes on)
        ray.shutdown()
        for s, handler in handlers.items():
            signal.signal(s, handler)


def _needs_gpu(spec: dict) -> bool:
    return device_kind(spec.get("device"))[0] == "cuda"


def _asks_ray_for_gpu(spec: dict, cluster_has_gpu: bool) -> bool:
    """Whether a point's Ray task asks for a GPU: on ``cuda[:N]`` always, on ``auto`` where the cluster has one. Ray
    shows such a task its GPU alone, so the point runs on ``cuda``, whatever index that GPU has on its node. A
    task that asks for none sees every GPU of its node: ``auto`` took the node's first, beside as many other
    points as the node has CPUs, while its other GPUs stood idle."""
    return _needs_gpu(spec) or (cluster_has_gpu and device_kind(spec.get("device"))[0] == "auto")


def _sweep_on_ray(ray, specs: list[dict]) -> list[dict]:
    """Run ``specs`` as Ray tasks, a chained point after the one it starts from → their result rows."""
    from ray.exceptions import RayError

    rows = []
    has_gpu = bool(ray.cluster_resources().get("GPU"))
    if any(_needs_gpu(s) for s in specs) and not has_gpu:
        progress.log("the Ray cluster has no GPU now: its points on CUDA wait until a node with one joins (Ctrl-C "
                     "stops the sweep)", style="yellow")
    pinned = sorted({str(s["device"]) for s in specs if _needs_gpu(s) and device_kind(s["device"])[1] is not None})
    if pinned:
        progress.log(f"on Ray each point on CUDA runs on the GPU that Ray gives it ({', '.join(pinned)} read as cuda); "
                     f"CUDA_VISIBLE_DEVICES set before `ray start` limits the GPUs Ray gives")
    remote = ray.remote(_run_after)
    here = os.getcwd()
    with progress.progress("ctc points (ray)", len(specs), eta=False) as bar:
        pending, by_id, spec_of = [], {}, {}
        for s in specs:  # a chained point's previous point comes before it (vcm.codecs.nerv_family)
            gpu = 1 if _asks_ray_for_gpu(s, has_gpu) else 0
            before = (s.get("point") or {}).get("warm_from")
            after = [by_id[_chain_key(s, before)]] if before and _chain_key(s, before) in by_id else []
            task = {**s, "threads": 1, "quiet": True, **({"device": "cuda"} if gpu else {})}
            ref = remote.options(num_cpus=1, num_gpus=gpu).remote(task, here, *after)
            by_id[_chain_key(s, s["point_id"])] = ref
            spec_of[ref] = s
            pending.append(ref)
        while pending:
            try:
                done, pending = ray.wait(pending, num_returns=1, timeout=max(1.0, progress.interval()))
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the points stop as a command does, saving their work
                _stop_ray_tasks(ray, pending)
                raise
            for ref in done:
                try:
                    rows.append(ray.get(ref))
                except RayError as err:  # its worker died after Ray's own retries (out of memory, a signal, a lost
                    # node), or the point it waited on did: that point fails, the sweep goes on
                    why = (str(err).strip().splitlines() or [""])[0][:200]
                    cause = getattr(err, "cause", None)  # a task's own exception, which Ray wraps
                    rows.append(failed_row(spec_of[ref], str(cause) if isinstance(cause, VcmError) else
                                           f"its Ray task failed ({type(err).__name__}: {why}); vcm ctc run runs it "
                                           f"again, a fit from its last checkpoint"))
                _log_point(rows[-1])
                bar.advance(1)
            bar.heartbeat()
    return rows
