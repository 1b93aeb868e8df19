"""Building a detector by name: a registered entry or a user's ``MODULE:ATTR``, with its options."""

from __future__ import annotations

from vcm.detectors.registry import Detector, entry
from vcm.errors import VcmError


def parse_set(pairs: list[str] | None) -> dict:
    """``["min_size=320", "score_threshold=0.1"]`` → ``{"min_size": "320", …}``."""
    out = {}
    for pair in pairs or []:
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise VcmError(f"--set takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def create_detector(name: str, weights=None, repo=None, device="cpu", batch: int = 8, half: bool = False,
                    options: dict | None = None) -> Detector:
    """Build a registered detector (or a user's ``MODULE:ATTR``); ``options`` are its settings."""
    if ":" in name:
        from vcm.detectors.user import load_user_detector

        return load_user_detector(name, device=device, options=options)
    return entry(name).factory(weights=weights, repo=repo, device=device, batch=batch, half=half, options=options)
