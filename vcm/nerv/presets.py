"""Where fit presets live (``configs/nerv/<name>.yaml``), without importing torch: the CLI
checks a preset name in a fraction of a second, before any heavy import."""

from __future__ import annotations

from pathlib import Path

from vcm.errors import VcmError
from vcm.fsutil import require_input
from vcm.resources import shipped_config, shipped_configs
from vcm.yamlfile import YAML_FOLDER_HINT, load_yaml, read_yaml_file


def preset_path(name_or_path: str | Path) -> Path:
    """The YAML file of a preset or config. A ``Path`` (``vcm fit --config``) is always a file, of any name. A
    string is a preset's name (``configs/nerv/<name>.yaml``) unless it ends in ``.yaml``/``.yml``, has a folder in
    it, or names a file that is there and no preset."""
    if isinstance(name_or_path, Path):
        return _config_file(name_or_path)
    shipped = shipped_config("nerv", name_or_path)
    if shipped is not None:
        return shipped
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or len(p.parts) > 1 or p.exists():
        return _config_file(p)
    raise VcmError(f"unknown preset {name_or_path!r}; available: {', '.join(list_presets())}")


def _config_file(p: Path) -> Path:
    shipped = shipped_config("nerv", str(p)) if len(p.parts) == 1 else None  # `--config hinerv-demo`
    require_input(p, "config file", folder_hint=YAML_FOLDER_HINT,
                  missing=f"config file {p} does not exist; {p} is a preset: --preset {p}" if shipped else None)
    return p


def list_presets() -> list[str]:
    return shipped_configs("nerv")


def presets_by_arch() -> dict[str, list[str]]:
    """{representation: its presets' names}, from each file's ``model.arch`` (NeRV when absent), for
    the CLI's help: the files are the list, so a new preset appears there without an edit."""
    import yaml

    out: dict[str, list[str]] = {}
    for name in list_presets():
        try:
            raw = load_yaml(shipped_config("nerv", name).read_text()) or {}
            arch = (raw.get("model") or {}).get("arch", "nerv")
        except (yaml.YAMLError, AttributeError):
            continue  # a damaged preset is reported when it is used, not in every --help
        out.setdefault(str(arch), []).append(name)
    return out


def preset_curve(name_or_path: str) -> list[dict] | None:
    """The preset's default rate points: its ``curve`` section, the fits (``{points: [...], width_scale, ...}``,
    as a CTC codec section's ``fits``) that a codec section without ``fits`` runs on this preset, each naming
    the preset unless it names another. None when the preset has no curve."""
    path = preset_path(name_or_path)
    raw = read_preset(path)
    curve = raw.get("curve") if isinstance(raw, dict) else None
    if curve is None:
        return None
    if not (isinstance(curve, list) and curve and all(isinstance(fit, dict) for fit in curve)):
        raise VcmError(f"{path}: curve must be a list of fits ({{points: [{{lambda: 1}}, ...]}}), got {curve!r}")
    return [{"preset": name_or_path, **fit} for fit in curve]


def read_preset(path: Path):
    """A preset file's YAML as read (``{}`` when empty), or a one-line error for a file that is not YAML."""
    return read_yaml_file(path, "config file") or {}
