"""What every benchmark script shares: a result table and one-line errors."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)  # wide enough for every column in a log file


def run(main) -> None:
    """Call ``main()``; a user error (bad path, no GPU) ends with one line instead of a traceback."""
    from vcm.errors import VcmError

    try:
        main()
    except VcmError as err:
        raise SystemExit(f"error: {err}") from None


def dev_clip(name: str, frames: int | None = None):
    """The clips the presets are tuned on: ``carphone`` (176×144, 120 frames) or ``bikes416``
    (a centred 416×240 crop of bikes, class-D sized; 48 frames unless told)."""
    from pathlib import Path

    from vcm.samples import sample_clip
    from vcm.video import open_video
    from vcm.video.source import Video, VideoInfo

    if name == "carphone":
        return open_video(sample_clip("carphone"), f"0:{frames or 120}")
    if name == "bikes416":
        src = open_video(sample_clip("bikes"), f"0:{frames or 48}")
        y0, x0 = (src.height - 240) // 2, (src.width - 416) // 2
        data = src.frames_u8[:, :, y0:y0 + 240, x0:x0 + 416].copy()
        info = VideoInfo(Path("bikes416"), "images", "bikes416", 416, 240, src.fps, len(data), 8, 0, None, False)
        return Video(info, data, range(len(data)))
    from vcm.errors import VcmError

    raise VcmError(f"unknown development clip {name!r}; use carphone or bikes416")
