"""``vcm config``: the configs vcm ships (CTC experiments, fit presets, mask settings), listed and copied out to
be edited. Installed from a wheel, they lie inside the package, out of a user's reach."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vcm.cli.app import app
from vcm.cli.common import JsonOpt, OverwriteOpt, out as console, print_json, table

config_app = typer.Typer(help="The configs vcm ships: list them, or copy one out to edit it.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _about(path: Path) -> str:
    """What a config file is: the first sentence of its leading comment (to a full stop, or to a colon that ends a
    line, before a list)."""
    import re

    text = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.lstrip("#").strip() if line.startswith("#") else ""
        if not line:
            break
        text = f"{text} {line}".strip()
        stop = re.search(r"\.(\s|$)", text)
        if stop:
            return text[: stop.start() + 1]
        if text.endswith(":"):
            return text[:-1]
    return text


@config_app.command("list")
def config_list(json_out: bool = JsonOpt) -> None:
    """Every config vcm ships, with the command that reads it and what it is."""
    from rich.table import Table

    from vcm.resources import CONFIG_KINDS, data_dir, shipped_config_names

    rows = []
    for full in shipped_config_names():
        kind, name = full.split("/")
        rows.append({"name": full, "used_by": CONFIG_KINDS[kind].replace("NAME", name),
                     "about": _about(data_dir("configs") / kind / f"{name}.yaml")})
    if json_out:
        print_json(rows)
        return
    t = Table(title="vcm config list", title_justify="left")
    for column in ("config", "used by", "what it is"):
        t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(row["name"], row["used_by"], row["about"])
    console.print(t)
    console.print("vcm config copy KIND/NAME writes one into this folder to edit.")


@config_app.command("copy")
def config_copy(
    name: str = typer.Argument(..., help="A shipped config: KIND/NAME (ctc/sfu-cd, nerv/hinerv-demo, masks/default) or a NAME only one kind has (see vcm config list)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="The file to write (default: NAME.yaml in this folder)."),
    overwrite: bool = OverwriteOpt,
) -> None:
    """Write a shipped config, its comments included, to a file of your own to edit.

    Then name that file where the shipped name went: vcm ctc run sfu-cd.yaml, vcm fit --preset hinerv-demo.yaml, vcm masks --config default.yaml.
    """
    from vcm.errors import VcmError
    from vcm.fsutil import write_text
    from vcm.outputs import check_output, check_replaceable
    from vcm.resources import CONFIG_KINDS, data_dir, shipped_configs_named

    found = shipped_configs_named(name)
    if not found:
        raise VcmError(f"vcm ships no config {name!r}; vcm config list shows those it does")
    if len(found) > 1:
        raise VcmError(f"{name!r} names {len(found)} shipped configs, {' and '.join(found)}: name one of them")
    kind, stem = found[0].split("/")
    source = data_dir("configs") / kind / f"{stem}.yaml"
    out = Path(f"{stem}.yaml") if out is None else out
    if out.suffix.lower() not in (".yaml", ".yml"):  # vcm reads a bare name as the shipped config's, not this file
        raise VcmError(f"--out {out}: a config's file name must end in .yaml or .yml")
    check_output(out, inputs=[source], kind="file")
    check_replaceable(out, overwrite)
    write_text(out, source.read_text(encoding="utf-8"))
    use = CONFIG_KINDS[kind].replace("NAME", str(out)).replace("FILE", str(out))
    table("vcm config copy", [("config", found[0]), ("written to", str(out)), ("use it as", use)])
