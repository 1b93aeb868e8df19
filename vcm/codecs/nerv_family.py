"""The NeRV family: a representation (``nerv``, ``hinerv``) fitted with loss (4) or SA-NeRV loss (6),
compressed by the paper's pipeline (points ``{prune, bits}``) or by rate–distortion training
(points ``{lambda}``). Each fit is trained once and shared by its points; its training time counts
in every point's encode time.

λ points are rate-aware by default: each λ gets its own fit trained with the rate in the loss
(``vcm fit --lambda``), then coded with 0 extra epochs unless the point sets ``rd_epochs``. At equal
steps per point it is about as good as fit-then-compress with the preset hinerv-demo, better on one clip
and worse on another (README, "Compression and bitstreams"). ``rate_aware: false`` on a fit shares one
plain fit among its λ points (cheaper for a curve: one fit instead of one per λ; ``vcm demo`` uses it to
stay within minutes).

Config section::

    fits:
      - preset: demo            # configs/nerv/<preset>.yaml (+ params, epochs, batch, lr overrides)
        points: [{prune: 0.4, bits: 8}, {lambda: 0.3}, {lambda: 1.0, rd_epochs: 20}]
        rate_aware: true        # default; false: λ points share the plain fit
    masks: {sam_checkpoint: ..., alpha: 0.93}   # SA-NeRV entries only (or {source: canny | boxes:DETECTOR})

A section without ``fits`` runs the ``curve`` of the representation's default preset (HiNeRV:
``configs/nerv/hinerv-demo.yaml``, the product's default curve, written out by ``with_defaults``).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import time
from pathlib import Path

from vcm.codecs import Codec, network_ready, register_codec
from vcm.errors import VcmError
from vcm.fsutil import flock, open_regular, require_input
from vcm.masks.choice import KEYS as MASK_KEYS, MaskChoice, check_choice
from vcm.schema import SEED_RULE, is_seed
from vcm.words import differences, noun

_FIT_KEYS = {"preset", "params", "width_scale", "epochs", "steps", "batch", "lr", "seed", "stage_seed", "points", "rate_aware",
             "chain", "compute"}
_AFFINE_KEYS = {"prune", "bits", "qat", "finetune_epochs"}
_RD_KEYS = {"lambda", "rd_epochs", "rd_steps", "prune", "step_lr", "temporal"}
_MATCH_KEYS = {"match", "lambda", "rd_epochs", "rd_steps", "step_lr", "temporal"}


def _label(value) -> str:
    return str(value).replace(".", "p")


def _chain_link(point: dict) -> bool:
    """A point that a chained fit runs as a link of its chain: a λ point (not one matching an anchor)."""
    return "lambda" in point and "match" not in point


def _seed_of(name: str, fit: dict, key: str) -> int | None:
    """A fit's ``seed`` or ``stage_seed``: None when absent, else a seed (refused otherwise)."""
    value = fit.get(key)
    if value is not None and not is_seed(value):
        raise VcmError(f"{name} fit: {key} must be {SEED_RULE}, not {value!r}")
    return value


def rate_aware(fit: dict) -> bool:
    """Whether a CTC fit section trains a network per λ with the rate in its loss (the default) rather than
    one plain fit that its λ points share (``rate_aware: false``)."""
    return bool(fit.get("rate_aware", True))


def fit_plan(fit: dict, default_preset: str, loss: str = "nerv"):
    """(model spec, training config) of a CTC fit section (a point's ``fit``), as ``vcm.nerv.run.plan``
    resolves its preset and overrides: what the fit runs."""
    from vcm.nerv.run import plan

    return plan(fit.get("preset", default_preset), fit.get("params"), fit.get("width_scale"), epochs=fit.get("epochs"),
                steps=fit.get("steps"), batch=fit.get("batch"), lr=fit.get("lr"), seed=fit.get("seed"), loss=loss,
                rate_lambda=fit.get("rate_lambda"))


