"""The largest networks vcm builds from what it reads: a .nerv stream's header, or a run's checkpoint.

:func:`checked_config` reads a representation's config and holds it to these before any layer is built, so
that a hostile or edited description is refused instead of allocated.
"""

from __future__ import annotations

from vcm.nerv import registry
from vcm.nerv.model import MAX_PARAMS
from vcm.video.limits import MAX_SIDE

# Limits every representation's config is checked against (a representation adds its own in its
# registry entry: NeRV's stem layers and positional-encoding levels).
LIMITS = {"side": MAX_SIDE, "frames": 1_000_000, "params": MAX_PARAMS, "width_channels": 1 << 16, "stages": 8}


def limits_of(e) -> dict:
    """The limits registry entry ``e``'s config is checked against: the common ones and its own."""
    return {**LIMITS, **e.limits}


def checked_config(arch: str, d):
    """Representation ``arch``'s config from its stored dict ``d``, strictly typed and held to its limits before
    anything is built; raises ValueError, TypeError or OverflowError naming the fault."""
    e = registry.entry(arch)
    cfg = e.config_cls.from_dict(d)
    e.model_cls.check_config(cfg, limits_of(e))
    return cfg
