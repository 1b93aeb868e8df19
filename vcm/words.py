"""Words in messages: counts ("1 point", "3 points", never "point(s)"), sizes, what differs between two settings."""

from __future__ import annotations


def noun(n: int, singular: str, plural: str | None = None) -> str:
    """``singular`` when ``n`` is 1, else ``plural`` (``singular + "s"`` unless given)."""
    return singular if n == 1 else plural or singular + "s"


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` with thousands separators, then :func:`noun`: ``counted(1, "point") == "1 point"``,
    ``counted(1200, "frame") == "1,200 frames"``."""
    return f"{n:,} {noun(n, singular, plural)}"


def human(n: float) -> str:
    """A size in bytes in words: ``512 B``, ``1.5 KiB`` … ``2.0 TiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def differences(old: dict, now: dict, shown: int | None = None) -> str:
    """The fields in which two mappings differ, in words, in the order they first appear: ``fc_dim 2, now 3;
    lr 0.01, now 0.02``; with ``shown``, the first ``shown`` of them and how many more."""
    keys = [k for k in dict.fromkeys([*old, *now]) if old.get(k) != now.get(k)]
    said = [f"{k} {old.get(k)!r}, now {now.get(k)!r}" for k in keys[:shown]]
    more = len(keys) - len(said)
    return "; ".join(said) + (f"; and {more} more" if more else "")
