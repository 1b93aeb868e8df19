"""Where fit presets live (``configs/nerv/<name>.yaml``), without importing torch: the CLI
checks a preset name in a fraction of a second, before any heavy import."""

from __future__ import annotations

from pathlib import Path

from vcm.errors import VcmError
from vcm.resources import data_dir


def preset_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.exists():
            raise VcmError(f"config file {p} does not exist")
        return p
    candidate = data_dir("configs") / "nerv" / f"{name_or_path}.yaml"
    if not candidate.exists():
        raise VcmError(f"unknown preset {name_or_path!r}; available: {', '.join(list_presets())}")
    return candidate


def list_presets() -> list[str]:
    return sorted(p.stem for p in (data_dir("configs") / "nerv").glob("*.yaml"))
