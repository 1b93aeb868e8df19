"""Strict dataclass loading for configs that come from files or bitstreams.

``strict_from_dict(Cls, d)`` accepts exactly the dataclass's fields, checks every value against
its annotation (``int``, ``float``, ``str``, ``bool``, ``tuple[int, ...]`` of any length, ``tuple[float, float]`` of
exactly that length, and ``X | None``)
and raises ``ValueError`` with one line naming the field. Unknown keys are listed with the
valid ones. Nothing is evaluated or allocated from the values.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing

from vcm.words import noun


def _check(name: str, annotation, value):
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):  # ``X | None``: absent (null) or an X
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None and len(inner) < len(typing.get_args(annotation)):
            return None
        if len(inner) == 1:
            return _check(name, inner[0], value)
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)) or len(value) > 64:
            raise ValueError(f"field {name!r} must be a short list")
        if len(args) == 2 and args[1] is Ellipsis:  # ``tuple[X, ...]``: any length
            return tuple(_check(name, args[0], v) for v in value)
        if len(value) != len(args):  # ``tuple[X, Y]``: exactly that many
            raise ValueError(f"field {name!r} must be a list of {len(args)} values, got {len(value)}")
        return tuple(_check(name, a, v) for a, v in zip(args, value))
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"field {name!r} must be true or false")
        return value
    if annotation is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"field {name!r} must be an integer")
        return value
    if annotation is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value or abs(value) == float("inf"):
            raise ValueError(f"field {name!r} must be a finite number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str) or len(value) > 256:
            raise ValueError(f"field {name!r} must be a short string")
        return value
    raise TypeError(f"strict_from_dict cannot check {annotation!r}")  # a bug in a config class


def strict_from_dict(cls, d, defaults: bool = True):
    """``cls(**d)`` after checking keys and value types; ``defaults=False`` requires every field."""
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__} must be a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        raise ValueError(f"unknown {noun(len(unknown), 'field')} {', '.join(sorted(map(str, unknown)))}; "
                         f"valid: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name not in d:
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            if not (defaults and has_default):
                raise ValueError(f"field {name!r} is missing")
            continue
        kwargs[name] = _check(name, hints[name], d[name])
    return cls(**kwargs)


def check_keys(d, valid, where: str) -> dict:
    """``d`` must be a mapping whose keys are all in ``valid``; raises ValueError naming the unknown
    ones and listing the valid ones (a typo such as ``prun: 0.4`` must never be silently ignored)."""
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a mapping, got {type(d).__name__}")
    unknown = set(d) - set(valid)
    if unknown:
        raise ValueError(f"{where}: unknown {noun(len(unknown), 'key')} {', '.join(sorted(map(str, unknown)))}; "
                         f"valid: {', '.join(sorted(valid))}")
    return d


def finite_number(v) -> bool:
    """An int or float (not a bool) that is finite: what a JSON or YAML measure must be to be computed with."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def whole_number(v) -> bool:
    """An int that is not a bool: what a JSON or YAML count, index or frame number must be."""
    return isinstance(v, int) and not isinstance(v, bool)


# The largest seed every generator vcm seeds takes: torch's are seeded from a signed 64-bit integer (a larger one
# was an OverflowError deep in a fit), numpy's SeedSequence from a whole number ≥ 0.
SEED_MAX = 2**63 - 1
SEED_RULE = "a whole number in [0, 2^63 − 1]"


def is_seed(v) -> bool:
    return type(v) is int and 0 <= v <= SEED_MAX


def refuse_first_broken(label: str, obj, rules) -> None:
    """Raise ``ValueError`` for the first of ``rules`` — ``(field, holds, what it may be)`` — that does not
    hold: ``{label} {field} must be {what}, got {value}``, one line naming the field. Before the rules, any
    float field (or float in a tuple field) of the dataclass ``obj`` that is not finite: a command-line
    ``--lr inf`` passes ``lr > 0`` and trains to NaN."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        numbers = value if isinstance(value, (tuple, list)) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
            raise ValueError(f"{label} {f.name} must be a finite number, got {value!r}")
    for name, holds, allowed in rules:
        if not holds:
            raise ValueError(f"{label} {name} must be {allowed}, got {getattr(obj, name)!r}")
