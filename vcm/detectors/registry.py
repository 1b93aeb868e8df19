"""The detector registry, a leaf: entries register here, and nothing here imports a detector.

An entry is a factory ``(weights=, repo=, device=, batch=, half=, options=) -> Detector`` with a
description, a family, and optionally a probe ``local() -> dict | None`` that says, without
fetching anything, whether its weights are on this machine (then a CTC ``detector`` section that
uses them); ``vcm demo`` asks the probes in ``preference`` order (lowest first).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from vcm.errors import VcmError
from vcm.detectors.classes import Detections
from vcm.registry import Registry


class Detector(Protocol):
    name: str
    classes: tuple[str, ...]

    def settings(self) -> dict:
        """Everything that decides its output, as JSON-able data (name, weights, sizes, thresholds)."""

    def detect(self, frames_u8: np.ndarray, source_frames: list[int]) -> list[Detections]:
        """``uint8 [T,3,H,W]`` RGB frames (and their source indices) → one Detections per frame."""


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable  # (weights, repo, device, batch, half, options: dict) -> Detector
    description: str
    family: str
    local: Callable[[], dict | None] | None = None  # a detector section when its weights are here, else None
    preference: int = 1000  # the order in which the demo asks the probes (lowest first)
    settings_of: Callable[[dict | None], object] | None = None  # options → its settings, checked (the factory's too)
    weights: bool = True  # whether it reads weights (--weights, a detector section's weights): OpenCV's ship with it
    repo: bool = False  # whether it loads code from a repository (--yolov7-repo, a detector section's repo)
    half: bool = False  # whether it can run in fp16 (--half)


# Another package's detector: its pyproject.toml names its module in this entry-point group
# ([project.entry-points."vcm.detectors"] mine = "mylab.vcm_detector"), and the module registers it as these do.
PLUGINS = "vcm.detectors"
YOUR_OWN = "or MODULE:ATTR / FILE.py:ATTR for your own"  # a detector of one's own, by its factory (vcm.detectors.user)

_REGISTRY: Registry[Entry] = Registry("detector", ("vcm.detectors.yolov7", "vcm.detectors.torchvision_models",
                                                   "vcm.detectors.opencv"), plugins=PLUGINS)


def register_detector(name: str, description: str = "", family: str = "",
                      local: Callable[[], dict | None] | None = None, preference: int = 1000,
                      settings_of: Callable[[dict | None], object] | None = None, weights: bool = True,
                      repo: bool = False, half: bool = False) -> Callable:
    """Function decorator: register ``factory(weights=, repo=, device=, batch=, half=, options=)``; ``settings_of``:
    the function the factory reads its ``options`` with (options → its settings, checked), so that they can be
    checked before any detector is built (:func:`check_options`); ``weights``, ``repo``, ``half``: whether the
    factory reads those arguments (given to one that does not, they are refused: :func:`check_reads`)."""

    def wrap(factory):
        _REGISTRY.add(name, Entry(name, factory, description, family or name, local, preference, settings_of, weights,
                                  repo, half))
        return factory

    return wrap


def check_options(name: str, options, what: str) -> None:
    """A detector's ``options`` (a CTC config's ``settings``) checked as its factory will apply them, without
    building it: a mapping of its settings' keys and values of their types. A typo there failed every point of a
    CTC run once its video was coded. A user's own detector (``MODULE:ATTR``) checks its options when it is built."""
    if options is None:
        return
    if not isinstance(options, dict):
        raise VcmError(f"{what} settings must be a mapping of setting: value, got {options!r}")
    if name == "oracle" and options:
        raise VcmError("the oracle detector has no settings")
    settings_of = _REGISTRY.get(name).settings_of if name in _REGISTRY else None
    if settings_of is not None:
        settings_of(options)


_IGNORED = {"weights": "reads no weights, so {value} would be ignored; leave them out",
            "repo": "loads no code from a repository, so {value} would be ignored; leave it out",
            "half": "has no fp16 mode (one registered with it has, as yolov7 on CUDA); leave it out"}


def check_reads(name: str, given: list[tuple[str, str, object]]) -> None:
    """Refuse what a detector does not read: ``given`` holds ``(where it was given, argument, value)`` for the
    factory's ``weights``, ``repo`` and ``half`` (None or False: not given). OpenCV's cascades, the oracle and a
    user's ``MODULE:ATTR`` (whose settings come through ``--set``) read none of them, a torchvision detector no
    repository and no fp16: each was ignored without a word, a missing file too."""
    for where, argument, value in given:
        if value is None or value is False:
            continue
        if ":" not in name and name != "oracle" and name in _REGISTRY and getattr(_REGISTRY.get(name), argument):
            continue
        own = " (a detector of your own takes its settings through --set)" if ":" in name else ""
        raise VcmError(f"{where}: detector {name} {_IGNORED[argument].format(value=value)}{own}")


def names() -> list[str]:
    return ["oracle", *sorted(_REGISTRY)]


def describe() -> str:
    """One line for ``--help``: the registered names and the user-callable form."""
    return _REGISTRY.known([*names(), YOUR_OWN])


def apply_options(settings, options: dict | None, what: str):
    """A copy of the dataclass ``settings`` with ``options`` (strings from ``--set`` or YAML values)
    coerced to each field's type; an unknown key is refused with the valid ones."""
    from vcm.schema import check_keys

    options = dict(options or {})
    try:
        check_keys(options, [f.name for f in dataclasses.fields(settings)], f"{what} settings")
    except ValueError as err:
        raise VcmError(str(err)) from None
    values = {}
    for key, raw in options.items():
        kind = type(getattr(settings, key))
        try:
            value = _coerce(kind, raw)
        except (TypeError, ValueError):
            raise VcmError(f"{what} setting {key} must be {kind.__name__}, got {raw!r}") from None
        if kind in (int, float) and not value >= 0:  # NaN too
            raise VcmError(f"{what} setting {key} must be a number of at least 0, got {raw!r}")
        values[key] = value
    return dataclasses.replace(settings, **values)


def _coerce(kind: type, raw):
    if kind is bool:
        if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "0", "false", "no"):
            return raw.lower() in ("1", "true", "yes")
        if isinstance(raw, bool):
            return raw
        raise ValueError(raw)
    if kind is int:
        value = float(raw)
        if not value.is_integer():
            raise ValueError(raw)
        return int(value)
    return kind(raw)


def entry(name: str) -> Entry:
    return _REGISTRY.get(name, [*names(), YOUR_OWN])


def local_detector() -> dict | None:
    """A detector whose weights are on this machine already (nothing is fetched), as a CTC config
    ``detector`` section: the first entry, by preference, whose probe finds them; None if none does."""
    for e in sorted((_REGISTRY.get(n) for n in _REGISTRY), key=lambda e: (e.preference, e.name)):
        found = e.local() if e.local is not None else None
        if found is not None:
            return found
    return None