def run_plan(fit: dict, default_preset: str, loss: str, num_frames: int):
    """(model spec, training config) that a fit section's fit runs on a clip of ``num_frames`` frames: its
    plan, with ``compute: K`` (when set) turned into K times the steps that plan gives the clip."""
    model_spec, train = fit_plan(fit, default_preset, loss)
    if fit.get("compute") is None:
        return model_spec, train
    from vcm.codecs.compute import fit_steps

    steps = fit_steps(train, float(fit["compute"]), num_frames)
    return fit_plan({**{k: v for k, v in fit.items() if k != "epochs"}, "steps": steps}, default_preset, loss)


def _steps_on_disk(fit_dir: Path, total: int, num_frames: int) -> int:
    """The optimiser steps of a fit of ``total`` steps on ``num_frames`` frames that ``fit_dir`` already holds:
    all of them when finished, the step it stopped at otherwise; 0 for none, or for a fit of another schedule
    or frame count (the run trains that one again)."""
    from vcm.nerv.run_files import CHECKPOINT
    from vcm.nerv.train import run_state

    if not (fit_dir / CHECKPOINT).is_file():
        return 0
    try:
        state = run_state(fit_dir)
    except VcmError:  # damaged: the run says so and trains it again
        return 0
    if state["total_steps"] != total or int(state["config"]["video"]["num_frames"]) != num_frames:
        return 0
    return total if state["finished"] else min(state["step"], total)


def _check_masks_values(codec: str, masks: dict) -> None:
    """A masks section's values: paths and names are strings (a list or a number where a path goes was a
    TypeError in the planner), and they choose one place by ``vcm.masks.choice``'s rules, as ``vcm fit``'s
    options do (α a threshold in [0, 1]; a file beside weights, or SAM's settings beside another source, refused:
    the first won, unseen)."""
    for key in ("masks", "sam_checkpoint", "config", "sam_model", "source"):
        value = masks.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise VcmError(f"{codec} masks: {key} must be a string, got {value!r}")
    check_choice(MaskChoice(**masks), prefix=f"{codec} masks: ")


def _preset_key(preset: str) -> str:
    """A preset's part of a fit's folder name: its name, or a YAML path's file stem (a path has separators)."""
    return Path(preset).stem if "/" in preset or preset.endswith((".yaml", ".yml")) else preset


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock file, so that parallel points sharing one fit train it once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_regular(path, "w", kept="lock for this fit") as f:
        flock(f, fcntl.LOCK_EX, path)
        try:
            yield
        finally:
            flock(f, fcntl.LOCK_UN, path)


def _stream_bytes(path) -> bytes:
    require_input(path)
    return Path(path).read_bytes()


def _number(where: str, section: dict, key: str, default: float | None = None, whole: bool = False) -> float:
    """A config section's number ``key`` (``default`` when absent); a one-line error naming ``where`` it sits
    and the key when it is not one."""
    value = section.get(key, default)
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or (whole and not (math.isfinite(value) and value == int(value)))):
        raise VcmError(f"{where}: {key} must be {'a whole number' if whole else 'a number'}, got {value!r}")
    return int(value) if whole else float(value)


def _options(p: dict, seed: dict | None = None):
    """The compression options of a planned point ``p``: rate–distortion (it has a λ) or the paper's
    prune/quantize; ``seed``: the stages' seed, when one is set."""
    from vcm.codec.compress import CompressOptions, RDOptions

    seed = seed or {}
    if "lambda" in p:
        fast = {} if p.get("step_lr") is None else {"step_lr": p["step_lr"], "entropy_lr": p["step_lr"]}
        return RDOptions(lam=p["lambda"], epochs=p.get("rd_epochs"), steps=p.get("rd_steps"), prune=p["prune"],
                         temporal=p.get("temporal", True), **fast, **seed)
    return CompressOptions(prune=p["prune"], bits=p["bits"], qat=p["qat"], finetune_epochs=p.get("finetune_epochs"), **seed)


