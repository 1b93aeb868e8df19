"""The memory a decoder may spend, checked before anything is allocated.

A stream of a few hundred bytes can declare a 16384×16384 video or a hundred million parameters;
decoders compute what such a declaration would cost (:func:`check`) and refuse it with one line
when it exceeds the budget: ``VCM_MEMORY_BUDGET`` (e.g. ``8G``, ``512M``; default 4 GiB: enough
for SA-ICM on class C frames, far from what a 16384² declaration would take). ``vcm icm train`` holds the crops
of one batch to the same budget.
"""

from __future__ import annotations

import math
import os

from vcm.bitstream.bits import StreamError
from vcm.words import human

DEFAULT_BUDGET = 4 << 30
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def memory_budget() -> int:
    """Bytes a decoder may allocate: ``VCM_MEMORY_BUDGET`` or 4 GiB."""
    text = os.environ.get("VCM_MEMORY_BUDGET", "").strip().upper().removesuffix("B").removesuffix("I")
    if not text:
        return DEFAULT_BUDGET
    unit = text[-1] if text[-1] in _UNITS else ""
    try:
        value = float(text[: len(text) - len(unit)]) * _UNITS[unit]
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1):  # NaN and inf were tracebacks, -1 and 0 refused every stream
        from vcm.errors import VcmError

        raise VcmError(f"VCM_MEMORY_BUDGET={os.environ['VCM_MEMORY_BUDGET']!r} is not a size such as 2G or 512M")
    return int(value)


def check(need: int, what: str, kind: str) -> None:
    """Refuse a decode that would need ``need`` bytes for ``what`` beyond the budget."""
    budget = memory_budget()
    if need > budget:
        raise StreamError(f"this {kind} bitstream would need {human(need)} to decode ({what}), more than the "
                          f"memory budget of {human(budget)}; set VCM_MEMORY_BUDGET (e.g. 16G) if it is genuine")