class NervFamily(Codec):
    suffix = ".nerv"

    def __init__(self, arch: str, loss: str, default_preset: str):
        self.arch, self.loss, self.default_preset = arch, loss, default_preset
        # masks under a plain-loss codec were never read: its section holds no such key
        self.section_keys = ("fits", "masks") if loss == "sa-nerv" else ("fits",)

    def with_defaults(self, section: dict | None) -> dict:
        """A section without ``fits`` (or with ``fits:`` left empty) gets its default preset's ``curve``
        (``configs/nerv/hinerv-demo.yaml`` for HiNeRV: the demo's curve, the product's default); one whose
        preset has no curve is refused, as is an empty list of fits (a curve of no points)."""
        section = section or {}
        if not isinstance(section, dict) or section.get("fits") is not None:
            if isinstance(section, dict) and section.get("fits") == []:
                raise VcmError(f"{self.name}: fits is an empty list, a curve of no points; leave fits out for "
                               f"the default curve of preset {self.default_preset}, or list fits")
            return section
        from vcm.nerv.presets import preset_curve

        curve = preset_curve(self.default_preset)
        if curve is None:
            raise VcmError(f"{self.name} needs fits ({{preset: ..., points: [...]}}): its default preset "
                           f"{self.default_preset} has no curve to run")
        return {**section, "fits": curve}

    def points(self, section: dict, sequence: dict) -> list[tuple[str, dict]]:
        pts = []
        folders: dict[str, dict] = {}  # fit folder → the fit trained there
        section = self.with_defaults(section)
        if self.loss == "sa-nerv" and not section.get("masks"):  # each point failed on it, after the anchors ran
            raise VcmError(f"{self.name} needs edge masks: masks: {{source: canny}} (no weights needed), "
                           f"{{sam_checkpoint: PATH}} or {{masks: FILE}} (from vcm masks)")
        if section.get("masks") is not None:
            if not isinstance(section["masks"], dict):
                raise VcmError(f"{self.name} masks must be a mapping such as {{source: canny}}, got {section['masks']!r}")
            unknown = set(section["masks"]) - set(MASK_KEYS)
            if unknown:
                raise VcmError(f"{self.name} masks: unknown {noun(len(unknown), 'key')} {', '.join(sorted(unknown))}; "
                               f"valid: {', '.join(sorted(MASK_KEYS))}")
            _check_masks_values(self.name, section["masks"])
        fits = section.get("fits") or []
        if not isinstance(fits, list) or not all(isinstance(f, dict) for f in fits):
            raise VcmError(f"{self.name} fits must be a list of fits ({{preset: ..., points: [...]}}), got {fits!r}")
        for fit in fits:
            points = fit.get("points") or []
            if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
                raise VcmError(f"{self.name} fit: points must be a list of points ({{lambda: 1}} or "
                               f"{{prune: 0.4, bits: 8}}), got {fit.get('points')!r}")
            unknown = set(fit) - _FIT_KEYS
            if unknown:
                of_points = sorted(unknown & (_AFFINE_KEYS | _RD_KEYS | _MATCH_KEYS))
                hint = (f" ({', '.join(of_points)} {noun(len(of_points), 'is a key', 'are keys')} of each point: "
                        f"points: [{{{of_points[0]}: ..., ...}}])") if of_points else ""
                raise VcmError(f"{self.name} fit: unknown {noun(len(unknown), 'key')} {', '.join(sorted(unknown))}; "
                               f"valid: {', '.join(sorted(_FIT_KEYS))}{hint}")
            if not points:  # such a fit was dropped without a word: no network trained, no point on the curve
                raise VcmError(f"{self._fit_named(fit)}: no points; give "
                               f"points: [{{lambda: 1}}, ...] or [{{prune: 0.4, bits: 8}}, ...]")
            self._check_fit(fit)
            if fit.get("compute") is not None and float(fit["compute"]) == 1:  # the schedule as it is: the same fit
                fit = {k: v for k, v in fit.items() if k != "compute"}  # and points as without it (finished ones kept)
            fit_key = _preset_key(str(fit.get("preset", self.default_preset)))
            if fit.get("params") is not None:
                fit_key += f"_{_label(fit['params'])}"
            if fit.get("width_scale") is not None:
                from vcm.nerv.config import parse_width_scale

                fit_key += f"_w{_label(parse_width_scale(fit['width_scale']))}"
            if fit.get("epochs") is not None:
                fit_key += f"_e{fit['epochs']}"
            if fit.get("steps") is not None:
                fit_key += f"_s{fit['steps']}"
            if fit.get("batch") is not None:  # fits of two batches or learning rates trained into one folder, in turn
                fit_key += f"_batch{fit['batch']}"
            if fit.get("lr") is not None:
                fit_key += f"_lr{_label(fit['lr'])}"
            if fit.get("compute") is not None:
                fit_key += f"_x{_label(format(float(fit['compute']), 'g'))}"
            if _seed_of(self.name, fit, "seed") is not None:  # the same section again from another start: a run-to-run spread
                fit_key += f"_seed{fit['seed']}"
            # the same fit's stages from another start (the stages' own spread): the points' names say so, the fit's do not
            stage_key = "" if _seed_of(self.name, fit, "stage_seed") is None else f"_ss{fit['stage_seed']}"
            chained = self._chained(fit)
            fit_points = fit.get("points") or [{}]
            if chained:  # the chain's λ points first, from the smallest λ up: the first trains the fit
                for p in fit_points:  # each λ a number before the order is taken from it
                    if _chain_link(p):
                        _number(f"{self.name} point {p}", p, "lambda")
                fit_points = sorted(fit_points, key=lambda p: (0, float(p["lambda"])) if _chain_link(p) else (1, 0.0))
            last_link = [q for q in fit_points if _chain_link(q)][-1] if chained else None
            seeded = False  # whether a stage of this fit's points reads the stages' seed
            previous = None  # (point id, λ) of the chain's previous link
            for p in fit_points:
                where = f"{self.name} point {p}"
                common = {"fit": {k: v for k, v in fit.items() if k not in ("points", "rate_aware", "chain", "stage_seed")},
                          "fit_key": fit_key, "masks": section.get("masks")}
                if stage_key:
                    common["stage_seed"] = fit["stage_seed"]
                if "match" in p:  # one point per point of the anchor, at its rate (expanded by the CTC planner)
                    unknown = set(p) - _MATCH_KEYS
                    if rate_aware(fit):
                        raise VcmError(f"{self.name}: match points search λ on one plain fit; set rate_aware: false on their fit")
                    pid = f"{fit_key}_rd_match_{p['match']}{stage_key}"
                    point = {**common, "match": str(p["match"]), "lambda": _number(where, p, "lambda", 1.0), "prune": 0.0,
                             "rd_epochs": p.get("rd_epochs"), "rd_steps": p.get("rd_steps"), "step_lr": p.get("step_lr"),
                             "temporal": p.get("temporal", True)}
                elif "lambda" in p:
                    unknown = set(p) - _RD_KEYS
                    lam, prune = _number(where, p, "lambda"), _number(where, p, "prune", 0.0)
                    if rate_aware(fit):  # its own fit, born with the rate in its loss
                        common["fit"]["rate_lambda"] = lam
                        common["fit_key"] = f"{fit_key}_ra_l{_label(lam)}"
                    temporal = p.get("temporal", True)
                    if not isinstance(temporal, bool):
                        raise VcmError(f"{self.name} point {p}: temporal must be true or false")
                    pid = (f"{fit_key}_rd_l{_label(lam)}" + (f"_pr{_label(prune)}" if prune else "")
                           + ("" if temporal else "_flat") + stage_key)
                    point = {**common, "lambda": lam, "prune": prune, "rd_epochs": p.get("rd_epochs"), "rd_steps": p.get("rd_steps"),
                             "step_lr": p.get("step_lr"), "temporal": temporal}
                    if chained:  # starts where the previous λ's stage ended (its own folder: another stream)
                        if previous is not None:
                            pid += f"_from_l{_label(previous[1])}"
                        point["warm_from"] = previous and previous[0]
                        point["keeps_state"] = p is not last_link  # the last link keeps no state
                        previous = (pid, lam)
                else:
                    unknown = set(p) - _AFFINE_KEYS
                    prune, bits = _number(where, p, "prune", 0.0), _number(where, p, "bits", 8, whole=True)
                    pid = f"{fit_key}_pr{_label(prune)}_b{bits}{'_qat' if p.get('qat') else ''}{stage_key}"
                    point = {**common, "prune": prune, "bits": bits, "qat": bool(p.get("qat")),
                             "finetune_epochs": p.get("finetune_epochs")}
                if unknown:
                    raise VcmError(f"{self.name} point {p}: unknown {noun(len(unknown), 'key')} "
                                   f"{', '.join(sorted(unknown))}; valid: "
                                   f"{{{', '.join(sorted(_AFFINE_KEYS))}}} or {{{', '.join(sorted(_RD_KEYS))}}}")
                for key in ("rd_steps", "rd_epochs", "finetune_epochs", "step_lr"):  # its values, before any fit trains for it
                    if p.get(key) is not None:
                        _number(where, p, key, whole=key != "step_lr")
                folder = point["fit_key"]  # one folder, one fit: another would train over it, in turn, every run
                first = folders.setdefault(folder, point["fit"])
                if first != point["fit"] and fit_plan(first, self.default_preset, self.loss) != \
                        fit_plan(point["fit"], self.default_preset, self.loss):  # said alike, the same fit
                    raise VcmError(f"{self.name}: two fits would train into one folder, {folder}, and differ (first "
                                   f"to second: {differences(first, point['fit'])}); a preset file named like a "
                                   f"shipped preset (or like another file) shares its name: rename the file")
                opts = _options(point)
                try:
                    opts.check()
                except VcmError as err:  # the options' messages name the command line's flags; here they are keys
                    raise VcmError(f"{where}: {str(err).replace('--', '')}") from None
                seeded = seeded or opts.draws_at_random(rate_aware(fit))
                pts.append((pid, point))
            if stage_key and not seeded:
                raise VcmError(f"{self.name} fit: stage_seed {fit['stage_seed']} seeds no stage: its points draw "
                               "nothing at random (a rate-aware fit's λ points train no stage unless they set "
                               "rd_steps; the paper pipeline only fine-tunes after prune or with qat); drop "
                               "stage_seed")
        return pts

    def with_compute(self, section: dict, factor: float) -> dict:
        """Every fit that gives no ``compute`` of its own gets ``compute: factor`` (:mod:`vcm.codecs.compute`)."""
        section = self.with_defaults(section)
        fits = section.get("fits")
        if not isinstance(fits, list):  # nothing to scale (points() refuses a malformed section)
            return section
        return {**section, "fits": [{**f, "compute": factor} if isinstance(f, dict) and f.get("compute") is None else f
                                    for f in fits]}

    def training_steps(self, spec: dict, num_frames: int) -> dict:
        """The fit's steps as :meth:`_fit` runs them, less those its folder holds (a finished fit of the same
        schedule and frame count, or a stopped one it resumes; one of another schedule is trained again), and
        the point's stage's as :meth:`encode_decode` runs them (a match point's stage: its rate control's
        trials, unknown before they run). A fit edited in place with the same schedule (another preset's
        network under the same name) is retrained by the run though counted here as on disk."""
        from vcm.codecs.compute import stage_steps

        point = spec["point"]
        _, train = run_plan(point["fit"], self.default_preset, self.loss, num_frames)
        try:
            total = train.total_steps(num_frames)
        except VcmError as err:  # epochs of this sequence's frames: which fit, on which sequence
            raise VcmError(f"{self._fit_named(point['fit'])} on {spec['sequence']}: {err}") from None
        done = _steps_on_disk(self._fit_dir(spec), total, num_frames)
        fit = {"fit": total - done, "fit_done": done}
        if "match" in point:
            return {**fit, "stage": None}
        opts, planned = self._stage_plan(point, num_frames)
        return {**fit, "stage": stage_steps(opts, planned, num_frames, "rate_lambda" in point["fit"])}

    def _stage_plan(self, point: dict, num_frames: int, seed: dict | None = None):
        """(the compression options a point's stage runs, the schedule of the fit it starts from as its preset
        gives it): with ``compute: K``, K times the stage's steps on a clip of ``num_frames`` frames."""
        from vcm.codecs.compute import stage_options

        opts = _options(point, seed)
        _, planned = fit_plan(point["fit"], self.default_preset, self.loss)
        if point["fit"].get("compute") is not None:  # K times the steps the stage would run on this fit
            opts = stage_options(opts, planned, float(point["fit"]["compute"]), num_frames, "rate_lambda" in point["fit"])
        return opts, planned

    def _fit_dir(self, spec: dict) -> Path:
        """The folder of the network a planned point trains or shares (a results folder's ``fits/``)."""
        return Path(spec["out"]) / "fits" / spec["sequence"] / self.name / spec["point"]["fit_key"]

    def _fit_named(self, fit: dict) -> str:
        """A fit section as messages name it: ``hinerv fit {'preset': 'hinerv-demo', 'steps': 80}`` (its points
        left out)."""
        return f"{self.name} fit {({k: v for k, v in fit.items() if k != 'points'})}"

    def _check_fit(self, fit: dict) -> None:
        """A fit section's values, as its fit would resolve them, before any fit trains."""
        where = self._fit_named(fit)
        if "preset" in fit and (not isinstance(fit["preset"], str) or not fit["preset"].strip()):
            raise VcmError(f"{where}: preset must be a preset's name or a YAML file's path (a string), got "
                           f"{fit['preset']!r}")
        for key in ("steps", "epochs", "batch"):
            if fit.get(key) is not None:
                _number(where, fit, key, whole=True)
        if fit.get("steps") is not None and fit.get("epochs") is not None:  # steps won without a word
            raise VcmError(f"{where}: steps and epochs both set the fit's length; give one of them")
        if fit.get("lr") is not None:
            _number(where, fit, "lr")
        if fit.get("compute") is not None:
            from vcm.codecs.compute import check_factor

            check_factor(fit["compute"], f"{self.name} fit: compute")
        try:
            model_spec, _ = fit_plan(fit, self.default_preset, self.loss)
        except VcmError as err:  # as for a point: keys, not the command line's flags
            raise VcmError(f"{where}: {str(err).replace('--', '')}") from None
        if model_spec.arch != self.arch:  # each of its points failed on it, after a dry run that listed them
            raise VcmError(f"codec {self.name} fits {self.arch} networks; preset {fit.get('preset')!r} is a "
                           f"{model_spec.arch} one: put that fit under the {model_spec.arch} codec, or name a "
                           f"{self.arch} preset")

    def _chained(self, fit: dict) -> bool:
        """Whether a fit's λ points run as a chain (:mod:`vcm.codec.chain`): its ``chain`` key, else its
        preset's ``rd_chain``; only on a plain fit shared by two or more λ points."""
        asked = fit.get("chain")
        if asked is not None and not isinstance(asked, bool):
            raise VcmError(f"{self.name} fit: chain must be true or false, not {asked!r}")
        if asked and rate_aware(fit):
            raise VcmError(f"{self.name} fit: chain: true runs λ points on one plain fit; set rate_aware: false")
        links = sum(_chain_link(p) for p in fit.get("points") or [])
        if asked and links < 2:  # ignored without a word
            raise VcmError(f"{self.name} fit: chain: true runs two or more λ points one after another; this fit "
                           f"has {links}")
        if rate_aware(fit) or links < 2:
            return False
        if asked is not None:
            return asked
        from vcm.nerv.config import load_preset

        return load_preset(str(fit.get("preset", self.default_preset)))[1].rd_chain

    def curve(self, point: dict) -> str:
        return f"{self.name}-rd" if "lambda" in point else self.name

    def read_stream(self, path, device, wanted=None, checkpoint=None):
        from vcm.codec.decode import decode_frames, decode_stream

        stream = decode_stream(Path(path))
        source, name = range(*stream.video["source_frames"]), stream.video.get("sequence") or stream.video["name"]
        part = wanted(source, name) if wanted is not None else source  # each frame decodes on its own
        out = decode_frames(stream, device, range(part.start - source.start, part.stop - source.start))
        return out, part, name

    def stream_sequence(self, path) -> str:
        from vcm.codec.nerv_stream import peek_video

        v = peek_video(_stream_bytes(path))
        return v.get("sequence") or v["name"]

    def describe(self, settings: dict) -> str:
        fit = settings.get("fit") or {}
        fit_text = ", ".join(f"{k} {v}" for k, v in fit.items() if k not in ("rate_lambda",))
        method = settings.get("method")
        if settings.get("chained"):  # the same for every link, so that a chain's points read as one way
            method = "rate-distortion, its λ points chained (each from the stage of the next-smaller λ)"
        masks = settings.get("masks") or {}
        edges = f" (edge masks: {', '.join(f'{k} {v}' for k, v in masks.items())})" if masks else ""
        return (f"{settings.get('representation')} with loss {settings.get('loss')}{edges}, {method}; "
                f"fit: {fit_text}")

    def label(self, point: dict, coded: dict) -> str:
        if "match" in point:  # the λ rate control found, and the anchor point it aimed at
            return f"λ{coded['rate_control']['lambda']:.3g} (≈ {point['match']} {point['target_point'].replace('qp', 'QP')})"
        if "lambda" in point:
            return f"λ{float(point['lambda'])}"
        return f"prune {float(point['prune'])}, {point['bits']} bit" + (" QAT" if point.get("qat") else "")

    def point_inputs(self, point: dict) -> dict:
        """The network and schedule its preset resolves to (what the fit and the point's stage run), and the
        fingerprint of a mask file it names (its content: a folder moved elsewhere keeps its points), or for
        masks SAM makes, its weights' fingerprint and the generator settings."""
        from dataclasses import asdict

        model_spec, train = fit_plan(point["fit"], self.default_preset, self.loss)
        inputs = {"model": asdict(model_spec), "train": train.to_dict()}
        mask_args = self._mask_args(point)
        if mask_args is not None and (mask_args["masks"] is not None or mask_args["sam_checkpoint"] is not None):
            from vcm.masks.provide import SAM_INPUTS, masks_record

            record = masks_record(**mask_args)
            made_by = {k: record[k] for k in SAM_INPUTS if k in record}
            if "fingerprint" in record or made_by:
                inputs["masks"] = record.get("fingerprint") or made_by
        return inputs

    def _mask_args(self, point: dict) -> dict | None:
        """``vcm.masks.provide.masks_for_fit``'s arguments for this point's fit; None for the plain loss."""
        if self.loss != "sa-nerv":
            return None
        from vcm.masks.sam import DEFAULT_ALPHA, check_sam_model

        m = point.get("masks") or {}
        return {"masks": Path(m["masks"]) if m.get("masks") else None,
                "sam_checkpoint": Path(m["sam_checkpoint"]) if m.get("sam_checkpoint") else None,
                "alpha": float(m.get("alpha", DEFAULT_ALPHA)), "sam_model": check_sam_model(m.get("sam_model")),
                "settings_path": Path(m["config"]) if m.get("config") else None, "source": m.get("source")}

    def _fit(self, spec: dict, video, device) -> tuple[Path, float]:
        from vcm.masks.provide import completed_record, masks_for_fit, masks_record
        from vcm.nerv.train import fit, read_metrics, run_differs

        p = spec["point"]
        f = p["fit"]
        fit_dir = self._fit_dir(spec)
        model_spec, train = run_plan(f, self.default_preset, self.loss, video.num_frames)
        with _locked(fit_dir.with_suffix(".lock")):
            mask_args = self._mask_args(p)
            stale = run_differs(fit_dir, video, model_spec.build_for(video), train,
                                None if mask_args is None else masks_record(**mask_args), completed_record)
            if stale:  # the config changed under the same fit name (the sequence's frames, a preset edited)
                import shutil

                from vcm import progress

                progress.log(f"{fit_dir} holds a fit of {stale} than this config asks for: training it again")
                shutil.rmtree(fit_dir)
            if not (fit_dir / "metrics.json").exists():
                masks_u8 = masks_meta = None
                if mask_args is not None:
                    masks_u8, masks_meta = masks_for_fit(video, run_dir=fit_dir, device=device, **mask_args)
                result = fit(video, model_spec.build_for(video), train, fit_dir, device,
                             resume=(fit_dir / "checkpoint.pt").exists(), masks_u8=masks_u8, masks_meta=masks_meta)
                if result.interrupted:  # never compress a half-trained network
                    raise KeyboardInterrupt
        return fit_dir, float(read_metrics(fit_dir)["train_seconds"])

    def encode_decode(self, spec: dict, video, device) -> dict:
        from vcm.codec.compress import compress_run, decode_file

        p = spec["point"]
        fit_dir, fit_seconds = self._fit(spec, video, device)
        network_ready(spec)
        # the stages' seed: the fit's stage_seed, else the fit's own seed (both checked in points())
        stage_seed = p.get("stage_seed") if p.get("stage_seed") is not None else p["fit"].get("seed")
        seed = {} if stage_seed is None else {"seed": stage_seed}
        opts, _ = self._stage_plan(p, video.num_frames, seed)
        out = Path(spec["workdir"]) / "stream.nerv"
        t = time.time()
        if "target_kbps" in p:  # a match point: the anchor's rate, found by rate control
            from vcm.codec.rate_control import compress_to_target
            from vcm.codec.rate_control import Target

            report = compress_to_target(fit_dir, out, Target(kbps=p["target_kbps"]), opts, device, fps=video.fps)
        else:
            from vcm.codec.chain import STATE

            keep = Path(spec["workdir"]) / STATE if p.get("keeps_state") else None
            if keep is not None:
                keep.unlink(missing_ok=True)  # an earlier run's: the next point must never start from it
            start = Path(spec["workdir"]).with_name(p["warm_from"]) / STATE if p.get("warm_from") else None
            # the entry's rate, which may have been corrected since the fit it reuses
            report = compress_run(fit_dir, out, opts, device, start_from=start, keep_end=keep, fps=video.fps)
        compress_seconds = time.time() - t
        # a chained point's stream costs its chain's earlier stages too
        earlier = report.get("chain_encode_seconds", report["encode_seconds"]) - report["encode_seconds"]
        frames, _, _ = decode_file(out, device)
        row = {"bitstream": str(out), "bytes": out.stat().st_size, "frames_u8": frames,
               "encode": fit_seconds + compress_seconds + earlier, "fit_seconds": fit_seconds,
               "compress_seconds": compress_seconds, "decode": time.time() - t - compress_seconds, "qp": None,
               "params": report["params"], "bits_per_param": report["bits_per_param"],
               "settings": {"representation": self.arch, "loss": self.loss,
                            **({"masks": p["masks"]} if self.loss == "sa-nerv" and p.get("masks") else {}),
                            **({"chained": True} if p.get("warm_from") or p.get("keeps_state") else {}),
                            "fit": p["fit"] if p.get("stage_seed") is None else {**p["fit"], "stage_seed": p["stage_seed"]},
                            "method": ("prune/quantize (paper)" if "lambda" not in p else "rate-distortion" +
                                       (f", from λ {report['start']['lambda']:g}'s stage" if report.get("start") else ""))}}
        for key in ("estimate_bytes", "breakdown", "rate_control", "decoder_kmac_per_pixel"):
            if key in report:
                row[key] = report[key]
        return row


_registered: set[str] = set()


def register_representations() -> None:
    """Two codecs per registered representation: NAME (the NeRV loss) and sa-NAME (the SA-NeRV loss),
    fitting its default preset unless a fit names another. Called on every load of the codec registry,
    so a representation registered later gets its codecs too."""
    from vcm.nerv import registry

    for e in registry.entries():
        if e.name not in _registered:
            _registered.add(e.name)
            register_codec(e.name, order=e.codec_order, arch=e.name, loss="nerv", default_preset=e.default_preset)(NervFamily)
            register_codec(f"sa-{e.name}", order=e.codec_order + 1, arch=e.name, loss="sa-nerv",
                           default_preset=e.default_preset)(NervFamily)
